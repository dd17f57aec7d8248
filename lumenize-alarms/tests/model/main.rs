//! The scheduler core (`lumenize_alarms::core::Scheduler`) against a small reference model,
//! over both stores: the reference `MemoryStore` and the real SQL store on native SQLite.
//!
//! A random program of operations runs over a virtual clock, twice: once on the real
//! scheduler (`real.rs`: a store, the run loop polled by a tiny `block_on`, and a simulated
//! native alarm that the scheduler's own arming policy writes), once on the model
//! (`reference.rs`: plain maps written from the documented contract). After every step the
//! two must hold the same tasks and have run the same handlers in the same order, and the
//! real run must also pass checks that need no model: never early, `(due, seq)` order, at
//! most `limit` handlers per call, a truthful `more_due`, an alarm never later than the
//! earliest task, at most one alarm write per schedule call and none while a handler runs,
//! and no scheduled task that disappears without having run.
//!
//! The programs also pause, resume and run now single tasks, requeue dead ones in bulk, and
//! compare the counts by status after every step (guarantee 17); paused tasks survive the
//! crashes and restarts of the programs like any stored task, and are resumed before the
//! final drain.
//!
//! A handler's outcome is scripted (`programs.rs`): `Ok`, `Err`, or a crash (its future
//! never completes, `block_on` gives up and drops the run, and the object restarts with a
//! fresh scheduler: what is left is what storage and the native alarm hold). A handler may
//! also reschedule or cancel its own id, or schedule another task, before it finishes.
//!
//! The guarantee numbers in comments are those of the crate's guarantees (GUARANTEES.md).
#![cfg(not(target_arch = "wasm32"))]
#![allow(unreachable_pub)]

#[path = "../support/mod.rs"]
mod support;

mod programs;
mod real;
mod reference;

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use lumenize_alarms::core::{Filter, Scheduler, SimulatedAlarm, Store};
use lumenize_alarms::{Error, Options, Schedule, Scheduled, Status, When};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

use programs::{cron_expr, op, outcome, pool_id, Op, Outcome, Pick, BASE};
use real::{Fate, Real};
use reference::{MErr, MKind, Model};
use support::{block_on, ready, Edit, Fresh};

fn same_error(model: Option<&MErr>, real: Option<&str>, id: &str) -> bool {
    match (model, real) {
        (None, None) => true,
        (Some(MErr::Handler(m)), Some(r)) => m == r,
        (Some(MErr::CutShort), Some(r)) => r.contains("cut short"),
        (Some(MErr::Decode), Some(r)) => r.starts_with(&Error::Decode { id: id.to_owned(), reason: String::new() }.to_string()),
        _ => false,
    }
}

fn same_schedule(kind: MKind, s: &Schedule) -> bool {
    match (kind, s) {
        (MKind::Once, Schedule::Once) => true,
        (MKind::Every(iv), Schedule::Every { interval_ms }) => iv == *interval_ms,
        (MKind::Cron(k), Schedule::Cron { expr, zone: None }) => *expr == cron_expr(k),
        _ => false,
    }
}

/// The stored tasks are the model's, field for field.
fn compare<S: Store>(real: &Real<S>, model: &Model) -> Result<(), String> {
    let rows = real.all();
    let dump = || format!("\n  real:  {rows:#?}\n  model: {:#?}", model.tasks);
    if rows.len() != model.tasks.len() {
        return Err(format!("{} tasks stored, the model has {}{}", rows.len(), model.tasks.len(), dump()));
    }
    for r in &rows {
        let Some(m) = model.tasks.get(&r.id) else { return Err(format!("{} is stored, not in the model{}", r.id, dump())) };
        let same = same_schedule(m.kind, &r.schedule)
            && r.due_ms == m.due
            && r.tick_ms == m.tick
            && r.payload == m.payload
            && r.status == m.status
            && r.attempts == m.attempts
            && r.retry == m.retry
            && r.missed == m.missed
            && same_error(m.last_error.as_ref(), r.last_error.as_deref(), &r.id)
            && r.created_ms == m.created;
        if !same {
            return Err(format!("task {} differs:\n  real:  {r:?}\n  model: {m:?}", r.id));
        }
    }
    // Sequence numbers may differ (a store may skip some): their order may not.
    let mut seqs: Vec<(i64, i64)> = rows.iter().map(|r| (model.tasks[&r.id].seq, r.seq)).collect();
    seqs.sort_unstable();
    if !seqs.windows(2).all(|w| w[0].1 < w[1].1) {
        return Err(format!("the stored sequence numbers are not in the model's order: {seqs:?}{}", dump()));
    }
    let earliest = real.store.earliest().unwrap().map(|k| k.due_ms);
    if earliest != model.earliest() {
        return Err(format!("earliest() = {earliest:?}, the model says {:?}", model.earliest()));
    }
    if real.clock.get() != model.now {
        return Err(format!("clock {} vs model {}", real.clock.get(), model.now));
    }
    // Guarantee 17: the counts by status, from one statement, are the model's.
    let counts = support::counts(real.sched.counts().unwrap());
    if counts != model.counts() {
        return Err(format!("counts() = {counts:?}, the model says {:?}", model.counts()));
    }
    Ok(())
}

/// The outcome of an operator's operation on one task, as the model words it: the status
/// it leaves, or why it was refused.
fn outcome_of(result: Result<Scheduled, Error>, what: &str) -> Result<Result<Status, &'static str>, String> {
    match result {
        Ok(t) => Ok(Ok(t.status)),
        Err(Error::NotFound(_)) => Ok(Err("not found")),
        Err(Error::WrongStatus { .. }) => Ok(Err("wrong status")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// One operator's operation on the task `pick` resolves to, on both sides (guarantee 17):
/// the same outcome, and at most one alarm write (none for `pause`).
fn operate<S: Store>(
    real: &Real<S>,
    model: &mut Model,
    pick: &Pick,
    name: &str,
    max_writes: u32,
    op: impl FnOnce(&Real<S>, &str) -> Result<Scheduled, Error>,
    model_op: impl FnOnce(&mut Model, &str) -> Result<Status, &'static str>,
) -> Result<(), String> {
    let id = resolve(real, pick);
    let writes = real.alarm.writes();
    let got = outcome_of(op(real, &id), &format!("{name}({id:?})"))?;
    if real.alarm.writes() - writes > max_writes {
        return Err(format!("{name}({id:?}) wrote the native alarm {} times", real.alarm.writes() - writes));
    }
    let want = model_op(model, &id);
    if got != want {
        return Err(format!("{name}({id:?}) gave {got:?}, the model {want:?}"));
    }
    Ok(())
}

fn resolve<S: Store>(real: &Real<S>, pick: &Pick) -> String {
    let all = real.all();
    let ids = |only: Option<Status>| {
        let mut ids: Vec<String> = all.iter().filter(|t| only.is_none_or(|s| t.status == s)).map(|t| t.id.clone()).collect();
        ids.sort();
        ids
    };
    let choose = |ids: Vec<String>, ix: &Index| if ids.is_empty() { None } else { Some(ids[ix.index(ids.len())].clone()) };
    match pick {
        Pick::Pool(n) => pool_id(*n),
        Pick::Any(ix) => choose(ids(None), ix).unwrap_or_else(|| pool_id(9)),
        Pick::Dead(ix) => choose(ids(Some(Status::Dead)), ix).or_else(|| choose(ids(None), ix)).unwrap_or_else(|| pool_id(9)),
        Pick::Paused(ix) => choose(ids(Some(Status::Paused)), ix).or_else(|| choose(ids(None), ix)).unwrap_or_else(|| pool_id(9)),
    }
}

/// One `run_due` on both sides: the same handlers, in the same order, the same report. A
/// crash restarts the object; one of the native alarm's run is retried by the runtime.
fn run_both<S: Store>(
    real: &mut Real<S>,
    model: &mut Model,
    mscript: &mut VecDeque<Outcome>,
    limit: usize,
    at: Option<i64>,
) -> Result<(), String> {
    real.log.borrow_mut().clear();
    let got = real.run(limit, at);
    check_violations(real, &format!("run_due(limit {limit})"))?;
    let mut want_log = Vec::new();
    let want = model.run(limit, mscript, &mut want_log);
    // The invocations, by task and payload (sequence numbers may differ, see `compare`).
    let strip = |log: &[real::Inv]| log.iter().map(|i| (i.id.clone(), i.due, i.at, i.attempts, i.payload)).collect::<Vec<_>>();
    let (got_log, want_log) = (strip(&real.log.borrow()), strip(&want_log));
    if got_log != want_log {
        return Err(format!("run_due(limit {limit}) ran\n  real:  {got_log:?}\n  model: {want_log:?}"));
    }
    if got != want {
        return Err(format!("run_due(limit {limit}) reported {got:?}, the model {want:?}"));
    }
    if got.is_none() {
        if at.is_none() {
            // The alarm invocation failed: the runtime retries it.
            let _ = block_on(lumenize_alarms::core::NativeAlarm::set(&real.alarm, real.clock.get()));
        }
        real.restart(false);
    }
    Ok(())
}

fn fire_alarm<S: Store>(real: &mut Real<S>, model: &mut Model, mscript: &mut VecDeque<Outcome>, limit: usize) -> Result<(), String> {
    let Some(at) = real.alarm.armed() else { return Ok(()) };
    real.alarm.clear();
    let now = real.clock.get().max(at);
    real.clock.set(now);
    model.now = now;
    run_both(real, model, mscript, limit, None)
}

fn step<S: Store>(real: &mut Real<S>, model: &mut Model, mscript: &mut VecDeque<Outcome>, op: &Op) -> Result<(), String> {
    match op {
        Op::Schedule(s) => {
            real.schedule(s);
            model.schedule(s.id.map(pool_id), s.when, s.keep, s.retry.clone(), s.missed, s.bad);
        }
        Op::ScheduleMany(batch) => {
            real.schedule_many(batch);
            for s in batch {
                model.schedule(s.id.map(pool_id), s.when, s.keep, s.retry.clone(), s.missed, s.bad);
            }
        }
        Op::Cancel(pick) => {
            let id = resolve(real, pick);
            let (got, want) = (real.cancel(&id).map(|(id, _)| id), model.cancel(&id).map(|(id, _)| id));
            if got != want {
                return Err(format!("cancel({id:?}) returned {got:?}, the model {want:?}"));
            }
        }
        Op::Discard(pick) => {
            let id = resolve(real, pick);
            let (got, want) = (real.discard(&id), model.cancel(&id).is_some());
            if got != want {
                return Err(format!("discard({id:?}) returned {got}, the model {want}"));
            }
        }
        Op::Requeue(pick) => {
            let id = resolve(real, pick);
            let now = real.clock.get();
            let got = match block_on(real.sched.requeue(&real.alarm, now, &id)).expect("requeue completes") {
                Ok(t) if t.status == Status::Pending && t.due_ms == now && t.attempts == 0 => Ok(()),
                Ok(t) => return Err(format!("requeue({id:?}) returned {t:?}")),
                Err(Error::NotFound(_)) => Err("not found"),
                Err(Error::NotDead(_)) => Err("not dead"),
                Err(e) => return Err(format!("requeue({id:?}): {e}")),
            };
            let want = model.requeue(&id);
            if got != want {
                return Err(format!("requeue({id:?}) gave {got:?}, the model {want:?}"));
            }
        }
        Op::Pause(pick) => operate(real, model, pick, "pause", 0, |r, id| r.sched.pause(id), Model::pause)?,
        Op::Resume(pick) => operate(real, model, pick, "resume", 1, |r, id| block_on(r.sched.resume(&r.alarm, r.clock.get(), id)).expect("resume completes"), Model::resume)?,
        Op::RunTaskNow(pick) => operate(real, model, pick, "run_now", 1, |r, id| block_on(r.sched.run_now(&r.alarm, r.clock.get(), id)).expect("run_now completes"), Model::run_now)?,
        Op::RequeueDead { kind, limit } => {
            let filter = Filter::default().edit(|f| (f.kind, f.limit) = (*kind, *limit));
            let writes = real.alarm.writes();
            let got = block_on(real.sched.requeue_dead(&real.alarm, real.clock.get(), &filter)).expect("requeue_dead completes").unwrap();
            real.check_writes(writes, false, "requeue_dead");
            let want = model.requeue_dead(*kind, *limit);
            if got != want {
                return Err(format!("requeue_dead({filter:?}) requeued {got}, the model {want}"));
            }
        }
        Op::Advance(ms) => {
            real.clock.set(real.clock.get() + ms);
            model.now += ms;
        }
        Op::FireAlarm(limit) => fire_alarm(real, model, mscript, *limit)?,
        Op::RunNow(limit) => run_both(real, model, mscript, *limit, None)?,
        Op::Restart { lose } => real.restart(*lose),
    }
    Ok(())
}

fn check_violations<S: Store>(real: &Real<S>, when: &str) -> Result<(), String> {
    let v = real.violations.borrow();
    if v.is_empty() {
        Ok(())
    } else {
        Err(format!("{when}: {}", v.join("\n  ")))
    }
}

/// Runs `ops` on the scheduler over a fresh `S` and on the model, then lets the alarm fire
/// until no one-shot task is left (handlers succeed from then on), and checks that nothing
/// was lost.
fn check_program<S: Fresh>(ops: &[Op], script: Vec<Outcome>) -> Result<(), String> {
    let mut real = Real::new(S::fresh(), BASE, script.clone());
    let mut model = Model::new(BASE);
    let mut mscript: VecDeque<Outcome> = script.into();
    for (i, op) in ops.iter().enumerate() {
        let at = || format!("after step {i} ({op:?})");
        step(&mut real, &mut model, &mut mscript, op).map_err(|e| format!("{}: {e}", at()))?;
        compare(&real, &model).map_err(|e| format!("{}: {e}", at()))?;
        real.check_invariants();
        check_violations(&real, &at())?;
    }

    // Drain: every paused task is resumed, and every handler succeeds from now on.
    real.script.borrow_mut().clear();
    mscript.clear();
    for t in real.all().into_iter().filter(|t| t.status == Status::Paused) {
        let got = outcome_of(block_on(real.sched.resume(&real.alarm, real.clock.get(), &t.id)).expect("resume completes"), "resume")?;
        let want = model.resume(&t.id);
        if got != want {
            return Err(format!("drain: resume({:?}) gave {got:?}, the model {want:?}", t.id));
        }
    }
    compare(&real, &model).map_err(|e| format!("resuming before the drain: {e}"))?;
    let mut rounds = 0;
    loop {
        let now = real.clock.get();
        let live = real.all().into_iter().filter(|t| t.status.is_live());
        let once_left = live.clone().any(|t| t.schedule == Schedule::Once);
        let due_now = live.clone().any(|t| t.due_ms <= now);
        if !once_left && !due_now {
            break;
        }
        rounds += 1;
        if rounds > 1_000 {
            return Err(format!("the queue did not drain: {:#?}", real.all()));
        }
        if real.alarm.armed().is_none() {
            return Err(format!("live tasks but no alarm armed at {now}: {:#?}", real.all()));
        }
        fire_alarm(&mut real, &mut model, &mut mscript, 64).map_err(|e| format!("drain: {e}"))?;
        compare(&real, &model).map_err(|e| format!("drain: {e}"))?;
        real.check_invariants();
        check_violations(&real, "drain")?;
    }

    // Nothing lost: each instance not cancelled or replaced ran (one-shot), is dead, or
    // (recurring) waits for a future tick.
    let now = real.clock.get();
    let stored: BTreeMap<(String, i64), Scheduled> = real.all().into_iter().map(|t| ((t.id.clone(), t.seq), t)).collect();
    for ((id, seq), inst) in real.ledger.borrow().iter() {
        let t = stored.get(&(id.clone(), *seq));
        let ok = match (inst.fate, t) {
            (Fate::Replaced | Fate::Cancelled, _) => true,
            (Fate::Completed, None) => true,
            (Fate::Alive, Some(t)) if t.status == Status::Dead => t.last_error.is_some(),
            (Fate::Alive, Some(t)) => !inst.once && t.status == Status::Pending && t.due_ms > now,
            _ => false,
        };
        if !ok {
            return Err(format!("at the end, {id} (seq {seq}, {inst:?}) is {t:?}"));
        }
    }
    Ok(())
}

/// `cases` cases, or `PROPTEST_CASES` when set.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(cases);
    Config { cases, failure_persistence: None, ..Config::default() }
}

proptest! {
    #![proptest_config(config(400))]

    /// Guarantees 1-12, 14 and 17 on random programs, over the reference store: the scheduler and
    /// the model agree after every step, and the model-free checks hold throughout.
    #[test]
    fn scheduler_agrees_with_the_model_over_the_memory_store(
        ops in prop::collection::vec(op(), 1..40),
        script in prop::collection::vec(outcome(), 0..60),
    ) {
        check_program::<lumenize_alarms::core::MemoryStore>(&ops, script).map_err(TestCaseError::fail)?;
    }

    /// The same over the real SQL store: the statements that run in a Durable Object, on a
    /// native SQLite.
    #[test]
    fn scheduler_agrees_with_the_model_over_the_sql_store(
        ops in prop::collection::vec(op(), 1..40),
        script in prop::collection::vec(outcome(), 0..60),
    ) {
        check_program::<lumenize_alarms::sql::SqlStore<support::Sqlite>>(&ops, script).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(200))]

    /// Guarantee 3 alone: tasks due at the same millisecond run in the order they were
    /// (last) scheduled, whatever the mix of delays, absolute times and upserts, and however
    /// the runs are bounded.
    #[test]
    fn same_time_tasks_run_fifo(
        tasks in prop::collection::vec((0u8..6, 0i64..4, any::<bool>()), 1..30),
        limit in 1usize..8,
    ) {
        let sched = Scheduler::new(lumenize_alarms::sql::SqlStore::<support::Sqlite>::fresh());
        let alarm = SimulatedAlarm::default();
        let mut order: Vec<(i64, usize, String)> = Vec::new(); // (due, insertion, id)
        for (i, (id, slot, absolute)) in tasks.iter().enumerate() {
            let id = format!("t{id}");
            let (now, when) = if *absolute {
                (BASE, When::at_unix_ms(BASE + slot * 10))
            } else {
                (BASE + slot * 10, When::after(Duration::ZERO))
            };
            support::done(sched.schedule(&alarm, now, &when, i.to_string(), &Options::id(id.clone()), || unreachable!())).unwrap();
            order.retain(|(_, _, other)| *other != id);
            order.push((BASE + slot * 10, i, id));
        }
        order.sort();
        let ran = RefCell::new(Vec::new());
        let clock = || BASE + 1_000;
        for _ in 0..order.len() {
            let report = support::done(sched.run_due(&alarm, &clock, None, limit, |_: u64, t: Scheduled| {
                ran.borrow_mut().push(t.id);
                ready(Ok(()))
            }))
            .unwrap();
            if !report.more_due {
                break;
            }
        }
        let want: Vec<String> = order.into_iter().map(|(_, _, id)| id).collect();
        prop_assert_eq!(ran.into_inner(), want);
    }
}
