//! `Options`: the id, retry policy and missed-tick policy of a task being scheduled.

use crate::core::policy::{MissedTicks, RetryPolicy};

/// Options for [`Alarms::schedule_with`](crate::Alarms::schedule_with).
///
/// A task with an explicit id is idempotent: scheduling the same id again replaces the
/// stored task (an upsert), or, with [`Options::keep_existing`], leaves the stored one as it
/// is. Without an id the task gets a fresh UUIDv7.
///
/// ```
/// use lumenize_alarms::{MissedTicks, Options, RetryPolicy};
///
/// let opts = Options::id("nightly")
///     .keep_existing()
///     .retry(RetryPolicy::attempts(5))
///     .missed(MissedTicks::Burst);
/// assert_eq!(opts.id.as_deref(), Some("nightly"));
/// ```
///
/// It may gain fields in a minor release (`#[non_exhaustive]`): build it from
/// `Options::default()` (or its constructors) and the builders, or set its public fields on one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// The task's id; `None` generates a UUIDv7.
    pub id: Option<String>,
    /// Keep a stored task with the same id instead of replacing it.
    pub keep_existing: bool,
    /// How failures are retried.
    pub retry: RetryPolicy,
    /// What a late recurring task does with its missed ticks.
    pub missed: MissedTicks,
}

impl Options {
    /// Options with an explicit id.
    #[must_use]
    pub fn id(id: impl Into<String>) -> Self {
        Options { id: Some(id.into()), ..Options::default() }
    }

    /// If a task with this id is already stored, keep it and schedule nothing.
    #[must_use]
    pub fn keep_existing(self) -> Self {
        Options { keep_existing: true, ..self }
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn retry(self, retry: RetryPolicy) -> Self {
        Options { retry, ..self }
    }

    /// Sets the missed-tick policy (cron and interval tasks only).
    #[must_use]
    pub fn missed(self, missed: MissedTicks) -> Self {
        Options { missed, ..self }
    }
}
