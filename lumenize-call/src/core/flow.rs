//! The orchestration of calls at the caller: making a call, its backstop, sending it and
//! reading what came back, cancelling it, and running its continuation exactly once.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use lumenize_alarms::sql::Exec;
use serde_json::Value;

use super::ports::{Sent, Tasks, Transport};
use crate::machine::{self, Answer, CallResult, Step, FIRST_RETRY_DELAY_MS};
use crate::store::{PendingCall, Store};
use crate::{CallError, CallOptions, Dispatch, Error, Object, Result, Target};

/// A new call `id` made at `now_ms` to `target` with `opts`, checked and ready to store:
/// `op` and `resume` are the tagged operation and continuation value
/// ([`tag`](machine::tag)). With the time its task is first due: now for
/// [`Dispatch::Alarm`], a backstop for [`Dispatch::Direct`] (which sends at once).
///
/// # Errors
/// [`Error::KeyTooLong`] for the target's binding or object; [`Error::TooLarge`] for the
/// operation, the continuation value or the three together; [`Error::OutOfRange`] for the
/// times ([`call_times`](machine::call_times)).
pub fn new_call(id: String, target: Target, op: Value, resume: Value, opts: &CallOptions, now_ms: i64) -> Result<(PendingCall, i64)> {
    let object = match &target.object {
        Object::Name(name) => ("the target's name", name),
        Object::Id(hex) => ("the target's id", hex),
    };
    for (what, key) in [("the target's binding", &target.binding), object] {
        machine::check_key(what, key).map_err(|o| Error::KeyTooLong { what: o.what, bytes: o.bytes, limit: o.limit })?;
    }
    machine::check_call_size(machine::json_len(&op), machine::json_len(&resume), machine::json_len(&target))?;
    let (issued_ms, deadline_ms) = machine::call_times(now_ms, opts.issued_ms(), opts.timeout)?;
    let dispatch = opts.dispatch;
    let first = match dispatch {
        Dispatch::Alarm => now_ms,
        Dispatch::Direct => machine::backstop_at(now_ms, 0, deadline_ms),
    };
    Ok((PendingCall::new(id, target, op, resume, dispatch, deadline_ms, issued_ms), first))
}

/// The calls of one object at the caller, in one isolate: the call store, and what this
/// isolate is doing right now (lost with it: a reset loses both sets, and the stored rows
/// and tasks take over).
pub struct Caller<E> {
    store: Rc<Store<E>>,
    /// Calls this isolate is sending right now, with when the send started.
    sending: RefCell<HashMap<String, i64>>,
    /// Calls whose continuation is running right now.
    delivering: RefCell<HashSet<String>>,
}

/// A send of a call that this isolate has claimed ([`Caller::make`],
/// [`Caller::backstop`]): no other send of it starts here until [`Caller::send`] has it
/// back. The adapter runs it in the background.
#[must_use = "a claimed send is sent with Caller::send"]
#[derive(Debug)]
pub struct Claimed {
    call: PendingCall,
    since_ms: i64,
}

impl Claimed {
    /// The call to send.
    pub fn call(&self) -> &PendingCall {
        &self.call
    }
}

impl<E: Exec> Caller<E> {
    /// The calls of `store`, with nothing in progress.
    pub fn new(store: Rc<Store<E>>) -> Self {
        Caller { store, sending: RefCell::default(), delivering: RefCell::default() }
    }

    /// The call store.
    pub fn store(&self) -> &Store<E> {
        &self.store
    }

    /// Stores `call` (from [`new_call`]) and its task, due at `first_ms`; for
    /// [`Dispatch::Direct`], the send to start now (at `now_ms`).
    ///
    /// # Errors
    /// Storage and scheduler errors; nothing is stored then.
    pub async fn make(&self, call: PendingCall, first_ms: i64, now_ms: i64, tasks: &impl Tasks) -> Result<Option<Claimed>> {
        // The call's row and its task commit together in a Durable Object: the scheduler
        // inserts the task synchronously when it is first polled, and nothing awaits between
        // the two inserts (the writes between two awaits commit atomically).
        self.store.insert_call(&call)?;
        if let Err(e) = tasks.schedule(call.id.as_str(), first_ms).await {
            // No call then. A task stored before the error finds no row and ends.
            self.store.remove_call(call.id.as_str())?;
            return Err(e);
        }
        Ok(match call.dispatch {
            Dispatch::Direct => self.claim(call, now_ms),
            Dispatch::Alarm => None,
        })
    }

    /// The calls whose continuation has not completed, oldest first (quarantined ones too).
    ///
    /// # Errors
    /// Storage errors.
    pub fn pending(&self) -> Result<Vec<PendingCall>> {
        self.store.calls()
    }

    /// A page of the pending calls: see [`Store::calls_page`].
    ///
    /// # Errors
    /// Storage errors.
    pub fn pending_page(&self, after: Option<&str>, limit: usize) -> Result<(Vec<PendingCall>, Option<String>)> {
        self.store.calls_page(after, limit)
    }

    /// Cancels call `id` at `now_ms`: its continuation (`then`) runs with
    /// [`CallError::Cancelled`] (or the result already in, or [`CallError::Timeout`] past its
    /// deadline: [`first_result`](machine::first_result)). A quarantined call is removed
    /// with its task. Whether it was pending.
    ///
    /// # Errors
    /// The continuation's error (the call stays pending with its result); storage errors.
    pub async fn cancel(&self, id: &str, now_ms: i64, tasks: &impl Tasks, then: &impl AsyncFn(String, Value, CallResult) -> Result<()>) -> Result<bool> {
        let Some(call) = self.store.call(id)? else { return Ok(false) };
        if call.unreadable.is_some() {
            self.store.remove_call(id)?;
            tasks.cancel(id)?;
            return Ok(true);
        }
        if self.delivering.borrow().contains(id) {
            return Ok(true); // its result is in, and its continuation is running
        }
        if call.result.is_none() {
            // Stored first: nothing else would cancel it again should the object be reset
            // while the continuation runs. The first result rule applies: past the deadline
            // the call has timed out (its task just has not run yet), and a cancel is late.
            let result = machine::first_result(None, Err(CallError::Cancelled), row_bytes(&call), call.deadline_ms, now_ms);
            self.store.store_result(id, &result)?;
        }
        self.deliver(id, Err(CallError::Cancelled), now_ms, false, tasks, then).await?;
        Ok(true)
    }

    /// The task of call `id`, running at `now_ms`: delivers a result that is in or a
    /// timeout, defers the task, and returns the send to start if the call is to be sent.
    ///
    /// # Errors
    /// [`Error::Unreadable`] for a quarantined call (its task retries, then is kept dead);
    /// the continuation's error; storage and scheduler errors.
    pub async fn backstop(&self, id: &str, now_ms: i64, tasks: &impl Tasks, then: &impl AsyncFn(String, Value, CallResult) -> Result<()>) -> Result<Option<Claimed>> {
        if self.delivering.borrow().contains(id) {
            // Its result just came in and its continuation is running: look again later,
            // in case the continuation fails.
            tasks.defer(id, now_ms.saturating_add(FIRST_RETRY_DELAY_MS))?;
            return Ok(None);
        }
        let Some(call) = readable(self.store.call(id)?)? else { return Ok(None) };
        let sending_since = self.sending.borrow().get(id).copied();
        match machine::on_backstop(&call.machine_state(), now_ms, sending_since) {
            Step::Deliver(result) => {
                self.deliver(id, result, now_ms, true, tasks, then).await?;
                Ok(None)
            }
            Step::Wait { backstop_ms } => {
                tasks.defer(id, backstop_ms)?;
                Ok(None)
            }
            Step::Dispatch { backstop_ms } => {
                tasks.defer(id, backstop_ms)?;
                Ok(self.claim(call, now_ms))
            }
        }
    }

    /// Claims the send of `call` at `now_ms`, unless this isolate is sending it already.
    fn claim(&self, call: PendingCall, now_ms: i64) -> Option<Claimed> {
        let mut sending = self.sending.borrow_mut();
        if sending.contains_key(call.id.as_str()) {
            return None;
        }
        sending.insert(call.id.to_string(), now_ms);
        Some(Claimed { call, since_ms: now_ms })
    }

    /// Sends a claimed call once, unless the state machine says it is settled (a timeout,
    /// an expiry), and delivers the result that brings, if any.
    ///
    /// # Errors
    /// The continuation's error (its task tries again); storage errors.
    pub async fn send(&self, claimed: Claimed, transport: &impl Transport, tasks: &impl Tasks, then: &impl AsyncFn(String, Value, CallResult) -> Result<()>) -> Result<()> {
        let Claimed { call, since_ms } = claimed;
        let id = call.id.to_string();
        let sent = self.send_once(call, since_ms, transport).await;
        self.sending.borrow_mut().remove(&id);
        match sent? {
            Some((result, at_ms)) => self.deliver(&id, result, at_ms, false, tasks, then).await,
            None => Ok(()),
        }
    }

    /// One send; the result and when it came in, if that settled the call.
    async fn send_once(&self, call: PendingCall, now_ms: i64, transport: &impl Transport) -> Result<Option<(CallResult, i64)>> {
        let state = call.machine_state();
        if let Step::Deliver(result) = machine::on_backstop(&state, now_ms, None) {
            return Ok(Some((result, now_ms)));
        }
        if call.op.is_none() {
            // Emptied only together with storing a result, which the backstop delivers.
            return Ok(None);
        }
        let Sent { answer, at_ms } = transport.send(&call).await;
        match answer {
            Answer::Done(result) => Ok(Some((result, at_ms))),
            Answer::Busy => Ok(None),
            Answer::Failed(error) => {
                // Only this send changes the count (one per call at a time): no read. A call
                // settled meanwhile has no row to update, and drops the result.
                let (state, give_up) = machine::after_failure(&state, error);
                self.store.record_failure(call.id.as_str(), &state)?;
                Ok(give_up.map(|result| (result, at_ms)))
            }
        }
    }

    /// Runs the continuation of call `id` with its first result (`incoming`, unless one is
    /// stored already) at `now_ms`, then forgets the call: its row, and its task unless that
    /// is the one running this (`in_task`: its run removes it). A call already gone
    /// (completed, cancelled, timed out) drops `incoming`: that is a late reply. So does a
    /// call whose continuation is running already.
    async fn deliver(&self, id: &str, incoming: CallResult, now_ms: i64, in_task: bool, tasks: &impl Tasks, then: &impl AsyncFn(String, Value, CallResult) -> Result<()>) -> Result<()> {
        if !self.delivering.borrow_mut().insert(id.to_owned()) {
            return Ok(());
        }
        let delivered = self.deliver_once(id, incoming, now_ms, in_task, tasks, then).await;
        self.delivering.borrow_mut().remove(id);
        delivered
    }

    async fn deliver_once(&self, id: &str, incoming: CallResult, now_ms: i64, in_task: bool, tasks: &impl Tasks, then: &impl AsyncFn(String, Value, CallResult) -> Result<()>) -> Result<()> {
        let Some(call) = readable(self.store.call(id)?)? else { return Ok(()) };
        let stored = call.result.is_some();
        let result = machine::first_result(call.result.clone(), incoming, row_bytes(&call), call.deadline_ms, now_ms);
        match then(id.to_owned(), call.resume, result.clone()).await {
            Ok(()) => {
                // With the continuation's last writes if it did not await after them: one
                // commit. Cancelling the task writes no alarm: one armed for this backstop
                // fires once with nothing to run, and leaves nothing armed.
                self.store.remove_call(id)?;
                if !in_task {
                    tasks.cancel(id)?;
                }
                Ok(())
            }
            Err(e) => {
                // The retries get the same result.
                if !stored {
                    self.store.store_result(id, &result)?;
                }
                Err(e)
            }
        }
    }
}

/// What a call's row holds besides the operation or the result: its continuation value and
/// target, as JSON.
fn row_bytes(call: &PendingCall) -> usize {
    machine::json_len(&call.resume).saturating_add(machine::json_len(&call.target))
}

/// `call`, unless its row does not decode: then [`Error::Unreadable`] (a quarantined call
/// is neither sent nor continued).
fn readable(call: Option<PendingCall>) -> Result<Option<PendingCall>> {
    match call {
        Some(PendingCall { id, unreadable: Some(reason), .. }) => Err(Error::Unreadable { id: id.into(), reason }),
        call => Ok(call),
    }
}
