//! Per-task policies: how failures are retried, and what a late recurring task does.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::time::{ceil_ms, MAX_TIME_MS};

/// How a task whose handler returns `Err` (or panics, or is cut short by a crash) is retried.
///
/// Attempt `n` that fails is retried after `initial_backoff * factor^(n-1)`, capped at
/// `max_backoff`. After `max_attempts` the task is kept as dead, with its last error, until
/// [`Alarms::requeue`](crate::Alarms::requeue) or [`Alarms::cancel`](crate::Alarms::cancel).
///
/// Every field has a stated range. The builders clamp into it, and since the fields are
/// public, a policy is also clamped ([`normalized`](Self::normalized)) when a task is
/// scheduled with it, before anything is written, and when a stored task is read:
///
/// | field | range | why |
/// | --- | --- | --- |
/// | `max_attempts` | `1 ..=` [`MAX_ATTEMPTS`] | at least the first attempt; nothing retries forever |
/// | `initial_backoff_ms` | `0 ..=` [`MAX_BACKOFF_MS`] | a wait is a span of the time range |
/// | `factor` | `1 ..=` [`MAX_FACTOR`] | 1 keeps the wait constant; the wait never shrinks |
/// | `max_backoff_ms` | `0 ..=` [`MAX_BACKOFF_MS`] | as `initial_backoff_ms` |
///
/// A wait that puts the retry after [`MAX_TIME_MS`] (2262-04-11) makes the task dead with
/// that reason instead of storing a time the runtime cannot arm.
///
/// ```
/// use std::time::Duration;
/// use lumenize_alarms::RetryPolicy;
/// use lumenize_alarms::{MAX_ATTEMPTS, MAX_BACKOFF_MS};
///
/// let policy = RetryPolicy::attempts(4).backoff(Duration::from_millis(100), Duration::from_secs(1));
/// assert_eq!(policy.delay_after(1), 100);
/// assert_eq!(policy.delay_after(2), 200);
/// assert_eq!(policy.delay_after(5), 1_000); // capped
/// assert_eq!(RetryPolicy::default().max_attempts, 3);
///
/// // Extremes are clamped, never stored as they are.
/// let extreme = RetryPolicy::attempts(u32::MAX).backoff(Duration::MAX, Duration::MAX);
/// assert_eq!((extreme.max_attempts, extreme.max_backoff_ms), (MAX_ATTEMPTS, MAX_BACKOFF_MS));
/// let mut written = RetryPolicy::default();
/// (written.max_attempts, written.initial_backoff_ms, written.factor, written.max_backoff_ms) = (0, -5, 0, i64::MAX);
/// let n = written.normalized();
/// assert_eq!((n.max_attempts, n.initial_backoff_ms, n.factor, n.max_backoff_ms), (1, 0, 1, MAX_BACKOFF_MS));
/// ```
///
/// It may gain fields in a minor release (`#[non_exhaustive]`): build it from
/// `RetryPolicy::default()` (or its constructors) and the builders, or set its public fields on one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included: `1 ..=` [`MAX_ATTEMPTS`].
    pub max_attempts: u32,
    /// Wait after the first failure, in milliseconds: `0 ..=` [`MAX_BACKOFF_MS`].
    pub initial_backoff_ms: i64,
    /// Growth of the wait after each further failure: `1 ..=` [`MAX_FACTOR`].
    pub factor: u32,
    /// The longest wait, in milliseconds: `0 ..=` [`MAX_BACKOFF_MS`].
    pub max_backoff_ms: i64,
}

/// The most attempts a task makes (the first included) before it is dead: 1,000, so that
/// nothing retries forever. [`RetryPolicy`] clamps `max_attempts` to it.
pub const MAX_ATTEMPTS: u32 = 1_000;

/// The largest growth factor of a retry's wait. [`RetryPolicy`] clamps `factor` into
/// `1 ..= MAX_FACTOR`.
pub const MAX_FACTOR: u32 = 1_000;

/// The longest wait between two attempts, in milliseconds: [`MAX_TIME_MS`], the whole
/// accepted time range. A longer wait would put the retry after the last time the runtime
/// can arm, whenever it started, so it has no other meaning; a shorter cap (a year, say)
/// would silently change what a user asked for. [`RetryPolicy`] clamps both waits into
/// `0 ..= MAX_BACKOFF_MS`; a retry that still lands past the range makes its task dead with
/// the reason.
pub const MAX_BACKOFF_MS: i64 = MAX_TIME_MS;

impl Default for RetryPolicy {
    /// Three attempts, waiting 1 s then 2 s (doubling, capped at 5 minutes).
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, initial_backoff_ms: 1_000, factor: 2, max_backoff_ms: 300_000 }
    }
}

impl RetryPolicy {
    /// `n` attempts in all, clamped to `1 ..=` [`MAX_ATTEMPTS`], with the default backoff.
    #[must_use]
    pub fn attempts(n: u32) -> Self {
        RetryPolicy { max_attempts: n, ..RetryPolicy::default() }.normalized()
    }

    /// One attempt: a failure makes the task dead at once.
    #[must_use]
    pub fn none() -> Self {
        RetryPolicy::attempts(1)
    }

    /// Exponential backoff from `initial` (growing by the policy's `factor`: doubling unless
    /// [`factor`](Self::factor) says otherwise), capped at `max` (at least `initial`), rounded
    /// up to whole milliseconds; both clamped to [`MAX_BACKOFF_MS`].
    #[must_use]
    pub fn backoff(self, initial: Duration, max: Duration) -> Self {
        let (initial, max) = (ceil_ms(initial), ceil_ms(max));
        RetryPolicy { initial_backoff_ms: initial, max_backoff_ms: max.max(initial), ..self }.normalized()
    }

    /// Sets the growth of the wait after each further failure (2 doubles it, 1 keeps it
    /// constant), clamped to `1 ..=` [`MAX_FACTOR`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use lumenize_alarms::RetryPolicy;
    /// let steady = RetryPolicy::attempts(5).backoff(Duration::from_secs(1), Duration::from_secs(60)).factor(1);
    /// assert_eq!((steady.delay_after(1), steady.delay_after(4)), (1_000, 1_000));
    /// assert_eq!(RetryPolicy::default().factor(0).factor, 1);
    /// ```
    #[must_use]
    pub fn factor(self, factor: u32) -> Self {
        RetryPolicy { factor, ..self }.normalized()
    }

    /// This policy with every field clamped into its stated range (see the table above).
    /// A task is always stored with the normalized policy.
    #[must_use]
    pub fn normalized(&self) -> Self {
        RetryPolicy {
            max_attempts: self.max_attempts.clamp(1, MAX_ATTEMPTS),
            initial_backoff_ms: self.initial_backoff_ms.clamp(0, MAX_BACKOFF_MS),
            factor: self.factor.clamp(1, MAX_FACTOR),
            max_backoff_ms: self.max_backoff_ms.clamp(0, MAX_BACKOFF_MS),
        }
    }

    /// The wait in milliseconds after failed attempt `attempt` (1-based), computed on the
    /// [`normalized`](Self::normalized) policy: in `0 ..=` [`MAX_BACKOFF_MS`].
    #[must_use]
    pub fn delay_after(&self, attempt: u32) -> i64 {
        let p = self.normalized();
        let mut delay = p.initial_backoff_ms;
        for _ in 1..attempt {
            if delay >= p.max_backoff_ms {
                break;
            }
            delay = delay.saturating_mul(i64::from(p.factor));
        }
        delay.min(p.max_backoff_ms)
    }
}

/// What a cron or interval task does when it ran late and one or more of its next ticks
/// are already in the past (the vocabulary of `tokio::time::MissedTickBehavior`).
///
/// Either way the next tick is computed from the *scheduled* time of the one that ran, never
/// from "now", so a recurring task does not drift.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MissedTicks {
    /// Skip the ticks that are already past: the next run is the first tick after now.
    #[default]
    Skip,
    /// Run every missed tick, one after another, as fast as the alarm allows.
    Burst,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        let delays: Vec<_> = (1..=12).map(|a| p.delay_after(a)).collect();
        assert_eq!(&delays[..4], &[1_000, 2_000, 4_000, 8_000]);
        assert_eq!(delays[11], 300_000);
        assert_eq!(RetryPolicy::attempts(0).max_attempts, 1);
        assert_eq!(RetryPolicy::none().backoff(Duration::ZERO, Duration::ZERO).delay_after(3), 0);
    }

    #[test]
    fn every_field_is_clamped_into_its_stated_range() {
        let huge = RetryPolicy::attempts(u32::MAX).backoff(Duration::MAX, Duration::MAX).factor(u32::MAX);
        assert_eq!(huge, RetryPolicy { max_attempts: MAX_ATTEMPTS, initial_backoff_ms: MAX_BACKOFF_MS, factor: MAX_FACTOR, max_backoff_ms: MAX_BACKOFF_MS });
        assert_eq!(huge.delay_after(u32::MAX), MAX_BACKOFF_MS);
        let written = RetryPolicy { max_attempts: u32::MAX, initial_backoff_ms: i64::MIN, factor: 0, max_backoff_ms: i64::MIN };
        assert_eq!(written.normalized(), RetryPolicy { max_attempts: MAX_ATTEMPTS, initial_backoff_ms: 0, factor: 1, max_backoff_ms: 0 });
        assert_eq!(written.delay_after(1), 0, "a negative wait is no wait, never a time in the past");
        let inverted = RetryPolicy { initial_backoff_ms: 500, max_backoff_ms: 100, ..RetryPolicy::default() };
        assert_eq!(inverted.delay_after(1), 100, "the cap wins");
        assert_eq!(RetryPolicy::default().normalized(), RetryPolicy::default());
        // The builder keeps `max` at least `initial`.
        let b = RetryPolicy::default().backoff(Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!((b.initial_backoff_ms, b.max_backoff_ms), (10_000, 10_000));
    }
}
