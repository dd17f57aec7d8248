//! [`Exec`] over a Durable Object's `worker::SqlStorage`.

use wasm_bindgen::JsValue;
use worker::{SqlStorage, SqlStorageValue};

use crate::error::{Error, Result, StorageError};
use crate::sql::exec::{Exec, Value};

/// workerd's SQLite errors arrive as JavaScript exceptions, with text only: classified
/// here, once.
fn storage(e: worker::Error) -> Error {
    StorageError::classify(e.to_string()).into()
}

/// The arguments as JavaScript values, made here rather than by `SqlStorage::exec`, which
/// asks JavaScript whether each integer is a safe one (a call per integer): the store binds
/// none beyond 2^53 (see `bound` in the store).
fn bind(args: Vec<Value>) -> Vec<JsValue> {
    args.into_iter()
        .map(|v| match v {
            Value::Null => JsValue::NULL,
            #[allow(clippy::cast_precision_loss)] // below 2^53: exact
            Value::Integer(i) => JsValue::from_f64(i as f64),
            Value::Text(s) => JsValue::from_str(&s),
            Value::Blob(b) => js_sys::Uint8Array::from(b.as_slice()).into(),
        })
        .collect()
}

fn read(v: SqlStorageValue) -> Value {
    match v {
        SqlStorageValue::Integer(i) => Value::Integer(i),
        SqlStorageValue::String(s) => Value::Text(s),
        SqlStorageValue::Boolean(b) => Value::Integer(i64::from(b)),
        // A number that is not a safe integer (a REAL, or an integer beyond 2^53): never read
        // as an integer it is not. The scheduler reads its numbers through JSON (where a
        // float stays a float, and its row is quarantined); a direct read sees no value.
        SqlStorageValue::Blob(b) => Value::Blob(b),
        SqlStorageValue::Float(_) | SqlStorageValue::Null => Value::Null,
    }
}

impl Exec for SqlStorage {
    fn query(&self, sql: &str, args: Vec<Value>) -> Result<Vec<Vec<Value>>> {
        let cursor = self.exec_raw(sql, bind(args)).map_err(storage)?;
        cursor.raw().map(|row| row.map(|values| values.into_iter().map(read).collect()).map_err(storage)).collect()
    }

    fn execute(&self, sql: &str, args: Vec<Value>) -> Result<usize> {
        Ok(self.exec_raw(sql, bind(args)).map_err(storage)?.rows_written())
    }

    fn script(&self, sql: &str) -> Result<()> {
        self.exec(sql, None).map(drop).map_err(storage)
    }
}
