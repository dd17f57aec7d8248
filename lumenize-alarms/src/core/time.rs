//! The accepted time range: every time the scheduler stores or arms, given or computed, is
//! checked here.

use std::time::Duration;

use crate::error::{Error, Result};

/// The latest time the scheduler accepts, in Unix milliseconds: 2262-04-11T23:47:16.854Z,
/// the latest time workerd's `setAlarm` arms (the last whole millisecond of the signed
/// 64-bit nanosecond clock; a later time is refused with "This API doesn't support dates
/// after 2189"). Given times after it are refused before anything is written; computed
/// ones (a retry's backoff, a cron or interval tick) make their task dead with a clear
/// error.
pub const MAX_TIME_MS: i64 = 9_223_372_036_854;

/// `ms` if it is in `0 ..= MAX_TIME_MS`.
///
/// # Errors
/// [`Error::TimeOutOfRange`] otherwise.
///
/// ```
/// use lumenize_alarms::core::{check_time, MAX_TIME_MS};
/// assert_eq!(check_time(MAX_TIME_MS)?, MAX_TIME_MS);
/// assert!(check_time(MAX_TIME_MS + 1).is_err());
/// assert!(check_time(-1).is_err());
/// # Ok::<(), lumenize_alarms::Error>(())
/// ```
pub fn check_time(ms: i64) -> Result<i64> {
    if (0..=MAX_TIME_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(Error::TimeOutOfRange { ms })
    }
}

/// `d` in whole milliseconds, rounded up (a task never runs early).
pub(crate) fn ceil_ms(d: Duration) -> i64 {
    i64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX)
}

/// `now_ms + ms`, if that is in range.
pub(crate) fn later(now_ms: i64, ms: i64) -> Result<i64> {
    check_time(now_ms.saturating_add(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_that_overflow_or_leave_the_range_are_refused() {
        assert_eq!(later(1, MAX_TIME_MS - 1).unwrap(), MAX_TIME_MS);
        assert!(matches!(later(2, MAX_TIME_MS - 1), Err(Error::TimeOutOfRange { ms }) if ms == MAX_TIME_MS + 1));
        assert!(matches!(later(MAX_TIME_MS, i64::MAX), Err(Error::TimeOutOfRange { ms: i64::MAX })));
        assert_eq!(ceil_ms(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_ms(Duration::from_secs(u64::MAX)), i64::MAX);
    }
}
