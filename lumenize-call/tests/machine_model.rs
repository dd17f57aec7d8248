//! The production call core (`lumenize_call::core::Caller`, the code `Calls` runs in
//! workerd) against a reference model, on random lives of a call, on the real call store
//! over a native SQLite (the same SQL statements as in a Durable Object): sends that reply,
//! fail, find the remote busy, are refused as too old, or are lost with their isolate;
//! the call's task firing at random times, some a day apart, while a send is in flight or a
//! continuation runs or not; continuations that fail, or take their time, and run again;
//! cancels; crashes, which drop every future in flight and the isolate's memory (a new
//! `Caller` over the same store and tasks). Nothing here re-implements the core: the test
//! plays the runtime around it (the scheduler's tasks, the transport, the continuation, the
//! clock) and the model says what must have happened.

#![cfg(not(target_arch = "wasm32"))]

#[path = "../../lumenize-alarms/tests/support/mod.rs"]
mod support;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use lumenize_call::core::{new_call, Answer, Caller, Claimed, PendingCall, Sent, Store, Tasks, Transport};
use lumenize_call::envelope::{MAX_CLOCK_SKEW_MS, MAX_REQUEST_AGE_MS};
use lumenize_call::machine::{read_answer, send_horizon_ms, tag, CallResult, FIRST_RETRY_DELAY_MS, MAX_RETRY_DELAY_MS};
use lumenize_call::{CallError, CallOptions, Dispatch, Error, Target, MAX_TRANSPORT_ATTEMPTS};
use proptest::prelude::*;
use serde_json::{json, Value};
use support::Sqlite;

#[derive(Debug, Clone)]
enum Event {
    /// The send in flight completed with this HTTP answer (`None`: the fetch itself failed,
    /// or its reply was lost).
    Answer(Option<(u16, String)>),
    /// `after` ms pass, then the call's task fires if it is due (never early, as the
    /// scheduler runs it) and not running already.
    Backstop { after: i64 },
    /// `after` ms pass with no task run (an alarm late): an answer may come in after the
    /// deadline, before the run that times the call out.
    Pass { after: i64 },
    /// The isolate died: every future in flight is dropped, and what it knew in memory
    /// with it; the store and the tasks stay.
    Crash,
    /// The next continuation returns `Err`.
    FailNextContinuation,
    /// Continuations from now on take this many more turns of the event loop (other events
    /// happen meanwhile).
    SlowContinuations(u32),
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
        1 => (0u32..3).prop_map(Event::SlowContinuations),
        1 => Just(Event::Cancel),
    ]
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// The runtime around the core: the clock, the scheduler's tasks (durable), the transport
/// and the continuation, and what the model needs to know of what happened.
#[derive(Default)]
struct World {
    now: Cell<i64>,
    deadline: Option<i64>,
    /// The scheduler's tasks: call id -> due time. Durable: a crash keeps them.
    tasks: RefCell<HashMap<String, i64>>,
    /// The task whose run is in progress, and where it asked to run again.
    running: RefCell<Option<String>>,
    deferred: Cell<Option<i64>>,
    /// The send in flight in this isolate (when it started), and the answer handed to it.
    in_flight: Cell<Option<i64>>,
    answer: RefCell<Option<Sent>>,
    sends: Cell<u32>,
    /// Continuations: the next one fails; how many turns each takes; how many are running.
    fail_next: Cell<bool>,
    slow: Cell<u32>,
    continuing: Cell<u32>,
    /// Every attempt of the continuation: its result, when it started, and whether it
    /// returned (`false`: still running, or cut short by a crash); and the results of the
    /// attempts that completed.
    attempts: RefCell<Vec<(CallResult, i64, bool)>>,
    completed: RefCell<Vec<CallResult>>,
    /// What the model saw: results the remote answered (and when), failed sends, cancels.
    replies: RefCell<Vec<(CallResult, i64)>>,
    /// The outcome the remote stored when it applied the call (it answers every later
    /// request for the call with it).
    applied: RefCell<Option<String>>,
    failures: Cell<u32>,
    cancels: RefCell<Vec<i64>>,
    /// Futures started by futures (a task run that claims a send), for the event loop.
    spawned: RefCell<Vec<Task>>,
    violations: RefCell<Vec<String>>,
}

impl World {
    fn violation(&self, what: String) {
        self.violations.borrow_mut().push(what);
    }

    /// The continuation: records the attempt, takes its turns, then fails or completes.
    async fn continuation(&self, result: CallResult) -> lumenize_call::Result<()> {
        let attempt = self.attempts.borrow().len();
        self.attempts.borrow_mut().push((result.clone(), self.now.get(), false));
        let fail = self.fail_next.take();
        self.continuing.set(self.continuing.get() + 1);
        Turns(self.slow.get()).await;
        self.continuing.set(self.continuing.get() - 1);
        self.attempts.borrow_mut()[attempt].2 = true;
        if fail {
            return Err(Error::Continuation { id: "c".into(), message: "asked to fail".into() });
        }
        self.completed.borrow_mut().push(result);
        Ok(())
    }
}

impl Tasks for World {
    async fn schedule(&self, id: &str, at_ms: i64) -> lumenize_call::Result<()> {
        self.tasks.borrow_mut().insert(id.to_owned(), at_ms);
        Ok(())
    }

    /// As lumenize-alarms' `defer`: only from inside the task's run. Checks the time the core
    /// asks for, as the machine's rules promise it.
    fn defer(&self, id: &str, at_ms: i64) -> lumenize_call::Result<()> {
        if self.running.borrow().as_deref() != Some(id) {
            self.violation(format!("deferred task {id} outside its run"));
        }
        let now = self.now.get();
        if at_ms <= now || at_ms > now + MAX_RETRY_DELAY_MS {
            self.violation(format!("deferred to {} ms from now", at_ms - now));
        }
        // While no continuation runs, the backstop never looks past the deadline, and backs
        // off from a send in flight: twice as long as it has been out, at least a second, at
        // most the cap, unless the deadline comes first.
        if self.continuing.get() == 0 {
            let until_deadline = self.deadline.map_or(i64::MAX, |d| d - now);
            if at_ms - now > until_deadline {
                self.violation(format!("deferred past the deadline, {} ms from now", at_ms - now));
            }
            if let Some(since) = self.in_flight.get() {
                let floor = (2 * (now - since)).clamp(FIRST_RETRY_DELAY_MS, MAX_RETRY_DELAY_MS).min(until_deadline);
                if at_ms - now < floor {
                    self.violation(format!("waits {} ms with a send out for {} ms", at_ms - now, now - since));
                }
            }
        }
        self.deferred.set(Some(at_ms));
        Ok(())
    }

    fn cancel(&self, id: &str) -> lumenize_call::Result<()> {
        self.tasks.borrow_mut().remove(id);
        Ok(())
    }
}

impl Transport for World {
    fn send(&self, call: &PendingCall) -> impl Future<Output = Sent> {
        if self.in_flight.get().is_some() {
            self.violation("sent while a send of the call is in flight in this isolate".into());
        }
        if call.op.is_none() || call.result.is_some() {
            self.violation(format!("sent a call whose result is in: {call:?}"));
        }
        self.in_flight.set(Some(self.now.get()));
        self.sends.set(self.sends.get() + 1);
        std::future::poll_fn(|_| match self.answer.borrow_mut().take() {
            Some(sent) => {
                self.in_flight.set(None);
                Poll::Ready(sent)
            }
            None => Poll::Pending,
        })
    }
}

/// Pending for this many polls.
struct Turns(u32);

impl Future for Turns {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        Poll::Pending
    }
}

/// One isolate: the core over the shared store, and the futures it has in flight.
struct Isolate {
    world: Rc<World>,
    store: Rc<Store<Sqlite>>,
    caller: Rc<Caller<Sqlite>>,
    futures: Vec<Task>,
}

impl Isolate {
    fn new(world: Rc<World>, store: Rc<Store<Sqlite>>) -> Self {
        let caller = Rc::new(Caller::new(store.clone()));
        Isolate { world, store, caller, futures: Vec::new() }
    }

    /// A crash: every future is dropped unfinished, and the isolate's memory with them.
    fn crash(&mut self) {
        self.futures.clear();
        self.world.spawned.borrow_mut().clear();
        *self = Isolate::new(self.world.clone(), self.store.clone());
        let w = &self.world;
        w.in_flight.set(None);
        w.answer.replace(None);
        w.continuing.set(0);
        w.running.replace(None);
    }

    /// Starts the background send of a claimed call (what `spawn_local` does in workerd).
    fn send_task(world: Rc<World>, caller: Rc<Caller<Sqlite>>, claimed: Claimed) -> Task {
        Box::pin(async move {
            let then = async |_: String, _: Value, result: CallResult| world.continuation(result).await;
            let _ = caller.send(claimed, &*world, &*world, &then).await;
        })
    }

    fn spawn(&mut self, task: Task) {
        self.futures.push(task);
        self.turn();
    }

    /// One turn of the event loop: polls every future once, and those they start.
    fn turn(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut i = 0;
        loop {
            self.futures.append(&mut self.world.spawned.borrow_mut());
            if i >= self.futures.len() {
                break;
            }
            if self.futures[i].as_mut().poll(&mut cx).is_ready() {
                drop(self.futures.remove(i));
            } else {
                i += 1;
            }
        }
    }

    /// Makes the call.
    fn call(&mut self, id: &str, dispatch: Dispatch) {
        let now = self.world.now.get();
        let mut opts = CallOptions::default().dispatch(dispatch);
        if let Some(d) = self.world.deadline {
            opts = opts.timeout(Duration::from_millis(u64::try_from(d - now).expect("a deadline after now")));
        }
        let (call, first) = new_call(id.into(), Target::named("REMOTE", "r"), tag("op", json!(1)), tag("then", json!(2)), &opts, now).expect("a valid call");
        let claimed = support::done(self.caller.make(call, first, now, &*self.world)).expect("the call is stored");
        if let Some(claimed) = claimed {
            self.spawn(Self::send_task(self.world.clone(), self.caller.clone(), claimed));
        }
    }

    /// Runs the task of call `id` now, as the scheduler does: removed when the run returns
    /// `Ok` without deferring it, moved to where it was deferred, retried a second later
    /// after `Err`; a task cancelled during its run is not written back. Unlike the real
    /// scheduler, it retries without a limit: there, a task whose runs fail (a continuation
    /// failing in each) goes dead after its retry policy's attempts, and the call stays
    /// pending with its result until the task is requeued.
    fn fire(&mut self, id: &str) {
        let (world, caller, id) = (self.world.clone(), self.caller.clone(), id.to_owned());
        world.running.replace(Some(id.clone()));
        world.deferred.set(None);
        self.spawn(Box::pin(async move {
            let then = async |_: String, _: Value, result: CallResult| world.continuation(result).await;
            let now = world.now.get();
            let ran = caller.backstop(&id, now, &*world, &then).await;
            world.running.replace(None);
            let mut tasks = world.tasks.borrow_mut();
            if let Some(due) = tasks.get_mut(&id) {
                match (&ran, world.deferred.take()) {
                    (Ok(_), Some(at)) => *due = at,
                    (Ok(_), None) => drop(tasks.remove(&id)),
                    (Err(_), _) => *due = world.now.get() + 1_000,
                }
            }
            drop(tasks);
            if let Ok(Some(claimed)) = ran {
                world.spawned.borrow_mut().push(Self::send_task(world.clone(), caller.clone(), claimed));
            }
        }));
    }

    /// The call's task, if it is due and not running.
    fn due(&self, id: &str) -> Option<i64> {
        let due = self.world.tasks.borrow().get(id).copied()?;
        (self.world.running.borrow().is_none()).then_some(due)
    }

    fn cancel(&mut self, id: &str) {
        let (world, caller, id) = (self.world.clone(), self.caller.clone(), id.to_owned());
        world.cancels.borrow_mut().push(world.now.get());
        self.spawn(Box::pin(async move {
            let then = async |_: String, _: Value, result: CallResult| world.continuation(result).await;
            let _ = caller.cancel(&id, world.now.get(), &*world, &then).await;
        }));
    }
}

const ID: &str = "c";
const START: i64 = 1_700_000_000_000;

/// A world at `START` with a call of this deadline, its store, and an isolate over them.
fn world(deadline: Option<i64>) -> (Rc<World>, Rc<Store<Sqlite>>, Isolate) {
    let world = Rc::new(World { now: Cell::new(START), deadline, ..World::default() });
    let store = Rc::new(Store::open(Sqlite::new()).expect("open the call store"));
    let isolate = Isolate::new(world.clone(), store.clone());
    (world, store, isolate)
}

/// The answer `body` (HTTP 200) to the send in flight, now.
fn reply(world: &World, body: &str) {
    assert!(world.in_flight.get().is_some(), "no send in flight");
    world.answer.replace(Some(Sent { answer: read_answer(ID, 200, body), at_ms: world.now.get() }));
}

/// Found by the model on the old adapter, which stored `Cancelled` before running the
/// continuation: a cancel after the deadline, before the task that times the call out has
/// run, continued with `Cancelled`. The first result rule says the call has timed out.
#[test]
fn a_cancel_after_the_deadline_continues_with_timeout() {
    for (cancel_at, expected) in [(START + 999, Err(CallError::Cancelled)), (START + 1_000, Err(CallError::Timeout))] {
        let (world, store, mut isolate) = world(Some(START + 1_000));
        isolate.call(ID, Dispatch::Alarm);
        world.now.set(cancel_at);
        isolate.cancel(ID);
        assert_eq!(*world.completed.borrow(), [expected]);
        assert_eq!(store.call(ID).unwrap(), None);
        assert!(world.tasks.borrow().is_empty(), "{:?}", world.tasks.borrow());
    }
}

/// A reset while the continuation runs: it runs again, with the first result in after the
/// reset. The remote replays its stored reply to the re-dispatch; past the deadline the
/// call times out instead (the stated exception to "every attempt sees the same result").
#[test]
fn a_reset_while_the_continuation_runs_runs_it_again() {
    for (deadline, again) in [(None, Ok(json!(7))), (Some(START + 1_000), Err(CallError::Timeout))] {
        let (world, store, mut isolate) = world(deadline);
        isolate.call(ID, Dispatch::Alarm);
        isolate.fire(ID); // the first run sends
        world.slow.set(1);
        world.now.set(START + 10);
        reply(&world, r#"{"v":2,"id":"c","ok":7}"#);
        isolate.turn(); // the continuation starts, and takes a turn
        assert_eq!(world.attempts.borrow().len(), 1);
        isolate.crash();
        assert!(world.completed.borrow().is_empty());
        // The task, deferred by the first run, sends again (or times the call out).
        let due = isolate.due(ID).expect("the call's task");
        world.now.set(due);
        isolate.fire(ID);
        if world.in_flight.get().is_some() {
            reply(&world, r#"{"v":2,"id":"c","ok":7}"#);
        }
        isolate.turn();
        isolate.turn();
        assert_eq!(*world.completed.borrow(), std::slice::from_ref(&again), "deadline {deadline:?}");
        let seen: Vec<(CallResult, bool)> = world.attempts.borrow().iter().map(|(r, _, returned)| (r.clone(), *returned)).collect();
        assert_eq!(seen, [(Ok(json!(7)), false), (again, true)]);
        assert_eq!(store.call(ID).unwrap(), None);
        assert!(world.tasks.borrow().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn every_call_is_continued_once_with_a_result_it_earned(
        timeout in prop::option::of(1i64..200_000),
        direct in any::<bool>(),
        events in prop::collection::vec(event(), 0..40),
    ) {
        let start = START;
        let deadline = timeout.map(|t| start + t);
        let (world, store, mut isolate) = world(deadline);
        isolate.call(ID, if direct { Dispatch::Direct } else { Dispatch::Alarm });
        let done = || !world.completed.borrow().is_empty();
        for event in events {
            if done() {
                break; // completed: the record is gone, everything later is dropped
            }
            match event {
                Event::Answer(answer) => {
                    // Only a send in flight is answered.
                    if world.in_flight.get().is_none() {
                        continue;
                    }
                    // The remote applies the call once: a 200 after the first replays its outcome.
                    let read = match &answer {
                        None => Answer::Failed("fetch failed".into()),
                        Some((200, body)) => read_answer(ID, 200, world.applied.borrow_mut().get_or_insert_with(|| body.clone())),
                        Some((status, body)) => read_answer(ID, *status, body),
                    };
                    match &read {
                        Answer::Done(result) => world.replies.borrow_mut().push((result.clone(), world.now.get())),
                        Answer::Failed(_) => world.failures.set(world.failures.get() + 1),
                        Answer::Busy => {}
                    }
                    world.answer.replace(Some(Sent { answer: read, at_ms: world.now.get() }));
                }
                Event::Backstop { after } => {
                    world.now.set(world.now.get() + after);
                    if isolate.due(ID).is_some_and(|due| due <= world.now.get()) {
                        isolate.fire(ID);
                    }
                }
                Event::Pass { after } => world.now.set(world.now.get() + after),
                Event::Crash => isolate.crash(),
                Event::FailNextContinuation => world.fail_next.set(true),
                Event::SlowContinuations(turns) => world.slow.set(turns),
                Event::Cancel => isolate.cancel(ID),
            }
            isolate.turn();
        }
        // Liveness: with or without a deadline, with a send that never answers or none, the
        // task alone ends the call, by the deadline or the send horizon, whichever comes
        // first (plus one retry delay), once continuations stop failing.
        world.fail_next.set(false);
        world.slow.set(0);
        let end = deadline.map_or(send_horizon_ms(start), |d| d.min(send_horizon_ms(start)));
        let from = world.now.get();
        let mut steps = 0;
        while !done() {
            steps += 1;
            prop_assert!(steps < 1_000, "no end after 1000 task runs");
            isolate.turn();
            if done() {
                break;
            }
            if world.running.borrow().is_some() {
                continue; // a continuation finishing its turns
            }
            let Some(due) = isolate.due(ID) else {
                return Err(TestCaseError::fail(format!("a pending call has no task: {:?}", store.call(ID))));
            };
            // Alarms may fire late: halve the way to the end at each step, so a day of
            // one-second backstops takes a few dozen steps.
            world.now.set(due.max(world.now.get()).max(world.now.get() + (end - world.now.get()) / 2));
            isolate.fire(ID);
            if done() {
                prop_assert!(world.now.get() <= end.max(from) + 60_000, "ended at {}, {} ms after {}", world.now.get(), world.now.get() - end, end);
            }
        }
        isolate.turn();

        let violations = world.violations.borrow();
        prop_assert!(violations.is_empty(), "{:?}", violations);
        let (attempts, completed, replies) = (world.attempts.borrow(), world.completed.borrow(), world.replies.borrow());
        prop_assert_eq!(completed.len(), 1, "completed {:?}", completed);
        // Every attempt of the continuation that returned saw the same result: the first one
        // in, kept for the retries; the last of them completed the call.
        let returned: Vec<&CallResult> = attempts.iter().filter(|a| a.2).map(|a| &a.0).collect();
        prop_assert!(returned.windows(2).all(|w| w[0] == w[1]), "attempts saw {:?}", attempts);
        prop_assert_eq!(Some(&completed[0]), returned.last().copied());
        // And every result an attempt saw was earned.
        let before_deadline = |t: i64| deadline.is_none_or(|d| t < d);
        for (result, at, _) in attempts.iter() {
            let at = *at;
            match result {
                Err(CallError::Timeout) => prop_assert!(deadline.is_some_and(|d| at >= d), "timed out early, at {}", at - start),
                Err(CallError::Transport { .. }) => prop_assert!(world.failures.get() >= MAX_TRANSPORT_ATTEMPTS, "{} failures", world.failures.get()),
                Err(CallError::Cancelled) => prop_assert!(world.cancels.borrow().iter().any(|&t| before_deadline(t)), "cancelled by {:?}, after the deadline {:?}", world.cancels.borrow(), deadline),
                // Expired: the remote said so, or the origin's horizon passed.
                Err(CallError::Expired { .. }) if !replies.iter().any(|(r, _)| r == result) => {
                    prop_assert!(at > start + MAX_REQUEST_AGE_MS + MAX_CLOCK_SKEW_MS, "expired early, at {}", at - start);
                }
                // A reply counts only if it came in before the deadline (else: late).
                reply => prop_assert!(replies.iter().any(|(r, t)| r == reply && before_deadline(*t)), "delivered {:?}, the remote said {:?} (deadline {:?})", reply, replies, deadline),
            }
        }
        // A completed call leaves nothing behind: no row, no task.
        prop_assert_eq!(store.call(ID).expect("read the store"), None);
        prop_assert!(world.tasks.borrow().is_empty(), "tasks left: {:?}", world.tasks.borrow());
    }
}
