//! Any number of durable scheduled tasks on a Durable Object's one native alarm.
//!
//! A Durable Object has one alarm. [`Alarms`] keeps your tasks (a `serde` type of your own,
//! usually an enum) in the object's SQLite and keeps the native alarm armed for the earliest
//! one; your `alarm()` calls [`Alarms::run_due`], which runs what is due and re-arms.
//!
//! ```no_run
//! use std::time::Duration;
//! use lumenize_alarms::{Alarms, Filter, Options, RetryPolicy, Status, When};
//! use serde::{Deserialize, Serialize};
//! use worker::*;
//!
//! #[derive(Serialize, Deserialize)]
//! enum Task {
//!     Remind { user: String },
//!     Report,
//! }
//!
//! #[durable_object]
//! pub struct Reminders {
//!     state: State,
//! }
//!
//! impl DurableObject for Reminders {
//!     fn new(state: State, _env: Env) -> Self {
//!         Self { state }
//!     }
//!
//!     async fn fetch(&self, _req: Request) -> Result<Response> {
//!         // Open it in every event: the first open after a restart re-arms a lost alarm.
//!         let alarms = Alarms::<Task>::new(&self.state).await?;
//!         // In 90 s; at a Unix time in milliseconds; every Monday at 09:00 UTC; every 10 min.
//!         alarms.schedule(When::after(Duration::from_secs(90)), Task::Remind { user: "ada".into() }).await?;
//!         alarms.schedule(When::at_unix_ms(1_800_000_000_000), Task::Report).await?;
//!         let weekly = Options::id("weekly-report").retry(RetryPolicy::attempts(5));
//!         alarms.schedule_with(When::cron("0 9 * * MON")?, Task::Report, weekly).await?;
//!         alarms.schedule_with(When::every(Duration::from_secs(600))?, Task::Report, Options::id("tick")).await?;
//!         // What is dead (out of attempts), to look at or re-queue.
//!         let dead = alarms.list(&Filter::default().status(Status::Dead))?;
//!         Response::ok(format!("{} dead", dead.len()))
//!     }
//!
//!     async fn alarm(&self) -> Result<Response> {
//!         let alarms = Alarms::<Task>::new(&self.state).await?;
//!         alarms
//!             .run_due(|task, _info| async move {
//!                 match task {
//!                     Task::Remind { user } => console_log!("remind {user}"),
//!                     Task::Report => console_log!("report"),
//!                 }
//!                 Ok::<(), String>(()) // `Err` retries the task per its RetryPolicy
//!             })
//!             .await?;
//!         Response::ok("ran")
//!     }
//! }
//! ```
//!
//! The class must be SQLite-backed (`new_sqlite_classes` in `wrangler.toml`); on an object
//! without SQLite, [`Alarms::new`] returns [`Error::NoSqlite`].
//!
//! # Guarantees
//!
//! - **Durable when it returns**: [`Alarms::schedule`] writes one SQLite row; the native
//!   alarm is written only when the new task is the earliest.
//! - **Never early, millisecond precision**: a task runs at or after its time; zero-delay
//!   tasks run through the native alarm a few milliseconds later.
//! - **In order**: due tasks run one at a time by (due time, insertion order).
//! - **At least once**: `Ok` removes a one-shot task and advances a cron or interval task
//!   from its scheduled time ([`MissedTicks`] says what happens to ticks missed while late).
//!   `Err` retries per the task's [`RetryPolicy`], then keeps it dead with its last error
//!   ([`Alarms::requeue`] puts it back). A crash or panic in the middle of a handler counts
//!   as a failed attempt and the task runs again, so make handlers idempotent or keep their
//!   effect in the same SQLite (whose writes commit or roll back with the task's).
//! - **Nothing lost**: a payload that no longer decodes into `T` makes that task dead with a
//!   clear error and the others keep running; a handler may reschedule its own id; one
//!   alarm invocation runs at most [`DEFAULT_BATCH_LIMIT`] tasks, then re-arms for the rest;
//!   [`Alarms::new`] re-arms an alarm the runtime lost.
//! - **Idempotent ids**: [`Options::id`] upserts (or keeps the existing task, with
//!   [`Options::keep_existing`]); generated ids are UUIDv7. [`Alarms::cancel`] returns what
//!   it removed.
//!
//! Tests run due tasks without waiting for the alarm through [`Alarms::run_due_at`]. The
//! scheduling logic itself is [`core`]: no clock and no `worker` types, tested natively
//! against a reference model.

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
