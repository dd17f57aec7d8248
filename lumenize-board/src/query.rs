//! What a listing asks for: the query string of the page and of `api/tasks`, parsed into
//! bounded values, and written back for the links of the next page.

use chrono::NaiveDate;
use lumenize_alarms::{Filter, Status};

/// Tasks per page when the query does not say.
pub(crate) const DEFAULT_PAGE: usize = 25;
/// The most tasks one page reads (a larger `limit` is clamped to it): a page reads at most
/// this many rows, whatever the number of tasks.
pub const MAX_PAGE: usize = 100;
/// The longest `kind` or `prefix` filter kept (longer ones are cut).
const MAX_TEXT: usize = 512;

/// A listing's parameters. Unknown or malformed ones are ignored (a bad time is no bound),
/// so any query string gives a bounded listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Query {
    /// `status`: pending, running, paused or dead; all when absent.
    pub(crate) status: Option<Status>,
    /// `kind`: the payload's variant name (see [`crate::view::variant`]).
    pub(crate) kind: Option<String>,
    /// `prefix`: ids that start with it.
    pub(crate) prefix: Option<String>,
    /// `from` and `before`: due times, Unix milliseconds or `YYYY-MM-DDTHH:MM[:SS]` in UTC.
    pub(crate) from: Option<i64>,
    pub(crate) before: Option<i64>,
    /// `after`: the cursor `<due_ms>.<seq>` of the last task of the previous page.
    pub(crate) after: Option<(i64, i64)>,
    /// `limit`: rows read for the page, `1 ..=` [`MAX_PAGE`] (clamped), [`DEFAULT_PAGE`]
    /// when absent.
    pub(crate) limit: usize,
}

impl Query {
    /// Parses a query string (without the `?`).
    pub(crate) fn parse(query: &str) -> Query {
        let mut q = Query { limit: DEFAULT_PAGE, ..Query::default() };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let text = || Some(crate::escape::clip(value.trim(), MAX_TEXT).0.to_owned()).filter(|s| !s.is_empty());
            match &*key {
                "status" => q.status = Status::parse(value.trim()),
                "kind" => q.kind = text(),
                "prefix" => q.prefix = text(),
                "from" => q.from = time(&value),
                "before" => q.before = time(&value),
                "after" => q.after = value.split_once('.').and_then(|(d, s)| Some((d.parse().ok()?, s.parse().ok()?))),
                "limit" => q.limit = limit(&value),
                _ => {}
            }
        }
        q
    }

    /// What the store is asked: one bounded read (`limit` rows) from the cursor on. The
    /// kind and prefix are checked on the rows read ([`Query::passes`]), so a page may show
    /// fewer than it read, never more.
    pub(crate) fn filter(&self) -> Filter {
        let mut filter = Filter::default().limit(self.limit);
        (filter.status, filter.due_from, filter.due_before, filter.after) = (self.status, self.from, self.before, self.after);
        filter
    }

    /// Whether a task read for the page passes the filters the store does not apply.
    pub(crate) fn passes(&self, id: &str, variant: Option<&str>) -> bool {
        self.prefix.as_deref().is_none_or(|p| id.starts_with(p)) && self.kind.as_deref().is_none_or(|k| variant == Some(k))
    }

    /// This query as a query string (without the `?`), with another cursor and status.
    pub(crate) fn to_query(&self, status: Option<Status>, after: Option<(i64, i64)>) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        if let Some(st) = status {
            s.append_pair("status", st.as_str());
        }
        for (key, value) in [("kind", &self.kind), ("prefix", &self.prefix)] {
            if let Some(v) = value {
                s.append_pair(key, v);
            }
        }
        for (key, value) in [("from", self.from), ("before", self.before)] {
            if let Some(v) = value {
                s.append_pair(key, &v.to_string());
            }
        }
        if let Some((due, seq)) = after {
            s.append_pair("after", &format!("{due}.{seq}"));
        }
        if self.limit != DEFAULT_PAGE {
            s.append_pair("limit", &self.limit.to_string());
        }
        s.finish()
    }
}

/// A `limit` parameter: `1 ..=` [`MAX_PAGE`] (clamped), [`DEFAULT_PAGE`] when it is not
/// a count.
pub(crate) fn limit(value: &str) -> usize {
    value.trim().parse::<u64>().map_or(DEFAULT_PAGE, |n| usize::try_from(n).unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE))
}

/// A time given as Unix milliseconds or as `YYYY-MM-DDTHH:MM[:SS]` (what a `datetime-local`
/// input sends), read in UTC.
fn time(value: &str) -> Option<i64> {
    let value = value.trim();
    // Read field by field: chrono's format strings cost the worker about 100 KB.
    let local = || {
        let (date, clock) = value.split_once('T')?;
        let numbers = |s: &str, sep: char| s.split(sep).map(|n| n.parse::<u32>().ok()).collect::<Option<Vec<u32>>>();
        let (d, c) = (numbers(date, '-')?, numbers(clock, ':')?);
        let (&[y, m, day], &[h, min, ref sec @ ..]) = (d.as_slice(), c.as_slice()) else { return None };
        let sec = match sec {
            [] => 0,
            [s] => *s,
            _ => return None,
        };
        Some(NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, day)?.and_hms_opt(h, min, sec)?.and_utc().timestamp_millis())
    };
    value.parse().ok().or_else(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_every_parameter() {
        assert_eq!(Query::parse(""), Query { limit: DEFAULT_PAGE, ..Query::default() });
        let q = Query::parse("status=dead&kind=Send&prefix=user%2F&from=1000&before=2026-12-04T10:30&after=5.7&limit=10&other=x");
        assert_eq!(q.status, Some(Status::Dead));
        assert_eq!(q.kind.as_deref(), Some("Send"));
        assert_eq!(q.prefix.as_deref(), Some("user/"));
        assert_eq!((q.from, q.before), (Some(1000), Some(1_796_380_200_000)));
        assert_eq!(q.after, Some((5, 7)));
        assert_eq!(q.limit, 10);
        assert_eq!(Query::parse("before=2026-12-04T10:30:15").before, Some(1_796_380_215_000));
    }

    #[test]
    fn pages_are_bounded_whatever_the_query() {
        for (limit, read) in [("0", 1), ("1", 1), ("100", MAX_PAGE), ("101", MAX_PAGE), ("18446744073709551615", MAX_PAGE), ("-1", DEFAULT_PAGE), ("lots", DEFAULT_PAGE)] {
            assert_eq!(Query::parse(&format!("limit={limit}")).limit, read, "{limit}");
            assert_eq!(Query::parse(&format!("limit={limit}")).filter().limit, Some(read));
        }
        let long = "x".repeat(10_000);
        assert_eq!(Query::parse(&format!("prefix={long}")).prefix.unwrap().len(), MAX_TEXT);
    }

    #[test]
    fn malformed_values_are_no_filter() {
        let q = Query::parse("status=exploded&from=yesterday&after=1&after=a.b&kind=&prefix=%20");
        assert_eq!(q, Query { limit: DEFAULT_PAGE, ..Query::default() });
        for bad in ["2026-13-04T10:30", "2026-12-04T10:30:15:01", "2026-12-04T25:00", "2026-12-04", "2026-12-04T10", "T10:30", "-5-01-01T00:00"] {
            assert_eq!(time(bad), None, "{bad}");
        }
        assert_eq!(time(" 2026-12-04T10:30:15 "), Some(1_796_380_215_000));
    }

    #[test]
    fn links_keep_the_filters_and_move_the_cursor() {
        let q = Query::parse("status=dead&kind=a%26b&prefix=%3Cx&limit=10");
        assert_eq!(q.to_query(Some(Status::Dead), Some((9, 3))), "status=dead&kind=a%26b&prefix=%3Cx&after=9.3&limit=10");
        assert_eq!(Query::parse(&q.to_query(q.status, Some((9, 3)))), Query { after: Some((9, 3)), ..q.clone() });
        assert_eq!(q.to_query(None, None), "kind=a%26b&prefix=%3Cx&limit=10");
    }

    #[test]
    fn kind_and_prefix_are_checked_on_rows_read() {
        let q = Query::parse("kind=Send&prefix=user-");
        assert!(q.passes("user-1", Some("Send")));
        assert!(!q.passes("user-1", Some("Sendx")));
        assert!(!q.passes("admin-1", Some("Send")));
        assert!(!q.passes("user-1", None));
    }
}
