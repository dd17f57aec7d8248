//! What the call core needs of its runtime: the object's scheduler, for a call's task
//! ([`Tasks`]), and a way to send a call ([`Transport`]). The continuation is a callback
//! given to each operation.

use std::future::Future;

use crate::machine::Answer;
use crate::store::PendingCall;
use crate::Result;

/// The task of each call in the object's scheduler (lumenize-alarms): it fires the call's
/// backstop ([`Caller::backstop`](super::Caller::backstop)) and is removed when that run
/// returns `Ok` without deferring it; a run that returns `Err` is retried.
pub trait Tasks {
    /// Stores the task of call `id`, due at `at_ms`.
    ///
    /// # Errors
    /// The scheduler's (nothing is stored then, or the task finds no call and ends).
    fn schedule(&self, id: &str, at_ms: i64) -> impl Future<Output = Result<()>>;

    /// From inside the running task of call `id`: run it again at `at_ms` instead of
    /// removing it.
    ///
    /// # Errors
    /// The scheduler's (no run of that task in progress: a bug of the caller).
    fn defer(&self, id: &str, at_ms: i64) -> Result<()>;

    /// Removes the task of call `id`, if any.
    ///
    /// # Errors
    /// Storage errors.
    fn cancel(&self, id: &str) -> Result<()>;
}

/// What came back from one send, and when (Unix ms, the caller's clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The remote's answer, read ([`read_answer`](crate::machine::read_answer)); a send that
    /// failed (no answer) is [`Answer::Failed`].
    pub answer: Answer,
    /// When it came back.
    pub at_ms: i64,
}

/// Sends a call to its target, once.
pub trait Transport {
    /// Sends `call` (its operation is there: the core does not send one whose result is in)
    /// and waits for the answer.
    fn send(&self, call: &PendingCall) -> impl Future<Output = Sent>;
}
