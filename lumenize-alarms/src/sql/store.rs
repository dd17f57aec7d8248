//! `SqlStore`: the [`Store`] intents as SQL statements on one table, `_lumenize_alarms`,
//! with a schema version so that a later release can migrate it.
//!
//! Every change to a task is one conditional statement on its row id (`... WHERE seq = ?
//! AND status = ? AND due_ms = ?`), and a batch of tasks is stored with one `INSERT ...
//! SELECT ... FROM json_each(?)`.

use std::cell::Cell;

use crate::core::{Change, Filter, Key, MissedTicks, RetryPolicy, Schedule, Scheduled, Status, Store};
use crate::error::{Error, Result};
use crate::sql::exec::{Columns, Exec, Value};

/// The schema version this release writes. Version 1 (JSON columns for the schedule, the
/// retry policy and the missed-tick policy) is migrated on open.
pub const SCHEMA_VERSION: i64 = 2;

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
CREATE INDEX IF NOT EXISTS _lumenize_alarms_live ON _lumenize_alarms (due_ms, seq) WHERE status != 'dead';
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
UPDATE _lumenize_alarms_meta SET value = 2 WHERE key = 'schema_version';
";

/// A task's columns as one JSON array, in the order [`Row`] reads them: a row crosses from
/// SQLite to Rust as one string (in a Durable Object, every value read is a JavaScript call).
/// Its size is bounded: every character of the row escapes to at most two.
const TASK: &str = "json_array(seq, id, kind, cron, zone, every_ms, due_ms, tick_ms, payload, status, attempts, \
                    max_attempts, backoff_ms, backoff_factor, max_backoff_ms, missed, last_error, created_ms)";

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
            Err(Error::Storage(message)) if message.contains("no such table") => {
                self.create()?;
                self.recreated.set(self.recreated.get() + 1);
                op()
            }
            other => other,
        }
    }

    /// The tasks a `SELECT ... FROM _lumenize_alarms ...` (`from`: everything after `SELECT`'s
    /// column list) returns, in `(due_ms, seq)` order. They cross from SQLite as one JSON
    /// string (in a Durable Object, every value read is a JavaScript call); if that string
    /// would be over what SQLite allows (payloads of a megabyte), one string per task.
    fn select(&self, from: &str, args: Vec<Value>) -> Result<Vec<Scheduled>> {
        let all = format!("SELECT json_group_array({TASK}) FROM (SELECT * {from})");
        let mut tasks = match self.with_table(|| self.exec.query(&all, args.clone())) {
            Ok(rows) => {
                let json = rows.into_iter().next().map(|row| Columns::new(row).text()).transpose()?.unwrap_or_default();
                serde_json::from_str::<Vec<Row>>(&json)
                    .map_err(|e| Error::Storage(format!("unreadable rows of _lumenize_alarms: {e}")))?
                    .into_iter()
                    .map(Row::into_task)
                    .collect::<Result<Vec<_>>>()?
            }
            Err(Error::Storage(message)) if message.contains("too big") => {
                let each = format!("SELECT {TASK} {from}");
                let rows = self.with_table(|| self.exec.query(&each, args.clone()))?;
                rows.into_iter().map(|row| parse_row(&Columns::new(row).text()?)).collect::<Result<Vec<_>>>()?
            }
            Err(e) => return Err(e),
        };
        tasks.sort_by_key(|t| (t.due_ms, t.seq));
        Ok(tasks)
    }

    /// The task a `... RETURNING` statement (`sql` without its `RETURNING`) changed, if any.
    fn returning(&self, sql: &str, args: Vec<Value>) -> Result<Option<Scheduled>> {
        let sql = format!("{sql} RETURNING {TASK}");
        let rows = self.with_table(|| self.exec.query(&sql, args.clone()))?;
        rows.into_iter().next().map(|row| parse_row(&Columns::new(row).text()?)).transpose()
    }

    fn write(&self, sql: &str, args: Vec<Value>) -> Result<usize> {
        self.with_table(|| self.exec.execute(sql, args.clone()))
    }

    /// Stores the tasks of a JSON array of [`item`]s in one statement; how many rows it
    /// wrote.
    fn insert_items(&self, json: &str, keep_existing: bool) -> Result<usize> {
        let sql = format!(
            "WITH v AS MATERIALIZED (SELECT key, jsonb(value) AS t FROM json_each(?)) \
             INSERT OR {} INTO _lumenize_alarms ({NEW}) SELECT t ->> 0, t ->> 1, t ->> 2, t ->> 3, t ->> 4, t ->> 5, \
             t ->> 5, t ->> 6, 'pending', 0, t ->> 7, t ->> 8, t ->> 9, t ->> 10, t ->> 11, NULL, t ->> 12 FROM v ORDER BY key",
            conflict(keep_existing)
        );
        self.write(&sql, vec![json.into()])
    }
}

fn conflict(keep_existing: bool) -> &'static str {
    if keep_existing {
        "IGNORE"
    } else {
        "REPLACE"
    }
}

/// The values of a new task, in the order of [`NEW`] minus the fixed ones.
fn new_values(t: &Scheduled) -> Vec<Value> {
    let (kind, cron, zone, every) = schedule_columns(&t.schedule);
    vec![
        t.id.as_str().into(),
        kind.into(),
        cron.into(),
        zone.into(),
        every.into(),
        t.due_ms.into(),
        t.tick_ms.into(),
        t.payload.as_str().into(),
        i64::from(t.retry.max_attempts).into(),
        t.retry.initial_backoff_ms.into(),
        i64::from(t.retry.factor).into(),
        t.retry.max_backoff_ms.into(),
        missed_name(t.missed).into(),
        t.created_ms.into(),
    ]
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

fn corrupt(id: &str, what: &str) -> Error {
    Error::Storage(format!("task {id:?}: unreadable {what} column"))
}

/// A task as [`TASK`] writes it.
#[derive(serde::Deserialize)]
struct Row(
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
    i64,
    i64,
    i64,
    i64,
    i64,
    String,
    Option<String>,
    i64,
);

fn parse_row(json: &str) -> Result<Scheduled> {
    serde_json::from_str::<Row>(json).map_err(|e| Error::Storage(format!("unreadable row of _lumenize_alarms: {e}")))?.into_task()
}

impl Row {
    fn into_task(self) -> Result<Scheduled> {
        let Row(seq, id, kind, cron, zone, every, due_ms, tick_ms, payload, status, attempts, max_attempts, backoff, factor, max_backoff, missed, last_error, created_ms) =
            self;
        let schedule = match (kind.as_str(), cron, every) {
            ("once", _, _) => Schedule::Once,
            ("cron", Some(expr), _) => Schedule::Cron { expr, zone },
            ("every", _, Some(interval_ms)) if interval_ms > 0 => Schedule::Every { interval_ms },
            _ => return Err(corrupt(&id, "schedule")),
        };
        let count = |v: i64, what: &str| u32::try_from(v).map_err(|_| corrupt(&id, what));
        let retry = RetryPolicy {
            max_attempts: count(max_attempts, "max_attempts")?,
            initial_backoff_ms: backoff,
            factor: count(factor, "backoff_factor")?,
            max_backoff_ms: max_backoff,
        };
        let missed = match missed.as_str() {
            "skip" => MissedTicks::Skip,
            "burst" => MissedTicks::Burst,
            _ => return Err(corrupt(&id, "missed")),
        };
        Ok(Scheduled {
            status: Status::parse(&status).ok_or_else(|| corrupt(&id, "status"))?,
            attempts: count(attempts, "attempts")?,
            seq,
            schedule,
            due_ms,
            tick_ms,
            payload,
            retry,
            missed,
            last_error,
            created_ms,
            id,
        })
    }
}

/// `WHERE` of a conditional change, and its arguments: `seq` is the row id (never reused).
const KEYED: &str = "WHERE seq = ? AND status = ? AND due_ms = ?";

fn key_values(key: &Key) -> [Value; 3] {
    [key.seq.into(), key.status.as_str().into(), key.due_ms.into()]
}

impl<E: Exec> Store for SqlStore<E> {
    fn insert(&self, task: &Scheduled, keep_existing: bool) -> Result<bool> {
        // One task: its values bound one by one (cheaper than one JSON value taken apart by
        // `json_each`, which pays off only for a batch).
        let sql = format!(
            "INSERT OR {} INTO _lumenize_alarms ({NEW}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?, NULL, ?)",
            conflict(keep_existing)
        );
        Ok(self.write(&sql, new_values(task))? > 0)
    }

    fn insert_all(&self, tasks: &[Scheduled], keep_existing: bool) -> Result<()> {
        let mut json = String::from("[");
        for task in tasks {
            let item = item(task)?;
            if item.len() > BATCH_BYTES {
                // Too large to share a statement: flush what came before, then store it alone.
                self.flush(&mut json, keep_existing)?;
                self.insert(task, keep_existing)?;
                continue;
            }
            if json.len() + item.len() > BATCH_BYTES {
                self.flush(&mut json, keep_existing)?;
            }
            if json.len() > 1 {
                json.push(',');
            }
            json.push_str(&item);
        }
        self.flush(&mut json, keep_existing)
    }

    fn get(&self, id: &str) -> Result<Option<Scheduled>> {
        Ok(self.select("FROM _lumenize_alarms WHERE id = ?", vec![id.into()])?.into_iter().next())
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
            clause(" AND due_ms >= ?", from.into());
        }
        if let Some(before) = filter.due_before {
            clause(" AND due_ms < ?", before.into());
        }
        let limit = filter.limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        sql.push_str(" ORDER BY due_ms, seq LIMIT ?");
        args.push(limit.into());
        self.select(&sql, args)
    }

    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Scheduled>> {
        let from = "FROM _lumenize_alarms WHERE status != 'dead' AND due_ms <= ? ORDER BY due_ms, seq LIMIT ?";
        self.select(from, vec![now_ms.into(), i64::try_from(limit).unwrap_or(i64::MAX).into()])
    }

    fn earliest(&self) -> Result<Option<Key>> {
        let sql = "SELECT id, seq, status, due_ms FROM _lumenize_alarms WHERE status != 'dead' ORDER BY due_ms, seq LIMIT 1";
        let rows = self.with_table(|| self.exec.query(sql, vec![]))?;
        rows.into_iter()
            .next()
            .map(|row| {
                let mut c = Columns::new(row);
                let (id, seq, status) = (c.text()?, c.int()?, c.text()?);
                let status = Status::parse(&status).ok_or_else(|| corrupt(&id, "status"))?;
                Ok(Key { id, seq, status, due_ms: c.int()? })
            })
            .transpose()
    }

    fn remove(&self, id: &str) -> Result<Option<Scheduled>> {
        self.returning("DELETE FROM _lumenize_alarms WHERE id = ?", vec![id.into()])
    }

    fn requeue(&self, id: &str, due_ms: i64) -> Result<Option<Scheduled>> {
        let sql = "UPDATE _lumenize_alarms SET status = 'pending', attempts = 0, due_ms = ? WHERE id = ? AND status = 'dead'";
        self.returning(sql, vec![due_ms.into(), id.into()])
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
        self.write(
            "DELETE FROM _lumenize_alarms WHERE (seq, status, due_ms) IN (SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?))",
            vec![json.into()],
        )
    }

    fn kill_after(&self, max_ms: i64, error: &str) -> Result<usize> {
        self.write(
            "UPDATE _lumenize_alarms SET status = 'dead', last_error = ? WHERE status != 'dead' AND due_ms > ?",
            vec![error.into(), max_ms.into()],
        )
    }

    fn recreated(&self) -> u64 {
        self.recreated.get()
    }
}

impl<E: Exec> SqlStore<E> {
    fn flush(&self, json: &mut String, keep_existing: bool) -> Result<()> {
        if json.len() > 1 {
            json.push(']');
            self.insert_items(json, keep_existing)?;
        }
        json.clear();
        json.push('[');
        Ok(())
    }
}
