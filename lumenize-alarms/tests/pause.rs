//! Guarantee 17: the operator's operations (pause, resume, run now, requeue the dead in bulk,
//! counts by status) on examples, over both stores (the SQL store: the statements that run in
//! a Durable Object, on a native SQLite), plus what only the SQL store has: its schema
//! migration, the index the queue reads through, and what each operation costs.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use lumenize_alarms::core::{Scheduler, SimulatedAlarm, Store, MAX_REQUEUE_DEAD};
use lumenize_alarms::sql::Exec;
use lumenize_alarms::{Counts, Error, Filter, Kind, MissedTicks, Options, RetryPolicy, RunReport, Scheduled, Status, When};
use support::{block_on, done, ready, Fixture, Fresh, HandlerFut, Edit};

const BASE: i64 = 1_700_000_000_000;

impl<S: Store> Fixture<S> {
    fn sched(&self, now: i64, when: When, id: &str, opts: Options) -> Scheduled {
        let opts = opts.edit(|o| o.id = Some(id.to_owned()));
        let id = done(self.sched.schedule(&self.alarm, now, &when, "0".into(), &opts, || unreachable!())).unwrap();
        self.get(&id)
    }

    /// The native alarm fires at `now` (the runtime spends it) and runs what is due; the ids
    /// that ran, in order.
    fn run_at(&self, now: i64) -> (RunReport, Vec<String>) {
        self.run_with(now, |_| Ok(()))
    }

    fn run_with(&self, now: i64, outcome: impl Fn(&Scheduled) -> Result<(), String>) -> (RunReport, Vec<String>) {
        self.alarm.clear();
        let ran = RefCell::new(Vec::new());
        let report = done(self.sched.run_due(&self.alarm, &|| now, None, 100, |_: u64, t: Scheduled| {
            ran.borrow_mut().push(t.id.clone());
            ready(outcome(&t))
        }))
        .unwrap();
        (report, ran.into_inner())
    }

    fn get(&self, id: &str) -> Scheduled {
        self.sched.get(id).unwrap().unwrap_or_else(|| panic!("{id} is not stored"))
    }

    fn resume(&self, now: i64, id: &str) -> lumenize_alarms::Result<Scheduled> {
        done(self.sched.resume(&self.alarm, now, id))
    }

    fn run_now(&self, now: i64, id: &str) -> lumenize_alarms::Result<Scheduled> {
        done(self.sched.run_now(&self.alarm, now, id))
    }

    fn requeue_dead(&self, now: i64, filter: &Filter) -> usize {
        done(self.sched.requeue_dead(&self.alarm, now, filter)).unwrap()
    }

    /// Makes `ids` dead: one-shot tasks due at `BASE` whose one attempt fails.
    fn dead(&self, ids: &[&str], when: impl Fn(&str) -> When) {
        for id in ids {
            self.sched(BASE, when(id), id, Options::default().retry(RetryPolicy::attempts(1)));
        }
        let (report, _) = self.run_with(BASE + 3_600_000, |_| Err("boom".into()));
        assert_eq!(report.died as usize, ids.len());
    }
}

fn wrong(result: lumenize_alarms::Result<Scheduled>) -> (Status, &'static str) {
    match result {
        Err(Error::WrongStatus { status, action, .. }) => (status, action),
        other => panic!("not a WrongStatus: {other:?}"),
    }
}

/// A paused one-shot task does not run when its time comes, and the alarm is not armed for
/// it (pausing writes no alarm: the one armed for it fires once with nothing to run); it
/// stays paused, listed, until resumed, then runs at once, keeping its due time.
fn a_paused_task_does_not_run_until_resumed_then_runs_at_once<S: Fresh>() {
    let f = Fixture::<S>::new();
    f.sched(BASE, When::at_unix_ms(BASE + 100), "t", Options::default());
    f.sched(BASE, When::at_unix_ms(BASE + 5_000), "later", Options::default());
    let writes = f.alarm.writes();
    let paused = f.sched.pause("t").unwrap();
    assert_eq!((paused.status, paused.due_ms), (Status::Paused, BASE + 100));
    assert_eq!(f.alarm.writes(), writes, "pausing writes no alarm");
    assert_eq!(f.sched.pause("t").unwrap(), paused, "pausing a paused task returns it as it is");
    let (report, ran) = f.run_at(BASE + 1_000);
    assert_eq!((report.started, ran.len(), report.more_due), (0, 0, false), "the paused task does not run");
    assert_eq!(f.alarm.armed(), Some(BASE + 5_000), "the run arms the next live task, not the paused one");
    assert_eq!(f.get("t").status, Status::Paused, "its time passed: it stays paused");
    assert_eq!(f.sched.list(&Filter::default().status(Status::Paused)).unwrap(), std::slice::from_ref(&paused));
    let resumed = f.resume(BASE + 2_000, "t").unwrap();
    assert_eq!((resumed.status, resumed.due_ms), (Status::Pending, BASE + 100), "resumed with its due time: overdue");
    assert_eq!(f.alarm.armed(), Some(BASE + 2_001), "armed at once for the overdue task");
    assert_eq!(f.resume(BASE + 2_000, "t").unwrap(), resumed, "resuming a pending task returns it as it is");
    let (report, ran) = f.run_at(BASE + 2_001);
    assert_eq!(ran, ["t"]);
    assert_eq!(report.max_lateness_ms, 1_901, "its lateness counts from its own due time");
    assert!(f.sched.get("t").unwrap().is_none(), "a one-shot task is gone once it ran");
}

/// A paused task stays paused across a crash and a restart (a new scheduler over the same
/// storage, the alarm lost): the first read of the alarm arms the live tasks only, and the
/// runs leave it alone; cancelling removes it.
fn a_paused_task_stays_paused_across_restarts_and_cancel_removes_it<S: Fresh>() {
    let store = S::fresh();
    let f = Fixture { sched: Scheduler::new(store.clone()), alarm: SimulatedAlarm::default() };
    f.sched(BASE, When::at_unix_ms(BASE + 10), "p", Options::default());
    f.sched(BASE, When::at_unix_ms(BASE + 20), "x", Options::default());
    f.sched.pause("p").unwrap();
    // A crash in the middle of x's handler.
    f.alarm.clear();
    let crashed = block_on(f.sched.run_due(&f.alarm, &|| BASE + 20, None, 5, |_: u64, _| HandlerFut { result: None, yields: 1 }));
    assert!(crashed.is_none());
    assert_eq!(f.get("x").status, Status::Running);
    let f = Fixture { sched: Scheduler::new(store), alarm: SimulatedAlarm::default() }; // restarted, alarm lost
    assert_eq!(wrong(f.sched.pause("x")), (Status::Running, "paused"), "an attempt cut short is not paused: the next run retries it");
    assert_eq!(done(f.sched.armed(&f.alarm, BASE + 30)).unwrap(), Some(BASE + 31), "armed for the cut-short x, not for p");
    let (report, ran) = f.run_at(BASE + 31);
    assert_eq!((report.interrupted, ran.len()), (1, 0));
    assert_eq!(f.get("p").status, Status::Paused);
    let removed = f.sched.cancel("p").unwrap().unwrap();
    assert_eq!(removed.status, Status::Paused);
    assert!(f.sched.get("p").unwrap().is_none());
}

/// What each operation refuses: an unknown id; pausing or running now a running or dead
/// task; resuming a dead one; requeueing a paused one (it is not dead: resume it). A task
/// whose handler is running cannot be paused or run now from inside it either (its row is
/// still pending until the handler awaits). Nothing changes.
fn each_operation_refuses_the_statuses_it_does_not_apply_to<S: Fresh>() {
    let f = Fixture::<S>::new();
    for op in ["pause", "resume", "run_now"] {
        let result = match op {
            "pause" => f.sched.pause("nope"),
            "resume" => f.resume(BASE, "nope"),
            _ => f.run_now(BASE, "nope"),
        };
        assert!(matches!(result, Err(Error::NotFound(ref id)) if id == "nope"), "{op}: {result:?}");
    }
    let long = "x".repeat(lumenize_alarms::core::MAX_ID_BYTES + 1);
    assert!(matches!(f.sched.pause(&long), Err(Error::NotFound(_))));
    f.dead(&["d"], |_| When::at_unix_ms(BASE));
    assert_eq!(wrong(f.sched.pause("d")), (Status::Dead, "paused"));
    assert_eq!(wrong(f.resume(BASE, "d")), (Status::Dead, "resumed"));
    assert_eq!(wrong(f.run_now(BASE, "d")), (Status::Dead, "run now"));
    assert!(Error::WrongStatus { id: "d".into(), status: Status::Dead, action: "paused" }.to_string().contains("\"d\" is dead, so it cannot be paused"));
    f.sched(BASE, When::at_unix_ms(BASE + 10), "p", Options::default());
    f.sched.pause("p").unwrap();
    assert!(matches!(done(f.sched.requeue(&f.alarm, BASE, "p")), Err(Error::NotDead(_))), "a paused task is not dead");
    assert!(matches!(f.resume(-1, "p"), Err(Error::TimeOutOfRange { ms: -1 })));
    assert!(matches!(f.run_now(lumenize_alarms::core::MAX_TIME_MS + 1, "p"), Err(Error::TimeOutOfRange { .. })));
    assert_eq!(f.get("p").status, Status::Paused, "refusals change nothing");
    // From inside its own handler, before it awaits (its row still says pending).
    f.sched(BASE, When::at_unix_ms(BASE + 20), "self", Options::default());
    let seen = RefCell::new(Vec::new());
    f.alarm.clear();
    done(f.sched.run_due(&f.alarm, &|| BASE + 20, None, 5, |_: u64, t: Scheduled| {
        if t.id == "self" {
            seen.borrow_mut().push(wrong(f.sched.pause("self")));
            seen.borrow_mut().push(wrong(block_on(f.sched.run_now(&f.alarm, BASE + 20, "self")).unwrap()));
        }
        ready(Ok(()))
    }))
    .unwrap();
    assert_eq!(seen.into_inner(), [(Status::Running, "paused"), (Status::Running, "run now")]);
    assert!(f.sched.get("self").unwrap().is_none(), "it completed as usual");
}

/// Resuming a recurring task that missed ticks while paused follows its policy: `Skip`
/// moves it to its first tick at or after now, on its grid, with no attempts for it; `Burst`
/// keeps its due time and every missed tick runs. One whose next tick has not come is
/// resumed as it was.
fn resume_follows_the_missed_tick_policy<S: Fresh>() {
    let f = Fixture::<S>::new();
    let every = When::every(Duration::from_secs(1)).unwrap();
    f.sched(0, every.clone(), "skip", Options::default()); // due 1 000
    f.sched(0, every.clone(), "burst", Options::default().missed(MissedTicks::Burst));
    f.sched(0, When::cron("*/10 * * * * *").unwrap(), "cron", Options::default()); // due 10 000
    f.sched(0, every, "early", Options::default());
    for id in ["skip", "burst", "cron", "early"] {
        f.sched.pause(id).unwrap();
    }
    let early = f.resume(500, "early").unwrap();
    assert_eq!((early.status, early.due_ms, early.tick_ms), (Status::Pending, 1_000, 1_000), "its tick has not come: as it was");
    let skip = f.resume(3_500, "skip").unwrap();
    assert_eq!((skip.due_ms, skip.tick_ms, skip.attempts), (4_000, 4_000, 0), "Skip: the first tick after now, on the grid");
    let on_tick = f.resume(3_000, "burst").unwrap();
    assert_eq!((on_tick.due_ms, on_tick.tick_ms), (1_000, 1_000), "Burst: its own due time");
    let cron = f.resume(25_000, "cron").unwrap();
    assert_eq!(cron.due_ms, 30_000, "a cron task skips to its next occurrence");
    let (_, ran) = f.run_at(3_000);
    assert_eq!(ran, ["burst", "early", "burst", "burst"], "Burst: every missed tick runs (1 000, 2 000, 3 000); early at 1 000 after burst, scheduled first");
    assert_eq!(f.get("burst").due_ms, 4_000);
    // A tick at exactly now is not missed.
    let f = Fixture::<S>::new();
    f.sched(0, When::every(Duration::from_secs(1)).unwrap(), "t", Options::default());
    f.sched.pause("t").unwrap();
    assert_eq!(f.resume(3_000, "t").unwrap().due_ms, 3_000);
}

/// Resuming a paused `Skip` task that was failing (retry due, attempts made) starts its next
/// occurrence afresh: attempts 0, its last error kept for the operator.
fn a_skipped_resume_starts_the_next_occurrence_afresh<S: Fresh>() {
    let f = Fixture::<S>::new();
    let policy = RetryPolicy::attempts(5).backoff(Duration::from_millis(100), Duration::from_secs(1));
    f.sched(0, When::every(Duration::from_secs(1)).unwrap(), "t", Options::default().retry(policy));
    f.run_with(1_000, |_| Err("flaky".into()));
    let t = f.get("t");
    assert_eq!((t.due_ms, t.tick_ms, t.attempts), (1_100, 1_000, 1));
    f.sched.pause("t").unwrap();
    let t = f.resume(5_050, "t").unwrap();
    assert_eq!((t.due_ms, t.tick_ms, t.attempts, t.last_error.as_deref()), (6_000, 6_000, 0, Some("flaky")));
}

/// Run now: a task due in an hour becomes due now and the alarm is armed for it; an overdue
/// one keeps its place; a paused one is resumed; a recurring one runs now and then again at
/// the tick it was waiting for, on its grid.
fn run_now_makes_a_task_due_now_and_a_recurring_one_stays_on_its_grid<S: Fresh>() {
    let f = Fixture::<S>::new();
    f.sched(BASE, When::after(Duration::from_secs(3_600)), "hour", Options::default());
    let t = f.run_now(BASE + 5, "hour").unwrap();
    assert_eq!((t.status, t.due_ms, t.tick_ms), (Status::Pending, BASE + 5, BASE + 3_600_000));
    assert_eq!(f.alarm.armed(), Some(BASE + 6), "armed for now + 1 ms");
    assert_eq!(f.run_at(BASE + 6).1, ["hour"]);
    assert!(f.sched.get("hour").unwrap().is_none(), "a one-shot task is done");

    f.sched(BASE, When::at_unix_ms(BASE + 10), "overdue", Options::default());
    assert_eq!(f.run_now(BASE + 50, "overdue").unwrap().due_ms, BASE + 10, "an overdue task keeps its due time");
    f.sched(BASE, When::at_unix_ms(BASE + 9_000), "paused", Options::default());
    f.sched.pause("paused").unwrap();
    let t = f.run_now(BASE + 60, "paused").unwrap();
    assert_eq!((t.status, t.due_ms), (Status::Pending, BASE + 60));
    assert_eq!(f.run_at(BASE + 60).1, ["overdue", "paused"]);

    let f = Fixture::<S>::new();
    f.sched(0, When::every(Duration::from_secs(1)).unwrap(), "beat", Options::default()); // due 1 000
    f.sched(0, When::cron("*/10 * * * * *").unwrap(), "cron", Options::default()); // due 10 000
    f.run_now(300, "beat").unwrap();
    f.run_now(4_000, "cron").unwrap();
    assert_eq!(f.run_at(300).1, ["beat"]);
    let beat = f.get("beat");
    assert_eq!((beat.due_ms, beat.tick_ms), (1_000, 1_000), "then its waiting tick, not 300 + 1 000");
    assert_eq!(f.run_at(1_000).1, ["beat"]);
    assert_eq!(f.get("beat").due_ms, 2_000);
    f.sched.pause("beat").unwrap();
    assert_eq!(f.run_at(4_000).1, ["cron"]);
    assert_eq!(f.get("cron").due_ms, 10_000, "a cron task too");
    // A run-now attempt that fails is retried, and the task still returns to its grid.
    let f = Fixture::<S>::new();
    let policy = RetryPolicy::attempts(3).backoff(Duration::from_millis(100), Duration::from_secs(1));
    f.sched(0, When::every(Duration::from_secs(1)).unwrap(), "beat", Options::default().retry(policy));
    f.run_now(200, "beat").unwrap();
    f.run_with(200, |_| Err("flaky".into()));
    assert_eq!(f.get("beat").due_ms, 300);
    f.run_at(300);
    assert_eq!(f.get("beat").due_ms, 1_000);
}

/// Bulk requeue: every dead task, or those the filter passes, due now with no attempts, the
/// alarm armed once; a status other than dead passes none; at most `MAX_REQUEUE_DEAD` per
/// call, and the next call takes the rest.
fn requeue_dead_requeues_dead_tasks_in_bulk_up_to_its_bound<S: Fresh>() {
    let f = Fixture::<S>::new();
    f.dead(&["a", "b", "c", "cron"], |id| if id == "cron" { When::cron("0 * * * *").unwrap() } else { When::at_unix_ms(BASE) });
    f.sched(BASE, When::at_unix_ms(BASE + 9_000_000), "live", Options::default());
    let now = BASE + 3_600_100;
    assert_eq!(f.requeue_dead(now, &Filter::default().status(Status::Pending)), 0, "a status other than dead passes none");
    assert_eq!(f.requeue_dead(now, &Filter::default().limit(0)), 0);
    let writes = f.alarm.writes();
    assert_eq!(f.requeue_dead(now, &Filter::default().kind(Kind::Cron)), 1);
    assert_eq!(f.alarm.writes() - writes, 1, "one alarm write");
    assert_eq!(f.alarm.armed(), Some(now + 1));
    assert_eq!(f.requeue_dead(now, &Filter::default().limit(2)), 2);
    assert_eq!(f.requeue_dead(now, &Filter::default()), 1);
    assert_eq!(f.requeue_dead(now, &Filter::default()), 0);
    for t in f.sched.list(&Filter::default().kind(Kind::Once)).unwrap().iter().filter(|t| t.id != "live") {
        assert_eq!((t.status, t.due_ms, t.attempts, t.last_error.as_deref()), (Status::Pending, now, 0, Some("boom")), "{t:?}");
    }
    let (_, ran) = f.run_at(now + 1);
    assert_eq!(ran.len(), 4, "{ran:?}");

    let f = Fixture::<S>::new();
    let ids: Vec<String> = (0..MAX_REQUEUE_DEAD + 5).map(|i| format!("t{i:05}")).collect();
    let many = ids.iter().map(|id| (When::at_unix_ms(BASE), "0".to_owned(), Options::id(id.clone()).retry(RetryPolicy::attempts(1))));
    done(f.sched.schedule_many(&f.alarm, BASE, many, || unreachable!())).unwrap();
    f.alarm.clear();
    let report = done(f.sched.run_due(&f.alarm, &|| BASE, None, 10_000, |_: u64, _| ready(Err("boom".into())))).unwrap();
    assert_eq!(report.died as usize, ids.len());
    assert_eq!(f.requeue_dead(BASE + 1, &Filter::default().limit(usize::MAX)), MAX_REQUEUE_DEAD, "bounded per call");
    let pending = f.sched.list(&Filter::default().status(Status::Pending)).unwrap();
    assert_eq!(pending.first().map(|t| t.id.as_str()), Some("t00000"), "the first by due time, then insertion");
    assert_eq!(f.requeue_dead(BASE + 1, &Filter::default()), 5);
    assert_eq!(support::counts(f.sched.counts().unwrap()), (ids.len(), 0, 0, 0));
}

/// `counts` agrees with `list` for every status, through every operation.
fn counts_match_list<S: Fresh>() {
    let f = Fixture::<S>::new();
    let check = |f: &Fixture<S>| {
        let c = f.sched.counts().unwrap();
        let n = |s: Status| f.sched.list(&Filter::default().status(s)).unwrap().len();
        assert_eq!(support::counts(c), (n(Status::Pending), n(Status::Running), n(Status::Paused), n(Status::Dead)));
        assert_eq!(c.total(), f.sched.list(&Filter::default()).unwrap().len());
        c
    };
    assert_eq!(check(&f), Counts::default());
    f.dead(&["d1", "d2"], |_| When::at_unix_ms(BASE));
    for i in 0..5 {
        f.sched(BASE, When::at_unix_ms(BASE + 7_200_000 + i), &format!("p{i}"), Options::default());
    }
    f.sched.pause("p0").unwrap();
    f.sched.pause("p1").unwrap();
    assert_eq!(support::counts(check(&f)), (3, 0, 2, 2));
    f.resume(BASE, "p1").unwrap();
    f.requeue_dead(BASE, &Filter::default().limit(1));
    assert_eq!(support::counts(check(&f)), (5, 0, 1, 1));
    f.alarm.clear();
    let _ = block_on(f.sched.run_due(&f.alarm, &|| BASE, None, 5, |_: u64, _| HandlerFut { result: None, yields: 1 }));
    assert_eq!(support::counts(check(&f)), (4, 1, 1, 1), "a crash left one running");
}

for_each_store!(
    a_paused_task_does_not_run_until_resumed_then_runs_at_once,
    a_paused_task_stays_paused_across_restarts_and_cancel_removes_it,
    each_operation_refuses_the_statuses_it_does_not_apply_to,
    resume_follows_the_missed_tick_policy,
    a_skipped_resume_starts_the_next_occurrence_afresh,
    run_now_makes_a_task_due_now_and_a_recurring_one_stays_on_its_grid,
    requeue_dead_requeues_dead_tasks_in_bulk_up_to_its_bound,
    counts_match_list,
);

/// The SQL store migrates a table of schema version 2 (whose index of live tasks took in
/// every status but `dead`) to version 3: the rows as they were, the index replaced by one
/// that leaves paused tasks out too.
#[test]
fn sql_store_migrates_a_version_2_table() {
    let db = support::Sqlite::new();
    db.script(
        "CREATE TABLE _lumenize_alarms (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, cron TEXT,
            zone TEXT, every_ms INTEGER, due_ms INTEGER NOT NULL, tick_ms INTEGER NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL,
            attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL, backoff_ms INTEGER NOT NULL, backoff_factor INTEGER NOT NULL,
            max_backoff_ms INTEGER NOT NULL, missed TEXT NOT NULL, last_error TEXT, created_ms INTEGER NOT NULL);
         CREATE INDEX _lumenize_alarms_live ON _lumenize_alarms (due_ms, seq) WHERE status != 'dead';
         CREATE TABLE _lumenize_alarms_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
         INSERT INTO _lumenize_alarms_meta VALUES ('schema_version', 2);
         INSERT INTO _lumenize_alarms VALUES (4, 'cron', 'cron', '0 3 * * *', NULL, NULL, 100, 100, '1', 'pending', 0, 5, 10, 3, 99, 'burst', NULL, 7);
         INSERT INTO _lumenize_alarms VALUES (9, 'every', 'every', NULL, NULL, 250, 200, 200, '2', 'dead', 3, 3, 1000, 2, 300000, 'skip', 'boom', 8);",
    )
    .unwrap();
    let store = lumenize_alarms::sql::SqlStore::open(db).unwrap();
    let cron = store.get("cron").unwrap().unwrap();
    assert_eq!((cron.seq, cron.due_ms, cron.status, cron.missed), (4, 100, Status::Pending, MissedTicks::Burst));
    let every = store.get("every").unwrap().unwrap();
    assert_eq!((every.seq, every.status, every.attempts, every.last_error.as_deref()), (9, Status::Dead, 3, Some("boom")));
    let version = store.exec().query("SELECT value FROM _lumenize_alarms_meta WHERE key = 'schema_version'", vec![]).unwrap();
    assert_eq!(version, vec![vec![lumenize_alarms::sql::Value::Integer(3)]]);
    assert_eq!(lumenize_alarms::sql::SCHEMA_VERSION, 3);
    let index = store.exec().query("SELECT sql FROM sqlite_master WHERE name = '_lumenize_alarms_live'", vec![]).unwrap();
    assert_eq!(index, vec![vec![lumenize_alarms::sql::Value::Text(
        "CREATE INDEX _lumenize_alarms_live ON _lumenize_alarms (due_ms, seq) WHERE status NOT IN ('dead', 'paused')".into()
    )]]);
    let sched = Scheduler::new(store);
    sched.pause("cron").unwrap();
    assert_eq!(sched.store().earliest().unwrap(), None, "the migrated index leaves the paused task out");
}

/// The SQL statements behind the queue (`due`, `earliest`) read through the index of live
/// tasks, whose condition leaves paused tasks out: the plan SQLite makes for each statement
/// the store runs, recorded as it runs it.
#[test]
fn sql_queue_reads_use_the_index_of_live_tasks() {
    struct Planning {
        db: support::Sqlite,
        plans: RefCell<Vec<(String, String)>>,
    }
    impl Planning {
        fn plan(&self, sql: &str, args: &[lumenize_alarms::sql::Value]) {
            let rows = self.db.query(&format!("EXPLAIN QUERY PLAN {sql}"), args.to_vec()).unwrap();
            let detail: Vec<String> = rows.into_iter().filter_map(|r| match r.into_iter().last() {
                Some(lumenize_alarms::sql::Value::Text(t)) => Some(t),
                _ => None,
            }).collect();
            self.plans.borrow_mut().push((sql.to_owned(), detail.join("; ")));
        }
    }
    impl Exec for Planning {
        fn query(&self, sql: &str, args: Vec<lumenize_alarms::sql::Value>) -> lumenize_alarms::Result<Vec<Vec<lumenize_alarms::sql::Value>>> {
            self.plan(sql, &args);
            self.db.query(sql, args)
        }
        fn execute(&self, sql: &str, args: Vec<lumenize_alarms::sql::Value>) -> lumenize_alarms::Result<usize> {
            self.plan(sql, &args);
            self.db.execute(sql, args)
        }
        fn script(&self, sql: &str) -> lumenize_alarms::Result<()> {
            self.db.script(sql)
        }
    }
    let store = lumenize_alarms::sql::SqlStore::open(Planning { db: support::Sqlite::new(), plans: RefCell::new(Vec::new()) }).unwrap();
    let plans = || std::mem::take(&mut *store.exec().plans.borrow_mut());
    plans();
    store.earliest().unwrap();
    store.due(BASE, 10).unwrap();
    let seen = plans();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    for (sql, plan) in seen {
        assert!(plan.contains("USING INDEX _lumenize_alarms_live") || plan.contains("USING COVERING INDEX _lumenize_alarms_live"), "{sql}\n  plan: {plan}");
    }
}

/// What each operation costs on the SQL store: `counts` and `requeue_dead` one statement
/// each (plus, for `requeue_dead`, the alarm); `pause`, `resume` and `run_now` a read, one
/// conditional update and the read of what they return.
#[test]
fn sql_operations_cost_a_bounded_number_of_statements() {
    let store = Rc::new(support::counting_store());
    let f = Fixture { sched: Scheduler::new(store.clone()), alarm: SimulatedAlarm::default() };
    for i in 0..50 {
        f.sched(BASE, When::at_unix_ms(BASE + 10 + i), &format!("t{i}"), Options::default().retry(RetryPolicy::attempts(1)));
    }
    let statements = || store.exec().statements.get();
    let cost = |op: &dyn Fn()| {
        let before = statements();
        op();
        statements() - before
    };
    assert_eq!(cost(&|| assert_eq!(f.sched.counts().unwrap().pending, 50)), 1, "counts: one GROUP BY");
    assert_eq!(cost(&|| drop(f.sched.pause("t0").unwrap())), 3, "pause");
    assert_eq!(cost(&|| drop(f.resume(BASE, "t0").unwrap())), 3, "resume (the alarm known: not read)");
    assert_eq!(cost(&|| drop(f.run_now(BASE, "t1").unwrap())), 3, "run now");
    f.run_with(BASE + 100, |_| Err("boom".into()));
    assert_eq!(f.sched.counts().unwrap().dead, 50);
    assert_eq!(cost(&|| assert_eq!(f.requeue_dead(BASE + 200, &Filter::default()), 50)), 1, "requeue_dead: one UPDATE for them all");
}
