//! The two tables of lumenize-call in the object's SQLite: the caller's pending calls and
//! the remote's results. Opened after [`Alarms::open`](lumenize_alarms::Alarms::open), which
//! has already checked that the object has SQLite.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{SqlStorage, SqlStorageValue as V};

use crate::envelope::Outcome;
use crate::machine::{self, CallResult, Pending, Seen};
use crate::{Dispatch, Error, Result, Target};

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
    done_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS _lumenize_call_results_done ON _lumenize_call_results (done_ms);
";

/// A call this object made that has not completed: its continuation has not run yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingCall {
    /// The call's id (also the id of its lumenize-alarms backstop task).
    pub id: String,
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
}

impl PendingCall {
    /// What the state machine needs of it.
    pub(crate) fn state(&self) -> Pending {
        Pending {
            issued_ms: self.created_ms,
            deadline_ms: self.deadline_ms,
            failures: self.failures,
            last_error: self.last_error.clone(),
            result: self.result.clone(),
        }
    }
}

#[derive(Deserialize)]
struct CallRow {
    id: String,
    target: String,
    op: String,
    resume: String,
    dispatch: String,
    deadline_ms: Option<i64>,
    failures: u32,
    last_error: Option<String>,
    result: Option<String>,
    created_ms: i64,
}

impl CallRow {
    fn into_call(self) -> Result<PendingCall> {
        let corrupt = |what: &str| Error::Runtime(format!("call {}: unreadable {what} column", self.id));
        Ok(PendingCall {
            target: serde_json::from_str(&self.target).map_err(|_| corrupt("target"))?,
            // Emptied when the result came in.
            op: match self.op.as_str() {
                "" => None,
                text => Some(serde_json::from_str(text).map_err(|_| corrupt("op"))?),
            },
            resume: serde_json::from_str(&self.resume).map_err(|_| corrupt("resume"))?,
            dispatch: serde_json::from_str(&self.dispatch).map_err(|_| corrupt("dispatch"))?,
            result: match &self.result {
                None => None,
                Some(text) => Some(serde_json::from_str(text).map_err(|_| corrupt("result"))?),
            },
            deadline_ms: self.deadline_ms,
            failures: self.failures,
            last_error: self.last_error,
            created_ms: self.created_ms,
            id: self.id,
        })
    }
}

fn json(value: &impl serde::Serialize) -> V {
    V::String(serde_json::to_string(value).unwrap_or_default())
}

/// The tables of one object.
pub(crate) struct Store {
    sql: SqlStorage,
}

impl Store {
    pub(crate) fn open(sql: SqlStorage) -> Result<Self> {
        let store = Store { sql };
        store.exec(CREATE, vec![])?;
        Ok(store)
    }

    fn exec(&self, query: &str, bindings: Vec<V>) -> Result<worker::SqlCursor> {
        self.sql.exec(query, bindings).map_err(Error::from)
    }

    fn query<R: for<'de> Deserialize<'de>>(&self, query: &str, bindings: Vec<V>) -> Result<Vec<R>> {
        self.exec(query, bindings)?.to_array().map_err(Error::from)
    }

    // The caller's side.

    pub(crate) fn insert_call(&self, call: &PendingCall) -> Result<()> {
        self.exec(
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

    pub(crate) fn call(&self, id: &str) -> Result<Option<PendingCall>> {
        let rows: Vec<CallRow> = self.query("SELECT * FROM _lumenize_calls WHERE id = ?", vec![id.into()])?;
        rows.into_iter().next().map(CallRow::into_call).transpose()
    }

    pub(crate) fn calls(&self) -> Result<Vec<PendingCall>> {
        let rows: Vec<CallRow> = self.query("SELECT * FROM _lumenize_calls ORDER BY created_ms, id", vec![])?;
        rows.into_iter().map(CallRow::into_call).collect()
    }

    pub(crate) fn record_failure(&self, id: &str, state: &Pending) -> Result<()> {
        self.exec(
            "UPDATE _lumenize_calls SET failures = ?, last_error = ? WHERE id = ?",
            vec![i64::from(state.failures).into(), state.last_error.clone().into(), id.into()],
        )?;
        Ok(())
    }

    /// Stores `result` (see [`first_result`](machine::first_result)) as the result of call
    /// `id`, in place of its operation (not needed any more, and it makes room), unless a
    /// result is stored already: a delivery whose continuation failed leaves it for the
    /// retries. A write that fails stores [`CallError::Storage`](crate::CallError::Storage)
    /// in its place.
    pub(crate) fn store_result(&self, id: &str, result: &CallResult) -> Result<()> {
        let store = |result: &CallResult| {
            self.exec("UPDATE _lumenize_calls SET result = ?, op = '' WHERE id = ? AND result IS NULL", vec![json(result), id.into()])
        };
        if let Err(e) = store(result) {
            store(&machine::unstored_result(e.to_string()))?;
        }
        Ok(())
    }

    pub(crate) fn remove_call(&self, id: &str) -> Result<()> {
        self.exec("DELETE FROM _lumenize_calls WHERE id = ?", vec![id.into()])?;
        Ok(())
    }

    // The remote's side.

    pub(crate) fn seen(&self, id: &str) -> Result<Option<Seen>> {
        #[derive(Deserialize)]
        struct Row {
            outcome: Option<String>,
        }
        let rows: Vec<Row> = self.query("SELECT outcome FROM _lumenize_call_results WHERE id = ?", vec![id.into()])?;
        rows.into_iter()
            .next()
            .map(|row| match row.outcome {
                None => Ok(Seen::Running),
                Some(text) => serde_json::from_str(&text)
                    .map(Seen::Done)
                    .map_err(|_| Error::Runtime(format!("call result {id}: unreadable outcome"))),
            })
            .transpose()
    }

    /// Records that `id` is being applied (`done_ms` holds the start until it finishes, so a
    /// row left behind by a reset is cleaned up too).
    pub(crate) fn start(&self, id: &str, now_ms: i64) -> Result<()> {
        self.exec("INSERT INTO _lumenize_call_results (id, outcome, done_ms) VALUES (?, NULL, ?)", vec![id.into(), now_ms.into()])?;
        Ok(())
    }

    /// Stores the outcome of an operation: `outcome`, or [`Outcome::TooLarge`] if it is over
    /// [`MAX_REPLY_BYTES`](crate::MAX_REPLY_BYTES), or, if storing fails, a small
    /// [`Outcome::Unstored`]. Returns what was stored: a re-dispatch is answered with it.
    /// Should even that fail, the row stays "running" (a re-dispatch then gets
    /// [`INTERRUPTED`](crate::machine::INTERRUPTED)); the small outcome is returned all the
    /// same, to answer this request with.
    pub(crate) fn record_outcome(&self, id: &str, outcome: Outcome, now_ms: i64) -> Outcome {
        let outcome = machine::storable_outcome(outcome);
        match self.finish(id, &outcome, now_ms) {
            Ok(()) => outcome,
            Err(e) => {
                let fallback = machine::unstored_outcome(e.to_string());
                if let Err(again) = self.finish(id, &fallback, now_ms) {
                    worker::console_error!("lumenize-call: call {id}: its outcome could not be stored ({e}), nor the error in its place ({again})");
                }
                fallback
            }
        }
    }

    pub(crate) fn finish(&self, id: &str, outcome: &Outcome, now_ms: i64) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO _lumenize_call_results (id, outcome, done_ms) VALUES (?, ?, ?)",
            vec![id.into(), json(outcome), now_ms.into()],
        )?;
        Ok(())
    }

    /// Deletes results finished at or before `before_ms`; returns the oldest remaining
    /// finish time.
    pub(crate) fn forget_results(&self, before_ms: i64) -> Result<Option<i64>> {
        #[derive(Deserialize)]
        struct Oldest {
            done_ms: i64,
        }
        self.exec("DELETE FROM _lumenize_call_results WHERE done_ms <= ?", vec![before_ms.into()])?;
        let rows: Vec<Oldest> = self.query(
            "SELECT done_ms FROM _lumenize_call_results ORDER BY done_ms LIMIT 1",
            vec![],
        )?;
        Ok(rows.first().map(|r| r.done_ms))
    }
}
