//! The call state machine, pure: what a backstop task does, what a remote's answer means,
//! and how a remote treats a call id it has seen before. No clock, no `worker` types: time
//! and stored rows come in as arguments.

use serde_json::Value;

use crate::envelope::{CallReply, Outcome, EXPIRED_STATUS, MAX_CLOCK_SKEW_MS, MAX_REQUEST_AGE_MS, VERSION};
use crate::CallError;

/// Transient failures (transport errors, 5xx answers) after which a call ends with
/// [`CallError::Transport`].
pub const MAX_TRANSPORT_ATTEMPTS: u32 = 6;

/// The first re-dispatch delay; it doubles per transient failure, up to [`MAX_RETRY_DELAY_MS`].
pub const FIRST_RETRY_DELAY_MS: i64 = 1_000;

/// The longest re-dispatch delay.
pub const MAX_RETRY_DELAY_MS: i64 = 60_000;

/// How long a remote keeps the result of a call it applied, to answer re-dispatches of the
/// same id without applying it again. A caller gives up long before (after at most
/// [`MAX_TRANSPORT_ATTEMPTS`] failures, or its timeout).
pub const RESULT_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// The error a remote reports for a call it was applying when it was reset (a crash, a
/// panic elsewhere in the isolate, a deploy): the operation may or may not have taken
/// effect, and it is never applied again.
pub const INTERRUPTED: &str = "the remote was reset while applying this call: it may or may not have taken effect";

/// The result a continuation receives.
pub type CallResult = Result<Value, CallError>;

/// Until when the origin sends a call issued at `issued_ms`: past this time (its clock),
/// no remote whose clock is within [`MAX_CLOCK_SKEW_MS`] accepts the request, and the call
/// ends with [`CallError::Expired`] without being sent.
#[must_use]
pub fn send_horizon_ms(issued_ms: i64) -> i64 {
    issued_ms.saturating_add(MAX_REQUEST_AGE_MS).saturating_add(MAX_CLOCK_SKEW_MS)
}

/// What the caller knows of one pending call.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// When the call was made, Unix ms: the issue time of every request for it.
    pub issued_ms: i64,
    /// When the call times out, Unix ms.
    pub deadline_ms: Option<i64>,
    /// Transient failures so far.
    pub failures: u32,
    /// The last transient failure.
    pub last_error: Option<String>,
    /// The result, once in (the continuation may not have completed yet).
    pub result: Option<CallResult>,
}

/// What a call's backstop task does when it fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Hand this result to the continuation.
    Deliver(CallResult),
    /// Send the call (unless a send is already in flight) and fire again at `backstop_ms`.
    Dispatch {
        /// When to look again.
        backstop_ms: i64,
    },
}

/// The delay before the next dispatch after `failures` transient failures.
///
/// ```
/// use lumenize_call::machine::retry_delay_ms;
/// assert_eq!(retry_delay_ms(0), 1_000);
/// assert_eq!(retry_delay_ms(3), 8_000);
/// assert_eq!(retry_delay_ms(30), 60_000);
/// ```
#[must_use]
pub fn retry_delay_ms(failures: u32) -> i64 {
    FIRST_RETRY_DELAY_MS.saturating_mul(1_i64 << failures.min(20)).min(MAX_RETRY_DELAY_MS)
}

/// When the backstop of a call should fire next: after the retry delay, or at its deadline
/// if that comes first.
#[must_use]
pub fn backstop_at(now_ms: i64, failures: u32, deadline_ms: Option<i64>) -> i64 {
    let next = now_ms.saturating_add(retry_delay_ms(failures));
    deadline_ms.map_or(next, |d| next.min(d))
}

/// What the backstop task of `call` does at `now_ms`.
#[must_use]
pub fn on_backstop(call: &Pending, now_ms: i64) -> Step {
    if let Some(result) = &call.result {
        return Step::Deliver(result.clone());
    }
    if call.deadline_ms.is_some_and(|d| d <= now_ms) {
        return Step::Deliver(Err(CallError::Timeout));
    }
    if now_ms > send_horizon_ms(call.issued_ms) {
        let message = format!(
            "made at {}, more than {MAX_REQUEST_AGE_MS} ms (plus {MAX_CLOCK_SKEW_MS} ms of clock skew) ago: no remote accepts it any more; it was not sent again",
            call.issued_ms
        );
        return Step::Deliver(Err(CallError::Expired { message }));
    }
    if call.failures >= MAX_TRANSPORT_ATTEMPTS {
        return Step::Deliver(Err(transport_error(call)));
    }
    Step::Dispatch { backstop_ms: backstop_at(now_ms, call.failures, call.deadline_ms) }
}

fn transport_error(call: &Pending) -> CallError {
    CallError::Transport { message: call.last_error.clone().unwrap_or_else(|| "no answer".into()) }
}

/// What one answer of the remote means for call `id`.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The call's result (a reply, a remote error, or a refusal that retrying cannot fix).
    Done(CallResult),
    /// The remote is applying this call right now (a re-dispatch overtook the first send):
    /// look again at the next backstop; not a failure.
    Busy,
    /// A transient failure: re-dispatch later.
    Failed(String),
}

/// Reads the remote's HTTP answer to call `id`.
#[must_use]
pub fn read_answer(id: &str, status: u16, body: &str) -> Answer {
    let text = || body.to_owned();
    match status {
        200 => match serde_json::from_str::<CallReply>(body) {
            Ok(reply) if reply.v == VERSION && reply.id == id => Answer::Done(match reply.outcome {
                Outcome::Ok(value) => Ok(value),
                Outcome::Err { message, panicked } => Err(CallError::Remote { message, panicked }),
            }),
            Ok(reply) => Answer::Done(Err(CallError::Rejected {
                status,
                message: format!("a reply for call {} (version {}), not {id}", reply.id, reply.v),
            })),
            Err(e) => Answer::Done(Err(CallError::Rejected { status, message: format!("not a call reply: {e}") })),
        },
        409 => Answer::Busy,
        EXPIRED_STATUS => Answer::Done(Err(CallError::Expired { message: text() })),
        400..=499 => Answer::Done(Err(CallError::Rejected { status, message: text() })),
        _ => Answer::Failed(format!("HTTP {status}: {body}")),
    }
}

/// After a transient failure: the call's new state, and the result to deliver if it was the
/// last attempt.
#[must_use]
pub fn after_failure(call: &Pending, error: String) -> (Pending, Option<CallResult>) {
    let next = Pending { failures: call.failures + 1, last_error: Some(error), ..call.clone() };
    let give_up = next.failures >= MAX_TRANSPORT_ATTEMPTS;
    let result = give_up.then(|| Err(transport_error(&next)));
    (next, result)
}

/// What the remote has stored for a call id.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// Started, no outcome yet.
    Running,
    /// Applied, with this outcome.
    Done(Outcome),
}

/// What the remote does with a request for a call id.
#[derive(Debug, Clone, PartialEq)]
pub enum Serve {
    /// First time: apply the operation.
    Apply,
    /// Answer with the stored outcome (a re-dispatch): never apply twice.
    Replay(Outcome),
    /// It is being applied in this isolate right now: answer 409, the caller looks later.
    Busy,
    /// It was being applied when the remote was reset: store and answer [`INTERRUPTED`].
    Interrupted,
}

/// How the remote treats a request, given what it stored and whether this isolate is
/// applying that id right now.
#[must_use]
pub fn serve(seen: Option<Seen>, applying_here: bool) -> Serve {
    match seen {
        None => Serve::Apply,
        Some(Seen::Done(outcome)) => Serve::Replay(outcome),
        Some(Seen::Running) if applying_here => Serve::Busy,
        Some(Seen::Running) => Serve::Interrupted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pending() -> Pending {
        Pending { issued_ms: 0, deadline_ms: None, failures: 0, last_error: None, result: None }
    }

    #[test]
    fn a_stored_result_is_delivered_before_anything_else() {
        let call = Pending { result: Some(Ok(json!(1))), deadline_ms: Some(0), failures: 9, ..pending() };
        assert_eq!(on_backstop(&call, 100), Step::Deliver(Ok(json!(1))));
    }

    #[test]
    fn the_deadline_times_out_and_caps_the_backstop() {
        let call = Pending { deadline_ms: Some(1_500), ..pending() };
        assert_eq!(on_backstop(&call, 1_000), Step::Dispatch { backstop_ms: 1_500 });
        assert_eq!(on_backstop(&call, 1_499), Step::Dispatch { backstop_ms: 1_500 });
        assert_eq!(on_backstop(&call, 1_500), Step::Deliver(Err(CallError::Timeout)));
        assert_eq!(on_backstop(&pending(), 1_000), Step::Dispatch { backstop_ms: 2_000 });
    }

    #[test]
    fn transient_failures_back_off_then_end_as_transport_errors() {
        let mut call = pending();
        let mut delays = Vec::new();
        for i in 1..=MAX_TRANSPORT_ATTEMPTS {
            let (next, result) = after_failure(&call, format!("boom {i}"));
            call = next;
            if i < MAX_TRANSPORT_ATTEMPTS {
                assert_eq!(result, None, "gave up after {i} failures");
                let Step::Dispatch { backstop_ms } = on_backstop(&call, 0) else { panic!("not dispatching") };
                delays.push(backstop_ms);
            } else {
                let err = Err(CallError::Transport { message: format!("boom {i}") });
                assert_eq!(result, Some(err.clone()));
                assert_eq!(on_backstop(&call, 0), Step::Deliver(err));
            }
        }
        assert_eq!(delays, [2_000, 4_000, 8_000, 16_000, 32_000]);
    }

    #[test]
    fn every_call_error_serialises_and_round_trips() {
        for e in [
            CallError::Remote { message: "m".into(), panicked: true },
            CallError::Timeout,
            CallError::Transport { message: "m".into() },
            CallError::Rejected { status: 400, message: "m".into() },
            CallError::Cancelled,
            CallError::Expired { message: "m".into() },
        ] {
            let result: CallResult = Err(e);
            let text = serde_json::to_string(&result).unwrap();
            assert_eq!(serde_json::from_str::<CallResult>(&text).unwrap(), result, "{text}");
        }
    }

    #[test]
    fn answers_are_classified() {
        let ok = r#"{"v":2,"id":"c","ok":{"n":1}}"#;
        assert_eq!(read_answer("c", 200, ok), Answer::Done(Ok(json!({"n":1}))));
        let err = r#"{"v":2,"id":"c","err":{"message":"no","panicked":true}}"#;
        assert_eq!(
            read_answer("c", 200, err),
            Answer::Done(Err(CallError::Remote { message: "no".into(), panicked: true }))
        );
        assert!(matches!(read_answer("other", 200, ok), Answer::Done(Err(CallError::Rejected { status: 200, .. }))));
        assert!(matches!(read_answer("c", 200, "<html>"), Answer::Done(Err(CallError::Rejected { .. }))));
        assert_eq!(read_answer("c", 409, ""), Answer::Busy);
        assert_eq!(
            read_answer("c", 401, "bad signature"),
            Answer::Done(Err(CallError::Rejected { status: 401, message: "bad signature".into() }))
        );
        assert_eq!(read_answer("c", 503, "later"), Answer::Failed("HTTP 503: later".into()));
        assert_eq!(read_answer("c", 410, "too old"), Answer::Done(Err(CallError::Expired { message: "too old".into() })));
        // A version-1 reply is not one of ours any more.
        let v1 = r#"{"v":1,"id":"c","ok":1}"#;
        assert!(matches!(read_answer("c", 200, v1), Answer::Done(Err(CallError::Rejected { .. }))));
    }

    #[test]
    fn a_call_past_its_send_horizon_ends_expired_without_a_dispatch() {
        let issued = 1_800_000_000_000;
        let call = Pending { issued_ms: issued, ..pending() };
        let horizon = send_horizon_ms(issued);
        assert_eq!(horizon, issued + MAX_REQUEST_AGE_MS + MAX_CLOCK_SKEW_MS);
        assert!(matches!(on_backstop(&call, horizon), Step::Dispatch { .. }));
        let Step::Deliver(Err(CallError::Expired { message })) = on_backstop(&call, horizon + 1) else { panic!("not expired") };
        assert!(message.contains("not sent again"), "{message}");
        // A stored result and a timeout come first.
        let done = Pending { result: Some(Ok(json!(1))), ..call.clone() };
        assert_eq!(on_backstop(&done, horizon + 1), Step::Deliver(Ok(json!(1))));
        let timed = Pending { deadline_ms: Some(issued + 5), ..call };
        assert_eq!(on_backstop(&timed, horizon + 1), Step::Deliver(Err(CallError::Timeout)));
        assert_eq!(send_horizon_ms(i64::MAX), i64::MAX);
    }

    #[test]
    fn a_remote_applies_each_id_at_most_once() {
        let done = Outcome::Ok(json!(2));
        assert_eq!(serve(None, false), Serve::Apply);
        assert_eq!(serve(Some(Seen::Done(done.clone())), false), Serve::Replay(done.clone()));
        assert_eq!(serve(Some(Seen::Done(done.clone())), true), Serve::Replay(done));
        assert_eq!(serve(Some(Seen::Running), true), Serve::Busy);
        assert_eq!(serve(Some(Seen::Running), false), Serve::Interrupted);
    }
}
