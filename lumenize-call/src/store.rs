//! The two tables of lumenize-call in the object's SQLite: the caller's pending calls and
//! the remote's results. The statements are written once, over lumenize-alarms' [`Exec`]:
//! in a Durable Object they run on `worker::SqlStorage`, and the native tests run the same
//! statements on a native SQLite.
//!
//! Rows are read as JSON arrays (`json_array` of the columns), as lumenize-alarms reads its
//! own: a float where an integer belongs (a Durable Object's SQLite stores an integer of
//! 2^53 or more as one) is seen as a float and the row quarantined, never read as a NULL or
//! an integer it is not.

use lumenize_alarms::sql::{Exec, Value as V};
use lumenize_alarms::StorageKind;
use serde::Serialize;
use serde_json::Value;
use worker::SqlStorage;

use crate::envelope::Outcome;
use crate::machine::{self, CallResult, Pending, Record};
use crate::row::{decode_call, decode_record, Column, CALL_COLUMNS};
use crate::{CallId, Dispatch, Error, Result, Target};

/// The schema version this release writes, in `_lumenize_call_meta`. Version 1 (no meta
/// table, results keyed by the call id alone) is migrated on open: each stored result gets
/// the origin column, empty for the rows already there
/// (`ANY_ORIGIN`: they answer any origin, as they did, until
/// the cleanup forgets them a day after they were stored). They are kept, not dropped: a
/// re-dispatch of a call applied just before the upgrade must still find its result, or
/// the operation would be applied twice.
pub const SCHEMA_VERSION: i64 = 2;

const META: &str = "CREATE TABLE IF NOT EXISTS _lumenize_call_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)";

/// The tables as this release writes them. A result row belongs to the origin that made
/// the call (`origin`, the signed `from` of its first request): it answers that origin
/// alone. The call id stays the key: ids are UUIDv7s, so another origin's request with the
/// same id is refused, not stored beside it.
const CREATE: &str = "
CREATE TABLE IF NOT EXISTS _lumenize_calls (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    op TEXT NOT NULL,
    resume TEXT NOT NULL,
    dispatch TEXT NOT NULL,
    deadline_ms INTEGER,
    failures INTEGER NOT NULL,
    last_error TEXT,
    result TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS _lumenize_call_results (
    id TEXT PRIMARY KEY,
    outcome TEXT,
    done_ms INTEGER NOT NULL,
    origin TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS _lumenize_call_results_done ON _lumenize_call_results (done_ms);
";

/// Version 1's tables (created first when no version is stored, so that the migration
/// below runs on an old object and a new one alike).
const CREATE_V1: &str = "
CREATE TABLE IF NOT EXISTS _lumenize_call_results (
    id TEXT PRIMARY KEY,
    outcome TEXT,
    done_ms INTEGER NOT NULL
);
";

/// From version 1: the results get their origin (empty for the rows already there).
const MIGRATE_FROM_1: &str = "
ALTER TABLE _lumenize_call_results ADD COLUMN origin TEXT NOT NULL DEFAULT '';
INSERT INTO _lumenize_call_meta (key, value) VALUES ('schema_version', 2);
";

/// The most calls one page of [`Calls::pending_page`](crate::Calls::pending_page) reads
/// (a larger `limit` is clamped to it).
pub const MAX_PENDING_PAGE: usize = 1_000;

/// A call this object made that has not completed: its continuation has not run yet.
///
/// It may gain fields in a minor release (`#[non_exhaustive]`): read it, do not build one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PendingCall {
    /// The call's id.
    pub id: CallId,
    /// Where it goes.
    pub target: Target,
    /// The operation, as JSON; `None` once the result is in (it is not stored any more).
    pub op: Option<Value>,
    /// The continuation, as JSON.
    pub resume: Value,
    /// How it was sent.
    pub dispatch: Dispatch,
    /// When it times out, Unix ms.
    pub deadline_ms: Option<i64>,
    /// Transient failures so far.
    pub failures: u32,
    /// The last transient failure.
    pub last_error: Option<String>,
    /// The result, if it is in and the continuation has not completed.
    pub result: Option<CallResult>,
    /// When it was made, Unix ms.
    pub created_ms: i64,
    /// Why its stored row does not decode, if it does not (written by hand, by a bug or by
    /// an older release): the call is quarantined. It is listed here with this reason and
    /// the fields that could be read (the others at their defaults: an empty target, `null`
    /// values, no deadline, 0 failures, made at 0); its continuation does not run; its task
    /// fails with [`Error::Unreadable`] and is kept dead after its retries;
    /// [`Calls::cancel`](crate::Calls::cancel) removes it. Other calls are not affected.
    pub unreadable: Option<String>,
}

/// How far a pending call got, as its stored row tells ([`PendingCall::state`]). The row
/// does not say whether a send is in flight right now (that is the isolate's own, lost
/// with it), so sending and waiting for the reply are one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CallState {
    /// The result is not in: the call is waiting to be sent, in flight, or waiting to be
    /// sent again after a transient failure ([`PendingCall::failures`],
    /// [`PendingCall::last_error`]).
    Awaiting,
    /// The result is in ([`PendingCall::result`]) and the continuation has not completed:
    /// it is running, or it failed and the call's task runs it again.
    Delivering,
    /// The stored row does not decode ([`PendingCall::unreadable`]): the continuation does
    /// not run; [`Calls::cancel`](crate::Calls::cancel) removes the call.
    Quarantined,
}

impl CallState {
    /// `"awaiting"`, `"delivering"` or `"quarantined"`, as it serialises.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Awaiting => "awaiting",
            CallState::Delivering => "delivering",
            CallState::Quarantined => "quarantined",
        }
    }
}

impl PendingCall {
    /// A call just made: nothing tried, no result. (Public for this workspace's store tests;
    /// not API.)
    #[doc(hidden)]
    #[must_use]
    pub fn new(id: String, target: Target, op: Value, resume: Value, dispatch: Dispatch, deadline_ms: Option<i64>, created_ms: i64) -> Self {
        PendingCall { id: CallId::from(id), target, op: Some(op), resume, dispatch, deadline_ms, failures: 0, last_error: None, result: None, created_ms, unreadable: None }
    }

    /// How far the call got, by its stored row.
    #[must_use]
    pub fn state(&self) -> CallState {
        match (&self.unreadable, &self.result) {
            (Some(_), _) => CallState::Quarantined,
            (None, Some(_)) => CallState::Delivering,
            (None, None) => CallState::Awaiting,
        }
    }

    /// What the state machine needs of it.
    pub(crate) fn machine_state(&self) -> Pending {
        Pending {
            issued_ms: self.created_ms,
            deadline_ms: self.deadline_ms,
            failures: self.failures,
            last_error: self.last_error.clone(),
            result: self.result.clone(),
        }
    }
}

fn json(value: &impl serde::Serialize) -> V {
    V::Text(serde_json::to_string(value).unwrap_or_default())
}

/// `column`, as an element of a `json_array`: itself, or for a BLOB (which JSON cannot
/// hold) `{"blob": <its length>}`, read back as [`Column::Blob`].
fn cell(column: &str) -> String {
    format!("iif(typeof({column}) = 'blob', json_object('blob', length({column})), {column})")
}

/// `SELECT` of the JSON array of `columns` (comma-separated), each through [`cell`].
fn json_array(columns: &str) -> String {
    let cells: Vec<String> = columns.split(", ").map(cell).collect();
    format!("json_array({})", cells.join(", "))
}

/// A row read as the JSON array of its columns, column by column; `Err` with why if the
/// array does not parse (a float SQLite writes as `9e999`: an infinity stored by hand).
fn columns(json: &V) -> std::result::Result<Vec<Column>, String> {
    let V::Text(json) = json else { return Err(format!("its columns did not read as a JSON array ({json:?})")) };
    let values: Vec<Value> = serde_json::from_str(json).map_err(|e| format!("its columns do not parse as JSON ({e}): a float out of range or a broken value"))?;
    Ok(values
        .into_iter()
        .map(|v| match v {
            Value::Null => Column::Null,
            Value::Bool(b) => Column::Integer(i64::from(b)),
            Value::Number(n) => n.as_i64().map_or_else(|| Column::Float(n.as_f64().unwrap_or(f64::NAN)), Column::Integer),
            Value::String(s) => Column::Text(s),
            Value::Array(_) | Value::Object(_) => Column::Blob,
        })
        .collect())
}

/// The tables of one object, over a SQLite connection `E` (the object's `SqlStorage`; the
/// native tests' SQLite).
#[doc(hidden)]
pub struct Store<E = SqlStorage> {
    exec: E,
}

impl<E: Exec> Store<E> {
    /// Opens the tables, creating them on first use and migrating those of an earlier
    /// release (see [`SCHEMA_VERSION`]).
    ///
    /// # Errors
    /// Storage errors; [`lumenize_alarms::Error::NoSqlite`] (as [`Error::Alarms`]) if the
    /// object's class has no SQLite (its `sql` refuses every statement);
    /// [`Error::Runtime`] for tables written by a newer release.
    pub fn open(exec: E) -> Result<Self> {
        Self::create(exec).map_err(|e| match e {
            Error::Alarms(lumenize_alarms::Error::Storage(s)) if s.kind() == StorageKind::SqlNotEnabled => lumenize_alarms::Error::NoSqlite.into(),
            e => e,
        })
    }

    fn create(exec: E) -> Result<Self> {
        let store = Store { exec };
        store.exec.script(META)?;
        let version = store.exec.query("SELECT value FROM _lumenize_call_meta WHERE key = 'schema_version'", vec![])?;
        match version.into_iter().next().and_then(|row| row.into_iter().next()) {
            None => store.exec.script(&format!("{CREATE_V1}{MIGRATE_FROM_1}{CREATE}"))?,
            Some(V::Integer(SCHEMA_VERSION)) => store.exec.script(CREATE)?,
            Some(found) => return Err(Error::Runtime(format!("lumenize-call's tables are at schema version {found:?}, written by a newer release; this one reads up to {SCHEMA_VERSION}"))),
        }
        Ok(store)
    }

    /// The schema version stored (`None` before [`open`](Self::open) wrote one).
    ///
    /// # Errors
    /// Storage errors.
    pub fn schema_version(&self) -> Result<Option<i64>> {
        let rows = self.exec.query("SELECT value FROM _lumenize_call_meta WHERE key = 'schema_version'", vec![])?;
        Ok(rows.into_iter().flatten().find_map(|v| match v {
            V::Integer(v) => Some(v),
            _ => None,
        }))
    }

    /// The connection, for tests that write rows by hand.
    pub fn exec(&self) -> &E {
        &self.exec
    }

    /// The connection back, to open it again as a new isolate would.
    pub fn into_exec(self) -> E {
        self.exec
    }

    fn execute(&self, sql: &str, args: Vec<V>) -> Result<usize> {
        Ok(self.exec.execute(sql, args)?)
    }

    /// The calls of a `SELECT ... FROM _lumenize_calls ...` (`rest`: everything after the
    /// table), each decoded on its own: a row that does not decode is quarantined.
    fn read_calls(&self, rest: &str, args: Vec<V>) -> Result<Vec<PendingCall>> {
        let rows = self.exec.query(&format!("SELECT id, {} FROM _lumenize_calls {rest}", json_array(CALL_COLUMNS)), args)?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut row = row.into_iter();
                let id = row.next().unwrap_or(V::Null);
                match columns(&row.next().unwrap_or(V::Null)) {
                    Ok(columns) => decode_call(columns),
                    Err(why) => {
                        let id = match id {
                            V::Text(id) => Column::Text(id),
                            V::Integer(id) => Column::Integer(id),
                            V::Null => Column::Null,
                            V::Blob(_) => Column::Blob,
                        };
                        PendingCall { unreadable: Some(why), ..decode_call(vec![id]) }
                    }
                }
            })
            .collect())
    }

    // The caller's side.

    /// Stores a new call (no failures, no result yet).
    ///
    /// # Errors
    /// Storage errors (a call id taken: SQLite's constraint error).
    pub fn insert_call(&self, call: &PendingCall) -> Result<()> {
        self.execute(
            "INSERT INTO _lumenize_calls (id, target, op, resume, dispatch, deadline_ms, failures, last_error, result, created_ms) \
             VALUES (?, ?, ?, ?, ?, ?, 0, NULL, NULL, ?)",
            vec![
                call.id.as_str().into(),
                json(&call.target),
                json(&call.op),
                json(&call.resume),
                json(&call.dispatch),
                call.deadline_ms.into(),
                call.created_ms.into(),
            ],
        )?;
        Ok(())
    }

    /// Call `id`, decoded; quarantined (see [`PendingCall::unreadable`]) if its row does
    /// not decode.
    ///
    /// # Errors
    /// Storage errors.
    pub fn call(&self, id: &str) -> Result<Option<PendingCall>> {
        Ok(self.read_calls("WHERE id = ?", vec![id.into()])?.into_iter().next())
    }

    /// Every call, oldest first; those whose row does not decode quarantined.
    ///
    /// # Errors
    /// Storage errors.
    pub fn calls(&self) -> Result<Vec<PendingCall>> {
        self.read_calls("ORDER BY created_ms, id", vec![])
    }

    /// At most `limit` calls (clamped to `1 ..=` [`MAX_PENDING_PAGE`]) in id order (UUIDv7:
    /// creation order, to the millisecond), those after the id `after` if given: one indexed statement, bounded
    /// whatever the number of calls. With the cursor of the next page (the last id) when
    /// the page is full. Rows that do not decode are listed, quarantined.
    ///
    /// Ids are text. A row whose id is a blob (written by hand) sorts after every text id
    /// and reads as `""`: it is listed, and a page that ends with it is the last (no cursor
    /// that would start over).
    ///
    /// # Errors
    /// Storage errors.
    pub fn calls_page(&self, after: Option<&str>, limit: usize) -> Result<(Vec<PendingCall>, Option<String>)> {
        let limit = limit.clamp(1, MAX_PENDING_PAGE);
        let n = i64::try_from(limit).unwrap_or(1);
        let calls = match after {
            Some(after) => self.read_calls("WHERE id > ? ORDER BY id LIMIT ?", vec![after.into(), n.into()])?,
            None => self.read_calls("ORDER BY id LIMIT ?", vec![n.into()])?,
        };
        let next = calls.last().filter(|c| calls.len() == limit && !c.id.as_str().is_empty()).map(|c| c.id.to_string());
        Ok((calls, next))
    }

    /// Stores the failure count and last error of `state` for call `id` (no row: nothing).
    ///
    /// # Errors
    /// Storage errors.
    pub fn record_failure(&self, id: &str, state: &Pending) -> Result<()> {
        self.execute(
            "UPDATE _lumenize_calls SET failures = ?, last_error = ? WHERE id = ?",
            vec![i64::from(state.failures).into(), state.last_error.clone().into(), id.into()],
        )?;
        Ok(())
    }

    /// Stores `result` (see `first_result`) as the result of call
    /// `id`, in place of its operation (not needed any more, and it makes room), unless a
    /// result is stored already: a delivery whose continuation failed leaves it for the
    /// retries. A write that fails stores [`CallError::Storage`](crate::CallError::Storage)
    /// in its place.
    ///
    /// # Errors
    /// Storage errors of the fallback write.
    pub fn store_result(&self, id: &str, result: &CallResult) -> Result<()> {
        let store = |result: &CallResult| {
            self.execute("UPDATE _lumenize_calls SET result = ?, op = '' WHERE id = ? AND result IS NULL", vec![json(result), id.into()])
        };
        if let Err(e) = store(result) {
            store(&machine::unstored_result(e.to_string()))?;
        }
        Ok(())
    }

    /// Deletes call `id`.
    ///
    /// # Errors
    /// Storage errors.
    pub fn remove_call(&self, id: &str) -> Result<()> {
        self.execute("DELETE FROM _lumenize_calls WHERE id = ?", vec![id.into()])?;
        Ok(())
    }

    // The remote's side.

    /// What is stored for call `id`: its origin and how far it got (an outcome that does
    /// not decode is answered as a storage error: see [`decode_record`]).
    ///
    /// # Errors
    /// Storage errors.
    pub fn record(&self, id: &str) -> Result<Option<Record>> {
        let rows = self.exec.query(&format!("SELECT {} FROM _lumenize_call_results WHERE id = ?", json_array("origin, outcome")), vec![id.into()])?;
        Ok(rows.into_iter().next().map(|row| {
            // An array that does not parse (an infinity stored by hand) reads as an outcome
            // that does not decode.
            let columns = columns(row.first().unwrap_or(&V::Null)).unwrap_or_else(|_| vec![Column::Null, Column::Float(f64::INFINITY)]);
            let mut columns = columns.into_iter();
            let mut next = || columns.next().unwrap_or(Column::Null);
            let origin = next();
            decode_record(origin, next())
        }))
    }

    /// Records that `origin`'s call `id` is being applied, unless a row for `id` is stored
    /// already (then nothing is written: see [`record`](Self::record)); whether it did.
    /// `done_ms` holds the start until it finishes, so a row left behind by a reset is
    /// cleaned up too. One statement for a call seen the first time, the usual case.
    ///
    /// # Errors
    /// Storage errors.
    pub fn start(&self, origin: &str, id: &str, now_ms: i64) -> Result<bool> {
        let written = self.execute(
            "INSERT INTO _lumenize_call_results (id, origin, outcome, done_ms) VALUES (?, ?, NULL, ?) ON CONFLICT (id) DO NOTHING",
            vec![id.into(), origin.into(), now_ms.into()],
        )?;
        Ok(written > 0)
    }

    /// Stores the outcome of an operation: `outcome`, or [`Outcome::TooLarge`] if it is over
    /// [`MAX_REPLY_BYTES`], or, if storing fails, a small
    /// [`Outcome::Unstored`]. Returns what was stored: a re-dispatch is answered with it.
    /// Should even that fail, the row stays "running" (a re-dispatch then gets
    /// `INTERRUPTED`); the small outcome is returned all the
    /// same, to answer this request with.
    pub fn record_outcome(&self, origin: &str, id: &str, outcome: Outcome, now_ms: i64) -> Outcome {
        let outcome = machine::storable_outcome(outcome);
        match self.finish(origin, id, &outcome, now_ms) {
            Ok(()) => outcome,
            Err(e) => {
                let fallback = machine::unstored_outcome(e.to_string());
                if let Err(again) = self.finish(origin, id, &fallback, now_ms) {
                    worker::console_error!("lumenize-call: call {id}: its outcome could not be stored ({e}), nor the error in its place ({again})");
                }
                fallback
            }
        }
    }

    fn finish(&self, origin: &str, id: &str, outcome: &Outcome, now_ms: i64) -> Result<()> {
        self.execute(
            "INSERT OR REPLACE INTO _lumenize_call_results (id, origin, outcome, done_ms) VALUES (?, ?, ?, ?)",
            vec![id.into(), origin.into(), json(outcome), now_ms.into()],
        )?;
        Ok(())
    }

    /// Deletes results finished at or before `before_ms`, the oldest first, at most `limit`;
    /// returns the oldest remaining finish time. A result whose finish time is not an integer in `0 ..=`
    /// [`MAX_TIME_MS`](lumenize_alarms::MAX_TIME_MS) (written by hand or by a bug)
    /// gets `now_ms` as its finish time first: it is kept a day from now, like a result
    /// just stored, then forgotten.
    ///
    /// # Errors
    /// Storage errors.
    pub fn forget_results(&self, before_ms: i64, now_ms: i64, limit: i64) -> Result<Option<i64>> {
        self.execute(
            "UPDATE _lumenize_call_results SET done_ms = ? WHERE typeof(done_ms) != 'integer' OR done_ms < 0 OR done_ms > ?",
            vec![now_ms.into(), lumenize_alarms::core::MAX_TIME_MS.into()],
        )?;
        self.execute(
            "DELETE FROM _lumenize_call_results WHERE id IN (SELECT id FROM _lumenize_call_results WHERE done_ms <= ? ORDER BY done_ms LIMIT ?)",
            vec![before_ms.into(), limit.into()],
        )?;
        let rows = self.exec.query("SELECT done_ms FROM _lumenize_call_results ORDER BY done_ms LIMIT 1", vec![])?;
        Ok(rows.into_iter().flatten().find_map(|c| match c {
            V::Integer(ms) => Some(ms),
            _ => None,
        }))
    }
}
