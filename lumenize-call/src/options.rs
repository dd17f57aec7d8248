//! `CallOptions` and `Dispatch`: how a call leaves the object and how long it may take.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a call is sent to the remote. Both are durable: the call record is written before
/// anything leaves the object, and a lumenize-alarms task re-dispatches it until a result
/// is in.
///
/// - `Alarm`: a zero-delay scheduled task sends it, from the next native alarm (one alarm
///   hop: 1 to 2 ms measured on a local workerd). Many calls made together share one alarm
///   invocation and are sent concurrently. That invocation waits for their replies (up to
///   250 ms, and never past the next task's due time) before it arms the alarm for what is
///   left: a call answered by then costs one native-alarm write (its task's), where one
///   still out keeps its backstop armed as `Direct`'s is.
/// - `Direct`: sent at once, in the same event as [`Calls::call`](crate::Calls::call),
///   with a backstop task that re-dispatches if the object dies before the result is in.
///
/// The default is `Direct`: `examples/call-alarm-delay` measured it faster at the same
/// guarantees. On a local workerd, one call at a time, its median round trip was 4.0 ms
/// against 6.1 ms for `Alarm` (p99 7.9 against 12.3 ms; 10,000 calls each): `Alarm` waits
/// for the native alarm and rewrites its task. `Alarm` may suit one event that makes many
/// calls at once when finishing them all matters more than the first reply: in bursts of
/// 1,000 its throughput was 1.05x to 1.19x `Direct`'s over several runs (mostly within the
/// noise), as one alarm invocation sends them together. See
/// `examples/call-alarm-delay/MEASUREMENTS.md`; figures for a deployed worker come from its
/// driver's `--url`.
///
/// ```
/// use lumenize_call::Dispatch;
/// assert_eq!(Dispatch::default(), Dispatch::Direct);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Dispatch {
    /// Through a zero-delay scheduled task.
    Alarm,
    /// At once, with a durable backstop task.
    #[default]
    Direct,
}

/// Options of one call.
///
/// ```
/// use std::time::Duration;
/// use lumenize_call::{CallOptions, Dispatch};
/// let opts = CallOptions::default().dispatch(Dispatch::Alarm).timeout(Duration::from_secs(30));
/// assert_eq!(opts.get_dispatch(), Dispatch::Alarm);
/// assert_eq!(opts.get_timeout(), Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// How the call is sent.
    pub(crate) dispatch: Dispatch,
    /// How long to wait for the result before the continuation gets
    /// [`CallError::Timeout`](crate::CallError::Timeout). `None`: no deadline (transport
    /// failures still end the call after [`MAX_TRANSPORT_ATTEMPTS`](crate::MAX_TRANSPORT_ATTEMPTS),
    /// and every call ends 23 h 5 min after it was made).
    ///
    /// Range: any `Duration`; whole milliseconds count (less than 1 ms times out at once),
    /// and a timeout over [`MAX_TIMEOUT_MS`](crate::MAX_TIMEOUT_MS) (23 h 5 min) is clamped
    /// to it. No call lives longer than that (it ends with
    /// [`CallError::Expired`](crate::CallError::Expired)), so a longer timeout could never
    /// fire; clamping lets `Duration::MAX` mean "as long as a call can live", and keeps the
    /// stored deadline an integer the store gives back (a Durable Object's SQLite returns
    /// integers of 2^53 and more as floats).
    pub(crate) timeout: Option<Duration>,
    /// The test hook's issue time: see `issued_at`. Not in a build without the feature.
    #[cfg(feature = "testing")]
    issued_ms: Option<i64>,
}

impl CallOptions {
    /// With this dispatch.
    #[must_use]
    pub fn dispatch(self, dispatch: Dispatch) -> Self {
        CallOptions { dispatch, ..self }
    }

    /// With this timeout: how long to wait for the result before the continuation gets
    /// [`CallError::Timeout`](crate::CallError::Timeout). Without one, no deadline
    /// (transport failures still end the call after
    /// [`MAX_TRANSPORT_ATTEMPTS`](crate::MAX_TRANSPORT_ATTEMPTS), and every call ends
    /// 23 h 5 min after it was made).
    ///
    /// Range: any `Duration`; whole milliseconds count (less than 1 ms times out at once),
    /// and a timeout over [`MAX_TIMEOUT_MS`](crate::MAX_TIMEOUT_MS) (23 h 5 min) is clamped
    /// to it. No call lives longer than that (it ends with
    /// [`CallError::Expired`](crate::CallError::Expired)), so a longer timeout could never
    /// fire; clamping lets `Duration::MAX` mean "as long as a call can live", and keeps the
    /// stored deadline an integer the store gives back (a Durable Object's SQLite returns
    /// integers of 2^53 and more as floats).
    ///
    /// ```
    /// use std::time::Duration;
    /// use lumenize_call::CallOptions;
    /// // Any Duration is accepted: `call` keeps at most 23 h 5 min of it.
    /// let longest = CallOptions::default().timeout(Duration::MAX);
    /// assert_eq!(longest.get_timeout(), Some(Duration::MAX));
    /// ```
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        CallOptions { timeout: Some(timeout), ..self }
    }

    /// The dispatch.
    #[must_use]
    pub fn get_dispatch(&self) -> Dispatch {
        self.dispatch
    }

    /// The timeout, as given.
    #[must_use]
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The test hook (feature `testing`, for this workspace's tests; not part of the API):
    /// the call counts as made at `unix_ms` (the issue time every request of it carries,
    /// from which the remote judges its age), as if the caller had made it then. The
    /// timeout still counts from now.
    ///
    /// Range: `0 ..=` [`MAX_TIME_MS`](lumenize_alarms::MAX_TIME_MS) (2262-04-11, what the
    /// runtime arms); [`Calls::call_with`](crate::Calls::call_with) refuses a time outside
    /// it with [`Error::OutOfRange`](crate::Error::OutOfRange) before storing anything. A
    /// time more than 23 h 5 min ago ends the call as expired without sending it; one more
    /// than 5 min ahead of the remote's clock is refused by the remote (401).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    #[must_use]
    pub fn issued_at(self, unix_ms: i64) -> Self {
        CallOptions { issued_ms: Some(unix_ms), ..self }
    }

    /// The test hook's issue time, if one was given.
    #[cfg(feature = "testing")]
    pub(crate) fn issued_ms(&self) -> Option<i64> {
        self.issued_ms
    }

    /// Without the test hook, a call is issued when it is made.
    #[cfg(not(feature = "testing"))]
    #[allow(clippy::unused_self)]
    pub(crate) fn issued_ms(&self) -> Option<i64> {
        None
    }
}
