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
    /// 2262-04-11 ([`MAX_TIME_MS`](crate::MAX_TIME_MS)), or a delay that overflows; also
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
    /// ([`MAX_PAYLOAD_BYTES`](crate::MAX_PAYLOAD_BYTES),
    /// [`MAX_ID_BYTES`](crate::MAX_ID_BYTES),
    /// [`MAX_CRON_BYTES`](crate::MAX_CRON_BYTES),
    /// [`MAX_ZONE_BYTES`](crate::MAX_ZONE_BYTES)); nothing was stored.
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
    /// `requeue` was asked for a task that is not dead (a paused one included: resume it).
    #[error("task {0:?} is not dead, so it cannot be requeued")]
    NotDead(String),
    /// [`pause`](crate::Alarms::pause), [`resume`](crate::Alarms::resume) or
    /// [`run_now`](crate::Alarms::run_now) was asked for a task in a status it does not
    /// apply to: pausing or running now a task whose handler is running, or a dead one
    /// (requeue that instead); resuming a dead one. Nothing was changed.
    #[error("task {id:?} is {status}, so it cannot be {action}")]
    WrongStatus {
        /// The task's id.
        id: String,
        /// Its status.
        status: crate::core::Status,
        /// What was asked: `"paused"`, `"resumed"` or `"run now"`.
        action: &'static str,
    },
    /// The storage below failed: what kind of failure, and the runtime's message.
    #[error("storage error: {0}")]
    Storage(StorageError),
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

/// A failure of the storage below (SQLite, or the native alarm): its [`kind`](Self::kind),
/// as far as this crate tells failures apart, and the runtime's message. The kind is
/// classified once, where the failure is met (the SQL executor, the alarm's adapter); a
/// runtime that gives only text (workerd's SQLite errors arrive as JavaScript exceptions) is
/// read by [`classify`](Self::classify).
///
/// ```
/// use lumenize_alarms::{StorageError, StorageKind};
/// let e = StorageError::classify("no such table: _lumenize_alarms: SQLITE_ERROR");
/// assert_eq!(e.kind(), StorageKind::NoSuchTable);
/// assert_eq!(StorageError::classify("string or blob too big: SQLITE_TOOBIG").kind(), StorageKind::TooBig);
/// assert_eq!(StorageError::other("disk on fire").to_string(), "disk on fire");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    kind: StorageKind,
    message: String,
}

/// What kind of storage failure a [`StorageError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageKind {
    /// A table the statement names does not exist (the runtime's `deleteAll` drops them).
    NoSuchTable,
    /// A string, blob or row over what SQLite allows (2 MB in a Durable Object:
    /// `SQLITE_TOOBIG`).
    TooBig,
    /// The object has no SQLite storage (its class is not in `new_sqlite_classes`).
    SqlNotEnabled,
    /// Any other failure.
    Other,
}

impl StorageError {
    /// A failure of this kind, with this message.
    pub fn new(kind: StorageKind, message: impl Into<String>) -> Self {
        StorageError { kind, message: message.into() }
    }

    /// A failure of no particular kind ([`StorageKind::Other`]).
    pub fn other(message: impl Into<String>) -> Self {
        StorageError::new(StorageKind::Other, message)
    }

    /// A failure known only by its message, as SQLite (in workerd or natively) words it:
    /// the one place a message is read for its kind.
    pub fn classify(message: impl Into<String>) -> Self {
        let message = message.into();
        let kind = if message.contains("no such table") {
            StorageKind::NoSuchTable
        } else if message.contains("SQLITE_TOOBIG") || message.contains("too big") {
            StorageKind::TooBig
        } else if message.contains("SQL is not enabled") {
            StorageKind::SqlNotEnabled
        } else {
            StorageKind::Other
        };
        StorageError { kind, message }
    }

    /// What kind of failure it is.
    #[must_use]
    pub fn kind(&self) -> StorageKind {
        self.kind
    }

    /// The runtime's message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Error {
    /// The same error again, for a handle that keeps what opening it met and returns it
    /// from every method: the variants opening can meet are copied as they are, any other
    /// becomes a storage error with the same message. For this workspace's crates.
    #[doc(hidden)]
    #[must_use]
    pub fn replay(&self) -> Error {
        match self {
            Error::NoSqlite => Error::NoSqlite,
            Error::SchemaTooNew { found, supported } => Error::SchemaTooNew { found: *found, supported: *supported },
            Error::Storage(e) => Error::Storage(e.clone()),
            e => Error::Storage(StorageError::other(e.to_string())),
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        Error::Storage(e)
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for worker::Error {
    fn from(e: Error) -> Self {
        worker::Error::RustError(e.to_string())
    }
}
