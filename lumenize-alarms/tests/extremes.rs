//! Issue 18, item 4: the scheduler's public surface with arbitrary values for every
//! parameter, extremes drawn with high probability, over the real SQL store on a native
//! SQLite that binds integers as a Durable Object does (beyond 2^53 as floats).
//!
//! A random program drives `core::Scheduler`, the very calls [`Alarms`] makes (schedule,
//! schedule_many with options per task, get, list, cancel, requeue, pause, resume, run now,
//! requeue_dead, counts, defer from inside a
//! handler, run_due at any time with any batch limit, a restart that opens as
//! `Alarms::open` does) with the values of `extremes/values.rs`: `Duration::MAX` and
//! `ZERO`, `u64::MAX` ms, `i64::MIN`/`MAX`, 2^53 and its neighbours, `MAX_TIME_MS` ± 1,
//! retry policies through their builders and written field by field, ids and payloads
//! empty, huge and unicode (duplicated within a batch), cron expressions and zones valid
//! and not, filters and batch limits up to `usize::MAX`, handlers that succeed, fail or
//! defer anywhere. After every step:
//!
//! - the call returned `Ok` or a typed refusal: never [`Error::Storage`], which means a
//!   row or a statement broke;
//! - every numeric column of every row is an SQLite integer (or NULL where nullable)
//!   within `0 ..= MAX_TIME_MS`, so it reads back exactly, in a Durable Object too;
//! - `list` succeeds and returns every row; `get` finds every stored id; `cancel` removes
//!   each of them (tried in a savepoint, then rolled back);
//! - the native alarm, if armed, is within `0 ..= MAX_TIME_MS`.
//!
//! [`Alarms`] adds one parameter the scheduler does not see: `Alarms::batch_limit`, which
//! clamps the limit into `1 ..= MAX_BATCH_LIMIT`; the scheduler takes any limit (and clamps
//! it to `MAX_BATCH_LIMIT` itself), so the runs here draw it from `0 ..= usize::MAX` at that
//! level. The clock is the runtime's (`Date.now()`), never a user's value: it stays in
//! `0 ..= MAX_TIME_MS`; times given by users (`at_unix_ms`, `run_due_at`, `defer`,
//! filters) go anywhere.
//!
//! 64 cases of up to 40 steps by default (`PROPTEST_CASES` to change it).
#![cfg(not(target_arch = "wasm32"))]
#![allow(unreachable_pub)]

mod support;
#[path = "extremes/values.rs"]
mod values;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use lumenize_alarms::core::{Scheduler, SimulatedAlarm, MAX_TIME_MS};
use lumenize_alarms::sql::SqlStore;
use lumenize_alarms::{Error, Filter, Scheduled};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use support::{block_on, sql_store, HandlerFut, Sqlite};
use values::{op, start, Act, Op, TaskSpec, CLOCK_MAX};

type Store = Rc<SqlStore<Sqlite>>;

/// The numeric columns of `_lumenize_alarms` (src/sql/store.rs), and whether each may be NULL.
const NUMERIC: [(&str, bool); 10] = [
    ("seq", false),
    ("every_ms", true),
    ("due_ms", false),
    ("tick_ms", false),
    ("attempts", false),
    ("max_attempts", false),
    ("backoff_ms", false),
    ("backoff_factor", false),
    ("max_backoff_ms", false),
    ("created_ms", false),
];

/// At most this many handlers per run: a run that is not done by then (a 1 ms burst far
/// behind, a task deferred to "now" again and again, with a limit of `usize::MAX`) is
/// cut short as the runtime would cut an alarm invocation that ran too long: its isolate
/// dies and the object restarts.
const HANDLERS_PER_RUN: usize = 200;

/// One object: its storage and alarm (which survive a restart) and its scheduler.
struct Object {
    store: Store,
    sched: Scheduler<Store>,
    alarm: SimulatedAlarm,
    clock: i64,
    generated: Cell<u64>,
}

impl Object {
    fn new(clock: i64) -> Self {
        let store = Rc::new(sql_store());
        Object { sched: Scheduler::new(store.clone()), store, alarm: SimulatedAlarm::default(), clock, generated: Cell::new(0) }
    }

    fn conn(&self) -> &rusqlite::Connection {
        &self.store.exec().0
    }

    /// A generated id, as `Alarms` makes one (a UUIDv7 there; any fresh id does here).
    fn new_id(&self) -> String {
        self.generated.set(self.generated.get() + 1);
        format!("generated-{}", self.generated.get())
    }

    /// The object restarts: what memory knew is gone, storage and the alarm remain. Opened
    /// as `Alarms::open` does.
    fn restart(&mut self) -> lumenize_alarms::Result<()> {
        self.sched = Scheduler::new(self.store.clone());
        self.sched.repair()?;
        block_on(self.sched.armed(&self.alarm, self.clock)).expect("reading the alarm completes").map(drop)
    }

    /// Runs one step; what each call it made answered.
    fn step(&mut self, op: &Op) -> Vec<lumenize_alarms::Result<()>> {
        let clock = self.clock;
        match op {
            Op::Schedule(task) => vec![self.schedule(task)],
            Op::ScheduleMany(tasks) => vec![self.schedule_many(tasks)],
            Op::Get(id) => vec![self.sched.get(&id.0).map(drop)],
            Op::List(filter) => vec![self.list(filter)],
            Op::Cancel(id) => vec![self.sched.cancel(&id.0).map(drop)],
            Op::Requeue(id) => vec![block_on(self.sched.requeue(&self.alarm, clock, &id.0)).expect("requeue completes").map(drop)],
            Op::Pause(id) => vec![self.sched.pause(&id.0).map(drop)],
            Op::Resume(id) => vec![block_on(self.sched.resume(&self.alarm, clock, &id.0)).expect("resume completes").map(drop)],
            Op::RunTaskNow(id) => vec![block_on(self.sched.run_now(&self.alarm, clock, &id.0)).expect("run_now completes").map(drop)],
            Op::RequeueDead(filter) => vec![block_on(self.sched.requeue_dead(&self.alarm, clock, filter)).expect("requeue_dead completes").map(drop)],
            Op::Counts => vec![self.counts()],
            Op::Run { at, limit, acts } => self.run(at.map(|t| t.at(clock)), *limit, acts),
            Op::Advance(by) => {
                self.clock = clock.saturating_add(*by).clamp(0, CLOCK_MAX);
                vec![]
            }
            Op::Restart => vec![self.restart()],
        }
    }

    /// `counts`, which must agree with `list`.
    fn counts(&self) -> lumenize_alarms::Result<()> {
        let counts = self.sched.counts()?;
        let all = self.sched.list(&Filter::default())?;
        assert_eq!(counts.total(), all.len(), "counts {counts:?} against {} rows listed", all.len());
        Ok(())
    }

    fn schedule(&self, task: &TaskSpec) -> lumenize_alarms::Result<()> {
        let when = task.when.when(self.clock)?;
        let opts = task.opts.options();
        let fut = self.sched.schedule(&self.alarm, self.clock, &when, task.payload.0.clone(), &opts, || self.new_id());
        block_on(fut).expect("schedule completes").map(drop)
    }

    fn schedule_many(&self, tasks: &[TaskSpec]) -> lumenize_alarms::Result<()> {
        let tasks = tasks.iter().map(|t| Ok((t.when.when(self.clock)?, t.payload.0.clone(), t.opts.options()))).collect::<lumenize_alarms::Result<Vec<_>>>()?;
        let n = tasks.len();
        let ids = block_on(self.sched.schedule_many(&self.alarm, self.clock, tasks, || self.new_id())).expect("schedule_many completes")?;
        assert_eq!(ids.len(), n, "one id per task");
        Ok(())
    }

    fn list(&self, filter: &Filter) -> lumenize_alarms::Result<()> {
        let tasks = self.sched.list(filter)?;
        if let Some(limit) = filter.limit {
            assert!(tasks.len() <= limit, "{} tasks listed, over the limit {limit}", tasks.len());
        }
        for t in &tasks {
            assert!(filter.matches(t), "listed {t:?}, which {filter:?} does not match");
        }
        Ok(())
    }

    /// Runs what is due, with scripted handlers. A run of the native alarm (`at` is `None`)
    /// finds the alarm spent, as the runtime does.
    fn run(&mut self, at: Option<i64>, limit: usize, acts: &[Act]) -> Vec<lumenize_alarms::Result<()>> {
        let clock = self.clock;
        if at.is_none() {
            self.alarm.clear();
        }
        let script = RefCell::new(acts.iter().cloned().collect::<VecDeque<_>>());
        let deferred = RefCell::new(Vec::new());
        let started = Cell::new(0);
        let sched = &self.sched;
        let handler = |_: serde_json::Value, task: Scheduled| {
            started.set(started.get() + 1);
            if started.get() > HANDLERS_PER_RUN {
                return HandlerFut { result: None, yields: 0 };
            }
            let act = script.borrow_mut().pop_front().unwrap_or_default();
            if let Some(when) = act.defer {
                deferred.borrow_mut().push(sched.defer(&task.id, when.at(clock)));
            }
            HandlerFut { result: Some(act.result.map_err(|e| e.0)), yields: act.yields }
        };
        let ran = block_on(self.sched.run_due(&self.alarm, &|| clock, at, limit, handler));
        let mut results = deferred.into_inner();
        match ran {
            Some(report) => results.push(report.map(drop)),
            // Cut short: the isolate died, the object restarts.
            None => results.push(self.restart()),
        }
        results
    }
}

/// `Ok`, or a typed refusal; an [`Error::Storage`] is a failure of the test.
fn typed(step: usize, op: &Op, result: &lumenize_alarms::Result<()>) -> Result<(), TestCaseError> {
    if let Err(Error::Storage(message)) = result {
        return Err(TestCaseError::fail(format!("step {step}: {op:?} broke storage: {message}")));
    }
    Ok(())
}

/// The rows whose numeric columns are not integers within `0 ..= MAX_TIME_MS` (NULL where
/// nullable), as read from SQLite itself.
fn bad_numbers(object: &Object) -> Vec<String> {
    let mut bad = Vec::new();
    for (column, nullable) in NUMERIC {
        let allowed = if nullable { "('integer', 'null')" } else { "('integer')" };
        let sql = format!(
            "SELECT substr(id, 1, 40), typeof({column}), quote({column}) FROM _lumenize_alarms \
             WHERE typeof({column}) NOT IN {allowed} OR {column} < 0 OR {column} > {MAX_TIME_MS}"
        );
        let mut stmt = object.conn().prepare(&sql).expect("a query on the table");
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))).expect("the query runs");
        for row in rows {
            let (id, kind, value) = row.expect("a row");
            bad.push(format!("task {id:?}: {column} is {kind} {value}"));
        }
    }
    bad
}

fn stored_ids(object: &Object) -> Vec<String> {
    let mut stmt = object.conn().prepare("SELECT id FROM _lumenize_alarms ORDER BY seq").expect("a query on the table");
    stmt.query_map([], |r| r.get(0)).expect("the query runs").collect::<rusqlite::Result<_>>().expect("ids are text")
}

/// What must hold after every step, whatever the step did.
fn check(step: usize, op: &Op, object: &Object) -> Result<(), TestCaseError> {
    let at = || format!("after step {step} ({op:?})");
    // `list` first: it also deletes the rows of tasks a run completed.
    let listed = object.sched.list(&Filter::default());
    let bad = bad_numbers(object);
    prop_assert!(bad.is_empty(), "{}: stored numbers that are not integers in 0 ..= MAX_TIME_MS (a float, or a value past the range, does not read back as written in a Durable Object): {:#?}", at(), bad);
    let listed = listed.map_err(|e| TestCaseError::fail(format!("{}: list fails: {e}", at())))?;
    let ids = stored_ids(object);
    prop_assert_eq!(listed.len(), ids.len(), "{}: list returns {} tasks of {} rows", at(), listed.len(), ids.len());
    for task in &listed {
        for (what, ms) in [("due_ms", task.due_ms), ("tick_ms", task.tick_ms), ("created_ms", task.created_ms)] {
            prop_assert!((0..=MAX_TIME_MS).contains(&ms), "{}: task {:?} has {} {}", at(), task.id, what, ms);
        }
    }
    for id in &ids {
        match object.sched.get(id) {
            Ok(Some(task)) => prop_assert_eq!(&task.id, id),
            other => return Err(TestCaseError::fail(format!("{}: get({id:?}) answers {other:?}", at()))),
        }
    }
    // Every stored task can be cancelled: tried, then rolled back.
    object.conn().execute_batch("SAVEPOINT cancel_each").expect("a savepoint");
    let cancelled: Vec<_> = ids.iter().map(|id| (id, object.sched.cancel(id))).collect();
    object.conn().execute_batch("ROLLBACK TO cancel_each; RELEASE cancel_each").expect("roll back");
    for (id, result) in cancelled {
        prop_assert!(matches!(&result, Ok(Some(t)) if t.id == *id), "{}: cancel({:?}) answers {:?}", at(), id, result);
    }
    if let Some(armed) = object.alarm.armed() {
        prop_assert!((0..=MAX_TIME_MS).contains(&armed), "{}: the native alarm is armed for {}", at(), armed);
    }
    Ok(())
}

/// `cases` cases, or `PROPTEST_CASES` when set.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(cases);
    Config { cases, failure_persistence: None, ..Config::default() }
}

proptest! {
    #![proptest_config(config(64))]

    /// No value of any parameter makes a call break storage or leaves a row that does not
    /// read back, and every stored task stays listable, gettable and cancellable.
    #[test]
    fn no_value_of_any_parameter_poisons_the_store(clock in start(), program in prop::collection::vec(op(), 1..40)) {
        let mut object = Object::new(clock);
        for (step, op) in program.iter().enumerate() {
            for result in object.step(op) {
                typed(step, op, &result)?;
            }
            check(step, op, &object)?;
        }
    }
}
