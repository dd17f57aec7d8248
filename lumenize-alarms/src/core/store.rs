//! The storage the core needs, spoken as intents: store tasks, fetch a batch of due ones,
//! and change one task only if it is still the instance the caller saw.

use crate::core::task::{Counts, Scheduled, Status};
use crate::core::when::Kind;
use crate::error::Result;

/// Tasks of one object, keyed by id. Synchronous, like SQLite in a Durable Object: work with
/// no `.await` in between is atomic there.
///
/// Implemented by [`SqlStore`](crate::sql::SqlStore) (the same statements in a Durable
/// Object and over native SQLite in tests) and by [`MemoryStore`](crate::core::MemoryStore),
/// the reference. Both pass one conformance suite (`tests/conformance.rs`).
///
/// A store whose rows can be unreadable (the SQL store: a row written by an older release,
/// by hand or by a bug) reads them one by one and quarantines those that do not decode:
/// [`get`](Self::get) and [`list`](Self::list) return such a row as a dead task whose last
/// error says why ([`Error::Unreadable`](crate::Error::Unreadable)'s message), and mark it
/// dead in storage, as [`due`](Self::due) and [`earliest`](Self::earliest) do with those they
/// meet (which they then pass by); [`remove`](Self::remove) removes and returns it;
/// [`requeue`](Self::requeue) repairs it as far as it can (numbers clamped back into their
/// range) or answers [`Error::Unreadable`](crate::Error::Unreadable), leaving it dead. No
/// such row ever makes an operation on the others fail.
pub trait Store {
    /// Stores `task` under a fresh sequence number, higher than any this store gave before
    /// (its `seq` field is ignored). A stored task with the same id is replaced; with
    /// `keep_existing` it is kept instead, and nothing is stored. Whether `task` was stored.
    fn insert(&self, task: &Scheduled, keep_existing: bool) -> Result<bool>;
    /// Stores `tasks` in order as [`insert`](Self::insert) would one by one, in as few
    /// statements as the store can. Whether each was stored, in order: all of them, but
    /// with `keep_existing` none whose id was stored already or came earlier in `tasks`.
    fn insert_all(&self, tasks: &[Scheduled], keep_existing: bool) -> Result<Vec<bool>>;
    /// The task with this id.
    fn get(&self, id: &str) -> Result<Option<Scheduled>>;
    /// The tasks that pass `filter`, by `(due_ms, seq)`.
    fn list(&self, filter: &Filter) -> Result<Vec<Scheduled>>;
    /// Up to `limit` pending or running tasks due at `now_ms`, by `(due_ms, seq)` (never a
    /// paused one).
    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Scheduled>>;
    /// The first pending or running task by `(due_ms, seq)`, overdue ones included (never a
    /// paused one).
    fn earliest(&self) -> Result<Option<Key>>;
    /// Removes the task with this id and returns it.
    fn remove(&self, id: &str) -> Result<Option<Scheduled>>;
    /// Removes the task with this id without reading it back; whether there was one.
    fn discard(&self, id: &str) -> Result<bool>;
    /// Makes the dead task `id` pending again, due at `due_ms`, with no attempts, and returns
    /// it; `None` if there is no dead task with this id (a paused one is not dead). A quarantined row is repaired first
    /// (see above); one that still does not decode stays dead: [`Error::Unreadable`](crate::Error::Unreadable).
    fn requeue(&self, id: &str, due_ms: i64) -> Result<Option<Scheduled>>;
    /// Applies `change` to the task `key.id` if it is still exactly what `key` says (same
    /// instance, status and due time); whether it was.
    fn change(&self, key: &Key, change: &Change) -> Result<bool>;
    /// Removes each task that is still exactly what its key says, in one go; how many.
    fn remove_all(&self, keys: &[Key]) -> Result<usize>;
    /// Makes dead tasks pending again as [`requeue`](Self::requeue) does, in one go: the
    /// first `limit` of those that pass `filter` (its status and limit aside: dead ones only,
    /// by `(due_ms, seq)`), due at `due_ms`; how many. A quarantined row is repaired as
    /// `requeue` repairs it; one that still does not decode is quarantined again when it is
    /// next read (it never stops the others).
    fn requeue_dead(&self, filter: &Filter, due_ms: i64, limit: usize) -> Result<usize>;
    /// How many tasks are in each status, by their stored status (a row not yet found
    /// unreadable counts where its status says).
    fn counts(&self) -> Result<Counts>;
    /// Makes every pending or running task due after `max_ms` dead with `error` (a row
    /// written before the accepted range was narrowed); how many.
    fn kill_after(&self, max_ms: i64, error: &str) -> Result<usize>;
    /// How many times the store found its tasks wiped behind its back (the SQL store: its
    /// table dropped by the runtime's `deleteAll`, which also deletes the native alarm) and
    /// started again empty. The scheduler then reads the alarm again.
    fn recreated(&self) -> u64 {
        0
    }
}

/// Which stored task a [`Change`] is for: the instance `seq` of task `id` (sequence numbers
/// are never reused, so `seq` alone names it), as long as it is still `status` and due at
/// `due_ms`. Anything else means a handler, a cancel or another run changed it since it was
/// read, and the change is not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The task's id.
    pub id: String,
    /// Its instance.
    pub seq: i64,
    /// Its status when read.
    pub status: Status,
    /// Its due time when read.
    pub due_ms: i64,
}

impl Key {
    /// The key of `task` as it is.
    #[must_use]
    pub fn of(task: &Scheduled) -> Key {
        Key { id: task.id.clone(), seq: task.seq, status: task.status, due_ms: task.due_ms }
    }

    /// The same task in another status.
    #[must_use]
    pub fn with_status(&self, status: Status) -> Key {
        Key { status, ..self.clone() }
    }
}

/// What happens to one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An attempt starts: running, one more attempt.
    Claim,
    /// A one-shot task succeeded: removed.
    Remove,
    /// A recurring task succeeded: pending for its next tick, attempts and error cleared.
    Advance {
        /// The next tick.
        due_ms: i64,
    },
    /// An attempt failed and the policy retries: pending at `due_ms`, the error kept.
    Retry {
        /// When the next attempt is due.
        due_ms: i64,
        /// The failed attempt's error.
        error: String,
        /// Attempts made, the failed one included.
        attempts: u32,
    },
    /// Paused: left out of the queue until resumed. Only a pending task is paused.
    Pause,
    /// Pending (a paused task resumed, or a task run now) with this due time, tick and
    /// attempts; its last error kept.
    Resume {
        /// When it is due.
        due_ms: i64,
        /// The scheduled time of its occurrence.
        tick_ms: i64,
        /// Attempts made for that occurrence.
        attempts: u32,
    },
    /// Dead, with the error kept.
    Kill {
        /// Why.
        error: String,
        /// Attempts made.
        attempts: u32,
    },
}

/// The most dead tasks one [`Alarms::requeue_dead`](crate::Alarms::requeue_dead) requeues:
/// a larger (or no) limit is clamped to it, so one call is one bounded statement. Call it
/// again while it returns this many.
pub const MAX_REQUEUE_DEAD: usize = 1_000;

/// Which tasks [`Alarms::list`](crate::Alarms::list) returns. The default lists all, by due
/// time then insertion order.
///
/// Every value is accepted: stored due times are in `0 ..=`
/// [`MAX_TIME_MS`](crate::MAX_TIME_MS), so a bound far outside it (`i64::MIN`,
/// `i64::MAX`) simply includes or excludes everything, and a limit as large as `usize::MAX`
/// is no limit (the SQL store binds bounds within ±(2^53 − 1), which a Durable Object binds
/// exactly, and a limit over 2^53 − 1 as none).
///
/// ```
/// use lumenize_alarms::{Filter, Kind, Status};
/// let dead_crons = Filter::default().kind(Kind::Cron).status(Status::Dead).limit(10);
/// let next_hour = Filter::default().due_between(0, 3_600_000);
/// let everything = Filter::default().due_between(i64::MIN, i64::MAX).limit(usize::MAX);
/// # let _ = (dead_crons, next_hour, everything);
/// ```
///
/// It may gain fields in a minor release (`#[non_exhaustive]`): build it from
/// `Filter::default()` (or its constructors) and the builders, or set its public fields on one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Filter {
    /// Only tasks of this kind.
    pub kind: Option<Kind>,
    /// Only tasks in this status.
    pub status: Option<Status>,
    /// Only tasks due at or after this time (Unix milliseconds; any `i64`).
    pub due_from: Option<i64>,
    /// Only tasks due before this time (Unix milliseconds; any `i64`).
    pub due_before: Option<i64>,
    /// At most this many (any `usize`; 0 lists nothing).
    pub limit: Option<usize>,
    /// Only tasks after this one in the listing order: `(due_ms, seq)` of the last task of
    /// the previous page (any `i64`s). Pages through any number of tasks, one bounded read
    /// each.
    pub after: Option<(i64, i64)>,
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
    /// Only tasks after `task` in the listing order (by due time, then insertion): the next
    /// page after one that ended with `task`.
    ///
    /// ```
    /// # fn demo(alarms: &lumenize_alarms::Alarms<u32>) -> lumenize_alarms::Result<()> {
    /// use lumenize_alarms::Filter;
    /// let first = alarms.list(&Filter::default().limit(50))?;
    /// if let Some(last) = first.last() {
    ///     let second = alarms.list(&Filter::default().limit(50).after(last))?;
    /// #   let _ = second;
    /// }
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn after(self, task: &Scheduled) -> Self {
        Filter { after: Some((task.due_ms, task.seq)), ..self }
    }
    /// Whether `task` passes (the limit aside).
    #[must_use]
    pub fn matches(&self, task: &Scheduled) -> bool {
        self.after.is_none_or(|after| (task.due_ms, task.seq) > after)
            && self.kind.is_none_or(|k| task.schedule.kind() == k)
            && self.status.is_none_or(|s| task.status == s)
            && self.due_from.is_none_or(|t| task.due_ms >= t)
            && self.due_before.is_none_or(|t| task.due_ms < t)
    }
}

/// A shared store is a store: several schedulers (an object restarted, in tests) or other
/// code can hold the same one.
impl<S: Store + ?Sized> Store for std::rc::Rc<S> {
    fn insert(&self, task: &Scheduled, keep_existing: bool) -> Result<bool> {
        (**self).insert(task, keep_existing)
    }
    fn insert_all(&self, tasks: &[Scheduled], keep_existing: bool) -> Result<Vec<bool>> {
        (**self).insert_all(tasks, keep_existing)
    }
    fn get(&self, id: &str) -> Result<Option<Scheduled>> {
        (**self).get(id)
    }
    fn list(&self, filter: &Filter) -> Result<Vec<Scheduled>> {
        (**self).list(filter)
    }
    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Scheduled>> {
        (**self).due(now_ms, limit)
    }
    fn earliest(&self) -> Result<Option<Key>> {
        (**self).earliest()
    }
    fn remove(&self, id: &str) -> Result<Option<Scheduled>> {
        (**self).remove(id)
    }
    fn discard(&self, id: &str) -> Result<bool> {
        (**self).discard(id)
    }
    fn requeue(&self, id: &str, due_ms: i64) -> Result<Option<Scheduled>> {
        (**self).requeue(id, due_ms)
    }
    fn change(&self, key: &Key, change: &Change) -> Result<bool> {
        (**self).change(key, change)
    }
    fn remove_all(&self, keys: &[Key]) -> Result<usize> {
        (**self).remove_all(keys)
    }
    fn requeue_dead(&self, filter: &Filter, due_ms: i64, limit: usize) -> Result<usize> {
        (**self).requeue_dead(filter, due_ms, limit)
    }
    fn counts(&self) -> Result<Counts> {
        (**self).counts()
    }
    fn kill_after(&self, max_ms: i64, error: &str) -> Result<usize> {
        (**self).kill_after(max_ms, error)
    }
    fn recreated(&self) -> u64 {
        (**self).recreated()
    }
}
