//! `Server`: answering other objects' calls, and forgetting their results after a day.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt::Display;
use std::rc::Rc;

use lumenize_alarms::{abort_on_panic, Alarms, Panic, Options, Scheduled, When};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::{console_error, Env, Method, Request, Response, State};

use crate::envelope::{self, CallReply, Outcome, Secrets, SIGNATURE_HEADER, VERSION};
use crate::machine::{self, Serve, INTERRUPTED, OTHER_ORIGIN_STATUS, RESULT_RETENTION_MS};
use crate::runtime::{now_ms, own, secrets};
use crate::store::Store;
use crate::{Error, Operation, Result};

/// The lumenize-alarms tasks of lumenize-call. Embed it in your own task enum
/// (`Task::Call(CallTask)` with `impl From<CallTask> for Task`), or use it as the task type
/// of an object that has no tasks of its own, and hand each one to [`Calls::run`] (an
/// object that makes calls) or [`Server::run`] (one that only serves them) from your
/// `run_due` handler.
///
/// [`Calls::run`]: crate::Calls::run
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallTask {
    /// A call's dispatch and backstop (the task's id is the call's id).
    Dispatch,
    /// Forget the results of calls served more than a day ago.
    Cleanup,
}

/// The id of the one cleanup task of an object that serves calls.
pub(crate) const CLEANUP_ID: &str = "lumenize-call:cleanup";

/// Serves calls from other objects: applies each call's operation at most once, keeps its
/// result for a day to answer re-dispatches, and cleans up after itself with one
/// lumenize-alarms task. Open it once, in `DurableObject::new`, over a clone of the
/// object's [`Alarms`] handle, and keep it in a field; cheap to clone. An object that also
/// makes calls opens [`Calls`](crate::Calls) instead and serves through
/// [`Calls::server`](crate::Calls::server).
///
/// ```no_run
/// use std::convert::Infallible;
/// use lumenize_alarms::Alarms;
/// use lumenize_call::{CallTask, Operation, Server};
/// use serde::{Deserialize, Serialize};
/// use worker::*;
///
/// #[derive(Serialize, Deserialize)]
/// enum Op {
///     Double(i64),
/// }
///
/// impl Operation for Op {
///     type Reply = i64;
/// }
///
/// #[durable_object]
/// pub struct Doubler {
///     alarms: Alarms<CallTask>,
///     server: Server,
/// }
///
/// impl DurableObject for Doubler {
///     fn new(state: State, env: Env) -> Self {
///         let alarms = Alarms::open(&state).expect("a SQLite-backed class");
///         let server = Server::open(&state, &env, alarms.clone()).expect("LUMENIZE_CALL_SECRET is set");
///         Self { alarms, server }
///     }
///
///     async fn fetch(&self, req: Request) -> Result<Response> {
///         // The compiler checks that the handler returns Op::Reply.
///         Ok(self.server.serve(req, async |op: Op| match op {
///             Op::Double(n) => Ok::<_, Infallible>(n * 2),
///         }).await?)
///     }
///
///     async fn alarm(&self) -> Result<Response> {
///         self.alarms.run_due(async |task, info| self.server.run(task, &info).await).await?;
///         Response::ok("ran")
///     }
/// }
/// ```
pub struct Server<T = CallTask> {
    inner: Rc<Inner<T>>,
}

impl<T> Clone for Server<T> {
    fn clone(&self) -> Self {
        Server { inner: self.inner.clone() }
    }
}

struct Inner<T> {
    alarms: Alarms<T>,
    store: Rc<Store>,
    state: State,
    env: Env,
    secrets: Secrets,
    /// Calls this object is applying right now.
    applying: RefCell<HashSet<String>>,
    /// Whether this isolate has made sure that the cleanup task exists.
    cleanup_scheduled: Cell<bool>,
}

impl<T: Serialize + DeserializeOwned + From<CallTask> + 'static> Server<T> {
    /// Opens the serving side of this object: reads [`SECRET`](crate::SECRET) and
    /// [`SECRET_PREVIOUS`](crate::SECRET_PREVIOUS), and creates lumenize-call's tables on
    /// first use (synchronous SQL: call it in `DurableObject::new`). `alarms` is a clone of
    /// the object's own handle, which runs the cleanup task.
    ///
    /// # Errors
    /// [`Error::NoSecret`] if [`SECRET`](crate::SECRET) is not set; storage errors.
    pub fn open(state: &State, env: &Env, alarms: Alarms<T>) -> Result<Self> {
        let secrets = secrets(env)?;
        let store = Rc::new(Store::open(state.storage().sql())?);
        let inner = Inner {
            alarms,
            store,
            state: own(state),
            env: env.clone(),
            secrets,
            applying: RefCell::new(HashSet::new()),
            cleanup_scheduled: Cell::new(false),
        };
        Ok(Server { inner: Rc::new(inner) })
    }

    /// Answers a call request from another object's [`Calls::call`](crate::Calls::call):
    /// checks the signature and the envelope, applies `apply` to the operation at most once
    /// per call id, stores the outcome, and replies. A re-dispatch of a call already
    /// applied gets the stored outcome; a call cut short by a reset gets
    /// [`CallError::Remote`](crate::CallError::Remote) ("may or may not have taken effect").
    /// `apply`'s `Err` and panics reach the caller as `CallError::Remote`. `apply` returns
    /// the operation's [`Reply`](Operation::Reply): the compiler checks it.
    ///
    /// Refused with 401 if unsigned or signed with neither [`SECRET`](crate::SECRET) nor
    /// [`SECRET_PREVIOUS`](crate::SECRET_PREVIOUS) (a request forwarded from the internet
    /// cannot run an operation), addressed to another object, or issued further in the
    /// future than the clock-skew allowance; 410 if issued more than
    /// [`MAX_REQUEST_AGE_MS`](crate::envelope::MAX_REQUEST_AGE_MS) ago; 400 for a malformed
    /// envelope, an unknown version or an operation that does not decode as `Op`; 405 for
    /// anything but `POST`; 400 too for a call id, origin or target over
    /// [`MAX_KEY_BYTES`](crate::machine::MAX_KEY_BYTES). A stored result goes back only to
    /// the origin that made the call (the signed `from` of its first request): a request
    /// from another origin with the same call id is refused with 403, and not applied.
    /// A stored result that does not decode (written by hand or by a bug) is answered as
    /// [`CallError::Storage`](crate::CallError::Storage), and the call is not applied again.
    ///
    /// An outcome over [`MAX_REPLY_BYTES`](crate::MAX_REPLY_BYTES), or one that cannot be
    /// stored, is stored and answered as a small error outcome in its place (the caller
    /// gets [`CallError::TooLarge`](crate::CallError::TooLarge) or
    /// [`CallError::Storage`](crate::CallError::Storage)), never as a 500.
    ///
    /// Writes: a row marking the call as being applied, then its outcome in the same row;
    /// one commit when `apply` does not await. The first call served after the object
    /// starts also makes sure the cleanup task exists.
    ///
    /// # Errors
    /// Storage errors before the operation is applied.
    pub async fn serve<Op, E>(&self, mut req: Request, apply: impl AsyncFnOnce(Op) -> std::result::Result<Op::Reply, E>) -> Result<Response>
    where
        Op: Operation,
        E: Display,
    {
        if req.method() != Method::Post {
            return refuse("lumenize-call: POST a call envelope", 405);
        }
        let body = req.text().await?;
        let signature = req.headers().get(SIGNATURE_HEADER)?;
        let here = self.inner.state.id().to_string();
        let request = match envelope::parse_request(&self.inner.secrets, &body, signature.as_deref(), &here, now_ms()) {
            Ok(request) => request,
            Err(refusal) => return refuse(&refusal.to_string(), refusal.status()),
        };
        let (id, origin) = (request.id, request.from);
        let applying = self.inner.applying.borrow().contains(&id);
        let outcome = match machine::serve(self.inner.store.record(&id)?, &origin, applying) {
            Serve::Replay(outcome) => outcome,
            Serve::Busy => return refuse("lumenize-call: this call is being applied; ask again later", 409),
            Serve::OtherOrigin => return refuse("lumenize-call: this call id belongs to a call of another origin", OTHER_ORIGIN_STATUS),
            Serve::Interrupted => {
                let outcome = Outcome::Err { message: INTERRUPTED.into(), panicked: false };
                self.inner.store.record_outcome(&origin, &id, outcome, now_ms())
            }
            Serve::Apply => match serde_json::from_value::<Op>(request.op) {
                Ok(op) => self.apply(&origin, &id, op, apply).await?,
                Err(e) => return refuse(&format!("lumenize-call: unknown operation: {e}"), 400),
            },
        };
        let reply = CallReply { v: VERSION, id, outcome };
        Ok(Response::from_json(&reply)?)
    }

    async fn apply<Op, E>(&self, origin: &str, id: &str, op: Op, apply: impl AsyncFnOnce(Op) -> std::result::Result<Op::Reply, E>) -> Result<Outcome>
    where
        Op: Operation,
        E: Display,
    {
        let store = self.inner.store.clone();
        store.start(origin, id, now_ms())?;
        self.inner.applying.borrow_mut().insert(id.to_owned());
        let on_panic = {
            let (store, origin, id) = (store.clone(), origin.to_owned(), id.to_owned());
            move |panic: &Panic<'_>| {
                let outcome = if panic.here {
                    Outcome::Err { message: format!("the operation panicked: {}", panic.message), panicked: true }
                } else {
                    Outcome::Err { message: format!("{INTERRUPTED} (a panic elsewhere in its isolate: {})", panic.message), panicked: false }
                };
                store.record_outcome(&origin, &id, outcome, now_ms());
            }
        };
        let result = abort_on_panic(&self.inner.state, on_panic, apply(op)).await;
        self.inner.applying.borrow_mut().remove(id);
        let outcome = match result.map(serde_json::to_value) {
            Ok(Ok(value)) => Outcome::Ok(value),
            Ok(Err(e)) => Outcome::Err { message: format!("the reply could not be encoded: {e}"), panicked: false },
            Err(e) => Outcome::Err { message: e.to_string(), panicked: false },
        };
        let outcome = store.record_outcome(origin, id, outcome, now_ms());
        // The outcome is stored: a failure from here on must not turn it into a 500 (the
        // next call served tries again).
        if let Err(e) = self.schedule_cleanup().await {
            console_error!("lumenize-call: scheduling the cleanup of served results: {e}");
        }
        Ok(outcome)
    }

    /// Makes sure the cleanup task exists, once per isolate: keeps a stored one (written by
    /// an earlier isolate), with no read per served call. Cleared when the task finds nothing
    /// left to clean and ends.
    async fn schedule_cleanup(&self) -> Result<()> {
        if self.inner.cleanup_scheduled.replace(true) {
            return Ok(());
        }
        let at = now_ms().saturating_add(RESULT_RETENTION_MS);
        let task = T::from(CallTask::Cleanup);
        let scheduled = self.inner.alarms.schedule_with(When::at_unix_ms(at), task, Options::id(CLEANUP_ID).keep_existing()).await;
        if scheduled.is_err() {
            self.inner.cleanup_scheduled.set(false);
        }
        scheduled?;
        Ok(())
    }

    /// Runs the cleanup task: call it from the object's `run_due` handler with each
    /// [`CallTask`]. It forgets results finished more than
    /// [`RESULT_RETENTION_MS`](machine::RESULT_RETENTION_MS) ago and runs again, in place,
    /// when the oldest remaining one is due, or ends when none remains.
    ///
    /// # Errors
    /// Storage errors (lumenize-alarms retries the task); [`Error::Runtime`] for a call's
    /// dispatch task, which only [`Calls::run`](crate::Calls::run) runs.
    pub async fn run(&self, task: CallTask, info: &Scheduled) -> Result<()> {
        match task {
            // Clock-free: the task is due a retention period after the oldest result,
            // also when the test hook runs it early.
            CallTask::Cleanup => self.cleanup(&info.id, info.due_ms.max(now_ms())),
            CallTask::Dispatch => Err(Error::Runtime(format!(
                "call {}: its dispatch task reached Server::run, which only serves calls; an object that makes calls opens Calls and runs its tasks with Calls::run",
                info.id
            ))),
        }
    }

    fn cleanup(&self, id: &str, now: i64) -> Result<()> {
        match self.inner.store.forget_results(now.saturating_sub(RESULT_RETENTION_MS), now)? {
            Some(oldest) => {
                let at = oldest.saturating_add(RESULT_RETENTION_MS).max(now);
                self.inner.alarms.defer(id, at)?;
            }
            // The task ends: the next call served schedules it again.
            None => self.inner.cleanup_scheduled.set(false),
        }
        Ok(())
    }

    pub(crate) fn alarms(&self) -> &Alarms<T> {
        &self.inner.alarms
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn state(&self) -> &State {
        &self.inner.state
    }

    pub(crate) fn env(&self) -> &Env {
        &self.inner.env
    }

    pub(crate) fn secrets(&self) -> &Secrets {
        &self.inner.secrets
    }
}

fn refuse(message: &str, status: u16) -> Result<Response> {
    Ok(Response::error(message, status)?)
}
