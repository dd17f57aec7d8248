//! Stored rows, decoded one column at a time: a row that does not decode is kept and
//! reported with why (quarantined), never an error for every read of its table. Pure: the
//! store hands in each row's values as [`Column`]s.
//!
//! A Durable Object's SQLite gives every number back as a JavaScript number: an integer of
//! 2^53 or more (written by an older release, or by hand) comes back as a float, which is
//! not an integer column's value here.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::envelope::Outcome;
use crate::machine::{unstored_outcome, Record, Seen, ANY_ORIGIN};
use crate::store::PendingCall;
use crate::{Dispatch, Target};

/// One value of a stored row, as the runtime gives it back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Column {
    /// `NULL`.
    Null,
    /// An integer in JavaScript's safe range.
    Integer(i64),
    /// Any other number.
    Float(f64),
    /// `TEXT`.
    Text(String),
    /// A `BLOB` (lumenize-call stores none).
    Blob,
}

/// The columns of `_lumenize_calls` in the order [`decode_call`] reads them.
pub(crate) const CALL_COLUMNS: &str = "id, target, op, resume, dispatch, deadline_ms, failures, last_error, result, created_ms";

/// Reads one row's columns in order, collecting what does not decode.
struct Reader {
    columns: std::vec::IntoIter<Column>,
    errors: Vec<String>,
}

impl Reader {
    fn next(&mut self) -> Column {
        self.columns.next().unwrap_or(Column::Null)
    }

    fn fail(&mut self, name: &str, why: String) {
        self.errors.push(format!("{name}: {why}"));
    }

    /// An integer column (`NULL` allowed if `nullable`).
    fn int(&mut self, name: &str, nullable: bool) -> Option<i64> {
        match self.next() {
            Column::Integer(v) => Some(v),
            Column::Null if nullable => None,
            other => {
                self.fail(name, format!("{} where an integer belongs", describe(&other)));
                None
            }
        }
    }

    /// A text column (`NULL` allowed if `nullable`).
    fn text(&mut self, name: &str, nullable: bool) -> Option<String> {
        match self.next() {
            Column::Text(v) => Some(v),
            Column::Null if nullable => None,
            other => {
                self.fail(name, format!("{} where text belongs", describe(&other)));
                None
            }
        }
    }

    /// A text column holding `T` as JSON (`NULL` allowed if `nullable`).
    fn json<T: DeserializeOwned>(&mut self, name: &str, nullable: bool) -> Option<T> {
        let text = self.text(name, nullable)?;
        serde_json::from_str(&text).map_err(|e| self.fail(name, format!("not the JSON it should be ({e})"))).ok()
    }
}

fn describe(column: &Column) -> String {
    match column {
        Column::Null => "NULL".into(),
        Column::Integer(v) => format!("the integer {v}"),
        Column::Float(v) => format!("the float {v:e}"),
        Column::Text(v) => format!("text of {} bytes", v.len()),
        Column::Blob => "a blob".into(),
    }
}

/// The call stored in a row of `_lumenize_calls` ([`CALL_COLUMNS`]). Never fails: a row
/// that does not decode gives a call with [`unreadable`](PendingCall::unreadable) set to
/// what is wrong with which columns, and the fields it could not read at their defaults
/// (an empty target, `null` values, no deadline, no failures, made at 0).
pub(crate) fn decode_call(row: Vec<Column>) -> PendingCall {
    let mut r = Reader { columns: row.into_iter(), errors: Vec::new() };
    let id = match r.next() {
        Column::Text(id) => id,
        Column::Integer(id) => id.to_string(),
        other => {
            r.fail("id", format!("{} where text belongs", describe(&other)));
            String::new()
        }
    };
    let target = r.json::<Target>("target", false);
    // Emptied when the result came in.
    let op = match r.text("op", false) {
        Some(text) if text.is_empty() => None,
        Some(text) => serde_json::from_str(&text).map_err(|e| r.fail("op", format!("not JSON ({e})"))).ok(),
        None => None,
    };
    let resume = r.json::<Value>("resume", false);
    let dispatch = r.json::<Dispatch>("dispatch", false);
    let deadline_ms = r.int("deadline_ms", true);
    let failures = r.int("failures", false).and_then(|n| u32::try_from(n).map_err(|_| r.fail("failures", format!("{n} is not a count"))).ok());
    let last_error = r.text("last_error", true);
    let result = r.json("result", true);
    let created_ms = r.int("created_ms", false);
    let unreadable = (!r.errors.is_empty()).then(|| r.errors.join("; "));
    PendingCall {
        id: id.into(),
        target: target.unwrap_or_else(|| Target::named("", "")),
        op,
        resume: resume.unwrap_or(Value::Null),
        dispatch: dispatch.unwrap_or_default(),
        deadline_ms,
        failures: failures.unwrap_or(0),
        last_error,
        result,
        created_ms: created_ms.unwrap_or(0),
        unreadable,
    }
}

/// What a remote stored for a call, from the `origin` and `outcome` columns of its row in
/// `_lumenize_call_results`. Never fails: an outcome that does not decode is answered as a
/// storage error ([`Outcome::Unstored`], which the caller gets as
/// [`CallError::Storage`](crate::CallError::Storage)), never applied again; an origin that
/// is not text counts as [`ANY_ORIGIN`].
pub(crate) fn decode_record(origin: Column, outcome: Column) -> Record {
    let origin = match origin {
        Column::Text(origin) => origin,
        _ => ANY_ORIGIN.to_owned(),
    };
    let seen = match outcome {
        Column::Null => Seen::Running,
        Column::Text(text) => match serde_json::from_str::<Outcome>(&text) {
            Ok(outcome) => Seen::Done(outcome),
            Err(e) => Seen::Done(unreadable_outcome(&format!("not the JSON it should be ({e})"))),
        },
        other => Seen::Done(unreadable_outcome(&format!("{} where text belongs", describe(&other)))),
    };
    Record { origin, seen }
}

fn unreadable_outcome(why: &str) -> Outcome {
    unstored_outcome(format!("the remote's stored outcome of this call does not decode: {why}; the call was applied once and is not applied again"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallError;
    use serde_json::json;

    fn text(s: &str) -> Column {
        Column::Text(s.into())
    }

    /// A row as the store writes it, with one column replaced.
    fn row(replace: Option<(usize, Column)>) -> Vec<Column> {
        let mut row = vec![
            text("c1"),
            text(r#"{"binding":"REMOTE","object":{"name":"r"}}"#),
            text(r#"{"type":"echo"}"#),
            text(r#"{"tag":"t"}"#),
            text(r#""alarm""#),
            Column::Integer(1_800_000_001_000),
            Column::Integer(2),
            text("boom"),
            Column::Null,
            Column::Integer(1_800_000_000_000),
        ];
        if let Some((i, column)) = replace {
            row[i] = column;
        }
        row
    }

    #[test]
    fn a_row_as_written_decodes_whole() {
        let call = decode_call(row(None));
        assert_eq!(call.unreadable, None);
        assert_eq!(call.id, "c1");
        assert_eq!(call.target, Target::named("REMOTE", "r"));
        assert_eq!(call.op, Some(json!({"type": "echo"})));
        assert_eq!(call.dispatch, Dispatch::Alarm);
        assert_eq!((call.deadline_ms, call.failures, call.created_ms), (Some(1_800_000_001_000), 2, 1_800_000_000_000));
        let done = decode_call(row(Some((8, text(r#"{"Err":{"kind":"timeout"}}"#)))));
        assert_eq!(done.result, Some(Err(CallError::Timeout)));
        let emptied = decode_call(row(Some((2, text("")))));
        assert_eq!((emptied.op, emptied.unreadable), (None, None));
        let no_deadline = decode_call(row(Some((5, Column::Null))));
        assert_eq!((no_deadline.deadline_ms, no_deadline.unreadable), (None, None));
    }

    #[test]
    fn a_row_that_does_not_decode_is_kept_with_what_is_wrong() {
        // A float where an integer belongs (what Duration::MAX became), bad JSON, wrong types.
        for (i, column, name) in [
            (5, Column::Float(9.3e18), "deadline_ms"),
            (9, Column::Float(-9.2e18), "created_ms"),
            (6, Column::Integer(1 << 40), "failures"),
            (6, Column::Integer(-1), "failures"),
            (6, Column::Null, "failures"),
            (1, text("{not json"), "target"),
            (2, text("{not json"), "op"),
            (3, Column::Null, "resume"),
            (4, text(r#""carrier pigeon""#), "dispatch"),
            (7, Column::Integer(5), "last_error"),
            (8, text(r#"{"Ok":1,"Err":2}"#), "result"),
            (8, Column::Blob, "result"),
        ] {
            let call = decode_call(row(Some((i, column.clone()))));
            let why = call.unreadable.clone().unwrap_or_else(|| panic!("{name} = {column:?} decoded: {call:?}"));
            assert!(why.starts_with(&format!("{name}: ")), "{name}: {why}");
            assert_eq!(call.id, "c1", "the id is kept, so the call can be cancelled");
        }
        let call = decode_call(row(Some((5, Column::Float(9.3e18)))));
        assert!(call.unreadable.as_deref().is_some_and(|w| w.contains("the float 9.3e18 where an integer belongs")), "{call:?}");
        // Every column wrong at once: all are named, and the call still has its defaults.
        let call = decode_call(vec![Column::Blob; 10]);
        assert_eq!(call.unreadable.as_deref().map(|w| w.split("; ").count()), Some(10), "{call:?}");
        assert_eq!((call.id.as_str(), call.target.binding.as_str()), ("", ""));
        // A short row reads NULLs: 7 columns that may not be NULL.
        assert_eq!(decode_call(vec![]).unreadable.as_deref().map(|w| w.split("; ").count()), Some(7), "a short row");
    }

    #[test]
    fn a_result_row_that_does_not_decode_is_answered_as_a_storage_error() {
        let ok = decode_record(text("aa"), text(r#"{"ok":1}"#));
        assert_eq!(ok, Record { origin: "aa".into(), seen: Seen::Done(Outcome::Ok(json!(1))) });
        assert_eq!(decode_record(text("aa"), Column::Null).seen, Seen::Running);
        assert_eq!(decode_record(Column::Null, Column::Null).origin, ANY_ORIGIN);
        for bad in [text("{not json"), Column::Float(1.5), Column::Integer(3), Column::Blob] {
            let Seen::Done(Outcome::Unstored { message }) = decode_record(text("aa"), bad.clone()).seen else { panic!("{bad:?}") };
            assert!(message.contains("does not decode") && message.contains("not applied again"), "{message}");
        }
    }
}
