//! The pure scheduling core: what is due, in what order, what success, failure, a crash or a
//! changed task type do to a task, and when the native alarm is written.
//!
//! It has no clock and no `worker` types: the time is an argument, storage is the
//! synchronous [`Store`] trait (SQLite in a Durable Object is synchronous) and the native
//! alarm the [`NativeAlarm`] trait. [`Alarms`](crate::Alarms) binds a [`Scheduler`] to a
//! Durable Object; the tests drive the same [`Scheduler`] over [`MemoryStore`], and over
//! [`SqlStore`](crate::sql::SqlStore) on native SQLite, against a reference model.
//!
//! | file | what it holds |
//! | --- | --- |
//! | `when.rs`, `options.rs`, `policy.rs`, `cron.rs`, `time.rs` | what users say, and the accepted time range |
//! | `limits.rs` | the byte limits of what a task stores |
//! | `task.rs`, `store.rs`, `memory.rs`, `buffered.rs` | the stored task, the [`Store`] intents, the reference store, the store as the scheduler sees it (completions held back until the next operation) |
//! | `queue.rs`, `run.rs`, `arming.rs`, `backoff.rs`, `scheduler.rs`, `event.rs` | transitions, the run loop, when to arm (and how long to wait after a failed run), the operations, lifecycle events |
//! | `control.rs` | the operator's operations: pause, resume, run now, requeue the dead in bulk, counts |

pub mod arming;
pub mod backoff;
mod buffered;
mod control;
pub(crate) mod cron;
mod event;
mod limits;
mod memory;
mod options;
mod policy;
mod queue;
mod run;
mod scheduler;
mod store;
mod task;
mod time;
mod when;

pub use buffered::Buffered;
pub use arming::{NativeAlarm, SimulatedAlarm, LEAVE_TO_FIRE_MS};
pub use event::Event;
pub use memory::MemoryStore;
pub use options::Options;
pub use policy::{MissedTicks, RetryPolicy, MAX_ATTEMPTS, MAX_BACKOFF_MS, MAX_FACTOR};
pub use limits::{clip, MAX_CRON_BYTES, MAX_ERROR_BYTES, MAX_ID_BYTES, MAX_PAYLOAD_BYTES, MAX_ZONE_BYTES};
pub use run::{InFlight, RunReport, FETCH, MAX_BATCH_LIMIT};
pub use scheduler::Scheduler;
pub use store::{Change, Filter, Key, Store, MAX_REQUEUE_DEAD};
pub use task::{Counts, Scheduled, Status};
pub use time::{check_time, MAX_TIME_MS};
pub use when::{Kind, Schedule, When};
