//! The JSON the worker's routes speak: shared with the driver, which depends on this crate
//! for these types alone (on a native target the crate is just this module).

use serde::{Deserialize, Serialize};

/// `POST /<object>/schedule`: schedule tasks `first .. first + count`, in one request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScheduleRequest {
    /// The number of the first task.
    #[serde(default)]
    pub first: u32,
    /// How many tasks (1 for one request per task).
    pub count: u32,
    /// Task `first + i` runs `delay_ms + i * stagger_ms` after it is scheduled.
    #[serde(default)]
    pub delay_ms: u64,
    /// See `delay_ms` (0: every task of the request has the same delay).
    #[serde(default)]
    pub stagger_ms: u64,
    /// Every task fails its first `fail_first` attempts (0: none fails).
    #[serde(default)]
    pub fail_first: u32,
    /// The task with this number panics on every attempt.
    #[serde(default)]
    pub panic_n: Option<u32>,
    /// Attempts per task (default: lumenize-alarms' `RetryPolicy::default()`, 3).
    #[serde(default)]
    pub attempts: Option<u32>,
    /// First retry backoff in milliseconds, doubling, capped at 8 times this (default 1 s).
    #[serde(default)]
    pub backoff_ms: Option<u64>,
    /// Read the native alarm after every schedule to count how often it moved (costs one
    /// read per task, so throughput is measured without it).
    #[serde(default)]
    pub trace_alarm: bool,
    /// Which scheduler stores and runs the tasks. An object keeps the scheduler of its first
    /// `schedule` request: a request naming another one is refused.
    #[serde(default)]
    pub scheduler: Scheduler,
}

/// Who multiplexes an object's tasks on its one native alarm: lumenize-alarms, or one of
/// the two baselines measured next to it (`src/baselines.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheduler {
    /// lumenize-alarms: every task a row, retries, crash recovery.
    #[default]
    Lumenize,
    /// lumenize-alarms with each request's tasks stored through one `schedule_many`.
    LumenizeMany,
    /// The floor: the smallest honest hand-rolled multiplexer (one table, insert, delete,
    /// no retries, no crash accounting). What any multiplexer costs at least.
    Floor,
    /// No multiplexing: every task is a `setAlarm` that overwrites the previous one, so only
    /// the last task of a burst fires. What the native alarm alone delivers.
    Native,
}

impl Scheduler {
    /// Every scheduler, in the order the driver runs them.
    pub const ALL: [Scheduler; 4] = [Scheduler::Lumenize, Scheduler::LumenizeMany, Scheduler::Floor, Scheduler::Native];

    /// Its name in requests, tables and object names.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Scheduler::Lumenize => "lumenize",
            Scheduler::LumenizeMany => "lumenize-many",
            Scheduler::Floor => "floor",
            Scheduler::Native => "native",
        }
    }

    /// Whether it is a baseline (measured to compare against, not the library).
    #[must_use]
    pub fn is_baseline(self) -> bool {
        matches!(self, Scheduler::Floor | Scheduler::Native)
    }

    /// Whether every task scheduled with it must fire. The native alarm keeps only the last
    /// `setAlarm`: it loses, by design, every task overwritten before it fired.
    #[must_use]
    pub fn delivers_every_task(self) -> bool {
        self != Scheduler::Native
    }
}

impl std::fmt::Display for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Scheduler {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheduler::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Scheduler::ALL.iter().map(|m| m.as_str()).collect();
            format!("unknown scheduler {s:?} (one of: {})", names.join(", "))
        })
    }
}

/// What one `schedule` request did, by the runtime's clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleReply {
    /// The number of the first task scheduled.
    pub first: u32,
    /// How many were scheduled.
    pub count: u32,
    /// When the request started scheduling (Unix milliseconds).
    pub started_ms: i64,
    /// When the last task was stored.
    pub finished_ms: i64,
    /// Rows the request wrote to SQLite (SQLite's `total_changes()` before and after):
    /// lumenize-alarms' cost per task.
    pub sql_rows_written: i64,
    /// With `trace_alarm`: how many times the native alarm changed during the request (for
    /// the baselines: how many times they wrote it, which they know without reading it).
    pub alarm_changes: Option<u32>,
}

/// One recorded firing: a handler started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Firing {
    /// Order of recording (the paging key).
    pub seq: i64,
    /// The task's number.
    pub n: u32,
    /// lumenize-alarms' id of the task (a UUIDv7).
    pub task_id: String,
    /// The time the task was scheduled for (Unix milliseconds); retries keep it.
    pub scheduled_ms: i64,
    /// The time this attempt was due (after a failure: the scheduled time plus backoff).
    pub due_ms: i64,
    /// When the handler started, by the runtime's clock.
    pub fired_ms: i64,
    /// Which attempt this is (1 for the first).
    pub attempt: u32,
    /// What the handler did: `ok`, `err` or `panic`.
    pub outcome: String,
}

/// `GET /<object>/firings`: the firings with `seq > after`, at most `limit` of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FiringsPage {
    /// In `seq` order.
    pub firings: Vec<Firing>,
    /// Pass as `after` for the next page; `None` when this was the last one.
    pub next: Option<i64>,
}

/// A task lumenize-alarms keeps as dead: out of attempts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadTask {
    /// Its id.
    pub id: String,
    /// Attempts made.
    pub attempts: u32,
    /// The error of the last attempt.
    pub last_error: Option<String>,
}

/// `GET /<object>/status`: where the experiment stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReply {
    /// Firings recorded.
    pub firings: i64,
    /// Distinct tasks whose handler succeeded.
    pub succeeded: i64,
    /// Whether any task is still pending or running.
    pub queued: bool,
    /// The dead tasks.
    pub dead: Vec<DeadTask>,
    /// Panics recorded by the `abort_on_panic` around `run_due` in `alarm()`.
    pub panics: i64,
    /// The native alarm (Unix milliseconds), if armed.
    pub alarm_ms: Option<i64>,
}


/// `POST /<object>/bench`: how many tasks per measurement, how many rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchRequest {
    /// Tasks per measurement (at most lumenize-alarms' batch limit).
    pub n: u32,
    /// How many times each measurement is taken.
    pub rounds: u32,
}

/// What `POST /<object>/bench` measured: microseconds per task, one entry per round, by
/// the runtime's clock, with no handler work; both schedulers write the native alarm as
/// they do in use (once per request that stores tasks, once per run that leaves nothing).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BenchReply {
    /// Tasks per measurement.
    pub n: u32,
    /// lumenize-alarms, `schedule` one by one.
    pub lumenize_schedule_us: Vec<f64>,
    /// lumenize-alarms, one `schedule_many`.
    pub lumenize_schedule_many_us: Vec<f64>,
    /// lumenize-alarms, a run of due tasks (two per round: after each way of storing).
    pub lumenize_run_us: Vec<f64>,
    /// The floor, an `INSERT` per task.
    pub floor_insert_us: Vec<f64>,
    /// The floor, a run of due tasks.
    pub floor_run_us: Vec<f64>,
}
