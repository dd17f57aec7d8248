//! `Calls`: durable calls from this Durable Object to others, each with a typed
//! continuation that runs back here.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::{Rc, Weak};

use lumenize_alarms::{Alarms, Library, Options, Scheduled, When};
use worker::{console_error, Env, Headers, Method, Request, RequestInit};

use crate::continuation::{self, Continuation, Continuations, Ctx, Has};
use crate::envelope::{self, CallRequest, Recipient, SIGNATURE_HEADER, VERSION};
use crate::machine::{self, Answer, CallResult, Step, FIRST_RETRY_DELAY_MS};
use crate::runtime::{new_id, now_ms, own};
use crate::server::Opened;
use crate::store::{PendingCall, Store};
use crate::{CallError, CallOptions, Dispatch, Error, Object, Operation, Result, Server, Target};

/// The id of a call: a UUIDv7, also the id of the call's lumenize-alarms task.
pub type CallId = String;

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
    /// Calls this isolate is sending right now, with when the send started.
    sending: RefCell<HashMap<CallId, i64>>,
    /// Calls whose continuation is running right now.
    delivering: RefCell<HashSet<CallId>>,
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
}

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
        let inner = Rc::new_cyclic(|me| Inner {
            me: me.clone(),
            server,
            alarms: alarms.clone(),
            sending: RefCell::default(),
            delivering: RefCell::default(),
            _then: PhantomData,
        });
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
    /// [`Dispatch::Direct`] the request leaves in this same event.
    ///
    /// Writes: the call's row and its task (the call's dispatch and backstop, due now for
    /// [`Dispatch::Alarm`], in a second for `Direct`), in one commit; the native alarm too
    /// if the task is now the earliest.
    ///
    /// # Errors
    /// [`Error::Encode`] if `op` or `then` do not encode; [`Error::TooLarge`] if `op` is
    /// over [`MAX_OPERATION_BYTES`](crate::MAX_OPERATION_BYTES), `then` over
    /// [`MAX_CONTINUATION_BYTES`](crate::MAX_CONTINUATION_BYTES), or both with the target
    /// over a row; [`Error::KeyTooLong`] if the target's binding or object is over
    /// [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES); [`Error::OutOfRange`] for an issue time
    /// (the test hook's) outside `0 ..=`
    /// [`MAX_TIME_MS`](lumenize_alarms::MAX_TIME_MS) (see
    /// `call_times`); what opening met ([`Error::NoSecret`], no
    /// SQLite); storage errors. Nothing is stored then.
    pub async fn call_with<C, I>(&self, target: Target, op: &C::Op, then: C, opts: CallOptions) -> Result<CallId>
    where
        C: Continuation,
        L: Has<C, I>,
    {
        let store = self.store()?;
        let object = match &target.object {
            Object::Name(name) => ("the target's name", name),
            Object::Id(hex) => ("the target's id", hex),
        };
        for (what, key) in [("the target's binding", &target.binding), object] {
            machine::check_key(what, key).map_err(|o| Error::KeyTooLong { what: o.what, bytes: o.bytes, limit: o.limit })?;
        }
        let op = serde_json::to_value(op).map_err(|source| Error::Encode { what: "the operation", source })?;
        let op = machine::tag(<C::Op as Operation>::NAME, op);
        let resume = serde_json::to_value(&then).map_err(|source| Error::Encode { what: "the continuation", source })?;
        let resume = machine::tag(C::NAME, resume);
        machine::check_call_size(machine::json_len(&op), machine::json_len(&resume), machine::json_len(&target))?;
        let now = now_ms();
        let (issued_ms, deadline_ms) = machine::call_times(now, opts.issued_ms, opts.timeout)?;
        let first = match opts.dispatch {
            Dispatch::Alarm => now,
            Dispatch::Direct => machine::backstop_at(now, 0, deadline_ms),
        };
        let call = PendingCall {
            id: new_id(now),
            target,
            op: Some(op),
            resume,
            dispatch: opts.dispatch,
            deadline_ms,
            failures: 0,
            last_error: None,
            result: None,
            created_ms: issued_ms,
            unreadable: None,
        };
        // The call's row and its task commit together: `schedule_with` inserts the task
        // synchronously when it is first polled, and nothing awaits between the two
        // inserts (a Durable Object commits the writes between two awaits atomically).
        store.insert_call(&call)?;
        if let Err(e) = self.alarms().schedule_library(TASKS, When::at_unix_ms(first), Options::id(&call.id)).await {
            // No call then. A task stored before the error finds no row and ends.
            store.remove_call(&call.id)?;
            return Err(e.into());
        }
        let id = call.id.clone();
        if opts.dispatch == Dispatch::Direct {
            self.spawn_send(call);
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
        self.store()?.calls()
    }

    /// Cancels a pending call: its continuation runs now with [`CallError::Cancelled`]
    /// (or with the result, if that is already in) and a later reply is dropped. The remote
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
    pub async fn cancel(&self, id: &str) -> Result<bool> {
        let Some(call) = self.store()?.call(id)? else { return Ok(false) };
        if call.unreadable.is_some() {
            self.store()?.remove_call(id)?;
            self.alarms().cancel(id)?;
            return Ok(true);
        }
        if self.inner.delivering.borrow().contains(id) {
            return Ok(true); // its result is in, and its continuation is running
        }
        if call.result.is_none() {
            // Stored first: nothing else would cancel it again should the object be reset
            // while the continuation runs.
            self.store()?.store_result(id, &Err(CallError::Cancelled))?;
        }
        self.deliver(id, Err(CallError::Cancelled), false).await?;
        Ok(true)
    }

    /// The task of call `id`, running.
    async fn backstop(&self, id: &str) -> Result<()> {
        let now = now_ms();
        if self.inner.delivering.borrow().contains(id) {
            // Its result just came in and its continuation is running: look again later,
            // in case the continuation fails.
            self.alarms().defer(id, now.saturating_add(FIRST_RETRY_DELAY_MS))?;
            return Ok(());
        }
        let Some(call) = readable(self.store()?.call(id)?)? else { return Ok(()) };
        let sending_since = self.inner.sending.borrow().get(id).copied();
        match machine::on_backstop(&call.state(), now, sending_since) {
            Step::Deliver(result) => self.deliver(id, result, true).await,
            Step::Wait { backstop_ms } => Ok(self.alarms().defer(id, backstop_ms)?),
            Step::Dispatch { backstop_ms } => {
                self.alarms().defer(id, backstop_ms)?;
                self.spawn_send(call);
                Ok(())
            }
        }
    }

    /// Sends `call` in the background, unless this isolate is sending it already, and
    /// delivers the result it brings back.
    fn spawn_send(&self, call: PendingCall) {
        {
            let mut sending = self.inner.sending.borrow_mut();
            if sending.contains_key(&call.id) {
                return;
            }
            sending.insert(call.id.clone(), now_ms());
        }
        let calls = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let id = call.id.clone();
            let sent = calls.send(call).await;
            calls.inner.sending.borrow_mut().remove(&id);
            let done = match sent {
                Ok(Some(result)) => calls.deliver(&id, result, false).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = done {
                console_error!("lumenize-call: call {id}: {e} (its backstop task tries again)");
            }
        });
    }

    /// Sends `call` once, unless the state machine says it is settled (a timeout, an
    /// expiry); the result if that settled it.
    async fn send(&self, call: PendingCall) -> Result<Option<CallResult>> {
        let (id, state) = (call.id.clone(), call.state());
        if let Step::Deliver(result) = machine::on_backstop(&state, now_ms(), None) {
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
                // Only this send changes the count (one per call at a time): no read. A call
                // settled meanwhile has no row to update, and drops the result.
                let (state, give_up) = machine::after_failure(&state, error);
                self.store()?.record_failure(&id, &state)?;
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
            from: self.opened()?.state.id().to_string(),
            issued_ms: call.created_ms,
            op,
        };
        let (body, signature) = envelope::signed_request(&self.opened()?.secrets.current, &request);
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
        let namespace = self.opened()?.env.durable_object(&target.binding)?;
        let id = match &target.object {
            Object::Name(name) => namespace.id_from_name(name)?,
            Object::Id(hex) => namespace.id_from_string(hex)?,
        };
        let hex = id.to_string();
        Ok((id.get_stub()?, hex))
    }

    /// Runs the continuation of call `id` with its first result (`incoming`, unless one is
    /// stored already), then forgets the call: its row, and its task unless that is the one
    /// running this (`in_task`: its run removes it). A call already gone (completed,
    /// cancelled, timed out) drops `incoming`: that is a late reply. So does a call whose
    /// continuation is running already.
    async fn deliver(&self, id: &str, incoming: CallResult, in_task: bool) -> Result<()> {
        if !self.inner.delivering.borrow_mut().insert(id.to_owned()) {
            return Ok(());
        }
        let delivered = self.deliver_once(id, incoming, in_task).await;
        self.inner.delivering.borrow_mut().remove(id);
        delivered
    }

    async fn deliver_once(&self, id: &str, incoming: CallResult, in_task: bool) -> Result<()> {
        let Some(call) = readable(self.store()?.call(id)?)? else { return Ok(()) };
        let row_bytes = machine::json_len(&call.resume).saturating_add(machine::json_len(&call.target));
        let stored = call.result.is_some();
        let result = machine::first_result(call.result, incoming, row_bytes, call.deadline_ms, now_ms());
        match self.continue_with(id, call.resume, result.clone()).await {
            Ok(()) => {
                // With the continuation's last writes if it did not await after them: one
                // commit. Cancelling the task writes no alarm: one armed for this backstop
                // fires once with nothing to run, and leaves nothing armed (an alarm write
                // costs more than that empty run; see MEASUREMENTS.md).
                self.store()?.remove_call(id)?;
                if !in_task {
                    self.alarms().cancel(id)?;
                }
                Ok(())
            }
            Err(e) => {
                // The retries get the same result.
                if !stored {
                    self.store()?.store_result(id, &result)?;
                }
                Err(e)
            }
        }
    }

    /// Runs the continuation the call's continuation value names, with the result.
    async fn continue_with(&self, id: &str, resume: serde_json::Value, result: CallResult) -> Result<()> {
        let opened = self.opened()?;
        let ctx = Ctx::new(id.to_owned(), own(&opened.state), opened.env.clone(), self.inner.alarms.clone());
        continuation::run::<L>(ctx, resume, result).await
    }

    fn alarms(&self) -> &Alarms<()> {
        &self.inner.alarms
    }

    fn opened(&self) -> Result<&Opened> {
        self.inner.server.opened()
    }

    fn store(&self) -> Result<&Store> {
        Ok(&self.opened()?.store)
    }
}

/// `call`, unless its row does not decode: then [`Error::Unreadable`] (a quarantined call
/// is neither sent nor continued).
fn readable(call: Option<PendingCall>) -> Result<Option<PendingCall>> {
    match call {
        Some(PendingCall { id, unreadable: Some(reason), .. }) => Err(Error::Unreadable { id, reason }),
        call => Ok(call),
    }
}
