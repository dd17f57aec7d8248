//! Reading one task's row: into the [`Scheduled`] it stores, or, for a row that does not
//! decode (written by an older release, by hand, or by a bug), into the dead task it is
//! shown as while it is quarantined, with what is wrong with it, column by column.
//!
//! A row arrives as the JSON array [`TASK`](super::store) writes, one value per column, so a
//! float where an integer belongs (SQLite's JSON turns integers above 2^53 into floats) is
//! seen as a float, never silently truncated.

use serde::Deserialize;
use serde_json::Value as Json;

use crate::core::{clip, MissedTicks, RetryPolicy, Schedule, Scheduled, Status, MAX_TIME_MS};
use crate::error::Error;

/// The columns of a task's row, in the order of the JSON array a read returns.
pub(crate) const COLUMNS: [&str; 18] = [
    "seq",
    "id",
    "kind",
    "cron",
    "zone",
    "every_ms",
    "due_ms",
    "tick_ms",
    "payload",
    "status",
    "attempts",
    "max_attempts",
    "backoff_ms",
    "backoff_factor",
    "max_backoff_ms",
    "missed",
    "last_error",
    "created_ms",
];

/// What a row reads as.
#[derive(Debug)]
pub(crate) enum Read {
    /// The task it stores.
    Task(Scheduled),
    /// A row that does not decode: `task` is what it is shown as (dead, read leniently, its
    /// last error saying why), `live` whether its stored status is not `dead` yet (so it
    /// must be marked dead to leave the queue).
    Unreadable { task: Scheduled, live: bool, reason: String },
}

impl Read {
    /// The task as shown: the stored one, or the quarantined view.
    pub(crate) fn into_task(self) -> Scheduled {
        match self {
            Read::Task(task) | Read::Unreadable { task, .. } => task,
        }
    }
}

/// Reads a row from the JSON array of its columns (as text), read on its own with its `seq`
/// and `id`, which stand in if the array does not parse.
pub(crate) fn read_json(json: &str, seq: i64, id: String) -> Read {
    match serde_json::from_str::<Vec<Json>>(json) {
        Ok(values) => read(values),
        Err(e) => {
            let (task, _) = Row { values: vec![seq.into(), id.into()], problems: Vec::new() }.task();
            unreadable(task, None, &[format!("its columns do not parse as JSON ({e}): a float out of range (SQLite's Inf) or a broken value")])
        }
    }
}

/// Reads a row from its columns' values: the task, if every column holds what it should;
/// else the quarantined view of it.
pub(crate) fn read(values: Vec<Json>) -> Read {
    let mut row = Row { values, problems: Vec::new() };
    let (task, stored_status) = row.task();
    judged(task, stored_status, &row.problems)
}

/// The task, if its row has no problems; else its quarantined view.
fn judged(task: Scheduled, stored_status: Option<String>, problems: &[String]) -> Read {
    if problems.is_empty() {
        Read::Task(task)
    } else {
        unreadable(task, stored_status, problems)
    }
}

/// The quarantined view of a row read leniently as `task`, whose `problems` are known: dead,
/// every time clamped into the range, the last error saying why it is unreadable (and what
/// the stored one was).
fn unreadable(task: Scheduled, stored_status: Option<String>, problems: &[String]) -> Read {
    let reason = problems.join("; ");
    let error = Error::Unreadable { id: task.id.clone(), reason: reason.clone() }.to_string();
    let last_error = match &task.last_error {
        // Written by the quarantine (see `SqlStore`), whose message this is.
        Some(last) if last.starts_with(&error) => last.clone(),
        Some(last) => format!("{error} (its last error: {last})"),
        None => error,
    };
    let time = |ms: i64| ms.clamp(0, MAX_TIME_MS);
    let schedule = match task.schedule {
        Schedule::Every { interval_ms } => Schedule::Every { interval_ms: interval_ms.clamp(1, MAX_TIME_MS) },
        other => other,
    };
    let task = Scheduled {
        status: Status::Dead,
        due_ms: time(task.due_ms),
        tick_ms: time(task.tick_ms),
        created_ms: time(task.created_ms),
        last_error: Some(clip(last_error)),
        schedule,
        ..task
    };
    Read::Unreadable { task, live: stored_status.as_deref() != Some(Status::Dead.as_str()), reason }
}

/// A row's values, read column by column: each read returns a value of the right type,
/// noting a problem when the stored one is not (the lenient value then stands in for it).
struct Row {
    values: Vec<Json>,
    problems: Vec<String>,
}

impl Row {
    fn get(&self, i: usize) -> &Json {
        self.values.get(i).unwrap_or(&Json::Null)
    }

    /// Column `i` holds `value` (as JSON), which is not what it should.
    fn problem(&mut self, i: usize, value: &Json, what: &str) {
        problem(&mut self.problems, i, value, what);
    }

    /// An integer; a float (or anything else) is a problem, read as its saturated integer
    /// part (or 0).
    fn int(&mut self, i: usize) -> i64 {
        let value = self.get(i).clone();
        if let Some(v) = value.as_i64() {
            return v;
        }
        #[allow(clippy::cast_possible_truncation)] // saturating: the lenient reading of a float
        let lenient = value.as_f64().map_or(0, |f| f as i64);
        self.problem(i, &value, "is not an integer");
        lenient
    }

    /// An integer, or NULL.
    fn opt_int(&mut self, i: usize) -> Option<i64> {
        if self.get(i).is_null() {
            return None;
        }
        Some(self.int(i))
    }

    /// An integer in `0 ..= u32::MAX`.
    fn count(&mut self, i: usize) -> u32 {
        let v = self.int(i);
        u32::try_from(v).unwrap_or_else(|_| {
            self.problem(i, &v.into(), "is out of 0 ..= 4294967295");
            u32::try_from(v.max(0)).unwrap_or(u32::MAX)
        })
    }

    /// An integer for a `u32` field of the retry policy, saturated (out of range is not a
    /// problem: the policy is normalized on every read).
    fn saturated(&mut self, i: usize) -> u32 {
        saturate(self.int(i))
    }

    /// Text (taken out of the row).
    fn text(&mut self, i: usize) -> String {
        match self.values.get_mut(i).map(Json::take) {
            Some(Json::String(s)) => s,
            other => {
                let other = other.unwrap_or(Json::Null);
                self.problem(i, &other, "is not text");
                if other.is_null() {
                    String::new()
                } else {
                    other.to_string()
                }
            }
        }
    }

    /// The text of a name (kind, status, missed-tick policy), if it is text (else a problem).
    fn name(&mut self, i: usize) -> Option<String> {
        self.get(i).is_string().then(|| self.text(i)).or_else(|| {
            self.text(i);
            None
        })
    }

    /// Text, or NULL.
    fn opt_text(&mut self, i: usize) -> Option<String> {
        if self.get(i).is_null() {
            return None;
        }
        Some(self.text(i))
    }

    /// The columns, each read as the type it should have, every problem noted.
    fn columns(&mut self) -> Columns {
        Columns {
            seq: self.int(0),
            id: self.text(1),
            kind: self.name(2),
            cron: self.opt_text(3),
            zone: self.opt_text(4),
            every_ms: self.opt_int(5),
            due_ms: self.int(6),
            tick_ms: self.int(7),
            payload: self.text(8),
            status: self.name(9),
            attempts: self.count(10),
            max_attempts: self.saturated(11),
            backoff_ms: self.int(12),
            backoff_factor: self.saturated(13),
            max_backoff_ms: self.int(14),
            missed: self.name(15),
            last_error: self.opt_text(16),
            created_ms: self.int(17),
        }
    }

    /// The task, as far as the row holds one, every problem noted; and the stored status.
    fn task(&mut self) -> (Scheduled, Option<String>) {
        let columns = self.columns();
        columns.task(&mut self.problems)
    }
}

/// A row's columns, each of the type it should have: read leniently from a row's values
/// ([`Row`]), or, for a batch whose every value has the right JSON type, parsed straight
/// from the JSON ([`Typed`]). A name (kind, status, missed-tick policy) is `None` when it
/// is not text.
struct Columns {
    seq: i64,
    id: String,
    kind: Option<String>,
    cron: Option<String>,
    zone: Option<String>,
    every_ms: Option<i64>,
    due_ms: i64,
    tick_ms: i64,
    payload: String,
    status: Option<String>,
    attempts: u32,
    max_attempts: u32,
    backoff_ms: i64,
    backoff_factor: u32,
    max_backoff_ms: i64,
    missed: Option<String>,
    last_error: Option<String>,
    created_ms: i64,
}

/// Notes that column `i` holds `value`, which is not what it should.
fn problem(problems: &mut Vec<String>, i: usize, value: &Json, what: &str) {
    let value: String = value.to_string().chars().take(64).collect();
    problems.push(format!("{} {value} {what}", COLUMNS[i]));
}

impl Columns {
    /// The task the columns hold, every problem of their meaning noted (a kind without its
    /// schedule, a status or missed-tick policy that is none); and the stored status.
    fn task(self, problems: &mut Vec<String>) -> (Scheduled, Option<String>) {
        let schedule = match (self.kind.as_deref(), self.cron, self.every_ms) {
            (None, _, _) => Schedule::Once, // not text: noted
            (Some("once"), _, _) => Schedule::Once,
            (Some("cron"), Some(expr), _) => Schedule::Cron { expr, zone: self.zone },
            (Some("every"), _, Some(interval_ms)) if interval_ms > 0 => Schedule::Every { interval_ms },
            (Some("every"), _, Some(interval_ms)) => {
                problem(problems, 5, &interval_ms.into(), "is not a positive interval");
                Schedule::Every { interval_ms: interval_ms.max(1) }
            }
            (Some(kind), _, _) => {
                problem(problems, 2, &kind.into(), "has no schedule: a kind of once, cron (with a cron expression) or every (with every_ms)");
                Schedule::Once
            }
        };
        let status = match self.status.as_deref() {
            None => Status::Dead,
            Some(name) => Status::parse(name).unwrap_or_else(|| {
                problem(problems, 9, &name.into(), "is not pending, running or dead");
                Status::Dead
            }),
        };
        // Out-of-range policies (an older release accepted any) are normalized, not quarantined.
        let retry = RetryPolicy {
            max_attempts: self.max_attempts,
            initial_backoff_ms: self.backoff_ms,
            factor: self.backoff_factor,
            max_backoff_ms: self.max_backoff_ms,
        }
        .normalized();
        let missed = match self.missed.as_deref() {
            None | Some("skip") => MissedTicks::Skip,
            Some("burst") => MissedTicks::Burst,
            Some(other) => {
                problem(problems, 15, &other.into(), "is not skip or burst");
                MissedTicks::Skip
            }
        };
        let task = Scheduled {
            id: self.id,
            seq: self.seq,
            schedule,
            due_ms: self.due_ms,
            tick_ms: self.tick_ms,
            payload: self.payload,
            status,
            attempts: self.attempts,
            retry,
            missed,
            last_error: self.last_error,
            created_ms: self.created_ms,
        };
        (task, self.status)
    }
}

/// A row whose every value has the JSON type its column should have, in the order of
/// [`COLUMNS`]. A batch of such rows parses straight into these, with no tree of values per
/// row; a batch with any other row does not, and is read value by value ([`read`]), which
/// says what is wrong.
#[derive(Deserialize)]
pub(crate) struct Typed(
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    i64,
    String,
    String,
    u32,
    i64,
    i64,
    i64,
    i64,
    String,
    Option<String>,
    i64,
);

/// Reads a row parsed as [`Typed`]: what [`read`] makes of the same row's values.
pub(crate) fn read_typed(row: Typed) -> Read {
    let columns = Columns {
        seq: row.0,
        id: row.1,
        kind: Some(row.2),
        cron: row.3,
        zone: row.4,
        every_ms: row.5,
        due_ms: row.6,
        tick_ms: row.7,
        payload: row.8,
        status: Some(row.9),
        attempts: row.10,
        max_attempts: saturate(row.11),
        backoff_ms: row.12,
        backoff_factor: saturate(row.13),
        max_backoff_ms: row.14,
        missed: Some(row.15),
        last_error: row.16,
        created_ms: row.17,
    };
    let mut problems = Vec::new();
    let (task, stored_status) = columns.task(&mut problems);
    judged(task, stored_status, &problems)
}

/// A `u32` of the retry policy from its stored integer, saturated.
fn saturate(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Vec<Json> {
        serde_json::json!([4, "t", "every", null, null, 250, 100, 100, "1", "pending", 0, 3, 1000, 2, 300000, "skip", null, 7])
            .as_array()
            .unwrap()
            .clone()
    }

    #[test]
    fn a_good_row_reads_as_its_task() {
        let Read::Task(t) = read(good()) else { panic!("unreadable") };
        assert_eq!((t.seq, t.id.as_str(), t.schedule, t.due_ms, t.status), (4, "t", Schedule::Every { interval_ms: 250 }, 100, Status::Pending));
        assert_eq!(t.retry, RetryPolicy::default());
    }

    #[test]
    fn out_of_range_policies_are_normalized_not_quarantined() {
        let mut row = good();
        row[11] = 5_000.into();
        row[13] = (-1).into();
        row[14] = 10_000_000_000_000_i64.into();
        let Read::Task(t) = read(row) else { panic!("unreadable") };
        assert_eq!(t.retry, RetryPolicy { max_attempts: 1_000, initial_backoff_ms: 1_000, factor: 1, max_backoff_ms: MAX_TIME_MS });
    }

    #[test]
    fn a_bad_row_is_dead_with_every_problem_named_and_its_numbers_in_range() {
        let mut row = good();
        row[14] = serde_json::json!(9.223_372_036_854_776e18);
        row[6] = serde_json::json!(1.0e19);
        row[9] = "sleeping".into();
        row[10] = (-2).into();
        row[15] = Json::Null;
        row[16] = "boom".into();
        let Read::Unreadable { task, live, reason } = read(row) else { panic!("decoded") };
        assert!(live);
        assert_eq!((task.seq, task.id.as_str(), task.status, task.due_ms, task.attempts), (4, "t", Status::Dead, MAX_TIME_MS, 0));
        for part in ["max_backoff_ms 9.223372036854776e+18 is not an integer", "due_ms", "status \"sleeping\"", "attempts -2", "missed null is not text"] {
            assert!(reason.contains(part), "{part:?} in {reason}");
        }
        let error = task.last_error.unwrap();
        assert!(error.starts_with("the stored row of task \"t\" is unreadable: "), "{error}");
        assert!(error.ends_with("(its last error: boom)"), "{error}");
    }

    #[test]
    fn missing_schedules_and_non_arrays_are_unreadable() {
        let mut row = good();
        row[5] = Json::Null;
        assert!(matches!(read(row), Read::Unreadable { reason, .. } if reason.contains("kind \"every\" has no schedule")));
        let mut row = good();
        row[9] = "dead".into();
        row[3] = 5.into();
        row[2] = "cron".into();
        let Read::Unreadable { live, task, .. } = read(row) else { panic!("decoded") };
        assert!(!live, "already dead: nothing to mark");
        assert_eq!(task.schedule, Schedule::Cron { expr: "5".into(), zone: None });
        let Read::Unreadable { task, reason, .. } = read_json("[1, Inf]", 7, "x".into()) else { panic!("decoded") };
        assert_eq!((task.seq, task.id.as_str()), (7, "x"));
        assert!(reason.contains("do not parse as JSON"), "{reason}");
    }

    /// A value a row may hold in place of what a release writes.
    #[cfg(not(target_arch = "wasm32"))] // proptest is a native dev-dependency
    fn other() -> impl proptest::strategy::Strategy<Value = Json> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Json::Null),
            Just(serde_json::json!(1.5)),
            Just(serde_json::json!(-3)),
            Just(serde_json::json!(5_000_000_000_i64)),
            Just(serde_json::json!("sleeping")),
            Just(serde_json::json!("cron")),
            Just(serde_json::json!("every")),
            Just(serde_json::json!("burst")),
            Just(serde_json::json!("*/5 * * * *")),
            Just(serde_json::json!(0)),
        ]
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// The typed parse of a row, where it succeeds, reads it as the lenient reader does:
        /// the same task, or the same quarantined view with the same reason. Each case is a
        /// release's row with up to three columns replaced.
        #[test]
        fn typed_rows_read_as_their_values_do(base in 0..3_usize, changes in proptest::collection::vec((0..COLUMNS.len(), other()), 0..=3)) {
            let mut row = good();
            // An interval task, a cron task in a zone, a one-off task that failed once.
            match base {
                0 => {}
                1 => (row[2], row[3], row[4], row[5]) = ("cron".into(), "0 9 * * *".into(), "Europe/Paris".into(), Json::Null),
                _ => (row[2], row[5], row[10], row[16]) = ("once".into(), Json::Null, 1.into(), "boom".into()),
            }
            for (i, value) in changes {
                row[i] = value;
            }
            if let Ok(typed) = serde_json::from_value::<Typed>(Json::Array(row.clone())) {
                proptest::prop_assert_eq!(format!("{:?}", read_typed(typed)), format!("{:?}", read(row)));
            }
        }
    }

    #[test]
    fn a_release_s_rows_parse_typed_and_a_wrong_type_does_not() {
        let rows = Json::Array(vec![Json::Array(good()), Json::Array(good())]);
        let typed: Vec<Typed> = serde_json::from_value(rows).expect("typed");
        assert!(matches!(read_typed(typed.into_iter().next().unwrap()), Read::Task(_)));
        let mut bad = good();
        bad[6] = serde_json::json!(1.0e19);
        assert!(serde_json::from_value::<Vec<Typed>>(Json::Array(vec![Json::Array(good()), Json::Array(bad)])).is_err());
        // A value of the right type but no meaning parses typed, and is quarantined as the
        // lenient reader quarantines it.
        let mut meaningless = good();
        meaningless[9] = "sleeping".into();
        let typed: Typed = serde_json::from_value(Json::Array(meaningless.clone())).expect("typed");
        assert!(matches!(read_typed(typed), Read::Unreadable { reason, .. } if reason.contains("status \"sleeping\"")));
    }
}
