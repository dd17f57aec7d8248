//! The run loop: fetch a batch of due tasks, run each handler, record what happened, and
//! arm the alarm for what is left, with a bound on the work done per call.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::task::Poll;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::core::arming::NativeAlarm;
use crate::core::event::Event;
use crate::core::limits::clip;
use crate::core::queue::{after_failure, after_success};
use crate::core::scheduler::{still_due, Scheduler};
use crate::core::store::{Change, Key, Store};
use crate::core::task::{Scheduled, Status};
use crate::core::time::{check_time, MAX_TIME_MS};
use crate::error::Result;

/// How many due tasks one read of the store fetches at most: memory stays bounded however
/// many are due.
pub const FETCH: usize = 128;

/// The most tasks one run may be asked to run: a larger limit is clamped to it, so one
/// alarm invocation stays bounded whatever it is given (twice the default
/// [`DEFAULT_BATCH_LIMIT`](crate::DEFAULT_BATCH_LIMIT)).
pub const MAX_BATCH_LIMIT: usize = 10_000;

/// What one call of [`run_due`](crate::Alarms::run_due) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunReport {
    /// Handlers started.
    pub started: u32,
    /// Handlers that returned `Ok`.
    pub succeeded: u32,
    /// Attempts that failed and will be retried.
    pub retrying: u32,
    /// Tasks that went dead: out of attempts, undecodable, or with no next time in range
    /// (a recurring task whose handler succeeded counts here too).
    pub died: u32,
    /// Attempts found cut short by a crash or panic (counted as failures).
    pub interrupted: u32,
    /// Due tasks were left for a later call: the per-call bound was reached, or another
    /// run in this isolate is working through the queue.
    pub more_due: bool,
    /// The largest lateness of a started handler: when it started minus when it was due,
    /// in milliseconds (0 when none started).
    pub max_lateness_ms: i64,
    /// The sum of the lateness of the started handlers (divide by `started` for the mean).
    pub total_lateness_ms: i64,
}

/// The tasks whose handlers are running in this isolate right now. A task found `Running` in
/// storage but not in here was cut short by a crash or a panic (a panic resets the isolate,
/// and this set with it).
#[derive(Debug, Default)]
pub struct InFlight(RefCell<HashMap<String, Flight>>);

/// One running handler: its task as the handler sees it (running, this attempt counted),
/// the key of its stored row (pending until the attempt is claimed), and when it asked to
/// run again.
#[derive(Debug)]
struct Flight {
    task: Scheduled,
    key: Key,
    deferred: Option<i64>,
}

impl InFlight {
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.0.borrow().contains_key(id)
    }

    /// Whether no handler is running now.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.try_borrow().is_ok_and(|m| m.is_empty())
    }

    /// The tasks whose handlers are running now, as marked when they started.
    #[must_use]
    pub fn tasks(&self) -> Vec<Scheduled> {
        self.keyed().into_iter().map(|(_, task)| task).collect()
    }

    /// The running tasks with the keys of their stored rows.
    pub(crate) fn keyed(&self) -> Vec<(Key, Scheduled)> {
        self.0.try_borrow().map(|m| m.values().map(|f| (f.key.clone(), f.task.clone())).collect()).unwrap_or_default()
    }

    /// Marks the running task `id` to run again at `at_ms`; whether it is running.
    pub(crate) fn defer(&self, id: &str, at_ms: i64) -> bool {
        self.0.borrow_mut().get_mut(id).map(|f| f.deferred = Some(at_ms)).is_some()
    }
}

/// Removes the id from [`InFlight`] when the handler finishes or its future is dropped.
struct Entry<'a>(&'a InFlight, String);

impl<'a> Entry<'a> {
    fn new(set: &'a InFlight, task: &Scheduled, key: Key) -> Self {
        set.0.borrow_mut().insert(task.id.clone(), Flight { task: task.clone(), key, deferred: None });
        Entry(set, task.id.clone())
    }

    /// The attempt is claimed in storage: its row is running now.
    fn claimed(&self) {
        if let Some(f) = self.0 .0.borrow_mut().get_mut(&self.1) {
            f.key.status = Status::Running;
        }
    }

    /// The key of the stored row, and when the handler asked to run again
    /// ([`Scheduler::defer`]).
    fn state(&self) -> Option<(Key, Option<i64>)> {
        self.0 .0.borrow().get(&self.1).map(|f| (f.key.clone(), f.deferred))
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.0 .0.borrow_mut().remove(&self.1);
    }
}

/// Counts the run under way (see [`Scheduler::running`]) until dropped.
struct Running<'a>(&'a std::cell::Cell<u32>);

impl<'a> Running<'a> {
    fn new(runs: &'a std::cell::Cell<u32>) -> Self {
        runs.set(runs.get() + 1);
        Running(runs)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// What one task of a batch did to the run.
enum Step {
    /// Go on with the batch.
    Next,
    /// The queue changed under the batch: read it again.
    Reread,
    /// Another run of this isolate is on this task: leave the rest to it.
    Yield,
}

impl<S: Store> Scheduler<S> {
    /// Runs up to `limit` due tasks, one at a time, in `(due_ms, seq)` order, then arms the
    /// native alarm for what is left (see [`arming`](crate::core::arming)).
    ///
    /// `clock` is the time in Unix milliseconds, read after every handler; tasks are due per
    /// `at_ms` if given (the test hook), else per `clock`. Without `at_ms` the run is taken to
    /// be the native alarm's, which the runtime spends as it fires: no alarm is armed when it
    /// starts, so one that drains the queue has no alarm to delete. For each task: a payload that no
    /// longer deserialises makes it dead; otherwise it is claimed (running, one more
    /// attempt), `handler` runs, and `Ok` completes it (removed, or advanced if recurring)
    /// while `Err` retries it after its backoff or, after its last attempt, makes it dead
    /// with the error kept. A task found running that is not in this isolate's in-flight
    /// set was cut short by a crash or panic: that attempt counts as failed.
    ///
    /// Due tasks are read in batches of [`FETCH`]; a batch is read again when users changed
    /// the queue (a handler scheduled, cancelled or requeued) or a task stays due, so those
    /// changes are seen in order.
    ///
    /// `limit` is clamped to [`MAX_BATCH_LIMIT`] (0 runs nothing, and only re-arms).
    ///
    /// A run that fails (a storage error, an alarm write refused) does not arm the earliest
    /// task, which would be overdue and fail again at once: it arms the alarm for the end
    /// of a backoff that doubles from 1 s to a minute while runs keep failing, and no other
    /// write arms it earlier until then ([`backoff`](crate::core::backoff)); the first good
    /// run ends it. Rows that do not decode never fail a run: the store quarantines them.
    ///
    /// # Errors
    /// [`Error::TimeOutOfRange`](crate::Error::TimeOutOfRange) for an `at_ms` outside the
    /// accepted range (before anything runs); storage and alarm errors. Handler errors are
    /// not errors of the run: they are recorded on their tasks.
    pub async fn run_due<A, T, F, E>(&self, alarm: &A, clock: &dyn Fn() -> i64, at_ms: Option<i64>, limit: usize, handler: F) -> Result<RunReport>
    where
        A: NativeAlarm,
        T: DeserializeOwned,
        F: AsyncFnMut(T, Scheduled) -> std::result::Result<(), E>,
        E: Display,
    {
        self.run_due_settling(alarm, clock, at_ms, limit, handler, async |_: &dyn Fn() -> i64| {}).await
    }

    /// [`run_due`](Self::run_due), and before the run arms the alarm for what is left:
    /// `settle(until)`, where work the run's tasks started may end (lumenize-call's sends,
    /// whose replies settle their calls: a call settled here leaves no backstop to arm, and
    /// the run no alarm to write). `until()` reads when the earliest task still pending is
    /// due ([`MAX_TIME_MS`](crate::core::MAX_TIME_MS) if none; the run's time if the run
    /// failed): waiting past it would make that task late. It costs a statement: `settle`
    /// calls it only when it has something to wait for. What `settle` schedules, cancels or
    /// completes is armed for with the rest, by the run.
    ///
    /// # Errors
    /// As [`run_due`](Self::run_due).
    pub async fn run_due_settling<A, T, F, E>(
        &self,
        alarm: &A,
        clock: &dyn Fn() -> i64,
        at_ms: Option<i64>,
        limit: usize,
        mut handler: F,
        settle: impl AsyncFnOnce(&dyn Fn() -> i64),
    ) -> Result<RunReport>
    where
        A: NativeAlarm,
        T: DeserializeOwned,
        F: AsyncFnMut(T, Scheduled) -> std::result::Result<(), E>,
        E: Display,
    {
        match at_ms {
            Some(at) => {
                check_time(at)?;
            }
            // Called by the native alarm, which the runtime has just spent: nothing is armed.
            None => self.remember(None, clock()),
        }
        let limit = limit.min(MAX_BATCH_LIMIT);
        let now = || at_ms.unwrap_or_else(clock);
        let running = Running::new(&self.runs);
        let mut report = RunReport::default();
        let ran = self.run_batches(&now, limit, &mut handler, &mut report).await;
        // Still running: what `settle` changes is armed for below, not on its own.
        let until = || match &ran {
            Ok(()) => self.store.earliest().ok().flatten().map_or(MAX_TIME_MS, |head| head.due_ms),
            Err(_) => now(),
        };
        settle(&until).await;
        // A run that failed left no completion held back: each error comes from an operation
        // on the store, which made them first.
        drop(running);
        // Only a good run arms the earliest task: after a failure that would be an overdue
        // task, armed for now + 1 ms, failing again at once (see `backoff`).
        let armed = match ran {
            Ok(()) => self.arm_after_run(alarm, clock).await,
            Err(e) => Err(e),
        };
        match armed {
            Ok(()) => {
                self.backoff.succeeded();
                Ok(report)
            }
            Err(e) => {
                self.rearm_after_failure(alarm, clock()).await;
                Err(e)
            }
        }
    }

    async fn run_batches<T, F, E>(&self, now: &dyn Fn() -> i64, limit: usize, handler: &mut F, report: &mut RunReport) -> Result<()>
    where
        T: DeserializeOwned,
        F: AsyncFnMut(T, Scheduled) -> std::result::Result<(), E>,
        E: Display,
    {
        let mut done = 0;
        'read: while done < limit {
            let batch = self.store.due(now(), (limit - done).min(FETCH))?;
            if batch.is_empty() {
                return Ok(());
            }
            for task in batch {
                let seen = self.changes.get();
                done += 1;
                match self.run_one(task, now, handler, report).await? {
                    Step::Yield => {
                        report.more_due = true;
                        return Ok(());
                    }
                    Step::Reread => continue 'read,
                    Step::Next if self.changes.get() != seen => continue 'read,
                    Step::Next => {}
                }
            }
        }
        report.more_due = !self.store.due(now(), 1)?.is_empty();
        Ok(())
    }

    async fn run_one<T, F, E>(&self, task: Scheduled, now: &dyn Fn() -> i64, handler: &mut F, report: &mut RunReport) -> Result<Step>
    where
        T: DeserializeOwned,
        F: AsyncFnMut(T, Scheduled) -> std::result::Result<(), E>,
        E: Display,
    {
        if self.in_flight.contains(&task.id) {
            return Ok(Step::Yield);
        }
        let key = Key::of(&task);
        if task.status == Status::Running {
            report.interrupted += 1;
            let at = now();
            self.emit(Event::CutShort { task: &task, lateness_ms: at.saturating_sub(task.due_ms) });
            let error = format!("attempt {} was cut short: the object crashed or the handler panicked", task.attempts);
            let change = after_failure(&task, at, &error);
            return self.finish(&key, &task, &change, false, at, report);
        }
        let payload: T = match task.payload() {
            Ok(payload) => payload,
            Err(e) => {
                // Bounded: serde quotes what it did not expect, which may be most of a payload.
                let change = Change::Kill { error: clip(e.to_string()), attempts: task.attempts };
                return self.finish(&key, &task, &change, false, now(), report);
            }
        };
        let task = Scheduled { status: Status::Running, attempts: task.attempts + 1, ..task };
        let started = now();
        let lateness_ms = started.saturating_sub(task.due_ms);
        report.started += 1;
        report.max_lateness_ms = report.max_lateness_ms.max(lateness_ms);
        report.total_lateness_ms = report.total_lateness_ms.saturating_add(lateness_ms);
        self.emit(Event::Started { task: &task, lateness_ms });
        let entry = Entry::new(&self.in_flight, &task, key.clone());
        // The attempt is claimed in storage (running, one more attempt) only if the handler
        // awaits: a handler that completes in its first poll commits together with its
        // outcome, so a crash cannot leave it half done. The claim is written in the same
        // synchronous stretch as that first poll, before anything it awaits can complete.
        let mut run = std::pin::pin!(handler(payload, task.clone()));
        let outcome = match std::future::poll_fn(|cx| Poll::Ready(run.as_mut().poll(cx))).await {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => {
                // Before the handler's I/O: the claim makes the completions so far first
                // (see `Buffered`), so they commit no later than its effects (which may
                // commit as it awaits).
                if self.store.change(&key, &Change::Claim)? {
                    entry.claimed();
                }
                run.await
            }
        };
        let (key, deferred) = entry.state().unwrap_or((key.with_status(Status::Running), None));
        drop(entry);
        let at = now();
        let change = match (&outcome, deferred) {
            (Ok(()), Some(due_ms)) => Change::Advance { due_ms },
            (Ok(()), None) => after_success(&task, at),
            (Err(e), _) => after_failure(&task, at, &e.to_string()),
        };
        self.finish(&key, &task, &change, outcome.is_ok(), at, report)
    }

    /// Applies `change`, the outcome of `task`, and counts it: `succeeded` when its handler
    /// returned `Ok`, `died` when the change made it dead (a recurring task may do both),
    /// `retrying` for any other failure.
    fn finish(&self, key: &Key, task: &Scheduled, change: &Change, ok: bool, now_ms: i64, report: &mut RunReport) -> Result<Step> {
        if *change == Change::Remove {
            // Deleted with the others of the batch, in one statement (see `Buffered`).
            self.store.complete(key.clone());
            self.emit(Event::Succeeded { task, next_ms: None });
            report.succeeded += 1;
            return Ok(Step::Next);
        }
        let applied = self.apply(key, task, change)?;
        let died = applied && matches!(change, Change::Kill { .. });
        report.succeeded += u32::from(ok);
        report.died += u32::from(died);
        report.retrying += u32::from(!ok && !died);
        // Not applied: a handler rescheduled or cancelled its own task, which stands.
        Ok(if !applied || still_due(change, now_ms) { Step::Reread } else { Step::Next })
    }
}
