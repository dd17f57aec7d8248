//! Any number of durable scheduled tasks on a Durable Object's one native alarm.
//!
//! placeholder: crate docs come with the adapter.

mod alarms;
mod error;
mod options;
mod panic_abort;
mod policy;
mod sql_store;
mod when;

pub mod core;

pub use crate::core::{Filter, RunReport, Status, Scheduled};
pub use alarms::{Alarms, DEFAULT_BATCH_LIMIT};
pub use panic_abort::AbortOnPanic;
pub use error::{Error, Result};
pub use options::Options;
pub use policy::{MissedTicks, RetryPolicy};
pub use when::{Kind, Schedule, When};
