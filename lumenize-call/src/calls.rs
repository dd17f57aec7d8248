//! `Calls`: durable calls from this Durable Object to others, with a typed continuation.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use lumenize_alarms::{Alarms, Options, Scheduled, When};
use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{console_error, Env, Headers, Method, Request, RequestInit, State};

use crate::envelope::{self, CallRequest, Recipient, SIGNATURE_HEADER, VERSION};
use crate::machine::{self, Answer, CallResult, Step, FIRST_RETRY_DELAY_MS};
use crate::runtime::{new_id, now_ms, own};
use crate::store::{PendingCall, Store};
use crate::{CallError, CallOptions, CallTask, Dispatch, Error, Object, Operation, Result, Server, Target};

/// The id of a call: a UUIDv7, also the id of the call's lumenize-alarms task.
pub type CallId = String;

/// What a continuation gets besides its own value and the result: what it cannot capture
/// when it is given, in `DurableObject::new`.
pub struct Ctx {
    /// The call's id (as [`Calls::call`] returned it): a key to record the continuation's
    /// effect under, to make it idempotent.
    pub id: CallId,
    /// The calling object's state (the same object as the `State` given to `new`).
    pub state: State,
    /// Its environment.
    pub env: Env,
}

type Continuation<Reply, R> =
    Rc<dyn Fn(Ctx, R, std::result::Result<Reply, CallError>) -> Pin<Box<dyn Future<Output = std::result::Result<(), String>>>>>;

/// Durable calls of one Durable Object, typed end to end: `T` is the object's
/// lumenize-alarms task type (which embeds [`CallTask`]), `Op` the [`Operation`] it calls
/// (whose [`Reply`](Operation::Reply) the continuation receives), `R` its continuation
/// value, given to [`call`](Self::call) and handed back to the continuation with the
/// result.
///
/// Open it once, in `DurableObject::new`, with the continuation, and keep it in a field;
/// cheap to clone. It serves calls too ([`server`](Self::server)). See the crate docs for a
/// full origin and remote.
pub struct Calls<T, Op: Operation, R> {
    inner: Rc<Inner<T, Op, R>>,
}

impl<T, Op: Operation, R> Clone for Calls<T, Op, R> {
    fn clone(&self) -> Self {
        Calls { inner: self.inner.clone() }
    }
}

struct Inner<T, Op: Operation, R> {
    server: Server<T>,
    continuation: Continuation<Op::Reply, R>,
    /// Calls this isolate is sending right now, with when the send started.
    sending: RefCell<HashMap<CallId, i64>>,
    /// Calls whose continuation is running right now.
    delivering: RefCell<HashSet<CallId>>,
}

impl<T, Op, R> Calls<T, Op, R>
where
    T: Serialize + DeserializeOwned + From<CallTask> + 'static,
    Op: Operation,
    R: Serialize + DeserializeOwned + 'static,
{
    /// Opens the calls of this object with their continuation: reads
    /// [`SECRET`](crate::SECRET) (and [`SECRET_PREVIOUS`](crate::SECRET_PREVIOUS)) and
    /// creates lumenize-call's tables on first use (synchronous SQL: call it in
    /// `DurableObject::new`). `alarms` is a clone of the object's own handle, the one whose
    /// `run_due` hands call tasks to [`run`](Self::run).
    ///
    /// `continuation` runs once per call, when the result is in: with a [`Ctx`], the
    /// continuation value given to [`call`](Self::call), and the remote's reply or a
    /// [`CallError`]. `Ok` completes the call. `Err` (or a continuation value that no longer
    /// decodes as `R`: [`Error::Decode`]) keeps it pending with its result, and its task
    /// runs the continuation again per lumenize-alarms' retry policy, then is kept dead
    /// (listable with the error, re-queueable). It is an async closure or function that
    /// owns what it needs (it is kept for the object's life); reach the object's storage
    /// through [`Ctx::state`].
    ///
    /// # Errors
    /// [`Error::NoSecret`] if [`SECRET`](crate::SECRET) is not set; storage errors.
    pub fn open<E>(
        state: &State,
        env: &Env,
        alarms: Alarms<T>,
        continuation: impl AsyncFn(Ctx, R, std::result::Result<Op::Reply, CallError>) -> std::result::Result<(), E> + 'static,
    ) -> Result<Self>
    where
        E: Display,
    {
        let server = Server::open(state, env, alarms)?;
        let continuation = Rc::new(continuation);
        let continuation: Continuation<Op::Reply, R> = Rc::new(move |ctx, resume, result| {
            let continuation = continuation.clone();
            Box::pin(async move { continuation(ctx, resume, result).await.map_err(|e| e.to_string()) })
        });
        let inner = Inner { server, continuation, sending: RefCell::default(), delivering: RefCell::default() };
        Ok(Calls { inner: Rc::new(inner) })
    }

    /// The serving side of this object, for an object that also answers calls.
    pub fn server(&self) -> &Server<T> {
        &self.inner.server
    }

    /// Calls `target` with `op`; when the result is in, the continuation runs here with
    /// `resume` and the result. Returns at once, once the call is durable; with
    /// [`Dispatch::Direct`] the request leaves in this same event.
    ///
    /// Writes: the call's row and its lumenize-alarms task (the call's dispatch and
    /// backstop, due now for [`Dispatch::Alarm`], in a second for `Direct`), in one commit;
    /// the native alarm too if the task is now the earliest.
    ///
    /// # Errors
    /// [`Error::Encode`] if `op` or `resume` do not encode; [`Error::TooLarge`] if `op` is
    /// over [`MAX_OPERATION_BYTES`](crate::MAX_OPERATION_BYTES), `resume` over
    /// [`MAX_CONTINUATION_BYTES`](crate::MAX_CONTINUATION_BYTES), or both with the target
    /// over a row; [`Error::KeyTooLong`] if the target's binding or object is over
    /// [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES); [`Error::OutOfRange`] for an issue time
    /// ([`CallOptions::issued_at`]) outside `0 ..=`
    /// [`MAX_TIME_MS`](lumenize_alarms::core::MAX_TIME_MS) (see
    /// [`call_times`](machine::call_times)); storage errors. Nothing is stored then.
    pub async fn call(&self, target: Target, op: &Op, resume: R, opts: CallOptions) -> Result<CallId> {
        let object = match &target.object {
            Object::Name(name) => ("the target's name", name),
            Object::Id(hex) => ("the target's id", hex),
        };
        for (what, key) in [("the target's binding", &target.binding), object] {
            machine::check_key(what, key).map_err(|o| Error::KeyTooLong { what: o.what, bytes: o.bytes, limit: o.limit })?;
        }
        let op = serde_json::to_value(op).map_err(|source| Error::Encode { what: "the operation", source })?;
        let resume = serde_json::to_value(&resume).map_err(|source| Error::Encode { what: "the continuation", source })?;
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
        self.store().insert_call(&call)?;
        let task = T::from(CallTask::Dispatch);
        if let Err(e) = self.alarms().schedule_with(When::at_unix_ms(first), task, Options::id(&call.id)).await {
            // No call then. A task stored before the error finds no row and ends.
            self.store().remove_call(&call.id)?;
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
        self.store().calls()
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
        let Some(call) = self.store().call(id)? else { return Ok(false) };
        if call.unreadable.is_some() {
            self.store().remove_call(id)?;
            self.alarms().cancel(id)?;
            return Ok(true);
        }
        if self.inner.delivering.borrow().contains(id) {
            return Ok(true); // its result is in, and its continuation is running
        }
        if call.result.is_none() {
            // Stored first: nothing else would cancel it again should the object be reset
            // while the continuation runs.
            self.store().store_result(id, &Err(CallError::Cancelled))?;
        }
        self.deliver(id, Err(CallError::Cancelled), false).await?;
        Ok(true)
    }

    /// Runs one of lumenize-call's tasks: call it from the object's `run_due` handler with
    /// each [`CallTask`] and the task's record, on the handle given to
    /// [`open`](Self::open) (a call's task defers itself in place through it).
    ///
    /// ```no_run
    /// # use lumenize_alarms::Alarms;
    /// # use lumenize_call::{CallTask, Calls, Operation};
    /// # #[derive(serde::Serialize, serde::Deserialize)] enum Op {} impl Operation for Op { type Reply = (); }
    /// # #[derive(serde::Serialize, serde::Deserialize)] enum Task { Call(CallTask), Tick }
    /// # impl From<CallTask> for Task { fn from(t: CallTask) -> Self { Task::Call(t) } }
    /// # async fn demo(alarms: &Alarms<Task>, calls: &Calls<Task, Op, ()>) -> lumenize_alarms::Result<()> {
    /// alarms.run_due(async |task, info| match task {
    ///     Task::Call(task) => calls.run(task, &info).await,
    ///     Task::Tick => Ok(()),
    /// }).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// A call's task sends it ([`Dispatch::Alarm`]), and is its backstop: it sends it again
    /// if no result came back, backing off while a send is still in flight
    /// ([`in_flight_wait_ms`](machine::in_flight_wait_ms)), and runs the continuation with
    /// a timeout, an expiry, the last transport error, or a result whose continuation
    /// failed before. The cleanup task is [`Server::run`]'s. The task of a quarantined call
    /// (its row does not decode) fails with [`Error::Unreadable`]: lumenize-alarms retries
    /// it per its policy, then keeps it dead with that error; the call stays listed until
    /// [`cancel`](Self::cancel) removes it.
    ///
    /// # Errors
    /// A continuation that failed, storage errors: lumenize-alarms retries the task.
    pub async fn run(&self, task: CallTask, info: &Scheduled) -> Result<()> {
        match task {
            CallTask::Cleanup => self.server().run(task, info).await,
            CallTask::Dispatch => self.backstop(&info.id).await,
        }
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
        let Some(call) = readable(self.store().call(id)?)? else { return Ok(()) };
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
                self.store().record_failure(&id, &state)?;
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
            from: self.server().state().id().to_string(),
            issued_ms: call.created_ms,
            op,
        };
        let (body, signature) = envelope::signed_request(&self.server().secrets().current, &request);
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
        let namespace = self.server().env().durable_object(&target.binding)?;
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
        let Some(call) = readable(self.store().call(id)?)? else { return Ok(()) };
        let row_bytes = machine::json_len(&call.resume).saturating_add(machine::json_len(&call.target));
        let stored = call.result.is_some();
        let result = machine::first_result(call.result, incoming, row_bytes, call.deadline_ms, now_ms());
        match self.continue_with(id, call.resume, result.clone()).await {
            Ok(()) => {
                // With the continuation's last writes if it did not await after them: one
                // commit. Cancelling the task writes no alarm: one armed for this backstop
                // fires once with nothing to run, and leaves nothing armed (an alarm write
                // costs more than that empty run; see MEASUREMENTS.md).
                self.store().remove_call(id)?;
                if !in_task {
                    self.alarms().cancel(id)?;
                }
                Ok(())
            }
            Err(e) => {
                // The retries get the same result.
                if !stored {
                    self.store().store_result(id, &result)?;
                }
                Err(e)
            }
        }
    }

    /// Decodes the continuation value and the reply, and runs the continuation.
    async fn continue_with(&self, id: &str, resume: serde_json::Value, result: CallResult) -> Result<()> {
        let resume: R = serde_json::from_value(resume).map_err(|e| Error::Decode { id: id.to_owned(), reason: e.to_string() })?;
        let result = result.and_then(|reply| {
            serde_json::from_value::<Op::Reply>(reply).map_err(|e| CallError::BadReply { message: machine::clip(e.to_string()) })
        });
        let ctx = Ctx { id: id.to_owned(), state: own(self.server().state()), env: self.server().env().clone() };
        (self.inner.continuation)(ctx, resume, result).await.map_err(|message| Error::Continuation { id: id.to_owned(), message })
    }

    fn alarms(&self) -> &Alarms<T> {
        self.server().alarms()
    }

    fn store(&self) -> &Store {
        self.server().store()
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
