//! The generated programs: operations on the scheduler and scripted handler outcomes.

use std::time::Duration;

use lumenize_alarms::{Kind, MissedTicks, RetryPolicy, When};
use proptest::prelude::*;
use proptest::sample::Index;

/// Where the virtual clock starts (Unix milliseconds, November 2023).
pub const BASE: i64 = 1_700_000_000_000;

/// When a generated task runs: the four kinds of `When`.
#[derive(Debug, Clone, Copy)]
pub enum WhenSpec {
    /// One-shot, this many ms from now.
    After(i64),
    /// One-shot, at this absolute time (possibly past).
    At(i64),
    /// Every this many ms.
    Every(i64),
    /// `*/k * * * * *`: every `k` seconds, on the second.
    Cron(i64),
}

pub fn cron_expr(k: i64) -> String {
    format!("*/{k} * * * * *")
}

impl WhenSpec {
    pub fn when(self) -> When {
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
pub enum Res {
    Ok,
    Err(u8),
    /// The isolate dies mid-handler.
    Crash,
}

/// What a handler does to the queue before it finishes (guarantee 8).
#[derive(Debug, Clone)]
pub enum Action {
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
pub struct Outcome {
    pub res: Res,
    pub action: Action,
    /// Virtual milliseconds the handler takes.
    pub advance: i64,
    /// Pending polls before it completes (real async, not a crash).
    pub yields: u32,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome { res: Res::Ok, action: Action::None, advance: 0, yields: 0 }
    }
}

/// Which id an operation on an existing task targets.
#[derive(Debug, Clone)]
pub enum Pick {
    /// Any stored task.
    Any(Index),
    /// A dead task if there is one, else any.
    Dead(Index),
    /// A paused task if there is one, else any.
    Paused(Index),
    /// `p{n}`, which may not exist.
    Pool(u8),
}

/// One task to schedule. `id`: pool id `p{n}`, or generated. `bad`: a payload that does not
/// deserialise as the handler's `u64` (guarantee 7).
#[derive(Debug, Clone)]
pub struct Sched {
    pub id: Option<u8>,
    pub when: WhenSpec,
    pub keep: bool,
    pub retry: RetryPolicy,
    pub missed: MissedTicks,
    pub bad: bool,
}

#[derive(Debug, Clone)]
pub enum Op {
    Schedule(Sched),
    /// `schedule_many` of these, in this order.
    ScheduleMany(Vec<Sched>),
    Cancel(Pick),
    /// `discard`: a cancel that does not read the task back.
    Discard(Pick),
    Requeue(Pick),
    /// `pause` (guarantee 17).
    Pause(Pick),
    /// `resume`.
    Resume(Pick),
    /// `run_now` of one task (not the test hook, `RunNow`).
    RunTaskNow(Pick),
    /// `requeue_dead` of the dead tasks of this kind (all kinds: `None`), at most `limit`.
    RequeueDead { kind: Option<Kind>, limit: Option<usize> },
    Advance(i64),
    /// The native alarm fires: the clock jumps to it (if it is later), then `run_due`.
    FireAlarm(usize),
    /// The test hook: `run_due` now, whatever the alarm (guarantee 12).
    RunNow(usize),
    /// The object restarts (an eviction, a deploy); with `lose`, the runtime has also lost
    /// its alarm (its retries were exhausted). The first event re-arms (guarantee 10).
    Restart { lose: bool },
}

pub fn pool_id(n: u8) -> String {
    format!("p{n}")
}

pub fn bad_payload(n: u64) -> String {
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
        .prop_map(|(max_attempts, initial, factor, max)| crate::support::policy(max_attempts, initial, factor, max.max(initial)))
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

fn sched() -> impl Strategy<Value = Sched> {
    (prop::option::weighted(0.75, 0u8..4), when_spec(), prop::bool::weighted(0.3), retry(), missed(), prop::bool::weighted(0.06))
        .prop_map(|(id, when, keep, retry, missed, bad)| Sched { id, when, keep, retry, missed, bad })
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => sched().prop_map(Op::Schedule),
        2 => prop::collection::vec(sched(), 0..6).prop_map(Op::ScheduleMany),
        2 => pick().prop_map(Op::Cancel),
        1 => pick().prop_map(Op::Discard),
        3 => prop_oneof![3 => any::<Index>().prop_map(Pick::Dead), 1 => pick()].prop_map(Op::Requeue),
        2 => pick().prop_map(Op::Pause),
        2 => prop_oneof![3 => any::<Index>().prop_map(Pick::Paused), 1 => pick()].prop_map(Op::Resume),
        2 => prop_oneof![1 => any::<Index>().prop_map(Pick::Paused), 2 => pick()].prop_map(Op::RunTaskNow),
        1 => (prop::option::of(prop_oneof![Just(Kind::Once), Just(Kind::Every), Just(Kind::Cron)]), prop::option::of(0usize..3))
            .prop_map(|(kind, limit)| Op::RequeueDead { kind, limit }),
        8 => advance().prop_map(Op::Advance),
        8 => limit().prop_map(Op::FireAlarm),
        2 => limit().prop_map(Op::RunNow),
        1 => any::<bool>().prop_map(|lose| Op::Restart { lose }),
    ]
}

pub fn outcome() -> impl Strategy<Value = Outcome> {
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
pub fn handler_policy() -> RetryPolicy {
    RetryPolicy::attempts(2).backoff(Duration::from_millis(100), Duration::from_secs(1))
}

pub fn handler_error(k: u8, id: &str) -> String {
    format!("err{k} in {id}")
}
