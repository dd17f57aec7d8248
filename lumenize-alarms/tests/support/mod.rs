//! What the native tests share: a native SQLite under the real SQL store, limited like a
//! Durable Object's, and a tiny executor for the core's futures.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use lumenize_alarms::sql::{Exec, SqlStore, Value};
use lumenize_alarms::{Error, Result, StorageError, StorageKind};
use rusqlite::types::{Value as SqliteValue, ValueRef};
use rusqlite::limits::Limit;
use rusqlite::{params_from_iter, Connection};

/// SQLite in a Durable Object refuses a string, blob or row over 2 MB; so does this one.
pub const DURABLE_OBJECT_MAX_LENGTH: i32 = 2_000_000;

/// A native in-memory SQLite, as an [`Exec`], binding values as a Durable Object does.
pub struct Sqlite(pub Connection);

impl Sqlite {
    pub fn new() -> Self {
        let conn = Connection::open_in_memory().expect("an in-memory SQLite");
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, DURABLE_OBJECT_MAX_LENGTH).expect("set the length limit");
        Sqlite(conn)
    }
}

/// Classified once, here: by SQLite's result code where it has one of its own
/// (`SQLITE_TOOBIG`), else by its message (a missing table is a plain `SQLITE_ERROR`), as
/// the Durable Object's executor does.
fn storage(e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::TooBig => StorageError::new(StorageKind::TooBig, e.to_string()).into(),
        _ => StorageError::classify(e.to_string()).into(),
    }
}

/// The largest integer a JavaScript number holds exactly (2^53 - 1).
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Binds as a Durable Object does: every integer crosses to SQLite as a JavaScript number, so
/// one beyond [`MAX_SAFE_INTEGER`] arrives as a float (and a column of it then reads back as
/// `9.22e18`, not as the integer written).
fn bind(args: Vec<Value>) -> impl Iterator<Item = SqliteValue> {
    args.into_iter().map(|v| match v {
        Value::Null => SqliteValue::Null,
        #[allow(clippy::cast_precision_loss)]
        Value::Integer(i) if i.unsigned_abs() > MAX_SAFE_INTEGER.unsigned_abs() => SqliteValue::Real(i as f64),
        Value::Integer(i) => SqliteValue::Integer(i),
        Value::Text(s) => SqliteValue::Text(s),
        Value::Blob(b) => SqliteValue::Blob(b),
    })
}

fn read(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        // As in a Durable Object: a REAL that is a safe integer arrives as a JavaScript number
        // workers-rs reads as an integer; any other arrives as a float, which the store's
        // executor reads as NULL (never as an integer it is not).
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        ValueRef::Real(f) if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER as f64 => Value::Integer(f as i64),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        ValueRef::Real(_) | ValueRef::Null => Value::Null,
    }
}

impl Exec for Sqlite {
    fn query(&self, sql: &str, args: Vec<Value>) -> Result<Vec<Vec<Value>>> {
        let mut stmt = self.0.prepare(sql).map_err(storage)?;
        let n = stmt.column_count();
        let rows = stmt
            .query_map(params_from_iter(bind(args)), |row| (0..n).map(|i| row.get_ref(i).map(read)).collect())
            .map_err(storage)?;
        rows.collect::<rusqlite::Result<Vec<Vec<Value>>>>().map_err(storage)
    }

    fn execute(&self, sql: &str, args: Vec<Value>) -> Result<usize> {
        self.0.execute(sql, params_from_iter(bind(args))).map_err(storage)
    }

    fn script(&self, sql: &str) -> Result<()> {
        self.0.execute_batch(sql).map_err(storage)
    }
}

/// The real SQL store over a fresh native SQLite.
pub fn sql_store() -> SqlStore<Sqlite> {
    SqlStore::open(Sqlite::new()).expect("open the SQL store")
}

/// A fresh store of either kind, shared (`Rc`) so that a test can restart a scheduler on it.
pub trait Fresh: lumenize_alarms::core::Store + Sized + 'static {
    fn fresh() -> Rc<Self>;
}

impl Fresh for lumenize_alarms::core::MemoryStore {
    fn fresh() -> Rc<Self> {
        Rc::new(Self::default())
    }
}

impl Fresh for SqlStore<Sqlite> {
    fn fresh() -> Rc<Self> {
        Rc::new(sql_store())
    }
}

/// A scheduler over a fresh store of type `S`, with a simulated native alarm: the fixture of
/// the example tests, each file adding the methods it needs in its own `impl`.
pub struct Fixture<S: lumenize_alarms::core::Store> {
    pub sched: lumenize_alarms::core::Scheduler<Rc<S>>,
    pub alarm: lumenize_alarms::core::SimulatedAlarm,
}

impl<S: Fresh> Fixture<S> {
    pub fn new() -> Self {
        Fixture { sched: lumenize_alarms::core::Scheduler::new(S::fresh()), alarm: lumenize_alarms::core::SimulatedAlarm::default() }
    }
}

/// How often `block_on` polls before it declares the isolate dead.
pub const POLL_BOUND: usize = 1_000;

/// Polls `fut` to completion with a no-op waker, at most [`POLL_BOUND`] times. `None` means
/// it never completed: the future is dropped here, as a crashing isolate would drop it.
pub fn block_on<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..POLL_BOUND {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}

/// `block_on`, for futures that must complete.
pub fn done<F: Future>(fut: F) -> F::Output {
    block_on(fut).expect("the future completes")
}

/// A handler's future: `result` after `yields` pending polls, or never when `result` is
/// `None` (the isolate dies inside the handler).
pub struct HandlerFut {
    pub result: Option<std::result::Result<(), String>>,
    pub yields: u32,
}

impl Future for HandlerFut {
    type Output = std::result::Result<(), String>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.yields > 0 {
            self.yields -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match self.result.take() {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }
}

pub fn ready(result: std::result::Result<(), String>) -> HandlerFut {
    HandlerFut { result: Some(result), yields: 0 }
}

/// Stamps each named generic test `fn name<S: Fresh>()` out once per store.
#[macro_export]
macro_rules! for_each_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $name() { super::$name::<lumenize_alarms::core::MemoryStore>() })*
        }
        mod sql {
            $(#[test] fn $name() { super::$name::<lumenize_alarms::sql::SqlStore<$crate::support::Sqlite>>() })*
        }
    };
}

/// An [`Exec`] that counts the statements it runs, to check what an operation costs.
pub struct Counting<E> {
    pub inner: E,
    pub statements: std::cell::Cell<usize>,
}

impl<E: Exec> Exec for Counting<E> {
    fn query(&self, sql: &str, args: Vec<Value>) -> Result<Vec<Vec<Value>>> {
        self.statements.set(self.statements.get() + 1);
        self.inner.query(sql, args)
    }
    fn execute(&self, sql: &str, args: Vec<Value>) -> Result<usize> {
        self.statements.set(self.statements.get() + 1);
        self.inner.execute(sql, args)
    }
    fn script(&self, sql: &str) -> Result<()> {
        self.statements.set(self.statements.get() + 1);
        self.inner.script(sql)
    }
}

/// The SQL store over a counting native SQLite.
pub fn counting_store() -> SqlStore<Counting<Sqlite>> {
    SqlStore::open(Counting { inner: Sqlite::new(), statements: std::cell::Cell::new(0) }).expect("open the SQL store")
}

/// `value` changed by `f`: how the tests build variants of the library's `#[non_exhaustive]`
/// structs (`Scheduled`, `RetryPolicy`, `Options`, `Filter`, `Counts`), whose fields users
/// may set but not list in a struct expression.
pub trait Edit: Sized {
    #[must_use]
    fn edit(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

impl<T> Edit for T {}

/// A policy with exactly these fields (not normalized), as a user may write them.
pub fn policy(max_attempts: u32, initial_backoff_ms: i64, factor: u32, max_backoff_ms: i64) -> lumenize_alarms::RetryPolicy {
    lumenize_alarms::RetryPolicy::default().edit(|p| {
        (p.max_attempts, p.initial_backoff_ms, p.factor, p.max_backoff_ms) = (max_attempts, initial_backoff_ms, factor, max_backoff_ms);
    })
}

/// The counts `(pending, running, paused, dead)`.
pub fn counts(c: lumenize_alarms::Counts) -> (usize, usize, usize, usize) {
    (c.pending, c.running, c.paused, c.dead)
}
