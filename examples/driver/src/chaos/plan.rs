//! The plan of a chaos run: an endless stream of steps drawn from one seeded generator.
//!
//! The plan depends on the seed and the number of objects only, never on what the runtime
//! answers: a step names the tasks it acts on by the step that created them
//! ([`TaskRef::Step`]) or by an explicit id, and the executor resolves those to ids. So the
//! same seed gives the same steps in the same order; only the runtime's timing differs.
//! The generator is ChaCha8 (`rand`'s `ChaCha8Rng`), whose output is fixed for a seed.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::chaos::call_plan::{CallHistory, CallOp, CALL_EVERY, ORIGINS};
use crate::chaos::invalid::{Invalid, MAX_TIME_MS};

/// Explicit ids per object that one-shot tasks share (`x0`, `x1`, ...): they collide, so
/// scheduling one upserts (or, with `keep_existing`, keeps) the task already there.
pub const EXPLICIT_IDS: u32 = 4;
/// Explicit ids per object for cron and interval tasks (`r0`, `r1`): at most this many
/// recurring tasks per object at a time.
pub const RECURRING_IDS: u32 = 2;
/// Steps between two kills of the runtime: drawn in `KILL_EVERY / 2 .. KILL_EVERY * 3 / 2`.
pub const KILL_EVERY: u64 = 180;
/// Steps between two panicking tasks (each resets the worker's whole wasm instance).
pub const PANIC_EVERY: u64 = 150;
/// Steps between two alarms deleted behind the scheduler's back.
pub const LOSE_ALARM_EVERY: u64 = 160;
/// How many tasks of its history per object the plan remembers to act on later.
const HISTORY: usize = 48;
/// How many explicit ids at the edges of what the library accepts there are ([`extreme_id`]).
pub(crate) const EXTREME_IDS: u32 = 4;

/// Explicit id `k` (`0 .. EXTREME_IDS`) at the edges of what the library accepts, shared by
/// one-shot tasks like the `x` ids: the longest (512 bytes, in ASCII and in four-byte
/// characters), and unicode of several scripts and directions, with quotes and backslashes.
#[must_use]
pub(crate) fn extreme_id(k: u32) -> String {
    match k % EXTREME_IDS {
        0 => "\u{1F389}".repeat(128),
        1 => "x".repeat(512),
        2 => "t\u{e2}che-\u{65e5}\u{672c}-\u{645}\u{647}\u{645}\u{629} \"quoted\" \\ back/slash".to_owned(),
        _ => "\u{202e}rtl\u{200b}zero-width\u{fe0f}".to_owned(),
    }
}

/// One step of the plan, and how long to pause after it (drawn too: the pace of a run
/// depends on the seed as well).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Its place in the plan, from 0.
    pub index: u64,
    /// What to do.
    pub action: Action,
    /// Milliseconds to wait after it.
    pub pause_ms: u64,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// One request to one object.
    Op {
        /// Which object (`0 .. objects`).
        object: usize,
        /// The request.
        op: Op,
    },
    /// SIGKILL of the runtime, then a restart on the same storage.
    Kill {
        /// Kill in the middle of this request, rather than between two requests.
        mid_request: Option<MidRequest>,
        /// How long the runtime stays down (tasks fall due meanwhile).
        down_ms: u64,
    },
    /// The object's native alarm deleted behind the scheduler's back (`lose_alarm`).
    LoseAlarm {
        /// Which object.
        object: usize,
    },
    /// One request to a call origin (`CallerDO`): make calls, or cancel one.
    Call {
        /// Which origin (`0 .. ORIGINS`).
        origin: usize,
        /// The request.
        op: CallOp,
    },
}

/// A request a kill cuts off: a burst long enough (hundreds of `schedule` calls in one
/// request) that the SIGKILL lands while the object is storing it.
#[derive(Debug, Clone, PartialEq)]
pub struct MidRequest {
    /// Which object.
    pub object: usize,
    /// The request.
    pub op: Op,
    /// The kill comes this many milliseconds after it was sent.
    pub after_ms: u64,
}

/// A request to one `AlarmsDO` of the sandbox worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `schedule` (or `schedule_raw` for an undecodable payload).
    Schedule(Schedule),
    /// `burst`: `n` `Record` tasks in one request.
    Burst(Burst),
    /// `cancel`.
    Cancel(TaskRef),
    /// `requeue`.
    Requeue(TaskRef),
    /// `get`.
    Get(TaskRef),
    /// `schedule_many`: explicit ids (some repeated in the batch) and options per task.
    Many(Many),
    /// `list`, with an optional filter.
    List {
        /// `once`, `cron` or `every`.
        kind: Option<&'static str>,
        /// `pending`, `running` or `dead`.
        status: Option<&'static str>,
        /// Only tasks due in `from .. before` (either end at the edges of `i64`, or of the
        /// accepted range).
        due: Option<(i64, i64)>,
        /// At most this many (0, 1, or `u64::MAX`).
        limit: Option<u64>,
    },
    /// `run_at` for a time this many milliseconds before now (the test hook runs what is
    /// due, in a request, beside the alarm's runs; never early).
    RunAt {
        /// How far behind the driver's clock.
        behind_ms: u64,
    },
    /// An input the object must refuse with a typed 4xx.
    Invalid(Invalid),
}

/// A task the plan names: the executor turns it into an id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum TaskRef {
    /// The task created by step `step` (the `index`-th task of a burst).
    Step {
        /// The step that scheduled it.
        step: u64,
        /// Its place in the burst (0 for a single schedule).
        index: u32,
    },
    /// An explicit id.
    Id(String),
}

/// One `schedule` request.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The label its handler records (`s<step>`): unique in the run.
    pub label: String,
    /// When.
    pub when: When,
    /// What its handler does.
    pub handler: Handler,
    /// An explicit id, or a generated one.
    pub id: Option<String>,
    /// With an explicit id: keep the stored task instead of replacing it.
    pub keep_existing: bool,
    /// Attempts in all (default policy: 3).
    pub attempts: Option<u32>,
    /// Backoff after the first failure (doubling, capped at 8 times it).
    pub backoff_ms: Option<u64>,
    /// Every field of the retry policy (instead of `attempts` and `backoff_ms`).
    pub retry: Option<Retry>,
    /// `MissedTicks::Burst` instead of `Skip` (recurring tasks).
    pub burst_missed: bool,
}

/// A whole `RetryPolicy`, durations in milliseconds as `u64` (the sandbox's `retry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Retry {
    /// Attempts in all (0 means 1).
    pub max_attempts: u32,
    /// The wait after the first failure.
    pub initial_backoff_ms: u64,
    /// The longest wait.
    pub max_backoff_ms: u64,
    /// The growth of the wait.
    pub factor: u32,
}

/// Backoffs at the edges: the largest `u64` and `i64`, 2^53 and its neighbours (where a
/// JavaScript number stops holding every integer), and the latest time the runtime arms.
/// Every one of them puts a retry after the accepted range.
pub(crate) const EXTREME_BACKOFFS: [u64; 6] = [u64::MAX, 9_223_372_036_854_775_807, 1 << 53, (1 << 53) + 1, (1 << 53) - 1, 9_223_372_036_854];

impl Retry {
    /// A policy with a field or more at its edge: attempts 0, 1 or `u32::MAX`; backoffs 0,
    /// small, an hour, or beyond every range; factors 0, 1, 2 or `u32::MAX`.
    fn draw(rng: &mut ChaCha8Rng) -> Retry {
        let max_attempts = [0, 1, 2, 4, u32::MAX][rng.random_range(0..5)];
        let initial_backoff_ms = match rng.random_range(0..6) {
            0 => 0,
            1 => FAR_MS,
            2 => EXTREME_BACKOFFS[rng.random_range(0..EXTREME_BACKOFFS.len())],
            _ => rng.random_range(1..400),
        };
        let max_backoff_ms = match rng.random_range(0..4) {
            0 => 0,
            1 => EXTREME_BACKOFFS[rng.random_range(0..EXTREME_BACKOFFS.len())],
            _ => rng.random_range(1..3_000),
        };
        let factor = [0, 1, 2, u32::MAX][rng.random_range(0..4)];
        Retry { max_attempts, initial_backoff_ms, max_backoff_ms, factor }
    }
}

/// When a task is due, as the plan says it (the executor reads the clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// `after_ms`.
    AfterMs(u64),
    /// `at_ms`: this long before now.
    AtPastMs(u64),
    /// `at_ms: 0`, the first time accepted.
    AtEpoch,
    /// `at_ms`: this long after now.
    AtFutureMs(u64),
    /// `at_ms: MAX_TIME_MS`, the last time accepted (never fires in a run).
    AtMax,
    /// A cron expression (`cron`).
    Cron(&'static str),
    /// `every_ms`.
    EveryMs(u64),
}

impl When {
    /// Whether it repeats.
    #[must_use]
    pub fn recurring(self) -> bool {
        matches!(self, When::Cron(_) | When::EveryMs(_))
    }

    /// Whether the task is certainly not due before a run ends (an hour or more away).
    #[must_use]
    pub fn far(self) -> bool {
        match self {
            When::AtFutureMs(ms) => ms >= FAR_MS,
            When::AtMax => true,
            When::Cron(expr) => expr.starts_with("0 0 1 1"),
            When::EveryMs(ms) => ms >= FAR_MS,
            When::AfterMs(_) | When::AtPastMs(_) | When::AtEpoch => false,
        }
    }
}

/// A time at least this far ahead never falls due within a run (an hour).
pub const FAR_MS: u64 = 3_600_000;

/// What a task's handler does (the sandbox's `Task` variants).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Handler {
    /// Records its firing.
    Record,
    /// Records, then fails while its label has been recorded at most `times` times.
    Fail {
        /// Planned failures.
        times: u32,
    },
    /// Records, then panics (resetting the worker's wasm instance).
    Panic,
    /// Records, waits `wait_ms` on its first attempt, records `<label>-done`.
    Slow {
        /// How long.
        wait_ms: u64,
    },
    /// Records, then reschedules its own id as a `Record` `<label>-again`, `delay_ms` later.
    Reschedule {
        /// How much later; beyond the accepted range, every attempt fails.
        delay_ms: u64,
    },
    /// Records, then schedules `count` zero-delay `Record` tasks `<label>-<i>`.
    Spawn {
        /// How many.
        count: u32,
    },
    /// Records, then cancels a task.
    Cancel {
        /// Which.
        target: TaskRef,
    },
    /// A payload of another shape than the sandbox's `Task` (`schedule_raw`): it must go
    /// dead without running.
    Undecodable,
}

/// One `burst` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Burst {
    /// Its tasks record `<label>-<i>`.
    pub label: String,
    /// How many.
    pub n: u32,
    /// Each `delay_ms` after it is stored...
    pub delay_ms: u64,
    /// ...or all at now plus this.
    pub at_future_ms: Option<u64>,
    /// One `schedule_many` instead of `n` `schedule` calls.
    pub many: bool,
}

/// One `schedule_many` request: far tasks (they stay pending through the run) under ids of
/// its own, repeated in the batch, each with its own options.
#[derive(Debug, Clone, PartialEq)]
pub struct Many {
    /// Its tasks, in order: the `i`-th records `<label>-<i>`.
    pub label: String,
    /// Per task: its id (`m<step>-<k>` or an extreme variant), how far, and its options.
    pub items: Vec<ManyItem>,
}

/// One task of a [`Many`].
#[derive(Debug, Clone, PartialEq)]
pub struct ManyItem {
    /// Its explicit id.
    pub id: String,
    /// `AtFutureMs` of an hour or more, or `AtMax`.
    pub when: When,
    /// Keep a task stored earlier in the batch under its id.
    pub keep_existing: bool,
    /// Its retry policy.
    pub retry: Option<Retry>,
    /// `MissedTicks::Burst`.
    pub burst_missed: bool,
}

/// What the plan remembers of a task it scheduled, to act on it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    /// Due soon and ends by itself.
    Soon,
    /// Far in the future (a target for cancels).
    Far,
    /// Meant to die (a target for requeues).
    Dying,
}

/// The seeded generator of steps. An iterator that never ends; take what a run needs.
///
/// ```
/// use lumenize_driver::chaos::Plan;
/// let a: Vec<_> = Plan::new(7, 3).take(200).collect();
/// let b: Vec<_> = Plan::new(7, 3).take(200).collect();
/// assert_eq!(a, b, "the same seed gives the same steps");
/// ```
#[derive(Debug)]
pub struct Plan {
    rng: ChaCha8Rng,
    objects: usize,
    next: u64,
    history: Vec<Vec<(TaskRef, Hint)>>,
    next_kill: u64,
    next_panic: u64,
    next_lose: u64,
    panics: bool,
    calls: CallHistory,
}

impl Plan {
    /// The plan of `seed` over `objects` objects (at least one).
    #[must_use]
    pub fn new(seed: u64, objects: usize) -> Self {
        let objects = objects.max(1);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let next_kill = around(&mut rng, KILL_EVERY);
        let next_panic = around(&mut rng, PANIC_EVERY);
        let next_lose = around(&mut rng, LOSE_ALARM_EVERY);
        Plan { rng, objects, next: 0, history: vec![Vec::new(); objects], next_kill, next_panic, next_lose, panics: true, calls: CallHistory::new() }
    }

    /// The same plan without panicking tasks: where one would come, another request is
    /// drawn instead (so the steps differ from the plan with panics from there on).
    #[must_use]
    pub fn without_panics(self) -> Self {
        Plan { panics: false, ..self }
    }

    fn remember(&mut self, object: usize, task: TaskRef, hint: Hint) {
        let history = &mut self.history[object];
        if history.len() == HISTORY {
            history.remove(0);
        }
        history.push((task, hint));
    }

    /// A task of `object` the plan scheduled, preferring those with `hint`, or an id that
    /// may or may not exist.
    fn pick_task(&mut self, object: usize, hint: Hint) -> TaskRef {
        let roll = self.rng.random_range(0..10);
        let history = &self.history[object];
        let hinted: Vec<&TaskRef> = history.iter().filter(|(_, h)| *h == hint).map(|(t, _)| t).collect();
        if roll < 6 && !hinted.is_empty() {
            return hinted[self.rng.random_range(0..hinted.len())].clone();
        }
        if roll < 8 && !history.is_empty() {
            return history[self.rng.random_range(0..history.len())].0.clone();
        }
        match self.rng.random_range(0..3) {
            0 => TaskRef::Id(format!("x{}", self.rng.random_range(0..EXPLICIT_IDS))),
            1 => TaskRef::Id(format!("r{}", self.rng.random_range(0..RECURRING_IDS))),
            _ => TaskRef::Id(format!("never-{}", self.next)),
        }
    }

    fn step(&mut self) -> Step {
        let index = self.next;
        self.next += 1;
        let pause_ms = if self.rng.random_ratio(1, 8) { self.rng.random_range(100..600) } else { self.rng.random_range(0..60) };
        // `>=`: when two cadences fall on the same step, the later one comes at the next.
        let action = if index >= self.next_kill {
            self.next_kill = index + around(&mut self.rng, KILL_EVERY);
            let mid_request = if self.rng.random_bool(0.4) {
                let object = self.rng.random_range(0..self.objects);
                let n = self.rng.random_range(500..1_500);
                let burst = Burst { label: format!("s{index}"), n, delay_ms: self.soon(), at_future_ms: None, many: false };
                Some(MidRequest { object, op: Op::Burst(burst), after_ms: self.rng.random_range(0..30) })
            } else {
                None
            };
            Action::Kill { mid_request, down_ms: self.rng.random_range(0..2_500) }
        } else if index >= self.next_lose {
            self.next_lose = index + around(&mut self.rng, LOSE_ALARM_EVERY);
            Action::LoseAlarm { object: self.rng.random_range(0..self.objects) }
        } else if self.rng.random_ratio(1, CALL_EVERY) {
            let origin = self.rng.random_range(0..ORIGINS);
            Action::Call { origin, op: self.calls.draw(&mut self.rng, index, origin, self.panics) }
        } else {
            let object = self.rng.random_range(0..self.objects);
            let op = if index >= self.next_panic {
                self.next_panic = index + around(&mut self.rng, PANIC_EVERY);
                if self.panics {
                    self.panic(index, object)
                } else {
                    self.op(index, object)
                }
            } else {
                self.op(index, object)
            };
            Action::Op { object, op }
        };
        Step { index, action, pause_ms }
    }

    fn panic(&mut self, index: u64, object: usize) -> Op {
        let attempts = self.rng.random_range(1..=2);
        let delay = self.rng.random_range(0..1_500);
        self.remember(object, TaskRef::Step { step: index, index: 0 }, Hint::Dying);
        Op::Schedule(Schedule {
            attempts: Some(attempts),
            backoff_ms: Some(self.rng.random_range(100..800)),
            ..Self::schedule(index, When::AfterMs(delay), Handler::Panic)
        })
    }

    fn schedule(index: u64, when: When, handler: Handler) -> Schedule {
        Schedule {
            label: format!("s{index}"),
            when,
            handler,
            id: None,
            keep_existing: false,
            attempts: None,
            backoff_ms: None,
            retry: None,
            burst_missed: false,
        }
    }

    fn soon(&mut self) -> u64 {
        match self.rng.random_range(0..4) {
            0 => 0,
            1 => self.rng.random_range(1..50),
            _ => self.rng.random_range(50..3_000),
        }
    }

    /// A `schedule_many` of 1 to 6 far tasks under 1 to 3 ids of this step (so some repeat).
    fn many(&mut self, index: u64, object: usize) -> Many {
        let n = self.rng.random_range(1..=6);
        let ids = self.rng.random_range(1..=3);
        let items: Vec<ManyItem> = (0..n)
            .map(|_| {
                let k = self.rng.random_range(0..ids);
                let id = if k == 2 { format!("m{index}-{}", extreme_id(2)) } else { format!("m{index}-{k}") };
                let when = if self.rng.random_ratio(1, 4) { When::AtMax } else { When::AtFutureMs(self.rng.random_range(FAR_MS..365 * 86_400_000)) };
                let retry = self.rng.random_ratio(1, 2).then(|| Retry::draw(&mut self.rng));
                ManyItem { id, when, keep_existing: self.rng.random_ratio(1, 4), retry, burst_missed: self.rng.random_bool(0.5) }
            })
            .collect();
        for item in &items {
            self.remember(object, TaskRef::Id(item.id.clone()), Hint::Far);
        }
        Many { label: format!("s{index}"), items }
    }

    /// Every kind of request, weighted.
    #[allow(clippy::too_many_lines)]
    fn op(&mut self, index: u64, object: usize) -> Op {
        let me = TaskRef::Step { step: index, index: 0 };
        let roll = self.rng.random_range(0..100);
        match roll {
            // One-shot records: after a delay, at past, near and far times, at the edges.
            0..=21 => {
                let when = match self.rng.random_range(0..20) {
                    0..=9 => When::AfterMs(self.soon()),
                    10..=11 => When::AtPastMs(self.rng.random_range(0..86_400_000)),
                    12 => When::AtEpoch,
                    13..=16 => When::AtFutureMs(self.soon()),
                    17..=18 => When::AtFutureMs(self.rng.random_range(FAR_MS..365 * 86_400_000)),
                    _ => When::AtMax,
                };
                self.remember(object, me.clone(), if when.far() { Hint::Far } else { Hint::Soon });
                let attempts = self.rng.random_ratio(1, 4).then(|| self.rng.random_range(1..=5));
                Op::Schedule(Schedule { attempts, ..Self::schedule(index, when, Handler::Record) })
            }
            // Explicit ids that collide: upsert, or keep the existing task.
            22..=31 => {
                let id = if self.rng.random_ratio(1, 4) {
                    extreme_id(self.rng.random_range(0..EXTREME_IDS))
                } else {
                    format!("x{}", self.rng.random_range(0..EXPLICIT_IDS))
                };
                let when = if self.rng.random_ratio(1, 5) {
                    When::AtFutureMs(self.rng.random_range(FAR_MS..10 * FAR_MS))
                } else {
                    When::AfterMs(self.soon())
                };
                let handler = if self.rng.random_ratio(1, 4) { Handler::Fail { times: 1 } } else { Handler::Record };
                let keep_existing = self.rng.random_ratio(1, 3);
                self.remember(object, TaskRef::Id(id.clone()), if when.far() { Hint::Far } else { Hint::Soon });
                Op::Schedule(Schedule { id: Some(id), keep_existing, ..Self::schedule(index, when, handler) })
            }
            // Cron and interval tasks, on a few explicit ids (so at most a few per object).
            32..=34 => {
                let id = format!("r{}", self.rng.random_range(0..RECURRING_IDS));
                let when = match self.rng.random_range(0..6) {
                    0 => When::Cron("* * * * * *"),
                    1 => When::Cron("*/2 * * * * *"),
                    2 => When::Cron("0 0 1 1 *"),
                    3 => When::EveryMs(self.rng.random_range(FAR_MS..100 * FAR_MS)),
                    _ => When::EveryMs(self.rng.random_range(300..2_500)),
                };
                let handler = if self.rng.random_ratio(1, 4) { Handler::Fail { times: 1 } } else { Handler::Record };
                self.remember(object, TaskRef::Id(id.clone()), Hint::Far);
                let burst_missed = self.rng.random_bool(0.5);
                Op::Schedule(Schedule { id: Some(id), burst_missed, ..Self::schedule(index, when, handler) })
            }
            // Handlers that fail k times, with attempts enough or not, and huge backoffs.
            35..=40 => {
                let times = self.rng.random_range(1..=3);
                let attempts = self.rng.random_range(1..=4);
                let backoff_ms = match self.rng.random_range(0..10) {
                    0 => 10_000_000_000_000, // every retry falls after the range: dies
                    1 => EXTREME_BACKOFFS[self.rng.random_range(0..EXTREME_BACKOFFS.len())], // the same
                    2 => FAR_MS,             // the retry is pending at the end
                    _ => self.rng.random_range(20..600),
                };
                let when = When::AfterMs(self.soon());
                let handler = Handler::Fail { times };
                if self.rng.random_ratio(1, 3) {
                    // A whole policy, some of it at the edges.
                    let retry = Retry::draw(&mut self.rng);
                    let dies = times >= retry.max_attempts || retry.initial_backoff_ms > FAR_MS || retry.factor == u32::MAX;
                    self.remember(object, me, if dies { Hint::Dying } else { Hint::Soon });
                    return Op::Schedule(Schedule { retry: Some(retry), ..Self::schedule(index, when, handler) });
                }
                let attempts = if self.rng.random_ratio(1, 8) { u32::MAX } else { attempts };
                let dies = times >= attempts || backoff_ms > FAR_MS;
                self.remember(object, me, if dies { Hint::Dying } else { Hint::Soon });
                Op::Schedule(Schedule { attempts: Some(attempts), backoff_ms: Some(backoff_ms), ..Self::schedule(index, when, handler) })
            }
            // Long handlers (cut short by kills and panics).
            41..=44 => {
                let wait_ms = self.rng.random_range(200..3_000);
                self.remember(object, me, Hint::Soon);
                let when = When::AfterMs(self.soon());
                Op::Schedule(Self::schedule(index, when, Handler::Slow { wait_ms }))
            }
            // Handlers that reschedule themselves, or past the range (every attempt fails).
            45..=46 => {
                let delay_ms = if self.rng.random_ratio(1, 5) { 10_000_000_000_000 } else { self.soon() };
                self.remember(object, me, if delay_ms > FAR_MS { Hint::Dying } else { Hint::Soon });
                let when = When::AfterMs(self.soon());
                Op::Schedule(Self::schedule(index, when, Handler::Reschedule { delay_ms }))
            }
            // Handlers that schedule other tasks.
            47..=48 => {
                let count = self.rng.random_range(1..=5);
                self.remember(object, me, Hint::Soon);
                let when = When::AfterMs(self.soon());
                Op::Schedule(Self::schedule(index, when, Handler::Spawn { count }))
            }
            // Handlers that cancel another task (usually a far one).
            49..=50 => {
                let target = self.pick_task(object, Hint::Far);
                self.remember(object, me, Hint::Soon);
                let when = When::AfterMs(self.soon());
                Op::Schedule(Self::schedule(index, when, Handler::Cancel { target }))
            }
            // A payload the task type does not decode: dead without running.
            51 => {
                self.remember(object, me, Hint::Dying);
                let when = When::AfterMs(self.soon());
                Op::Schedule(Self::schedule(index, when, Handler::Undecodable))
            }
            // Bursts, one schedule each or one schedule_many.
            52..=60 => {
                let n = if self.rng.random_ratio(1, 10) { self.rng.random_range(50..300) } else { self.rng.random_range(1..40) };
                let at_future_ms = self.rng.random_ratio(1, 5).then(|| self.soon());
                let burst = Burst { label: format!("s{index}"), n, delay_ms: self.soon(), at_future_ms, many: self.rng.random_bool(0.5) };
                for i in [0, n / 2, n - 1] {
                    self.remember(object, TaskRef::Step { step: index, index: i }, Hint::Soon);
                }
                Op::Burst(burst)
            }
            61..=69 => Op::Cancel(self.pick_task(object, Hint::Far)),
            70..=74 => Op::Requeue(self.pick_task(object, Hint::Dying)),
            75..=80 => Op::Get(self.pick_task(object, Hint::Soon)),
            81..=84 => {
                let kind = [None, Some("once"), Some("cron"), Some("every")][self.rng.random_range(0..4)];
                let status = [None, Some("pending"), Some("running"), Some("dead")][self.rng.random_range(0..4)];
                let due = [None, Some((i64::MIN, i64::MAX)), Some((0, MAX_TIME_MS + 1)), Some((i64::MAX, i64::MIN))][self.rng.random_range(0..4)];
                let limit = [None, None, Some(0), Some(1), Some(u64::MAX)][self.rng.random_range(0..5)];
                Op::List { kind, status, due, limit }
            }
            85..=86 => Op::Many(self.many(index, object)),
            87..=90 => Op::RunAt { behind_ms: self.rng.random_range(0..2_000) },
            _ => Op::Invalid(Invalid::draw(&mut self.rng)),
        }
    }
}

/// A count drawn in `every / 2 .. every * 3 / 2` (at least 1).
fn around(rng: &mut ChaCha8Rng, every: u64) -> u64 {
    rng.random_range(every / 2..every * 3 / 2).max(1)
}

impl Iterator for Plan {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        Some(self.step())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::call_plan::{Dispatch, MakeCall, Remote};

    #[test]
    fn the_same_seed_gives_the_same_steps_and_another_seed_others() {
        let a: Vec<Step> = Plan::new(42, 4).take(2_000).collect();
        let b: Vec<Step> = Plan::new(42, 4).take(2_000).collect();
        let c: Vec<Step> = Plan::new(43, 4).take(2_000).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().enumerate().all(|(i, s)| s.index == i as u64));
    }

    #[test]
    fn a_few_hundred_steps_cover_every_kind_of_request_and_fault() {
        let steps: Vec<Step> = Plan::new(1, 4).take(1_000).collect();
        let ops: Vec<&Op> = steps.iter().filter_map(|s| if let Action::Op { op, .. } = &s.action { Some(op) } else { None }).collect();
        let schedules: Vec<&Schedule> = ops.iter().filter_map(|op| if let Op::Schedule(s) = op { Some(s) } else { None }).collect();
        let has = |f: &dyn Fn(&Schedule) -> bool| schedules.iter().any(|s| f(s));
        assert!(has(&|s| matches!(s.when, When::AtMax)) && has(&|s| matches!(s.when, When::AtEpoch)));
        assert!(has(&|s| matches!(s.when, When::Cron(_))) && has(&|s| matches!(s.when, When::EveryMs(_))));
        assert!(has(&|s| s.keep_existing) && has(&|s| s.id.is_some() && !s.keep_existing));
        for handler in ["Fail", "Panic", "Slow", "Reschedule", "Spawn", "Cancel", "Undecodable"] {
            assert!(has(&|s| format!("{:?}", s.handler).starts_with(handler)), "{handler}");
        }
        let any = |f: &dyn Fn(&Op) -> bool| ops.iter().any(|op| f(op));
        assert!(any(&|op| matches!(op, Op::Burst(b) if b.many)) && any(&|op| matches!(op, Op::Burst(b) if !b.many)));
        assert!(any(&|op| matches!(op, Op::Cancel(_))) && any(&|op| matches!(op, Op::Requeue(_))));
        assert!(any(&|op| matches!(op, Op::Get(_))) && any(&|op| matches!(op, Op::List { .. })));
        // Extremes: ids, retry policies, batches with repeated ids, filters.
        assert!(has(&|s| s.id.as_ref().is_some_and(|id| id.len() == 512)));
        assert!(has(&|s| s.retry.is_some_and(|r| r.max_attempts == u32::MAX)) && has(&|s| s.retry.is_some_and(|r| r.factor == 0)));
        assert!(has(&|s| s.retry.is_some_and(|r| r.initial_backoff_ms >= 1 << 53)) && has(&|s| s.backoff_ms.is_some_and(|b| b >= 1 << 53)));
        assert!(any(&|op| matches!(op, Op::Many(m) if m.items.iter().enumerate().any(|(i, a)| m.items[..i].iter().any(|b| b.id == a.id)))));
        assert!(any(&|op| matches!(op, Op::List { limit: Some(u64::MAX), .. })) && any(&|op| matches!(op, Op::List { due: Some((i64::MIN, i64::MAX)), .. })));
        assert!(any(&|op| matches!(op, Op::RunAt { .. })) && any(&|op| matches!(op, Op::Invalid(_))));
        let kills = steps.iter().filter(|s| matches!(s.action, Action::Kill { .. })).count();
        let lost = steps.iter().filter(|s| matches!(s.action, Action::LoseAlarm { .. })).count();
        assert!((3..=8).contains(&kills), "{kills} kills in 1,000 steps");
        assert!(lost >= 3, "{lost} lost alarms");
        // The cadences keep going however often they meet: 20,000 steps hold about 125 kills,
        // 125 lost alarms and 133 panicking tasks.
        let long: Vec<Step> = Plan::new(1, 4).take(20_000).collect();
        let count = |f: &dyn Fn(&Step) -> bool| long.iter().filter(|s| f(s)).count();
        assert!(count(&|s| matches!(s.action, Action::Kill { .. })) > 100);
        assert!(count(&|s| matches!(s.action, Action::Kill { mid_request: Some(_), .. })) > 20, "kills in the middle of a request");
        assert!(count(&|s| matches!(s.action, Action::LoseAlarm { .. })) > 100);
        assert!(count(&|s| matches!(&s.action, Action::Op { op: Op::Schedule(s), .. } if s.handler == Handler::Panic)) > 100);
        let panics = schedules.iter().filter(|s| s.handler == Handler::Panic).count();
        assert!((4..=12).contains(&panics), "{panics} panicking tasks in 1,000 steps");
        // Calls: both modes, every remote behaviour, several to a request, cancels.
        let calls: Vec<&CallOp> = steps.iter().filter_map(|s| if let Action::Call { op, .. } = &s.action { Some(op) } else { None }).collect();
        let made: Vec<&MakeCall> = calls.iter().filter_map(|op| if let CallOp::Make(m) = op { Some(m) } else { None }).collect();
        assert!((150..=350).contains(&calls.len()), "{} call steps in 1,000", calls.len());
        for dispatch in [Dispatch::Alarm, Dispatch::Direct] {
            assert!(made.iter().filter(|m| m.dispatch == dispatch).count() >= 50, "{dispatch:?}");
        }
        for does in ["answers", "fails", "panics", "slow", "large reply", "reply too large"] {
            assert!(made.iter().any(|m| m.does.name() == does), "{does}");
        }
        assert!(made.iter().any(|m| m.count.is_some()) && made.iter().any(|m| m.cancel));
        assert!(made.iter().any(|m| m.timeout_ms.is_some()) && made.iter().any(|m| m.timeout_ms.is_none()));
        assert!(calls.iter().any(|op| matches!(op, CallOp::Cancel { .. })));
        let calm_calls = Plan::new(1, 4).without_panics().take(1_000).filter(|s| matches!(&s.action, Action::Call { op: CallOp::Make(m), .. } if m.does == Remote::Panics));
        assert_eq!(calm_calls.count(), 0);
        let calm = Plan::new(1, 4).without_panics().take(1_000).filter(|s| matches!(&s.action, Action::Op { op: Op::Schedule(s), .. } if s.handler == Handler::Panic));
        assert_eq!(calm.count(), 0);
    }
}
