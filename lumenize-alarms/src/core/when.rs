//! `When`: the four ways to say when a task runs, and `Schedule`, what is stored of it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::cron;
use crate::core::limits::{check_size, MAX_CRON_BYTES, MAX_ZONE_BYTES};
use crate::core::time::{ceil_ms, check_time, later, MAX_TIME_MS};
use crate::error::{Error, Result};

/// When a task runs: after a delay, at an absolute time, on a cron expression (UTC, or a
/// time zone with the `timezone` feature), or every fixed interval.
///
/// Times have millisecond precision and a task never runs before its time: a delay with a
/// sub-millisecond part is rounded up. Every time must be within what the runtime can arm
/// (`0 ..=` [`MAX_TIME_MS`], 2262-04-11): a time beyond it is refused with
/// [`Error::TimeOutOfRange`] before anything is stored. The ranges, each checked before
/// anything is written:
///
/// | parameter | accepted |
/// | --- | --- |
/// | [`after`](Self::after)`(delay)` | any `Duration` such that now + delay `<=` [`MAX_TIME_MS`] |
/// | [`at_unix_ms`](Self::at_unix_ms)`(ms)` | `0 ..=` [`MAX_TIME_MS`] |
/// | [`every`](Self::every)`(interval)` | `1 ms ..=` [`MAX_TIME_MS`] ms, and its first tick (now + interval) in range |
/// | [`cron`](Self::cron)`(expr)` | up to [`MAX_CRON_BYTES`]; each occurrence in range (else the task is dead with the reason) |
/// | [`cron_in`](Self::cron_in)`(expr, zone)` | as `cron`; `zone` up to [`MAX_ZONE_BYTES`] |
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
    Cron { expr: String, zone: Option<String> },
    Every(Duration),
}

impl When {
    /// Once, `delay` from now. `Duration::ZERO` means as soon as possible: the native alarm
    /// is armed for it at once. Any `Duration` is accepted here; when scheduled, now + delay
    /// must be at most [`MAX_TIME_MS`], else [`Error::TimeOutOfRange`] (`Duration::MAX`
    /// included) and nothing is written.
    ///
    /// ```
    /// # use std::{future::Future, time::Duration};
    /// # use lumenize_alarms::core::{MemoryStore, Scheduler, SimulatedAlarm};
    /// # use lumenize_alarms::{Error, Options, When};
    /// # let (scheduler, alarm) = (Scheduler::new(MemoryStore::default()), SimulatedAlarm::default());
    /// # let schedule = |when: When| {
    /// #     let opts = Options::id("a");
    /// #     let mut f = std::pin::pin!(scheduler.schedule(&alarm, 1_000, &when, "0".into(), &opts, || unreachable!()));
    /// #     match f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
    /// #         std::task::Poll::Ready(out) => out,
    /// #         std::task::Poll::Pending => unreachable!(),
    /// #     }
    /// # };
    /// assert!(matches!(schedule(When::after(Duration::MAX)), Err(Error::TimeOutOfRange { .. })));
    /// assert!(schedule(When::after(Duration::from_secs(60))).is_ok());
    /// ```
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
    /// and `#` are supported. The expression is stored: at most [`MAX_CRON_BYTES`].
    ///
    /// ```
    /// use lumenize_alarms::{core::MAX_CRON_BYTES, Error, When};
    /// let long = format!("0 3 * * *{}", " ".repeat(MAX_CRON_BYTES));
    /// assert!(matches!(When::cron(&long), Err(Error::TooLarge { what: "cron expression", .. })));
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidCron`] when the expression does not parse; [`Error::TooLarge`] over
    /// [`MAX_CRON_BYTES`].
    pub fn cron(expr: &str) -> Result<Self> {
        check_size("cron expression", expr.len(), MAX_CRON_BYTES)?;
        cron::parse(expr)?;
        Ok(When(Spec::Cron { expr: expr.trim().to_owned(), zone: None }))
    }

    /// On every occurrence of a cron expression read in the IANA time zone `zone` (such as
    /// `"Europe/Paris"`), daylight saving time included. Needs the `timezone` feature. The
    /// zone is stored: at most [`MAX_ZONE_BYTES`] (the expression: [`MAX_CRON_BYTES`]).
    ///
    /// Around a change of the clocks (the rules of `croner`): a time that the change to
    /// summer time skips (02:30 on a night that jumps from 02:00 to 03:00) runs at the first
    /// valid time after the gap (03:00); a time that the change back to winter time repeats
    /// (02:30 on a night that goes from 03:00 back to 02:00) runs once, at its first
    /// occurrence. Expressions with a wildcard or step in the hour field run in both repeated
    /// hours.
    ///
    /// ```
    /// # #[cfg(feature = "timezone")] {
    /// use lumenize_alarms::When;
    /// let breakfast = When::cron_in("0 8 * * *", "Europe/Paris")?;
    /// assert!(When::cron_in("0 8 * * *", "Mars/Olympus_Mons").is_err());
    /// # let _ = breakfast;
    /// # }
    /// # Ok::<(), lumenize_alarms::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidCron`], and [`Error::InvalidZone`] for a zone this build does not know
    /// (every zone, without the `timezone` feature); [`Error::TooLarge`] for an expression or
    /// a zone over its limit.
    pub fn cron_in(expr: &str, zone: &str) -> Result<Self> {
        check_size("cron expression", expr.len(), MAX_CRON_BYTES)?;
        check_size("time zone", zone.len(), MAX_ZONE_BYTES)?;
        cron::parse(expr)?;
        cron::check_zone(zone)?;
        Ok(When(Spec::Cron { expr: expr.trim().to_owned(), zone: Some(zone.to_owned()) }))
    }

    /// Every `interval`, first one `interval` from now. Ticks advance from their scheduled
    /// time, not from when they ran, so they do not drift. The interval is `1 ms ..=`
    /// [`MAX_TIME_MS`] ms (rounded up to whole milliseconds), and its first tick must be in
    /// range when scheduled ([`Error::TimeOutOfRange`]); a tick that would leave the range
    /// later makes the task dead with the reason.
    ///
    /// ```
    /// use std::time::Duration;
    /// use lumenize_alarms::{Error, When};
    /// assert!(matches!(When::every(Duration::ZERO), Err(Error::ZeroInterval)));
    /// assert!(matches!(When::every(Duration::MAX), Err(Error::TimeOutOfRange { .. })));
    /// assert!(When::every(Duration::from_micros(1_500)).is_ok()); // every 2 ms
    /// ```
    ///
    /// # Errors
    /// [`Error::ZeroInterval`] for an interval under one millisecond,
    /// [`Error::TimeOutOfRange`] for one over [`MAX_TIME_MS`] milliseconds.
    pub fn every(interval: Duration) -> Result<Self> {
        if interval < Duration::from_millis(1) {
            return Err(Error::ZeroInterval);
        }
        let ms = ceil_ms(interval);
        if ms > MAX_TIME_MS {
            return Err(Error::TimeOutOfRange { ms });
        }
        Ok(When(Spec::Every(interval)))
    }

    /// The schedule stored with the task, and its first due time given the current time.
    pub(crate) fn resolve(&self, now_ms: i64) -> Result<(Schedule, i64)> {
        match &self.0 {
            Spec::After(d) => Ok((Schedule::Once, later(now_ms, ceil_ms(*d))?)),
            Spec::At(ms) => Ok((Schedule::Once, check_time(*ms)?)),
            Spec::Cron { expr, zone } => {
                let first = cron::next_after(expr, zone.as_deref(), now_ms)?;
                Ok((Schedule::Cron { expr: expr.clone(), zone: zone.clone() }, first))
            }
            Spec::Every(d) => {
                let interval_ms = ceil_ms(*d);
                Ok((Schedule::Every { interval_ms }, later(now_ms, interval_ms)?))
            }
        }
    }
}

/// What is stored of a [`When`]: whether the task runs once or recurs, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Schedule {
    /// Runs once, then is removed.
    Once,
    /// Recurs on a cron expression.
    Cron {
        /// The expression.
        expr: String,
        /// The IANA time zone it is read in; `None` for UTC.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
    },
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
            Schedule::Cron { .. } => Kind::Cron,
            Schedule::Every { .. } => Kind::Every,
        }
    }
}

/// The kind of a [`Schedule`], for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
        // About 300 years: past what the runtime can arm.
        assert!(matches!(When::every(Duration::from_secs(300 * 365 * 86_400)), Err(Error::TimeOutOfRange { .. })));
        // About 250 years: a valid interval, whose first tick is past what the runtime can arm.
        let centuries = When::every(Duration::from_secs(250 * 365 * 86_400)).unwrap();
        assert!(matches!(centuries.resolve(1_700_000_000_000), Err(Error::TimeOutOfRange { .. })));
    }

    #[test]
    fn stored_strings_and_intervals_have_limits() {
        let long = "*".repeat(MAX_CRON_BYTES + 1);
        assert!(matches!(When::cron(&long), Err(Error::TooLarge { what: "cron expression", .. })));
        assert!(matches!(When::cron_in(&long, "UTC"), Err(Error::TooLarge { what: "cron expression", .. })));
        let zone = "Z".repeat(MAX_ZONE_BYTES + 1);
        assert!(matches!(When::cron_in("0 3 * * *", &zone), Err(Error::TooLarge { what: "time zone", .. })));
        let max = Duration::from_millis(u64::try_from(MAX_TIME_MS).unwrap());
        assert_eq!(When::every(max).unwrap().resolve(0).unwrap(), (Schedule::Every { interval_ms: MAX_TIME_MS }, MAX_TIME_MS));
        assert!(matches!(When::every(max + Duration::from_nanos(1)), Err(Error::TimeOutOfRange { ms }) if ms == MAX_TIME_MS + 1));
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
        assert_eq!(s, Schedule::Cron { expr: "0 3 * * *".into(), zone: None });
        assert_eq!(due, 1_700_017_200_000);
    }
}
