//! The call state machine against a reference model, on random lives of a call: sends that
//! reply, fail, find the remote busy, are refused as too old, or are lost with their
//! isolate; backstops firing at random times, some a day apart, while a send is in flight
//! or not; continuations that fail and run again; cancels. The adapter's rules are replayed
//! with the machine's pure functions, and the model says what must have happened.

#![cfg(not(target_arch = "wasm32"))]

use lumenize_call::envelope::{MAX_CLOCK_SKEW_MS, MAX_REQUEST_AGE_MS};
use lumenize_call::machine::{
    after_failure, first_result, on_backstop, read_answer, send_horizon_ms, Answer, CallResult, Pending, Step, FIRST_RETRY_DELAY_MS,
    MAX_RETRY_DELAY_MS,
};
use lumenize_call::{CallError, MAX_TRANSPORT_ATTEMPTS};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Event {
    /// The send in flight completed with this HTTP answer (`None`: the fetch itself failed).
    Answer(Option<(u16, String)>),
    /// The backstop fired `after` ms after the previous event.
    Backstop { after: i64 },
    /// `after` ms pass with no backstop (an alarm late, or the backstop not due yet): an
    /// answer may come in after the deadline, before the backstop that times the call out.
    Pass { after: i64 },
    /// The isolate died: the send in flight is lost, and what it knew in memory with it.
    Crash,
    /// The next continuation returns `Err`.
    FailNextContinuation,
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
        1 => (0i64..90_000).prop_map(|after| Event::Pass { after }),
        1 => Just(Event::Crash),
        1 => Just(Event::FailNextContinuation),
        1 => Just(Event::Cancel),
    ]
}

/// The adapter's bookkeeping: the stored call, when the send in flight started, what the
/// continuation was run with (every attempt) and what completed it (the record is gone
/// then), and the clock.
struct Life {
    call: Pending,
    sending_since: Option<i64>,
    sends: u32,
    fail_next: bool,
    attempts: Vec<CallResult>,
    delivered: Vec<CallResult>,
    now: i64,
}

impl Life {
    /// `deliver`: the first result counts (stored when a continuation fails, for its
    /// retries); a call already completed drops later ones.
    fn deliver(&mut self, incoming: CallResult) {
        if !self.delivered.is_empty() {
            return;
        }
        let result = first_result(self.call.result.clone(), incoming, 0, self.call.deadline_ms, self.now);
        self.attempts.push(result.clone());
        if std::mem::take(&mut self.fail_next) {
            self.call.result.get_or_insert(result);
        } else {
            self.delivered.push(result);
        }
    }

    /// A backstop at `self.now`, as `Calls::backstop` runs it; checks what the machine says
    /// about when to look again.
    fn backstop(&mut self, deadline: Option<i64>) -> Result<(), TestCaseError> {
        let now = self.now;
        match on_backstop(&self.call, now, self.sending_since) {
            Step::Deliver(result) => self.deliver(result),
            Step::Dispatch { backstop_ms } => {
                prop_assert!(self.sending_since.is_none(), "sent again while a send is in flight");
                prop_assert!(backstop_ms > now, "backstop {} not after now {}", backstop_ms, now);
                if let Some(d) = deadline {
                    prop_assert!(backstop_ms <= d, "backstop {} after the deadline {}", backstop_ms, d);
                    prop_assert!(now < d, "dispatching after the deadline");
                }
                self.sending_since = Some(now);
                self.sends += 1;
            }
            Step::Wait { backstop_ms } => {
                let Some(since) = self.sending_since else { return Err(TestCaseError::fail("waiting with no send in flight")) };
                let (wait, until_deadline) = (backstop_ms - now, deadline.map_or(i64::MAX, |d| d - now));
                prop_assert!(wait > 0, "waits {} ms", wait);
                prop_assert!(wait <= until_deadline, "waits past the deadline");
                prop_assert!(wait <= MAX_RETRY_DELAY_MS, "waits {} ms, over the cap", wait);
                // Backs off: twice as long as the send has been out, at least a second, at
                // most the cap, unless the deadline comes first.
                let floor = (2 * (now - since)).clamp(FIRST_RETRY_DELAY_MS, MAX_RETRY_DELAY_MS).min(until_deadline);
                prop_assert!(wait >= floor, "waits {} ms with a send out for {} ms", wait, now - since);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn every_call_is_continued_once_with_a_result_it_earned(
        timeout in prop::option::of(1i64..200_000),
        direct in any::<bool>(),
        events in prop::collection::vec(event(), 0..40),
    ) {
        let start = 1_700_000_000_000;
        let deadline = timeout.map(|t| start + t);
        let call = Pending { issued_ms: start, deadline_ms: deadline, failures: 0, last_error: None, result: None };
        // Direct: sent by `call` itself. Alarm: by the task's first run, a backstop.
        let sending_since = direct.then_some(start);
        let mut life = Life { call, sending_since, sends: u32::from(direct), fail_next: false, attempts: vec![], delivered: vec![], now: start };
        // The model: what a delivery may be, given what happened before it.
        let mut replies_seen = Vec::new();
        for event in events {
            if !life.delivered.is_empty() {
                break; // completed: the record is gone, everything later is dropped
            }
            match event {
                Event::Answer(answer) => {
                    // Only a send in flight answers.
                    if life.sending_since.take().is_none() {
                        continue;
                    }
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
                                prop_assert!(life.call.failures >= MAX_TRANSPORT_ATTEMPTS);
                                life.deliver(result);
                            }
                        }
                    }
                }
                Event::Backstop { after } => {
                    life.now += after;
                    life.backstop(deadline)?;
                }
                Event::Pass { after } => life.now += after,
                Event::Crash => life.sending_since = None,
                Event::FailNextContinuation => life.fail_next = true,
                Event::Cancel => life.deliver(Err(CallError::Cancelled)),
            }
        }
        prop_assert!(life.delivered.len() <= 1);
        // Every attempt of the continuation saw the same result: the first one.
        prop_assert!(life.attempts.windows(2).all(|w| w[0] == w[1]), "attempts saw {:?}", life.attempts);
        if let Some(result) = life.delivered.first() {
            prop_assert_eq!(Some(result), life.attempts.first());
            match result {
                Err(CallError::Timeout) => prop_assert!(deadline.is_some_and(|d| life.now >= d), "timed out early"),
                Err(CallError::Transport { .. }) => prop_assert!(life.call.failures >= MAX_TRANSPORT_ATTEMPTS),
                Err(CallError::Cancelled) => {}
                // Expired: the remote said so, or the origin's horizon passed.
                Err(CallError::Expired { .. }) if !replies_seen.contains(result) => {
                    prop_assert!(life.now > start + MAX_REQUEST_AGE_MS + MAX_CLOCK_SKEW_MS, "expired early, at {}", life.now - start);
                }
                reply => {
                    prop_assert!(replies_seen.contains(reply), "delivered {:?}, the remote said {:?}", reply, replies_seen);
                    // A reply counts only if it came in before the deadline (else: late).
                    prop_assert!(deadline.is_none_or(|d| life.now < d) || life.call.result.is_some(), "a reply after the deadline ({:?}) was delivered at {}", deadline, life.now);
                }
            }
        } else {
            // Liveness: with or without a deadline, with a send that never answers or none,
            // backstops alone end the call, by the deadline or the send horizon, whichever
            // comes first (plus one retry delay).
            let end = deadline.map_or(send_horizon_ms(start), |d| d.min(send_horizon_ms(start)));
            let (from, mut steps) = (life.now, 0);
            life.fail_next = false;
            while life.delivered.is_empty() {
                steps += 1;
                prop_assert!(steps < 1_000, "no end after 1000 backstops");
                let next = match on_backstop(&life.call, life.now, life.sending_since) {
                    Step::Deliver(result) => {
                        prop_assert!(life.now <= end.max(from) + 60_000, "ended at {}, {} ms after {}", life.now, life.now - end, end);
                        let stored = life.call.result.is_some();
                        prop_assert!(stored || matches!(result, Err(CallError::Timeout | CallError::Expired { .. })) || life.call.failures >= MAX_TRANSPORT_ATTEMPTS, "{:?}", result);
                        None
                    }
                    Step::Dispatch { backstop_ms } | Step::Wait { backstop_ms } => Some(backstop_ms),
                };
                life.backstop(deadline)?;
                if let Some(backstop_ms) = next {
                    // Alarms may fire late: halve the way to the end at each step, so a
                    // day of one-second backstops takes a few dozen steps.
                    life.now = backstop_ms.max(life.now + (end - life.now) / 2);
                }
            }
        }
    }
}
