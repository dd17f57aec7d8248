//! Per-task policies: how failures are retried, and what a late recurring task does.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a task whose handler returns `Err` (or panics, or is cut short by a crash) is retried.
///
/// Attempt `n` that fails is retried after `initial_backoff * factor^(n-1)`, capped at
/// `max_backoff`. After `max_attempts` the task is kept as dead, with its last error, until
/// [`Alarms::requeue`](crate::Alarms::requeue) or [`Alarms::cancel`](crate::Alarms::cancel).
///
/// ```
/// use std::time::Duration;
/// use lumenize_alarms::RetryPolicy;
///
/// let policy = RetryPolicy::attempts(4).backoff(Duration::from_millis(100), Duration::from_secs(1));
/// assert_eq!(policy.delay_after(1), 100);
/// assert_eq!(policy.delay_after(2), 200);
/// assert_eq!(policy.delay_after(5), 1_000); // capped
/// assert_eq!(RetryPolicy::default().max_attempts, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failure, in milliseconds.
    pub initial_backoff_ms: i64,
    /// Growth of the wait after each further failure.
    pub factor: u32,
    /// The longest wait, in milliseconds.
    pub max_backoff_ms: i64,
}

impl Default for RetryPolicy {
    /// Three attempts, waiting 1 s then 2 s (doubling, capped at 5 minutes).
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, initial_backoff_ms: 1_000, factor: 2, max_backoff_ms: 300_000 }
    }
}

impl RetryPolicy {
    /// `n` attempts in all (at least one) with the default backoff.
    #[must_use]
    pub fn attempts(n: u32) -> Self {
        RetryPolicy { max_attempts: n.max(1), ..RetryPolicy::default() }
    }

    /// One attempt: a failure makes the task dead at once.
    #[must_use]
    pub fn none() -> Self {
        RetryPolicy::attempts(1)
    }

    /// Exponential backoff (doubling) from `initial`, capped at `max`, rounded up to whole
    /// milliseconds.
    #[must_use]
    pub fn backoff(self, initial: Duration, max: Duration) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX);
        RetryPolicy { initial_backoff_ms: ms(initial), max_backoff_ms: ms(max).max(ms(initial)), ..self }
    }

    /// The wait in milliseconds after failed attempt `attempt` (1-based).
    #[must_use]
    pub fn delay_after(&self, attempt: u32) -> i64 {
        let mut delay = self.initial_backoff_ms.max(0);
        for _ in 1..attempt {
            if delay >= self.max_backoff_ms {
                break;
            }
            delay = delay.saturating_mul(i64::from(self.factor));
        }
        delay.min(self.max_backoff_ms)
    }
}

/// What a cron or interval task does when it ran late and one or more of its next ticks
/// are already in the past (the vocabulary of `tokio::time::MissedTickBehavior`).
///
/// Either way the next tick is computed from the *scheduled* time of the one that ran, never
/// from "now", so a recurring task does not drift.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
}
