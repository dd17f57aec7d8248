//! `Exec`: what the SQL store needs of a SQLite connection.

use crate::error::{Error, Result, StorageError};

/// One SQL value, bound or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `NULL`.
    Null,
    /// An `INTEGER`.
    Integer(i64),
    /// A `TEXT`.
    Text(String),
    /// A `BLOB`: what the store reads its batches of rows as (their JSON's bytes, which
    /// cross from SQLite without being made a JavaScript string).
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A SQLite connection, as the SQL store uses it: statements with positional `?` arguments,
/// rows read by position. Implemented for `worker::SqlStorage`; the tests implement it over
/// a native SQLite.
///
/// A value read that is not exactly an integer, text, blob or NULL (a float) must be read
/// as [`Value::Null`], never rounded to an integer: the store reads its numbers through JSON,
/// where a float is seen as one, and a row holding one is quarantined rather than misread.
///
/// ```
/// use lumenize_alarms::sql::{Exec, Value};
/// use lumenize_alarms::Result;
///
/// /// A connection that has no rows and writes nothing (a sketch of the shape).
/// struct Empty;
/// impl Exec for Empty {
///     fn query(&self, _sql: &str, _args: Vec<Value>) -> Result<Vec<Vec<Value>>> { Ok(vec![]) }
///     fn execute(&self, _sql: &str, _args: Vec<Value>) -> Result<usize> { Ok(0) }
///     fn script(&self, _sql: &str) -> Result<()> { Ok(()) }
/// }
/// ```
pub trait Exec {
    /// Runs one statement and returns its rows, each the values of its columns in order.
    ///
    /// # Errors
    /// [`Error::Storage`] with SQLite's message, and its [kind](crate::StorageKind)
    /// ([`NoSuchTable`](crate::StorageKind::NoSuchTable) and
    /// [`TooBig`](crate::StorageKind::TooBig) at least): the store matches on the kind,
    /// never on the message.
    fn query(&self, sql: &str, args: Vec<Value>) -> Result<Vec<Vec<Value>>>;
    /// Runs one statement that returns no rows; how many rows it wrote (more than zero when
    /// it changed any).
    ///
    /// # Errors
    /// [`Error::Storage`] with SQLite's message.
    fn execute(&self, sql: &str, args: Vec<Value>) -> Result<usize>;
    /// Runs statements without arguments, separated by `;` (the schema).
    ///
    /// # Errors
    /// [`Error::Storage`] with SQLite's message.
    fn script(&self, sql: &str) -> Result<()>;
}

/// Reads one row's values in order, with the table's name for errors.
pub(crate) struct Columns(std::vec::IntoIter<Value>);

impl Columns {
    pub(crate) fn new(row: Vec<Value>) -> Self {
        Columns(row.into_iter())
    }

    fn next(&mut self) -> Value {
        self.0.next().unwrap_or(Value::Null)
    }

    /// An integer (`seq` and the schema version: the numbers of a task are read through JSON).
    pub(crate) fn int(&mut self) -> Result<i64> {
        match self.next() {
            Value::Integer(v) => Ok(v),
            other => Err(unreadable("an integer", &other)),
        }
    }

    /// The bytes of a BLOB (or of text).
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>> {
        match self.next() {
            Value::Blob(v) => Ok(v),
            Value::Text(v) => Ok(v.into_bytes()),
            other => Err(unreadable("a blob", &other)),
        }
    }

    pub(crate) fn text(&mut self) -> Result<String> {
        match self.next() {
            Value::Text(v) => Ok(v),
            other => Err(unreadable("text", &other)),
        }
    }
}

fn unreadable(wanted: &str, found: &Value) -> Error {
    StorageError::other(format!("unreadable row of _lumenize_alarms: wanted {wanted}, found {found:?}")).into()
}
