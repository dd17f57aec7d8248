//! The operator's operations on stored tasks: pause, resume, run now, requeue the dead in
//! bulk, and counts by status. What each does to a recurring task is decided in
//! [`queue`](crate::core::queue); here they are checked and applied.

use crate::core::arming::NativeAlarm;
use crate::core::limits::MAX_ID_BYTES;
use crate::core::queue;
use crate::core::scheduler::Scheduler;
use crate::core::store::{Change, Filter, Key, Store, MAX_REQUEUE_DEAD};
use crate::core::task::{Counts, Scheduled, Status};
use crate::core::time::check_time;
use crate::error::{Error, Result, StorageError};

impl<S: Store> Scheduler<S> {
    /// Pauses the pending task `id`: it is not run, and the alarm is not armed for it, until
    /// it is [resumed](Self::resume) or [run now](Self::run_now). One conditional statement;
    /// the native alarm is not written (as for [`cancel`](Self::cancel): if it was armed for
    /// this task, it fires once with nothing to run). Pausing a paused task returns it as it
    /// is. Returns the task as stored now.
    ///
    /// # Errors
    /// [`Error::NotFound`] (an id over [`MAX_ID_BYTES`](crate::core::MAX_ID_BYTES)
    /// included); [`Error::WrongStatus`] for a task whose handler is running (or whose
    /// attempt was cut short and not yet retried) or a dead one; storage errors.
    pub fn pause(&self, id: &str) -> Result<Scheduled> {
        let task = self.operand(id, "paused")?;
        match task.status {
            Status::Paused => Ok(task),
            Status::Pending => self.operate(&task, &Change::Pause),
            other => Err(wrong(id, other, "paused")),
        }
    }

    /// Resumes the paused task `id`: pending again, and the alarm armed for it if it is now
    /// the earliest. A one-shot task keeps its due time: one whose time passed while it was
    /// paused runs at once. A recurring task follows its
    /// [`MissedTicks`](crate::MissedTicks) policy for the ticks it missed while paused:
    /// `Skip` (the default) moves it to its first tick at or after `now_ms` (none of the
    /// missed ticks run), `Burst` keeps its due time (every missed tick runs, one after
    /// another). A task that is already pending or running is returned as it is.
    ///
    /// `now_ms` is a time in `0 ..=` [`MAX_TIME_MS`](crate::core::MAX_TIME_MS).
    ///
    /// # Errors
    /// [`Error::TimeOutOfRange`]; [`Error::NotFound`]; [`Error::WrongStatus`] for a dead
    /// task (requeue it instead); storage and alarm errors.
    pub async fn resume<A: NativeAlarm>(&self, alarm: &A, now_ms: i64, id: &str) -> Result<Scheduled> {
        check_time(now_ms)?;
        let task = self.operand(id, "resumed")?;
        match task.status {
            Status::Paused => {}
            Status::Pending | Status::Running => return Ok(task),
            Status::Dead => return Err(wrong(id, Status::Dead, "resumed")),
        }
        let task = self.operate(&task, &queue::resumed(&task, now_ms))?;
        if task.status.is_live() {
            self.arm_for(alarm, task.due_ms, now_ms).await?;
        }
        Ok(task)
    }

    /// Makes the pending or paused task `id` due now (an overdue one keeps its due time and
    /// its place), and arms the alarm for it. It keeps its definition, tick and attempts: a
    /// recurring task run before its tick runs again at that tick, so it stays on its grid.
    /// A paused task is resumed by this.
    ///
    /// `now_ms` is a time in `0 ..=` [`MAX_TIME_MS`](crate::core::MAX_TIME_MS).
    ///
    /// # Errors
    /// [`Error::TimeOutOfRange`]; [`Error::NotFound`]; [`Error::WrongStatus`] for a task
    /// whose handler is running, or a dead one (requeue it instead); storage and alarm
    /// errors.
    pub async fn run_now<A: NativeAlarm>(&self, alarm: &A, now_ms: i64, id: &str) -> Result<Scheduled> {
        check_time(now_ms)?;
        let task = self.operand(id, "run now")?;
        if !matches!(task.status, Status::Pending | Status::Paused) {
            return Err(wrong(id, task.status, "run now"));
        }
        let task = self.operate(&task, &queue::run_now(&task, now_ms))?;
        self.arm_for(alarm, task.due_ms, now_ms).await?;
        Ok(task)
    }

    /// Requeues dead tasks as [`requeue`](Self::requeue) does, in one statement: those that
    /// pass `filter` (its kind and due range; a status other than dead passes none), by due
    /// time then insertion order, at most `filter.limit` and never more than
    /// [`MAX_REQUEUE_DEAD`]; due at `now_ms`, attempts reset. Arms the alarm once if any
    /// were requeued. Returns how many: call again while it returns [`MAX_REQUEUE_DEAD`]. A
    /// quarantined row is repaired as `requeue` repairs it; one that still does not decode
    /// goes back to dead when the queue next reads it.
    ///
    /// `now_ms` is a time in `0 ..=` [`MAX_TIME_MS`](crate::core::MAX_TIME_MS).
    ///
    /// # Errors
    /// [`Error::TimeOutOfRange`]; storage and alarm errors.
    pub async fn requeue_dead<A: NativeAlarm>(&self, alarm: &A, now_ms: i64, filter: &Filter) -> Result<usize> {
        check_time(now_ms)?;
        let limit = filter.limit.unwrap_or(MAX_REQUEUE_DEAD).min(MAX_REQUEUE_DEAD);
        if limit == 0 || filter.status.is_some_and(|s| s != Status::Dead) {
            return Ok(0);
        }
        let requeued = self.store.requeue_dead(filter, now_ms, limit)?;
        if requeued > 0 {
            self.changed();
            self.arm_for(alarm, now_ms, now_ms).await?;
        }
        Ok(requeued)
    }

    /// How many tasks are in each status: one statement (`GROUP BY status`), no task read
    /// into the object. A stored row that does not decode counts where its stored status
    /// says until a read quarantines it (then as dead).
    ///
    /// # Errors
    /// Storage errors.
    pub fn counts(&self) -> Result<Counts> {
        self.store.counts()
    }

    /// The task `id` for an operation `action`: as stored, but running if its handler is
    /// running in this isolate (its row is still pending until the handler first awaits).
    fn operand(&self, id: &str, action: &'static str) -> Result<Scheduled> {
        if id.len() > MAX_ID_BYTES {
            return Err(Error::NotFound(id.to_owned()));
        }
        let task = self.store.get(id)?.ok_or_else(|| Error::NotFound(id.to_owned()))?;
        if self.in_flight.contains(id) {
            return Err(wrong(id, Status::Running, action));
        }
        Ok(task)
    }

    /// Applies `change` to `task`, just read (nothing can change it in between: no `.await`),
    /// and returns it as stored now.
    fn operate(&self, task: &Scheduled, change: &Change) -> Result<Scheduled> {
        let key = Key::of(task);
        if !self.apply(&key, task, change)? {
            return Err(StorageError::other(format!("task {:?} changed while it was being {change:?}", task.id)).into());
        }
        self.changed();
        self.store.get(&task.id)?.ok_or_else(|| Error::NotFound(task.id.clone()))
    }
}

fn wrong(id: &str, status: Status, action: &'static str) -> Error {
    Error::WrongStatus { id: id.to_owned(), status, action }
}
