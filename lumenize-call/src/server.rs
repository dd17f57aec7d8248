//! `Server`: answering other objects' calls, and forgetting their results after a day.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;

use lumenize_alarms::{abort_on_panic, Panic};
use serde_json::Value;
use worker::{console_error, Env, Method, Request, Response, State};

use crate::envelope::{self, CallReply, Outcome, Secrets, SIGNATURE_HEADER, VERSION};
use crate::machine::{self, Serve, INTERRUPTED, OTHER_ORIGIN_STATUS, RESULT_RETENTION_MS};
use crate::router::{Router, Work};
use crate::runtime::{now_ms, own, secrets};
use crate::store::Store;
use crate::{Error, Result};

/// How many results one served call forgets at most, when their day is over: the rest go
/// with the next calls served.
const FORGET_PER_CALL: i64 = 1_000;

/// Serves calls from other objects: applies each call's operation at most once, keeps its
/// result for a day to answer re-dispatches, and forgets it after that. Open it once, in
/// `DurableObject::new`, and keep it in a field; cheap to clone. It needs no scheduler and
/// no `alarm()`: a serve-only object is a fetch route and nothing else. An object that also
/// makes calls opens [`Calls`](crate::Calls) instead and serves through
/// [`Calls::server`](crate::Calls::server).
///
/// ```no_run
/// use std::convert::Infallible;
/// use lumenize_call::{Operation, Router, Server};
/// use serde::{Deserialize, Serialize};
/// use worker::*;
///
/// #[derive(Serialize, Deserialize)]
/// struct Double(i64);
///
/// impl Operation for Double {
///     const NAME: &'static str = "double";
///     type Reply = i64;
/// }
///
/// #[durable_object]
/// pub struct Doubler {
///     server: Server,
/// }
///
/// impl DurableObject for Doubler {
///     fn new(state: State, env: Env) -> Self {
///         Self { server: Server::open(&state, &env) }
///     }
///
///     async fn fetch(&self, req: Request) -> Result<Response> {
///         // The compiler checks that the handler returns Double's Reply.
///         let router = Router::new().route(async |Double(n)| n.checked_mul(2).ok_or("overflow"));
///         Ok(self.server.serve(req, router).await?)
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Rc<Inner>,
}

struct Inner {
    /// What serving needs, or why the object cannot serve (returned by every method).
    opened: std::result::Result<Opened, Error>,
    /// Calls this object is applying right now.
    applying: RefCell<HashSet<String>>,
    /// When results are next looked at for forgetting (Unix ms; 0: at the next call served).
    next_forget_ms: Cell<i64>,
}

pub(crate) struct Opened {
    pub(crate) store: Rc<Store>,
    pub(crate) state: State,
    pub(crate) env: Env,
    pub(crate) secrets: Secrets,
}

impl Server {
    /// Opens the serving side of this object: reads [`SECRET`](crate::SECRET) and
    /// [`SECRET_PREVIOUS`](crate::SECRET_PREVIOUS), and creates lumenize-call's tables on
    /// first use (synchronous SQL: call it in `DurableObject::new`).
    ///
    /// Opening never fails and never panics: if [`SECRET`](crate::SECRET) is not set
    /// ([`Error::NoSecret`]) or the object has no SQLite (`Error::Alarms(NoSqlite)`), every
    /// call served is answered with a 500 saying so, and every method returns the error.
    pub fn open(state: &State, env: &Env) -> Self {
        let opened = Self::opened_with(state, env);
        Server { inner: Rc::new(Inner { opened, applying: RefCell::default(), next_forget_ms: Cell::new(0) }) }
    }

    fn opened_with(state: &State, env: &Env) -> Result<Opened> {
        let sql = lumenize_alarms::sql_storage(&state.storage())?;
        // A class without SQLite may still hand out `sql`, which then refuses every
        // statement: the store's open answers that with NoSqlite.
        let store = Rc::new(Store::open(sql)?);
        let secrets = secrets(env)?;
        Ok(Opened { store, state: own(state), env: env.clone(), secrets })
    }

    /// Whether this object can serve: `Err` with what opening met ([`Error::NoSecret`], no
    /// SQLite, a table written by a newer release), for a health check or a clear error at
    /// start. Nothing else needs it: [`serve`](Self::serve) answers 500 with the same reason.
    ///
    /// # Errors
    /// What opening met.
    pub fn ready(&self) -> Result<()> {
        self.opened().map(|_| ())
    }

    /// What serving needs, or the error opening met.
    pub(crate) fn opened(&self) -> Result<&Opened> {
        self.inner.opened.as_ref().map_err(Error::replay)
    }

    /// Answers a call request from another object's [`Calls::call`](crate::Calls::call):
    /// checks the signature and the envelope, finds the operation's handler in `router`,
    /// applies it at most once per call id, stores the outcome, and replies. A re-dispatch
    /// of a call already applied gets the stored outcome; a call cut short by a reset gets
    /// [`CallError::Remote`](crate::CallError::Remote) ("may or may not have taken
    /// effect"). A handler's `Err` and panics reach the caller as `CallError::Remote`.
    ///
    /// Refused with 401 if unsigned or signed with neither [`SECRET`](crate::SECRET) nor
    /// [`SECRET_PREVIOUS`](crate::SECRET_PREVIOUS) (a request forwarded from the internet
    /// cannot run an operation), addressed to another object, or issued further in the
    /// future than the clock-skew allowance; 410 if issued more than
    /// [`MAX_REQUEST_AGE_MS`](crate::MAX_REQUEST_AGE_MS) ago; 400 for a malformed
    /// envelope, an unknown version or an operation that does not decode as its type; 404
    /// for an operation `router` has no route for; 405 for anything but `POST`; 400 too for
    /// a call id, origin or target over [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES);
    /// 500 with the reason if the object cannot serve (no secret, no SQLite). A stored
    /// result goes back only to the origin that made the call (the signed `from` of its
    /// first request): a request from another origin with the same call id is refused with
    /// 403, and not applied. A stored result that does not decode (written by hand or by a
    /// bug) is answered as [`CallError::Storage`](crate::CallError::Storage), and the call
    /// is not applied again.
    ///
    /// An outcome over [`MAX_REPLY_BYTES`](crate::MAX_REPLY_BYTES), or one that cannot be
    /// stored, is stored and answered as a small error outcome in its place (the caller
    /// gets [`CallError::TooLarge`](crate::CallError::TooLarge) or
    /// [`CallError::Storage`](crate::CallError::Storage)), never as a 500.
    ///
    /// Writes: a row marking the call as being applied (one statement for a call seen the
    /// first time: only a call seen before, or a refused one, is read), then its outcome in
    /// the same row; one commit when the handler does not await. A request refused writes
    /// nothing. Results older than
    /// [`RESULT_RETENTION_MS`] are forgotten as calls are
    /// served, never more than a thousand at a time, with no scheduler and no `alarm()`.
    ///
    /// # Errors
    /// Storage errors before the operation is applied.
    pub async fn serve(&self, mut req: Request, router: Router<'_>) -> Result<Response> {
        let opened = match self.opened() {
            Ok(opened) => opened,
            Err(e) => return refuse(&format!("lumenize-call: this object cannot serve calls: {e}"), 500),
        };
        if req.method() != Method::Post {
            return refuse("lumenize-call: POST a call envelope", 405);
        }
        let body = req.text().await?;
        let signature = req.headers().get(SIGNATURE_HEADER)?;
        let here = opened.state.id().to_string();
        let request = match envelope::parse_request(&opened.secrets, &body, signature.as_deref(), &here, now_ms()) {
            Ok(request) => request,
            Err(refusal) => return refuse(&refusal.to_string(), refusal.status()),
        };
        let (id, origin) = (request.id, request.from);
        let applying = self.inner.applying.borrow().contains(&id);
        let work = route(router, request.op);
        // A call seen for the first time, the usual case, costs one statement here: its row,
        // stored unless one is there. Only a call seen before, or refused, is read back.
        let started = work.is_ok() && !applying && opened.store.start(&origin, &id, now_ms())?;
        let outcome = match (work, started) {
            (Ok(work), true) => self.apply(opened, &origin, &id, work).await?,
            (work, _) => match machine::serve(opened.store.record(&id)?, &origin, applying) {
                Serve::Replay(outcome) => outcome,
                // Nothing stored: the operation is refused (a routed one was started above).
                Serve::Apply => {
                    let (message, status) = work.err().unwrap_or_else(|| (BUSY.into(), 409));
                    return refuse(&message, status);
                }
                Serve::Busy => return refuse(BUSY, 409),
                Serve::OtherOrigin => return refuse("lumenize-call: this call id belongs to a call of another origin", OTHER_ORIGIN_STATUS),
                Serve::Interrupted => {
                    let outcome = Outcome::Err { message: INTERRUPTED.into(), panicked: false };
                    opened.store.record_outcome(&origin, &id, outcome, now_ms())
                }
            },
        };
        self.forget(opened, now_ms());
        let reply = CallReply { v: VERSION, id, outcome };
        Ok(Response::from_json(&reply)?)
    }

    /// Applies call `id`, whose row [`Store::start`] stored, and stores its outcome.
    async fn apply(&self, opened: &Opened, origin: &str, id: &str, work: Work<'_>) -> Result<Outcome> {
        let store = opened.store.clone();
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
        let result = abort_on_panic(&opened.state, on_panic, work).await;
        self.inner.applying.borrow_mut().remove(id);
        let outcome = match result {
            Ok(value) => Outcome::Ok(value),
            Err(message) => Outcome::Err { message, panicked: false },
        };
        Ok(store.record_outcome(origin, id, outcome, now_ms()))
    }

    /// Forgets results finished more than [`RESULT_RETENTION_MS`]
    /// ago, at most [`FORGET_PER_CALL`] per call served, and only when the oldest one is
    /// due (this isolate remembers when): results need no scheduler and no `alarm()`. An
    /// object that serves no more calls keeps its last day of results until the next one.
    /// A failure is logged, never answered: the outcome is stored, and the next call served
    /// tries again.
    fn forget(&self, opened: &Opened, now: i64) {
        if now < self.inner.next_forget_ms.get() {
            return;
        }
        match opened.store.forget_results(now.saturating_sub(RESULT_RETENTION_MS), now, FORGET_PER_CALL) {
            Ok(Some(oldest)) => self.inner.next_forget_ms.set(oldest.saturating_add(RESULT_RETENTION_MS)),
            Ok(None) => self.inner.next_forget_ms.set(now.saturating_add(RESULT_RETENTION_MS)),
            Err(e) => console_error!("lumenize-call: forgetting the results of calls served more than a day ago: {e}"),
        }
    }
}

/// The work of a tagged operation `op` on its route; or the refusal, with its status.
fn route(router: Router<'_>, op: Value) -> std::result::Result<Work<'_>, (String, u16)> {
    let Some((name, op)) = machine::untag(op) else {
        return Err(("lumenize-call: the operation is not tagged with its name ({\"<name>\": <operation>})".into(), 400));
    };
    match router.dispatch(&name, op) {
        None => Err((format!("lumenize-call: no route serves the operation {name:?}"), UNKNOWN_OPERATION_STATUS)),
        Some(Err(e)) => Err((format!("lumenize-call: {e}"), 400)),
        Some(Ok(work)) => Ok(work),
    }
}

/// The refusal of a request for a call this isolate is applying right now (409).
const BUSY: &str = "lumenize-call: this call is being applied; ask again later";

/// The status of a call whose operation no route serves.
pub const UNKNOWN_OPERATION_STATUS: u16 = 404;

fn refuse(message: &str, status: u16) -> Result<Response> {
    Ok(Response::error(message, status)?)
}
