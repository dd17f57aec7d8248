//! The storage the core needs: a handful of synchronous row operations.

use crate::core::{Status, Scheduled};
use crate::{Kind, Result};

/// Rows of tasks, keyed by id. Synchronous, like SQLite in a Durable Object: a
/// read-modify-write with no `.await` between is atomic there.
///
/// Implemented by the SQLite adapter inside [`Alarms`](crate::Alarms) and by
/// [`MemoryStore`](crate::core::MemoryStore).
pub trait Store {
    /// The task with this id.
    fn get(&self, id: &str) -> Result<Option<Scheduled>>;
    /// Inserts the task under a fresh sequence number, higher than any this store ever gave
    /// (its `seq` field is ignored), replacing a stored task with the same id. Returns the
    /// number.
    fn insert(&self, task: &Scheduled) -> Result<i64>;
    /// Overwrites the stored task with the same id, `seq` included.
    fn put(&self, task: &Scheduled) -> Result<()>;
    /// Removes the task with this id; whether there was one.
    fn remove(&self, id: &str) -> Result<bool>;
    /// The first task by `(due_ms, seq)` that is pending or running and due at `now_ms`.
    fn next_due(&self, now_ms: i64) -> Result<Option<Scheduled>>;
    /// The earliest `due_ms` among pending and running tasks, overdue ones included.
    fn earliest(&self) -> Result<Option<i64>>;
    /// The tasks that pass `filter`, by `(due_ms, seq)`.
    fn list(&self, filter: &Filter) -> Result<Vec<Scheduled>>;
}

/// Which tasks [`Alarms::list`](crate::Alarms::list) returns. The default lists all, by due
/// time then insertion order.
///
/// ```
/// use lumenize_alarms::{Filter, Kind, Status};
/// let dead_crons = Filter::default().kind(Kind::Cron).status(Status::Dead).limit(10);
/// let next_hour = Filter::default().due_between(0, 3_600_000);
/// # let _ = (dead_crons, next_hour);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only tasks of this kind.
    pub kind: Option<Kind>,
    /// Only tasks in this status.
    pub status: Option<Status>,
    /// Only tasks due at or after this time (Unix milliseconds).
    pub due_from: Option<i64>,
    /// Only tasks due before this time (Unix milliseconds).
    pub due_before: Option<i64>,
    /// At most this many.
    pub limit: Option<usize>,
}

impl Filter {
    /// Only tasks of this kind.
    #[must_use]
    pub fn kind(self, kind: Kind) -> Self {
        Filter { kind: Some(kind), ..self }
    }
    /// Only tasks in this status.
    #[must_use]
    pub fn status(self, status: Status) -> Self {
        Filter { status: Some(status), ..self }
    }
    /// Only tasks with `from <= due_ms < before`.
    #[must_use]
    pub fn due_between(self, from: i64, before: i64) -> Self {
        Filter { due_from: Some(from), due_before: Some(before), ..self }
    }
    /// At most `n` tasks.
    #[must_use]
    pub fn limit(self, n: usize) -> Self {
        Filter { limit: Some(n), ..self }
    }
    /// Whether `task` passes (the limit aside).
    #[must_use]
    pub fn matches(&self, task: &Scheduled) -> bool {
        self.kind.is_none_or(|k| task.schedule.kind() == k)
            && self.status.is_none_or(|s| task.status == s)
            && self.due_from.is_none_or(|t| task.due_ms >= t)
            && self.due_before.is_none_or(|t| task.due_ms < t)
    }
}
