//! Durable calls from one Durable Object to another, with a continuation that runs back at
//! the caller, typed end to end.
//!
//! `calls.call(target, &op, then)` writes the call to the caller's SQLite and returns its
//! id at once. The remote applies `op` at most once and replies; the caller's continuation
//! `then` then runs with the result (the reply, or a typed [`CallError`]: a remote error or
//! panic, a timeout, a transport failure, a cancellation, an expiry, a result too large to
//! store), exactly once per call. The compiler checks the types along the way: an
//! [`Operation`] names its reply type, the remote's handler must return it ([`Router`]), a
//! [`Continuation`] names the operation it answers and receives that reply, and a call can
//! only be given a continuation its object lists (`Calls<(..)>`): see the compile-fail
//! tests in `tests/compile_fail/`. Dispatch, re-dispatch and timeouts are tasks of
//! [`lumenize_alarms`], stored and run by the object's one [`Alarms`](lumenize_alarms::Alarms)
//! handle beside your own tasks: your task type never names them.
//!
//! # Origin and remote
//!
//! ```no_run
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use lumenize_alarms::Alarms;
//! use lumenize_call::{CallError, CallOptions, Calls, Continuation, Ctx, Dispatch, Operation, Router, Server, Target};
//! use serde::{Deserialize, Serialize};
//! use worker::*;
//!
//! /// Two operations the remote serves, each with its own reply type.
//! #[derive(Serialize, Deserialize)]
//! struct Echo(String);
//!
//! impl Operation for Echo {
//!     const NAME: &'static str = "echo";
//!     type Reply = String;
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Length(String);
//!
//! impl Operation for Length {
//!     const NAME: &'static str = "length";
//!     type Reply = usize;
//! }
//!
//! /// What the origin keeps of an `Echo` call, and runs with its reply.
//! #[derive(Serialize, Deserialize)]
//! struct StoreEcho {
//!     key: String,
//! }
//!
//! impl Continuation for StoreEcho {
//!     type Op = Echo;
//!     const NAME: &'static str = "store-echo";
//!
//!     async fn on_reply(self, ctx: Ctx, reply: std::result::Result<String, CallError>) -> Result<()> {
//!         let text = reply.unwrap_or_else(|e| format!("failed: {e}"));
//!         ctx.state.storage().put(&self.key, text).await
//!     }
//! }
//!
//! /// What the origin keeps of a `Length` call.
//! #[derive(Serialize, Deserialize)]
//! struct StoreLength {
//!     key: String,
//! }
//!
//! impl Continuation for StoreLength {
//!     type Op = Length;
//!     const NAME: &'static str = "store-length";
//!
//!     async fn on_reply(self, ctx: Ctx, reply: std::result::Result<usize, CallError>) -> Result<()> {
//!         let n = reply.map_err(|e| Error::RustError(e.to_string()))?;
//!         ctx.state.storage().put(&self.key, n).await
//!     }
//! }
//!
//! /// The origin's own tasks.
//! #[derive(Serialize, Deserialize)]
//! enum Task {
//!     Nightly,
//! }
//!
//! #[durable_object]
//! pub struct Origin {
//!     alarms: Alarms<Task>,
//!     calls: Calls<(StoreEcho, StoreLength)>,
//! }
//!
//! impl DurableObject for Origin {
//!     fn new(state: State, env: Env) -> Self {
//!         // Calls attach to the object's one scheduler, which runs their tasks.
//!         let alarms = Alarms::open(&state);
//!         let calls = Calls::open(&alarms, &env);
//!         Self { alarms, calls }
//!     }
//!
//!     async fn fetch(&self, _req: Request) -> Result<Response> {
//!         let remote = Target::named("REMOTE", "test-instance");
//!         self.calls.call(remote.clone(), &Length("hello".into()), StoreLength { key: "n".into() }).await?;
//!         let options = CallOptions::default().dispatch(Dispatch::Alarm).timeout(Duration::from_secs(30));
//!         let id = self.calls.call_with(remote, &Echo("hi".into()), StoreEcho { key: "echo".into() }, options).await?;
//!         Response::ok(id)
//!     }
//!
//!     async fn alarm(&self) -> Result<Response> {
//!         // The calls' tasks run first, inside run_due; the handler sees only `Task`.
//!         self.alarms.run_due(async |task, _| match task {
//!             Task::Nightly => Ok::<_, Infallible>(()),
//!         }).await?;
//!         Response::ok("ran")
//!     }
//! }
//!
//! /// Serves calls: no scheduler, no `alarm()`.
//! #[durable_object]
//! pub struct Remote {
//!     server: Server,
//! }
//!
//! impl DurableObject for Remote {
//!     fn new(state: State, env: Env) -> Self {
//!         Self { server: Server::open(&state, &env) }
//!     }
//!
//!     async fn fetch(&self, req: Request) -> Result<Response> {
//!         // Each handler may borrow `self`; it must return its operation's Reply.
//!         let router = Router::new()
//!             .route(async |Echo(text)| Ok::<_, Infallible>(text))
//!             .route(async |Length(text)| Ok::<_, Infallible>(text.len()));
//!         Ok(self.server.serve(req, router).await?)
//!     }
//! }
//! ```
//!
//! An object that both calls and serves opens [`Calls`] only, and serves through
//! [`Calls::server`]. A continuation reaches the calling object through its [`Ctx`]: its
//! state and storage, its environment, and its scheduler ([`Ctx::alarms`]).
//!
//! Opening never panics: `Alarms::open`, [`Calls::open`] and [`Server::open`] return
//! handles, and what they met (no [`SECRET`], no SQLite) comes back as a typed error from
//! the first call, and as a 500 with the reason from `serve` ([`Calls::ready`] and
//! [`Server::ready`] ask at once).
//!
//! Both objects need SQLite (`new_sqlite_classes` in `wrangler.toml`) and the same secret
//! [`SECRET`]: `wrangler secret put LUMENIZE_CALL_SECRET` for a deployed worker, a line
//! `LUMENIZE_CALL_SECRET=...` in `.dev.vars` for `wrangler dev` (and, while rotating it,
//! [`SECRET_PREVIOUS`]: see [Rotating the secret](#rotating-the-secret)).
//!
//! # Guarantees
//!
//! - The call record and its task are durable before anything leaves the object: they are
//!   written in one commit.
//! - The remote applies each call id at most once: a re-dispatch gets the stored result
//!   (kept for [`RESULT_RETENTION_MS`], then forgotten as
//!   calls are served: a remote needs no scheduler). If the remote is
//!   reset while applying, the caller gets [`CallError::Remote`] saying it may or may not
//!   have taken effect.
//! - The continuation runs exactly once per call, with the first result in; later replies
//!   are dropped. One exception: if the caller is reset while its continuation runs, the
//!   continuation runs again (at least once). Keep continuations idempotent, or record
//!   their effect in the same SQLite.
//! - Requests are signed with HMAC-SHA256 under [`SECRET`]: a request that did not come
//!   from a lumenize caller (say, one a public route forwarded to the object) is refused
//!   with 401 before anything is parsed.
//! - The signature covers the whole envelope, which binds the target object's
//!   id, the origin's id and the call's issue time (the time the call was made, the same
//!   for every dispatch). The remote refuses with 401 a request addressed to another
//!   object, so a captured request cannot be replayed elsewhere; and with 410 one issued
//!   more than [`MAX_REQUEST_AGE_MS`] (23 h) ago, or (401)
//!   more than [`MAX_CLOCK_SKEW_MS`] (5 min) in the future.
//!   23 h is below the 24 h result retention with a margin for clock skew, so a request
//!   the remote accepts always finds the stored result of an earlier application: a replay
//!   never applies an operation twice (the reasoning is at
//!   [`MAX_REQUEST_AGE_MS`]). The caller ends a call refused
//!   for age with [`CallError::Expired`] and never sends it again; past that age plus the
//!   skew allowance it does not send it at all.
//! - A reply that does not decode as the operation's [`Reply`](Operation::Reply) (the two
//!   objects run different versions of the type) reaches the continuation as
//!   [`CallError::BadReply`]. An operation the remote has no route for is refused with 404
//!   ([`UNKNOWN_OPERATION_STATUS`]: [`CallError::Rejected`]).
//! - Every number a call stores is in range: a timeout is clamped to
//!   [`MAX_TIMEOUT_MS`] (23 h 5 min: `Duration::MAX` is "as long as a call lives"), and
//!   every time it stores is in `0 ..=` [`MAX_TIME_MS`](lumenize_alarms::MAX_TIME_MS).
//! - A stored row that does not decode (written by hand, by a bug or by an older release)
//!   is quarantined: [`Calls::pending`] and [`Calls::pending_page`] list it with the reason
//!   ([`PendingCall::unreadable`], [`CallState::Quarantined`]), [`Calls::cancel`] removes it, its task goes dead with
//!   [`Error::Unreadable`], and no other call is affected. At the remote, a stored result
//!   that does not decode is answered as [`CallError::Storage`], never applied again.
//! - A stored result goes back only to the origin that made the call: another origin's
//!   request with the same call id is refused (403), neither applied nor answered.
//! - Every call ends, with or without a timeout: with the reply, or with a typed
//!   [`CallError`] at its timeout, after [`MAX_TRANSPORT_ATTEMPTS`] transient failures, or
//!   at the latest 23 h 5 min after it was made ([`CallError::Expired`]). A result too
//!   large to store, or any storage error while storing it, on either side, ends it with
//!   [`CallError::TooLarge`] or [`CallError::Storage`] (see [Size limits](#size-limits)).
//!
//! # What a call writes
//!
//! Each hop commits once, and a settled call leaves nothing behind:
//!
//! - [`Calls::call`]: the call's row and its task, in one commit (plus the native alarm
//!   if the task is now the earliest). [`Dispatch::Alarm`] then claims the task and keeps
//!   it, in place, as the call's backstop (lumenize-alarms' two updates of a task run).
//! - The remote: a row marking the call as being applied, then its outcome, before it
//!   replies; one commit when the operation does not await.
//! - The result: the continuation's own writes, then the call's row and task are deleted,
//!   and the native alarm is armed for the next task or deleted if none is left (no empty
//!   alarm invocation); one commit when the continuation does not await after its last
//!   write. The result itself is written only if the continuation fails (for its retries)
//!   or the call is cancelled.
//!
//! While a send is in flight (a slow operation), the backstop looks at the call at growing
//! intervals (`in_flight_wait_ms`) instead of every second.
//! A remote forgets results a day old as it serves calls: one indexed `DELETE` of at most a
//! thousand rows, and only when its oldest result is due (it remembers when).
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
//! | operation + continuation value + target | [`SQLITE_MAX_BYTES`] − [`ROW_RESERVE_BYTES`] (2,183,616) | the same |
//! | the remote's outcome (`{"ok":<reply>}` or its error) | [`MAX_REPLY_BYTES`] (2,000,000) | the remote stores and answers a small "too large" outcome in its place; the continuation gets [`CallError::TooLarge`] |
//! | result + continuation value + target, at the caller | 2,183,616 | the continuation gets [`CallError::TooLarge`] |
//! | a call id, an origin's id, the target's binding, name or id | [`MAX_KEY_BYTES`] (512) | [`Calls::call`] returns [`Error::KeyTooLong`]; a remote answers 400 (the call gets [`CallError::Rejected`]); nothing is stored |
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

mod call_id;
mod calls;
mod continuation;
// The call core, the wire format and the pure state machine: this workspace's tests use
// them; they are not the API users depend on (hidden, so not covered by semver: the root is).
#[doc(hidden)]
pub mod core;
#[doc(hidden)]
pub mod envelope;
mod error;
#[doc(hidden)]
pub mod machine;
mod operation;
mod options;
mod router;
mod row;
mod runtime;
mod server;
mod store;
mod target;

pub use call_id::CallId;
pub use calls::Calls;
pub use continuation::{Continuation, Continuations, Ctx, Has};
#[doc(hidden)]
pub use continuation::{Deliver, I0, I1, I2, I3, I4, I5, I6, I7};
pub use operation::Operation;
pub use runtime::{SECRET, SECRET_PREVIOUS};
pub use router::Router;
pub use server::{Server, UNKNOWN_OPERATION_STATUS};
pub use error::{CallError, Error, Result};
pub use envelope::{MAX_CLOCK_SKEW_MS, MAX_REQUEST_AGE_MS};
pub use machine::{RESULT_RETENTION_MS, ROW_RESERVE_BYTES};
pub use machine::{MAX_CONTINUATION_BYTES, MAX_KEY_BYTES, MAX_OPERATION_BYTES, MAX_REPLY_BYTES, MAX_TIMEOUT_MS, MAX_TRANSPORT_ATTEMPTS, SQLITE_MAX_BYTES};
pub use options::{CallOptions, Dispatch};
pub use store::{CallState, PendingCall, MAX_PENDING_PAGE};
pub use target::{Object, Target};
