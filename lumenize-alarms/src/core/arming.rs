//! When the scheduler writes the native alarm: the policy, over a [`NativeAlarm`] trait so
//! that the tests drive the very code that runs in a Durable Object.
//!
//! - The first event after a start reads the alarm and arms it exactly for the earliest
//!   pending task if it is missing, in the past, or later than that task (the runtime
//!   deletes an alarm after its retries are exhausted, a past-due alarm may never fire after
//!   a restart, and a run cut short by a crash may have stored tasks it never armed for).
//!   After that the scheduler remembers what it armed and does not read it again.
//! - Storing tasks only ever moves the alarm earlier, and not at all while a run is under
//!   way: a burst writes it at most once.
//! - A run ends by arming exactly the earliest pending task (an overdue one: now + 1 ms,
//!   since an alarm set for "now" from inside `alarm()` may be dropped), or, when nothing is
//!   pending, deleting the alarm, unless it is due within [`LEAVE_TO_FIRE_MS`]: then it fires
//!   once with nothing to run (the runtime spends it), which costs less than a write. A run
//!   of the native alarm itself has nothing to delete: the runtime spent it.
//! - A time the runtime refuses to arm (while it still arms one just ahead) makes that task
//!   dead with the runtime's error, and the next one is armed: no stored row can make the
//!   object unusable.
//!
//! - A run that fails (storage or alarm errors) arms the alarm for the end of a backoff
//!   that grows while the failures go on (1 s doubling to a minute,
//!   [`backoff`](crate::core::backoff)), never for "now": and until that time no write of
//!   the alarm arms it earlier. A good run ends the backoff.
//!
//! The memory is dropped when the object restarts (a new isolate), after any error of a
//! run or of the alarm, and looked at again when the remembered time has been past for
//! [`RECHECK_AFTER_MS`] without being read (it should have fired, and its run should have
//! replaced it): so an alarm deleted behind the scheduler's back is noticed at the first
//! scheduling a second after its time. An alarm found still armed for a past time is left
//! as it is (it fires as soon as it can), except on the first read after a start.
//! The scheduler must be the only writer of the alarm; code that writes the alarm itself
//! must not share the object with it.

use std::cell::Cell;

use crate::core::scheduler::Scheduler;
use crate::core::store::{Change, Key, Store};
use crate::core::time::MAX_TIME_MS;
use crate::error::{Error, Result, StorageError};

/// The object's one native alarm. [`Alarms`](crate::Alarms) implements it over
/// `worker::Storage`; [`SimulatedAlarm`] in memory, for tests.
#[allow(async_fn_in_trait)]
pub trait NativeAlarm {
    /// The armed time, Unix milliseconds.
    async fn get(&self) -> Result<Option<i64>>;
    /// Arms it for `at_ms`, replacing any armed time.
    async fn set(&self, at_ms: i64) -> Result<()>;
    /// Disarms it.
    async fn delete(&self) -> Result<()>;
}

/// A [`NativeAlarm`] in memory, for tests: like workerd's, it refuses times after
/// `refuse_after` (default [`MAX_TIME_MS`]) and counts its writes.
///
/// ```
/// use lumenize_alarms::core::{NativeAlarm, SimulatedAlarm};
/// let alarm = SimulatedAlarm::refusing_after(1_000);
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     match f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
/// #         std::task::Poll::Ready(out) => out,
/// #         std::task::Poll::Pending => unreachable!(),
/// #     }
/// # }
/// assert!(block_on(alarm.set(1_001)).is_err());
/// block_on(alarm.set(900))?;
/// assert_eq!((alarm.armed(), alarm.writes()), (Some(900), 1));
/// # Ok::<(), lumenize_alarms::Error>(())
/// ```
#[derive(Debug)]
pub struct SimulatedAlarm {
    armed: Cell<Option<i64>>,
    refuse_after: i64,
    writes: Cell<u32>,
    reads: Cell<u32>,
}

impl Default for SimulatedAlarm {
    fn default() -> Self {
        SimulatedAlarm::refusing_after(crate::core::time::MAX_TIME_MS)
    }
}

impl SimulatedAlarm {
    /// An alarm that refuses to arm times after `refuse_after`.
    #[must_use]
    pub fn refusing_after(refuse_after: i64) -> Self {
        SimulatedAlarm { armed: Cell::new(None), refuse_after, writes: Cell::new(0), reads: Cell::new(0) }
    }
    /// The armed time.
    #[must_use]
    pub fn armed(&self) -> Option<i64> {
        self.armed.get()
    }
    /// The runtime fired it, or lost it: no alarm is armed any more.
    pub fn clear(&self) {
        self.armed.set(None);
    }
    /// Writes (`set` and `delete`) so far.
    #[must_use]
    pub fn writes(&self) -> u32 {
        self.writes.get()
    }
    /// Reads (`get`) so far.
    #[must_use]
    pub fn reads(&self) -> u32 {
        self.reads.get()
    }
}

impl NativeAlarm for SimulatedAlarm {
    async fn get(&self) -> Result<Option<i64>> {
        self.reads.set(self.reads.get() + 1);
        Ok(self.armed.get())
    }
    async fn set(&self, at_ms: i64) -> Result<()> {
        if at_ms > self.refuse_after {
            return Err(StorageError::other("This API doesn't support dates after 2189").into());
        }
        self.writes.set(self.writes.get() + 1);
        self.armed.set(Some(at_ms));
        Ok(())
    }
    async fn delete(&self) -> Result<()> {
        self.writes.set(self.writes.get() + 1);
        self.armed.set(None);
        Ok(())
    }
}

/// How many tasks one arming may find unarmable before it gives up (leaving an alarm just
/// ahead, so the next run goes on).
const MAX_REFUSALS: usize = 16;

/// When to arm the alarm for a task due at `due_ms`: then, or for an overdue one `now + 1 ms`
/// (an alarm set for "now" from inside `alarm()` may be dropped). The scheduler arms no
/// earlier than the end of a failure's backoff ([`backoff`](crate::core::backoff)): see
/// [`Scheduler::arm_at`]. Never after [`MAX_TIME_MS`]: at the very end of the range (a clock
/// in 2262) an overdue task is armed for that last millisecond itself.
pub(crate) fn arm_time(due_ms: i64, now_ms: i64) -> i64 {
    due_ms.max(now_ms.saturating_add(1)).min(MAX_TIME_MS)
}

/// What the scheduler knows of the native alarm, as it last read or wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KnownAlarm {
    /// Not known: not read since the scheduler started, or forgotten (after an error of a
    /// run or of the alarm, or a wipe of the store). The next event reads it.
    Unknown,
    /// Not armed.
    Disarmed,
    /// Armed for `at_ms`, as read or written at `checked_ms` (both Unix milliseconds).
    Armed {
        /// The armed time.
        at_ms: i64,
        /// When it was read or written.
        checked_ms: i64,
    },
}

impl KnownAlarm {
    /// The armed time, if known to be armed.
    fn at_ms(self) -> Option<i64> {
        match self {
            KnownAlarm::Armed { at_ms, .. } => Some(at_ms),
            KnownAlarm::Unknown | KnownAlarm::Disarmed => None,
        }
    }
}

/// An alarm due within this long is left to fire empty rather than deleted, when nothing is
/// pending any more: writing the alarm costs the object more (about 2 ms locally) than one
/// empty invocation.
pub const LEAVE_TO_FIRE_MS: i64 = 1_000;

/// How long a remembered alarm time may stay in the past, unread, before the scheduler reads
/// the alarm again to see whether the runtime lost it. A due alarm cannot fire while a
/// request runs (a long burst of single schedules), so it is read at most this often then.
pub const RECHECK_AFTER_MS: i64 = 1_000;

impl<S: Store> Scheduler<S> {
    /// What the native alarm is known to be: remembered, or read. The first read since the
    /// object started re-arms a lost, past or too late alarm. Call it on the first event after a start (the
    /// adapter does, from `open`), so tasks fire even if that event schedules nothing.
    ///
    /// # Errors
    /// Storage and alarm errors (the alarm stays unknown, to be read again).
    pub async fn armed<A: NativeAlarm>(&self, alarm: &A, now_ms: i64) -> Result<Option<i64>> {
        if self.store.recreated() != self.recreated.get() {
            self.recreated.set(self.store.recreated());
            self.forget_alarm();
        }
        match self.known_alarm.get() {
            // Armed for a time long past, and not looked at since: the runtime may have lost it.
            KnownAlarm::Armed { at_ms, checked_ms } if at_ms < now_ms && now_ms - checked_ms > RECHECK_AFTER_MS => {}
            known @ (KnownAlarm::Armed { .. } | KnownAlarm::Disarmed) => return Ok(known.at_ms()),
            KnownAlarm::Unknown => {}
        }
        let first = !self.read_once.replace(true);
        self.forget_alarm();
        let armed = alarm.get().await?;
        match self.known_alarm.get() {
            KnownAlarm::Unknown => self.remember(armed, now_ms),
            // Another read or a write finished while this one waited: it knows better.
            known @ (KnownAlarm::Armed { .. } | KnownAlarm::Disarmed) => return Ok(known.at_ms()),
        }
        // Lost, or later than the earliest task (a run cut short by a crash may have stored
        // tasks it never armed for), or, on the first read after a start, in the past (a
        // past-due alarm may never fire after a restart): arm exactly.
        let wanted = self.store.earliest()?.map(|head| self.arm_at(head.due_ms, now_ms));
        let stale = match (armed, wanted) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(t), Some(w)) => t > w || (first && t < now_ms),
        };
        if stale && !self.running() {
            self.arm_earliest(alarm, now_ms).await?;
        }
        Ok(self.known_alarm.get().at_ms())
    }

    /// Remembers that the alarm is `armed`, as read or written at `now_ms`.
    pub(crate) fn remember(&self, armed: Option<i64>, now_ms: i64) {
        self.known_alarm.set(match armed {
            Some(at_ms) => KnownAlarm::Armed { at_ms, checked_ms: now_ms },
            None => KnownAlarm::Disarmed,
        });
    }

    /// After tasks were stored whose earliest is due at `due_ms`: arms the alarm for it if
    /// that is earlier than the armed time. Not while a run is under way.
    pub(crate) async fn arm_for<A: NativeAlarm>(&self, alarm: &A, due_ms: i64, now_ms: i64) -> Result<()> {
        if self.running() {
            return Ok(());
        }
        let at = self.arm_at(due_ms, now_ms);
        if self.armed(alarm, now_ms).await?.is_some_and(|t| t <= at) {
            return Ok(());
        }
        match alarm.set(at).await {
            Ok(()) => {
                self.remember(Some(at), now_ms);
                Ok(())
            }
            // Refused: find which task cannot be armed, one at a time.
            Err(_) => self.arm_earliest(alarm, now_ms).await,
        }
    }

    /// At the end of a run: arms exactly the earliest pending task, or deletes the alarm if
    /// nothing is pending; again if users changed the queue while it was writing the alarm.
    pub(crate) async fn arm_after_run<A: NativeAlarm>(&self, alarm: &A, now_ms: &dyn Fn() -> i64) -> Result<()> {
        for _ in 0..MAX_REFUSALS {
            let seen = self.changes.get();
            self.arm_earliest(alarm, now_ms()).await?;
            if self.changes.get() == seen {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Arms exactly the earliest pending task (overdue: `now_ms + 1`) or deletes the alarm.
    /// A time the runtime refuses, while it still arms `now_ms + 1`, makes that task dead
    /// with the runtime's error; the next one is tried.
    pub(crate) async fn arm_earliest<A: NativeAlarm>(&self, alarm: &A, now_ms: i64) -> Result<()> {
        let result = self.try_arm_earliest(alarm, now_ms).await;
        if result.is_err() {
            self.forget_alarm();
        }
        result
    }

    async fn try_arm_earliest<A: NativeAlarm>(&self, alarm: &A, now_ms: i64) -> Result<()> {
        for _ in 0..MAX_REFUSALS {
            let Some(head) = self.store.earliest()? else {
                match self.known_alarm.get() {
                    KnownAlarm::Disarmed => {}
                    // Due within a second: it fires once with nothing to run, and the
                    // runtime spends it; cheaper than a write (about 2 ms locally).
                    KnownAlarm::Armed { at_ms, .. } if at_ms <= now_ms + LEAVE_TO_FIRE_MS => {}
                    KnownAlarm::Armed { .. } | KnownAlarm::Unknown => {
                        alarm.delete().await?;
                        self.remember(None, now_ms);
                    }
                }
                return Ok(());
            };
            let at = self.arm_at(head.due_ms, now_ms);
            let refusal = match alarm.set(at).await {
                Ok(()) => {
                    self.remember(Some(at), now_ms);
                    return Ok(());
                }
                Err(e) => e,
            };
            // Can the runtime arm anything? If not, the alarm itself fails: say so.
            let ahead = self.arm_at(now_ms, now_ms);
            alarm.set(ahead).await.map_err(|_| match &refusal {
                Error::Storage(e) => Error::Storage(e.clone()),
                other => StorageError::other(other.to_string()).into(),
            })?;
            self.remember(Some(ahead), now_ms);
            self.kill_unarmable(&head, at, &refusal)?;
        }
        Err(StorageError::other(format!("the runtime refused to arm {MAX_REFUSALS} tasks in a row; an alarm is set just ahead to go on")).into())
    }

    fn kill_unarmable(&self, head: &Key, at_ms: i64, refusal: &Error) -> Result<()> {
        let error = crate::core::limits::clip(format!("the runtime refused to arm its time {at_ms} ms: {refusal}"));
        match self.store.get(&head.id)? {
            Some(task) if Key::of(&task) == *head => self.apply(head, &task, &Change::Kill { error, attempts: task.attempts }).map(drop),
            _ => Ok(()),
        }
    }

    /// When to arm the alarm for a task due at `due_ms`, seen at `now_ms`: then, or `now + 1`
    /// for an overdue one, and never before the end of the backoff of a failure that lasts
    /// ([`backoff`](crate::core::backoff)).
    pub(crate) fn arm_at(&self, due_ms: i64, now_ms: i64) -> i64 {
        self.backoff.floor(arm_time(due_ms, now_ms)).min(MAX_TIME_MS)
    }

    /// After a run that failed at `now_ms`: arms the alarm for the end of the failure's
    /// backoff, best effort (if the alarm cannot be written either, the runtime retries the
    /// failed alarm event on its own schedule).
    pub(crate) async fn rearm_after_failure<A: NativeAlarm>(&self, alarm: &A, now_ms: i64) {
        let at = self.backoff.failed(now_ms).min(MAX_TIME_MS);
        match alarm.set(at).await {
            Ok(()) => self.remember(Some(at), now_ms),
            Err(_) => self.forget_alarm(),
        }
    }

    /// Drops what is remembered of the alarm: the next event reads it again.
    pub(crate) fn forget_alarm(&self) {
        self.known_alarm.set(KnownAlarm::Unknown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_times_stay_within_the_range_the_runtime_arms() {
        assert_eq!(arm_time(500, 100), 500, "a future task: its own time");
        assert_eq!(arm_time(50, 100), 101, "an overdue one: just ahead of now");
        assert_eq!(arm_time(MAX_TIME_MS, MAX_TIME_MS), MAX_TIME_MS, "the last millisecond, never one past it");
        assert_eq!(arm_time(0, i64::MAX), MAX_TIME_MS, "a clock past the range cannot push the alarm out of it");
    }
}
