//! Cron expressions (UTC), through `croner`, which never reads the clock.

use std::str::FromStr;

use chrono::{TimeZone, Utc};
use croner::Cron;

use crate::{Error, Result};

/// Parses `expr`, or says why not.
pub(crate) fn parse(expr: &str) -> Result<Cron> {
    Cron::from_str(expr.trim()).map_err(|e| Error::InvalidCron { expr: expr.to_owned(), reason: e.to_string() })
}

/// The first occurrence of `expr` strictly after `after_ms` (Unix milliseconds, UTC).
pub(crate) fn next_after(expr: &str, after_ms: i64) -> Result<i64> {
    let cron = parse(expr)?;
    let never = || Error::CronNeverFires { expr: expr.to_owned(), after_ms };
    let after = Utc.timestamp_millis_opt(after_ms).single().ok_or_else(never)?;
    let next = cron.find_next_occurrence(&after, false).map_err(|_| never())?;
    crate::when::check_range(next.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_strictly_after_and_second_aligned() {
        assert_eq!(next_after("*/5 * * * * *", 1_700_000_000_000).unwrap(), 1_700_000_005_000);
        assert_eq!(next_after("*/5 * * * * *", 1_700_000_000_123).unwrap(), 1_700_000_005_000);
    }

    #[test]
    fn bad_and_impossible_expressions_are_typed_errors() {
        assert!(matches!(parse("61 * * * *"), Err(Error::InvalidCron { .. })));
        assert!(matches!(next_after("0 0 30 2 *", 0), Err(Error::CronNeverFires { .. })));
    }
}
