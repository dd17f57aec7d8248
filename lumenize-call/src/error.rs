//! The errors: [`Error`] for the API, [`CallError`] for what a continuation receives.

use serde::{Deserialize, Serialize};

/// Why a call did not produce the remote's reply. The continuation receives it in place of
/// the reply, exactly once per call.
///
/// ```
/// use lumenize_call::CallError;
/// let e = CallError::Remote { message: "no such item".into(), panicked: false };
/// assert_eq!(e.to_string(), "the remote returned an error: no such item");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum CallError {
    /// The remote's operation returned `Err`, panicked, or was cut short by a crash of the
    /// remote (then it may or may not have taken effect; it is never run twice).
    #[error("the remote {}: {message}", if *panicked { "panicked" } else { "returned an error" })]
    Remote {
        /// The remote's error (its `Display`), or the panic message.
        message: String,
        /// Whether the operation panicked.
        panicked: bool,
    },
    /// No reply before the call's timeout.
    #[error("no reply within the timeout")]
    Timeout,
    /// The remote could not be reached: its binding or id does not resolve, or every
    /// attempt failed.
    #[error("the remote could not be reached: {message}")]
    Transport {
        /// The last failure.
        message: String,
    },
    /// The remote refused the request (bad envelope, unknown version, bad signature, unknown
    /// operation): retrying cannot help.
    #[error("the remote refused the call ({status}): {message}")]
    Rejected {
        /// The HTTP status the remote answered.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The call was cancelled with [`Calls::cancel`](crate::Calls::cancel).
    #[error("the call was cancelled")]
    Cancelled,
    /// The call is older than a remote accepts: made more than
    /// [`MAX_REQUEST_AGE_MS`](crate::MAX_REQUEST_AGE_MS) ago (the remote refused
    /// it with 410), or, by the caller's clock, that plus
    /// [`MAX_CLOCK_SKEW_MS`](crate::MAX_CLOCK_SKEW_MS) (then it was not sent). An
    /// earlier dispatch may have applied it and its reply was lost: it may or may not have
    /// taken effect. It is never sent again.
    #[error("the call expired: {message}")]
    Expired {
        /// Why, as the remote (or the caller) said.
        message: String,
    },
    /// The result is too large to store: the remote's reply (or error), as JSON, is over
    /// [`MAX_REPLY_BYTES`](crate::MAX_REPLY_BYTES), or over what the caller's row holds
    /// next to the call's continuation value (see
    /// `storable_result`). The operation was applied
    /// once; its reply is lost.
    #[error("the result is too large to store: {bytes} bytes as JSON, at most {limit} fit")]
    TooLarge {
        /// The result's size, as JSON.
        bytes: u64,
        /// The most that fitted.
        limit: u64,
    },
    /// Storing the result failed, at the remote or at the caller, for a reason other than
    /// its size. The operation was applied once; its reply is lost.
    #[error("the result could not be stored: {message}")]
    Storage {
        /// What storage said.
        message: String,
    },
    /// The remote applied the operation (once) and replied, but the reply does not decode
    /// as the operation's [`Reply`](crate::Operation::Reply) type: the two objects were
    /// built from different versions of it. Its reply is lost.
    #[error("the reply does not decode as the operation's reply type: {message}")]
    BadReply {
        /// What serde said.
        message: String,
    },
}

/// What can go wrong when making, serving or running calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The shared secret that authenticates calls is not configured.
    #[error("the secret {0} is not set: add it with `wrangler secret put {0}` (or in .dev.vars for wrangler dev); every object that calls or serves must see the same value")]
    NoSecret(&'static str),
    /// An operation, reply or continuation could not be encoded as JSON.
    #[error("could not encode {what} as JSON: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// An operation or continuation value is too large to store (see
    /// [`MAX_OPERATION_BYTES`](crate::MAX_OPERATION_BYTES)). Nothing was stored.
    #[error("{what} is too large: {bytes} bytes as JSON, over the limit of {limit} (SQLite in a Durable Object stores no row over {} bytes)", crate::SQLITE_MAX_BYTES)]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size, as JSON.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A time outside what the runtime arms (`0 ..=`
    /// [`MAX_TIME_MS`](lumenize_alarms::MAX_TIME_MS), 2262-04-11): a call's issue time
    /// (the clock, or this workspace's test hook's time) or its deadline (issue time plus
    /// timeout). Nothing was stored.
    #[error("{what} {value} is out of range: accepted {min} ..= {max}")]
    OutOfRange {
        /// What it is.
        what: &'static str,
        /// The value given or computed.
        value: i64,
        /// The smallest accepted.
        min: i64,
        /// The largest accepted.
        max: i64,
    },
    /// The target's binding or object name (or id) is over
    /// [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES). Nothing was stored.
    #[error("{what} is too long: {bytes} bytes, over the limit of {limit}")]
    KeyTooLong {
        /// What is too long.
        what: &'static str,
        /// Its length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The stored row of a call does not decode (written by hand, by a bug or by an older
    /// release: a float where an integer belongs, text that is not JSON). The call is
    /// quarantined: [`Calls::pending`](crate::Calls::pending) lists it with this reason in
    /// [`PendingCall::unreadable`](crate::PendingCall::unreadable), its task fails with
    /// this error (and is kept dead after its retries), and
    /// [`Calls::cancel`](crate::Calls::cancel) removes it. Other calls are not affected.
    #[error("the stored row of call {id} does not decode: {reason}")]
    Unreadable {
        /// The call.
        id: String,
        /// Which columns, and why.
        reason: String,
    },
    /// A stored continuation value no longer deserialises as the continuation type `R` of
    /// [`Calls`](crate::Calls) (the type changed under a pending call). The call stays
    /// pending with its result; its task retries, then is kept dead with this error.
    #[error("the continuation value of call {id} no longer deserialises: {reason}")]
    Decode {
        /// The call.
        id: String,
        /// What serde said.
        reason: String,
    },
    /// The continuation returned an error (the call stays pending with its result, and its
    /// task retries the continuation).
    #[error("the continuation of call {id} failed: {message}")]
    Continuation {
        /// The call.
        id: String,
        /// The handler's error.
        message: String,
    },
    /// The scheduler below failed.
    #[error(transparent)]
    Alarms(#[from] lumenize_alarms::Error),
    /// The runtime failed (storage, stubs).
    #[error("runtime error: {0}")]
    Runtime(String),
}

impl Error {
    /// The error opening met, again, for each method called after it: the variants opening
    /// can meet are copied as they are, any other keeps its message.
    pub(crate) fn replay(&self) -> Error {
        match self {
            Error::NoSecret(name) => Error::NoSecret(name),
            Error::Alarms(e) => Error::Alarms(e.replay()),
            e => Error::Runtime(e.to_string()),
        }
    }
}

impl From<crate::machine::Oversize> for Error {
    fn from(o: crate::machine::Oversize) -> Self {
        Error::TooLarge { what: o.what, bytes: o.bytes, limit: o.limit }
    }
}

impl From<crate::machine::OutOfRange> for Error {
    fn from(o: crate::machine::OutOfRange) -> Self {
        Error::OutOfRange { what: o.what, value: o.value, min: o.min, max: o.max }
    }
}

impl From<worker::Error> for Error {
    fn from(e: worker::Error) -> Self {
        Error::Runtime(e.to_string())
    }
}

impl From<Error> for worker::Error {
    fn from(e: Error) -> Self {
        worker::Error::RustError(e.to_string())
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
