//! The call state machine against a reference model, on random lives of a call: sends that
//! reply, fail, find the remote busy, or are refused as too old; backstops firing at random
//! times, some a day apart; cancels. The adapter's rules are replayed with the machine's
//! pure functions, and the model says what must have happened.

#![cfg(not(target_arch = "wasm32"))]

use lumenize_call::envelope::{MAX_CLOCK_SKEW_MS, MAX_REQUEST_AGE_MS};
use lumenize_call::machine::{after_failure, on_backstop, read_answer, send_horizon_ms, Answer, CallResult, Pending, Step};
use lumenize_call::{CallError, MAX_TRANSPORT_ATTEMPTS};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Event {
    /// A send completed with this HTTP answer (`None`: the fetch itself failed).
    Answer(Option<(u16, String)>),
    /// The backstop fired `after` ms after the previous event.
    Backstop { after: i64 },
    Cancel,
}

fn answer() -> impl Strategy<Value = Option<(u16, String)>> {
    prop_oneof![
        Just(None),
        Just(Some((200, r#"{"v":2,"id":"c","ok":7}"#.to_owned()))),
        Just(Some((200, r#"{"v":2,"id":"c","err":{"message":"no","panicked":false}}"#.to_owned()))),
        Just(Some((200, r#"{"v":2,"id":"c","too_large":{"bytes":9,"limit":8}}"#.to_owned()))),
        Just(Some((200, r#"{"v":2,"id":"c","unstored":{"message":"disk"}}"#.to_owned()))),
        Just(Some((409, String::new()))),
        Just(Some((410, "too old".to_owned()))),
        Just(Some((404, "not found".to_owned()))),
        Just(Some((503, "overloaded".to_owned()))),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => answer().prop_map(Event::Answer),
        4 => (0i64..90_000).prop_map(|after| Event::Backstop { after }),
        1 => (0i64..2 * MAX_REQUEST_AGE_MS).prop_map(|after| Event::Backstop { after }),
        1 => Just(Event::Cancel),
    ]
}

/// The adapter's bookkeeping: the stored call, the first result delivered (the record is
/// gone then), and the clock.
struct Life {
    call: Pending,
    delivered: Vec<CallResult>,
    now: i64,
}

impl Life {
    fn deliver(&mut self, result: CallResult) {
        // `settle`: the first result counts; a call already completed drops later ones.
        if self.delivered.is_empty() {
            self.delivered.push(self.call.result.clone().unwrap_or(result));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn every_call_is_continued_once_with_a_result_it_earned(
        timeout in prop::option::of(1i64..200_000),
        events in prop::collection::vec(event(), 0..40),
    ) {
        let start = 1_700_000_000_000;
        let deadline = timeout.map(|t| start + t);
        let call = Pending { issued_ms: start, deadline_ms: deadline, failures: 0, last_error: None, result: None };
        let mut life = Life { call, delivered: vec![], now: start };
        // The model: what a delivery may be, given what happened before it.
        let mut replies_seen = Vec::new();
        for event in events {
            if !life.delivered.is_empty() {
                break; // completed: the record is gone, everything later is dropped
            }
            match event {
                // `send` asks the machine first: a settled call is not sent.
                Event::Answer(_) if matches!(on_backstop(&life.call, life.now), Step::Deliver(_)) => {
                    let Step::Deliver(result) = on_backstop(&life.call, life.now) else { unreachable!() };
                    life.deliver(result);
                }
                Event::Answer(answer) => {
                    let read = match &answer {
                        None => Answer::Failed("fetch failed".into()),
                        Some((status, body)) => read_answer("c", *status, body),
                    };
                    match read {
                        Answer::Done(result) => {
                            replies_seen.push(result.clone());
                            life.deliver(result);
                        }
                        Answer::Busy => {}
                        Answer::Failed(error) => {
                            let (next, give_up) = after_failure(&life.call, error);
                            life.call = next;
                            if let Some(result) = give_up {
                                prop_assert_eq!(life.call.failures, MAX_TRANSPORT_ATTEMPTS);
                                life.deliver(result);
                            }
                        }
                    }
                }
                Event::Backstop { after } => {
                    life.now += after;
                    match on_backstop(&life.call, life.now) {
                        Step::Deliver(result) => life.deliver(result),
                        Step::Dispatch { backstop_ms } => {
                            prop_assert!(backstop_ms > life.now, "backstop {} not after now {}", backstop_ms, life.now);
                            if let Some(d) = deadline {
                                prop_assert!(backstop_ms <= d, "backstop {} after the deadline {}", backstop_ms, d);
                                prop_assert!(life.now < d, "dispatching after the deadline");
                            }
                        }
                    }
                }
                Event::Cancel => life.deliver(Err(CallError::Cancelled)),
            }
        }
        prop_assert!(life.delivered.len() <= 1);
        if let Some(result) = life.delivered.first() {
            match result {
                Err(CallError::Timeout) => prop_assert!(deadline.is_some_and(|d| life.now >= d), "timed out early"),
                Err(CallError::Transport { .. }) => prop_assert_eq!(life.call.failures, MAX_TRANSPORT_ATTEMPTS),
                Err(CallError::Cancelled) => {}
                // Expired: the remote said so, or the origin's horizon passed.
                Err(CallError::Expired { .. }) if !replies_seen.contains(result) => {
                    prop_assert!(life.now > start + MAX_REQUEST_AGE_MS + MAX_CLOCK_SKEW_MS, "expired early, at {}", life.now - start);
                }
                reply => prop_assert!(replies_seen.contains(reply), "delivered {:?}, the remote said {:?}", reply, replies_seen),
            }
        } else {
            // Liveness: with or without a deadline, backstops alone end the call, by the
            // deadline or the send horizon, whichever comes first (plus one retry delay).
            let end = deadline.map_or(send_horizon_ms(start), |d| d.min(send_horizon_ms(start)));
            let (from, mut steps) = (life.now, 0);
            loop {
                steps += 1;
                prop_assert!(steps < 1_000, "no end after 1000 backstops");
                match on_backstop(&life.call, life.now) {
                    Step::Deliver(result) => {
                        prop_assert!(life.now <= end.max(from) + 60_000, "ended at {}, {} ms after {}", life.now, life.now - end, end);
                        prop_assert!(matches!(result, Err(CallError::Timeout | CallError::Expired { .. })) || life.call.failures >= MAX_TRANSPORT_ATTEMPTS, "{:?}", result);
                        break;
                    }
                    Step::Dispatch { backstop_ms } => {
                        prop_assert!(backstop_ms > life.now);
                        // Alarms may fire late: halve the way to the end at each step, so a
                        // day of one-second backstops takes a few dozen steps.
                        life.now = backstop_ms.max(life.now + (end - life.now) / 2);
                    }
                }
            }
        }
    }
}
