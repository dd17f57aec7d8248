//! The SQL store: the scheduler's table and its statements, written once, over a small
//! [`Exec`] trait. In a Durable Object it runs on `worker::SqlStorage`; the native tests run
//! the same statements on a native SQLite.

mod exec;
mod row;
mod store;
mod worker_exec;

pub use exec::{Exec, Value};
pub use store::{SqlStore, SCHEMA_VERSION};
