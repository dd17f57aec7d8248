//! `Scheduler`: one object's scheduler without the runtime: a store, what is running, what
//! the native alarm is known to be, and the operations users call. The time comes in as an
//! argument and the native alarm as a [`NativeAlarm`]; [`Alarms`] supplies
//! both in a Durable Object, the tests supply a virtual clock and a simulated alarm.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::core::arming::{KnownAlarm, NativeAlarm};
use crate::core::backoff::Backoff;
use crate::core::buffered::Buffered;
use crate::core::event::Event;
use crate::core::options::Options;
use crate::core::queue::{self, after_failure};
use crate::core::run::InFlight;
use crate::core::store::{Change, Key, Store};
use crate::core::limits::MAX_ID_BYTES;
use crate::core::task::{Scheduled, Status};
use crate::core::time::{check_time, MAX_TIME_MS};
use crate::core::when::When;
use crate::error::{Error, Result};

/// The error kept with a stored task that is due after [`MAX_TIME_MS`] (written before the
/// range was narrowed to what the runtime can arm).
pub(crate) const OUT_OF_RANGE: &str = "its due time is after the latest time the runtime can arm (2262-04-11)";

type Observer = Rc<dyn Fn(&Event<'_>)>;

/// The scheduler of one object over the store `S`: a store, what is running, what the
/// native alarm is known to be, and the operations users call. The time comes in as an
/// argument and the native alarm as a [`NativeAlarm`]; [`Alarms`](crate::Alarms) supplies
/// both in a Durable Object, the tests a virtual clock and a [`SimulatedAlarm`](crate::core::SimulatedAlarm).
///
/// ```
/// use std::time::Duration;
/// use lumenize_alarms::core::{MemoryStore, Scheduler, SimulatedAlarm, Store};
/// use lumenize_alarms::{Options, When};
///
/// # fn main() -> Result<(), lumenize_alarms::Error> {
/// let scheduler = Scheduler::new(MemoryStore::default());
/// let alarm = SimulatedAlarm::default();
/// let id = pollster(scheduler.schedule(&alarm, 1_000, &When::after(Duration::from_secs(1)), "7".into(),
///                                      &Options::id("a"), || unreachable!()))?;
/// assert_eq!(scheduler.store().get(&id)?.map(|t| t.due_ms), Some(2_000));
/// assert_eq!(alarm.armed(), Some(2_000));
/// # Ok(()) }
/// # fn pollster<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     match f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
/// #         std::task::Poll::Ready(out) => out,
/// #         std::task::Poll::Pending => unreachable!(),
/// #     }
/// # }
/// ```
pub struct Scheduler<S> {
    /// The store, holding back the deletes of the one-shot tasks a run completed until the
    /// next operation on it (one statement for a batch of handlers that do not await).
    pub(crate) store: Buffered<S>,
    pub(crate) in_flight: InFlight,
    /// What the native alarm is known to be: unknown until read (the first event after a
    /// start), then as this scheduler last read or wrote it.
    pub(crate) known_alarm: Cell<KnownAlarm>,
    /// Whether the alarm was read since this scheduler started (the first read also re-arms
    /// an alarm left in the past).
    pub(crate) read_once: Cell<bool>,
    /// Runs under way: while one is, storing tasks leaves the alarm to its end.
    pub(crate) runs: Cell<u32>,
    /// Counts the changes users make (schedule, cancel, requeue), so a run knows to read
    /// its batch again.
    pub(crate) changes: Cell<u64>,
    /// [`Store::recreated`] when the alarm was last read.
    pub(crate) recreated: Cell<u64>,
    /// The runs that failed in a row, and until when the alarm is not armed because of them.
    pub(crate) backoff: Backoff,
    observer: RefCell<Option<Observer>>,
}

impl<S: Store> Scheduler<S> {
    /// A scheduler over `store`, knowing nothing of the native alarm yet.
    pub fn new(store: S) -> Self {
        Scheduler {
            store: Buffered::new(store),
            in_flight: InFlight::default(),
            known_alarm: Cell::new(KnownAlarm::Unknown),
            read_once: Cell::new(false),
            runs: Cell::new(0),
            changes: Cell::new(0),
            recreated: Cell::new(0),
            backoff: Backoff::default(),
            observer: RefCell::new(None),
        }
    }

    /// The store, as the scheduler sees it: its reads see the completions of a run under
    /// way (see [`Buffered`]).
    pub fn store(&self) -> &Buffered<S> {
        &self.store
    }

    /// The task with this id. A stored row that does not decode is returned as a dead task
    /// whose last error says why (see [`Store`]). An id over
    /// [`MAX_ID_BYTES`] names no task: `None`, without a statement.
    ///
    /// # Errors
    /// Storage errors.
    pub fn get(&self, id: &str) -> Result<Option<Scheduled>> {
        if id.len() > MAX_ID_BYTES {
            return Ok(None);
        }
        self.store.get(id)
    }

    /// The tasks that pass `filter`, by due time then insertion order.
    ///
    /// # Errors
    /// Storage errors.
    pub fn list(&self, filter: &crate::core::store::Filter) -> Result<Vec<Scheduled>> {
        self.store.list(filter)
    }

    /// Makes every live task due after [`MAX_TIME_MS`] dead (rows written by a release that
    /// accepted later times could never be armed); how many. Call it when opening.
    ///
    /// # Errors
    /// Storage errors.
    pub fn repair(&self) -> Result<usize> {
        self.store.kill_after(MAX_TIME_MS, OUT_OF_RANGE)
    }

    /// Sets the lifecycle hook: it sees every [`Event`] from now on.
    pub fn on_event(&self, hook: impl Fn(&Event<'_>) + 'static) {
        *self.observer.borrow_mut() = Some(Rc::new(hook));
    }

    pub(crate) fn emit(&self, event: Event<'_>) {
        let observer = self.observer.borrow().clone();
        if let Some(observer) = observer {
            observer(&event);
        }
    }

    pub(crate) fn changed(&self) {
        self.changes.set(self.changes.get().wrapping_add(1));
    }

    /// Stores a task due per `when` seen from `now_ms`, with its payload as JSON, and arms the
    /// alarm if it is now the earliest (not during a run: the run arms when it ends).
    /// `new_id` is called only when `opts` has no id. Returns the task's id (with
    /// `keep_existing`, the stored task is kept and nothing is written).
    ///
    /// # Errors
    /// Bad input ([`Error::TimeOutOfRange`], [`Error::TooLarge`], a cron expression with no
    /// next occurrence), refused before anything is written; storage and alarm errors.
    pub async fn schedule<A: NativeAlarm>(
        &self,
        alarm: &A,
        now_ms: i64,
        when: &When,
        payload: String,
        opts: &Options,
        new_id: impl FnOnce() -> String,
    ) -> Result<String> {
        let id = opts.id.clone().unwrap_or_else(new_id);
        let task = queue::new_task(now_ms, when, payload, opts, id)?;
        if self.store.insert(&task, opts.keep_existing)? {
            self.changed();
            self.emit(Event::Scheduled(&task));
            self.arm_for(alarm, task.due_ms, now_ms).await?;
        }
        Ok(task.id)
    }

    /// Stores many tasks in order, in as few statements as the store can (the SQL store: one
    /// per megabyte of payloads), then arms the alarm at most once. Every task is checked
    /// before anything is written: one bad input stores none. Returns their ids in order.
    ///
    /// # Errors
    /// As [`schedule`](Self::schedule).
    pub async fn schedule_many<A: NativeAlarm>(
        &self,
        alarm: &A,
        now_ms: i64,
        tasks: impl IntoIterator<Item = (When, String, Options)>,
        mut new_id: impl FnMut() -> String,
    ) -> Result<Vec<String>> {
        let tasks: Vec<(Scheduled, bool)> = tasks
            .into_iter()
            .map(|(when, payload, opts)| {
                let id = opts.id.clone().unwrap_or_else(&mut new_id);
                Ok((queue::new_task(now_ms, &when, payload, &opts, id)?, opts.keep_existing))
            })
            .collect::<Result<_>>()?;
        let ids = tasks.iter().map(|(t, _)| t.id.clone()).collect();
        if tasks.is_empty() {
            return Ok(ids);
        }
        for run in tasks.chunk_by(|a, b| a.1 == b.1) {
            let keep_existing = run[0].1;
            let run: Vec<Scheduled> = run.iter().map(|(t, _)| t.clone()).collect();
            let stored = self.store.insert_all(&run, keep_existing)?;
            // Not for a task `keep_existing` kept out (see `Event::Scheduled`).
            for (task, _) in run.iter().zip(stored).filter(|(_, stored)| *stored) {
                self.emit(Event::Scheduled(task));
            }
        }
        self.changed();
        // What is stored now, not what was asked: repeated ids replace or keep each other.
        if let Some(head) = self.store.earliest()? {
            self.arm_for(alarm, head.due_ms, now_ms).await?;
        }
        Ok(ids)
    }

    /// Removes the task with this id, pending, running, paused or dead, and returns what was removed.
    /// A running handler finishes, but nothing is recorded after it. The native alarm is left
    /// as it is: if it was armed for the removed task, it fires once with nothing to run, and
    /// that run arms the next task or leaves no alarm behind. (Every write of the alarm costs
    /// the object about 2 ms locally: disarming at each cancel, and arming again at the next
    /// schedule, would cost more than one empty invocation.)
    ///
    /// A row that does not decode is removed too, and returned as a dead task whose last
    /// error says why. An id over [`MAX_ID_BYTES`] names no task.
    ///
    /// # Errors
    /// Storage errors.
    pub fn cancel(&self, id: &str) -> Result<Option<Scheduled>> {
        if id.len() > MAX_ID_BYTES {
            return Ok(None);
        }
        let removed = self.store.remove(id)?;
        self.changed();
        Ok(removed)
    }

    /// As [`cancel`](Self::cancel), without reading the task back (one plain `DELETE`):
    /// whether there was one, a row that does not decode included. For a caller that does
    /// not need the task.
    ///
    /// # Errors
    /// Storage errors.
    pub fn discard(&self, id: &str) -> Result<bool> {
        if id.len() > MAX_ID_BYTES {
            return Ok(false);
        }
        let removed = self.store.discard(id)?;
        self.changed();
        Ok(removed)
    }

    /// Makes the task `id`, whose handler is running now, run again at `at_ms` once the
    /// handler returns `Ok`: it stays in place (one update instead of its removal, or its
    /// next tick), instead of being scheduled anew. A handler that returns `Err` is retried
    /// as usual. lumenize-call keeps a call's dispatch task as its backstop this way.
    ///
    /// `at_ms` is a time in `0 ..=` [`MAX_TIME_MS`].
    ///
    /// # Errors
    /// [`Error::NotFound`] if no handler of that id is running in this isolate;
    /// [`Error::TimeOutOfRange`].
    pub fn defer(&self, id: &str, at_ms: i64) -> Result<()> {
        check_time(at_ms)?;
        if self.in_flight.defer(id, at_ms) {
            Ok(())
        } else {
            Err(Error::NotFound(id.to_owned()))
        }
    }

    /// Puts a dead task back in the queue, due at `now_ms`, with its attempts reset (its
    /// last error stays until it next succeeds), and arms the alarm for it. A quarantined
    /// row (one that did not decode) is repaired first as far as it can be: numbers out of
    /// their range are clamped back into it (see [`Store::requeue`]).
    ///
    /// # Errors
    /// [`Error::TimeOutOfRange`] for a `now_ms` out of range, [`Error::NotFound`] (an id
    /// over [`MAX_ID_BYTES`] included), [`Error::NotDead`],
    /// [`Error::Unreadable`] for a row that still does not decode (it stays dead); storage
    /// and alarm errors.
    pub async fn requeue<A: NativeAlarm>(&self, alarm: &A, now_ms: i64, id: &str) -> Result<Scheduled> {
        check_time(now_ms)?;
        if id.len() > MAX_ID_BYTES {
            return Err(Error::NotFound(id.to_owned()));
        }
        let task = match self.store.requeue(id, now_ms)? {
            Some(task) => task,
            None => match self.store.get(id)? {
                // Not dead until this read found its row undecodable, and quarantined it.
                Some(found) if found.status == Status::Dead => self.store.requeue(id, now_ms)?.ok_or_else(|| Error::NotDead(id.to_owned()))?,
                Some(_) => return Err(Error::NotDead(id.to_owned())),
                None => return Err(Error::NotFound(id.to_owned())),
            },
        };
        self.changed();
        self.arm_for(alarm, task.due_ms, now_ms).await?;
        Ok(task)
    }

    /// Records a failed attempt for every task whose handler is running now, with `error`
    /// (what the panic did): called from a panic hook, best effort. Returns when the alarm should
    /// fire next (the earliest pending task, overdue: `now_ms + 1`, not before the end of a
    /// failure's [backoff](crate::core::backoff)), for the hook to arm it
    /// before the object is reset: the runtime would otherwise retry the failed alarm event
    /// only after its own backoff (2 s locally), holding back the tasks behind the panic.
    pub fn fail_in_flight(&self, now_ms: i64, error: &str) -> Option<i64> {
        for (key, task) in self.in_flight.keyed() {
            let change = after_failure(&task, now_ms, error);
            let _ = self.store.change(&key, &change);
        }
        self.store.earliest().ok().flatten().map(|head| self.arm_at(head.due_ms, now_ms))
    }

    /// Applies `change` to the stored task `key`, seen as `task`, and reports it; whether it
    /// applied.
    pub(crate) fn apply(&self, key: &Key, task: &Scheduled, change: &Change) -> Result<bool> {
        let applied = self.store.change(key, change)?;
        if applied {
            match change {
                Change::Claim | Change::Pause | Change::Resume { .. } => {}
                Change::Remove => self.emit(Event::Succeeded { task, next_ms: None }),
                Change::Advance { due_ms } => self.emit(Event::Succeeded { task, next_ms: Some(*due_ms) }),
                Change::Retry { due_ms, error, .. } => self.emit(Event::Retrying { task, error, next_ms: *due_ms }),
                Change::Kill { error, .. } => self.emit(Event::Dead { task, error }),
            }
        }
        Ok(applied)
    }

    /// How many runs failed in a row (storage or alarm errors), so far: each re-armed the
    /// alarm after a longer [backoff](crate::core::backoff). 0 after a good run.
    #[must_use]
    pub fn failed_runs(&self) -> u32 {
        self.backoff.failures()
    }

    /// Whether any task is running or a run is under way.
    pub(crate) fn running(&self) -> bool {
        self.runs.get() > 0 || !self.in_flight.is_empty()
    }
}

/// Whether `task` is still live and due at `now_ms` after `change`.
pub(crate) fn still_due(change: &Change, now_ms: i64) -> bool {
    match change {
        Change::Advance { due_ms } | Change::Retry { due_ms, .. } | Change::Resume { due_ms, .. } => *due_ms <= now_ms,
        Change::Claim | Change::Remove | Change::Kill { .. } | Change::Pause => false,
    }
}
