//! `Event`: what a lifecycle hook sees.

use crate::core::task::Scheduled;

/// One step in the life of a task, as seen by the hook set with
/// [`Alarms::on_event`](crate::Alarms::on_event). Events of the run loop carry the task as
/// it was when the step happened.
///
/// ```
/// use lumenize_alarms::Event;
/// fn log(event: &Event) {
///     match event {
///         Event::Retrying { task, error, next_ms } => eprintln!("{} failed ({error}), again at {next_ms}", task.id),
///         Event::Dead { task, error } => eprintln!("{} is dead: {error}", task.id),
///         Event::CutShort { task, .. } => eprintln!("{} attempt {} was cut short", task.id, task.attempts),
///         _ => {}
///     }
/// }
/// # let _ = log;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Stored by `schedule` or `schedule_many` (not reported when `keep_existing` kept the
    /// stored one). Its `seq` is not read back from storage: it shows 0.
    Scheduled(&'a Scheduled),
    /// A handler starts (attempt `task.attempts`), `lateness_ms` after the time it was due.
    Started {
        /// The task, running.
        task: &'a Scheduled,
        /// How late it starts: now minus its due time.
        lateness_ms: i64,
    },
    /// The handler returned `Ok`: a one-shot task is gone, a recurring one runs next at
    /// `next_ms`.
    Succeeded {
        /// The task that ran.
        task: &'a Scheduled,
        /// A recurring task's next tick.
        next_ms: Option<i64>,
    },
    /// The attempt failed and will be retried at `next_ms`.
    Retrying {
        /// The task that failed.
        task: &'a Scheduled,
        /// The attempt's error.
        error: &'a str,
        /// When the next attempt is due.
        next_ms: i64,
    },
    /// The task is dead: out of attempts, undecodable, or with no next time the runtime can
    /// arm. It stays listed with `error` until requeued or cancelled.
    Dead {
        /// The task.
        task: &'a Scheduled,
        /// Why.
        error: &'a str,
    },
    /// A run found attempt `task.attempts` cut short (the object crashed or a handler
    /// panicked); it counts as failed, and a `Retrying` or `Dead` event follows.
    CutShort {
        /// The task as the crash left it.
        task: &'a Scheduled,
        /// How late the run that found it is: now minus the attempt's due time.
        lateness_ms: i64,
    },
}
