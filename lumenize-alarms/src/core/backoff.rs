//! What a failed run does to the native alarm: it re-arms it with a backoff that grows while
//! the failure lasts, never for "now".
//!
//! A run fails when the store or the alarm fails under it (a storage error, an alarm write
//! refused). Arming the earliest task after such a run, as a good run does, means arming an
//! overdue task for now + 1 ms: the runtime fires that within milliseconds, the run fails
//! again the same way, and the object spins (in local workerd, about 50 runs a second, until
//! the worker stopped answering other objects too). Instead, after `n` failed runs in a row
//! the alarm is armed [`failure_backoff_ms`]`(n)` ahead (1 s, 2 s, 4 s, ... up to
//! [`MAX_FAILURE_BACKOFF_MS`]), and until then no write of the alarm arms it earlier (a
//! schedule, a requeue, the first read after a start, the panic hook): while a failure
//! lasts, the object runs at most once per backoff. The first good run ends it.
//!
//! The count lives in the scheduler's memory, per object: an object restarted (a new
//! isolate) starts again from 1 s, which is still not a loop.

use std::cell::Cell;

/// The wait after the first failed run, in milliseconds.
pub const FAILURE_BACKOFF_MS: i64 = 1_000;

/// The longest wait between two failed runs, in milliseconds (one minute): a failure that
/// lasts costs the object one run a minute, and a failure that clears is noticed within a
/// minute.
pub const MAX_FAILURE_BACKOFF_MS: i64 = 60_000;

/// The wait before the next run after `failures` failed runs in a row (at least one):
/// [`FAILURE_BACKOFF_MS`] doubling, capped at [`MAX_FAILURE_BACKOFF_MS`].
///
/// ```
/// use lumenize_alarms::core::backoff::{failure_backoff_ms, MAX_FAILURE_BACKOFF_MS};
/// assert_eq!([1, 2, 3].map(failure_backoff_ms), [1_000, 2_000, 4_000]);
/// assert_eq!(failure_backoff_ms(u32::MAX), MAX_FAILURE_BACKOFF_MS);
/// ```
#[must_use]
pub fn failure_backoff_ms(failures: u32) -> i64 {
    let doublings = failures.saturating_sub(1).min(16);
    FAILURE_BACKOFF_MS.saturating_mul(1 << doublings).min(MAX_FAILURE_BACKOFF_MS)
}

/// The failed runs in a row of one scheduler, and the time before which the alarm is not
/// armed because of them.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: Cell<u32>,
    until: Cell<Option<i64>>,
}

impl Backoff {
    /// A run failed at `now_ms`: when the next one may run.
    pub(crate) fn failed(&self, now_ms: i64) -> i64 {
        let failures = self.failures.get().saturating_add(1);
        self.failures.set(failures);
        let until = now_ms.saturating_add(failure_backoff_ms(failures));
        self.until.set(Some(until));
        until
    }

    /// A run succeeded: the failure is over.
    pub(crate) fn succeeded(&self) {
        self.failures.set(0);
        self.until.set(None);
    }

    /// Failed runs in a row so far.
    pub(crate) fn failures(&self) -> u32 {
        self.failures.get()
    }

    /// The alarm time `at_ms`, or the end of the backoff if that is later.
    pub(crate) fn floor(&self, at_ms: i64) -> i64 {
        self.until.get().map_or(at_ms, |until| at_ms.max(until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_to_a_minute_and_a_good_run_ends_it() {
        let waits: Vec<i64> = (1..=8).map(failure_backoff_ms).collect();
        assert_eq!(waits, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]);
        assert_eq!(failure_backoff_ms(0), FAILURE_BACKOFF_MS);
        let b = Backoff::default();
        assert_eq!(b.floor(5), 5, "no failure: no floor");
        assert_eq!(b.failed(100), 1_100);
        assert_eq!(b.failed(1_100), 3_100);
        assert_eq!((b.floor(101), b.floor(5_000), b.failures()), (3_100, 5_000, 2));
        b.succeeded();
        assert_eq!((b.floor(101), b.failures()), (101, 0));
        assert_eq!(b.failed(i64::MAX), i64::MAX, "saturates, never wraps");
    }
}
