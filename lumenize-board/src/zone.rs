//! Times in a cron task's own time zone: where its next runs fall on the clock it was
//! written for, with the offset, so that a daylight-saving change shows (feature `timezone`).

/// `ms` on the wall clock of `zone`, with the zone's abbreviation and UTC offset:
/// `2026-03-29 03:00:00 CEST +02:00`. `None` when the board is built without the `timezone`
/// feature, for a name that is not an IANA zone, or a time out of chrono's range.
#[cfg(feature = "timezone")]
pub(crate) fn local(ms: i64, zone: &str) -> Option<String> {
    use chrono::{DateTime, Datelike, Offset, Timelike};
    use chrono_tz::OffsetName;
    let tz: chrono_tz::Tz = zone.parse().ok()?;
    let t = DateTime::from_timestamp_millis(ms)?.with_timezone(&tz);
    let offset = t.offset().fix().local_minus_utc();
    let (sign, offset) = if offset < 0 { ('-', -offset) } else { ('+', offset) };
    let abbreviation = t.offset().abbreviation().map(|a| format!(" {a}")).unwrap_or_default();
    // Fields rather than `format`: chrono's format strings cost the worker about 100 KB.
    Some(format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{abbreviation} {sign}{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        offset / 3_600,
        offset % 3_600 / 60
    ))
}

/// Without the `timezone` feature the board shows UTC only.
#[cfg(not(feature = "timezone"))]
pub(crate) fn local(_ms: i64, _zone: &str) -> Option<String> {
    None
}

#[cfg(all(test, feature = "timezone"))]
mod tests {
    use super::local;

    #[test]
    fn a_daylight_saving_change_shows_in_the_offset() {
        // Paris moves from CET (+01:00) to CEST (+02:00) at 01:00 UTC on 2026-03-29.
        assert_eq!(local(1_774_702_800_000, "Europe/Paris").as_deref(), Some("2026-03-28 14:00:00 CET +01:00"));
        assert_eq!(local(1_774_789_200_000, "Europe/Paris").as_deref(), Some("2026-03-29 15:00:00 CEST +02:00"));
        assert_eq!(local(1_774_789_200_000, "America/St_Johns").as_deref(), Some("2026-03-29 10:30:00 NDT -02:30"));
        assert_eq!(local(0, "UTC").as_deref(), Some("1970-01-01 00:00:00 UTC +00:00"));
        assert_eq!(local(0, "Not/AZone"), None);
        assert_eq!(local(i64::MAX, "Europe/Paris"), None);
    }
}
