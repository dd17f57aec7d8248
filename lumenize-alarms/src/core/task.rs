//! `Scheduled`, a stored task as the API shows it, and its `Status`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::core::policy::{MissedTicks, RetryPolicy};
use crate::core::when::Schedule;
use crate::error::{Error, Result};

/// A stored task: what [`Alarms::get`](crate::Alarms::get), `list` and `cancel` return, and
/// what a handler is told about the task it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Pending, running or dead.
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
}

impl Status {
    /// The name stored in the `status` column.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Dead => "dead",
        }
    }

    /// The status named `s` (as stored), if any.
    #[must_use]
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Pending, Status::Running, Status::Dead].into_iter().find(|st| st.as_str() == s)
    }
}
