//! Issue 18, item 4: lumenize-call's pure core with arbitrary values for every input the
//! public surface reaches it with, extremes drawn with high probability: timeouts of any
//! `Duration` (`Duration::MAX` included), issue times from `i64::MIN` to `i64::MAX`,
//! failure counts up to `u32::MAX`, ids, origins and bodies of any size and any unicode,
//! signatures of any text, answers of any status and body. Every function returns a value
//! or a typed refusal, never panics or overflows, and every number the adapter would store
//! from it (an issue time, a deadline, the time a backstop task is deferred to) is an
//! integer within `0 ..= MAX_TIME_MS`: a Durable Object's SQLite gives back exactly the
//! integers below 2^53, and lumenize-alarms arms nothing past `MAX_TIME_MS`.
//!
//! The clock is the runtime's, never a user's value: it is drawn from `0 ..= MAX_TIME_MS`
//! less a day (a backstop looks again up to a minute ahead).
//!
//! 256 cases per property by default, 64 where values of megabytes are drawn
//! (`PROPTEST_CASES` to change both).
#![cfg(not(target_arch = "wasm32"))]

#[path = "../../lumenize-alarms/tests/support/mod.rs"]
mod support;

/// The extremes of lumenize-alarms' own suite: the same values a user can pass (its
/// `timezone` feature is that crate's, unknown here).
#[allow(dead_code, unreachable_pub, unexpected_cfgs)]
#[path = "../../lumenize-alarms/tests/extremes/values.rs"]
mod values;

use lumenize_alarms::core::MAX_TIME_MS;
use lumenize_call::envelope::{parse_request, MAX_CLOCK_SKEW_MS, MAX_REQUEST_AGE_MS, sign, signed_request, CallRequest, Outcome, Recipient, Refusal, Secrets, VERSION};
use lumenize_call::machine::{
    after_failure, backstop_at, check_call_size, clip, first_result, in_flight_wait_ms, read_answer, retry_delay_ms, send_horizon_ms, storable_outcome,
    storable_result, call_times, Answer, CallResult, OutOfRange, Pending, Step, MAX_ERROR_BYTES,
};
use lumenize_call::{CallError, MAX_KEY_BYTES, MAX_TIMEOUT_MS, MAX_TRANSPORT_ATTEMPTS};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;
use serde_json::{json, Value};
use values::{any_i64, duration, TWO_53};

const DAY_MS: i64 = 86_400_000;

/// `cases` cases, or `PROPTEST_CASES` when set.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(cases);
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// The runtime's clock.
fn clock() -> impl Strategy<Value = i64> {
    prop_oneof![3 => Just(1_800_000_000_000), 1 => select(vec![0, 1, MAX_TIME_MS - DAY_MS]), 1 => 0..=MAX_TIME_MS - DAY_MS]
}

fn any_u32() -> impl Strategy<Value = u32> {
    prop_oneof![3 => select(vec![0, 1, MAX_TRANSPORT_ATTEMPTS - 1, MAX_TRANSPORT_ATTEMPTS, MAX_TRANSPORT_ATTEMPTS + 1, 31, 32, 64, u32::MAX - 1, u32::MAX]), 1 => any::<u32>()]
}

fn any_usize() -> impl Strategy<Value = usize> {
    prop_oneof![3 => select(vec![0, 1, 2_000_000, 2_183_616, 2_200_000, usize::MAX / 2, usize::MAX - 1, usize::MAX]), 1 => any::<usize>()]
}

/// A value whose `Debug` is cut to its first 80 characters (with its length), so a failing
/// case with a 2.5 MB string still prints readably.
#[derive(Clone)]
struct Short<T>(T);

impl<T: std::fmt::Debug> std::fmt::Debug for Short<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let full = format!("{:?}", self.0);
        match full.char_indices().nth(80) {
            Some((cut, _)) => write!(f, "{}... ({} bytes of Debug)", &full[..cut], full.len()),
            None => f.write_str(&full),
        }
    }
}

fn short<S: Strategy>(strategy: S) -> impl Strategy<Value = Short<S::Value>>
where
    S::Value: std::fmt::Debug,
{
    strategy.prop_map(Short)
}

/// Text of any size and any unicode: empty, the key limit and one past it, 2.5 MB.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "\\PC{0,16}",
        3 => select(vec!["", "\0", "c", "é", "🦀", "\u{202e}", "\"", "\\"]).prop_map(String::from),
        2 => select(vec![MAX_KEY_BYTES, MAX_KEY_BYTES + 1, 100_000]).prop_map(|n| "k".repeat(n)),
        2 => select(vec![MAX_KEY_BYTES / 2, MAX_KEY_BYTES / 2 + 1]).prop_map(|n| "é".repeat(n)),
        1 => Just("x".repeat(2_500_000)),
    ]
}

/// JSON values with numbers a double does not hold, deep nesting and big strings.
fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => select(vec![json!(null), json!(u64::MAX), json!(i64::MIN), json!(TWO_53 + 1), json!(f64::MAX), json!(-0.0), json!(""), json!({"a": [1, {"b": null}]})]),
        3 => "\\PC{0,16}".prop_map(Value::String),
        1 => Just(json!("x".repeat(2_100_000))),
    ]
}

fn call_error() -> impl Strategy<Value = CallError> {
    prop_oneof![
        Just(CallError::Timeout),
        Just(CallError::Cancelled),
        text().prop_map(|message| CallError::Transport { message }),
        (any::<u16>(), text()).prop_map(|(status, message)| CallError::Rejected { status, message }),
        (any::<u64>(), any::<u64>()).prop_map(|(bytes, limit)| CallError::TooLarge { bytes, limit }),
        (text(), any::<bool>()).prop_map(|(message, panicked)| CallError::Remote { message, panicked }),
    ]
}

fn call_result() -> impl Strategy<Value = CallResult> {
    prop_oneof![json_value().prop_map(Ok), call_error().prop_map(Err)]
}

fn in_range(what: &str, ms: i64) -> Result<(), TestCaseError> {
    prop_assert!((0..=MAX_TIME_MS).contains(&ms), "{} is {} ms, outside 0 ..= MAX_TIME_MS", what, ms);
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    /// A call made with any options (at any clock) stores an issue time and a deadline in
    /// range, the deadline at most `MAX_TIMEOUT_MS` ahead, or is refused with the number
    /// that is out of range.
    #[test]
    fn call_times_are_stored_in_range(
        now in prop_oneof![3 => clock(), 1 => any_i64()],
        issued in prop::option::weighted(0.5, any_i64()),
        timeout in prop::option::weighted(0.7, duration()),
    ) {
        match call_times(now, issued, timeout) {
            Ok((issued_ms, deadline_ms)) => {
                in_range("the clock", now)?;
                in_range("the issue time", issued_ms)?;
                prop_assert_eq!(issued_ms, issued.unwrap_or(now));
                if let Some(d) = deadline_ms {
                    in_range("the deadline", d)?;
                    prop_assert!((now..=now + MAX_TIMEOUT_MS).contains(&d), "deadline {} for a call made at {}", d, now);
                }
                prop_assert_eq!(deadline_ms.is_some(), timeout.is_some());
            }
            Err(OutOfRange { what, value, min, max }) => {
                prop_assert_eq!((min, max), (0, MAX_TIME_MS));
                prop_assert!(!(min..=max).contains(&value), "{} {} refused, but in range", what, value);
            }
        }
    }

    /// Every backstop of a stored call (times in range), at any later time, with any
    /// failure count, in flight or not, defers its task to a time in range, after now.
    #[test]
    fn backstops_defer_to_times_in_range(
        now in clock(),
        issued in prop_oneof![Just(0), 0..=MAX_TIME_MS],
        timeout in prop::option::weighted(0.7, prop_oneof![Just(0), 0..=MAX_TIME_MS]),
        later in prop_oneof![0i64..120_000, 0..3 * DAY_MS, Just(DAY_MS - 1)],
        failures in any_u32(),
        in_flight in prop::option::weighted(0.4, prop_oneof![any_i64(), 0i64..120_000]),
        result in short(prop::option::weighted(0.2, call_result())),
    ) {
        let result = result.0;
        let deadline_ms = timeout.map(|t| now.saturating_add(t).min(MAX_TIME_MS));
        let issued_ms = issued.min(now + MAX_CLOCK_SKEW_MS);
        let call = Pending { issued_ms, deadline_ms, failures, last_error: None, result };
        let at = now + later;
        let sending_since = in_flight.map(|d| at.saturating_sub(d));
        match lumenize_call::machine::on_backstop(&call, at, sending_since) {
            Step::Deliver(_) => {}
            Step::Dispatch { backstop_ms } | Step::Wait { backstop_ms } => {
                in_range("the backstop", backstop_ms)?;
                prop_assert!(backstop_ms > at, "the backstop {} is not after now {}", backstop_ms, at);
            }
        }
        let backstop = backstop_at(at, failures, deadline_ms);
        prop_assert!(backstop > at || deadline_ms.is_some_and(|d| d <= at), "backstop_at {} at {}", backstop, at);
        let delay = retry_delay_ms(failures);
        prop_assert!((1_000..=60_000).contains(&delay), "retry delay {}", delay);
        let wait = in_flight_wait_ms(sending_since.map_or(0, |s| at.saturating_sub(s)));
        prop_assert!((1_000..=60_000).contains(&wait), "in-flight wait {}", wait);
        prop_assert!(send_horizon_ms(issued_ms) >= issued_ms);
    }

    /// A transient failure counts from any stored count, never overflows, and keeps a
    /// bounded error.
    #[test]
    fn failures_count_from_any_stored_count(failures in any_u32(), error in short(text())) {
        let error = error.0;
        let call = Pending { issued_ms: 0, deadline_ms: None, failures, last_error: None, result: None };
        let (next, give_up) = after_failure(&call, error);
        prop_assert!(next.failures >= call.failures);
        prop_assert!(next.last_error.as_ref().is_some_and(|e| e.len() <= MAX_ERROR_BYTES));
        prop_assert_eq!(give_up.is_some(), next.failures >= MAX_TRANSPORT_ATTEMPTS);
    }

}

proptest! {
    // Values of megabytes: fewer cases.
    #![proptest_config(config(64))]

    /// The first result counts and what is stored of it fits the caller's row, whatever the
    /// sizes; outcomes are stored as themselves or as a small `TooLarge`.
    #[test]
    fn results_and_outcomes_fit_or_become_typed_errors(
        stored in short(prop::option::weighted(0.3, call_result())),
        incoming in short(call_result()),
        row_bytes in any_usize(),
        deadline in prop::option::weighted(0.5, any_i64()),
        now in clock(),
        sizes in (any_usize(), any_usize(), any_usize()),
        message in short(text()),
    ) {
        let (stored, incoming, message) = (stored.0, incoming.0, message.0);
        let result = first_result(stored.clone(), incoming.clone(), row_bytes, deadline, now);
        if stored.is_none() {
            let stored_size = serde_json::to_string(&result).map(|s| s.len()).unwrap_or(usize::MAX);
            prop_assert!(stored_size <= (2_200_000 - 16 * 1024usize).saturating_sub(row_bytes) || matches!(result, Err(CallError::TooLarge { .. } | CallError::Timeout)), "{} bytes stored next to {}", stored_size, row_bytes);
        }
        let _ = storable_result(incoming, row_bytes);
        let _ = check_call_size(sizes.0, sizes.1, sizes.2);
        let outcome = storable_outcome(Outcome::Err { message: message.clone(), panicked: false });
        prop_assert!(serde_json::to_string(&outcome).unwrap().len() <= lumenize_call::MAX_REPLY_BYTES);
        prop_assert!(clip(message).len() <= MAX_ERROR_BYTES);
    }

    /// Any body, any signature header, at any clock: refused with a typed refusal (no panic),
    /// and only a correctly signed envelope is accepted.
    #[test]
    fn any_bytes_are_refused_or_parsed(
        body in short(prop_oneof![text(), json_value().prop_map(|v| v.to_string()), "\\{\"v\":2,\"id\":\"\\PC{0,8}\"\\}"]),
        signature in short(prop::option::of(prop_oneof![text(), "[0-9a-f]{64}", Just("é".repeat(32))])),
        sign_it in any::<bool>(),
        here in short(text()),
        now in any_i64(),
    ) {
        let (body, signature, here) = (body.0, signature.0, here.0);
        let secrets = Secrets::new("k");
        let signature = if sign_it { Some(sign("k", body.as_bytes())) } else { signature };
        match parse_request(&secrets, &body, signature.as_deref(), &here, now) {
            Ok(request) => prop_assert!(sign_it && request.to.object == here),
            Err(refusal) => prop_assert!((400..500).contains(&refusal.status())),
        }
    }

    /// A correctly signed request with any id, origin, target and issue time is accepted
    /// only if every key is within `MAX_KEY_BYTES` (the remote stores them: the call id and
    /// origin key its result) and it was issued within the accepted window of the remote's
    /// clock; a refusal is a 4xx with a short text.
    #[test]
    fn signed_requests_with_any_keys_and_times(
        id in short(text()),
        from in short(text()),
        binding in short(text()),
        here in short(prop_oneof![Just("aa11".to_owned()), text()]),
        issued in prop_oneof![3 => (-MAX_REQUEST_AGE_MS - 1..=MAX_CLOCK_SKEW_MS + 1).prop_map(Ok), 1 => any_i64().prop_map(Err)],
        now in clock(),
        op in short(json_value()),
    ) {
        let (id, from, binding, here, op) = (id.0, from.0, binding.0, here.0, op.0);
        // Relative to the remote's clock (within the window, mostly), or anywhere.
        let issued_ms = issued.map_or_else(|absolute| absolute, |relative| now + relative);
        let request = CallRequest { v: VERSION, id, to: Recipient { binding, object: here.clone() }, from, issued_ms, op };
        let (body, signature) = signed_request("k", &request);
        match parse_request(&Secrets::new("k"), &body, Some(&signature), &here, now) {
            Ok(parsed) => {
                for (what, key) in [("the call id", &parsed.id), ("the origin", &parsed.from), ("the binding", &parsed.to.binding), ("the target", &parsed.to.object)] {
                    prop_assert!(key.len() <= MAX_KEY_BYTES, "{} of {} bytes accepted", what, key.len());
                }
                // The remote stores none of the request's times; it accepts only those within
                // its window.
                prop_assert!((now - MAX_REQUEST_AGE_MS..=now + MAX_CLOCK_SKEW_MS).contains(&parsed.issued_ms), "issued at {} accepted at {}", parsed.issued_ms, now);
            }
            Err(refusal) => {
                prop_assert!((400..500).contains(&refusal.status()));
                prop_assert!(refusal.to_string().len() <= 2 * MAX_ERROR_BYTES, "a refusal of {} bytes", refusal.to_string().len());
                prop_assert!(!matches!(refusal, Refusal::BadSignature), "a signed request refused as unsigned");
            }
        }
    }

    /// Any answer, any status, for any id: classified, with the texts it keeps bounded.
    #[test]
    fn any_answer_is_classified_with_bounded_texts(id in short(text()), status in prop_oneof![3 => Just(200u16), 2 => select(vec![409u16, 410, 400, 401, 403, 404, 500, 503, 0, u16::MAX]), 1 => any::<u16>()], body in short(prop_oneof![
        text(),
        json_value().prop_map(|v| v.to_string()),
        Just(Value::String("y".repeat(100_000)).to_string()),
        (text(), json_value()).prop_map(|(id, v)| json!({"v": 2, "id": id, "ok": v}).to_string()),
        (text(), text()).prop_map(|(id, m)| json!({"v": 2, "id": id, "err": {"message": m, "panicked": false}}).to_string()),
        (any::<u64>(), any::<u64>()).prop_map(|(b, l)| json!({"v": 2, "id": "c", "too_large": {"bytes": b, "limit": l}}).to_string()),
        text().prop_map(|k| format!("{{\"v\":2,\"id\":\"c\",{}:1}}", Value::String(k))),
    ])) {
        let (id, body) = (id.0, body.0);
        match read_answer(&id, status, &body) {
            Answer::Done(Err(CallError::Rejected { message, .. } | CallError::Expired { message } | CallError::Storage { message })) | Answer::Failed(message) => {
                prop_assert!(message.len() <= MAX_ERROR_BYTES, "a kept text of {} bytes", message.len());
            }
            Answer::Done(_) | Answer::Busy => {}
        }
    }
}
