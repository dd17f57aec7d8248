//! Durable calls from one Durable Object to another, with a continuation that runs back at
//! the caller.
//!
//! `calls.call(target, &op, &resume, options)` writes the call to the caller's SQLite and
//! returns its id at once. The remote applies `op` at most once and replies; the caller's
//! continuation handler then runs with `resume` and the result (the reply, or a typed
//! [`CallError`]: a remote error or panic, a timeout, a transport failure, a cancellation),
//! exactly once per call. Dispatch, re-dispatch and timeouts are tasks of
//! [`lumenize_alarms`], which shares the object's one native alarm with your own tasks.
//!
//! # Origin and remote
//!
//! ```no_run
//! use std::time::Duration;
//! use lumenize_call::{CallOptions, CallTask, Calls, Ctx, Dispatch, Target};
//! use serde::{Deserialize, Serialize};
//! use worker::*;
//!
//! /// What the remote can do: the operation of a call.
//! #[derive(Serialize, Deserialize)]
//! enum RemoteOp {
//!     Echo(String),
//! }
//!
//! /// What the origin does with the result: the continuation of a call.
//! #[derive(Serialize, Deserialize)]
//! enum Resume {
//!     Store { key: String },
//! }
//!
//! /// The origin's scheduled tasks: its own, plus lumenize-call's.
//! #[derive(Serialize, Deserialize)]
//! enum Task {
//!     Call(CallTask),
//! }
//!
//! impl From<CallTask> for Task {
//!     fn from(task: CallTask) -> Self {
//!         Task::Call(task)
//!     }
//! }
//!
//! #[durable_object]
//! pub struct Origin {
//!     state: State,
//!     env: Env,
//! }
//!
//! impl Origin {
//!     /// Opens the calls of this object with its continuation handler.
//!     async fn calls(&self) -> Result<Calls<Task>> {
//!         let calls = Calls::<Task>::new(&self.state, &self.env).await?;
//!         Ok(calls.on_result(|ctx: Ctx, resume: Resume, result| async move {
//!             let Resume::Store { key } = resume;
//!             let text = match result {
//!                 Ok(reply) => reply.to_string(),
//!                 Err(e) => format!("failed: {e}"),
//!             };
//!             ctx.state.storage().put(&key, text).await
//!         }))
//!     }
//! }
//!
//! impl DurableObject for Origin {
//!     fn new(state: State, env: Env) -> Self {
//!         Self { state, env }
//!     }
//!
//!     async fn fetch(&self, _req: Request) -> Result<Response> {
//!         let options = CallOptions::default().dispatch(Dispatch::Direct).timeout(Duration::from_secs(30));
//!         let id = self
//!             .calls()
//!             .await?
//!             .call(Target::named("REMOTE", "test-instance"), &RemoteOp::Echo("hi".into()), &Resume::Store { key: "echo".into() }, options)
//!             .await?;
//!         Response::ok(id)
//!     }
//!
//!     async fn alarm(&self) -> Result<Response> {
//!         let calls = self.calls().await?;
//!         calls
//!             .alarms()
//!             .run_due(|task, info| {
//!                 let calls = calls.clone();
//!                 async move {
//!                     match task {
//!                         Task::Call(task) => calls.run(task, &info).await,
//!                     }
//!                 }
//!             })
//!             .await?;
//!         Response::ok("ran")
//!     }
//! }
//!
//! #[durable_object]
//! pub struct Remote {
//!     state: State,
//!     env: Env,
//! }
//!
//! impl DurableObject for Remote {
//!     fn new(state: State, env: Env) -> Self {
//!         Self { state, env }
//!     }
//!
//!     async fn fetch(&self, req: Request) -> Result<Response> {
//!         let calls = Calls::<CallTask>::new(&self.state, &self.env).await?;
//!         Ok(calls
//!             .serve(req, |op: RemoteOp| async move {
//!                 match op {
//!                     RemoteOp::Echo(text) => Ok::<_, String>(text),
//!                 }
//!             })
//!             .await?)
//!     }
//!
//!     async fn alarm(&self) -> Result<Response> {
//!         // Cleans up stored results of served calls.
//!         Calls::<CallTask>::new(&self.state, &self.env).await?.run_due().await?;
//!         Response::ok("ran")
//!     }
//! }
//! ```
//!
//! Both objects need SQLite (`new_sqlite_classes` in `wrangler.toml`) and the same secret
//! [`SECRET`]: `wrangler secret put LUMENIZE_CALL_SECRET` for a deployed worker, a line
//! `LUMENIZE_CALL_SECRET=...` in `.dev.vars` for `wrangler dev`.
//!
//! # Guarantees
//!
//! - The call record and its task are durable before anything leaves the object.
//! - The remote applies each call id at most once: a re-dispatch gets the stored result
//!   (kept for [`RESULT_RETENTION_MS`](machine::RESULT_RETENTION_MS)). If the remote is
//!   reset while applying, the caller gets [`CallError::Remote`] saying it may or may not
//!   have taken effect.
//! - The continuation runs exactly once per call, with the first result in; later replies
//!   are dropped. One exception: if the caller is reset while its continuation runs, the
//!   continuation runs again (at least once). Keep continuations idempotent, or record
//!   their effect in the same SQLite.
//! - Requests are signed with HMAC-SHA256 under [`SECRET`]: a request that did not come
//!   from a lumenize caller (say, one a public route forwarded to the object) is refused
//!   with 401 before anything is parsed.
//!
//! # Choosing a dispatch
//!
//! [`Dispatch::Direct`] sends at once, in the event that made the call;
//! [`Dispatch::Alarm`] sends from the next native alarm (a zero-delay task). Both are
//! equally durable. See [`Dispatch`] and `examples/call-alarm-delay/MEASUREMENTS.md`.

mod calls;
pub mod envelope;
mod error;
pub mod machine;
mod options;
mod store;
mod target;

pub use calls::{CallId, CallTask, Calls, Ctx, SECRET, SECRET_PREVIOUS};
pub use error::{CallError, Error, Result};
pub use machine::{MAX_CONTINUATION_BYTES, MAX_OPERATION_BYTES, MAX_REPLY_BYTES, MAX_TRANSPORT_ATTEMPTS, SQLITE_MAX_BYTES};
pub use options::{CallOptions, Dispatch};
pub use store::PendingCall;
pub use target::{Object, Target};
