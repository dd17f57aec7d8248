//! Cron expressions through `croner` (which never reads the clock), in UTC or, with the
//! `timezone` feature, in an IANA time zone.

use std::str::FromStr;

use chrono::{TimeZone, Utc};
use croner::Cron;

use crate::core::time::check_time;
use crate::error::{Error, Result};

/// Parses `expr`, or says why not.
pub(crate) fn parse(expr: &str) -> Result<Cron> {
    Cron::from_str(expr.trim()).map_err(|e| Error::InvalidCron { expr: expr.to_owned(), reason: e.to_string() })
}

/// Checks that `zone` names an IANA time zone this build knows.
pub(crate) fn check_zone(zone: &str) -> Result<()> {
    tz(zone).map(drop)
}

/// The first occurrence of `expr` strictly after `after_ms` (Unix milliseconds), read in
/// `zone` (UTC when `None`), if it is within the accepted time range.
pub(crate) fn next_after(expr: &str, zone: Option<&str>, after_ms: i64) -> Result<i64> {
    let cron = parse(expr)?;
    let never = || Error::CronNeverFires { expr: expr.to_owned(), after_ms };
    let next = match zone {
        None => next_in(&cron, &Utc, after_ms),
        #[cfg(feature = "timezone")]
        Some(zone) => next_in(&cron, &tz(zone)?, after_ms),
        #[cfg(not(feature = "timezone"))]
        Some(zone) => match tz(zone)? {},
    };
    next.and_then(|ms| check_time(ms).ok()).ok_or_else(never)
}

fn next_in<Z: TimeZone>(cron: &Cron, zone: &Z, after_ms: i64) -> Option<i64> {
    let after = zone.timestamp_millis_opt(after_ms).single()?;
    Some(cron.find_next_occurrence(&after, false).ok()?.timestamp_millis())
}

#[cfg(feature = "timezone")]
fn tz(zone: &str) -> Result<chrono_tz::Tz> {
    zone.parse().map_err(|_| Error::InvalidZone { zone: zone.to_owned(), reason: "not an IANA time zone name (such as \"Europe/Paris\")" })
}

#[cfg(not(feature = "timezone"))]
fn tz(zone: &str) -> Result<std::convert::Infallible> {
    Err(Error::InvalidZone { zone: zone.to_owned(), reason: "time zones need lumenize-alarms' `timezone` feature" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::time::MAX_TIME_MS;

    #[test]
    fn next_is_strictly_after_and_second_aligned() {
        assert_eq!(next_after("*/5 * * * * *", None, 1_700_000_000_000).unwrap(), 1_700_000_005_000);
        assert_eq!(next_after("*/5 * * * * *", None, 1_700_000_000_123).unwrap(), 1_700_000_005_000);
    }

    #[test]
    fn bad_impossible_and_out_of_range_expressions_are_typed_errors() {
        assert!(matches!(parse("61 * * * *"), Err(Error::InvalidCron { .. })));
        assert!(matches!(next_after("0 0 30 2 *", None, 0), Err(Error::CronNeverFires { .. })));
        // The next midnight after the last accepted time is out of range.
        assert!(matches!(next_after("0 0 * * *", None, MAX_TIME_MS - 1), Err(Error::CronNeverFires { .. })));
    }

    #[cfg(not(feature = "timezone"))]
    #[test]
    fn zones_need_the_feature() {
        assert!(matches!(check_zone("Europe/Paris"), Err(Error::InvalidZone { .. })));
        assert!(matches!(next_after("0 3 * * *", Some("Europe/Paris"), 0), Err(Error::InvalidZone { .. })));
    }

    /// Europe/Paris, 2025: summer time starts on 30 March (02:00 CET becomes 03:00 CEST)
    /// and ends on 26 October (03:00 CEST becomes 02:00 CET).
    #[cfg(feature = "timezone")]
    #[test]
    fn zoned_cron_follows_daylight_saving_time() {
        let paris = Some("Europe/Paris");
        let next = |expr: &str, after: i64| next_after(expr, paris, after).unwrap();
        // 02:30 every day: on the night it does not exist, 03:00 CEST (the first valid time
        // after the gap), then 02:30 CEST.
        let before_gap = 1_743_211_800_000; // 2025-03-29 02:30 CET = 01:30Z
        let in_gap = next("30 2 * * *", before_gap);
        assert_eq!(in_gap, 1_743_296_400_000, "2025-03-30 03:00 CEST = 01:00Z");
        assert_eq!(next("30 2 * * *", in_gap), 1_743_381_000_000, "2025-03-31 02:30 CEST = 00:30Z");
        // On the night 02:30 happens twice, it runs once, at the first.
        let first = next("30 2 * * *", 1_761_352_200_000); // from 2025-10-25 02:30 CEST
        assert_eq!(first, 1_761_438_600_000, "2025-10-26 02:30 CEST = 00:30Z");
        assert_eq!(next("30 2 * * *", first), 1_761_528_600_000, "then 2025-10-27 02:30 CET = 01:30Z, not 01:30Z the same night");
        // A wildcard hour runs in both repeated hours.
        let mut t = 1_761_435_900_000; // 2025-10-25T23:45Z = 01:45 CEST
        let mut ticks = Vec::new();
        for _ in 0..5 {
            t = next("*/30 * * * *", t);
            ticks.push(t);
        }
        assert_eq!(ticks, [1_761_436_800_000, 1_761_438_600_000, 1_761_440_400_000, 1_761_442_200_000, 1_761_444_000_000]);
        // UTC is what it says, and a zone this build does not know is a typed error.
        assert_eq!(next_after("30 2 * * *", None, before_gap).unwrap(), 1_743_215_400_000, "2025-03-29 02:30Z");
        assert!(matches!(check_zone("Mars/Olympus_Mons"), Err(Error::InvalidZone { .. })));
        check_zone("America/New_York").unwrap();
    }
}
