//! `alarms-robustness`: does every task scheduled with lumenize-alarms fire, under load,
//! with failing and panicking handlers, across a crash of the runtime?
//!
//! One Durable Object class, `RobustnessDO` (in `src/object.rs`), schedules tasks on request
//! and records every firing in its own SQLite table, which the driver (`cargo run --release
//! -p lumenize-driver -- alarms-robustness`) reads back. Each experiment run uses an object
//! of its own: the worker forwards `/<object>/<route>` to the `RobustnessDO` named
//! `<object>`.
//!
//! | route | body / query | answer |
//! | --- | --- | --- |
//! | `POST /<object>/schedule` | [`ScheduleRequest`] | [`ScheduleReply`] |
//! | `GET /<object>/firings?after=<seq>&limit=<n>` | | [`FiringsPage`] (paged by `seq`) |
//! | `GET /<object>/status` | | [`StatusReply`] |
//! | `DELETE /<object>/storage` | | deletes the object's storage (tasks, firings, alarm) |
//! | `GET /<object>/ping` | | `pong`: only what every request to the object pays (its fixed cost per request) |
//!
//! The lumenize-alarms API used in `src/object.rs`: `Alarms::open` once per object (at its
//! first event here, so that objects running a baseline never create its table; a user's
//! object opens it in `DurableObject::new`), `Alarms::schedule_with` with a `RetryPolicy`
//! (or one `schedule_many_with` for the `lumenize-many` scheduler), `Alarms::list` with a
//! `Filter`, `Alarms::run_due` in `alarm()`, and `abort_on_panic` to record a panic in the
//! object's own table. `POST /<object>/bench` (`src/bench.rs`) measures the per-task costs
//! of lumenize-alarms against the floor's in one request.
//!
//! The same class runs two baselines in the same run, for comparison (`src/baselines.rs`):
//! `native`, the one native alarm set directly for each task, and `floor`, a minimal
//! hand-rolled multiplexer. [`ScheduleRequest::scheduler`] chooses one per object.
//!
//! The types of the routes are in [`api`] (re-exported here); on a native target the crate
//! is only those types, which the driver uses.

pub mod api;
#[cfg(target_arch = "wasm32")]
mod baselines;
#[cfg(target_arch = "wasm32")]
mod bench;
#[cfg(target_arch = "wasm32")]
mod object;

pub use api::*;
