//! A task as the board shows it (and `api/` answers it): bounded, with its kind and next
//! runs worked out.

use lumenize_alarms::{Schedule, Scheduled, Status};
use serde::Serialize;

/// How many next runs a recurring task shows.
pub(crate) const NEXT_RUNS: usize = 5;
/// The most characters of a payload shown.
pub(crate) const PREVIEW_CHARS: usize = 200;
/// The most characters of a last error shown.
pub(crate) const ERROR_CHARS: usize = 1_000;

/// One task, as the JSON API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TaskView {
    pub(crate) id: String,
    /// The payload's enum variant, when it reads as one.
    pub(crate) kind: Option<String>,
    pub(crate) schedule: Schedule,
    pub(crate) status: Status,
    pub(crate) due_ms: i64,
    pub(crate) attempts: u32,
    pub(crate) max_attempts: u32,
    pub(crate) last_error: Option<String>,
    pub(crate) payload_bytes: usize,
    /// The first [`PREVIEW_CHARS`] characters of the payload's JSON.
    pub(crate) payload_preview: String,
    pub(crate) payload_cut: bool,
    /// Its next [`NEXT_RUNS`] due times (recurring tasks), else its due time.
    pub(crate) next_runs: Vec<i64>,
    /// The same on the wall clock of a cron task's zone, with its abbreviation and offset
    /// (`2026-03-29 03:00:00 CEST +02:00`): with the `timezone` feature, for a cron task
    /// with a zone; else empty (and left out of the JSON).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) next_runs_local: Vec<String>,
    /// The paging cursor after this task: `<due_ms>.<seq>`.
    pub(crate) cursor: String,
    /// The same, as numbers.
    #[serde(skip)]
    pub(crate) key: (i64, i64),
}

impl TaskView {
    pub(crate) fn of(task: &Scheduled) -> TaskView {
        let (preview, payload_cut) = crate::escape::clip(&task.payload, PREVIEW_CHARS);
        let recurring = task.schedule != Schedule::Once;
        let next_runs = task.upcoming(if recurring { NEXT_RUNS } else { 1 });
        let next_runs_local = match &task.schedule {
            Schedule::Cron { zone: Some(zone), .. } => next_runs.iter().map_while(|&ms| crate::zone::local(ms, zone)).collect(),
            _ => Vec::new(),
        };
        TaskView {
            id: task.id.clone(),
            kind: variant(&task.payload),
            schedule: task.schedule.clone(),
            status: task.status,
            due_ms: task.due_ms,
            attempts: task.attempts,
            max_attempts: task.retry.max_attempts,
            last_error: task.last_error.as_deref().map(|e| crate::escape::clip(e, ERROR_CHARS).0.to_owned()),
            payload_bytes: task.payload.len(),
            payload_preview: preview.to_owned(),
            payload_cut,
            next_runs,
            next_runs_local,
            cursor: format!("{}.{}", task.due_ms, task.seq),
            key: (task.due_ms, task.seq),
        }
    }
}

/// The enum variant a payload was serialised from, by serde's usual shapes: a string (a
/// unit variant), an object with one key (an externally tagged variant), or an object with
/// a string `"type"` (an internally tagged one). `None` for anything else.
pub(crate) fn variant(payload: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(payload).ok()? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Object(map) => match map.get("type") {
            Some(serde_json::Value::String(tag)) => Some(tag.clone()),
            _ if map.len() == 1 => map.keys().next().cloned(),
            _ => None,
        },
        _ => None,
    }
    .map(|v| crate::escape::clip(&v, 100).0.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_of_serdes_shapes() {
        assert_eq!(variant(r#""Nightly""#).as_deref(), Some("Nightly"));
        assert_eq!(variant(r#"{"Remind":{"user":"ada"}}"#).as_deref(), Some("Remind"));
        assert_eq!(variant(r#"{"type":"record","label":"x"}"#).as_deref(), Some("record"));
        assert_eq!(variant(r#"{"type":"weekly_digest"}"#).as_deref(), Some("weekly_digest"), "a tag alone");
        assert_eq!(variant(r#"{"type":{"n":1}}"#).as_deref(), Some("type"), "a variant named type");
        assert_eq!(variant(r#"{"a":1,"b":2}"#), None);
        assert_eq!(variant("42"), None);
        assert_eq!(variant("not json"), None);
    }
}
