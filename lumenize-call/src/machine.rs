//! The call state machine, pure: what a backstop task does, what a remote's answer means,
//! how a remote treats a call id it has seen before, and what fits in a row. No clock, no
//! `worker` types: time, sizes and stored rows come in as arguments.

use std::time::Duration;

use lumenize_alarms::core::{check_time, MAX_TIME_MS};
use serde::Serialize;
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

/// The largest row SQLite in a Durable Object stores, in bytes, its record header
/// included; so also (less a few header bytes) the largest TEXT or BLOB value. Beyond it,
/// `sql.exec` fails with `string or blob too big: SQLITE_TOOBIG`.
///
/// Measured in workerd 2026-04-26 (wrangler 4.86.0) by bisection over `INSERT`s into a
/// table of two TEXT columns (`sql_limits` in `testing/sandbox/src/calls.rs`, checked by
/// the workerd test `sqlite_in_a_durable_object_stores_values_and_rows_up_to_sqlite_max_bytes`):
/// one value of 2,199,994 bytes (with an empty second column) is stored and one of
/// 2,199,995 is not; two values of 1,099,995 bytes each are stored and two of 1,099,996
/// are not; the limit counts UTF-8 bytes (1,099,997 two-byte characters). Cloudflare
/// documents it as "2 MB".
pub const SQLITE_MAX_BYTES: usize = 2_200_000;

/// The largest operation a call carries, as JSON: 2 MB. [`Calls::call`](crate::Calls::call)
/// refuses a larger one with [`Error::TooLarge`](crate::Error::TooLarge) before storing
/// anything.
pub const MAX_OPERATION_BYTES: usize = 2_000_000;

/// The largest continuation value of a call, as JSON: 2 MB. Refused like a larger
/// operation. The operation and the continuation value are stored in one row, so together
/// (with the target) they must also fit in [`SQLITE_MAX_BYTES`] less [`ROW_RESERVE_BYTES`].
pub const MAX_CONTINUATION_BYTES: usize = 2_000_000;

/// The largest outcome a remote stores and answers, as JSON (`{"ok":<reply>}`, 7 bytes
/// more than the reply, or `{"err":{..}}`): 2 MB. A larger one is stored and answered as
/// [`Outcome::TooLarge`], and the continuation gets [`CallError::TooLarge`]. The caller
/// stores the result in the call's row in place of the operation, with the continuation
/// value: a result that does not fit there ends the call with [`CallError::TooLarge`] too.
pub const MAX_REPLY_BYTES: usize = 2_000_000;

/// The room kept in each row of lumenize-call for everything but the operation, the
/// continuation value, the target and the result: the call id, dispatch, times, counters,
/// the last transient error (at most [`MAX_ERROR_BYTES`]) and SQLite's record header.
pub const ROW_RESERVE_BYTES: usize = 16 * 1024;

/// Error texts that lumenize-call stores from what it was answered (a refusal's body, a
/// failed fetch, a 5xx body) are cut to this many bytes.
pub const MAX_ERROR_BYTES: usize = lumenize_alarms::MAX_ERROR_BYTES;

/// The longest key lumenize-call stores, in bytes: a call id, the origin's id, the target's
/// binding and its name or hex id. [`Calls::call`](crate::Calls::call) refuses a longer
/// target with [`Error::KeyTooLong`](crate::Error::KeyTooLong), and a remote refuses a
/// request whose call id, origin or target is longer with 400
/// ([`Refusal::KeyTooLong`](crate::envelope::Refusal::KeyTooLong)), before anything is
/// stored. Call ids are UUIDs (36 bytes) and object ids 64 hex digits: 512 leaves room for
/// any name a binding or an object would sensibly have, and keeps a key far below what a
/// row holds.
pub const MAX_KEY_BYTES: usize = 512;

/// The longest timeout a call keeps, in ms: 23 h 5 min, the send horizon
/// ([`send_horizon_ms`]: [`MAX_REQUEST_AGE_MS`] plus [`MAX_CLOCK_SKEW_MS`]). Every call
/// ends by then anyway (with [`CallError::Expired`] if nothing else ended it), so a longer
/// timeout could never fire: it is clamped to this (see [`call_times`]). A timeout of
/// `Duration::MAX` reads as "as long as a call can live", and its deadline stays an integer
/// the store gives back (a deadline of 2^53 ms or more would be stored as a float).
pub const MAX_TIMEOUT_MS: i64 = MAX_REQUEST_AGE_MS + MAX_CLOCK_SKEW_MS;

const _: () = assert!(MAX_REPLY_BYTES + ROW_RESERVE_BYTES <= SQLITE_MAX_BYTES);
const _: () = assert!(MAX_OPERATION_BYTES + ROW_RESERVE_BYTES <= SQLITE_MAX_BYTES);
const _: () = assert!(MAX_CONTINUATION_BYTES + ROW_RESERVE_BYTES <= SQLITE_MAX_BYTES);
const _: () = assert!(MAX_ERROR_BYTES * 2 < ROW_RESERVE_BYTES);

/// The result a continuation receives.
pub type CallResult = Result<Value, CallError>;

/// What does not fit, by how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversize {
    /// What it is ("the operation", ...).
    pub what: &'static str,
    /// Its size, as JSON.
    pub bytes: usize,
    /// The most that fits.
    pub limit: usize,
}

/// A number outside its accepted range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange {
    /// What it is ("the issue time", ...).
    pub what: &'static str,
    /// The value given (or computed).
    pub value: i64,
    /// The smallest accepted.
    pub min: i64,
    /// The largest accepted.
    pub max: i64,
}

/// The times a new call stores, made at `now_ms` with the test hook's issue time
/// `issued_ms` (`None`: now) and `timeout`: its issue time and its deadline.
///
/// - The issue time must be in `0 ..=` [`MAX_TIME_MS`] (lumenize-alarms' range: what the
///   runtime can arm). It is signed into every request of the call and stored.
/// - The timeout is clamped to [`MAX_TIMEOUT_MS`] (any `Duration`, `Duration::MAX`
///   included, is accepted; below a millisecond counts as 0: the call times out at once),
///   and the deadline, `now_ms` plus that, must be in the same range (it is not only
///   when the clock itself is within 23 h of 2262-04-11).
///
/// # Errors
/// [`OutOfRange`] for the issue time, `now_ms` or the deadline; nothing is stored then.
///
/// ```
/// use std::time::Duration;
/// use lumenize_call::machine::{call_times, MAX_TIMEOUT_MS};
/// let now = 1_800_000_000_000;
/// assert_eq!(call_times(now, None, None), Ok((now, None)));
/// assert_eq!(call_times(now, Some(5), Some(Duration::from_secs(1))), Ok((5, Some(now + 1_000))));
/// assert_eq!(call_times(now, None, Some(Duration::MAX)), Ok((now, Some(now + MAX_TIMEOUT_MS))));
/// assert!(call_times(now, Some(i64::MAX), None).is_err());
/// assert!(call_times(now, Some(-1), None).is_err());
/// ```
pub fn call_times(now_ms: i64, issued_ms: Option<i64>, timeout: Option<Duration>) -> Result<(i64, Option<i64>), OutOfRange> {
    // lumenize-alarms' range check, with what was out of range named.
    let in_range = |what: &'static str, value: i64| check_time(value).map_err(|_| OutOfRange { what, value, min: 0, max: MAX_TIME_MS });
    let now = in_range("the clock (Unix ms)", now_ms)?;
    let issued = in_range("the issue time (CallOptions::issued_at, Unix ms)", issued_ms.unwrap_or(now))?;
    let deadline = match timeout {
        None => None,
        Some(t) => {
            let ms = i64::try_from(t.as_millis()).unwrap_or(i64::MAX).min(MAX_TIMEOUT_MS);
            Some(in_range("the deadline (now + CallOptions::timeout, Unix ms)", now.saturating_add(ms))?)
        }
    };
    Ok((issued, deadline))
}

/// Whether `key` (`what`: "the call id", ...) is at most [`MAX_KEY_BYTES`] long.
///
/// # Errors
/// [`Oversize`] with its length.
pub fn check_key(what: &'static str, key: &str) -> Result<(), Oversize> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Oversize { what, bytes: key.len(), limit: MAX_KEY_BYTES });
    }
    Ok(())
}

/// Whether a call whose operation, continuation value and target take these many bytes of
/// JSON can be stored.
///
/// # Errors
/// What is too large: the operation (over [`MAX_OPERATION_BYTES`]), the continuation value
/// (over [`MAX_CONTINUATION_BYTES`]), or the three together (over a row).
///
/// ```
/// use lumenize_call::machine::{check_call_size, MAX_OPERATION_BYTES};
/// assert!(check_call_size(MAX_OPERATION_BYTES, 10, 30).is_ok());
/// assert_eq!(check_call_size(MAX_OPERATION_BYTES + 1, 10, 30).unwrap_err().what, "the operation");
/// assert!(check_call_size(1_200_000, 1_200_000, 30).is_err());
/// ```
pub fn check_call_size(op_bytes: usize, resume_bytes: usize, target_bytes: usize) -> Result<(), Oversize> {
    if op_bytes > MAX_OPERATION_BYTES {
        return Err(Oversize { what: "the operation", bytes: op_bytes, limit: MAX_OPERATION_BYTES });
    }
    if resume_bytes > MAX_CONTINUATION_BYTES {
        return Err(Oversize { what: "the continuation value", bytes: resume_bytes, limit: MAX_CONTINUATION_BYTES });
    }
    let row = op_bytes.saturating_add(resume_bytes).saturating_add(target_bytes);
    let limit = SQLITE_MAX_BYTES - ROW_RESERVE_BYTES;
    if row > limit {
        return Err(Oversize { what: "the operation, continuation value and target together", bytes: row, limit });
    }
    Ok(())
}

/// The size of `value` as JSON, as lumenize-call stores it (`usize::MAX` if it does not
/// encode: it does not fit anywhere then).
pub(crate) fn json_len(value: &impl Serialize) -> usize {
    serde_json::to_string(value).map_or(usize::MAX, |text| text.len())
}

/// The outcome a remote stores and answers for an operation's `outcome`: itself, or
/// [`Outcome::TooLarge`] if its JSON is over [`MAX_REPLY_BYTES`].
#[must_use]
pub fn storable_outcome(outcome: Outcome) -> Outcome {
    let bytes = json_len(&outcome);
    if bytes > MAX_REPLY_BYTES {
        return Outcome::TooLarge { bytes: bytes as u64, limit: MAX_REPLY_BYTES as u64 };
    }
    outcome
}

/// What a remote stores in place of an outcome it failed to store (a small outcome, so a
/// re-dispatch is answered from it and the operation is never applied twice).
#[must_use]
pub fn unstored_outcome(error: impl Into<String>) -> Outcome {
    Outcome::Unstored { message: clip(error.into()) }
}

/// The result a caller stores for a call whose continuation value and target take
/// `row_bytes` of JSON: `result` itself, or [`CallError::TooLarge`] if the row would not
/// fit in SQLite.
///
/// ```
/// use lumenize_call::machine::{storable_result, SQLITE_MAX_BYTES};
/// use lumenize_call::CallError;
/// use serde_json::json;
/// let reply = json!("x".repeat(1_200_000));
/// assert_eq!(storable_result(Ok(reply.clone()), 100), Ok(reply.clone()));
/// assert!(matches!(storable_result(Ok(reply), 1_200_000), Err(CallError::TooLarge { .. })));
/// ```
pub fn storable_result(result: CallResult, row_bytes: usize) -> CallResult {
    let bytes = json_len(&result);
    let limit = (SQLITE_MAX_BYTES - ROW_RESERVE_BYTES).saturating_sub(row_bytes);
    if bytes > limit {
        return Err(CallError::TooLarge { bytes: bytes as u64, limit: limit as u64 });
    }
    result
}

/// What a caller stores in place of a result it failed to store.
pub fn unstored_result(error: impl Into<String>) -> CallResult {
    Err(CallError::Storage { message: clip(error.into()) })
}

/// `value` tagged with `name`, as an operation travels and a continuation value is stored:
/// `{"<name>": <value>}` (serde's externally tagged form).
#[must_use]
pub fn tag(name: &str, value: Value) -> Value {
    let mut object = serde_json::Map::with_capacity(1);
    object.insert(name.to_owned(), value);
    Value::Object(object)
}

/// The name and value of a tagged value ([`tag`]), or `None` if it is not an object with
/// exactly one key.
#[must_use]
pub fn untag(value: Value) -> Option<(String, Value)> {
    match value {
        Value::Object(object) if object.len() == 1 => object.into_iter().next(),
        _ => None,
    }
}

pub use lumenize_alarms::core::clip;

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
    /// Send the call, and fire again at `backstop_ms` in case no result comes back.
    Dispatch {
        /// When to look again.
        backstop_ms: i64,
    },
    /// A send of the call is still in flight in this isolate: do not send it again; fire
    /// again at `backstop_ms` (see [`in_flight_wait_ms`]).
    Wait {
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

/// How long a backstop waits before it looks again at a call whose send has been in flight
/// for `in_flight_ms`: twice that, at least [`FIRST_RETRY_DELAY_MS`] and at most
/// [`MAX_RETRY_DELAY_MS`]. A slow operation is looked at a few times, not every second;
/// a send lost with its isolate (which takes the in-flight mark with it) is sent again
/// within a minute.
///
/// ```
/// use lumenize_call::machine::in_flight_wait_ms;
/// assert_eq!(in_flight_wait_ms(0), 1_000);
/// assert_eq!(in_flight_wait_ms(1_000), 2_000);
/// assert_eq!(in_flight_wait_ms(9_000), 18_000);
/// assert_eq!(in_flight_wait_ms(3_600_000), 60_000);
/// ```
#[must_use]
pub fn in_flight_wait_ms(in_flight_ms: i64) -> i64 {
    in_flight_ms.saturating_mul(2).clamp(FIRST_RETRY_DELAY_MS, MAX_RETRY_DELAY_MS)
}

/// When the backstop of a call should fire next: after the retry delay, or at its deadline
/// if that comes first.
#[must_use]
pub fn backstop_at(now_ms: i64, failures: u32, deadline_ms: Option<i64>) -> i64 {
    not_after(now_ms.saturating_add(retry_delay_ms(failures)), deadline_ms)
}

fn not_after(at_ms: i64, deadline_ms: Option<i64>) -> i64 {
    deadline_ms.map_or(at_ms, |d| at_ms.min(d))
}

/// What the backstop task of `call` does at `now_ms`; `sending_since` is when the send of
/// it in flight in this isolate started, if one is.
///
/// A stored result, the deadline, the send horizon and the last transient failure end the
/// call, in that order, whether or not a send is in flight. Otherwise the call is sent,
/// unless a send is in flight: then the backstop waits ([`Step::Wait`]) for a time that
/// grows with how long the send has been out ([`in_flight_wait_ms`]).
#[must_use]
pub fn on_backstop(call: &Pending, now_ms: i64, sending_since: Option<i64>) -> Step {
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
    match sending_since {
        Some(since) => {
            let wait = in_flight_wait_ms(now_ms.saturating_sub(since));
            Step::Wait { backstop_ms: not_after(now_ms.saturating_add(wait), call.deadline_ms) }
        }
        None => Step::Dispatch { backstop_ms: backstop_at(now_ms, call.failures, call.deadline_ms) },
    }
}

/// The result a call's continuation gets at `now_ms`, given the result stored with the call
/// (if an earlier delivery of it failed) and `incoming`, one just in: the first result
/// counts; once the call's deadline has passed, nothing that comes in counts but
/// [`CallError::Timeout`] (a reply that arrives after the deadline, before the backstop
/// that times the call out has run, is a late reply too); and a result that would not fit
/// in the caller's row next to the continuation value and the target (`row_bytes` of JSON)
/// is [`CallError::TooLarge`] (see [`storable_result`]), so that a retried continuation gets
/// the same result as the first attempt.
///
/// ```
/// use lumenize_call::machine::first_result;
/// use lumenize_call::CallError;
/// use serde_json::json;
/// assert_eq!(first_result(None, Ok(json!(1)), 10, Some(5), 4), Ok(json!(1)));
/// assert_eq!(first_result(None, Ok(json!(1)), 10, Some(5), 5), Err(CallError::Timeout));
/// assert_eq!(first_result(Some(Err(CallError::Timeout)), Ok(json!(1)), 10, None, 4), Err(CallError::Timeout));
/// ```
pub fn first_result(stored: Option<CallResult>, incoming: CallResult, row_bytes: usize, deadline_ms: Option<i64>, now_ms: i64) -> CallResult {
    stored.unwrap_or_else(|| {
        if deadline_ms.is_some_and(|d| d <= now_ms) {
            Err(CallError::Timeout)
        } else {
            storable_result(incoming, row_bytes)
        }
    })
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

/// Reads the remote's HTTP answer to call `id`. Texts taken from the answer are cut to
/// [`MAX_ERROR_BYTES`].
#[must_use]
pub fn read_answer(id: &str, status: u16, body: &str) -> Answer {
    let text = || clip(body.to_owned());
    match status {
        200 => match serde_json::from_str::<CallReply>(body) {
            Ok(reply) if reply.v == VERSION && reply.id == id => Answer::Done(match reply.outcome {
                Outcome::Ok(value) => Ok(value),
                Outcome::Err { message, panicked } => Err(CallError::Remote { message, panicked }),
                Outcome::TooLarge { bytes, limit } => Err(CallError::TooLarge { bytes, limit }),
                Outcome::Unstored { message } => Err(CallError::Storage { message: clip(message) }),
            }),
            Ok(reply) => Answer::Done(Err(CallError::Rejected {
                status,
                message: clip(format!("a reply for call {} (version {}), not {id}", reply.id, reply.v)),
            })),
            Err(e) => Answer::Done(Err(CallError::Rejected { status, message: clip(format!("not a call reply: {e}")) })),
        },
        409 => Answer::Busy,
        EXPIRED_STATUS => Answer::Done(Err(CallError::Expired { message: text() })),
        400..=499 => Answer::Done(Err(CallError::Rejected { status, message: text() })),
        _ => Answer::Failed(clip(format!("HTTP {status}: {body}"))),
    }
}

/// After a transient failure (`error`, cut to [`MAX_ERROR_BYTES`]): the call's new state,
/// and the result to deliver if it was the last attempt.
#[must_use]
pub fn after_failure(call: &Pending, error: String) -> (Pending, Option<CallResult>) {
    let next = Pending { failures: call.failures.saturating_add(1), last_error: Some(clip(error)), ..call.clone() };
    let give_up = next.failures >= MAX_TRANSPORT_ATTEMPTS;
    let result = give_up.then(|| Err(transport_error(&next)));
    (next, result)
}

/// How far the remote got with a call id.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// Started, no outcome yet.
    Running,
    /// Applied, with this outcome.
    Done(Outcome),
}

/// What the remote has stored for a call id: the origin that made the call (the signed
/// `from` of its first request) and how far it got. A record written before origins were
/// stored (schema version 1) has the origin [`ANY_ORIGIN`].
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The origin's id, as hex.
    pub origin: String,
    /// How far it got.
    pub seen: Seen,
}

/// The origin of a record stored before origins were (schema version 1, migrated on open):
/// it answers a request from any origin, as it did then, until it is forgotten with the
/// other results a day after it was stored.
pub const ANY_ORIGIN: &str = "";

/// What the remote does with a request for a call id.
#[derive(Debug, Clone, PartialEq)]
pub enum Serve {
    /// Nothing is stored for the id and this isolate is not applying it: the first time
    /// (the server stores its row, then applies it).
    Apply,
    /// Answer with the stored outcome (a re-dispatch): never apply twice.
    Replay(Outcome),
    /// It is being applied in this isolate right now: answer 409, the caller looks later.
    Busy,
    /// It was being applied when the remote was reset: store and answer [`INTERRUPTED`].
    Interrupted,
    /// Another origin made a call with this id: refuse ([`OTHER_ORIGIN_STATUS`]); its
    /// result goes back only to that origin, and the request is not applied.
    OtherOrigin,
}

/// The status a remote refuses a request with when its call id belongs to another origin
/// ([`Serve::OtherOrigin`]): 403. Call ids are UUIDv7s, so no two origins' calls share
/// one: a request that reuses one was forged by a holder of the secret, or is a bug.
pub const OTHER_ORIGIN_STATUS: u16 = 403;

/// How the remote treats a request from origin `from`, given what it stored for the call id
/// and whether this isolate is applying that id right now. A stored result goes back only
/// to the origin that made the call.
#[must_use]
pub fn serve(record: Option<Record>, from: &str, applying_here: bool) -> Serve {
    let Some(Record { origin, seen }) = record else {
        // Applying it, with its row gone (forgotten by a handler running for over a day):
        // applying it again would apply it twice.
        return if applying_here { Serve::Busy } else { Serve::Apply };
    };
    if origin != from && origin != ANY_ORIGIN {
        return Serve::OtherOrigin;
    }
    match seen {
        Seen::Done(outcome) => Serve::Replay(outcome),
        Seen::Running if applying_here => Serve::Busy,
        Seen::Running => Serve::Interrupted,
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
        assert_eq!(on_backstop(&call, 100, None), Step::Deliver(Ok(json!(1))));
    }

    #[test]
    fn the_deadline_times_out_and_caps_the_backstop() {
        let call = Pending { deadline_ms: Some(1_500), ..pending() };
        assert_eq!(on_backstop(&call, 1_000, None), Step::Dispatch { backstop_ms: 1_500 });
        assert_eq!(on_backstop(&call, 1_499, None), Step::Dispatch { backstop_ms: 1_500 });
        assert_eq!(on_backstop(&call, 1_500, None), Step::Deliver(Err(CallError::Timeout)));
        assert_eq!(on_backstop(&pending(), 1_000, None), Step::Dispatch { backstop_ms: 2_000 });
    }

    #[test]
    fn a_send_in_flight_is_not_sent_again_and_its_backstop_backs_off() {
        let call = pending();
        // Every second while no send is in flight.
        assert_eq!(on_backstop(&call, 10_000, None), Step::Dispatch { backstop_ms: 11_000 });
        // In flight: wait twice as long as it has been out, from one second up to a minute.
        assert_eq!(on_backstop(&call, 10_000, Some(10_000)), Step::Wait { backstop_ms: 11_000 });
        assert_eq!(on_backstop(&call, 10_000, Some(9_000)), Step::Wait { backstop_ms: 12_000 });
        assert_eq!(on_backstop(&call, 10_000, Some(7_000)), Step::Wait { backstop_ms: 16_000 });
        assert_eq!(on_backstop(&call, 10_000_000, Some(0)), Step::Wait { backstop_ms: 10_060_000 });
        // A start "after now" (another clock) waits the least, never less.
        assert_eq!(on_backstop(&call, 10_000, Some(50_000)), Step::Wait { backstop_ms: 11_000 });
        // So a send out since 0, looked at whenever the backstop fires, is looked at at
        // 1, 3, 9, 27, 81, 141, 201 s: seven times in 200 s instead of two hundred.
        let (mut now, mut times) = (1_000, vec![]);
        while now <= 201_000 {
            times.push(now / 1_000);
            let Step::Wait { backstop_ms } = on_backstop(&call, now, Some(0)) else { panic!("sent again at {now}") };
            now = backstop_ms;
        }
        assert_eq!(times, [1, 3, 9, 27, 81, 141, 201]);
        // The deadline still caps the wait, and still ends the call, in flight or not.
        let timed = Pending { deadline_ms: Some(12_500), ..pending() };
        assert_eq!(on_backstop(&timed, 10_000, Some(5_000)), Step::Wait { backstop_ms: 12_500 });
        assert_eq!(on_backstop(&timed, 12_500, Some(5_000)), Step::Deliver(Err(CallError::Timeout)));
        // A stored result is delivered, in flight or not.
        let done = Pending { result: Some(Ok(json!(3))), ..pending() };
        assert_eq!(on_backstop(&done, 10_000, Some(9_999)), Step::Deliver(Ok(json!(3))));
    }

    #[test]
    fn the_first_result_counts_and_is_cut_to_what_the_row_holds() {
        assert_eq!(first_result(None, Ok(json!(1)), 0, None, 0), Ok(json!(1)));
        assert_eq!(first_result(Some(Ok(json!(2))), Ok(json!(1)), 0, None, 0), Ok(json!(2)));
        assert_eq!(first_result(Some(Err(CallError::Cancelled)), Err(CallError::Timeout), 0, None, 0), Err(CallError::Cancelled));
        // Past the deadline, a reply (or a cancel) that beat the timing-out backstop is late.
        assert_eq!(first_result(None, Ok(json!(1)), 0, Some(10), 9), Ok(json!(1)));
        assert_eq!(first_result(None, Ok(json!(1)), 0, Some(10), 10), Err(CallError::Timeout));
        assert_eq!(first_result(None, Err(CallError::Cancelled), 0, Some(10), 11), Err(CallError::Timeout));
        assert_eq!(first_result(Some(Ok(json!(2))), Ok(json!(1)), 0, Some(10), 11), Ok(json!(2)), "a stored result still counts");
        let big = Ok(json!("x".repeat(1_200_000)));
        assert!(matches!(first_result(None, big.clone(), 1_200_000, None, 0), Err(CallError::TooLarge { .. })));
        assert_eq!(first_result(None, big.clone(), 10, None, 0), big);
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
                let Step::Dispatch { backstop_ms } = on_backstop(&call, 0, None) else { panic!("not dispatching") };
                delays.push(backstop_ms);
            } else {
                let err = Err(CallError::Transport { message: format!("boom {i}") });
                assert_eq!(result, Some(err.clone()));
                assert_eq!(on_backstop(&call, 0, None), Step::Deliver(err));
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
            CallError::TooLarge { bytes: 3, limit: 2 },
            CallError::Storage { message: "m".into() },
            CallError::BadReply { message: "m".into() },
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
        let too_large = r#"{"v":2,"id":"c","too_large":{"bytes":9,"limit":8}}"#;
        assert_eq!(read_answer("c", 200, too_large), Answer::Done(Err(CallError::TooLarge { bytes: 9, limit: 8 })));
        let unstored = r#"{"v":2,"id":"c","unstored":{"message":"disk"}}"#;
        assert_eq!(read_answer("c", 200, unstored), Answer::Done(Err(CallError::Storage { message: "disk".into() })));
        // A version-1 reply is not one of ours any more.
        let v1 = r#"{"v":1,"id":"c","ok":1}"#;
        assert!(matches!(read_answer("c", 200, v1), Answer::Done(Err(CallError::Rejected { .. }))));
    }

    #[test]
    fn texts_from_answers_are_cut_before_they_are_stored() {
        let huge = "x".repeat(10 * MAX_ERROR_BYTES);
        for status in [400, 401, 404, 410, 500, 503] {
            let len = match read_answer("c", status, &huge) {
                Answer::Done(Err(CallError::Rejected { message, .. } | CallError::Expired { message })) | Answer::Failed(message) => message.len(),
                other => panic!("{status}: {other:?}"),
            };
            assert!(len <= MAX_ERROR_BYTES, "{status}: {len}");
        }
        let (state, _) = after_failure(&pending(), huge.clone());
        assert!(state.last_error.unwrap().len() <= MAX_ERROR_BYTES);
        let Outcome::Unstored { message } = unstored_outcome(huge.clone()) else { panic!() };
        assert!(message.len() <= MAX_ERROR_BYTES);
        let Err(CallError::Storage { message }) = unstored_result(huge) else { panic!() };
        assert!(message.len() <= MAX_ERROR_BYTES);
    }

    #[test]
    fn a_call_past_its_send_horizon_ends_expired_without_a_dispatch() {
        let issued = 1_800_000_000_000;
        let call = Pending { issued_ms: issued, ..pending() };
        let horizon = send_horizon_ms(issued);
        assert_eq!(horizon, issued + MAX_REQUEST_AGE_MS + MAX_CLOCK_SKEW_MS);
        assert!(matches!(on_backstop(&call, horizon, None), Step::Dispatch { .. }));
        let Step::Deliver(Err(CallError::Expired { message })) = on_backstop(&call, horizon + 1, None) else { panic!("not expired") };
        assert!(message.contains("not sent again"), "{message}");
        // A stored result and a timeout come first.
        let done = Pending { result: Some(Ok(json!(1))), ..call.clone() };
        assert_eq!(on_backstop(&done, horizon + 1, None), Step::Deliver(Ok(json!(1))));
        let timed = Pending { deadline_ms: Some(issued + 5), ..call };
        assert_eq!(on_backstop(&timed, horizon + 1, None), Step::Deliver(Err(CallError::Timeout)));
        assert_eq!(send_horizon_ms(i64::MAX), i64::MAX);
    }

    #[test]
    fn calls_that_do_not_fit_in_a_row_are_refused_by_part() {
        assert_eq!(check_call_size(0, 0, 0), Ok(()));
        assert_eq!(check_call_size(MAX_OPERATION_BYTES, 0, 100), Ok(()));
        assert_eq!(check_call_size(0, MAX_CONTINUATION_BYTES, 100), Ok(()));
        let op = check_call_size(MAX_OPERATION_BYTES + 1, 0, 0).unwrap_err();
        assert_eq!(op, Oversize { what: "the operation", bytes: MAX_OPERATION_BYTES + 1, limit: MAX_OPERATION_BYTES });
        assert_eq!(check_call_size(0, MAX_CONTINUATION_BYTES + 1, 0).unwrap_err().what, "the continuation value");
        let both = check_call_size(1_200_000, 1_200_000, 10).unwrap_err();
        assert_eq!((both.bytes, both.limit), (2_400_010, SQLITE_MAX_BYTES - ROW_RESERVE_BYTES));
        assert!(check_call_size(0, 0, usize::MAX).is_err(), "a huge target");
    }

    #[test]
    fn outcomes_over_the_reply_limit_are_stored_as_too_large() {
        let fits = Outcome::Ok(json!("x".repeat(MAX_REPLY_BYTES - 10)));
        assert_eq!(storable_outcome(fits.clone()), fits);
        let over = Outcome::Ok(json!("x".repeat(MAX_REPLY_BYTES)));
        let bytes = serde_json::to_string(&over).unwrap().len() as u64;
        assert_eq!(storable_outcome(over), Outcome::TooLarge { bytes, limit: MAX_REPLY_BYTES as u64 });
        let long_error = Outcome::Err { message: "e".repeat(MAX_REPLY_BYTES), panicked: false };
        assert!(matches!(storable_outcome(long_error), Outcome::TooLarge { .. }));
        // What is stored in its place is small, and so is its answer.
        assert!(serde_json::to_string(&Outcome::TooLarge { bytes: u64::MAX, limit: u64::MAX }).unwrap().len() < 100);
    }

    #[test]
    fn a_result_that_would_overflow_the_callers_row_becomes_too_large() {
        let reply = json!("x".repeat(1_200_000));
        assert_eq!(storable_result(Ok(reply.clone()), 1_000), Ok(reply.clone()));
        let Err(CallError::TooLarge { bytes, limit }) = storable_result(Ok(reply.clone()), 1_200_000) else { panic!() };
        assert_eq!(bytes, serde_json::to_string(&Ok::<_, CallError>(reply)).unwrap().len() as u64);
        assert_eq!(limit as usize, SQLITE_MAX_BYTES - ROW_RESERVE_BYTES - 1_200_000);
        // The error stored in its place fits even next to the largest continuation value.
        let small = storable_result(Err(CallError::TooLarge { bytes, limit }), MAX_CONTINUATION_BYTES);
        assert!(matches!(small, Err(CallError::TooLarge { .. })));
        assert!(matches!(storable_result(Err(CallError::Cancelled), usize::MAX), Err(CallError::TooLarge { limit: 0, .. })));
    }

    #[test]
    fn clip_cuts_on_character_boundaries() {
        for len in [MAX_ERROR_BYTES - 1, MAX_ERROR_BYTES, MAX_ERROR_BYTES + 1, 3 * MAX_ERROR_BYTES] {
            for unit in ["a", "é", "€", "😀"] {
                let text = unit.repeat(len / unit.len());
                let cut = clip(text.clone());
                if text.len() <= MAX_ERROR_BYTES {
                    assert_eq!(cut, text);
                } else {
                    assert!(cut.len() <= MAX_ERROR_BYTES, "{len} {unit}: {}", cut.len());
                    assert!(text.starts_with(cut.split('…').next().unwrap()), "{len} {unit}");
                }
            }
        }
    }

    #[test]
    fn a_remote_applies_each_id_at_most_once() {
        let done = Outcome::Ok(json!(2));
        let by = |origin: &str, seen: Seen| Some(Record { origin: origin.into(), seen });
        assert_eq!(serve(None, "a", false), Serve::Apply);
        assert_eq!(serve(None, "a", true), Serve::Busy, "a call being applied is never applied again");
        assert_eq!(serve(by("a", Seen::Done(done.clone())), "a", false), Serve::Replay(done.clone()));
        assert_eq!(serve(by("a", Seen::Done(done.clone())), "a", true), Serve::Replay(done.clone()));
        assert_eq!(serve(by("a", Seen::Running), "a", true), Serve::Busy);
        assert_eq!(serve(by("a", Seen::Running), "a", false), Serve::Interrupted);
        // A record written before origins were stored answers any origin, as it did then.
        assert_eq!(serve(by(ANY_ORIGIN, Seen::Done(done.clone())), "b", false), Serve::Replay(done));
    }

    #[test]
    fn a_stored_result_goes_back_only_to_the_origin_that_made_the_call() {
        let done = Outcome::Ok(json!("a's secret"));
        let by_a = |seen: Seen| Some(Record { origin: "a".into(), seen });
        // Neither answered with a's result, nor applied, nor told to wait, nor interrupted.
        for (seen, applying) in [(Seen::Done(done), false), (Seen::Running, true), (Seen::Running, false)] {
            assert_eq!(serve(by_a(seen), "b", applying), Serve::OtherOrigin);
        }
        assert_eq!(serve(by_a(Seen::Running), "", false), Serve::OtherOrigin, "an empty origin is not a wildcard in a request");
    }

    #[test]
    fn call_times_are_refused_or_clamped_into_the_range() {
        let now = 1_800_000_000_000;
        let max = Some(now + MAX_TIMEOUT_MS);
        // Timeouts: any Duration, clamped; the deadline is always an integer in range.
        for (timeout, deadline) in [
            (Duration::ZERO, Some(now)),
            (Duration::from_nanos(999_999), Some(now)),
            (Duration::from_millis(1), Some(now + 1)),
            (Duration::from_millis(MAX_TIMEOUT_MS as u64), max),
            (Duration::from_millis(MAX_TIMEOUT_MS as u64 + 1), max),
            (Duration::from_millis(1 << 53), max),
            (Duration::from_millis(u64::MAX), max),
            (Duration::MAX, max),
        ] {
            assert_eq!(call_times(now, None, Some(timeout)), Ok((now, deadline)), "{timeout:?}");
        }
        // Issue times: 0 ..= MAX_TIME_MS, else refused.
        for issued in [0, 1, now, MAX_TIME_MS] {
            assert_eq!(call_times(now, Some(issued), None), Ok((issued, None)));
        }
        for issued in [i64::MIN, -1, MAX_TIME_MS + 1, 1 << 53, i64::MAX] {
            let err = call_times(now, Some(issued), None).unwrap_err();
            assert_eq!((err.value, err.min, err.max), (issued, 0, MAX_TIME_MS), "{issued}");
            assert!(err.what.contains("issue time"), "{err:?}");
        }
        // A clock within a timeout of the end of the range: the deadline is refused.
        assert_eq!(call_times(MAX_TIME_MS, None, Some(Duration::ZERO)), Ok((MAX_TIME_MS, Some(MAX_TIME_MS))));
        assert!(call_times(MAX_TIME_MS, None, Some(Duration::from_millis(1))).unwrap_err().what.contains("deadline"));
        assert!(call_times(-5, None, None).unwrap_err().what.contains("clock"));
    }

    #[test]
    fn keys_over_the_limit_are_refused() {
        assert_eq!(check_key("the call id", &"k".repeat(MAX_KEY_BYTES)), Ok(()));
        let err = check_key("the call id", &"é".repeat(MAX_KEY_BYTES)).unwrap_err();
        assert_eq!(err, Oversize { what: "the call id", bytes: 2 * MAX_KEY_BYTES, limit: MAX_KEY_BYTES });
    }

    #[test]
    fn failures_counted_from_any_stored_count_do_not_overflow() {
        let (next, give_up) = after_failure(&Pending { failures: u32::MAX, ..pending() }, "e".into());
        assert_eq!(next.failures, u32::MAX);
        assert!(give_up.is_some());
    }
}
