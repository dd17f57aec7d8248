//! The scheduler core on examples, where a property says it badly: each test names the
//! guarantee it holds (GUARANTEES.md) and runs over both stores unless it is about SQL.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Waker};
use std::time::Duration;

use lumenize_alarms::core::{Event, NativeAlarm, Scheduler, SimulatedAlarm, Store, LEAVE_TO_FIRE_MS, MAX_TIME_MS};
use lumenize_alarms::sql::Exec;
use lumenize_alarms::{Error, Filter, MissedTicks, Options, RetryPolicy, RunReport, Scheduled, Status, StorageKind, When};
use support::{block_on, done, ready, Fixture, Fresh, HandlerFut, Edit};

const BASE: i64 = 1_700_000_000_000;

impl<S: Store> Fixture<S> {
    fn sched(&self, now: i64, when: When, id: &str, opts: Options) -> Scheduled {
        self.payload(now, when, id, opts, "0")
    }

    fn payload(&self, now: i64, when: When, id: &str, opts: Options, payload: &str) -> Scheduled {
        let opts = opts.edit(|o| o.id = Some(id.to_owned()));
        let id = done(self.sched.schedule(&self.alarm, now, &when, payload.into(), &opts, || unreachable!())).unwrap();
        self.get(&id).expect("a scheduled task is stored")
    }

    /// The native alarm fires at `now` (the runtime spends it) and runs what is due.
    fn run_at<F>(&self, now: i64, limit: usize, mut handler: F) -> RunReport
    where
        F: FnMut(u64, Scheduled) -> HandlerFut,
    {
        self.alarm.clear();
        done(self.sched.run_due(&self.alarm, &|| now, None, limit, |n: u64, t: Scheduled| handler(n, t))).unwrap()
    }

    fn get(&self, id: &str) -> Option<Scheduled> {
        self.sched.store().get(id).unwrap()
    }
}

/// Guarantee 4: "the next tick is computed from the *scheduled* time of the one that ran",
/// also when that occurrence needed a retry. An interval task due at 1 000 on a 1 000 ms
/// grid fails once, is retried at 1 300 and succeeds: its next tick is 2 000, on the grid.
fn an_interval_task_stays_on_its_grid_after_a_retry<S: Fresh>() {
    let f = Fixture::<S>::new();
    let policy = RetryPolicy::attempts(3).backoff(Duration::from_millis(300), Duration::from_secs(1));
    f.sched(0, When::every(Duration::from_secs(1)).unwrap(), "beat", Options::default().retry(policy));
    f.run_at(1_000, 10, |_, _| ready(Err("flaky".into())));
    assert_eq!(f.get("beat").unwrap().due_ms, 1_300, "retried after the backoff");
    f.run_at(1_300, 10, |_, _| ready(Ok(())));
    assert_eq!(f.get("beat").unwrap().due_ms, 2_000, "next tick from the scheduled 1 000, not the retry at 1 300");
}

/// Guarantees 1 and 3: same-time tasks run FIFO, nothing runs a millisecond early, and a
/// task that a handler schedules for "now" runs in the same call, after the others.
fn same_time_tasks_run_in_insertion_order_and_never_early<S: Fresh>() {
    let f = Fixture::<S>::new();
    for id in ["c", "a", "b"] {
        f.sched(100, When::after(Duration::ZERO), id, Options::default());
    }
    f.sched(0, When::at_unix_ms(100), "d", Options::default());
    f.sched(0, When::at_unix_ms(101), "late", Options::default());
    let ran = RefCell::new(Vec::new());
    let report = f.run_at(100, 10, |_, t| {
        if t.id == "c" {
            f.sched(100, When::after(Duration::ZERO), "new", Options::default());
        }
        ran.borrow_mut().push(t.id);
        ready(Ok(()))
    });
    assert_eq!(ran.take(), ["c", "a", "b", "d", "new"]);
    assert_eq!((report.succeeded, report.more_due), (5, false));
    assert_eq!(f.sched.store().earliest().unwrap().map(|k| k.due_ms), Some(101));
    assert_eq!(f.alarm.armed(), Some(101), "the run ends by arming the next task");
}

/// Guarantee 6: a crash mid-handler leaves the task running in storage; the next run (in a
/// restarted object) counts the cut-short attempt as failed, retries after the backoff, and
/// the handler runs again with its attempt number. Only the task that was running is
/// charged: the others of its batch are untouched.
fn a_crash_mid_handler_reruns_the_task_and_counts_the_attempt<S: Fresh>() {
    let store = S::fresh();
    let f = Fixture { sched: Scheduler::new(store.clone()), alarm: SimulatedAlarm::default() };
    let policy = RetryPolicy::attempts(3).backoff(Duration::from_millis(50), Duration::from_secs(1));
    f.sched(0, When::at_unix_ms(10), "x", Options::default().retry(policy));
    f.sched(0, When::at_unix_ms(10), "y", Options::default());
    let crashed = block_on(f.sched.run_due(&f.alarm, &|| 10, None, 5, |_: u64, _| HandlerFut { result: None, yields: 0 }));
    assert!(crashed.is_none());
    let t = f.get("x").unwrap();
    assert_eq!((t.status, t.attempts), (Status::Running, 1));
    let y = f.get("y").unwrap();
    assert_eq!((y.status, y.attempts), (Status::Pending, 0), "a task of the batch that never started is not charged");

    let f = Fixture { sched: Scheduler::new(store), alarm: f.alarm }; // the object restarted
    let ran = RefCell::new(Vec::new());
    let report = f.run_at(20, 5, |_, t| {
        ran.borrow_mut().push(t.id);
        ready(Ok(()))
    });
    assert_eq!((report.interrupted, report.retrying, report.succeeded), (1, 1, 1));
    assert_eq!(ran.take(), ["y"], "x waits for its backoff");
    let t = f.get("x").unwrap();
    assert_eq!((t.status, t.attempts, t.due_ms), (Status::Pending, 1, 70));
    assert!(t.last_error.unwrap().contains("cut short"));

    let seen = Cell::new(0);
    let report = f.run_at(70, 5, |_, t| {
        seen.set(t.attempts);
        ready(Ok(()))
    });
    assert_eq!((report.succeeded, seen.get()), (1, 2));
    assert_eq!(f.get("x"), None);
}

/// Guarantee 6 with a panic instead of a crash, in a handler that has not awaited yet (its
/// attempt is not claimed in storage): what the adapter's panic hook calls,
/// `fail_in_flight`, called here by hand at the point of the panic (the hook runs before
/// the unwinding; on wasm32, before the abort), records the failed attempt; the task goes
/// dead per its policy and the others run. No hook runs here: the real hook
/// (`abort_on_panic`, JavaScript promises) runs only in workerd, where
/// `panicking_handler_is_retried_then_dead_and_others_still_run` (testing/harness) holds it.
fn fail_in_flight_records_a_panic_before_the_first_await<S: Fresh>() {
    let f = Fixture::<S>::new();
    f.sched(0, When::at_unix_ms(0), "p", Options::default().retry(RetryPolicy::none()));
    f.sched(0, When::at_unix_ms(0), "q", Options::default());
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        f.run_at(5, 5, |_, _| -> HandlerFut {
            f.sched.fail_in_flight(5, "the handler panicked: handler panics on purpose"); // what the hook does
            panic!("handler panics on purpose")
        })
    }));
    assert!(unwound.is_err());
    let p = f.get("p").unwrap();
    assert_eq!((p.status, p.attempts), (Status::Dead, 1));
    assert_eq!(p.last_error.as_deref(), Some("the handler panicked: handler panics on purpose"));
    let ran = RefCell::new(Vec::new());
    let report = f.run_at(6, 5, |_, t| {
        ran.borrow_mut().push(t.id);
        ready(Ok(()))
    });
    assert_eq!((report.interrupted, report.died, report.succeeded), (0, 0, 1));
    assert_eq!(ran.take(), ["q"]);
}

/// Guarantee 6 with a panic after the handler awaited (its attempt is claimed): without the
/// hook (it failed, say), the in-flight entry is released as the handler unwinds, so the
/// next run finds the attempt cut short.
fn a_panic_after_an_await_counts_as_a_cut_short_attempt<S: Fresh>() {
    let f = Fixture::<S>::new();
    f.sched(0, When::at_unix_ms(0), "p", Options::default().retry(RetryPolicy::none()));
    f.sched(0, When::at_unix_ms(0), "q", Options::default());
    struct PanicsAfterAwait(bool);
    impl Future for PanicsAfterAwait {
        type Output = std::result::Result<(), String>;
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> std::task::Poll<Self::Output> {
            assert!(!self.0, "handler panics on purpose after awaiting");
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        done(f.sched.run_due(&f.alarm, &|| 5, None, 5, |_: u64, _| PanicsAfterAwait(false)))
    }));
    assert!(unwound.is_err());
    assert_eq!(f.get("p").unwrap().status, Status::Running, "claimed when it awaited");
    let ran = RefCell::new(Vec::new());
    let report = f.run_at(6, 5, |_, t| {
        ran.borrow_mut().push(t.id);
        ready(Ok(()))
    });
    assert_eq!((report.interrupted, report.died, report.succeeded), (1, 1, 1));
    assert_eq!(ran.take(), ["q"]);
    let p = f.get("p").unwrap();
    assert_eq!(p.status, Status::Dead);
    assert!(p.last_error.unwrap().contains("cut short"));
}

/// Guarantee 14: a handler that completes without awaiting costs no claim: its attempt and
/// outcome commit together, so the task run is one statement (its completion).
fn a_handler_that_does_not_await_is_not_claimed<S: Fresh>() {
    let f = Fixture::<S>::new();
    f.sched(0, When::at_unix_ms(0), "sync", Options::default());
    f.run_at(5, 5, |_, t| {
        assert_eq!((t.status, t.attempts), (Status::Running, 1), "the handler sees its attempt");
        assert_eq!(f.get("sync").unwrap().status, Status::Pending, "not claimed in storage");
        ready(Ok(()))
    });
    assert_eq!(f.get("sync"), None);
}

/// Guarantee 14's write-behind cannot be seen: a batch of handlers that do not await
/// shares one delete of their completions, held back by the store the scheduler reads
/// through, yet every read during the run, the scheduler's or one of `store()`, sees the
/// tasks completed before it gone, with no flush called by anyone.
fn reads_during_a_run_see_its_completions<S: Fresh>() {
    let f = Fixture::<S>::new();
    for id in ["a", "b", "c"] {
        f.sched(0, When::at_unix_ms(0), id, Options::default());
    }
    let seen = RefCell::new(Vec::new());
    f.run_at(5, 5, |_, t| {
        if t.id == "b" {
            assert!(f.sched.store().inner().get("a").unwrap().is_some(), "the delete of `a` is held back, to share a statement");
            let ids = |tasks: Vec<Scheduled>| tasks.into_iter().map(|t| t.id).collect::<Vec<_>>();
            seen.borrow_mut().push((f.sched.store().get("a").unwrap(), ids(f.sched.store().list(&Filter::default()).unwrap())));
            seen.borrow_mut().push((f.sched.get("a").unwrap(), ids(f.sched.list(&Filter::default()).unwrap())));
        }
        ready(Ok(()))
    });
    assert_eq!(seen.take(), vec![(None, vec!["b".to_owned(), "c".to_owned()]); 2], "`store()` and the scheduler both see `a` completed");
    assert_eq!(f.sched.store().inner().list(&Filter::default()).unwrap(), vec![], "the run deleted every completed row");
}

/// Guarantee 6 as the adapter's panic hook records it (its `fail_in_flight`, called by hand
/// while the handler is pending): the running task's attempt fails with the panic message
/// at once, and the hook learns when to arm the alarm: the task behind the panic, overdue
/// (now + 1), not the failed alarm event's retry.
fn fail_in_flight_records_the_running_attempt_and_arms_for_the_task_behind<S: Fresh>() {
    let f = Fixture::<S>::new();
    let policy = RetryPolicy::attempts(2).backoff(Duration::from_millis(100), Duration::from_secs(1));
    f.sched(0, When::at_unix_ms(0), "p", Options::default().retry(policy));
    f.sched(0, When::at_unix_ms(1), "behind", Options::default());
    let mut run = Box::pin(f.sched.run_due(&f.alarm, &|| 5, None, 5, |_: u64, _| HandlerFut { result: None, yields: 0 }));
    assert!(run.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    assert_eq!(f.sched.fail_in_flight(7, "the handler panicked: boom"), Some(8), "arm for the task behind, overdue");
    drop(run);
    let p = f.get("p").unwrap();
    assert_eq!((p.status, p.due_ms, p.last_error.as_deref()), (Status::Pending, 107, Some("the handler panicked: boom")));
    f.sched.cancel("behind").unwrap();
    assert_eq!(f.sched.fail_in_flight(8, "the handler panicked: again"), Some(107), "then for the retry");
}

/// Guarantee 6, the other way: a task whose handler is still running in this isolate is not
/// mistaken for a crashed one by a second run (the test hook while an alarm runs).
fn a_second_run_leaves_an_in_flight_task_alone<S: Fresh>() {
    let f = Fixture::<S>::new();
    f.sched(0, When::at_unix_ms(0), "slow", Options::default());
    let five = || 5;
    let mut first = Box::pin(f.sched.run_due(&f.alarm, &five, None, 5, |_: u64, _| HandlerFut { result: Some(Ok(())), yields: 2 }));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(first.as_mut().poll(&mut cx).is_pending());
    let second = f.run_at(5, 5, |_, _| panic!("must not run the in-flight task"));
    assert!(second.more_due && second == { let mut empty = RunReport::default(); empty.more_due = true; empty }, "{second:?}");
    assert_eq!(f.get("slow").unwrap().status, Status::Running);
    let report = done(first).unwrap();
    assert_eq!((report.succeeded, report.interrupted), (1, 0));
    assert_eq!(f.get("slow"), None);
}

/// Guarantee 7: a payload that no longer deserialises goes dead with a decode error, and
/// the tasks around it run.
fn an_undecodable_payload_goes_dead_and_the_others_run<S: Fresh>() {
    let f = Fixture::<S>::new();
    f.sched(0, When::at_unix_ms(1), "before", Options::default());
    f.payload(0, When::at_unix_ms(2), "old", Options::default(), r#"{"Ping":{"n":1}}"#);
    f.sched(0, When::at_unix_ms(3), "after", Options::default());
    let ran = RefCell::new(Vec::new());
    let report = f.run_at(10, 10, |_, t| {
        ran.borrow_mut().push(t.id);
        ready(Ok(()))
    });
    assert_eq!(ran.take(), ["before", "after"]);
    assert_eq!((report.succeeded, report.died), (2, 1));
    let dead = f.sched.store().list(&Filter::default().status(Status::Dead)).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 0, "the handler never ran");
    let err = dead[0].last_error.as_deref().unwrap();
    assert!(err.starts_with(&Error::Decode { id: "old".into(), reason: String::new() }.to_string()), "{err}");
}

/// Guarantee 8: a handler that reschedules its own id keeps the new schedule, whether it
/// then returns `Ok` or `Err`; one that schedules a due task gets it run.
fn a_handler_rescheduling_itself_is_not_lost<S: Fresh>() {
    for result in [Ok(()), Err("after rescheduling".to_owned())] {
        let f = Fixture::<S>::new();
        f.sched(0, When::at_unix_ms(0), "self", Options::default());
        let ran = RefCell::new(Vec::new());
        f.run_at(0, 1, |_, t| {
            f.sched(0, When::at_unix_ms(500), "self", Options::default());
            f.sched(0, When::after(Duration::ZERO), "child", Options::default());
            ran.borrow_mut().push(t.id);
            ready(result.clone())
        });
        let t = f.get("self").unwrap();
        assert_eq!((t.due_ms, t.status, t.attempts, t.last_error), (500, Status::Pending, 0, None), "{result:?}");
        assert_eq!(f.get("child").unwrap().status, Status::Pending);
        f.run_at(0, 5, |_, t| {
            ran.borrow_mut().push(t.id);
            ready(Ok(()))
        });
        assert_eq!(ran.take(), ["self", "child"]);
    }
}

/// Guarantee 9: many due tasks are worked through `limit` at a time, each call reporting
/// truthfully whether more are due, in order, without loss; batches are read a bounded
/// number at a time.
fn bounded_calls_drain_many_due_tasks_in_order<S: Fresh>() {
    const N: usize = 600;
    let f = Fixture::<S>::new();
    let tasks = (0..N).map(|i| (When::at_unix_ms(i64::try_from(i % 7).unwrap()), i.to_string(), Options::id(format!("id{i:04}"))));
    done(f.sched.schedule_many(&f.alarm, 0, tasks, || unreachable!())).unwrap();
    let ran = RefCell::new(Vec::new());
    let mut calls = 0;
    loop {
        calls += 1;
        let before = ran.borrow().len();
        let report = f.run_at(10, 64, |n, _| {
            ran.borrow_mut().push(n);
            ready(Ok(()))
        });
        assert!(ran.borrow().len() - before <= 64);
        assert_eq!(report.more_due, ran.borrow().len() < N);
        if !report.more_due {
            break;
        }
    }
    assert_eq!(calls, N.div_ceil(64));
    let mut want: Vec<u64> = (0..N as u64).collect();
    want.sort_by_key(|i| (i % 7, *i));
    assert_eq!(ran.take(), want);
}

/// Guarantees 5 and 11: out of attempts, a task is dead with its last error, listed,
/// requeueable; `cancel` returns what it removed; keep-existing leaves the stored one.
fn dead_tasks_are_kept_listed_and_requeueable<S: Fresh>() {
    let f = Fixture::<S>::new();
    let policy = RetryPolicy::attempts(2).backoff(Duration::from_millis(100), Duration::from_secs(1));
    f.sched(0, When::at_unix_ms(0), "d", Options::default().retry(policy));
    let fail = |_: u64, t: Scheduled| ready(Err(format!("failure {}", t.attempts)));
    assert_eq!(f.run_at(0, 5, fail).retrying, 1);
    assert_eq!(f.get("d").unwrap().due_ms, 100);
    assert_eq!(f.run_at(99, 5, fail), RunReport::default(), "not before the backoff");
    assert_eq!(f.run_at(100, 5, fail).died, 1);
    let dead = f.sched.store().list(&Filter::default().status(Status::Dead)).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].attempts, dead[0].last_error.as_deref()), (2, Some("failure 2")));
    assert_eq!(f.sched.store().earliest().unwrap(), None, "a dead task arms no alarm");
    assert_eq!(f.alarm.armed(), None, "the run that killed the last task left no alarm");

    let kept = f.sched(200, When::at_unix_ms(0), "d", Options::default().keep_existing());
    assert_eq!(kept, dead[0]);

    let back = done(f.sched.requeue(&f.alarm, 300, "d")).unwrap();
    assert_eq!((back.status, back.due_ms, back.attempts), (Status::Pending, 300, 0));
    assert_eq!(f.alarm.armed(), Some(301), "a requeued task is armed for at once");
    assert_eq!(f.run_at(300, 5, |_, _| ready(Ok(()))).succeeded, 1);
    assert!(matches!(done(f.sched.requeue(&f.alarm, 300, "d")), Err(Error::NotFound(_))));
    f.sched(0, When::at_unix_ms(5), "live", Options::default());
    assert!(matches!(done(f.sched.requeue(&f.alarm, 300, "live")), Err(Error::NotDead(_))));

    let x = f.sched(0, When::at_unix_ms(5), "x", Options::default());
    assert_eq!(f.sched.cancel("x").unwrap(), Some(x));
    assert_eq!(f.sched.cancel("x").unwrap(), None);
    f.sched(0, When::at_unix_ms(5), "y", Options::default());
    assert!(f.sched.discard("y").unwrap(), "discard says it removed a stored task");
    assert_eq!(f.sched.get("y").unwrap(), None);
    assert!(!f.sched.discard("y").unwrap(), "and that there was none the second time");
}

/// Guarantee 4, missed ticks: after a late run, `Skip` resumes at the first tick after now
/// and `Burst` runs each missed tick; cron ticks advance likewise on the second.
fn missed_ticks_skip_or_burst<S: Fresh>() {
    for (missed, want) in [(MissedTicks::Skip, vec![1_000, 3_500]), (MissedTicks::Burst, vec![1_000, 1_500, 2_000, 2_500, 3_000, 3_500])] {
        let f = Fixture::<S>::new();
        f.sched(500, When::every(Duration::from_millis(500)).unwrap(), "i", Options::default().missed(missed));
        let seen = RefCell::new(Vec::new());
        for _ in 0..10 {
            f.run_at(3_200, 1, |_, t| {
                seen.borrow_mut().push(t.due_ms);
                ready(Ok(()))
            });
        }
        f.run_at(3_500, 10, |_, t| {
            seen.borrow_mut().push(t.due_ms);
            ready(Ok(()))
        });
        assert_eq!(seen.take(), want, "{missed:?}");
        assert_eq!(f.get("i").unwrap().due_ms, 4_000);
    }
    let f = Fixture::<S>::new();
    f.sched(BASE, When::cron("*/2 * * * * *").unwrap(), "c", Options::default().missed(MissedTicks::Burst));
    assert_eq!(f.get("c").unwrap().due_ms, BASE + 2_000);
    f.run_at(BASE + 7_123, 1, |_, _| ready(Ok(())));
    assert_eq!(f.get("c").unwrap().due_ms, BASE + 4_000);
}

/// Guarantees 2 and 14: a burst of schedules writes the native alarm once, in due order or
/// through `schedule_many`; the alarm is read once per object start, not per schedule; a
/// zero-delay task arms it just ahead of now.
fn a_burst_reads_and_writes_the_alarm_once<S: Fresh>() {
    let f = Fixture::<S>::new();
    for i in 0..100 {
        f.sched(BASE, When::at_unix_ms(BASE + 10 + i), &format!("t{i}"), Options::default());
    }
    assert_eq!((f.alarm.reads(), f.alarm.writes(), f.alarm.armed()), (1, 1, Some(BASE + 10)));
    let many = (0..1_000).map(|i| (When::after(Duration::ZERO), i.to_string(), Options::default()));
    let ids = done(f.sched.schedule_many(&f.alarm, BASE, many, || format!("g{}", rand_suffix()))).unwrap();
    assert_eq!(ids.len(), 1_000);
    assert_eq!((f.alarm.reads(), f.alarm.writes(), f.alarm.armed()), (1, 2, Some(BASE + 1)), "overdue: armed at now + 1");
    assert_eq!(done(f.sched.schedule_many(&f.alarm, BASE, Vec::new(), || unreachable!())).unwrap(), Vec::<String>::new());
    assert_eq!(f.alarm.writes(), 2);
}

fn rand_suffix() -> u64 {
    thread_local!(static N: Cell<u64> = const { Cell::new(0) });
    N.with(|n| n.replace(n.get() + 1))
}

/// Guarantee 10: the first read after a start re-arms an alarm that was lost, is in the
/// past, or is later than the earliest task; one that is right is left alone. Nothing is
/// written while a run is under way; a run ends by arming exactly, or deleting the alarm.
fn the_first_read_after_a_start_repairs_the_alarm<S: Fresh>() {
    let store = S::fresh();
    let f = Fixture { sched: Scheduler::new(store.clone()), alarm: SimulatedAlarm::default() };
    f.sched(BASE, When::at_unix_ms(BASE + 500), "t", Options::default());
    for (armed, want) in [(None, Some(BASE + 500)), (Some(BASE - 1), Some(BASE + 500)), (Some(BASE + 900), Some(BASE + 500)), (Some(BASE + 200), Some(BASE + 200))] {
        let alarm = SimulatedAlarm::default();
        if let Some(t) = armed {
            done(alarm.set(t)).unwrap();
        }
        let restarted = Scheduler::new(store.clone());
        assert_eq!(done(restarted.armed(&alarm, BASE)).unwrap(), want, "armed {armed:?}");
        assert_eq!(alarm.armed(), want);
        assert_eq!(done(restarted.armed(&alarm, BASE)).unwrap(), want, "remembered");
        assert_eq!(alarm.reads(), 1, "read once");
    }
    f.run_at(BASE + 500, 10, |_, _| ready(Ok(())));
    assert_eq!(f.alarm.armed(), None, "nothing pending: the alarm is deleted");
}

/// Guarantee 13: a stored task the runtime refuses to arm goes dead with the runtime's
/// error, and the scheduler arms the next one; the object keeps working.
fn a_task_the_runtime_refuses_to_arm_goes_dead_and_the_next_is_armed<S: Fresh>() {
    let f = Fixture { sched: Scheduler::new(S::fresh()), alarm: SimulatedAlarm::refusing_after(BASE + 1_000) };
    f.sched(BASE, When::at_unix_ms(BASE + 5_000), "far", Options::default());
    let far = f.get("far").unwrap();
    assert_eq!(far.status, Status::Dead);
    assert!(far.last_error.as_deref().unwrap().contains("refused to arm"), "{far:?}");
    f.sched(BASE, When::at_unix_ms(BASE + 500), "near", Options::default());
    // The probe (now + 1) the runtime accepted is left to fire: it is earlier than "near".
    assert_eq!(f.alarm.armed(), Some(BASE + 1));
    let ran = RefCell::new(Vec::new());
    f.run_at(BASE + 500, 10, |_, t| {
        ran.borrow_mut().push(t.id);
        ready(Ok(()))
    });
    assert_eq!(ran.take(), ["near"]);
}

/// Guarantees 1 and 13 at the edge of the range: a retry or a next tick past what the
/// runtime can arm makes the task dead with the reason; the test hook refuses a time out of
/// range before running anything; the other tasks keep running.
fn computed_times_past_the_range_make_the_task_dead<S: Fresh>() {
    let f = Fixture::<S>::new();
    let huge = Duration::from_millis(10_000_000_000_000);
    f.sched(BASE, When::at_unix_ms(BASE), "backoff", Options::default().retry(RetryPolicy::attempts(3).backoff(huge, huge)));
    f.sched(BASE, When::every(Duration::from_secs(1)).unwrap(), "tick", Options::default());
    f.sched(BASE, When::at_unix_ms(MAX_TIME_MS), "last", Options::default());
    let out = done(f.sched.run_due(&f.alarm, &|| BASE, Some(MAX_TIME_MS + 1), 10, |_: u64, _| ready(Ok(()))));
    assert!(matches!(out, Err(Error::TimeOutOfRange { .. })), "{out:?}");
    assert_eq!(f.sched.store().list(&Filter::default().status(Status::Dead)).unwrap(), vec![], "nothing ran");
    let report = done(f.sched.run_due(&f.alarm, &|| BASE, Some(MAX_TIME_MS), 10, |_: u64, t: Scheduled| {
        ready(if t.id == "backoff" { Err("boom".into()) } else { Ok(()) })
    }))
    .unwrap();
    assert_eq!((report.succeeded, report.died), (2, 2), "{report:?}");
    let backoff = f.get("backoff").unwrap();
    assert!(backoff.last_error.as_deref().unwrap().contains("no retry: time"), "{backoff:?}");
    let tick = f.get("tick").unwrap();
    assert_eq!(tick.status, Status::Dead, "{tick:?}");
    assert_eq!(f.get("last"), None, "a task due at the last time runs");
    f.sched(BASE, When::after(Duration::ZERO), "after", Options::default());
    assert_eq!(f.run_at(BASE + 1, 10, |_, _| ready(Ok(()))).succeeded, 1, "the object still works");
}

/// Guarantee 13, input side: times, payloads and ids over their limits are refused before
/// anything is stored, one at a time and in a batch.
fn bad_input_is_refused_before_anything_is_written<S: Fresh>() {
    let f = Fixture::<S>::new();
    let refuse = |when: When, payload: String, id: &str| {
        done(f.sched.schedule(&f.alarm, BASE, &when, payload, &Options::id(id), || unreachable!())).unwrap_err()
    };
    assert!(matches!(refuse(When::at_unix_ms(MAX_TIME_MS + 1), "0".into(), "a"), Error::TimeOutOfRange { .. }));
    assert!(matches!(refuse(When::at_unix_ms(253_402_300_799_999), "0".into(), "a"), Error::TimeOutOfRange { .. }));
    assert!(matches!(refuse(When::after(Duration::from_secs(300 * 365 * 86_400)), "0".into(), "a"), Error::TimeOutOfRange { .. }));
    let big = "1".repeat(lumenize_alarms::core::MAX_PAYLOAD_BYTES + 1);
    assert!(matches!(refuse(When::after(Duration::ZERO), big, "a"), Error::TooLarge { what: "payload", .. }));
    let long = "i".repeat(lumenize_alarms::core::MAX_ID_BYTES + 1);
    assert!(matches!(refuse(When::after(Duration::ZERO), "0".into(), &long), Error::TooLarge { what: "id", .. }));
    let batch = vec![
        (When::after(Duration::ZERO), "0".to_owned(), Options::id("ok")),
        (When::at_unix_ms(MAX_TIME_MS + 1), "0".to_owned(), Options::id("bad")),
    ];
    assert!(done(f.sched.schedule_many(&f.alarm, BASE, batch, || unreachable!())).is_err());
    assert_eq!(f.sched.store().list(&Filter::default()).unwrap(), vec![], "nothing stored");
    assert_eq!(f.alarm.writes(), 0, "nothing armed");
}

/// `Event::Scheduled` reports what was stored, as its docs say: `schedule` and
/// `schedule_many` with `keep_existing` report no task they kept out (its id was stored
/// already, or came earlier in the burst), without it every task.
fn scheduled_is_reported_only_for_tasks_stored<S: Fresh>() {
    let f = Fixture::<S>::new();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    f.sched.on_event(move |e| {
        if let Event::Scheduled(t) = e {
            log.borrow_mut().push(t.id.clone());
        }
    });
    f.sched(0, When::at_unix_ms(100), "old", Options::default());
    f.sched(0, When::at_unix_ms(100), "old", Options::default().keep_existing());
    let burst = |ids: &[&str], keep: bool| {
        let tasks = ids.iter().map(|id| {
            let opts = Options::id(*id);
            (When::at_unix_ms(100), "0".to_owned(), if keep { opts.keep_existing() } else { opts })
        });
        done(f.sched.schedule_many(&f.alarm, 0, tasks.collect::<Vec<_>>(), || unreachable!())).unwrap()
    };
    assert_eq!(burst(&["old", "new", "new", "other"], true), ["old", "new", "new", "other"], "every id is returned");
    burst(&["old", "old"], false);
    assert_eq!(seen.take(), ["old", "new", "other", "old", "old"]);
}

/// Lifecycle events: each step of a task is reported, with lateness, and the run's report
/// sums the lateness.
fn every_step_of_a_task_is_an_event<S: Fresh>() {
    let f = Fixture::<S>::new();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    f.sched.on_event(move |e| {
        log.borrow_mut().push(match e {
            Event::Scheduled(t) => format!("scheduled {}", t.id),
            Event::Started { task, lateness_ms } => format!("started {} #{} late {lateness_ms}", task.id, task.attempts),
            Event::Succeeded { task, next_ms } => format!("succeeded {} next {next_ms:?}", task.id),
            Event::Retrying { task, error, next_ms } => format!("retrying {} ({error}) at {next_ms}", task.id),
            Event::Dead { task, error } => format!("dead {} ({error})", task.id),
            Event::CutShort { task, lateness_ms } => format!("cut short {} #{} late {lateness_ms}", task.id, task.attempts),
            _ => "other".into(),
        });
    });
    let policy = RetryPolicy::attempts(2).backoff(Duration::from_millis(10), Duration::from_millis(10));
    f.sched(0, When::at_unix_ms(100), "t", Options::default().retry(policy));
    let crashed = block_on(f.sched.run_due(&f.alarm, &|| 103, None, 5, |_: u64, _| HandlerFut { result: None, yields: 0 }));
    assert!(crashed.is_none());
    let restarted = Fixture { sched: Scheduler::new(f.sched.store().inner().clone()), alarm: SimulatedAlarm::default() };
    let log = seen.clone();
    restarted.sched.on_event(move |e| {
        if let Event::CutShort { task, lateness_ms } = e {
            log.borrow_mut().push(format!("cut short {} #{} late {lateness_ms}", task.id, task.attempts));
        }
        if let Event::Dead { task, .. } = e {
            log.borrow_mut().push(format!("dead {}", task.id));
        }
    });
    let report = restarted.run_at(104, 5, |_, _| ready(Ok(())));
    assert_eq!((report.interrupted, report.retrying), (1, 1));
    let report = f.run_at(120, 5, |_, _| ready(Err("nope".into())));
    assert_eq!((report.started, report.max_lateness_ms, report.total_lateness_ms, report.died), (1, 6, 6, 1));
    assert_eq!(
        seen.take(),
        [
            "scheduled t",
            "started t #1 late 3",
            "cut short t #1 late 4",
            "started t #2 late 6",
            "dead t (nope)",
        ]
    );
}

/// Opening repairs objects bricked by an earlier release: live tasks due after the range
/// become dead with the reason, and the others are untouched.
fn repair_kills_tasks_due_after_the_range<S: Fresh>() {
    let store = S::fresh();
    let mut bricked = Fixture { sched: Scheduler::new(store.clone()), alarm: SimulatedAlarm::refusing_after(i64::MAX) };
    bricked.sched(BASE, When::at_unix_ms(BASE + 1), "ok", Options::default());
    // What an earlier release stored: a time past the range, written straight to the store.
    let mut old = bricked.get("ok").unwrap();
    old.id = "year-9999".into();
    old.due_ms = 253_402_300_799_999;
    old.tick_ms = old.due_ms;
    store.insert(&old, false).unwrap();
    bricked.sched = Scheduler::new(store.clone());
    assert_eq!(bricked.sched.repair().unwrap(), 1);
    let dead = bricked.get("year-9999").unwrap();
    assert_eq!(dead.status, Status::Dead);
    assert!(dead.last_error.unwrap().contains("after the latest time the runtime can arm"));
    assert_eq!(bricked.get("ok").unwrap().status, Status::Pending);
}

/// Guarantee 10 without a restart: an alarm deleted behind the scheduler's back (the runtime
/// gave up retrying it) is noticed once its time has passed, and the task fires.
fn a_lost_alarm_is_noticed_once_its_time_has_passed<S: Fresh>() {
    use lumenize_alarms::core::arming::RECHECK_AFTER_MS;
    let f = Fixture::<S>::new();
    f.sched(BASE, When::at_unix_ms(BASE + 100), "lost", Options::default());
    f.alarm.clear();
    f.sched(BASE + 50, When::at_unix_ms(BASE + 10_000), "before", Options::default());
    assert_eq!(f.alarm.armed(), None, "the remembered time has not passed: nothing to notice yet");
    f.sched(BASE + 101, When::at_unix_ms(BASE + 10_000), "just-after", Options::default());
    assert_eq!((f.alarm.armed(), f.alarm.reads()), (None, 1), "just past: it may be firing now");
    let later = BASE + RECHECK_AFTER_MS + 1;
    f.sched(later, When::at_unix_ms(BASE + 10_000), "after", Options::default());
    assert_eq!(f.alarm.armed(), Some(later + 1), "the overdue task is armed just ahead of now");
    assert_eq!(f.alarm.reads(), 2);
}

/// A long burst of single schedules while the alarm is due (it cannot fire during the
/// request) neither rewrites the alarm nor reads it more than once a second.
fn a_due_alarm_is_left_alone_during_a_long_burst<S: Fresh>() {
    let f = Fixture::<S>::new();
    f.sched(BASE, When::after(Duration::ZERO), "first", Options::default());
    let (reads, writes) = (f.alarm.reads(), f.alarm.writes());
    for i in 0..3_000 {
        f.sched(BASE + i, When::after(Duration::ZERO), &format!("t{i}"), Options::default());
    }
    assert_eq!(f.alarm.writes(), writes, "no write: the alarm is due already");
    assert!(f.alarm.reads() - reads <= 3, "{} reads over 3 s", f.alarm.reads() - reads);
}

/// Guarantee 2 (nothing left armed): cancel writes no alarm; when the alarm armed for a
/// cancelled task fires, the run finds nothing due and arms the next task, or leaves no
/// alarm behind, without a write when nothing is pending.
fn an_alarm_left_by_a_cancel_fires_once_and_leaves_nothing<S: Fresh>() {
    let f = Fixture::<S>::new();
    f.sched(BASE, When::at_unix_ms(BASE + 100), "a", Options::default());
    f.sched(BASE, When::at_unix_ms(BASE + 200), "b", Options::default());
    let writes = f.alarm.writes();
    f.sched.cancel("a").unwrap();
    assert_eq!((f.alarm.armed(), f.alarm.writes()), (Some(BASE + 100), writes), "cancel writes no alarm");
    assert_eq!(f.run_at(BASE + 100, 10, |_, _| ready(Ok(()))).started, 0);
    assert_eq!(f.alarm.armed(), Some(BASE + 200), "the empty run arms the next task");
    f.sched.cancel("b").unwrap();
    let writes = f.alarm.writes();
    assert_eq!(f.run_at(BASE + 200, 10, |_, _| ready(Ok(()))).started, 0);
    assert_eq!((f.alarm.armed(), f.alarm.writes()), (None, writes), "nothing pending: nothing armed, nothing written");
}

/// Guarantee 2 and `LEAVE_TO_FIRE_MS`: a run that is not the native alarm's (the test hook)
/// and leaves nothing pending deletes an alarm armed further ahead, but leaves one due
/// within a second to fire once, empty: that costs less than a write.
fn a_run_that_empties_the_queue_leaves_a_near_alarm_to_fire<S: Fresh>() {
    let f = Fixture::<S>::new();
    f.sched(BASE, When::at_unix_ms(BASE + 100), "near", Options::default());
    let writes = f.alarm.writes();
    let hook = |at: i64| done(f.sched.run_due(&f.alarm, &|| BASE, Some(at), 10, |_: u64, _| ready(Ok(())))).unwrap();
    assert_eq!(hook(BASE + 100).succeeded, 1);
    assert_eq!((f.alarm.armed(), f.alarm.writes()), (Some(BASE + 100), writes), "near: left to fire, not written");
    assert_eq!(f.run_at(BASE + 100, 10, |_, _| ready(Ok(()))).started, 0, "it fires once, empty");
    assert_eq!((f.alarm.armed(), f.alarm.writes()), (None, writes), "and leaves nothing");

    f.sched(BASE, When::at_unix_ms(BASE + LEAVE_TO_FIRE_MS + 1), "far", Options::default());
    f.sched.cancel("far").unwrap();
    assert_eq!(f.alarm.armed(), Some(BASE + LEAVE_TO_FIRE_MS + 1));
    assert_eq!(hook(BASE).started, 0);
    assert_eq!(f.alarm.armed(), None, "an alarm further ahead is deleted");
}

/// A handler that defers its own task keeps it in place, due again at the time it asked,
/// with one update; `Err` still retries, and deferring a task that is not running is an
/// error.
fn a_handler_can_run_its_task_again_in_place<S: Fresh>() {
    let f = Fixture::<S>::new();
    let first = f.sched(0, When::at_unix_ms(10), "poll", Options::default());
    assert!(matches!(f.sched.defer("poll", 500), Err(Error::NotFound(_))), "not running");
    let report = f.run_at(10, 10, |_, t| {
        f.sched.defer(&t.id, 500).unwrap();
        assert!(matches!(f.sched.defer(&t.id, MAX_TIME_MS + 1), Err(Error::TimeOutOfRange { .. })));
        ready(Ok(()))
    });
    assert_eq!(report.succeeded, 1);
    let again = f.get("poll").unwrap();
    assert_eq!((again.seq, again.due_ms, again.status, again.attempts), (first.seq, 500, Status::Pending, 0), "in place");
    assert_eq!(f.alarm.armed(), Some(500));
    f.run_at(500, 10, |_, t| {
        f.sched.defer(&t.id, 900).unwrap();
        ready(Err("failed".into()))
    });
    let retried = f.get("poll").unwrap();
    assert_eq!((retried.attempts, retried.last_error.as_deref()), (1, Some("failed")), "an Err is retried as usual");
}

/// What a run's tasks started may end before the run arms the alarm (lumenize-call's sends,
/// through `Alarms::run_due`): `settle` is told when the earliest task still pending is
/// due, and a task it removes leaves nothing to arm. A call's task that sends defers itself
/// to its backstop; its reply, in `settle`, settles the call and cancels the task: the run
/// writes no alarm for it (the alarm path's second write). Without the reply in time, the
/// run arms the backstop as before.
fn a_run_settles_what_its_tasks_started_before_it_arms<S: Fresh>() {
    /// A run of task "call", which defers itself to its backstop 10 s on (as a call's task
    /// that sends does), settled by `cancel`ling it or not (its reply came in time or not);
    /// when `settle` was told the earliest pending task is due, and the alarm writes of the run.
    fn settled_run<S: Fresh>(f: &Fixture<S>, cancel: bool) -> (Option<i64>, u32) {
        f.alarm.clear();
        let writes = f.alarm.writes();
        let until = Cell::new(None);
        let run = f.sched.run_due_settling(
            &f.alarm,
            &|| BASE,
            None,
            10,
            |_: u64, t: Scheduled| {
                f.sched.defer(&t.id, BASE + 10_000).unwrap();
                ready(Ok(()))
            },
            async |until_ms: &dyn Fn() -> i64| {
                until.set(Some(until_ms()));
                if cancel {
                    f.sched.cancel("call").unwrap();
                }
            },
        );
        assert_eq!(done(run).unwrap().succeeded, 1);
        (until.get(), f.alarm.writes() - writes)
    }
    for replied in [true, false] {
        let f = Fixture::<S>::new();
        f.sched(BASE, When::at_unix_ms(BASE), "call", Options::default());
        f.sched(BASE, When::at_unix_ms(BASE + 60_000), "later", Options::default());
        let (until, writes) = settled_run(&f, replied);
        assert_eq!(until, Some(BASE + 10_000), "the backstop is the earliest still pending");
        let armed = if replied { BASE + 60_000 } else { BASE + 10_000 };
        assert_eq!((f.alarm.armed(), writes), (Some(armed), 1), "replied: {replied}");
    }
    // Nothing left: no write at all (the native alarm was spent as it fired).
    let f = Fixture::<S>::new();
    f.sched(BASE, When::at_unix_ms(BASE), "call", Options::default());
    let (until, writes) = settled_run(&f, true);
    assert_eq!((until, f.alarm.armed(), writes), (Some(BASE + 10_000), None, 0));
}

/// The first read after a start is done once: two events that both find the alarm unknown
/// (the read that opening starts, and a schedule) arm it once between them.
fn concurrent_first_reads_arm_once<S: Fresh>() {
    /// An alarm whose reads take a snapshot, then complete only on the next poll, so that two
    /// reads overlap (as two `getAlarm` promises do).
    struct Slow(SimulatedAlarm);
    impl NativeAlarm for Slow {
        async fn get(&self) -> lumenize_alarms::Result<Option<i64>> {
            let snapshot = self.0.get().await;
            let mut polled = false;
            std::future::poll_fn(|cx| {
                if polled {
                    return std::task::Poll::Ready(());
                }
                polled = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            })
            .await;
            snapshot
        }
        async fn set(&self, at_ms: i64) -> lumenize_alarms::Result<()> {
            self.0.set(at_ms).await
        }
        async fn delete(&self) -> lumenize_alarms::Result<()> {
            self.0.delete().await
        }
    }
    let sched = Scheduler::new(S::fresh());
    let alarm = Slow(SimulatedAlarm::default());
    let mut first = Box::pin(sched.armed(&alarm, BASE));
    assert!(first.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    let opts = Options::id("t");
    done(sched.schedule(&alarm, BASE, &When::after(Duration::ZERO), "0".into(), &opts, || unreachable!())).unwrap();
    done(first).unwrap();
    assert_eq!((alarm.0.armed(), alarm.0.writes()), (Some(BASE + 1), 1));
}

for_each_store!(
    an_interval_task_stays_on_its_grid_after_a_retry,
    a_run_settles_what_its_tasks_started_before_it_arms,
    same_time_tasks_run_in_insertion_order_and_never_early,
    a_crash_mid_handler_reruns_the_task_and_counts_the_attempt,
    fail_in_flight_records_a_panic_before_the_first_await,
    a_panic_after_an_await_counts_as_a_cut_short_attempt,
    a_handler_that_does_not_await_is_not_claimed,
    reads_during_a_run_see_its_completions,
    fail_in_flight_records_the_running_attempt_and_arms_for_the_task_behind,
    a_second_run_leaves_an_in_flight_task_alone,
    an_undecodable_payload_goes_dead_and_the_others_run,
    a_handler_rescheduling_itself_is_not_lost,
    bounded_calls_drain_many_due_tasks_in_order,
    dead_tasks_are_kept_listed_and_requeueable,
    missed_ticks_skip_or_burst,
    a_burst_reads_and_writes_the_alarm_once,
    the_first_read_after_a_start_repairs_the_alarm,
    a_task_the_runtime_refuses_to_arm_goes_dead_and_the_next_is_armed,
    computed_times_past_the_range_make_the_task_dead,
    bad_input_is_refused_before_anything_is_written,
    every_step_of_a_task_is_an_event,
    scheduled_is_reported_only_for_tasks_stored,
    repair_kills_tasks_due_after_the_range,
    a_lost_alarm_is_noticed_once_its_time_has_passed,
    a_due_alarm_is_left_alone_during_a_long_burst,
    an_alarm_left_by_a_cancel_fires_once_and_leaves_nothing,
    a_run_that_empties_the_queue_leaves_a_near_alarm_to_fire,
    a_handler_can_run_its_task_again_in_place,
    concurrent_first_reads_arm_once,
);

/// Guarantee 14 on the SQL store: `schedule_many` stores a thousand tasks in one statement
/// (plus one read of the earliest), and running a task costs at most two small conditional
/// statements (a claim, if its handler awaits, and its completion, which a batch of
/// handlers that do not await shares) plus its share of the batch reads.
#[test]
fn sql_costs_one_statement_per_burst_and_at_most_two_per_task_run() {
    let store = Rc::new(support::counting_store());
    let sched = Scheduler::new(store.clone());
    let alarm = SimulatedAlarm::default();
    let statements = || store.exec().statements.get();
    done(sched.schedule(&alarm, BASE, &When::after(Duration::ZERO), "0".into(), &Options::id("first"), || unreachable!())).unwrap();
    let before = statements();
    let many = (0..999).map(|i| (When::after(Duration::ZERO), i.to_string(), Options::id(format!("t{i:04}"))));
    done(sched.schedule_many(&alarm, BASE, many, || unreachable!())).unwrap();
    assert_eq!(statements() - before, 2, "one INSERT for the batch, and a read of the earliest task");
    let before = statements();
    done(sched.schedule(&alarm, BASE, &When::after(Duration::ZERO), "0".into(), &Options::id("one"), || unreachable!())).unwrap();
    assert_eq!(statements() - before, 1, "one INSERT for a task");
    let before = statements();
    let report = done(sched.run_due(&alarm, &|| BASE, None, 1_001, |_: u64, _| ready(Ok(())))).unwrap();
    assert_eq!(report.succeeded, 1_001);
    let batches = 1_001usize.div_ceil(lumenize_alarms::core::FETCH);
    // A handler that does not await is not claimed, and the batch's completions are
    // deleted in one statement: per batch, its read and its delete; then the empty read
    // that ends the loop, and the earliest for the alarm.
    assert_eq!(statements() - before, 2 * batches + 1 + 1);
    // A handler that awaits is claimed first, and the completions before it are deleted
    // before it awaits: two statements per task, less the first task's delete.
    let many = (0..100).map(|i| (When::after(Duration::ZERO), i.to_string(), Options::id(format!("a{i:04}"))));
    done(sched.schedule_many(&alarm, BASE, many, || unreachable!())).unwrap();
    let before = statements();
    let report = done(sched.run_due(&alarm, &|| BASE, None, 100, |_: u64, _| HandlerFut { result: Some(Ok(())), yields: 1 })).unwrap();
    assert_eq!(report.succeeded, 100);
    assert_eq!(statements() - before, 2 * 100 - 1 + 1 + 1 + 1 + 1);
}

/// The executor classifies SQLite's failures once, into a kind the store matches on: a
/// missing table (which the store re-creates after `deleteAll`), a value over the Durable
/// Object's 2 MB, anything else.
#[test]
fn the_executor_classifies_storage_errors_by_kind() {
    let db = support::Sqlite::new();
    let kind = |result: lumenize_alarms::Result<Vec<Vec<lumenize_alarms::sql::Value>>>| match result {
        Err(Error::Storage(e)) => e.kind(),
        other => panic!("not a storage error: {other:?}"),
    };
    assert_eq!(kind(db.query("SELECT * FROM nowhere", vec![])), StorageKind::NoSuchTable);
    let big = "x".repeat(support::DURABLE_OBJECT_MAX_LENGTH as usize + 1);
    assert_eq!(kind(db.query("SELECT ?", vec![big.into()])), StorageKind::TooBig);
    assert_eq!(kind(db.query("SELEKT 1", vec![])), StorageKind::Other);
}

/// The SQL store migrates a table written by release 0.1 (schema version 1, JSON columns),
/// and opening repairs its bricked rows.
#[test]
fn sql_store_migrates_a_version_1_table() {
    let db = support::Sqlite::new();
    db.script(
        "CREATE TABLE _lumenize_alarms (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
            schedule TEXT NOT NULL, due_ms INTEGER NOT NULL, tick_ms INTEGER NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL,
            attempts INTEGER NOT NULL, retry TEXT NOT NULL, missed TEXT NOT NULL, last_error TEXT, created_ms INTEGER NOT NULL);
         CREATE INDEX _lumenize_alarms_live ON _lumenize_alarms (due_ms, seq) WHERE status != 'dead';
         CREATE TABLE _lumenize_alarms_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
         INSERT INTO _lumenize_alarms_meta VALUES ('schema_version', 1);
         INSERT INTO _lumenize_alarms VALUES (4, 'cron', 'cron', '{\"cron\":\"0 3 * * *\"}', 100, 100, '1', 'pending', 0,
            '{\"max_attempts\":5,\"initial_backoff_ms\":10,\"factor\":3,\"max_backoff_ms\":99}', '\"burst\"', NULL, 7);
         INSERT INTO _lumenize_alarms VALUES (9, 'every', 'every', '{\"every\":{\"interval_ms\":250}}', 200, 200, '2', 'dead', 3,
            '{\"max_attempts\":3,\"initial_backoff_ms\":1000,\"factor\":2,\"max_backoff_ms\":300000}', '\"skip\"', 'boom', 8);
         INSERT INTO _lumenize_alarms VALUES (12, 'y9999', 'once', '\"once\"', 253402300799999, 253402300799999, '3', 'pending', 0,
            '{\"max_attempts\":3,\"initial_backoff_ms\":1000,\"factor\":2,\"max_backoff_ms\":300000}', '\"skip\"', NULL, 9);",
    )
    .unwrap();
    let store = lumenize_alarms::sql::SqlStore::open(db).unwrap();
    let cron = store.get("cron").unwrap().unwrap();
    assert_eq!(cron.schedule, lumenize_alarms::Schedule::Cron { expr: "0 3 * * *".into(), zone: None });
    assert_eq!((cron.seq, cron.due_ms, cron.missed), (4, 100, MissedTicks::Burst));
    assert_eq!(cron.retry, support::policy(5, 10, 3, 99));
    let every = store.get("every").unwrap().unwrap();
    assert_eq!((every.schedule, every.status, every.attempts), (lumenize_alarms::Schedule::Every { interval_ms: 250 }, Status::Dead, 3));
    assert_eq!(every.last_error.as_deref(), Some("boom"));
    let sched = Scheduler::new(store);
    assert_eq!(sched.repair().unwrap(), 1);
    assert_eq!(sched.store().get("y9999").unwrap().unwrap().status, Status::Dead);
    assert!(sched.store().insert(&cron.edit(|t| t.id = "new".into()), false).unwrap());
    assert!(sched.store().get("new").unwrap().unwrap().seq > 12, "sequence numbers go on after the migrated ones");
    let version = sched.store().inner().exec().query("SELECT value FROM _lumenize_alarms_meta WHERE key = 'schema_version'", vec![]).unwrap();
    assert_eq!(version, vec![vec![lumenize_alarms::sql::Value::Integer(lumenize_alarms::sql::SCHEMA_VERSION)]]);
}

/// The SQL store creates its table again when the object's storage was deleted under it
/// (`deleteAll`, which deletes the native alarm too), and the scheduler then reads the
/// alarm again instead of trusting its memory.
#[test]
fn sql_store_survives_delete_all() {
    let store = Rc::new(support::sql_store());
    let f = Fixture { sched: Scheduler::new(store.clone()), alarm: SimulatedAlarm::default() };
    f.sched(BASE, When::at_unix_ms(BASE + 10), "a", Options::default());
    assert_eq!(f.alarm.armed(), Some(BASE + 10));
    store.exec().script("DROP TABLE _lumenize_alarms; DROP TABLE _lumenize_alarms_meta").unwrap();
    f.alarm.clear();
    f.sched(BASE, When::at_unix_ms(BASE + 20), "b", Options::default());
    assert_eq!(f.get("a"), None);
    assert_eq!(f.get("b").unwrap().due_ms, BASE + 20);
    assert_eq!(f.alarm.armed(), Some(BASE + 20), "armed again although the memory said BASE + 10");
}

