//! `Calls`: durable calls from this Durable Object to others, and serving calls from others.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use lumenize_alarms::{AbortOnPanic, Alarms, Options, RunReport, Scheduled, When};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use worker::{console_error, Env, Headers, Method, Request, RequestInit, Response, State};

use crate::envelope::{self, CallReply, CallRequest, Outcome, Recipient, Secrets, SIGNATURE_HEADER, VERSION};
use crate::machine::{self, Answer, CallResult, Serve, Step, INTERRUPTED, RESULT_RETENTION_MS};
use crate::store::{PendingCall, Store};
use crate::{CallError, CallOptions, Dispatch, Error, Object, Result, Target};

/// The name of the secret (or variable) that authenticates calls: every object that makes
/// or serves calls must see the same value. Objects sign with it and accept it.
pub const SECRET: &str = "LUMENIZE_CALL_SECRET";

/// The name of an optional second secret that objects accept (never sign with): the
/// previous value of [`SECRET`] during a rotation (see the crate docs).
pub const SECRET_PREVIOUS: &str = "LUMENIZE_CALL_SECRET_PREVIOUS";

/// The id of a call: a UUIDv7, also the id of the call's lumenize-alarms task.
pub type CallId = String;

/// The lumenize-alarms tasks of lumenize-call. Embed it in your own task enum
/// (`Task::Call(CallTask)` with `impl From<CallTask> for Task`) and hand it to
/// [`Calls::run`] from your alarm handler; an object with no tasks of its own uses
/// `Calls<CallTask>` and [`Calls::run_due`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallTask {
    /// A call's dispatch and backstop (the task's id is the call's id).
    Dispatch,
    /// Forget the results of calls served more than a day ago.
    Cleanup,
}

/// The id of the one cleanup task of an object that serves calls.
const CLEANUP_ID: &str = "lumenize-call:cleanup";

/// What a continuation gets besides its own value: the object's state and environment.
pub struct Ctx {
    /// The calling object's state.
    pub state: State,
    /// Its environment.
    pub env: Env,
}

type Handler = Rc<dyn Fn(Ctx, Value, CallResult) -> Pin<Box<dyn Future<Output = std::result::Result<(), String>>>>>;

/// Durable calls of one Durable Object, over its lumenize-alarms scheduler with task type
/// `T`. Cheap to clone and to open; open it in each handler. See the crate docs for a full
/// origin and remote.
pub struct Calls<T> {
    inner: Rc<Inner<T>>,
}

impl<T> Clone for Calls<T> {
    fn clone(&self) -> Self {
        Calls { inner: self.inner.clone() }
    }
}

struct Inner<T> {
    alarms: Alarms<T>,
    store: Rc<Store>,
    state: State,
    env: Env,
    secrets: Secrets,
    handler: RefCell<Option<Handler>>,
}

thread_local! {
    /// Calls this isolate is sending right now (so a backstop does not send them again).
    static SENDING: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    /// Calls whose continuation is running right now.
    static DELIVERING: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    /// Calls this isolate is applying right now, as a remote.
    static APPLYING: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// Adds `id` to `set`; false if it was there.
fn claim(set: &'static std::thread::LocalKey<RefCell<HashSet<String>>>, id: &str) -> bool {
    set.with(|s| s.borrow_mut().insert(id.to_owned()))
}

fn release(set: &'static std::thread::LocalKey<RefCell<HashSet<String>>>, id: &str) {
    set.with(|s| s.borrow_mut().remove(id));
}

impl<T: Serialize + DeserializeOwned + From<CallTask> + 'static> Calls<T> {
    /// Opens the calls of this object (and its lumenize-alarms scheduler), creating their
    /// tables on first use.
    ///
    /// # Errors
    /// [`Error::NoSecret`] if [`SECRET`] is not set; [`Error::Alarms`] for an object
    /// without SQLite; storage errors.
    pub async fn new(state: &State, env: &Env) -> Result<Self> {
        let alarms = Alarms::<T>::open(state)?;
        let secrets = secrets(env)?;
        let store = Rc::new(Store::open(state.storage().sql())?);
        let inner = Inner { alarms, store, state: own(state), env: env.clone(), secrets, handler: RefCell::new(None) };
        Ok(Calls { inner: Rc::new(inner) })
    }

    /// Sets the continuation handler: it receives the continuation value given to
    /// [`call`](Self::call) (decoded as `R`) and the call's result, exactly once per call.
    /// An `Err` (or a continuation that no longer decodes as `R`) keeps the call pending; its
    /// task retries the continuation per lumenize-alarms' retry policy, then keeps it dead
    /// (listable with the error, re-queueable).
    #[must_use]
    pub fn on_result<R, F, Fut, E>(self, handler: F) -> Self
    where
        R: DeserializeOwned,
        F: Fn(Ctx, R, CallResult) -> Fut + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + 'static,
        E: Display,
    {
        let handler: Handler = Rc::new(move |ctx, resume, result| match serde_json::from_value::<R>(resume) {
            Ok(resume) => {
                let done = handler(ctx, resume, result);
                Box::pin(async move { done.await.map_err(|e| e.to_string()) })
            }
            Err(e) => Box::pin(async move { Err(format!("the continuation no longer deserialises: {e}")) }),
        });
        *self.inner.handler.borrow_mut() = Some(handler);
        self
    }

    /// The scheduler below, to schedule your own tasks or run them from `alarm()`.
    pub fn alarms(&self) -> &Alarms<T> {
        &self.inner.alarms
    }

    /// Calls `target` with `op`; when the result is in, the continuation handler runs here
    /// with `resume` and the result. Returns at once, once the call is durable: one
    /// lumenize-alarms task (the call's dispatch and backstop, due now for
    /// [`Dispatch::Alarm`]) and one call record. With [`Dispatch::Direct`] the request
    /// leaves in this same event.
    ///
    /// # Errors
    /// [`Error::Encode`] if `op` or `resume` do not encode; [`Error::TooLarge`] if `op` is
    /// over [`MAX_OPERATION_BYTES`](crate::MAX_OPERATION_BYTES), `resume` over
    /// [`MAX_CONTINUATION_BYTES`](crate::MAX_CONTINUATION_BYTES), or both with the target
    /// over a row; storage errors. Nothing is stored then.
    pub async fn call(&self, target: Target, op: &impl Serialize, resume: &impl Serialize, opts: CallOptions) -> Result<CallId> {
        let op = serde_json::to_value(op).map_err(|source| Error::Encode { what: "the operation", source })?;
        let resume = serde_json::to_value(resume).map_err(|source| Error::Encode { what: "the continuation", source })?;
        machine::check_call_size(machine::json_len(&op), machine::json_len(&resume), machine::json_len(&target))?;
        let now = now_ms();
        let deadline_ms = opts.timeout.map(|t| now.saturating_add(millis(t)));
        let first = match opts.dispatch {
            Dispatch::Alarm => now,
            Dispatch::Direct => machine::backstop_at(now, 0, deadline_ms),
        };
        // The task first: should the object die before the record is written, the task
        // finds no record and ends, and this call never returned an id.
        let task = self.alarms().schedule(When::at_unix_ms(first), T::from(CallTask::Dispatch)).await?;
        let call = PendingCall {
            id: task,
            target,
            op: Some(op),
            resume,
            dispatch: opts.dispatch,
            deadline_ms,
            failures: 0,
            last_error: None,
            result: None,
            created_ms: now,
        };
        self.inner.store.insert_call(&call)?;
        if opts.dispatch == Dispatch::Direct {
            self.spawn_send(&call.id);
        }
        Ok(call.id)
    }

    /// The calls whose continuation has not completed, oldest first.
    ///
    /// # Errors
    /// Storage errors.
    pub fn pending(&self) -> Result<Vec<PendingCall>> {
        self.inner.store.calls()
    }

    /// Cancels a pending call: its continuation runs now with [`CallError::Cancelled`]
    /// (or with the result, if that is already in) and a later reply is dropped. The remote
    /// may still apply the operation if the request already left. Returns whether the call
    /// was pending.
    ///
    /// # Errors
    /// The continuation's error (the call stays pending and its task retries it); storage
    /// errors.
    pub async fn cancel(&self, id: &str) -> Result<bool> {
        if self.inner.store.call(id)?.is_none() {
            return Ok(false);
        }
        self.deliver(id, Err(CallError::Cancelled)).await?;
        Ok(true)
    }

    /// Runs one of lumenize-call's tasks: call it from your alarm handler for
    /// `Task::Call(task)`, with the task's stored record.
    ///
    /// # Errors
    /// A continuation that failed, storage errors: lumenize-alarms retries the task.
    pub async fn run(&self, task: CallTask, info: &Scheduled) -> Result<()> {
        match task {
            // Clock-free: the task is due a retention period after the oldest result,
            // also when the test hook runs it early.
            CallTask::Cleanup => self.cleanup(info.due_ms.max(now_ms())).await,
            CallTask::Dispatch => {
                let Some(call) = self.inner.store.call(&info.id)? else { return Ok(()) };
                match machine::on_backstop(&call.state(), now_ms()) {
                    Step::Deliver(result) => self.deliver(&call.id, result).await,
                    Step::Dispatch { backstop_ms } => {
                        let task = T::from(CallTask::Dispatch);
                        self.alarms().schedule_with(When::at_unix_ms(backstop_ms), task, Options::id(&call.id)).await?;
                        self.spawn_send(&call.id);
                        Ok(())
                    }
                }
            }
        }
    }

    /// Answers a call request from another object's [`call`](Self::call): checks the
    /// signature and the envelope, applies `op` at most once per call id, stores the result,
    /// and replies. A re-dispatch of a call already applied gets the stored result; a call
    /// cut short by a reset gets [`CallError::Remote`] ("may or may not have taken effect").
    /// `apply`'s `Err` and panics reach the caller as [`CallError::Remote`].
    ///
    /// Refused with 401 if unsigned or signed with neither [`SECRET`] nor
    /// [`SECRET_PREVIOUS`] (a request forwarded from the internet cannot run an operation),
    /// addressed to another object, or issued further in the future than the clock-skew
    /// allowance; 410 if issued more than
    /// [`MAX_REQUEST_AGE_MS`](crate::envelope::MAX_REQUEST_AGE_MS) ago; 400 for a malformed
    /// envelope, an unknown version or an operation that does not decode as `Op`; 405 for
    /// anything but `POST`.
    ///
    /// An outcome over [`MAX_REPLY_BYTES`](crate::MAX_REPLY_BYTES), or one that cannot be
    /// stored, is stored and answered as a small error outcome in its place (the caller
    /// gets [`CallError::TooLarge`] or [`CallError::Storage`]), never as a 500.
    ///
    /// # Errors
    /// Storage errors before the operation is applied.
    pub async fn serve<Op, R, E, F, Fut>(&self, mut req: Request, apply: F) -> Result<Response>
    where
        Op: DeserializeOwned,
        R: Serialize,
        E: Display,
        F: FnOnce(Op) -> Fut,
        Fut: Future<Output = std::result::Result<R, E>>,
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
        let id = request.id;
        let applying = APPLYING.with(|a| a.borrow().contains(&id));
        let outcome = match machine::serve(self.inner.store.seen(&id)?, applying) {
            Serve::Replay(outcome) => outcome,
            Serve::Busy => return refuse("lumenize-call: this call is being applied; ask again later", 409),
            Serve::Interrupted => {
                let outcome = Outcome::Err { message: INTERRUPTED.into(), panicked: false };
                self.inner.store.record_outcome(&id, outcome, now_ms())
            }
            Serve::Apply => match serde_json::from_value::<Op>(request.op) {
                Ok(op) => self.apply(&id, op, apply).await?,
                Err(e) => return refuse(&format!("lumenize-call: unknown operation: {e}"), 400),
            },
        };
        let reply = CallReply { v: VERSION, id, outcome };
        Ok(Response::from_json(&reply)?)
    }

    async fn apply<Op, R, E, F, Fut>(&self, id: &str, op: Op, apply: F) -> Result<Outcome>
    where
        R: Serialize,
        E: Display,
        F: FnOnce(Op) -> Fut,
        Fut: Future<Output = std::result::Result<R, E>>,
    {
        let store = self.inner.store.clone();
        store.start(id, now_ms())?;
        claim(&APPLYING, id);
        let guard = {
            let (store, id) = (store.clone(), id.to_owned());
            AbortOnPanic::new(&self.inner.state, move |message| {
                let outcome = Outcome::Err { message: format!("the operation panicked: {message}"), panicked: true };
                store.record_outcome(&id, outcome, now_ms());
            })
        };
        let result = apply(op).await;
        drop(guard);
        release(&APPLYING, id);
        let outcome = match result.map(|reply| serde_json::to_value(reply)) {
            Ok(Ok(value)) => Outcome::Ok(value),
            Ok(Err(e)) => Outcome::Err { message: format!("the reply could not be encoded: {e}"), panicked: false },
            Err(e) => Outcome::Err { message: e.to_string(), panicked: false },
        };
        let outcome = store.record_outcome(id, outcome, now_ms());
        // The outcome is stored: a failure from here on must not turn it into a 500 (the
        // next call served schedules the cleanup again).
        if let Err(e) = self.schedule_cleanup().await {
            console_error!("lumenize-call: scheduling the cleanup of served results: {e}");
        }
        Ok(outcome)
    }

    async fn schedule_cleanup(&self) -> Result<()> {
        if self.alarms().get(CLEANUP_ID)?.is_none() {
            let at = now_ms().saturating_add(RESULT_RETENTION_MS);
            self.alarms().schedule_with(When::at_unix_ms(at), T::from(CallTask::Cleanup), Options::id(CLEANUP_ID)).await?;
        }
        Ok(())
    }

    async fn cleanup(&self, now: i64) -> Result<()> {
        if let Some(oldest) = self.inner.store.forget_results(now.saturating_sub(RESULT_RETENTION_MS))? {
            let at = oldest.saturating_add(RESULT_RETENTION_MS).max(now);
            self.alarms().schedule_with(When::at_unix_ms(at), T::from(CallTask::Cleanup), Options::id(CLEANUP_ID)).await?;
        }
        Ok(())
    }

    /// Sends call `id` in the background, unless this isolate is sending it already.
    fn spawn_send(&self, id: &str) {
        if !claim(&SENDING, id) {
            return;
        }
        let (calls, id) = (self.clone(), id.to_owned());
        wasm_bindgen_futures::spawn_local(async move {
            let sent = calls.send(&id).await;
            release(&SENDING, &id);
            let done = match sent {
                Ok(Some(result)) => calls.deliver(&id, result).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = done {
                console_error!("lumenize-call: call {id}: {e} (its backstop task tries again)");
            }
        });
    }

    /// Sends call `id` once, unless the state machine says it is settled (a stored result,
    /// a timeout, an expiry); the result if that settled it.
    async fn send(&self, id: &str) -> Result<Option<CallResult>> {
        let Some(call) = self.inner.store.call(id)? else { return Ok(None) };
        if let Step::Deliver(result) = machine::on_backstop(&call.state(), now_ms()) {
            return Ok(Some(result));
        }
        let answer = match self.post(call).await {
            Ok(answer) => answer,
            Err(e) => Answer::Failed(e.to_string()),
        };
        match answer {
            Answer::Done(result) => Ok(Some(result)),
            Answer::Busy => Ok(None),
            Answer::Failed(error) => {
                // Settled or cancelled while we waited: nothing to count.
                let Some(call) = self.inner.store.call(id)? else { return Ok(None) };
                let (state, give_up) = machine::after_failure(&call.state(), error);
                self.inner.store.record_failure(id, &state)?;
                Ok(give_up)
            }
        }
    }

    /// Posts the signed envelope to the target's stub.
    async fn post(&self, call: PendingCall) -> worker::Result<Answer> {
        let (stub, object) = match self.stub(&call.target) {
            Ok(stub) => stub,
            // A binding or id that does not resolve will not resolve on a retry either.
            Err(e) => {
                let message = machine::clip(format!("no such target {:?}: {e}", call.target));
                return Ok(Answer::Done(Err(CallError::Transport { message })));
            }
        };
        // Emptied only together with storing a result, which `send` checked.
        let Some(op) = call.op else { return Ok(Answer::Busy) };
        let request = CallRequest {
            v: VERSION,
            id: call.id.clone(),
            to: Recipient { binding: call.target.binding, object },
            from: self.inner.state.id().to_string(),
            issued_ms: call.created_ms,
            op,
        };
        let (body, signature) = envelope::signed_request(&self.inner.secrets.current, &request);
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        headers.set(SIGNATURE_HEADER, &signature)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
        let request = Request::new_with_init("https://lumenize-call/", &init)?;
        let mut response = stub.fetch_with_request(request).await?;
        let body = response.text().await?;
        Ok(machine::read_answer(&call.id, response.status_code(), &body))
    }

    /// The target's stub and its id as hex (what the remote sees as `state.id()`).
    fn stub(&self, target: &Target) -> worker::Result<(worker::Stub, String)> {
        let namespace = self.inner.env.durable_object(&target.binding)?;
        let id = match &target.object {
            Object::Name(name) => namespace.id_from_name(name)?,
            Object::Id(hex) => namespace.id_from_string(hex)?,
        };
        let hex = id.to_string();
        Ok((id.get_stub()?, hex))
    }

    /// Runs the continuation of call `id` with its first result (`result`, unless one is
    /// stored already), then forgets the call. A call already gone (completed, cancelled,
    /// timed out) drops `result`: that is a late reply.
    async fn deliver(&self, id: &str, result: CallResult) -> Result<()> {
        if !claim(&DELIVERING, id) {
            return Ok(());
        }
        let delivered = self.deliver_once(id, result).await;
        release(&DELIVERING, id);
        delivered
    }

    async fn deliver_once(&self, id: &str, result: CallResult) -> Result<()> {
        let Some((call, result)) = self.inner.store.settle(id, result)? else { return Ok(()) };
        let handler = self.inner.handler.borrow().clone().ok_or(Error::NoHandler)?;
        let ctx = Ctx { state: own(&self.inner.state), env: self.inner.env.clone() };
        handler(ctx, call.resume, result).await.map_err(|message| Error::Continuation { id: id.to_owned(), message })?;
        self.inner.store.remove_call(id)?;
        self.alarms().cancel(id)?;
        Ok(())
    }
}

impl Calls<CallTask> {
    /// Runs the due tasks of an object whose only tasks are lumenize-call's: call it from
    /// `DurableObject::alarm`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn run_due(&self) -> Result<RunReport> {
        let report = self
            .alarms()
            .run_due(|task, info| {
                let calls = self.clone();
                async move { calls.run(task, &info).await }
            })
            .await?;
        Ok(report)
    }
}

fn refuse(message: &str, status: u16) -> Result<Response> {
    Ok(Response::error(message, status)?)
}

/// The secret or variable `name`, if set and not empty.
fn secret(env: &Env, name: &str) -> Option<String> {
    let value = env.secret(name).map(|s| s.to_string()).or_else(|_| env.var(name).map(|v| v.to_string()));
    value.ok().filter(|s| !s.is_empty())
}

/// [`SECRET`] (required) and [`SECRET_PREVIOUS`] (optional).
fn secrets(env: &Env) -> Result<Secrets> {
    let secrets = Secrets::new(secret(env, SECRET).ok_or(Error::NoSecret(SECRET))?);
    Ok(match secret(env, SECRET_PREVIOUS) {
        Some(previous) => secrets.with_previous(previous),
        None => secrets,
    })
}

/// An owned handle on the same `DurableObjectState` (worker's `State` is not `Clone`).
fn own(state: &State) -> State {
    State::from(AsRef::<JsValue>::as_ref(state.as_raw()).clone().unchecked_into::<worker::worker_sys::DurableObjectState>())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX)
}

/// The wasm-only helpers, under Node: the secret lookup works on a real JavaScript `env`
/// object, and the clock is JavaScript's.
#[cfg(all(test, target_arch = "wasm32"))]
mod wasm_tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let object = js_sys::Object::new();
        for (key, value) in pairs {
            js_sys::Reflect::set(&object, &(*key).into(), &(*value).into()).expect("set a property");
        }
        JsValue::from(object).unchecked_into()
    }

    #[wasm_bindgen_test]
    fn the_secrets_come_from_the_environment() {
        assert_eq!(secrets(&env(&[(SECRET, "s3cret")])).unwrap(), Secrets::new("s3cret"));
        assert!(matches!(secrets(&env(&[])), Err(Error::NoSecret(SECRET))));
        assert!(matches!(secrets(&env(&[(SECRET, "")])), Err(Error::NoSecret(SECRET))));
        assert!(matches!(secrets(&env(&[("OTHER", "x")])), Err(Error::NoSecret(SECRET))));
        let rotating = secrets(&env(&[(SECRET, "new"), (SECRET_PREVIOUS, "old")])).unwrap();
        assert_eq!(rotating, Secrets::new("new").with_previous("old"));
        assert_eq!(secrets(&env(&[(SECRET, "new"), (SECRET_PREVIOUS, "")])).unwrap(), Secrets::new("new"));
        assert!(matches!(secrets(&env(&[(SECRET_PREVIOUS, "old")])), Err(Error::NoSecret(SECRET))));
    }

    #[wasm_bindgen_test]
    fn the_clock_is_javascripts_in_milliseconds() {
        #[allow(clippy::cast_possible_truncation)]
        let js = js_sys::Date::now() as i64;
        let ours = now_ms();
        assert!((ours - js).abs() < 1_000, "now_ms {ours} vs Date.now {js}");
        assert_eq!(millis(Duration::from_secs(2)), 2_000);
    }

    #[wasm_bindgen_test]
    fn signatures_on_wasm_match_the_native_ones() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(envelope::sign("Jefe", b"what do ya want for nothing?"), expected);
    }
}
