//! Guarantee 16: a run that fails re-arms the native alarm with a backoff, never in a tight
//! loop. The scheduler runs over the real SQL store behind a switch that makes its batch
//! reads fail (as every read of an object with a poisoned row failed before rows were read
//! one by one), with a simulated alarm that fires exactly when it is armed.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use lumenize_alarms::core::backoff::{failure_backoff_ms, FAILURE_BACKOFF_MS, MAX_FAILURE_BACKOFF_MS};
use lumenize_alarms::core::{Change, Filter, Key, Scheduler, SimulatedAlarm, Store};
use lumenize_alarms::sql::SqlStore;
use lumenize_alarms::{Counts, Error, Options, Result, Scheduled, StorageError, When};
use support::{done, ready, Sqlite};

const BASE: i64 = 1_700_000_000_000;

/// The SQL store, whose reads of due tasks fail while `failing` is set (the other
/// operations work, as `earliest` did when the batch reads failed on a poisoned row).
struct Failing {
    inner: SqlStore<Sqlite>,
    failing: Cell<bool>,
}

impl Store for Failing {
    fn insert(&self, task: &Scheduled, keep_existing: bool) -> Result<bool> {
        self.inner.insert(task, keep_existing)
    }
    fn insert_all(&self, tasks: &[Scheduled], keep_existing: bool) -> Result<Vec<bool>> {
        self.inner.insert_all(tasks, keep_existing)
    }
    fn get(&self, id: &str) -> Result<Option<Scheduled>> {
        self.inner.get(id)
    }
    fn list(&self, filter: &Filter) -> Result<Vec<Scheduled>> {
        self.inner.list(filter)
    }
    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Scheduled>> {
        if self.failing.get() {
            return Err(StorageError::other("unreadable rows of _lumenize_alarms: invalid type: floating point 9.22e18, expected i64").into());
        }
        self.inner.due(now_ms, limit)
    }
    fn earliest(&self) -> Result<Option<Key>> {
        self.inner.earliest()
    }
    fn remove(&self, id: &str) -> Result<Option<Scheduled>> {
        self.inner.remove(id)
    }
    fn discard(&self, id: &str) -> Result<bool> {
        self.inner.discard(id)
    }
    fn requeue(&self, id: &str, due_ms: i64) -> Result<Option<Scheduled>> {
        self.inner.requeue(id, due_ms)
    }
    fn change(&self, key: &Key, change: &Change) -> Result<bool> {
        self.inner.change(key, change)
    }
    fn remove_all(&self, keys: &[Key]) -> Result<usize> {
        self.inner.remove_all(keys)
    }
    fn requeue_dead(&self, filter: &Filter, due_ms: i64, limit: usize) -> Result<usize> {
        self.inner.requeue_dead(filter, due_ms, limit)
    }
    fn counts(&self) -> Result<Counts> {
        self.inner.counts()
    }
    fn kill_after(&self, max_ms: i64, error: &str) -> Result<usize> {
        self.inner.kill_after(max_ms, error)
    }
}

struct Object {
    store: Rc<Failing>,
    sched: Scheduler<Rc<Failing>>,
    alarm: SimulatedAlarm,
    runs: Cell<u32>,
    ran: RefCell<Vec<String>>,
}

impl Object {
    fn new() -> Self {
        let store = Rc::new(Failing { inner: support::sql_store(), failing: Cell::new(false) });
        Object { sched: Scheduler::new(store.clone()), store, alarm: SimulatedAlarm::default(), runs: Cell::new(0), ran: RefCell::new(Vec::new()) }
    }

    fn schedule(&self, now: i64, id: &str, when: When) {
        done(self.sched.schedule(&self.alarm, now, &when, "0".into(), &Options::id(id), || unreachable!())).unwrap();
    }

    /// The native alarm fires (the runtime spends it) and the object runs what is due at
    /// that time; `None` if nothing was armed.
    fn fire(&self) -> Option<(i64, Result<lumenize_alarms::RunReport>)> {
        let at = self.alarm.armed()?;
        self.alarm.clear();
        self.runs.set(self.runs.get() + 1);
        let report = done(self.sched.run_due(&self.alarm, &|| at, None, 100, |_: u64, t: Scheduled| {
            self.ran.borrow_mut().push(t.id);
            ready(Ok(()))
        }));
        Some((at, report))
    }
}

/// A run that fails arms the alarm 1 s ahead, then 2 s, 4 s, ... up to a minute while the
/// failure lasts, never now + 1 ms (which is what made an object whose reads failed run its
/// alarm about 50 times a second: the failed run armed its overdue task for now + 1 ms); in
/// ten minutes of failure the object runs 16 times, not hundreds of thousands.
#[test]
fn a_failing_run_rearms_with_a_growing_backoff_instead_of_spinning() {
    let o = Object::new();
    o.schedule(BASE, "due", When::after(Duration::ZERO));
    assert_eq!(o.alarm.armed(), Some(BASE + 1));
    o.store.failing.set(true);
    let mut waits = Vec::new();
    let mut last = BASE + 1;
    while let Some((at, report)) = o.fire() {
        assert!(matches!(report, Err(Error::Storage(_))), "{report:?}");
        assert!(at >= last, "fired at {at}, before the previous {last}");
        let next = o.alarm.armed().expect("a failed run re-arms the alarm");
        waits.push(next - at);
        last = at;
        if at > BASE + 600_000 {
            break;
        }
    }
    let want: Vec<i64> = (1..=u32::try_from(waits.len()).unwrap()).map(failure_backoff_ms).collect();
    assert_eq!(waits, want);
    assert_eq!(&waits[..7], &[1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000]);
    assert_eq!(o.runs.get(), 16, "runs in ten minutes of failure");
    assert_eq!(o.sched.failed_runs(), 16);
    assert!(o.ran.borrow().is_empty());

    // The failure clears: the next run (at the end of the backoff) runs the task, and the
    // backoff is over.
    o.store.failing.set(false);
    let (_, report) = o.fire().unwrap();
    assert_eq!(report.unwrap().succeeded, 1);
    assert_eq!((o.ran.take(), o.sched.failed_runs(), o.alarm.armed()), (vec!["due".to_owned()], 0, None));
    // A new failure starts again from a second.
    o.schedule(last, "again", When::at_unix_ms(last + 5));
    o.store.failing.set(true);
    let (at, _) = o.fire().unwrap();
    assert_eq!(o.alarm.armed(), Some(at + FAILURE_BACKOFF_MS));
}

/// While a failure's backoff lasts, nothing arms the alarm earlier: not a schedule of a task
/// due now, not a requeue, not the first read of a restarted scheduler's arming, not the
/// panic hook; the runtime's own retry of the failed alarm event (at any time) fails again
/// and waits longer.
#[test]
fn nothing_arms_the_alarm_earlier_while_a_backoff_lasts() {
    let o = Object::new();
    o.schedule(BASE, "due", When::after(Duration::ZERO));
    o.store.failing.set(true);
    let (at, _) = o.fire().unwrap();
    let until = at + FAILURE_BACKOFF_MS;
    assert_eq!(o.alarm.armed(), Some(until));
    let writes = o.alarm.writes();
    o.schedule(at + 10, "now", When::after(Duration::ZERO));
    o.schedule(at + 20, "soon", When::at_unix_ms(at + 30));
    assert_eq!((o.alarm.armed(), o.alarm.writes()), (Some(until), writes), "a due task waits for the backoff");
    o.schedule(at + 20, "later", When::at_unix_ms(until + 5_000));
    assert_eq!(o.alarm.armed(), Some(until), "a later task changes nothing");
    assert_eq!(o.sched.fail_in_flight(at + 40, "a panic"), Some(until), "the panic hook arms no earlier");
    // The runtime retries the failed alarm event on its own, earlier than the backoff.
    let retried = done(o.sched.run_due(&o.alarm, &|| at + 50, None, 100, |_: u64, _| ready(Ok::<(), String>(()))));
    assert!(retried.is_err());
    assert_eq!(o.alarm.armed(), Some(at + 50 + failure_backoff_ms(2)), "the second failure waits 2 s");
    // A restarted object (its memory, the count included, is gone) arms the overdue task
    // once on its first read; its failing run then waits a second again: never a loop.
    let restarted = Scheduler::new(o.store.clone());
    let alarm = SimulatedAlarm::default();
    assert_eq!(done(restarted.armed(&alarm, at + 60)).unwrap(), Some(at + 61));
    alarm.clear();
    assert!(done(restarted.run_due(&alarm, &|| at + 61, None, 100, |_: u64, _| ready(Ok::<(), String>(())))).is_err());
    assert_eq!(alarm.armed(), Some(at + 61 + FAILURE_BACKOFF_MS));
    assert!(MAX_FAILURE_BACKOFF_MS >= failure_backoff_ms(2));
}
