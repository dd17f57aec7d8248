//! The pure scheduling core (`lumenize_alarms::core`) against a small reference model.
//!
//! A random program of operations runs over a virtual clock, twice: once on the real core
//! (`MemoryStore`, `run_due` polled by a tiny `block_on`), once on [`Model`], plain maps
//! written from the documented contract and not from the core's code. After every step the
//! two must hold the same tasks and have run the same handlers in the same order, and the
//! real run must also pass checks that need no model: never early, `(due, seq)` order,
//! at most `limit` handlers per call, a truthful `more_due`, an alarm that is never late
//! and never in the past, and no scheduled task that disappears without having run.
//!
//! A handler's outcome is scripted: `Ok`, `Err`, or a crash (its future never completes,
//! `block_on` gives up and drops the run, and the isolate restarts with a fresh `InFlight`
//! and no native alarm: what is left is what storage holds). A handler may also reschedule
//! or cancel its own id, or schedule another task, before it finishes.
//!
//! The guarantee numbers in comments are those of `DESIGN.md`, section lumenize-alarms.
#![cfg(not(target_arch = "wasm32"))]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use lumenize_alarms::core::{self, alarm_to_set, Filter, InFlight, MemoryStore, RunReport, Scheduled, Store};
use lumenize_alarms::{Error, MissedTicks, Options, RetryPolicy, Schedule, Status, When};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

/// Where the virtual clock starts (Unix milliseconds, November 2023).
const BASE: i64 = 1_700_000_000_000;

/// How often `block_on` polls before it declares the isolate dead.
const POLL_BOUND: usize = 1_000;

// ---------------------------------------------------------------------------------------
// Running async code natively.

/// Polls `fut` to completion with a no-op waker, at most [`POLL_BOUND`] times. `None` means
/// it never completed: the future is dropped here, as a crashing isolate would drop it.
fn block_on<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..POLL_BOUND {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}

/// A handler's future: `result` after `yields` pending polls, or never when `result` is
/// `None` (the isolate dies inside the handler).
struct HandlerFut {
    result: Option<Result<(), String>>,
    yields: u32,
}

impl Future for HandlerFut {
    type Output = Result<(), String>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.yields > 0 {
            self.yields -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match self.result.take() {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }
}

fn ready(result: Result<(), String>) -> HandlerFut {
    HandlerFut { result: Some(result), yields: 0 }
}

// ---------------------------------------------------------------------------------------
// The generated programs.

/// When a generated task runs: the four kinds of `When`.
#[derive(Debug, Clone, Copy)]
enum WhenSpec {
    /// One-shot, this many ms from now.
    After(i64),
    /// One-shot, at this absolute time (possibly past).
    At(i64),
    /// Every this many ms.
    Every(i64),
    /// `*/k * * * * *`: every `k` seconds, on the second.
    Cron(i64),
}

fn cron_expr(k: i64) -> String {
    format!("*/{k} * * * * *")
}

impl WhenSpec {
    fn when(self) -> When {
        let ms = |n: i64| Duration::from_millis(u64::try_from(n).unwrap());
        match self {
            WhenSpec::After(d) => When::after(ms(d)),
            WhenSpec::At(t) => When::at_unix_ms(t),
            WhenSpec::Every(iv) => When::every(ms(iv)).unwrap(),
            WhenSpec::Cron(k) => When::cron(&cron_expr(k)).unwrap(),
        }
    }
}

/// A handler's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Ok,
    Err(u8),
    /// The isolate dies mid-handler.
    Crash,
}

/// What a handler does to the queue before it finishes (guarantee 8).
#[derive(Debug, Clone)]
enum Action {
    None,
    /// Schedules its own id again, one-shot after `delay` (with `keep`: keep-existing).
    RescheduleSelf { delay: i64, keep: bool },
    CancelSelf,
    /// Schedules a one-shot task: pool id `p{id}`, or a generated one.
    ScheduleNew { id: Option<u8>, delay: i64 },
}

/// One handler invocation, scripted: consumed in invocation order by the real run and by
/// the model alike; once the script is used up, handlers return `Ok` and do nothing.
#[derive(Debug, Clone)]
struct Outcome {
    res: Res,
    action: Action,
    /// Virtual milliseconds the handler takes.
    advance: i64,
    /// Pending polls before it completes (real async, not a crash).
    yields: u32,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome { res: Res::Ok, action: Action::None, advance: 0, yields: 0 }
    }
}

/// Which id an operation on an existing task targets.
#[derive(Debug, Clone)]
enum Pick {
    /// Any stored task.
    Any(Index),
    /// A dead task if there is one, else any.
    Dead(Index),
    /// `p{n}`, which may not exist.
    Pool(u8),
}

#[derive(Debug, Clone)]
enum Op {
    /// `id`: pool id `p{n}`, or generated (UUID-like, from `new_id`). `bad`: a payload
    /// that does not deserialise as the handler's `u64` (guarantee 7).
    Schedule { id: Option<u8>, when: WhenSpec, keep: bool, retry: RetryPolicy, missed: MissedTicks, bad: bool },
    Cancel(Pick),
    Requeue(Pick),
    /// Overwrites a stored task's payload with one of another shape (`Store::put`), as a
    /// changed task type would leave it.
    Corrupt(Pick),
    Advance(i64),
    /// The native alarm fires: the clock jumps to it (if it is later), then `run_due`.
    FireAlarm(usize),
    /// The test hook: `run_due` now, whatever the alarm (guarantee 12).
    RunNow(usize),
}

fn pool_id(n: u8) -> String {
    format!("p{n}")
}

fn bad_payload(n: u64) -> String {
    format!("{{\"old_shape\":{n}}}")
}

fn delay() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => Just(0i64),
        1 => 1i64..=3,
        2 => prop::sample::select(vec![100i64, 250, 500, 1_000]),
        2 => 0i64..3_000,
    ]
}

fn when_spec() -> impl Strategy<Value = WhenSpec> {
    prop_oneof![
        5 => delay().prop_map(WhenSpec::After),
        2 => (0i64..40).prop_map(|k| WhenSpec::At(BASE + k * 250)),
        2 => prop::sample::select(vec![200i64, 300, 500, 1_000, 1_700]).prop_map(WhenSpec::Every),
        1 => prop::sample::select(vec![1i64, 2, 5]).prop_map(WhenSpec::Cron),
    ]
}

fn retry() -> impl Strategy<Value = RetryPolicy> {
    (1u32..=4, prop::sample::select(vec![0i64, 1, 50, 300, 1_000]), 1u32..=3, prop::sample::select(vec![0i64, 100, 700, 2_000]))
        .prop_map(|(max_attempts, initial, factor, max)| RetryPolicy {
            max_attempts,
            initial_backoff_ms: initial,
            factor,
            max_backoff_ms: max.max(initial),
        })
}

fn missed() -> impl Strategy<Value = MissedTicks> {
    prop_oneof![Just(MissedTicks::Skip), Just(MissedTicks::Burst)]
}

fn limit() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![0usize, 1, 1, 2, 3, 5, 64])
}

fn advance() -> impl Strategy<Value = i64> {
    prop_oneof![2 => Just(0i64), 1 => Just(1i64), 3 => 1i64..=300, 3 => 300i64..=3_000]
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![4 => any::<Index>().prop_map(Pick::Any), 1 => (0u8..5).prop_map(Pick::Pool)]
}

fn op() -> impl Strategy<Value = Op> {
    let schedule = (
        prop::option::weighted(0.75, 0u8..4),
        when_spec(),
        prop::bool::weighted(0.3),
        retry(),
        missed(),
        prop::bool::weighted(0.06),
    )
        .prop_map(|(id, when, keep, retry, missed, bad)| Op::Schedule { id, when, keep, retry, missed, bad });
    prop_oneof![
        12 => schedule,
        2 => pick().prop_map(Op::Cancel),
        3 => prop_oneof![3 => any::<Index>().prop_map(Pick::Dead), 1 => pick()].prop_map(Op::Requeue),
        1 => pick().prop_map(Op::Corrupt),
        8 => advance().prop_map(Op::Advance),
        8 => limit().prop_map(Op::FireAlarm),
        2 => limit().prop_map(Op::RunNow),
    ]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    let res = prop_oneof![12 => Just(Res::Ok), 5 => any::<u8>().prop_map(Res::Err), 1 => Just(Res::Crash)];
    let action = prop_oneof![
        10 => Just(Action::None),
        2 => (prop::sample::select(vec![0i64, 1, 300]), any::<bool>())
            .prop_map(|(delay, keep)| Action::RescheduleSelf { delay, keep }),
        1 => Just(Action::CancelSelf),
        2 => (prop::option::of(0u8..4), delay()).prop_map(|(id, delay)| Action::ScheduleNew { id, delay }),
    ];
    let advance = prop_oneof![6 => Just(0i64), 1 => 1i64..400];
    let yields = prop_oneof![3 => Just(0u32), 1 => 1u32..3];
    (res, action, advance, yields).prop_map(|(res, action, advance, yields)| Outcome { res, action, advance, yields })
}

/// The policy of tasks that handlers schedule.
fn handler_policy() -> RetryPolicy {
    RetryPolicy::attempts(2).backoff(Duration::from_millis(100), Duration::from_secs(1))
}

fn handler_error(k: u8, id: &str) -> String {
    format!("err{k} in {id}")
}

// ---------------------------------------------------------------------------------------
// The reference model: written from the contract (DESIGN.md, the rustdoc of `run_due`,
// `RetryPolicy`, `MissedTicks`, `Scheduled`), not from the core's code.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MKind {
    Once,
    Every(i64),
    Cron(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MErr {
    Handler(String),
    CutShort,
    Decode,
}

#[derive(Debug, Clone)]
struct MTask {
    seq: i64,
    kind: MKind,
    due: i64,
    /// The scheduled time of the current occurrence of a recurring task: retries move
    /// `due`, not this; the next tick is computed from it (guarantee 4).
    tick: i64,
    payload: String,
    status: Status,
    attempts: u32,
    retry: RetryPolicy,
    missed: MissedTicks,
    last_error: Option<MErr>,
    created: i64,
}

#[derive(Debug, Clone)]
struct Model {
    tasks: BTreeMap<String, MTask>,
    last_seq: i64,
    now: i64,
    next_gen: u64,
    next_payload: u64,
}

/// One handler invocation, as seen by the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inv {
    id: String,
    seq: i64,
    due: i64,
    at: i64,
    attempts: u32,
    payload: u64,
}

/// Backoff after failed attempt `attempt`: `initial * factor^(attempt-1)`, capped.
fn backoff(p: &RetryPolicy, attempt: u32) -> i64 {
    let mut d = i128::from(p.initial_backoff_ms.max(0));
    for _ in 1..attempt {
        d = (d * i128::from(p.factor)).min(i128::from(i64::MAX));
    }
    i64::try_from(d.min(i128::from(p.max_backoff_ms))).unwrap()
}

/// The first `*/k`-second boundary strictly after `t`.
fn cron_next(k: i64, t: i64) -> i64 {
    let step = k * 1_000;
    (t.div_euclid(step) + 1) * step
}

/// The tick after the occurrence at `tick` that ran (successfully) at `now`.
fn next_tick(kind: MKind, tick: i64, missed: MissedTicks, now: i64) -> i64 {
    match (kind, missed) {
        (MKind::Once, _) => unreachable!(),
        (MKind::Every(iv), MissedTicks::Burst) => tick + iv,
        (MKind::Every(iv), MissedTicks::Skip) => {
            // The first tick tick + n * iv (n >= 1) strictly after now.
            let mut next = tick + iv;
            if next <= now {
                next += ((now - next) / iv + 1) * iv;
            }
            next
        }
        (MKind::Cron(k), MissedTicks::Burst) => cron_next(k, tick),
        (MKind::Cron(k), MissedTicks::Skip) => {
            let next = cron_next(k, tick);
            if next > now {
                next
            } else {
                cron_next(k, now)
            }
        }
    }
}

impl Model {
    fn new(now: i64) -> Self {
        Model { tasks: BTreeMap::new(), last_seq: 0, now, next_gen: 0, next_payload: 0 }
    }

    fn schedule(&mut self, id: Option<String>, when: WhenSpec, keep: bool, retry: RetryPolicy, missed: MissedTicks, bad: bool) {
        let n = self.next_payload;
        self.next_payload += 1;
        let payload = if bad { bad_payload(n) } else { n.to_string() };
        let id = id.unwrap_or_else(|| {
            self.next_gen += 1;
            format!("g{}", self.next_gen)
        });
        if keep && self.tasks.contains_key(&id) {
            return;
        }
        let now = self.now;
        let (kind, due) = match when {
            WhenSpec::After(d) => (MKind::Once, now + d),
            WhenSpec::At(t) => (MKind::Once, t),
            WhenSpec::Every(iv) => (MKind::Every(iv), now + iv),
            WhenSpec::Cron(k) => (MKind::Cron(k), cron_next(k, now)),
        };
        self.last_seq += 1;
        let task = MTask {
            seq: self.last_seq,
            kind,
            due,
            tick: due,
            payload,
            status: Status::Pending,
            attempts: 0,
            retry,
            missed,
            last_error: None,
            created: now,
        };
        self.tasks.insert(id, task);
    }

    fn cancel(&mut self, id: &str) -> Option<(String, i64)> {
        self.tasks.remove(id).map(|t| (id.to_owned(), t.seq))
    }

    fn requeue(&mut self, id: &str) -> Result<(), &'static str> {
        let now = self.now;
        let t = self.tasks.get_mut(id).ok_or("not found")?;
        if t.status != Status::Dead {
            return Err("not dead");
        }
        // A requeue is one more retry of the occurrence that died: due now, on the same tick.
        t.status = Status::Pending;
        t.attempts = 0;
        t.due = now;
        Ok(())
    }

    fn earliest(&self) -> Option<i64> {
        self.tasks.values().filter(|t| t.status != Status::Dead).map(|t| t.due).min()
    }

    fn next_due(&self) -> Option<String> {
        let now = self.now;
        self.tasks
            .iter()
            .filter(|(_, t)| t.status != Status::Dead && t.due <= now)
            .min_by_key(|(_, t)| (t.due, t.seq))
            .map(|(id, _)| id.clone())
    }

    /// The task `id` if it is still the instance `seq` (a handler may have replaced or
    /// cancelled it).
    fn same(&mut self, id: &str, seq: i64) -> Option<&mut MTask> {
        self.tasks.get_mut(id).filter(|t| t.seq == seq)
    }

    /// Attempt `attempts` of `id`/`seq` failed now: retry after the backoff, or dead.
    fn fail(&mut self, id: &str, seq: i64, error: MErr) -> Status {
        let now = self.now;
        let Some(t) = self.same(id, seq) else { return Status::Pending };
        t.last_error = Some(error);
        if t.attempts < t.retry.max_attempts {
            t.status = Status::Pending;
            t.due = now + backoff(&t.retry, t.attempts);
        } else {
            t.status = Status::Dead;
        }
        t.status
    }

    fn succeed(&mut self, id: &str, seq: i64) {
        let now = self.now;
        let Some(t) = self.same(id, seq) else { return };
        if t.kind == MKind::Once {
            self.tasks.remove(id);
            return;
        }
        t.tick = next_tick(t.kind, t.tick, t.missed, now);
        t.due = t.tick;
        t.status = Status::Pending;
        t.attempts = 0;
        t.last_error = None;
    }

    /// `run_due` as documented. `None`: the isolate crashed inside a handler.
    fn run(&mut self, limit: usize, script: &mut VecDeque<Outcome>, log: &mut Vec<Inv>) -> Option<RunReport> {
        let mut report = RunReport::default();
        let count = |report: &mut RunReport, s: Status| {
            if s == Status::Dead {
                report.died += 1;
            } else {
                report.retrying += 1;
            }
        };
        for _ in 0..limit {
            let Some(id) = self.next_due() else { return Some(report) };
            let t = self.tasks.get_mut(&id).unwrap();
            let seq = t.seq;
            if t.status == Status::Running {
                report.interrupted += 1;
                let s = self.fail(&id, seq, MErr::CutShort);
                count(&mut report, s);
                continue;
            }
            let Ok(payload) = serde_json::from_str::<u64>(&t.payload) else {
                t.status = Status::Dead;
                t.last_error = Some(MErr::Decode);
                report.died += 1;
                continue;
            };
            t.status = Status::Running;
            t.attempts += 1;
            log.push(Inv { id: id.clone(), seq, due: t.due, at: self.now, attempts: t.attempts, payload });
            let out = script.pop_front().unwrap_or_default();
            match out.action {
                Action::None => {}
                Action::RescheduleSelf { delay, keep } => {
                    self.schedule(Some(id.clone()), WhenSpec::After(delay), keep, handler_policy(), MissedTicks::Skip, false);
                }
                Action::CancelSelf => {
                    self.cancel(&id);
                }
                Action::ScheduleNew { id: new, delay } => {
                    self.schedule(new.map(pool_id), WhenSpec::After(delay), false, handler_policy(), MissedTicks::Skip, false);
                }
            }
            self.now += out.advance;
            match out.res {
                Res::Crash => return None,
                Res::Ok => {
                    self.succeed(&id, seq);
                    report.succeeded += 1;
                }
                Res::Err(k) => {
                    let s = self.fail(&id, seq, MErr::Handler(handler_error(k, &id)));
                    count(&mut report, s);
                }
            }
        }
        report.more_due = self.next_due().is_some();
        Some(report)
    }
}

// ---------------------------------------------------------------------------------------
// The real core, with the checks that need no model.

/// What became of one scheduled instance `(id, seq)`, as the test saw it happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Alive,
    Replaced,
    Cancelled,
    /// A one-shot whose handler returned `Ok`.
    Completed,
}

#[derive(Debug)]
struct Instance {
    once: bool,
    fate: Fate,
}

struct Real {
    store: MemoryStore,
    clock: Cell<i64>,
    in_flight: InFlight,
    /// The simulated native alarm.
    armed: Option<i64>,
    next_gen: Cell<u64>,
    next_payload: Cell<u64>,
    script: RefCell<VecDeque<Outcome>>,
    log: RefCell<Vec<Inv>>,
    ledger: RefCell<BTreeMap<(String, i64), Instance>>,
    violations: RefCell<Vec<String>>,
}

impl Real {
    fn new(now: i64, script: Vec<Outcome>) -> Self {
        Real {
            store: MemoryStore::default(),
            clock: Cell::new(now),
            in_flight: InFlight::default(),
            armed: None,
            next_gen: Cell::new(0),
            next_payload: Cell::new(0),
            script: RefCell::new(script.into()),
            log: RefCell::new(Vec::new()),
            ledger: RefCell::new(BTreeMap::new()),
            violations: RefCell::new(Vec::new()),
        }
    }

    fn violation(&self, v: String) {
        self.violations.borrow_mut().push(v);
    }

    fn all(&self) -> Vec<Scheduled> {
        self.store.list(&Filter::default()).unwrap()
    }

    /// Live tasks due at `now`, by `(due, seq)`, computed from `list`, not `next_due`.
    fn due_at(&self, now: i64) -> Vec<Scheduled> {
        let mut due: Vec<_> = self.all().into_iter().filter(|t| t.status != Status::Dead && t.due_ms <= now).collect();
        due.sort_by_key(|t| (t.due_ms, t.seq));
        due
    }

    #[allow(clippy::too_many_arguments)]
    fn schedule(&self, id: Option<String>, when: WhenSpec, keep: bool, retry: RetryPolicy, missed: MissedTicks, bad: bool) {
        let n = self.next_payload.get();
        self.next_payload.set(n + 1);
        let payload = if bad { bad_payload(n) } else { n.to_string() };
        let mut opts = match id {
            Some(id) => Options::id(id),
            None => Options::default(),
        };
        if keep {
            opts = opts.keep_existing();
        }
        let opts = opts.retry(retry).missed(missed);
        let before = opts.id.as_ref().and_then(|id| self.store.get(id).unwrap());
        let new_id = || {
            self.next_gen.set(self.next_gen.get() + 1);
            format!("g{}", self.next_gen.get())
        };
        let task = core::schedule(&self.store, self.clock.get(), &when.when(), payload, &opts, new_id).unwrap();
        let mut ledger = self.ledger.borrow_mut();
        if let Some(before) = before {
            if before.seq != task.seq {
                ledger.get_mut(&(before.id, before.seq)).unwrap().fate = Fate::Replaced;
            }
        }
        ledger.entry((task.id.clone(), task.seq)).or_insert(Instance { once: task.schedule == Schedule::Once, fate: Fate::Alive });
    }

    fn cancel(&self, id: &str) -> Option<(String, i64)> {
        let removed = core::cancel(&self.store, id).unwrap()?;
        self.ledger.borrow_mut().get_mut(&(removed.id.clone(), removed.seq)).unwrap().fate = Fate::Cancelled;
        if self.store.get(id).unwrap().is_some() {
            self.violation(format!("cancel({id:?}) returned the task but left it stored"));
        }
        Some((removed.id, removed.seq))
    }

    /// Applies `alarm_to_set` after a change, checking what it asks for (guarantees 2, 10).
    fn arm(&mut self) {
        let now = self.clock.get();
        let earliest = self.store.earliest().unwrap();
        let set = alarm_to_set(self.armed, earliest, now);
        if let Some(t) = set {
            if t <= now {
                self.violation(format!("alarm_to_set({:?}, {earliest:?}, {now}) = {t}: in the past", self.armed));
            }
            match earliest {
                None => self.violation(format!("alarm_to_set armed {t} with no pending task")),
                Some(e) if t > e.max(now + 1) => {
                    self.violation(format!("alarm_to_set({:?}, {e}, {now}) = {t}: later than the earliest task", self.armed));
                }
                Some(_) => {}
            }
            self.armed = Some(t);
        }
    }

    /// The isolate died: nothing survives but storage. Starting again re-arms (guarantee 10).
    fn restart(&mut self) {
        self.in_flight = InFlight::default();
        self.armed = None;
        self.arm();
    }

    /// One `run_due` call; `None` when a handler crashed.
    fn run(&self, limit: usize) -> Option<RunReport> {
        let clock = || self.clock.get();
        let calls = Cell::new(0usize);
        let handler = |payload: u64, task: Scheduled| {
            calls.set(calls.get() + 1);
            let now = self.clock.get();
            // Guarantee 1: never early.
            if now < task.due_ms {
                self.violation(format!("{} (seq {}) ran at {now}, before its time {}", task.id, task.seq, task.due_ms));
            }
            if task.status != Status::Running || task.attempts == 0 {
                self.violation(format!("handler told {:?} / attempts {}", task.status, task.attempts));
            }
            // Guarantee 3: the first live task by (due, seq) among those due now.
            match self.due_at(now).first() {
                Some(first) if (first.id.as_str(), first.seq) == (task.id.as_str(), task.seq) => {}
                first => self.violation(format!(
                    "ran {} (due {}, seq {}) at {now} while {:?} came first by (due, seq)",
                    task.id,
                    task.due_ms,
                    task.seq,
                    first.map(|f| (&f.id, f.due_ms, f.seq))
                )),
            }
            let out = self.script.borrow_mut().pop_front().unwrap_or_default();
            self.log.borrow_mut().push(Inv {
                id: task.id.clone(),
                seq: task.seq,
                due: task.due_ms,
                at: now,
                attempts: task.attempts,
                payload,
            });
            match out.action {
                Action::None => {}
                Action::RescheduleSelf { delay, keep } => {
                    self.schedule(Some(task.id.clone()), WhenSpec::After(delay), keep, handler_policy(), MissedTicks::Skip, false);
                }
                Action::CancelSelf => {
                    self.cancel(&task.id);
                }
                Action::ScheduleNew { id, delay } => {
                    self.schedule(id.map(pool_id), WhenSpec::After(delay), false, handler_policy(), MissedTicks::Skip, false);
                }
            }
            self.clock.set(now + out.advance);
            let result = match out.res {
                Res::Ok => {
                    if let Some(i) = self.ledger.borrow_mut().get_mut(&(task.id.clone(), task.seq)) {
                        if i.once && i.fate == Fate::Alive {
                            i.fate = Fate::Completed;
                        }
                    }
                    Some(Ok(()))
                }
                Res::Err(k) => Some(Err(handler_error(k, &task.id))),
                Res::Crash => None,
            };
            HandlerFut { result, yields: out.yields }
        };
        let report = block_on(core::run_due(&self.store, &clock, limit, &self.in_flight, handler)).map(|r| r.unwrap());
        // Guarantee 9: bounded work, and a truthful `more_due`.
        if calls.get() > limit {
            self.violation(format!("run_due(limit {limit}) ran {} handlers", calls.get()));
        }
        if let Some(report) = &report {
            let due = !self.due_at(self.clock.get()).is_empty();
            if report.more_due != due {
                self.violation(format!("run_due said more_due = {} but due tasks remain: {due}", report.more_due));
            }
        }
        report
    }

    /// Checks that hold between operations: the alarm covers the earliest pending task, and
    /// no scheduled instance vanished without running.
    fn check_invariants(&self) {
        let now = self.clock.get();
        let earliest = self.store.earliest().unwrap();
        if let Some(e) = earliest {
            match self.armed {
                Some(a) if a <= e.max(now + 1) => {}
                armed => self.violation(format!("alarm {armed:?} at {now} is later than the earliest pending task {e}")),
            }
        }
        let stored: BTreeMap<(String, i64), Scheduled> =
            self.all().into_iter().map(|t| ((t.id.clone(), t.seq), t)).collect();
        for ((id, seq), inst) in self.ledger.borrow().iter() {
            let present = stored.contains_key(&(id.clone(), *seq));
            match inst.fate {
                Fate::Alive if !present => self.violation(format!("{id} (seq {seq}) was lost: never ran, not cancelled")),
                Fate::Completed if present => {
                    self.violation(format!("one-shot {id} (seq {seq}) succeeded but is still stored"));
                }
                _ => {}
            }
        }
    }
}

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
        (MKind::Cron(k), Schedule::Cron(expr)) => *expr == cron_expr(k),
        _ => false,
    }
}

/// The stored tasks are the model's, field for field.
fn compare(real: &Real, model: &Model) -> Result<(), String> {
    let rows = real.all();
    let dump = || format!("\n  real:  {rows:#?}\n  model: {:#?}", model.tasks);
    if rows.len() != model.tasks.len() {
        return Err(format!("{} tasks stored, the model has {}{}", rows.len(), model.tasks.len(), dump()));
    }
    for r in &rows {
        let Some(m) = model.tasks.get(&r.id) else { return Err(format!("{} is stored, not in the model{}", r.id, dump())) };
        let same = r.seq == m.seq
            && same_schedule(m.kind, &r.schedule)
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
    if real.store.earliest().unwrap() != model.earliest() {
        return Err(format!("earliest() = {:?}, the model says {:?}", real.store.earliest().unwrap(), model.earliest()));
    }
    if real.clock.get() != model.now {
        return Err(format!("clock {} vs model {}", real.clock.get(), model.now));
    }
    Ok(())
}

fn resolve(real: &Real, pick: &Pick) -> String {
    let all = real.all();
    let ids = |dead_only: bool| {
        let mut ids: Vec<String> = all.iter().filter(|t| !dead_only || t.status == Status::Dead).map(|t| t.id.clone()).collect();
        ids.sort();
        ids
    };
    let choose = |ids: Vec<String>, ix: &Index| if ids.is_empty() { None } else { Some(ids[ix.index(ids.len())].clone()) };
    match pick {
        Pick::Pool(n) => pool_id(*n),
        Pick::Any(ix) => choose(ids(false), ix).unwrap_or_else(|| pool_id(9)),
        Pick::Dead(ix) => choose(ids(true), ix).or_else(|| choose(ids(false), ix)).unwrap_or_else(|| pool_id(9)),
    }
}

/// One `run_due` on both sides: the same handlers, in the same order, the same report.
fn run_both(real: &mut Real, model: &mut Model, mscript: &mut VecDeque<Outcome>, limit: usize) -> Result<(), String> {
    real.log.borrow_mut().clear();
    let got = real.run(limit);
    check_violations(real, &format!("run_due(limit {limit})"))?;
    let mut want_log = Vec::new();
    let want = model.run(limit, mscript, &mut want_log);
    let got_log = real.log.borrow().clone();
    if got_log != want_log {
        return Err(format!("run_due(limit {limit}) ran\n  real:  {got_log:?}\n  model: {want_log:?}"));
    }
    if got != want {
        return Err(format!("run_due(limit {limit}) reported {got:?}, the model {want:?}"));
    }
    if got.is_none() {
        real.restart();
    } else {
        real.arm();
    }
    Ok(())
}

fn fire_alarm(real: &mut Real, model: &mut Model, mscript: &mut VecDeque<Outcome>, limit: usize) -> Result<(), String> {
    let Some(at) = real.armed.take() else { return Ok(()) };
    let now = real.clock.get().max(at);
    real.clock.set(now);
    model.now = now;
    run_both(real, model, mscript, limit)
}

fn step(real: &mut Real, model: &mut Model, mscript: &mut VecDeque<Outcome>, op: &Op) -> Result<(), String> {
    match op {
        Op::Schedule { id, when, keep, retry, missed, bad } => {
            let id = id.map(pool_id);
            real.schedule(id.clone(), *when, *keep, retry.clone(), *missed, *bad);
            model.schedule(id, *when, *keep, retry.clone(), *missed, *bad);
            real.arm();
        }
        Op::Cancel(pick) => {
            let id = resolve(real, pick);
            let (got, want) = (real.cancel(&id), model.cancel(&id));
            if got != want {
                return Err(format!("cancel({id:?}) returned {got:?}, the model {want:?}"));
            }
        }
        Op::Requeue(pick) => {
            let id = resolve(real, pick);
            let got = match core::requeue(&real.store, &id, real.clock.get()) {
                Ok(t) if t.status == Status::Pending && t.due_ms == real.clock.get() && t.attempts == 0 => Ok(()),
                Ok(t) => return Err(format!("requeue({id:?}) returned {t:?}")),
                Err(Error::NotFound(_)) => Err("not found"),
                Err(Error::NotDead(_)) => Err("not dead"),
                Err(e) => return Err(format!("requeue({id:?}): {e}")),
            };
            let want = model.requeue(&id);
            if got != want {
                return Err(format!("requeue({id:?}) gave {got:?}, the model {want:?}"));
            }
            real.arm();
        }
        Op::Corrupt(pick) => {
            let id = resolve(real, pick);
            if let Some(t) = real.store.get(&id).unwrap() {
                let payload = bad_payload(999);
                real.store.put(&Scheduled { payload: payload.clone(), ..t }).unwrap();
                model.tasks.get_mut(&id).unwrap().payload = payload;
            }
        }
        Op::Advance(ms) => {
            real.clock.set(real.clock.get() + ms);
            model.now += ms;
        }
        Op::FireAlarm(limit) => fire_alarm(real, model, mscript, *limit)?,
        Op::RunNow(limit) => run_both(real, model, mscript, *limit)?,
    }
    Ok(())
}

fn check_violations(real: &Real, when: &str) -> Result<(), String> {
    let v = real.violations.borrow();
    if v.is_empty() {
        Ok(())
    } else {
        Err(format!("{when}: {}", v.join("\n  ")))
    }
}

/// Runs `ops` on the core and the model, then lets the alarm fire until no one-shot task is
/// left (handlers succeed from then on), and checks that nothing was lost.
fn check_program(ops: &[Op], script: Vec<Outcome>) -> Result<(), String> {
    let mut real = Real::new(BASE, script.clone());
    let mut model = Model::new(BASE);
    let mut mscript: VecDeque<Outcome> = script.into();
    for (i, op) in ops.iter().enumerate() {
        let at = || format!("after step {i} ({op:?})");
        step(&mut real, &mut model, &mut mscript, op).map_err(|e| format!("{}: {e}", at()))?;
        compare(&real, &model).map_err(|e| format!("{}: {e}", at()))?;
        real.check_invariants();
        check_violations(&real, &at())?;
    }

    // Drain: every handler succeeds from now on.
    real.script.borrow_mut().clear();
    mscript.clear();
    let mut rounds = 0;
    loop {
        let now = real.clock.get();
        let live = real.all().into_iter().filter(|t| t.status != Status::Dead);
        let once_left = live.clone().any(|t| t.schedule == Schedule::Once);
        let due_now = live.clone().any(|t| t.due_ms <= now);
        if !once_left && !due_now {
            break;
        }
        rounds += 1;
        if rounds > 1_000 {
            return Err(format!("the queue did not drain: {:#?}", real.all()));
        }
        if real.armed.is_none() {
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
    #![proptest_config(config(500))]

    /// Guarantees 1-9 and 11-12 on random programs: the core and the model agree after
    /// every step, and the model-free checks hold throughout.
    #[test]
    fn core_agrees_with_the_model(
        ops in prop::collection::vec(op(), 1..40),
        script in prop::collection::vec(outcome(), 0..60),
    ) {
        check_program(&ops, script).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(300))]

    /// Guarantee 3 alone: tasks due at the same millisecond run in the order they were
    /// (last) scheduled, whatever the mix of delays, absolute times and upserts.
    #[test]
    fn same_time_tasks_run_fifo(
        tasks in prop::collection::vec((0u8..6, 0i64..4, any::<bool>()), 1..30),
        limit in 1usize..8,
    ) {
        let store = MemoryStore::default();
        let mut order: Vec<(i64, usize, String)> = Vec::new(); // (due, insertion, id)
        for (i, (id, slot, absolute)) in tasks.iter().enumerate() {
            let id = format!("t{id}");
            let (now, when) = if *absolute {
                (BASE, When::at_unix_ms(BASE + slot * 10))
            } else {
                (BASE + slot * 10, When::after(Duration::ZERO))
            };
            core::schedule(&store, now, &when, i.to_string(), &Options::id(id.clone()), || unreachable!()).unwrap();
            order.retain(|(_, _, other)| *other != id);
            order.push((BASE + slot * 10, i, id));
        }
        order.sort();
        let ran = RefCell::new(Vec::new());
        let clock = || BASE + 1_000;
        let in_flight = InFlight::default();
        for _ in 0..order.len() {
            let report = block_on(core::run_due(&store, &clock, limit, &in_flight, |_: u64, t: Scheduled| {
                ran.borrow_mut().push(t.id);
                ready(Ok(()))
            }))
            .unwrap()
            .unwrap();
            if !report.more_due {
                break;
            }
        }
        let want: Vec<String> = order.into_iter().map(|(_, _, id)| id).collect();
        prop_assert_eq!(ran.into_inner(), want);
    }

    /// Guarantees 2 and 10 on `alarm_to_set` alone: the alarm it leaves is never later than
    /// the earliest task nor in the past, and it only ever moves the alarm earlier.
    #[test]
    fn alarm_is_never_late_nor_past(
        armed in prop::option::of(0i64..1_000),
        earliest in prop::option::of(0i64..1_000),
        now in 0i64..1_000,
    ) {
        let set = alarm_to_set(armed, earliest, now);
        match earliest {
            None => prop_assert_eq!(set, None),
            Some(e) => {
                let want = e.max(now + 1);
                if let Some(t) = set {
                    prop_assert!(t > now, "armed {} at {} is in the past", t, now);
                    prop_assert_eq!(t, want);
                    prop_assert!(armed.is_none_or(|a| a > want), "moved the alarm from {:?} to {} for nothing", armed, t);
                } else {
                    prop_assert!(armed.is_some_and(|a| a <= want), "left {:?} while the earliest is {}", armed, e);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Examples, where a property says it badly.

fn sched(store: &MemoryStore, now: i64, when: When, id: &str, opts: Options) -> Scheduled {
    let opts = Options { id: Some(id.to_owned()), ..opts };
    core::schedule(store, now, &when, "0".into(), &opts, || unreachable!()).unwrap()
}

fn run_at<F>(store: &MemoryStore, now: i64, limit: usize, in_flight: &InFlight, handler: F) -> RunReport
where
    F: FnMut(u64, Scheduled) -> HandlerFut,
{
    block_on(core::run_due(store, &|| now, limit, in_flight, handler)).expect("handlers complete").unwrap()
}

/// Guarantee 4: "the next tick is computed from the *scheduled* time of the one that ran",
/// also when that occurrence needed a retry. An interval task due at 1 000 on a 1 000 ms
/// grid fails once, is retried at 1 300 and succeeds: its next tick is 2 000, on the grid.
#[test]
fn an_interval_task_stays_on_its_grid_after_a_retry() {
    let store = MemoryStore::default();
    let policy = RetryPolicy::attempts(3).backoff(Duration::from_millis(300), Duration::from_secs(1));
    let every = When::every(Duration::from_secs(1)).unwrap();
    sched(&store, 0, every, "beat", Options::default().retry(policy));
    let flight = InFlight::default();
    run_at(&store, 1_000, 10, &flight, |_, _| ready(Err("flaky".into())));
    assert_eq!(store.get("beat").unwrap().unwrap().due_ms, 1_300, "retried after the backoff");
    run_at(&store, 1_300, 10, &flight, |_, _| ready(Ok(())));
    assert_eq!(store.get("beat").unwrap().unwrap().due_ms, 2_000, "next tick from the scheduled 1 000, not the retry at 1 300");
}

/// Guarantees 1 and 3: same-time tasks run FIFO, nothing runs a millisecond early, and a
/// task that a handler schedules for "now" runs in the same call, after the others.
#[test]
fn same_time_tasks_run_in_insertion_order_and_never_early() {
    let store = MemoryStore::default();
    for id in ["c", "a", "b"] {
        sched(&store, 100, When::after(Duration::ZERO), id, Options::default());
    }
    sched(&store, 0, When::at_unix_ms(100), "d", Options::default());
    sched(&store, 0, When::at_unix_ms(101), "late", Options::default());
    let ran = RefCell::new(Vec::new());
    let flight = InFlight::default();
    let report = run_at(&store, 100, 10, &flight, |_, t| {
        if t.id == "c" {
            sched(&store, 100, When::after(Duration::ZERO), "new", Options::default());
        }
        ran.borrow_mut().push(t.id);
        ready(Ok(()))
    });
    assert_eq!(ran.take(), ["c", "a", "b", "d", "new"]);
    assert_eq!((report.succeeded, report.more_due), (5, false));
    assert_eq!(store.earliest().unwrap(), Some(101));
}

/// Guarantee 6: a crash mid-handler leaves the task running in storage; the next run
/// counts the cut-short attempt as failed, retries after the backoff, and the handler runs
/// again with its attempt number.
#[test]
fn a_crash_mid_handler_reruns_the_task_and_counts_the_attempt() {
    let store = MemoryStore::default();
    let policy = RetryPolicy::attempts(3).backoff(Duration::from_millis(50), Duration::from_secs(1));
    sched(&store, 0, When::at_unix_ms(10), "x", Options::default().retry(policy));
    let flight = InFlight::default();
    let crashed = block_on(core::run_due(&store, &|| 10, 5, &flight, |_: u64, _| HandlerFut { result: None, yields: 0 }));
    assert!(crashed.is_none());
    let t = store.get("x").unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (Status::Running, 1));
    assert_eq!(store.earliest().unwrap(), Some(10), "the cut-short task keeps the alarm armed");

    let fresh = InFlight::default(); // the isolate restarted
    let report = run_at(&store, 20, 5, &fresh, |_, _| panic!("not before its backoff"));
    assert_eq!((report.interrupted, report.retrying, report.succeeded), (1, 1, 0));
    let t = store.get("x").unwrap().unwrap();
    assert_eq!((t.status, t.attempts, t.due_ms), (Status::Pending, 1, 70));
    assert!(t.last_error.unwrap().contains("cut short"));

    let seen = Cell::new(0);
    let report = run_at(&store, 70, 5, &fresh, |_, t| {
        seen.set(t.attempts);
        ready(Ok(()))
    });
    assert_eq!((report.succeeded, seen.get()), (1, 2));
    assert_eq!(store.get("x").unwrap(), None);
}

/// Guarantee 6 with a panic instead of a crash: the in-flight entry is released as the
/// handler unwinds, so the next run treats the attempt as cut short.
#[test]
fn a_panicking_handler_counts_as_a_cut_short_attempt() {
    let store = MemoryStore::default();
    sched(&store, 0, When::at_unix_ms(0), "p", Options::default().retry(RetryPolicy::none()));
    sched(&store, 0, When::at_unix_ms(0), "q", Options::default());
    let flight = InFlight::default();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_at(&store, 5, 5, &flight, |_, _| -> HandlerFut { panic!("handler panics on purpose") })
    }));
    assert!(unwound.is_err());
    let ran = RefCell::new(Vec::new());
    let report = run_at(&store, 6, 5, &flight, |_, t| {
        ran.borrow_mut().push(t.id);
        ready(Ok(()))
    });
    assert_eq!((report.interrupted, report.died, report.succeeded), (1, 1, 1));
    assert_eq!(ran.take(), ["q"]);
    let p = store.get("p").unwrap().unwrap();
    assert_eq!(p.status, Status::Dead);
    assert!(p.last_error.unwrap().contains("cut short"));
}

/// Guarantee 6, the other way: a task whose handler is still running in this isolate is not
/// mistaken for a crashed one by a second `run_due` (the test hook while an alarm runs).
#[test]
fn a_second_run_leaves_an_in_flight_task_alone() {
    let store = MemoryStore::default();
    sched(&store, 0, When::at_unix_ms(0), "slow", Options::default());
    let flight = InFlight::default();
    let five = || 5;
    let mut first = Box::pin(core::run_due(&store, &five, 5, &flight, |_: u64, _| HandlerFut { result: Some(Ok(())), yields: 2 }));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(first.as_mut().poll(&mut cx).is_pending());
    let second = run_at(&store, 5, 5, &flight, |_, _| panic!("must not run the in-flight task"));
    assert_eq!(second, RunReport { more_due: true, ..RunReport::default() });
    assert_eq!(store.get("slow").unwrap().unwrap().status, Status::Running);
    let report = block_on(first).unwrap().unwrap();
    assert_eq!((report.succeeded, report.interrupted), (1, 0));
    assert_eq!(store.get("slow").unwrap(), None);
}

/// Guarantee 7: a payload that no longer deserialises goes dead with a decode error, and
/// the tasks around it run.
#[test]
fn an_undecodable_payload_goes_dead_and_the_others_run() {
    let store = MemoryStore::default();
    sched(&store, 0, When::at_unix_ms(1), "before", Options::default());
    let old = sched(&store, 0, When::at_unix_ms(2), "old", Options::default());
    store.put(&Scheduled { payload: r#"{"Ping":{"n":1}}"#.into(), ..old }).unwrap();
    sched(&store, 0, When::at_unix_ms(3), "after", Options::default());
    let ran = RefCell::new(Vec::new());
    let report = run_at(&store, 10, 10, &InFlight::default(), |_, t| {
        ran.borrow_mut().push(t.id);
        ready(Ok(()))
    });
    assert_eq!(ran.take(), ["before", "after"]);
    assert_eq!((report.succeeded, report.died), (2, 1));
    let dead = store.list(&Filter::default().status(Status::Dead)).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 0, "the handler never ran");
    let err = dead[0].last_error.as_deref().unwrap();
    assert!(err.starts_with(&Error::Decode { id: "old".into(), reason: String::new() }.to_string()), "{err}");
}

/// Guarantee 8: a handler that reschedules its own id keeps the new schedule, whether it
/// then returns `Ok` or `Err`; one that schedules a due task gets it run.
#[test]
fn a_handler_rescheduling_itself_is_not_lost() {
    for result in [Ok(()), Err("after rescheduling".to_owned())] {
        let store = MemoryStore::default();
        sched(&store, 0, When::at_unix_ms(0), "self", Options::default());
        let ran = RefCell::new(Vec::new());
        run_at(&store, 0, 1, &InFlight::default(), |_, t| {
            sched(&store, 0, When::at_unix_ms(500), "self", Options::default());
            sched(&store, 0, When::after(Duration::ZERO), "child", Options::default());
            ran.borrow_mut().push(t.id);
            ready(result.clone())
        });
        let t = store.get("self").unwrap().unwrap();
        assert_eq!((t.due_ms, t.status, t.attempts, t.last_error), (500, Status::Pending, 0, None), "{result:?}");
        assert_eq!(store.get("child").unwrap().unwrap().status, Status::Pending);
        run_at(&store, 0, 5, &InFlight::default(), |_, t| {
            ran.borrow_mut().push(t.id);
            ready(Ok(()))
        });
        assert_eq!(ran.take(), ["self", "child"]);
    }
}

/// Guarantee 9: many due tasks are worked through `limit` at a time, each call reporting
/// truthfully whether more are due, in order, without loss.
#[test]
fn bounded_calls_drain_many_due_tasks_in_order() {
    const N: usize = 600;
    let store = MemoryStore::default();
    for i in 0..N {
        core::schedule(&store, 0, &When::at_unix_ms(i64::try_from(i % 7).unwrap()), i.to_string(), &Options::default(), || {
            format!("id{i:04}")
        })
        .unwrap();
    }
    let ran = RefCell::new(Vec::new());
    let flight = InFlight::default();
    let mut calls = 0;
    loop {
        calls += 1;
        let before = ran.borrow().len();
        let report = run_at(&store, 10, 64, &flight, |n, _| {
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
#[test]
fn dead_tasks_are_kept_listed_and_requeueable() {
    let store = MemoryStore::default();
    let policy = RetryPolicy::attempts(2).backoff(Duration::from_millis(100), Duration::from_secs(1));
    sched(&store, 0, When::at_unix_ms(0), "d", Options::default().retry(policy));
    let flight = InFlight::default();
    let fail = |_: u64, t: Scheduled| ready(Err(format!("failure {}", t.attempts)));
    assert_eq!(run_at(&store, 0, 5, &flight, fail).retrying, 1);
    assert_eq!(store.get("d").unwrap().unwrap().due_ms, 100);
    assert_eq!(run_at(&store, 99, 5, &flight, fail), RunReport::default(), "not before the backoff");
    assert_eq!(run_at(&store, 100, 5, &flight, fail).died, 1);
    let dead = store.list(&Filter::default().status(Status::Dead)).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].attempts, dead[0].last_error.as_deref()), (2, Some("failure 2")));
    assert_eq!(store.earliest().unwrap(), None, "a dead task arms no alarm");

    let kept = core::schedule(&store, 200, &When::at_unix_ms(0), "9".into(), &Options::id("d").keep_existing(), || {
        unreachable!()
    })
    .unwrap();
    assert_eq!(kept, dead[0]);

    let back = core::requeue(&store, "d", 300).unwrap();
    assert_eq!((back.status, back.due_ms, back.attempts), (Status::Pending, 300, 0));
    assert_eq!(run_at(&store, 300, 5, &flight, |_, _| ready(Ok(()))).succeeded, 1);
    assert!(matches!(core::requeue(&store, "d", 300), Err(Error::NotFound(_))));

    let x = sched(&store, 0, When::at_unix_ms(5), "x", Options::default());
    assert_eq!(core::cancel(&store, "x").unwrap(), Some(x));
    assert_eq!(core::cancel(&store, "x").unwrap(), None);
}

/// Guarantee 4, missed ticks: after a late run, `Skip` resumes at the first tick after now
/// and `Burst` runs each missed tick; cron ticks advance likewise on the second.
#[test]
fn missed_ticks_skip_or_burst() {
    for (missed, want) in [(MissedTicks::Skip, vec![1_000, 3_500]), (MissedTicks::Burst, vec![1_000, 1_500, 2_000, 2_500, 3_000, 3_500])] {
        let store = MemoryStore::default();
        sched(&store, 500, When::every(Duration::from_millis(500)).unwrap(), "i", Options::default().missed(missed));
        let seen = RefCell::new(Vec::new());
        let flight = InFlight::default();
        for _ in 0..10 {
            run_at(&store, 3_200, 1, &flight, |_, t| {
                seen.borrow_mut().push(t.due_ms);
                ready(Ok(()))
            });
        }
        run_at(&store, 3_500, 10, &flight, |_, t| {
            seen.borrow_mut().push(t.due_ms);
            ready(Ok(()))
        });
        assert_eq!(seen.take(), want, "{missed:?}");
        assert_eq!(store.get("i").unwrap().unwrap().due_ms, 4_000);
    }
    let store = MemoryStore::default();
    sched(&store, BASE, When::cron("*/2 * * * * *").unwrap(), "c", Options::default().missed(MissedTicks::Burst));
    let t = store.get("c").unwrap().unwrap();
    assert_eq!(t.due_ms, BASE + 2_000);
    run_at(&store, BASE + 7_123, 1, &InFlight::default(), |_, _| ready(Ok(())));
    assert_eq!(store.get("c").unwrap().unwrap().due_ms, BASE + 4_000);
}
