//! `SqlStore`: the [`Store`] intents as SQL statements on one table, `_lumenize_alarms`,
//! with a schema version so that a later release can migrate it.
//!
//! Every change to a task is one conditional statement on its row id (`... WHERE seq = ?
//! AND status = ? AND due_ms = ?`), and a batch of tasks is stored with one `INSERT ...
//! SELECT ... FROM json_each(?)`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::core::{Change, Counts, Filter, Key, MissedTicks, RetryPolicy, Schedule, Scheduled, Status, Store, MAX_ATTEMPTS, MAX_BACKOFF_MS, MAX_FACTOR, MAX_TIME_MS};
use crate::error::{Error, Result, StorageError, StorageKind};
use crate::sql::exec::{Columns, Exec, Value};
use crate::sql::row::{self, Read};

/// The schema version this release writes. Version 1 (JSON columns for the schedule, the
/// retry policy and the missed-tick policy) and version 2 (before the `paused` status: its
/// index of live tasks took in every status but `dead`) are migrated on open.
pub const SCHEMA_VERSION: i64 = 3;

/// The rows of the queue, as SQL: what runs and what the alarm is armed for: pending and
/// running tasks, and rows whose status is no status at all (written by hand or by a bug),
/// so that the queue meets them and quarantines them. The index of live tasks has the same
/// condition, word for word, so the queue's reads use it.
const LIVE: &str = "status NOT IN ('dead', 'paused')";

const TABLE: &str = "
CREATE TABLE IF NOT EXISTS _lumenize_alarms (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    cron TEXT,
    zone TEXT,
    every_ms INTEGER,
    due_ms INTEGER NOT NULL,
    tick_ms INTEGER NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    backoff_ms INTEGER NOT NULL,
    backoff_factor INTEGER NOT NULL,
    max_backoff_ms INTEGER NOT NULL,
    missed TEXT NOT NULL,
    last_error TEXT,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS _lumenize_alarms_live ON _lumenize_alarms (due_ms, seq) WHERE status NOT IN ('dead', 'paused');
";

const META: &str = "CREATE TABLE IF NOT EXISTS _lumenize_alarms_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)";

/// From version 1: the same rows, with the JSON columns taken apart.
const MIGRATE_FROM_1: &str = "
DROP INDEX IF EXISTS _lumenize_alarms_live;
ALTER TABLE _lumenize_alarms RENAME TO _lumenize_alarms_v1;
{TABLE}
INSERT INTO _lumenize_alarms (seq, id, kind, cron, zone, every_ms, due_ms, tick_ms, payload, status, attempts,
    max_attempts, backoff_ms, backoff_factor, max_backoff_ms, missed, last_error, created_ms)
SELECT seq, id, kind, json_extract(schedule, '$.cron'), NULL, json_extract(schedule, '$.every.interval_ms'),
    due_ms, tick_ms, payload, status, attempts, json_extract(retry, '$.max_attempts'),
    json_extract(retry, '$.initial_backoff_ms'), json_extract(retry, '$.factor'), json_extract(retry, '$.max_backoff_ms'),
    json_extract(missed, '$'), last_error, created_ms
FROM _lumenize_alarms_v1;
DROP TABLE _lumenize_alarms_v1;
UPDATE _lumenize_alarms_meta SET value = 3 WHERE key = 'schema_version';
";

/// From version 2: the same rows; the index of live tasks leaves out paused ones too (the
/// rows are not touched: version 2 never stored `paused`).
const MIGRATE_FROM_2: &str = "
DROP INDEX IF EXISTS _lumenize_alarms_live;
{TABLE}
UPDATE _lumenize_alarms_meta SET value = 3 WHERE key = 'schema_version';
";

/// A task's columns as one JSON array, in the order [`row::read`] reads them: a row crosses
/// from SQLite to Rust as one string (in a Durable Object, every value read is a JavaScript
/// call). Its size is bounded: every character of the row escapes to at most two.
const TASK: &str = "json_array(seq, id, kind, cron, zone, every_ms, due_ms, tick_ms, payload, status, attempts, \
                    max_attempts, backoff_ms, backoff_factor, max_backoff_ms, missed, last_error, created_ms)";

/// A column as JSON can hold it: a BLOB (which `json_array` refuses, failing the whole
/// statement) as `{"blob": "<hex>"}`, which reads as a problem in any column.
fn json_safe(column: &str) -> String {
    format!("CASE typeof({column}) WHEN 'blob' THEN json_object('blob', hex({column})) ELSE {column} END")
}

/// A task's row on its own, for a statement whose rows are read one by one: its `seq` and
/// `id` (which stand in when the rest does not parse), then its columns as [`TASK`] lists
/// them, each [`json_safe`], so that no stored value fails the statement.
fn each() -> String {
    let columns: Vec<String> = row::COLUMNS.iter().map(|c| json_safe(c)).collect();
    format!("seq, CAST(id AS TEXT), json_array({})", columns.join(", "))
}

/// The columns a new task sets (status, attempts and error are those of a new task).
const NEW: &str = "id, kind, cron, zone, every_ms, due_ms, tick_ms, payload, status, attempts, \
                   max_attempts, backoff_ms, backoff_factor, max_backoff_ms, missed, last_error, created_ms";

/// The most JSON one batch statement binds; SQLite in a Durable Object refuses a value over
/// 2 MB. A task whose own JSON is larger is stored by a statement of its own.
const BATCH_BYTES: usize = 1_000_000;

/// The scheduler's tasks in one SQLite database.
///
/// ```
/// # fn demo(sql: worker::SqlStorage) -> lumenize_alarms::Result<()> {
/// use lumenize_alarms::core::{Store, Filter};
/// use lumenize_alarms::sql::SqlStore;
/// let store = SqlStore::open(sql)?; // creates or migrates the table
/// let dead = store.list(&Filter::default().status(lumenize_alarms::Status::Dead))?;
/// # let _ = dead; Ok(()) }
/// ```
pub struct SqlStore<E> {
    exec: E,
    /// How many times the table was found dropped (by `deleteAll`) and created again.
    recreated: Cell<u64>,
}

impl<E: Exec> SqlStore<E> {
    /// Opens the table, creating it on first use and migrating one written by an earlier
    /// release.
    ///
    /// # Errors
    /// [`Error::SchemaTooNew`] for a table written by a newer release; storage errors.
    pub fn open(exec: E) -> Result<Self> {
        let store = SqlStore { exec, recreated: Cell::new(0) };
        store.create()?;
        Ok(store)
    }

    fn create(&self) -> Result<()> {
        self.exec.script(META)?;
        let version = self.exec.query("SELECT value FROM _lumenize_alarms_meta WHERE key = 'schema_version'", vec![])?;
        match version.into_iter().next().map(|row| Columns::new(row).int()).transpose()? {
            None => {
                self.exec.script(TABLE)?;
                self.exec.execute("INSERT INTO _lumenize_alarms_meta VALUES ('schema_version', ?)", vec![SCHEMA_VERSION.into()])?;
            }
            Some(1) => self.exec.script(&MIGRATE_FROM_1.replace("{TABLE}", TABLE))?,
            Some(2) => self.exec.script(&MIGRATE_FROM_2.replace("{TABLE}", TABLE))?,
            Some(SCHEMA_VERSION) => self.exec.script(TABLE)?,
            Some(found) => return Err(Error::SchemaTooNew { found, supported: SCHEMA_VERSION }),
        }
        Ok(())
    }

    /// The connection below.
    pub fn exec(&self) -> &E {
        &self.exec
    }

    /// Runs `op`; if the table is gone (the object's storage was deleted with `deleteAll`),
    /// creates it again and runs `op` once more.
    fn with_table<R>(&self, op: impl Fn() -> Result<R>) -> Result<R> {
        match op() {
            Err(Error::Storage(e)) if e.kind() == StorageKind::NoSuchTable => {
                self.create()?;
                self.recreated.set(self.recreated.get() + 1);
                op()
            }
            other => other,
        }
    }

    /// The rows a `SELECT ... FROM _lumenize_alarms ...` (`from`: everything after `SELECT`'s
    /// column list) returns, each read on its own ([`row::read`]): a row that does not decode
    /// never stops the others. They cross from SQLite as one JSON text (in a Durable
    /// Object, every value read is a JavaScript call), parsed straight into typed columns
    /// when every row is well typed ([`row::Typed`]); if that text would be over what SQLite
    /// allows (payloads of a megabyte), or cannot be made (a column holds a BLOB, which JSON
    /// cannot) or does not parse (a float SQLite writes as `Inf`, text that is not UTF-8),
    /// one string per row ([`each`]).
    /// Sorted by `(due_ms, seq)`.
    fn select(&self, from: &str, args: Vec<Value>) -> Result<Vec<Read>> {
        // As a BLOB: its bytes cross into wasm as they are, where text would be made a
        // JavaScript string and encoded back, character by character.
        let all = format!("SELECT CAST(json_group_array({TASK}) AS BLOB) FROM (SELECT * {from})");
        let batch = match self.with_table(|| self.exec.query(&all, args.clone())) {
            Ok(rows) => {
                let json = rows.into_iter().next().map(|row| Columns::new(row).bytes()).transpose()?.unwrap_or_default();
                // Typed when every value has its column's JSON type (the rows a release writes);
                // else value by value, which says what is wrong.
                match serde_json::from_slice::<Vec<row::Typed>>(&json) {
                    Ok(rows) => Some(rows.into_iter().map(row::read_typed).collect()),
                    Err(_) => serde_json::from_slice::<Vec<Vec<serde_json::Value>>>(&json).ok().map(|rows| rows.into_iter().map(row::read).collect()),
                }
            }
            // Too big, or a value JSON cannot hold: row by row (if storage itself fails, so
            // does that).
            Err(Error::Storage(_)) => None,
            Err(e) => return Err(e),
        };
        let mut reads = match batch {
            Some(reads) => reads,
            None => {
                let each = format!("SELECT {} {from}", each());
                self.with_table(|| self.exec.query(&each, args.clone()))?.into_iter().map(read_each).collect::<Result<Vec<_>>>()?
            }
        };
        reads.sort_by_key(|r| {
            let (Read::Task(t) | Read::Unreadable { task: t, .. }) = r;
            (t.due_ms, t.seq)
        });
        Ok(reads)
    }

    /// [`select`](Self::select), with every row that does not decode and is not dead yet
    /// quarantined: marked dead in storage with the reason as its last error (one
    /// conditional `UPDATE` each, none when every row decodes), so that the queue and the
    /// alarm pass it by from then on.
    fn select_quarantining(&self, from: &str, args: Vec<Value>) -> Result<Vec<Read>> {
        let reads = self.select(from, args)?;
        for read in &reads {
            if let Read::Unreadable { task, live: true, .. } = read {
                self.quarantine(task.seq, task.last_error.as_deref())?;
            }
        }
        Ok(reads)
    }

    /// Marks the row `seq` dead if it is not, with `error` as its last error if given (the
    /// reason it is unreadable, which also keeps its previous last error); whether it was
    /// live.
    fn quarantine(&self, seq: i64, error: Option<&str>) -> Result<bool> {
        let sql = "UPDATE _lumenize_alarms SET status = 'dead', last_error = coalesce(?, last_error) WHERE seq = ? AND status != 'dead'";
        Ok(self.write(sql, vec![error.into(), seq.into()])? > 0)
    }

    /// The row a `... RETURNING` statement (`sql` without its `RETURNING`) changed, if any.
    fn returning(&self, sql: &str, args: Vec<Value>) -> Result<Option<Read>> {
        let sql = format!("{sql} RETURNING {}", each());
        let rows = self.with_table(|| self.exec.query(&sql, args.clone()))?;
        rows.into_iter().next().map(read_each).transpose()
    }

    fn write(&self, sql: &str, args: Vec<Value>) -> Result<usize> {
        self.with_table(|| self.exec.execute(sql, args.clone()))
    }

    /// Stores the tasks of a JSON array of [`item`]s in one statement. With `keep_existing`,
    /// the ids of the rows it stored (`RETURNING`: only then is it not every task);
    /// otherwise none are read back.
    fn insert_items(&self, json: &str, keep_existing: bool) -> Result<Vec<String>> {
        let sql = format!(
            "WITH v AS MATERIALIZED (SELECT key, jsonb(value) AS t FROM json_each(?)) \
             INSERT OR {} INTO _lumenize_alarms ({NEW}) SELECT t ->> 0, t ->> 1, t ->> 2, t ->> 3, t ->> 4, t ->> 5, \
             t ->> 5, t ->> 6, 'pending', 0, t ->> 7, t ->> 8, t ->> 9, t ->> 10, t ->> 11, NULL, t ->> 12 FROM v ORDER BY key",
            conflict(keep_existing)
        );
        if !keep_existing {
            self.write(&sql, vec![json.into()])?;
            return Ok(Vec::new());
        }
        let sql = format!("{sql} RETURNING id");
        let rows = self.with_table(|| self.exec.query(&sql, vec![json.into()]))?;
        rows.into_iter().map(|row| Columns::new(row).text()).collect()
    }
}

fn conflict(keep_existing: bool) -> &'static str {
    if keep_existing {
        "IGNORE"
    } else {
        "REPLACE"
    }
}

/// The statement that stores one new task, and its arguments. Only what varies from task
/// to task is bound: the id, the due time, the payload, the creation time, and a cron
/// expression, zone, interval or retry policy other than the default. The rest is written
/// into the statement: in a Durable Object each bound value crosses from wasm to JavaScript
/// to SQLite, about a microsecond each, as much as storing the row. The statements are few
/// (one per [`Shape`]), so the runtime keeps each prepared, and each text is made once per
/// isolate.
fn insert_one(t: &Scheduled, keep_existing: bool) -> (Rc<str>, Vec<Value>) {
    let (kind, cron, zone, every) = schedule_columns(&t.schedule);
    let r = &t.retry;
    let default_retry = *r == RetryPolicy::default();
    let shape = Shape { kind, cron: cron.is_some(), zone: zone.is_some(), every: every.is_some(), default_retry, missed: missed_name(t.missed), keep_existing };
    // In the order `Shape::text` numbers them.
    let mut args: Vec<Value> = vec![t.id.as_str().into(), t.due_ms.into(), t.payload.as_str().into(), t.created_ms.into()];
    args.extend(cron.map(Value::from));
    args.extend(zone.map(Value::from));
    args.extend(every.map(Value::from));
    if !default_retry {
        args.extend([i64::from(r.max_attempts).into(), r.initial_backoff_ms.into(), i64::from(r.factor).into(), r.max_backoff_ms.into()]);
    }
    (shape.sql(), args)
}

/// What the text of [`insert_one`]'s statement depends on: which columns are bound, and
/// what is written into it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Shape {
    kind: &'static str,
    cron: bool,
    zone: bool,
    every: bool,
    default_retry: bool,
    missed: &'static str,
    keep_existing: bool,
}

thread_local! {
    /// The text of each [`Shape`]'s statement, made the first time it is needed (formatting
    /// it for every task cost a tenth of a `schedule`). A few at most, so a list.
    static INSERTS: RefCell<Vec<(Shape, Rc<str>)>> = RefCell::default();
}

impl Shape {
    /// The statement's text: `?1` to `?4` the id, due time, payload and creation time, then
    /// one number per bound column, in the order of the table.
    fn sql(self) -> Rc<str> {
        INSERTS.with(|texts| {
            if let Some((_, text)) = texts.borrow().iter().find(|(shape, _)| *shape == self) {
                return Rc::clone(text);
            }
            let text: Rc<str> = self.text().into();
            texts.borrow_mut().push((self, Rc::clone(&text)));
            text
        })
    }

    fn text(self) -> String {
        let mut bound = 4;
        let mut column = |is_bound: bool| {
            if is_bound {
                bound += 1;
                format!("?{bound}")
            } else {
                "NULL".to_owned()
            }
        };
        let (cron, zone, every) = (column(self.cron), column(self.zone), column(self.every));
        let retry = if self.default_retry {
            let r = RetryPolicy::default();
            format!("{}, {}, {}, {}", r.max_attempts, r.initial_backoff_ms, r.factor, r.max_backoff_ms)
        } else {
            [column(true), column(true), column(true), column(true)].join(", ")
        };
        format!(
            "INSERT OR {} INTO _lumenize_alarms ({NEW}) VALUES (?1, '{}', {cron}, {zone}, {every}, ?2, ?2, ?3, 'pending', 0, {retry}, '{}', NULL, ?4)",
            conflict(self.keep_existing),
            self.kind,
            self.missed
        )
    }
}

fn schedule_columns(s: &Schedule) -> (&'static str, Option<&str>, Option<&str>, Option<i64>) {
    match s {
        Schedule::Once => ("once", None, None, None),
        Schedule::Cron { expr, zone } => ("cron", Some(expr), zone.as_deref(), None),
        Schedule::Every { interval_ms } => ("every", None, None, Some(*interval_ms)),
    }
}

/// A new task as one JSON array, the `value` that the insert statements take apart.
fn item(task: &Scheduled) -> Result<String> {
    let (kind, cron, zone, every_ms) = schedule_columns(&task.schedule);
    let r = &task.retry;
    serde_json::to_string(&(
        &task.id,
        kind,
        cron,
        zone,
        every_ms,
        task.due_ms,
        &task.payload,
        r.max_attempts,
        r.initial_backoff_ms,
        r.factor,
        r.max_backoff_ms,
        missed_name(task.missed),
        task.created_ms,
    ))
    .map_err(Error::Encode)
}

fn missed_name(m: MissedTicks) -> &'static str {
    match m {
        MissedTicks::Skip => "skip",
        MissedTicks::Burst => "burst",
    }
}

/// Reads a row of [`each`]: its `seq` and `id` stand in when the rest does not parse.
fn read_each(row: Vec<Value>) -> Result<Read> {
    let mut c = Columns::new(row);
    let (seq, id, json) = (c.int()?, c.text().unwrap_or_default(), c.text()?);
    Ok(row::read_json(&json, seq, id))
}

/// The largest integer a Durable Object binds exactly, 2^53 - 1: a larger one crosses to
/// SQLite as a float. The bounds of a read are clamped to `-MAX_SAFE_INTEGER ..=
/// MAX_SAFE_INTEGER` before binding (no stored time is near them), and a limit above it is
/// no limit.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// A bound of a read, bound as an integer the store compares exactly.
fn bound(ms: i64) -> Value {
    ms.clamp(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER).into()
}

/// A `LIMIT`: `-1` (none) for one beyond [`MAX_SAFE_INTEGER`].
fn limit(n: usize) -> Value {
    i64::try_from(n).ok().filter(|&n| n <= MAX_SAFE_INTEGER).unwrap_or(-1).into()
}

/// `WHERE` of a conditional change, and its arguments: `seq` is the row id (never reused).
const KEYED: &str = "WHERE seq = ? AND status = ? AND due_ms = ?";

fn key_values(key: &Key) -> [Value; 3] {
    [key.seq.into(), key.status.as_str().into(), key.due_ms.into()]
}

impl<E: Exec> Store for SqlStore<E> {
    fn insert(&self, task: &Scheduled, keep_existing: bool) -> Result<bool> {
        // One task: its values bound one by one (cheaper than one JSON value taken apart in
        // SQLite, which pays off only for a batch), the few that vary (see `insert_one`).
        let (sql, args) = insert_one(task, keep_existing);
        Ok(self.write(&sql, args)? > 0)
    }

    fn insert_all(&self, tasks: &[Scheduled], keep_existing: bool) -> Result<Vec<bool>> {
        let mut stored = Vec::with_capacity(tasks.len());
        let mut batch = Batch::default();
        for task in tasks {
            let item = item(task)?;
            if item.len() > BATCH_BYTES {
                // Too large to share a statement: flush what came before, then store it alone.
                self.flush(&mut batch, keep_existing, &mut stored)?;
                stored.push(self.insert(task, keep_existing)?);
                continue;
            }
            if batch.json.len() + item.len() > BATCH_BYTES {
                self.flush(&mut batch, keep_existing, &mut stored)?;
            }
            batch.json.push(if batch.ids.is_empty() { '[' } else { ',' });
            batch.json.push_str(&item);
            batch.ids.push(&task.id);
        }
        self.flush(&mut batch, keep_existing, &mut stored)?;
        Ok(stored)
    }

    fn get(&self, id: &str) -> Result<Option<Scheduled>> {
        Ok(self.select_quarantining("FROM _lumenize_alarms WHERE id = ?", vec![id.into()])?.into_iter().next().map(Read::into_task))
    }

    fn list(&self, filter: &Filter) -> Result<Vec<Scheduled>> {
        let mut sql = String::from("FROM _lumenize_alarms WHERE 1 = 1");
        let mut args = Vec::new();
        let mut clause = |condition: &str, value: Value| {
            sql.push_str(condition);
            args.push(value);
        };
        if let Some(kind) = filter.kind {
            clause(" AND kind = ?", kind.as_str().into());
        }
        if let Some(status) = filter.status {
            clause(" AND status = ?", status.as_str().into());
        }
        if let Some(from) = filter.due_from {
            clause(" AND due_ms >= ?", bound(from));
        }
        if let Some(before) = filter.due_before {
            clause(" AND due_ms < ?", bound(before));
        }
        if let Some((due_ms, seq)) = filter.after {
            clause(" AND (due_ms > ? OR (due_ms = ? AND seq > ?))", bound(due_ms));
            args.extend([bound(due_ms), bound(seq)]);
        }
        sql.push_str(" ORDER BY due_ms, seq LIMIT ?");
        args.push(filter.limit.map_or(Value::Integer(-1), limit));
        let reads = self.select_quarantining(&sql, args)?;
        // A quarantined row is dead now: listed only where dead tasks are.
        let shown = |r: Read| match r {
            Read::Task(task) => Some(task),
            Read::Unreadable { task, .. } => filter.status.is_none_or(|s| s == Status::Dead).then_some(task),
        };
        Ok(reads.into_iter().filter_map(shown).collect())
    }

    fn due(&self, now_ms: i64, limit_n: usize) -> Result<Vec<Scheduled>> {
        let from = format!("FROM _lumenize_alarms WHERE {LIVE} AND due_ms <= ? ORDER BY due_ms, seq LIMIT ?");
        loop {
            let reads = self.select_quarantining(&from, vec![bound(now_ms), limit(limit_n)])?;
            let read = reads.len();
            let due: Vec<Scheduled> = reads.into_iter().filter_map(|r| if let Read::Task(t) = r { Some(t) } else { None }).collect();
            // A batch of quarantined rows only: they are dead now, read what follows them.
            if !due.is_empty() || read == 0 {
                return Ok(due);
            }
        }
    }

    fn earliest(&self) -> Result<Option<Key>> {
        // The key's columns only, as JSON (a float where an integer belongs stays a float).
        // A row whose key does not decode is quarantined and the next one read; a row with
        // a good key and another bad column is quarantined when it is due.
        let sql = format!(
            "SELECT seq, json_array({}, {}, {}) FROM _lumenize_alarms WHERE {LIVE} ORDER BY due_ms, seq LIMIT 1",
            json_safe("id"),
            json_safe("status"),
            json_safe("due_ms")
        );
        loop {
            let Some(row) = self.with_table(|| self.exec.query(&sql, vec![]))?.into_iter().next() else { return Ok(None) };
            let mut c = Columns::new(row);
            let (seq, json) = (c.int()?, c.text()?);
            if let Ok((id, status, due_ms)) = serde_json::from_str::<(String, String, i64)>(&json) {
                if let Some(status) = Status::parse(&status) {
                    return Ok(Some(Key { id, seq, status, due_ms }));
                }
            }
            // Read the whole row once, to quarantine it with the reason a read gives.
            let reads = self.select_quarantining("FROM _lumenize_alarms WHERE seq = ?", vec![seq.into()])?;
            if !reads.iter().any(|r| matches!(r, Read::Unreadable { live: true, .. })) {
                return Err(StorageError::other(format!("row {seq} of _lumenize_alarms has a key that does not decode ({json}), yet the row does")).into());
            }
        }
    }

    fn remove(&self, id: &str) -> Result<Option<Scheduled>> {
        Ok(self.returning("DELETE FROM _lumenize_alarms WHERE id = ?", vec![id.into()])?.map(Read::into_task))
    }

    fn discard(&self, id: &str) -> Result<bool> {
        Ok(self.write("DELETE FROM _lumenize_alarms WHERE id = ?", vec![id.into()])? > 0)
    }

    fn requeue(&self, id: &str, due_ms: i64) -> Result<Option<Scheduled>> {
        let sql = format!("{} WHERE id = ? AND status NOT IN ('pending', 'running', 'paused')", requeue_sql());
        match self.returning(&sql, vec![due_ms.into(), due_ms.into(), due_ms.into(), id.into()])? {
            None => Ok(None),
            Some(Read::Task(task)) => Ok(Some(task)),
            Some(Read::Unreadable { task, reason, .. }) => {
                // Still unreadable after the repair: back to dead, and say why.
                self.quarantine(task.seq, task.last_error.as_deref())?;
                Err(Error::Unreadable { id: task.id, reason })
            }
        }
    }

    fn change(&self, key: &Key, change: &Change) -> Result<bool> {
        let (sql, mut args): (String, Vec<Value>) = match change {
            Change::Claim => (format!("UPDATE _lumenize_alarms SET status = 'running', attempts = attempts + 1 {KEYED}"), vec![]),
            Change::Remove => (format!("DELETE FROM _lumenize_alarms {KEYED}"), vec![]),
            Change::Advance { due_ms } => (
                format!("UPDATE _lumenize_alarms SET due_ms = ?, tick_ms = ?, status = 'pending', attempts = 0, last_error = NULL {KEYED}"),
                vec![(*due_ms).into(), (*due_ms).into()],
            ),
            Change::Retry { due_ms, error, attempts } => (
                format!("UPDATE _lumenize_alarms SET due_ms = ?, status = 'pending', last_error = ?, attempts = ? {KEYED}"),
                vec![(*due_ms).into(), error.as_str().into(), i64::from(*attempts).into()],
            ),
            Change::Pause => (format!("UPDATE _lumenize_alarms SET status = 'paused' {KEYED}"), vec![]),
            Change::Resume { due_ms, tick_ms, attempts } => (
                format!("UPDATE _lumenize_alarms SET status = 'pending', due_ms = ?, tick_ms = ?, attempts = ? {KEYED}"),
                vec![(*due_ms).into(), (*tick_ms).into(), i64::from(*attempts).into()],
            ),
            Change::Kill { error, attempts } => (
                format!("UPDATE _lumenize_alarms SET status = 'dead', last_error = ?, attempts = ? {KEYED}"),
                vec![error.as_str().into(), i64::from(*attempts).into()],
            ),
        };
        args.extend(key_values(key));
        Ok(self.write(&sql, args)? > 0)
    }

    fn remove_all(&self, keys: &[Key]) -> Result<usize> {
        if keys.is_empty() {
            return Ok(0);
        }
        let json = serde_json::to_string(&keys.iter().map(|k| (k.seq, k.status.as_str(), k.due_ms)).collect::<Vec<_>>()).map_err(Error::Encode)?;
        // Each key finds its row by `seq` (a join, which SQLite runs as one lookup per key: a
        // fifth cheaper than matching `(seq, status, due_ms) IN (..)` as a whole).
        self.write(
            "DELETE FROM _lumenize_alarms WHERE seq IN (SELECT t.seq FROM json_each(?) AS k JOIN _lumenize_alarms AS t \
             ON t.seq = k.value ->> 0 AND t.status = k.value ->> 1 AND t.due_ms = k.value ->> 2)",
            vec![json.into()],
        )
    }

    fn requeue_dead(&self, filter: &Filter, due_ms: i64, limit_n: usize) -> Result<usize> {
        // The rows to requeue, chosen as `list` chooses them; a quarantined row's status may
        // be anything but a live or paused one (as `requeue` takes it).
        let mut which = String::from("SELECT seq FROM _lumenize_alarms WHERE status NOT IN ('pending', 'running', 'paused')");
        let mut args: Vec<Value> = vec![due_ms.into(), due_ms.into(), due_ms.into()];
        if let Some(kind) = filter.kind {
            which.push_str(" AND kind = ?");
            args.push(kind.as_str().into());
        }
        if let Some(from) = filter.due_from {
            which.push_str(" AND due_ms >= ?");
            args.push(bound(from));
        }
        if let Some(before) = filter.due_before {
            which.push_str(" AND due_ms < ?");
            args.push(bound(before));
        }
        if let Some((due_ms, seq)) = filter.after {
            which.push_str(" AND (due_ms > ? OR (due_ms = ? AND seq > ?))");
            args.extend([bound(due_ms), bound(due_ms), bound(seq)]);
        }
        which.push_str(" ORDER BY due_ms, seq LIMIT ?");
        args.push(limit(limit_n));
        // Counted by what it returns: what `execute` reports in a Durable Object is the rows
        // written, index entries included (two or more per row requeued).
        let sql = format!("{} WHERE seq IN ({which}) RETURNING seq", requeue_sql());
        Ok(self.with_table(|| self.exec.query(&sql, args.clone()))?.len())
    }

    fn counts(&self) -> Result<Counts> {
        let rows = self.with_table(|| self.exec.query("SELECT status, count(*) FROM _lumenize_alarms GROUP BY status", vec![]))?;
        let mut counts = Counts::default();
        for row in rows {
            let mut c = Columns::new(row);
            // A status that is not one (a row written by hand or by a bug) is shown dead.
            let status = c.text().ok().and_then(|s| Status::parse(&s)).unwrap_or(Status::Dead);
            counts.add(status, usize::try_from(c.int()?).unwrap_or(0));
        }
        Ok(counts)
    }

    fn kill_after(&self, max_ms: i64, error: &str) -> Result<usize> {
        self.write(
            &format!("UPDATE _lumenize_alarms SET status = 'dead', last_error = ? WHERE {LIVE} AND due_ms > ?"),
            vec![error.into(), bound(max_ms)],
        )
    }

    fn recreated(&self) -> u64 {
        self.recreated.get()
    }
}

/// Requeues a dead row (or one whose status is not a status at all), due at the first
/// argument, repairing what can be repaired: every number out of its range or not an
/// integer is clamped back into its range (or, when it is not a number, replaced by its
/// default: the time of the requeue, or the default retry policy's), an unknown missed-tick
/// policy becomes `skip`, an error that is not text becomes its SQL literal. A good row is left as it
/// is but for its status, attempts and due time. Arguments: the due time three times, then
/// the id.
fn requeue_sql() -> String {
    let d = RetryPolicy::default();
    let clamp = |column: &str, lo: i64, hi: i64, default: &str| {
        format!("CASE WHEN typeof({column}) IN ('integer', 'real') THEN MIN(MAX(CAST({column} AS INTEGER), {lo}), {hi}) ELSE {default} END")
    };
    format!(
        "UPDATE _lumenize_alarms SET status = 'pending', attempts = 0, due_ms = ?, tick_ms = {tick}, created_ms = {created}, \
         every_ms = CASE WHEN kind = 'every' THEN {every} ELSE every_ms END, max_attempts = {attempts}, backoff_ms = {backoff}, \
         backoff_factor = {factor}, max_backoff_ms = {max_backoff}, \
         missed = CASE WHEN missed IN ('skip', 'burst') THEN missed ELSE 'skip' END, \
         last_error = CASE typeof(last_error) WHEN 'null' THEN NULL WHEN 'text' THEN last_error ELSE quote(last_error) END",
        tick = clamp("tick_ms", 0, MAX_TIME_MS, "?"),
        created = clamp("created_ms", 0, MAX_TIME_MS, "?"),
        every = clamp("every_ms", 1, MAX_TIME_MS, "NULL"),
        attempts = clamp("max_attempts", 1, MAX_ATTEMPTS.into(), &d.max_attempts.to_string()),
        backoff = clamp("backoff_ms", 0, MAX_BACKOFF_MS, &d.initial_backoff_ms.to_string()),
        factor = clamp("backoff_factor", 1, MAX_FACTOR.into(), &d.factor.to_string()),
        max_backoff = clamp("max_backoff_ms", 0, MAX_BACKOFF_MS, &d.max_backoff_ms.to_string()),
    )
}

/// The tasks of one batch statement: their [`item`]s as a JSON array (`]` not yet
/// written), and their ids in order.
#[derive(Default)]
struct Batch<'a> {
    json: String,
    ids: Vec<&'a str>,
}

impl<E: Exec> SqlStore<E> {
    /// Stores the tasks of `batch` in one statement, if there are any, and empties it;
    /// records whether each was stored in `stored`, in order.
    fn flush(&self, batch: &mut Batch<'_>, keep_existing: bool, stored: &mut Vec<bool>) -> Result<()> {
        if batch.ids.is_empty() {
            return Ok(());
        }
        batch.json.push(']');
        // With `keep_existing`, the first task of an id may be stored, never a later one (the
        // first is kept): each id returned (once: ids are unique) stands for its first task.
        let mut returned: std::collections::HashSet<String> = self.insert_items(&batch.json, keep_existing)?.into_iter().collect();
        stored.extend(batch.ids.drain(..).map(|id| !keep_existing || returned.remove(id)));
        batch.json.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_json_lists_the_columns_in_the_order_rows_are_read() {
        let listed: String = TASK.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(listed, format!("json_array({})", row::COLUMNS.join(", ")));
    }
}
