//! `When`: the four ways to say when a task runs, and `Schedule`, what is stored of it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::{cron, MAX_TIME_MS};
use crate::{Error, Result};

/// When a task runs: after a delay, at an absolute time, on a cron expression (UTC), or
/// every fixed interval.
///
/// Times have millisecond precision and a task never runs before its time: a delay with a
/// sub-millisecond part is rounded up.
///
/// ```
/// use std::time::Duration;
/// use lumenize_alarms::When;
///
/// let soon = When::after(Duration::from_millis(1500));
/// let new_year = When::at_unix_ms(1_798_761_600_000);
/// let nightly = When::cron("0 3 * * *")?;          // 03:00 UTC every day
/// let heartbeat = When::every(Duration::from_secs(30))?;
/// assert!(When::cron("not cron").is_err());
/// # let _ = (soon, new_year, nightly, heartbeat);
/// # Ok::<(), lumenize_alarms::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When(Spec);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Spec {
    After(Duration),
    At(i64),
    Cron(String),
    Every(Duration),
}

impl When {
    /// Once, `delay` from now. `Duration::ZERO` means as soon as possible: the native alarm
    /// is armed for it at once.
    #[must_use]
    pub fn after(delay: Duration) -> Self {
        When(Spec::After(delay))
    }

    /// Once, at `ms` milliseconds since the Unix epoch (UTC). A time in the past runs as soon
    /// as possible. Out-of-range times are refused when scheduled ([`Error::TimeOutOfRange`]).
    #[must_use]
    pub fn at_unix_ms(ms: i64) -> Self {
        When(Spec::At(ms))
    }

    /// On every occurrence of a cron expression, evaluated in UTC. Five fields
    /// (`minute hour day-of-month month day-of-week`) or six with leading seconds; `L`, `W`
    /// and `#` are supported.
    ///
    /// # Errors
    /// [`Error::InvalidCron`] when the expression does not parse.
    pub fn cron(expr: &str) -> Result<Self> {
        cron::parse(expr)?;
        Ok(When(Spec::Cron(expr.trim().to_owned())))
    }

    /// Every `interval`, first one `interval` from now. Ticks advance from their scheduled
    /// time, not from when they ran, so they do not drift.
    ///
    /// # Errors
    /// [`Error::ZeroInterval`] for an interval under one millisecond.
    pub fn every(interval: Duration) -> Result<Self> {
        if interval < Duration::from_millis(1) {
            return Err(Error::ZeroInterval);
        }
        Ok(When(Spec::Every(interval)))
    }

    /// The schedule stored with the task, and its first due time given the current time.
    pub(crate) fn resolve(&self, now_ms: i64) -> Result<(Schedule, i64)> {
        match &self.0 {
            Spec::After(d) => Ok((Schedule::Once, add_ms(now_ms, d)?)),
            Spec::At(ms) => Ok((Schedule::Once, check_range(*ms)?)),
            Spec::Cron(expr) => Ok((Schedule::Cron(expr.clone()), cron::next_after(expr, now_ms)?)),
            Spec::Every(d) => {
                let interval_ms = ceil_ms(d)?;
                Ok((Schedule::Every { interval_ms }, add_ms(now_ms, d)?))
            }
        }
    }
}

/// What is stored of a [`When`]: whether the task runs once or recurs, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Runs once, then is removed.
    Once,
    /// Recurs on a cron expression (UTC).
    Cron(String),
    /// Recurs every `interval_ms` milliseconds.
    Every {
        /// The interval in milliseconds (at least 1).
        interval_ms: i64,
    },
}

impl Schedule {
    /// The kind, as used by [`Filter`](crate::Filter) and stored in the `kind` column.
    #[must_use]
    pub fn kind(&self) -> Kind {
        match self {
            Schedule::Once => Kind::Once,
            Schedule::Cron(_) => Kind::Cron,
            Schedule::Every { .. } => Kind::Every,
        }
    }
}

/// The kind of a [`Schedule`], for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A one-shot task (delay or absolute time).
    Once,
    /// A cron task.
    Cron,
    /// A fixed-interval task.
    Every,
}

impl Kind {
    /// The name stored in the `kind` column.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Once => "once",
            Kind::Cron => "cron",
            Kind::Every => "every",
        }
    }
}

fn ceil_ms(d: &Duration) -> Result<i64> {
    let ms = d.as_nanos().div_ceil(1_000_000);
    i64::try_from(ms).map_err(|_| Error::TimeOutOfRange { ms: i64::MAX })
}

fn add_ms(now_ms: i64, d: &Duration) -> Result<i64> {
    let sum = now_ms.checked_add(ceil_ms(d)?).ok_or(Error::TimeOutOfRange { ms: i64::MAX })?;
    check_range(sum)
}

pub(crate) fn check_range(ms: i64) -> Result<i64> {
    if (0..=MAX_TIME_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(Error::TimeOutOfRange { ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_to_the_millisecond() {
        let (s, due) = When::after(Duration::from_micros(1_001)).resolve(1_000).unwrap();
        assert_eq!((s, due), (Schedule::Once, 1_002));
        assert_eq!(When::after(Duration::ZERO).resolve(7).unwrap().1, 7);
    }

    #[test]
    fn out_of_range_times_are_refused() {
        assert!(matches!(When::at_unix_ms(-1).resolve(0), Err(Error::TimeOutOfRange { ms: -1 })));
        assert!(When::at_unix_ms(MAX_TIME_MS + 1).resolve(0).is_err());
        assert!(When::after(Duration::from_secs(u64::MAX)).resolve(0).is_err());
    }

    #[test]
    fn intervals_start_one_interval_from_now() {
        let when = When::every(Duration::from_millis(250)).unwrap();
        assert_eq!(when.resolve(1_000).unwrap(), (Schedule::Every { interval_ms: 250 }, 1_250));
        assert!(matches!(When::every(Duration::from_micros(999)), Err(Error::ZeroInterval)));
    }

    #[test]
    fn cron_first_run_is_the_next_occurrence() {
        // 2023-11-14T22:13:20.123Z; next 03:00 UTC is 2023-11-15T03:00:00Z.
        let (s, due) = When::cron("0 3 * * *").unwrap().resolve(1_700_000_000_123).unwrap();
        assert_eq!(s, Schedule::Cron("0 3 * * *".into()));
        assert_eq!(due, 1_700_017_200_000);
    }
}
