//! The calls of one object at the caller, pure: no clock, no `worker` types. What happens
//! when a call is made, when its task fires (the backstop), when a send comes back, when it
//! is cancelled and when its continuation runs, over the call store ([`Store`], over
//! lumenize-alarms' `Exec`), the object's scheduler ([`Tasks`]) and the transport
//! ([`Transport`]), with the time passed in. [`Calls`](crate::Calls) binds it to the
//! runtime (a stub's `fetch`, `spawn_local`, the clock, ids); the native model test
//! (`tests/machine_model.rs`) runs it on a native SQLite, with crashes and lost replies.
//!
//! Internal: public for this workspace's own tests only.

mod flow;
mod ports;

pub use crate::machine::Answer;
pub use crate::store::{PendingCall, Store, SCHEMA_VERSION};
pub use flow::{new_call, Caller, Claimed};
pub use ports::{Sent, Tasks, Transport};
