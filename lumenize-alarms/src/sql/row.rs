//! Reading one task's row: into the [`Scheduled`] it stores, or, for a row that does not
//! decode (written by an older release, by hand, or by a bug), into the dead task it is
//! shown as while it is quarantined, with what is wrong with it, column by column.
//!
//! A row arrives as the JSON array [`TASK`](super::store) writes, one value per column, so a
//! float where an integer belongs (SQLite's JSON turns integers above 2^53 into floats) is
//! seen as a float, never silently truncated.

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
    if row.problems.is_empty() {
        Read::Task(task)
    } else {
        unreadable(task, stored_status, &row.problems)
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
        let value: String = value.to_string().chars().take(64).collect();
        self.problems.push(format!("{} {value} {what}", COLUMNS[i]));
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
        u32::try_from(self.int(i).max(0)).unwrap_or(u32::MAX)
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

    /// The task, as far as the row holds one, every problem noted; and the stored status.
    fn task(&mut self) -> (Scheduled, Option<String>) {
        let seq = self.int(0);
        let id = self.text(1);
        let kind = self.name(2);
        let cron = self.opt_text(3);
        let zone = self.opt_text(4);
        let every = self.opt_int(5);
        let schedule = match (kind.as_deref(), cron, every) {
            (None, _, _) => Schedule::Once, // not text: noted
            (Some("once"), _, _) => Schedule::Once,
            (Some("cron"), Some(expr), _) => Schedule::Cron { expr, zone },
            (Some("every"), _, Some(interval_ms)) if interval_ms > 0 => Schedule::Every { interval_ms },
            (Some("every"), _, Some(interval_ms)) => {
                self.problem(5, &interval_ms.into(), "is not a positive interval");
                Schedule::Every { interval_ms: interval_ms.max(1) }
            }
            (Some(kind), _, _) => {
                self.problem(2, &kind.into(), "has no schedule: a kind of once, cron (with a cron expression) or every (with every_ms)");
                Schedule::Once
            }
        };
        let due_ms = self.int(6);
        let tick_ms = self.int(7);
        let payload = self.text(8);
        let stored_status = self.get(9).as_str().map(str::to_owned);
        let status = match self.name(9) {
            None => Status::Dead,
            Some(name) => Status::parse(&name).unwrap_or_else(|| {
                self.problem(9, &name.as_str().into(), "is not pending, running or dead");
                Status::Dead
            }),
        };
        let attempts = self.count(10);
        // Out-of-range policies (an older release accepted any) are normalized, not quarantined.
        let retry = RetryPolicy { max_attempts: self.saturated(11), initial_backoff_ms: self.int(12), factor: self.saturated(13), max_backoff_ms: self.int(14) }.normalized();
        let missed = match self.name(15).as_deref() {
            None => MissedTicks::Skip,
            Some("skip") => MissedTicks::Skip,
            Some("burst") => MissedTicks::Burst,
            Some(other) => {
                self.problem(15, &other.into(), "is not skip or burst");
                MissedTicks::Skip
            }
        };
        let last_error = self.opt_text(16);
        let created_ms = self.int(17);
        (Scheduled { id, seq, schedule, due_ms, tick_ms, payload, status, attempts, retry, missed, last_error, created_ms }, stored_status)
    }
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
}
