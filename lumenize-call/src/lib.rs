//! Durable calls from one Durable Object to another, with a continuation that runs back at
//! the caller.
//!
//! `calls.call(target, &op, &resume, options)` writes the call to the caller's SQLite and
//! returns its id at once. The remote applies `op` at most once and replies; the caller's
//! continuation handler then runs with `resume` and the result (the reply, or a typed
//! [`CallError`]: a remote error or panic, a timeout, a transport failure, a cancellation,
//! an expiry, a result too large to store), exactly once per call. Dispatch, re-dispatch and timeouts are tasks of
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
//! `LUMENIZE_CALL_SECRET=...` in `.dev.vars` for `wrangler dev` (and, while rotating it,
//! [`SECRET_PREVIOUS`]: see [Rotating the secret](#rotating-the-secret)).
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
//! - The signature covers the whole [`envelope`], which binds the target object's
//!   id, the origin's id and the call's issue time (the time the call was made, the same
//!   for every dispatch). The remote refuses with 401 a request addressed to another
//!   object, so a captured request cannot be replayed elsewhere; and with 410 one issued
//!   more than [`MAX_REQUEST_AGE_MS`](envelope::MAX_REQUEST_AGE_MS) (23 h) ago, or (401)
//!   more than [`MAX_CLOCK_SKEW_MS`](envelope::MAX_CLOCK_SKEW_MS) (5 min) in the future.
//!   23 h is below the 24 h result retention with a margin for clock skew, so a request
//!   the remote accepts always finds the stored result of an earlier application: a replay
//!   never applies an operation twice (the reasoning is at
//!   [`MAX_REQUEST_AGE_MS`](envelope::MAX_REQUEST_AGE_MS)). The caller ends a call refused
//!   for age with [`CallError::Expired`] and never sends it again; past that age plus the
//!   skew allowance it does not send it at all.
//! - Every call ends, with or without a timeout: with the reply, or with a typed
//!   [`CallError`] at its timeout, after [`MAX_TRANSPORT_ATTEMPTS`] transient failures, or
//!   at the latest 23 h 5 min after it was made ([`CallError::Expired`]). A result too
//!   large to store, or any storage error while storing it, on either side, ends it with
//!   [`CallError::TooLarge`] or [`CallError::Storage`] (see [Size limits](#size-limits)).
//!
//! # Size limits
//!
//! SQLite in a Durable Object stores no row over [`SQLITE_MAX_BYTES`] (2,200,000 bytes,
//! measured in workerd; Cloudflare documents "2 MB"). A call is one row at the caller
//! (operation, continuation value, target, later the result in place of the operation)
//! and its outcome one row at the remote, so, as JSON:
//!
//! | what | at most | if larger |
//! | --- | --- | --- |
//! | the operation | [`MAX_OPERATION_BYTES`] (2,000,000) | [`Calls::call`] returns [`Error::TooLarge`]; nothing is stored |
//! | the continuation value | [`MAX_CONTINUATION_BYTES`] (2,000,000) | the same |
//! | operation + continuation value + target | [`SQLITE_MAX_BYTES`] − [`ROW_RESERVE_BYTES`](machine::ROW_RESERVE_BYTES) (2,183,616) | the same |
//! | the remote's outcome (`{"ok":<reply>}` or its error) | [`MAX_REPLY_BYTES`] (2,000,000) | the remote stores and answers a small "too large" outcome in its place; the continuation gets [`CallError::TooLarge`] |
//! | result + continuation value + target, at the caller | 2,183,616 | the continuation gets [`CallError::TooLarge`] |
//!
//! In the last two cases the operation was applied, once, and its reply is lost; a
//! re-dispatch is answered from the small outcome. Any other failure to store an outcome
//! (at the remote) or a result (at the caller) ends the call with [`CallError::Storage`]
//! the same way: never a 500, never a re-dispatch loop.
//!
//! # Rotating the secret
//!
//! Objects sign with [`SECRET`] and accept it or [`SECRET_PREVIOUS`]
//! (`LUMENIZE_CALL_SECRET_PREVIOUS`, optional). A request signed with neither is refused
//! with 401, which ends the call with [`CallError::Rejected`] (it is not retried). To
//! rotate without refusing any call, on every worker whose objects call or serve:
//!
//! 1. Make the new secret accepted: set `LUMENIZE_CALL_SECRET_PREVIOUS` to the **new**
//!    value (`LUMENIZE_CALL_SECRET` stays the old one) and deploy. Every object now
//!    accepts both; all still sign with the old one.
//! 2. Swap: `LUMENIZE_CALL_SECRET` = new, `LUMENIZE_CALL_SECRET_PREVIOUS` = old; deploy.
//!    While the deploy rolls out, objects sign with either, and every object accepts both.
//! 3. Once every object runs with step 2's values, delete `LUMENIZE_CALL_SECRET_PREVIOUS`.
//!    Pending calls carry on: every dispatch is signed anew with the current secret.
//!
//! Where a few refused calls during a deploy are acceptable, steps 2 and 3 alone do.
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
