//! `Scheduled`, a stored task as the API shows it, and its `Status`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::core::policy::{MissedTicks, RetryPolicy};
use crate::core::when::Schedule;
use crate::error::{Error, Result};

/// A stored task: what [`Alarms::get`](crate::Alarms::get), `list` and `cancel` return, and
/// what a handler is told about the task it runs.
///
/// It may gain fields in a minor release (`#[non_exhaustive]`): read it, do not build one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Scheduled {
    /// Its id: the one given in [`Options::id`](crate::Options::id), or a UUIDv7.
    pub id: String,
    /// Insertion order: among tasks due at the same millisecond, the lower runs first.
    /// A new one is taken when the task is (re)scheduled.
    pub seq: i64,
    /// Once, cron or interval.
    pub schedule: Schedule,
    /// When it runs next (Unix milliseconds): its tick, or a retry after a failure. For a
    /// running task, the time it was due.
    pub due_ms: i64,
    /// The time this occurrence was scheduled for (Unix milliseconds). Retries keep it, and a
    /// recurring task's next tick is computed from it, so retries do not shift the grid.
    pub tick_ms: i64,
    /// The payload as stored (JSON).
    pub payload: String,
    /// Pending, running, paused or dead.
    pub status: Status,
    /// Attempts started for the current occurrence (the running one included).
    pub attempts: u32,
    /// How failures are retried.
    pub retry: RetryPolicy,
    /// What a late recurring task does.
    pub missed: MissedTicks,
    /// The error of the last failed attempt, if any.
    pub last_error: Option<String>,
    /// When it was scheduled (Unix milliseconds).
    pub created_ms: i64,
}

impl Scheduled {
    /// A pending one-shot task with the default policies. For this workspace's store tests: a
    /// `Scheduled` is otherwise only made by the scheduler. Not API.
    #[doc(hidden)]
    #[must_use]
    pub fn pending_once(id: &str, due_ms: i64, payload: &str, created_ms: i64) -> Self {
        Scheduled {
            id: id.to_owned(),
            seq: 0,
            schedule: Schedule::Once,
            due_ms,
            tick_ms: due_ms,
            payload: payload.to_owned(),
            status: Status::Pending,
            attempts: 0,
            retry: RetryPolicy::default(),
            missed: MissedTicks::Skip,
            last_error: None,
            created_ms,
        }
    }

    /// Decodes the stored payload.
    ///
    /// # Errors
    /// [`Error::Decode`] when the payload no longer deserialises into `T`.
    ///
    /// ```
    /// # use lumenize_alarms::Scheduled;
    /// # fn demo(task: &Scheduled) -> Result<(), lumenize_alarms::Error> {
    /// let n: u32 = task.payload()?;
    /// # Ok(()) }
    /// ```
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.payload).map_err(|e| Error::Decode { id: self.id.clone(), reason: e.to_string() })
    }
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// Waiting for its time, or due and not yet started.
    Pending,
    /// Its handler was started and has not finished. Found in this state by a later run, it
    /// means the attempt was cut short (the object crashed, or a handler panicked): that
    /// attempt counts as failed and the retry policy applies.
    Running,
    /// Out of attempts, its payload no longer deserialises, or its next time cannot be
    /// armed. Kept with its last error.
    Dead,
    /// Held by [`Alarms::pause`](crate::Alarms::pause): never run and never armed for, until
    /// [`resume`](crate::Alarms::resume)d or [run now](crate::Alarms::run_now). It keeps its
    /// definition, due time, attempts and last error; its time may pass meanwhile (see
    /// `resume` for what happens then). Listed, filtered and cancelled like any task, and
    /// it stays paused across crashes and restarts (it is a stored status, and a paused
    /// task is never running).
    Paused,
}

impl Status {
    /// The name stored in the `status` column.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Dead => "dead",
            Status::Paused => "paused",
        }
    }

    /// Whether a task in this status is in the queue: pending or running (what runs, and
    /// what the native alarm is armed for).
    #[must_use]
    pub fn is_live(self) -> bool {
        matches!(self, Status::Pending | Status::Running)
    }

    /// The status named `s` (as stored), if any.
    #[must_use]
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Pending, Status::Running, Status::Dead, Status::Paused].into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many tasks are in each status: what [`Alarms::counts`](crate::Alarms::counts)
/// returns, read with one statement (no task is read into the object).
///
/// ```
/// use lumenize_alarms::Counts;
/// let mut c = Counts::default();
/// (c.pending, c.running, c.paused, c.dead) = (3, 1, 2, 4);
/// assert_eq!(c.total(), 10);
/// ```
///
/// It may gain fields in a minor release (`#[non_exhaustive]`): read it, or start from
/// `Counts::default()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Counts {
    /// Waiting for their time, or due and not started.
    pub pending: usize,
    /// Started and not finished (or cut short, until the next run notices).
    pub running: usize,
    /// Paused.
    pub paused: usize,
    /// Dead (quarantined rows included once they were met: see [`Alarms::counts`](crate::Alarms::counts)).
    pub dead: usize,
}

impl Counts {
    /// All tasks.
    #[must_use]
    pub fn total(&self) -> usize {
        self.pending + self.running + self.paused + self.dead
    }

    /// Counts `n` more tasks in `status`.
    pub(crate) fn add(&mut self, status: Status, n: usize) {
        match status {
            Status::Pending => self.pending += n,
            Status::Running => self.running += n,
            Status::Paused => self.paused += n,
            Status::Dead => self.dead += n,
        }
    }
}
