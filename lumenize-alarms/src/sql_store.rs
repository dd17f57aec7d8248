//! The [`Store`] over a Durable Object's SQLite: one table, created on first use, with a
//! schema version so a later release can migrate it.

use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue as V, Storage};

use crate::core::{Filter, Scheduled, Status, Store};
use crate::{Error, Result};

/// The schema version this release writes.
pub(crate) const SCHEMA_VERSION: i64 = 1;

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS _lumenize_alarms (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    schedule TEXT NOT NULL,
    due_ms INTEGER NOT NULL,
    tick_ms INTEGER NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    retry TEXT NOT NULL,
    missed TEXT NOT NULL,
    last_error TEXT,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS _lumenize_alarms_live ON _lumenize_alarms (due_ms, seq) WHERE status != 'dead';
CREATE TABLE IF NOT EXISTS _lumenize_alarms_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

const COLUMNS: &str = "seq, id, schedule, due_ms, tick_ms, payload, status, attempts, retry, missed, last_error, created_ms";

/// Tasks in the `_lumenize_alarms` table of one Durable Object.
pub(crate) struct SqlStore {
    sql: SqlStorage,
}

impl SqlStore {
    /// Opens the table, creating it (and recording the schema version) on first use.
    ///
    /// # Errors
    /// [`Error::NoSqlite`] for an object without SQLite storage, [`Error::SchemaTooNew`] for
    /// a table written by a newer release.
    pub(crate) fn open(storage: &Storage) -> Result<Self> {
        // `Storage::sql` throws (uncatchably, from Rust) on an object without SQLite: look first.
        let sql = js_sys::Reflect::get(storage.as_raw(), &"sql".into()).map_err(|_| Error::NoSqlite)?;
        if sql.is_undefined() || sql.is_null() {
            return Err(Error::NoSqlite);
        }
        let store = SqlStore { sql: storage.sql() };
        store.exec(CREATE, vec![]).map_err(|e| match e {
            Error::Storage(msg) if msg.contains("SQL is not enabled") => Error::NoSqlite,
            e => e,
        })?;
        store.exec("INSERT OR IGNORE INTO _lumenize_alarms_meta VALUES ('schema_version', ?)", vec![SCHEMA_VERSION.into()])?;
        #[derive(Deserialize)]
        struct Version {
            value: i64,
        }
        let found: Vec<Version> = store.query("SELECT value FROM _lumenize_alarms_meta WHERE key = 'schema_version'", vec![])?;
        match found.first() {
            Some(v) if v.value > SCHEMA_VERSION => Err(Error::SchemaTooNew { found: v.value, supported: SCHEMA_VERSION }),
            _ => Ok(store),
        }
    }

    fn exec(&self, query: &str, bindings: Vec<V>) -> Result<worker::SqlCursor> {
        self.sql.exec(query, bindings).map_err(|e| Error::Storage(e.to_string()))
    }

    fn query<R: for<'de> Deserialize<'de>>(&self, query: &str, bindings: Vec<V>) -> Result<Vec<R>> {
        self.exec(query, bindings)?.to_array().map_err(|e| Error::Storage(e.to_string()))
    }

    fn tasks(&self, query: &str, bindings: Vec<V>) -> Result<Vec<Scheduled>> {
        self.query::<Row>(query, bindings)?.into_iter().map(Row::into_task).collect()
    }

    fn one(&self, query: &str, bindings: Vec<V>) -> Result<Option<Scheduled>> {
        Ok(self.tasks(query, bindings)?.into_iter().next())
    }
}

/// One row as SQLite returns it.
#[derive(Deserialize)]
struct Row {
    seq: i64,
    id: String,
    schedule: String,
    due_ms: i64,
    tick_ms: i64,
    payload: String,
    status: String,
    attempts: u32,
    retry: String,
    missed: String,
    last_error: Option<String>,
    created_ms: i64,
}

impl Row {
    fn into_task(self) -> Result<Scheduled> {
        let corrupt = |what: &str| Error::Storage(format!("task {:?}: unreadable {what} column", self.id));
        Ok(Scheduled {
            schedule: serde_json::from_str(&self.schedule).map_err(|_| corrupt("schedule"))?,
            status: Status::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            retry: serde_json::from_str(&self.retry).map_err(|_| corrupt("retry"))?,
            missed: serde_json::from_str(&self.missed).map_err(|_| corrupt("missed"))?,
            seq: self.seq,
            due_ms: self.due_ms,
            tick_ms: self.tick_ms,
            attempts: self.attempts,
            created_ms: self.created_ms,
            last_error: self.last_error,
            payload: self.payload,
            id: self.id,
        })
    }
}

fn json(value: &impl serde::Serialize) -> V {
    V::String(serde_json::to_string(value).unwrap_or_default())
}

/// The columns after `seq`, in `COLUMNS` order.
fn values(t: &Scheduled) -> Vec<V> {
    vec![
        t.id.as_str().into(),
        json(&t.schedule),
        t.due_ms.into(),
        t.tick_ms.into(),
        t.payload.as_str().into(),
        t.status.as_str().into(),
        i64::from(t.attempts).into(),
        json(&t.retry),
        json(&t.missed),
        t.last_error.clone().into(),
        t.created_ms.into(),
    ]
}

impl Store for SqlStore {
    fn get(&self, id: &str) -> Result<Option<Scheduled>> {
        self.one(&format!("SELECT {COLUMNS} FROM _lumenize_alarms WHERE id = ?"), vec![id.into()])
    }

    fn insert(&self, task: &Scheduled) -> Result<i64> {
        #[derive(Deserialize)]
        struct Seq {
            seq: i64,
        }
        let mut bindings = values(task);
        bindings.insert(1, task.schedule.kind().as_str().into());
        let rows: Vec<Seq> = self.query(
            "INSERT OR REPLACE INTO _lumenize_alarms (id, kind, schedule, due_ms, tick_ms, payload, status, attempts, retry, missed, last_error, created_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            bindings,
        )?;
        rows.first().map(|r| r.seq).ok_or_else(|| Error::Storage("insert returned no sequence number".into()))
    }

    fn put(&self, task: &Scheduled) -> Result<()> {
        let mut bindings = values(task);
        bindings.insert(1, task.schedule.kind().as_str().into());
        bindings.push(task.seq.into());
        self.exec(
            "INSERT OR REPLACE INTO _lumenize_alarms (id, kind, schedule, due_ms, tick_ms, payload, status, attempts, retry, missed, last_error, created_ms, seq) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            bindings,
        )?;
        Ok(())
    }

    fn remove(&self, id: &str) -> Result<bool> {
        Ok(self.exec("DELETE FROM _lumenize_alarms WHERE id = ?", vec![id.into()])?.rows_written() > 0)
    }

    fn next_due(&self, now_ms: i64) -> Result<Option<Scheduled>> {
        self.one(
            &format!("SELECT {COLUMNS} FROM _lumenize_alarms WHERE status != 'dead' AND due_ms <= ? ORDER BY due_ms, seq LIMIT 1"),
            vec![now_ms.into()],
        )
    }

    fn earliest(&self) -> Result<Option<i64>> {
        #[derive(Deserialize)]
        struct Due {
            due_ms: i64,
        }
        let rows: Vec<Due> =
            self.query("SELECT due_ms FROM _lumenize_alarms WHERE status != 'dead' ORDER BY due_ms, seq LIMIT 1", vec![])?;
        Ok(rows.first().map(|r| r.due_ms))
    }

    fn list(&self, filter: &Filter) -> Result<Vec<Scheduled>> {
        let mut query = format!("SELECT {COLUMNS} FROM _lumenize_alarms WHERE 1 = 1");
        let mut bindings = Vec::new();
        let mut clause = |sql: &str, value: V| {
            query.push_str(sql);
            bindings.push(value);
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
        query.push_str(" ORDER BY due_ms, seq");
        if let Some(limit) = filter.limit {
            query.push_str(&format!(" LIMIT {}", i64::try_from(limit).unwrap_or(i64::MAX)));
        }
        self.tasks(&query, bindings)
    }
}
