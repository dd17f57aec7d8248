//! The run loop: take due tasks one at a time in `(due, seq)` order, run each handler, and
//! record what happened, with a bound on the work done per call.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;

use serde::de::DeserializeOwned;

use crate::core::queue::{begin, kill, succeed};
pub(crate) use crate::core::queue::fail;
use crate::core::{Status, Store, Scheduled};
use crate::Result;

/// What one call of [`run_due`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunReport {
    /// Handlers that returned `Ok`.
    pub succeeded: u32,
    /// Handlers that returned `Err` and will be retried.
    pub retrying: u32,
    /// Tasks that went dead: out of attempts, or a payload that no longer deserialises.
    pub died: u32,
    /// Attempts found cut short by a crash or panic (counted as failures).
    pub interrupted: u32,
    /// Due tasks were left for a later call: the per-call bound was reached, or another
    /// run in this isolate is working through the queue.
    pub more_due: bool,
}

/// The ids whose handlers are running in this isolate right now. A task found `Running` in
/// storage but not in here was cut short by a crash or a panic (a panic resets the isolate,
/// and this set with it).
#[derive(Debug, Default)]
pub struct InFlight(RefCell<HashMap<String, Scheduled>>);

impl InFlight {
    fn contains(&self, id: &str) -> bool {
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
        self.0.try_borrow().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }
}

/// Removes the id from [`InFlight`] when the handler finishes or its future is dropped.
struct Entry<'a>(&'a InFlight, String);

impl<'a> Entry<'a> {
    fn new(set: &'a InFlight, task: &Scheduled) -> Self {
        set.0.borrow_mut().insert(task.id.clone(), task.clone());
        Entry(set, task.id.clone())
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.0 .0.borrow_mut().remove(&self.1);
    }
}

/// Runs up to `limit` due tasks, one at a time, in `(due_ms, seq)` order, as seen by
/// `clock` (Unix milliseconds, read again after every handler).
///
/// For each task: a payload that no longer deserialises makes it dead at once; otherwise it
/// is marked running (one more attempt), `handler` runs, and then `Ok` completes it (removed,
/// or advanced if recurring) and `Err` retries it after its backoff or, after its last
/// attempt, makes it dead with the error kept. A task found running that is not in
/// `in_flight` was cut short by a crash or panic: that attempt counts as failed.
///
/// The loop asks storage for the next due task after every handler, so tasks that a handler
/// schedules, reschedules or cancels are seen at once.
///
/// # Errors
/// Storage errors. Handler errors are not errors of the run: they are recorded on the task.
pub async fn run_due<S, T, F, Fut, E>(
    store: &S,
    clock: &dyn Fn() -> i64,
    limit: usize,
    in_flight: &InFlight,
    mut handler: F,
) -> Result<RunReport>
where
    S: Store,
    T: DeserializeOwned,
    F: FnMut(T, Scheduled) -> Fut,
    Fut: Future<Output = std::result::Result<(), E>>,
    E: Display,
{
    let mut report = RunReport::default();
    for _ in 0..limit {
        let now = clock();
        let Some(task) = store.next_due(now)? else { return Ok(report) };
        if in_flight.contains(&task.id) {
            report.more_due = true;
            return Ok(report);
        }
        if task.status == Status::Running {
            report.interrupted += 1;
            let error = format!("attempt {} was cut short: the object crashed or the handler panicked", task.attempts);
            count(&mut report, fail(store, &task, now, error)?);
            continue;
        }
        let payload: T = match task.payload() {
            Ok(payload) => payload,
            Err(e) => {
                kill(store, &task, e.to_string())?;
                report.died += 1;
                continue;
            }
        };
        let running = begin(store, &task)?;
        let outcome = {
            let _entry = Entry::new(in_flight, &running);
            handler(payload, running.clone()).await
        };
        match outcome {
            Ok(()) => {
                succeed(store, &running, clock())?;
                report.succeeded += 1;
            }
            Err(e) => count(&mut report, fail(store, &running, clock(), e.to_string())?),
        }
    }
    report.more_due = store.next_due(clock())?.is_some();
    Ok(report)
}

fn count(report: &mut RunReport, status: Status) {
    if status == Status::Dead {
        report.died += 1;
    } else {
        report.retrying += 1;
    }
}
