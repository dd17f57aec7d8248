//! `Calls`: durable calls from this Durable Object to others, each with a typed
//! continuation that runs back here.

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::time::Duration;

use futures_util::future::{join_all, select, Either};
use lumenize_alarms::{Alarms, Library, Options, Scheduled, When};
use serde_json::Value;
use worker::{console_error, Delay, Env, Headers, Method, Request, RequestInit, SqlStorage};

use crate::continuation::{self, Continuation, Continuations, Ctx, Has};
use crate::core::{new_call, Caller, Claimed, Sent, Tasks, Transport};
use crate::envelope::{self, CallRequest, Recipient, SIGNATURE_HEADER, VERSION};
use crate::machine::{self, Answer, CallResult};
use crate::runtime::{new_id, now_ms, own};
use crate::server::Opened;
use crate::store::PendingCall;
use crate::{CallError, CallId, CallOptions, Error, Object, Operation, Result, Server, Target};

/// The name lumenize-call's tasks carry in the object's scheduler.
const TASKS: &str = "call";

/// Durable calls of one Durable Object, typed end to end: `L` lists the object's
/// [`Continuations`], as a tuple (`Calls<(Shouted,)>`, `Calls<(Shouted, Summed)>`). A call
/// is given one of them, which names the [`Operation`] it calls, and runs back here with
/// that operation's reply: the compiler checks both.
///
/// Open it once, in `DurableObject::new`, from the object's [`Alarms`] handle, and keep it
/// in a field; cheap to clone. Its tasks (a call's dispatch and backstop) are stored and
/// run by that handle's `run_due`, before your handler sees anything: your task type never
/// names them. It serves calls too ([`server`](Self::server)). See the crate docs for a
/// full origin and remote.
pub struct Calls<L: Continuations> {
    inner: Rc<Inner<L>>,
}

impl<L: Continuations> Clone for Calls<L> {
    fn clone(&self) -> Self {
        Calls { inner: self.inner.clone() }
    }
}

struct Inner<L> {
    /// This, for the object's scheduler to run call tasks with.
    me: Weak<Inner<L>>,
    server: Server,
    alarms: Alarms<()>,
    /// The calls' core over the object's store (`None` if opening failed: the server says why).
    caller: Option<Caller<SqlStorage>>,
    /// Sends the calls' tasks started in the current run: the run lets them end before it
    /// arms the alarm ([`Library::settle`]).
    sends: RefCell<Vec<Pin<Box<dyn Future<Output = ()>>>>>,
    _then: PhantomData<fn() -> L>,
}

/// The object's scheduler runs a call's task through this.
impl<L: Continuations> Library for Inner<L> {
    fn run(&self, task: Scheduled) -> Pin<Box<dyn Future<Output = std::result::Result<(), String>> + '_>> {
        Box::pin(async move {
            let calls = Calls { inner: self.me.upgrade().ok_or("the object's Calls handle is gone")? };
            calls.backstop(&task.id).await.map_err(|e| e.to_string())
        })
    }

    /// Waits (until `until()`, at most [`SETTLE_MAX_MS`]) for the sends this run started:
    /// a reply that comes back by then settles its call and deletes its task, so the run
    /// arms no backstop for it (the alarm path's second alarm write). The sends still out
    /// then go on in the background, their backstops armed by the run as before.
    fn settle<'a>(&'a self, until: &'a dyn Fn() -> i64) -> Pin<Box<dyn Future<Output = ()> + 'a>> {
        let sends = std::mem::take(&mut *self.sends.borrow_mut());
        Box::pin(async move {
            if sends.is_empty() {
                return;
            }
            let wait = until().saturating_sub(now_ms()).clamp(0, SETTLE_MAX_MS);
            let all = Box::pin(join_all(sends));
            let delay = Delay::from(Duration::from_millis(wait.unsigned_abs()));
            if let Either::Left(((), rest)) = select(delay, all).await {
                wasm_bindgen_futures::spawn_local(async move {
                    rest.await;
                });
            }
        })
    }
}

/// The longest a run waits for the sends it started before it arms the alarm: a remote
/// that answers within it costs the call no second alarm write; one that does not costs the
/// run this long (never past the next task's due time).
const SETTLE_MAX_MS: i64 = 250;

impl<L: Continuations> Calls<L> {
    /// Opens the calls of this object over its scheduler: reads [`SECRET`](crate::SECRET)
    /// (and [`SECRET_PREVIOUS`](crate::SECRET_PREVIOUS)), creates lumenize-call's tables on
    /// first use (synchronous SQL: call it in `DurableObject::new`), and attaches to
    /// `alarms`, whose `run_due` then runs the calls' tasks. Give it the object's one
    /// handle, the one its `alarm()` runs.
    ///
    /// Opening never fails and never panics: if [`SECRET`](crate::SECRET) is not set
    /// ([`Error::NoSecret`]) or the object has no SQLite, [`call`](Self::call) and every
    /// other method return the error, and calls served are answered with a 500 saying so.
    pub fn open<T>(alarms: &Alarms<T>, env: &Env) -> Self {
        let alarms = alarms.retyped::<()>();
        let server = Server::open(&alarms.object_state(), env);
        let caller = server.opened().ok().map(|opened| Caller::new(opened.store.clone()));
        let inner = Rc::new_cyclic(|me| Inner { me: me.clone(), server, alarms: alarms.clone(), caller, sends: RefCell::default(), _then: PhantomData });
        let library: Weak<Inner<L>> = Rc::downgrade(&inner);
        alarms.attach(TASKS, library);
        Calls { inner }
    }

    /// Whether this object can make calls: `Err` with what opening met
    /// ([`Error::NoSecret`], no SQLite), as every method returns it.
    ///
    /// # Errors
    /// What opening met.
    pub fn ready(&self) -> Result<()> {
        self.inner.server.ready()
    }

    /// The serving side of this object, for an object that also answers calls.
    pub fn server(&self) -> &Server {
        &self.inner.server
    }

    /// Calls `target` with `op`, with the default [`CallOptions`]; when the result is in,
    /// `then` runs here with it ([`Continuation::on_reply`]). Returns at once, once the
    /// call is durable. `then` must be one of the object's [`Continuations`] (a compile
    /// error otherwise), and `op` the operation it answers.
    ///
    /// ```no_run
    /// # use lumenize_call::*;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Shout(String);
    /// # impl Operation for Shout { const NAME: &'static str = "shout"; type Reply = String; }
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Shouted;
    /// # impl Continuation for Shouted { type Op = Shout; const NAME: &'static str = "shouted";
    /// #   async fn on_reply(self, _: Ctx, _: Result<String, CallError>) -> worker::Result<()> { Ok(()) } }
    /// # async fn demo(calls: &Calls<(Shouted,)>) -> lumenize_call::Result<()> {
    /// let id = calls.call(Target::named("ECHO", "echo"), &Shout("hello".into()), Shouted).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`call_with`](Self::call_with).
    pub async fn call<C, I>(&self, target: Target, op: &C::Op, then: C) -> Result<CallId>
    where
        C: Continuation,
        L: Has<C, I>,
    {
        self.call_with(target, op, then, CallOptions::default()).await
    }

    /// As [`call`](Self::call), with [`CallOptions`]: the dispatch and a timeout. With
    /// [`Dispatch::Direct`](crate::Dispatch::Direct) the request leaves in this same event.
    ///
    /// Writes: the call's row and its task (the call's dispatch and backstop, due now for
    /// [`Dispatch::Alarm`](crate::Dispatch::Alarm), in a second for `Direct`), in one commit; the native alarm too
    /// if the task is now the earliest.
    ///
    /// # Errors
    /// [`Error::Encode`] if `op` or `then` do not encode; [`Error::TooLarge`] if `op` is
    /// over [`MAX_OPERATION_BYTES`](crate::MAX_OPERATION_BYTES), `then` over
    /// [`MAX_CONTINUATION_BYTES`](crate::MAX_CONTINUATION_BYTES), or both with the target
    /// over a row; [`Error::KeyTooLong`] if the target's binding or object is over
    /// [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES); [`Error::OutOfRange`] if the call's issue
    /// time or deadline falls past [`MAX_TIME_MS`](lumenize_alarms::MAX_TIME_MS)
    /// (2262-04-11); what opening met ([`Error::NoSecret`], no SQLite); storage errors.
    /// Nothing is stored then.
    pub async fn call_with<C, I>(&self, target: Target, op: &C::Op, then: C, opts: CallOptions) -> Result<CallId>
    where
        C: Continuation,
        L: Has<C, I>,
    {
        let caller = self.caller()?;
        let op = serde_json::to_value(op).map_err(|source| Error::Encode { what: "the operation", source })?;
        let op = machine::tag(<C::Op as Operation>::NAME, op);
        let resume = serde_json::to_value(&then).map_err(|source| Error::Encode { what: "the continuation", source })?;
        let resume = machine::tag(C::NAME, resume);
        let now = now_ms();
        let (call, first) = new_call(new_id(now), target, op, resume, &opts, now)?;
        let id = call.id.clone();
        if let Some(send) = caller.make(call, first, now, &*self.inner).await? {
            self.spawn(send);
        }
        Ok(id)
    }

    /// The calls whose continuation has not completed, oldest first. A call whose stored
    /// row does not decode is listed too, quarantined, with the reason in
    /// [`PendingCall::unreadable`]: it never stops the others being listed.
    ///
    /// # Errors
    /// Storage errors.
    pub fn pending(&self) -> Result<Vec<PendingCall>> {
        self.caller()?.pending()
    }

    /// A page of the pending calls, for listings that must stay bounded however many calls
    /// are pending (an operator page): at most `limit` calls, clamped to `1 ..=`
    /// [`MAX_PENDING_PAGE`](crate::MAX_PENDING_PAGE), in id order (ids are UUIDv7s: the
    /// order they were made in, to the millisecond), after the call `after` if given. One indexed statement.
    /// Returns the page and, when it is full, the `after` of the next one (which may then
    /// be empty). A call whose row does not decode is listed too, quarantined, as in
    /// [`pending`](Self::pending).
    ///
    /// ```no_run
    /// # use lumenize_call::*;
    /// # fn demo<L: Continuations>(calls: &Calls<L>) -> lumenize_call::Result<()> {
    /// let mut after = None;
    /// loop {
    ///     let (page, next) = calls.pending_page(after.as_ref(), 100)?;
    ///     for call in &page {
    ///         println!("{} {} {} failures", call.id, call.state().as_str(), call.failures);
    ///     }
    ///     let Some(next) = next else { break };
    ///     after = Some(next);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// What opening met; storage errors.
    pub fn pending_page(&self, after: Option<&CallId>, limit: usize) -> Result<(Vec<PendingCall>, Option<CallId>)> {
        let (page, next) = self.caller()?.pending_page(after.map(CallId::as_str), limit)?;
        Ok((page, next.map(CallId::from)))
    }

    /// Pending call `id`, if it is pending (quarantined if its row does not decode).
    ///
    /// # Errors
    /// What opening met; storage errors.
    pub fn get(&self, id: &CallId) -> Result<Option<PendingCall>> {
        self.caller()?.store().call(id.as_str())
    }

    /// Cancels a pending call: its continuation runs now with [`CallError::Cancelled`]
    /// (or with the result, if that is already in, or with [`CallError::Timeout`] once the
    /// call's deadline has passed) and a later reply is dropped. The remote
    /// may still apply the operation if the request already left. Returns whether the call
    /// was pending.
    ///
    /// A quarantined call (its row does not decode: [`PendingCall::unreadable`]) is removed
    /// with its task, without running the continuation: what it would be given cannot be
    /// read.
    ///
    /// # Errors
    /// The continuation's error (the call stays pending and its task retries it); storage
    /// errors.
    pub async fn cancel(&self, id: &CallId) -> Result<bool> {
        self.caller()?.cancel(id.as_str(), now_ms(), &*self.inner, &self.then()).await
    }

    /// The task of call `id`, running: a send it starts is the run's to settle.
    async fn backstop(&self, id: &str) -> Result<()> {
        if let Some(send) = self.caller()?.backstop(id, now_ms(), &*self.inner, &self.then()).await? {
            self.inner.sends.borrow_mut().push(Box::pin(self.sending(send)));
        }
        Ok(())
    }

    /// Sends a claimed call in the background, and delivers the result it brings back.
    fn spawn(&self, send: Claimed) {
        wasm_bindgen_futures::spawn_local(self.sending(send));
    }

    /// Sends a claimed call, and delivers the result it brings back.
    fn sending(&self, send: Claimed) -> impl Future<Output = ()> + 'static {
        let calls = self.clone();
        async move {
            let id = send.call().id.clone();
            let sent = match calls.caller() {
                Ok(caller) => caller.send(send, &*calls.inner, &*calls.inner, &calls.then()).await,
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                console_error!("lumenize-call: call {id}: {e} (its backstop task tries again)");
            }
        }
    }

    /// The continuation callback of the core: runs the continuation the call's
    /// continuation value names, with the result.
    fn then(&self) -> impl AsyncFn(String, Value, CallResult) -> Result<()> + '_ {
        async |id: String, resume: Value, result: CallResult| {
            let opened = self.opened()?;
            let ctx = Ctx::new(CallId::from(id), own(&opened.state), opened.env.clone(), self.inner.alarms.clone());
            continuation::run::<L>(ctx, resume, result).await
        }
    }

    fn opened(&self) -> Result<&Opened> {
        self.inner.server.opened()
    }

    fn caller(&self) -> Result<&Caller<SqlStorage>> {
        self.opened()?;
        self.inner.caller.as_ref().ok_or_else(|| Error::Runtime("lumenize-call: the call store did not open".into()))
    }
}

/// The object's scheduler, for the core: a call's task is a library task of lumenize-alarms.
impl<L> Tasks for Inner<L> {
    async fn schedule(&self, id: &str, at_ms: i64) -> Result<()> {
        self.alarms.schedule_library(TASKS, When::at_unix_ms(at_ms), Options::id(id)).await?;
        Ok(())
    }

    fn defer(&self, id: &str, at_ms: i64) -> Result<()> {
        Ok(self.alarms.defer(id, at_ms)?)
    }

    fn cancel(&self, id: &str) -> Result<()> {
        self.alarms.discard(id)?;
        Ok(())
    }
}

/// The transport, for the core: a signed envelope posted to the target's stub.
impl<L> Transport for Inner<L> {
    async fn send(&self, call: &PendingCall) -> Sent {
        let answer = self.post(call).await.unwrap_or_else(|e| Answer::Failed(e.to_string()));
        Sent { answer, at_ms: now_ms() }
    }
}

impl<L> Inner<L> {
    /// Posts the signed envelope to the target's stub.
    async fn post(&self, call: &PendingCall) -> worker::Result<Answer> {
        let (stub, object) = match self.stub(&call.target) {
            Ok(stub) => stub,
            // A binding or id that does not resolve will not resolve on a retry either.
            Err(e) => {
                let message = machine::clip(format!("no such target {:?}: {e}", call.target));
                return Ok(Answer::Done(Err(CallError::Transport { message })));
            }
        };
        // Emptied only together with storing a result, which the core checked.
        let Some(op) = call.op.clone() else { return Ok(Answer::Busy) };
        let opened = self.server.opened()?;
        let request = CallRequest {
            v: VERSION,
            id: call.id.to_string(),
            to: Recipient { binding: call.target.binding.clone(), object },
            from: opened.state.id().to_string(),
            issued_ms: call.created_ms,
            op,
        };
        let (body, signature) = envelope::signed_request(&opened.secrets.current, &request);
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        headers.set(SIGNATURE_HEADER, &signature)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
        let request = Request::new_with_init("https://lumenize-call/", &init)?;
        let mut response = stub.fetch_with_request(request).await?;
        let body = response.text().await?;
        Ok(machine::read_answer(call.id.as_str(), response.status_code(), &body))
    }

    /// The target's stub and its id as hex (what the remote sees as `state.id()`).
    fn stub(&self, target: &Target) -> worker::Result<(worker::Stub, String)> {
        let namespace = self.server.opened()?.env.durable_object(&target.binding)?;
        let id = match &target.object {
            Object::Name(name) => namespace.id_from_name(name)?,
            Object::Id(hex) => namespace.id_from_string(hex)?,
        };
        let hex = id.to_string();
        Ok((id.get_stub()?, hex))
    }
}
