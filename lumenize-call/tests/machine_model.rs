//! The call state machine against a reference model, on random lives of a call: sends that
//! reply, fail, or find the remote busy; backstops firing at random times; cancels. The
//! adapter's rules are replayed with the machine's pure functions, and the model says what
//! must have happened.

#![cfg(not(target_arch = "wasm32"))]

use lumenize_call::machine::{after_failure, on_backstop, read_answer, Answer, CallResult, Pending, Step};
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
        Just(Some((200, r#"{"v":1,"id":"c","ok":7}"#.to_owned()))),
        Just(Some((200, r#"{"v":1,"id":"c","err":{"message":"no","panicked":false}}"#.to_owned()))),
        Just(Some((409, String::new()))),
        Just(Some((404, "not found".to_owned()))),
        Just(Some((503, "overloaded".to_owned()))),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => answer().prop_map(Event::Answer),
        4 => (0i64..90_000).prop_map(|after| Event::Backstop { after }),
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
        let mut life = Life { call: Pending { deadline_ms: deadline, failures: 0, last_error: None, result: None }, delivered: vec![], now: start };
        // The model: what a delivery may be, given what happened before it.
        let mut replies_seen = Vec::new();
        for event in events {
            if !life.delivered.is_empty() {
                break; // completed: the record is gone, everything later is dropped
            }
            match event {
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
                reply => prop_assert!(replies_seen.contains(reply), "delivered {:?}, the remote said {:?}", reply, replies_seen),
            }
        } else if let Some(d) = deadline {
            // Liveness: with a deadline, backstops alone end the call by then.
            let mut steps = 0;
            loop {
                steps += 1;
                prop_assert!(steps < 1_000, "no end after 1000 backstops");
                match on_backstop(&life.call, life.now) {
                    Step::Deliver(result) => {
                        prop_assert!(life.now <= d.max(start) + 60_000);
                        prop_assert!(matches!(result, Err(CallError::Timeout)) || life.call.failures >= MAX_TRANSPORT_ATTEMPTS);
                        break;
                    }
                    Step::Dispatch { backstop_ms } => life.now = backstop_ms,
                }
            }
        }
    }
}
