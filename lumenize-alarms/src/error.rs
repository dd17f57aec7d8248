//! The one error type of the crate.

/// Everything that can go wrong when scheduling, listing or running tasks.
///
/// Every variant says what happened and to which input; none of them loses a stored task.
///
/// ```
/// use lumenize_alarms::{Error, When};
/// let err = When::cron("61 * * * *").unwrap_err();
/// assert!(matches!(err, Error::InvalidCron { .. }));
/// assert!(err.to_string().contains("61 * * * *"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The cron expression does not parse.
    #[error("invalid cron expression {expr:?}: {reason}")]
    InvalidCron {
        /// The expression as given.
        expr: String,
        /// What the parser said.
        reason: String,
    },
    /// The cron expression parses but has no occurrence after the given time
    /// (for example `0 0 30 2 *`, the 30th of February).
    #[error("cron expression {expr:?} has no occurrence after {after_ms} ms")]
    CronNeverFires {
        /// The expression as given.
        expr: String,
        /// The time after which no occurrence was found (Unix milliseconds).
        after_ms: i64,
    },
    /// A time outside what the runtime can arm: before the Unix epoch, or after
    /// 2262-04-11 ([`MAX_TIME_MS`](crate::core::MAX_TIME_MS)), or a delay that overflows; also
    /// an interval longer than that whole range.
    #[error("time {ms} ms is out of range: the runtime arms 0 ..= {max} Unix milliseconds (up to 2262-04-11)", max = crate::core::MAX_TIME_MS)]
    TimeOutOfRange {
        /// The offending time in Unix milliseconds (saturated when it overflowed).
        ms: i64,
    },
    /// A time zone this build does not know.
    #[error("invalid time zone {zone:?}: {reason}")]
    InvalidZone {
        /// The zone as given.
        zone: String,
        /// Why.
        reason: &'static str,
    },
    /// A payload, id, cron expression or time zone over its limit
    /// ([`MAX_PAYLOAD_BYTES`](crate::core::MAX_PAYLOAD_BYTES),
    /// [`MAX_ID_BYTES`](crate::core::MAX_ID_BYTES),
    /// [`MAX_CRON_BYTES`](crate::core::MAX_CRON_BYTES),
    /// [`MAX_ZONE_BYTES`](crate::core::MAX_ZONE_BYTES)); nothing was stored.
    #[error("the task's {what} is {bytes} bytes, over the limit of {limit}")]
    TooLarge {
        /// `"payload"`, `"id"`, `"cron expression"` or `"time zone"`.
        what: &'static str,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// An interval shorter than one millisecond.
    #[error("interval must be at least 1 ms")]
    ZeroInterval,
    /// The payload could not be encoded as JSON.
    #[error("task payload could not be encoded as JSON: {0}")]
    Encode(#[source] serde_json::Error),
    /// A stored payload no longer deserialises into the task type (the type changed since
    /// it was stored). The task is kept, as dead, with this error as its last error.
    #[error("stored payload of task {id:?} no longer deserialises: {reason}")]
    Decode {
        /// The task's id.
        id: String,
        /// What serde said.
        reason: String,
    },
    /// A stored task whose row does not decode (written by an older release, by hand, or by
    /// a bug: a float where an integer belongs, an unknown status, a missing value). Such a
    /// row is quarantined: kept, marked dead, listed with this error as its last error,
    /// cancellable by id, and it never stops the other tasks. [`Alarms::requeue`](crate::Alarms::requeue)
    /// answers this when the row still does not decode after what can be repaired was.
    #[error("the stored row of task {id:?} is unreadable: {reason}")]
    Unreadable {
        /// The task's id (as far as it could be read).
        id: String,
        /// What does not decode, column by column.
        reason: String,
    },
    /// No task has this id.
    #[error("no task with id {0:?}")]
    NotFound(String),
    /// `requeue` was asked for a task that is not dead.
    #[error("task {0:?} is not dead, so it cannot be requeued")]
    NotDead(String),
    /// The storage below failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// The Durable Object has no SQLite storage.
    #[error("this Durable Object has no SQLite storage: declare its class in `new_sqlite_classes` of a wrangler.toml migration")]
    NoSqlite,
    /// The table was written by a newer release of this crate.
    #[error("the scheduler table has schema version {found}, newer than this release understands ({supported})")]
    SchemaTooNew {
        /// The version found in storage.
        found: i64,
        /// The newest version this release knows.
        supported: i64,
    },
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for worker::Error {
    fn from(e: Error) -> Self {
        worker::Error::RustError(e.to_string())
    }
}
