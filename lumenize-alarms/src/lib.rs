//! Any number of durable scheduled tasks on a Durable Object's one native alarm.
//!
//! A Durable Object has one alarm. [`Alarms`] keeps your tasks (a `serde` type of your own,
//! usually an enum) in the object's SQLite and keeps the native alarm armed for the earliest
//! one; your `alarm()` calls [`Alarms::run_due`], which runs what is due and re-arms.
//!
//! ```no_run
//! use std::time::Duration;
//! use lumenize_alarms::{Alarms, Filter, Options, RetryPolicy, Scheduled, Status, When};
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
//!     alarms: Alarms<Task>,
//! }
//!
//! impl Reminders {
//!     async fn run(&self, task: Task, _info: Scheduled) -> Result<()> {
//!         match task {
//!             Task::Remind { user } => console_log!("remind {user}"),
//!             Task::Report => console_log!("report"),
//!         }
//!         Ok(()) // `Err` retries the task per its RetryPolicy
//!     }
//! }
//!
//! impl DurableObject for Reminders {
//!     fn new(state: State, _env: Env) -> Self {
//!         // Opened once: creates the table, and the first event re-arms a lost alarm.
//!         Self { alarms: Alarms::open(&state) }
//!     }
//!
//!     async fn fetch(&self, _req: Request) -> Result<Response> {
//!         let alarms = &self.alarms;
//!         // In 90 s; at a Unix time in milliseconds; every Monday at 09:00 UTC; every 10 min.
//!         alarms.schedule(When::after(Duration::from_secs(90)), Task::Remind { user: "ada".into() }).await?;
//!         alarms.schedule(When::at_unix_ms(1_800_000_000_000), Task::Report).await?;
//!         let weekly = Options::id("weekly-report").retry(RetryPolicy::attempts(5));
//!         alarms.schedule_with(When::cron("0 9 * * MON")?, Task::Report, weekly).await?;
//!         alarms.schedule_with(When::every(Duration::from_secs(600))?, Task::Report, Options::id("tick")).await?;
//!         // A burst: one SQL statement, one alarm write.
//!         let users = ["ada", "grace", "edsger"];
//!         alarms.schedule_many(users.map(|u| (When::after(Duration::ZERO), Task::Remind { user: u.into() }))).await?;
//!         // What is dead (out of attempts), to look at or re-queue.
//!         let dead = alarms.list(&Filter::default().status(Status::Dead))?;
//!         Response::ok(format!("{} dead", dead.len()))
//!     }
//!
//!     async fn alarm(&self) -> Result<Response> {
//!         self.alarms.run_due(async |task, info| self.run(task, info).await).await?;
//!         Response::ok("ran")
//!     }
//! }
//! ```
//!
//! The class must be SQLite-backed (`new_sqlite_classes` in `wrangler.toml`). Opening never
//! fails or panics: on an object without SQLite, every method of the handle returns
//! [`Error::NoSqlite`] (and [`Alarms::ready`] says so up front).
//!
//! The object must implement `alarm()` and call [`Alarms::run_due`] in it, as above: without
//! it, workers-rs' default `alarm()` logs `alarm() handler not implemented` and panics when the
//! native alarm first fires: at the first task's due time; for a caller of lumenize-call,
//! within a second of its first call (at once with `Dispatch::Alarm`; a second later with
//! `Dispatch::Direct`, whose backstop fires even when the call has settled), so a forgotten
//! `alarm()` shows on the first try in `wrangler dev`. It is not a compile error: the type
//! system does not see whether a trait's default method was overridden. An object that
//! only serves calls needs no `alarm()`.
//!
//! # Guarantees
//!
//! - **Durable when it returns**: [`Alarms::schedule`] writes one SQLite row,
//!   [`Alarms::schedule_many`] one statement per megabyte of payloads; the native alarm is
//!   written only when a new task is the earliest, at most once per call.
//! - **Never early, millisecond precision**: a task runs at or after its time; zero-delay
//!   tasks run through the native alarm a few milliseconds later.
//! - **In order**: due tasks run one at a time by (due time, insertion order).
//! - **At least once**: `Ok` removes a one-shot task and advances a cron or interval task
//!   from its scheduled time ([`MissedTicks`] says what happens to ticks missed while late).
//!   `Err` retries per the task's [`RetryPolicy`], then keeps it dead with its last error
//!   ([`Alarms::requeue`] puts it back). A crash or panic in the middle of a handler counts
//!   as a failed attempt of that task only, and it runs again: make handlers idempotent or
//!   keep their effect in the same SQLite (whose writes commit or roll back with the task's).
//!   A panic resets the wasm instance every object of the worker shares. In the panicking
//!   object, the panic hook records the attempt as failed and arms the alarm for the tasks
//!   behind it (overdue: now + 1 ms) before the object is reset, so they run at once. The
//!   other objects with a run in flight are reset too ([`abort_on_panic`]): their alarm
//!   event fails and the runtime retries it on its own schedule (about 2 s later locally)
//!   instead of hanging for 15 minutes (this needs the compatibility flag
//!   `handle_cross_request_promise_resolution`, the default from 2024-10-14 on). A run that
//!   fails without a panic (a storage error, an alarm write the runtime refuses) re-arms
//!   the alarm after a backoff of 1 s doubling to a minute while runs keep failing
//!   (1 s, doubling to a minute), never for "now".
//! - **Nothing lost, nothing bricked**: every time, given or computed, is checked against
//!   what the runtime can arm ([`MAX_TIME_MS`], 2262-04-11): a bad time is refused
//!   before anything is written, and a computed one (a retry, the next cron or interval
//!   tick) makes that task dead with the reason. A time the runtime still refuses to arm
//!   makes its task dead and the next one is armed. A payload that no longer decodes into
//!   `T` makes that task dead with a clear error and the others keep running; a handler may
//!   reschedule its own id; one alarm invocation runs at most [`DEFAULT_BATCH_LIMIT`]
//!   tasks, then re-arms for the rest; the first event after a start re-arms an alarm the
//!   runtime lost.
//! - **Bounded input**: payloads up to [`MAX_PAYLOAD_BYTES`], ids up to
//!   [`MAX_ID_BYTES`], cron expressions and zones up to [`MAX_CRON_BYTES`] and
//!   [`MAX_ZONE_BYTES`]; a handler's error is kept up to [`MAX_ERROR_BYTES`].
//!   Every number a parameter takes has a stated range (documented where it is declared),
//!   clamped or refused before anything is written, so every stored number reads back as
//!   written: [`RetryPolicy`] is clamped field by field ([`RetryPolicy::normalized`]).
//! - **One bad row never stops the rest**: a stored row that does not decode is quarantined
//!   (listed as dead with the reason, cancellable and requeueable by id); a run that fails
//!   re-arms the alarm after a backoff (1 s doubling to a minute), never in a tight loop.
//! - **Idempotent ids**: [`Options::id`] upserts (or keeps the existing task, with
//!   [`Options::keep_existing`]); generated ids are UUIDv7. [`Alarms::cancel`] returns what
//!   it removed.
//! - **Operable**: [`Alarms::pause`] holds a pending task ([`Status::Paused`]: never run nor
//!   armed for, across restarts too) until [`Alarms::resume`] (a recurring task skips the
//!   ticks it missed per its [`MissedTicks`]); [`Alarms::run_now`] makes a task due now (a
//!   recurring one stays on its grid); [`Alarms::requeue_dead`] requeues dead tasks in bulk
//!   (at most [`MAX_REQUEUE_DEAD`] a call); [`Alarms::counts`] counts tasks by status
//!   with one statement.
//!
//! Tests run due tasks without waiting for the alarm through [`Alarms::run_due_at`]. The
//! scheduling logic itself is the crate's internal `core` module: no clock and no `worker`
//! types, tested natively against a reference model, over the same SQL statements (its
//! `sql` module) on a native SQLite.
//!
//! # Features
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `timezone` | [`When::cron_in`]: cron expressions in an IANA time zone (`chrono-tz`) |
//!
//! Without `timezone`, cron is UTC and nothing of a time-zone database is built in. With it,
//! the whole IANA database is: measured on `examples/quickstart` built for wasm32
//! (`--release`, before `wasm-opt`), 1,457,298 bytes (409,534 gzipped) without the feature
//! against 2,375,232 bytes (540,380 gzipped) with it. To keep only the zones you use, enable
//! `chrono-tz`'s `filter-by-regex` feature and build with, say,
//! `CHRONO_TZ_TIMEZONE_FILTER="(Europe/Paris|America/New_York)"`.

mod alarms;
mod error;
mod panic_abort;

// The pure core and the SQL store: this workspace's own tests and crates use them; they are
// not the API users depend on (hidden, so not covered by semver: the root is).
#[doc(hidden)]
pub mod core;
#[doc(hidden)]
pub mod sql;

pub use crate::core::{Counts, Event, Filter, Kind, MissedTicks, Options, RetryPolicy, RunReport, Schedule, Scheduled, Status, When};
pub use crate::core::{MAX_ATTEMPTS, MAX_BACKOFF_MS, MAX_BATCH_LIMIT, MAX_CRON_BYTES, MAX_ERROR_BYTES, MAX_FACTOR, MAX_ID_BYTES, MAX_PAYLOAD_BYTES, MAX_REQUEUE_DEAD, MAX_TIME_MS, MAX_ZONE_BYTES};
pub use alarms::{Alarms, DEFAULT_BATCH_LIMIT};
#[doc(hidden)]
pub use alarms::{sql_storage, Library};
pub use error::{Error, Result, StorageError, StorageKind};
pub use panic_abort::{abort_on_panic, Panic};
