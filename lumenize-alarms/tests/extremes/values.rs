//! The generated values: every parameter of the scheduler's public surface, its extremes
//! drawn with high probability, and the operations that carry them.

use std::fmt;
use std::time::Duration;

use lumenize_alarms::core::{FETCH, MAX_BATCH_LIMIT, MAX_ID_BYTES, MAX_PAYLOAD_BYTES, MAX_TIME_MS};
use lumenize_alarms::{Filter, Kind, MissedTicks, Options, RetryPolicy, Status, When, DEFAULT_BATCH_LIMIT};
use proptest::prelude::*;
use proptest::sample::select;

/// Where the virtual clock usually starts (Unix milliseconds, November 2023).
pub const BASE: i64 = 1_700_000_000_000;

/// 2^53: the first integer a JavaScript number (so a Durable Object's SQLite binding) no
/// longer holds exactly, with its neighbours below.
pub const TWO_53: i64 = 1 << 53;

/// More than SQLite in a Durable Object stores in one value (2 MB).
const OVER_SQLITE: usize = 2_100_000;

/// A string whose `Debug` shows its start and its length when it is long, so a failing
/// case with a 2 MB id still prints readably.
#[derive(Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() <= 48 {
            return write!(f, "{:?}", self.0);
        }
        let head: String = self.0.chars().take(8).collect();
        write!(f, "{head:?}... ({} bytes, {} chars)", self.0.len(), self.0.chars().count())
    }
}

fn text(s: impl Into<String>) -> Text {
    Text(s.into())
}

/// Every i64 a user might pass for a time, a backoff or a bound: the extremes first.
pub fn extreme_i64() -> impl Strategy<Value = i64> {
    select(vec![
        0,
        -1,
        1,
        i64::MIN,
        i64::MIN + 1,
        i64::MAX,
        i64::MAX - 1,
        TWO_53 - 1,
        TWO_53,
        TWO_53 + 1,
        -TWO_53,
        -TWO_53 - 1,
        MAX_TIME_MS - 1,
        MAX_TIME_MS,
        MAX_TIME_MS + 1,
        BASE,
    ])
}

/// Any i64, extremes with high probability.
pub fn any_i64() -> impl Strategy<Value = i64> {
    prop_oneof![3 => extreme_i64(), 1 => 0..=MAX_TIME_MS, 1 => any::<i64>()]
}

/// A time as the user gives it: absolute (anywhere), or relative to the clock (so that
/// tasks fall due and runs find them).
#[derive(Debug, Clone, Copy)]
pub enum Time {
    Rel(i64),
    Abs(i64),
}

impl Time {
    pub fn at(self, clock: i64) -> i64 {
        match self {
            Time::Rel(d) => clock.saturating_add(d),
            Time::Abs(t) => t,
        }
    }
}

pub fn time() -> impl Strategy<Value = Time> {
    prop_oneof![
        4 => (-5_000i64..120_000).prop_map(Time::Rel),
        1 => any_i64().prop_map(Time::Abs),
        1 => any_i64().prop_map(Time::Rel),
    ]
}

/// Any Duration, extremes with high probability.
pub fn duration() -> impl Strategy<Value = Duration> {
    let ms = |n: i64| Duration::from_millis(u64::try_from(n).expect("non-negative"));
    prop_oneof![
        3 => select(vec![
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(999_999),
            Duration::from_millis(1),
            Duration::MAX,
            Duration::from_millis(u64::MAX),
            Duration::from_secs(u64::MAX),
            ms(TWO_53 - 1),
            ms(TWO_53),
            ms(TWO_53 + 1),
            ms(MAX_TIME_MS - 1),
            ms(MAX_TIME_MS),
            ms(MAX_TIME_MS + 1),
            ms(i64::MAX),
            Duration::from_millis(i64::MAX.unsigned_abs() + 1),
        ]),
        5 => (0u64..100_000).prop_map(Duration::from_millis),
        1 => any::<u64>().prop_map(Duration::from_millis),
        1 => (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

/// Any u32 (attempts, factors), extremes with high probability.
pub fn any_u32() -> impl Strategy<Value = u32> {
    prop_oneof![3 => select(vec![0, 1, 2, 3, u32::MAX, u32::MAX - 1]), 1 => any::<u32>()]
}

/// Any usize (limits), extremes with high probability.
pub fn any_usize() -> impl Strategy<Value = usize> {
    let max_i64 = usize::try_from(i64::MAX).unwrap_or(usize::MAX);
    let two_53 = usize::try_from(TWO_53).unwrap_or(usize::MAX);
    prop_oneof![
        3 => select(vec![0, 1, 2, 3, FETCH, FETCH + 1, DEFAULT_BATCH_LIMIT, MAX_BATCH_LIMIT, MAX_BATCH_LIMIT + 1, usize::MAX, usize::MAX - 1, max_i64, max_i64 + 1, two_53 - 1, two_53, two_53 + 1]),
        1 => any::<usize>(),
    ]
}

/// A retry policy built through its builders, or written field by field.
pub fn retry() -> impl Strategy<Value = RetryPolicy> {
    prop_oneof![
        Just(RetryPolicy::default()),
        Just(RetryPolicy::none()),
        any_u32().prop_map(RetryPolicy::attempts),
        (any_u32(), duration(), duration()).prop_map(|(n, initial, max)| RetryPolicy::attempts(n).backoff(initial, max)),
        (any_u32(), any_i64(), any_u32(), any_i64()).prop_map(|(max_attempts, initial_backoff_ms, factor, max_backoff_ms)| crate::support::policy(max_attempts, initial_backoff_ms, factor, max_backoff_ms)),
    ]
}

/// Ids: a small pool (so they repeat, within a batch too), odd ones, and sizes around the
/// limit and past what SQLite stores.
pub fn id() -> impl Strategy<Value = Text> {
    prop_oneof![
        6 => select(vec!["a", "b", "é", "🦀", "日本語", ""]).prop_map(text),
        1 => select(vec![" ", "\0", "a\0b", "'; DROP TABLE _lumenize_alarms; --", "\u{202e}rtl", "\u{FFFF}"]).prop_map(text),
        1 => select(vec![MAX_ID_BYTES - 1, MAX_ID_BYTES, MAX_ID_BYTES + 1, 100_000]).prop_map(|n| text("i".repeat(n))),
        1 => select(vec![MAX_ID_BYTES / 2, MAX_ID_BYTES / 2 + 1]).prop_map(|n| text("é".repeat(n))),
        1 => select(vec![MAX_ID_BYTES / 4, MAX_ID_BYTES / 4 + 1]).prop_map(|n| text("🦀".repeat(n))),
        1 => "\\PC{0,12}".prop_map(text),
        1 => Just(text("x".repeat(OVER_SQLITE))),
    ]
}

/// Payloads as stored (JSON of the task): numbers past what a double holds, JSON that no
/// longer decodes, and sizes at the limit.
pub fn payload() -> impl Strategy<Value = Text> {
    prop_oneof![
        8 => select(vec!["0", "null", "\"s\"", "{}", "[]", "18446744073709551615", "-9223372036854775808", "9007199254740993", "-0", "\"\\u0000\"", "\"🦀\""])
            .prop_map(text),
        2 => select(vec!["", "not json", "{", "\u{FFFF}", "1e400"]).prop_map(text),
        1 => select(vec![MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 1]).prop_map(|n| text(format!("\"{}\"", "p".repeat(n - 2)))),
    ]
}

/// Cron expressions, valid (some with no occurrence) and not.
pub fn cron() -> impl Strategy<Value = Text> {
    prop_oneof![
        4 => select(vec![
            "* * * * *", "*/5 * * * * *", "0 3 * * *", "0 0 29 2 *", "0 0 30 2 *", "59 23 31 12 *", "0 0 L * *", "0 0 * * 5#3", "0 0 1W * *",
            "0 0 1 1 *", " * * * * * ", "0 0 12 * * MON-FRI",
        ])
        .prop_map(text),
        2 => select(vec!["", "61 * * * *", "not cron", "* * * * * * * *", "é * * * *", "\0", "*/0 * * * *", "* * 32 * *"]).prop_map(text),
        1 => Just(text("* ".repeat(50_000))),
        1 => "\\PC{0,20}".prop_map(text),
    ]
}

/// IANA time zones, valid and not.
pub fn zone() -> impl Strategy<Value = Text> {
    prop_oneof![
        3 => select(vec!["UTC", "Europe/Paris", "America/New_York", "Pacific/Kiritimati", "Etc/GMT+12", "Australia/Lord_Howe"]).prop_map(text),
        2 => select(vec!["", "Mars/Olympus_Mons", "utc", "Europe/", "+01:00", "\0"]).prop_map(text),
        1 => Just(text("Z".repeat(100_000))),
    ]
}

/// A `When`, as the user would build it (building may itself be refused).
#[derive(Debug, Clone)]
pub enum WhenSpec {
    After(Duration),
    At(Time),
    Every(Duration),
    Cron(Text),
    CronIn(Text, Text),
}

impl WhenSpec {
    pub fn when(&self, clock: i64) -> lumenize_alarms::Result<When> {
        match self {
            WhenSpec::After(d) => Ok(When::after(*d)),
            WhenSpec::At(t) => Ok(When::at_unix_ms(t.at(clock))),
            WhenSpec::Every(d) => When::every(*d),
            WhenSpec::Cron(expr) => When::cron(&expr.0),
            WhenSpec::CronIn(expr, zone) => {
                let when = When::cron_in(&expr.0, &zone.0);
                #[cfg(not(feature = "timezone"))]
                assert!(when.is_err(), "a zone without the `timezone` feature: {when:?}");
                when
            }
        }
    }
}

pub fn when() -> impl Strategy<Value = WhenSpec> {
    prop_oneof![
        4 => duration().prop_map(WhenSpec::After),
        4 => time().prop_map(WhenSpec::At),
        2 => duration().prop_map(WhenSpec::Every),
        2 => cron().prop_map(WhenSpec::Cron),
        1 => (cron(), zone()).prop_map(|(e, z)| WhenSpec::CronIn(e, z)),
    ]
}

/// Options: an id or none, keep-existing on or off, any retry policy and missed-tick policy.
#[derive(Debug, Clone)]
pub struct Opts {
    pub id: Option<Text>,
    pub keep_existing: bool,
    pub retry: RetryPolicy,
    pub burst: bool,
}

impl Opts {
    pub fn options(&self) -> Options {
        let missed = if self.burst { MissedTicks::Burst } else { MissedTicks::Skip };
        let opts = match &self.id {
            Some(id) => Options::id(id.0.clone()),
            None => Options::default(),
        };
        let opts = opts.retry(self.retry.clone()).missed(missed);
        if self.keep_existing {
            opts.keep_existing()
        } else {
            opts
        }
    }
}

pub fn opts() -> impl Strategy<Value = Opts> {
    (prop::option::weighted(0.8, id()), any::<bool>(), retry(), any::<bool>()).prop_map(|(id, keep_existing, retry, burst)| Opts { id, keep_existing, retry, burst })
}

/// One task to schedule.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub when: WhenSpec,
    pub payload: Text,
    pub opts: Opts,
}

pub fn task() -> impl Strategy<Value = TaskSpec> {
    (when(), payload(), opts()).prop_map(|(when, payload, opts)| TaskSpec { when, payload, opts })
}

pub fn filter() -> impl Strategy<Value = Filter> {
    let kind = prop::option::of(select(vec![Kind::Once, Kind::Cron, Kind::Every]));
    let status = prop::option::of(select(vec![Status::Pending, Status::Running, Status::Dead]));
    (kind, status, prop::option::of(any_i64()), prop::option::of(any_i64()), prop::option::of(any_usize())).prop_map(
        |(kind, status, due_from, due_before, limit)| {
            let mut filter = Filter::default();
            (filter.kind, filter.status, filter.due_from, filter.due_before, filter.limit) = (kind, status, due_from, due_before, limit);
            filter
        },
    )
}

/// What one handler invocation does: defers its task (to any time), then returns `Ok` or
/// `Err` (of any size), after `yields` pending polls (an attempt claimed in storage first).
#[derive(Debug, Clone)]
pub struct Act {
    pub defer: Option<Time>,
    pub result: Result<(), Text>,
    pub yields: u32,
}

impl Default for Act {
    fn default() -> Self {
        Act { defer: None, result: Ok(()), yields: 0 }
    }
}

pub fn act() -> impl Strategy<Value = Act> {
    let error = prop_oneof![
        select(vec!["boom", "", "é🦀\0"]).prop_map(text),
        Just(text("e".repeat(10_000))),
        Just(text("é".repeat(3_000))),
    ];
    let result = prop_oneof![2 => Just(Ok(())), 2 => error.prop_map(Err)];
    (prop::option::weighted(0.4, time()), result, 0u32..=1).prop_map(|(defer, result, yields)| Act { defer, result, yields })
}

/// One step of a program.
#[derive(Debug, Clone)]
pub enum Op {
    Schedule(TaskSpec),
    ScheduleMany(Vec<TaskSpec>),
    Get(Text),
    List(Filter),
    Cancel(Text),
    Requeue(Text),
    /// The operator's operations (guarantee 17).
    Pause(Text),
    Resume(Text),
    RunTaskNow(Text),
    RequeueDead(Filter),
    Counts,
    /// Runs what is due: at a given time (the `run_due_at` hook) or, with `None`, as the
    /// native alarm firing at the clock; with any batch limit; handlers scripted by `acts`.
    Run { at: Option<Time>, limit: usize, acts: Vec<Act> },
    /// The clock moves on.
    Advance(i64),
    /// The object restarts: a new scheduler on the same storage and alarm, opened as
    /// `Alarms::open` does (`repair`, then reading the alarm).
    Restart,
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => task().prop_map(Op::Schedule),
        3 => prop::collection::vec(task(), 0..4).prop_map(Op::ScheduleMany),
        1 => id().prop_map(Op::Get),
        2 => filter().prop_map(Op::List),
        1 => id().prop_map(Op::Cancel),
        2 => id().prop_map(Op::Requeue),
        2 => id().prop_map(Op::Pause),
        2 => id().prop_map(Op::Resume),
        2 => id().prop_map(Op::RunTaskNow),
        1 => filter().prop_map(Op::RequeueDead),
        1 => Just(Op::Counts),
        6 => (prop::option::weighted(0.7, time()), any_usize(), prop::collection::vec(act(), 0..8)).prop_map(|(at, limit, acts)| Op::Run { at, limit, acts }),
        3 => prop_oneof![4 => select(vec![0, 1, 999, 1_000, 60_000, 86_400_000]), 1 => any_i64()].prop_map(Op::Advance),
        1 => Just(Op::Restart),
    ]
}

/// Where the clock starts: usually now-ish, sometimes at either end of the range the
/// runtime can arm. The clock is the runtime's (`Date.now()`), never a user's input: it
/// stays within `0 ..= MAX_TIME_MS` (2262-04-11); at its very end an overdue task is armed
/// for `MAX_TIME_MS` itself, not 1 ms after it.
pub fn start() -> impl Strategy<Value = i64> {
    prop_oneof![4 => Just(BASE), 1 => select(vec![0, 1, MAX_TIME_MS - 86_400_000, MAX_TIME_MS - 1, MAX_TIME_MS])]
}

/// The latest the clock reads.
pub const CLOCK_MAX: i64 = MAX_TIME_MS;
