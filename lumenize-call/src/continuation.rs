//! `Continuation`: what runs back at the caller with a call's result, typed by the
//! operation it answers; `Continuations`: the list of them one object's `Calls` delivers.

use std::future::Future;
use std::pin::Pin;

use lumenize_alarms::Alarms;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use worker::{Env, State};

use crate::machine::{self, CallResult};
use crate::{CallError, CallId, Error, Operation, Result};

/// What runs back at the caller, exactly once per call, with the result of the call it was
/// given to: the remote's reply to [`Op`](Self::Op), or a [`CallError`] saying why there is
/// none. The value itself is what the caller keeps of the call meanwhile (stored as JSON
/// with the call): give each purpose its own type.
///
/// ```
/// use lumenize_call::{CallError, Continuation, Ctx, Operation};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Shout(String);
///
/// impl Operation for Shout {
///     const NAME: &'static str = "shout";
///     type Reply = String;
/// }
///
/// /// What the caller keeps of a `Shout` until its reply comes back.
/// #[derive(Serialize, Deserialize)]
/// struct Shouted {
///     asked: String,
/// }
///
/// impl Continuation for Shouted {
///     type Op = Shout;
///     const NAME: &'static str = "shouted";
///
///     async fn on_reply(self, ctx: Ctx, reply: Result<String, CallError>) -> worker::Result<()> {
///         let line = match reply {
///             Ok(loud) => format!("{} -> {loud}", self.asked),
///             Err(e) => format!("{} failed: {e}", self.asked),
///         };
///         ctx.state.storage().sql().exec("INSERT INTO log (line) VALUES (?)", vec![line.into()])?;
///         Ok(())
///     }
/// }
/// ```
///
/// `Ok` completes the call. `Err` (or a value that no longer decodes: [`Error::Decode`])
/// keeps it pending with its result, and its task runs the continuation again per
/// lumenize-alarms' retry policy, then keeps it dead (listed with the error,
/// re-queueable). If the caller is reset while a continuation runs, it runs again: make it
/// idempotent, or record its effect in the same SQLite (keyed by [`Ctx::id`]).
pub trait Continuation: Serialize + DeserializeOwned + 'static {
    /// The operation whose result this continuation receives: [`Calls::call`] takes an
    /// `&Self::Op` with a `Self`, and the compiler checks the reply type here.
    ///
    /// [`Calls::call`]: crate::Calls::call
    type Op: Operation;

    /// Its name in pending calls: unique among the continuations of one object, and kept
    /// while calls may be pending (a pending call whose continuation is no longer listed
    /// fails with [`Error::Decode`] and is kept dead).
    const NAME: &'static str;

    /// Runs with the call's result. Write it as an `async fn`.
    fn on_reply(self, ctx: Ctx, reply: std::result::Result<<Self::Op as Operation>::Reply, CallError>) -> impl Future<Output = worker::Result<()>>;
}

/// What a continuation gets besides its own value and the result: the call's id and the
/// calling object's handles.
#[non_exhaustive]
pub struct Ctx {
    /// The call's id (as [`Calls::call`](crate::Calls::call) returned it): a key to record
    /// the continuation's effect under, to make it idempotent.
    pub id: CallId,
    /// The calling object's state (the same object as the `State` given to `new`).
    pub state: State,
    /// Its environment.
    pub env: Env,
    alarms: Alarms<()>,
}

impl Ctx {
    pub(crate) fn new(id: CallId, state: State, env: Env, alarms: Alarms<()>) -> Self {
        Ctx { id, state, env, alarms }
    }

    /// The object's own scheduler: the handle its `Calls` was opened from, for its task
    /// type `T` (a continuation that schedules a follow-up task).
    ///
    /// ```no_run
    /// # async fn demo(ctx: lumenize_call::Ctx) -> lumenize_alarms::Result<()> {
    /// use std::time::Duration;
    /// use lumenize_alarms::When;
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// enum Task { FollowUp }
    /// ctx.alarms::<Task>().schedule(When::after(Duration::from_secs(60)), Task::FollowUp).await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn alarms<T>(&self) -> Alarms<T> {
        self.alarms.retyped()
    }
}

/// How a pending call's continuation is run: decode its value and the reply, run it.
#[doc(hidden)]
pub type Deliver = fn(Ctx, Value, CallResult) -> Pin<Box<dyn Future<Output = Result<()>>>>;

fn deliver<C: Continuation>(ctx: Ctx, resume: Value, result: CallResult) -> Pin<Box<dyn Future<Output = Result<()>>>> {
    Box::pin(async move {
        let id = ctx.id.to_string();
        let then: C = serde_json::from_value(resume).map_err(|e| Error::Decode { id: id.clone(), reason: e.to_string() })?;
        let reply = result.and_then(|reply| {
            serde_json::from_value::<<C::Op as Operation>::Reply>(reply).map_err(|e| CallError::BadReply { message: machine::clip(e.to_string()) })
        });
        then.on_reply(ctx, reply).await.map_err(|e| Error::Continuation { id, message: e.to_string() })
    })
}

/// The continuations one object's [`Calls`](crate::Calls) delivers: a tuple of
/// [`Continuation`] types, `(Shouted,)` or `(Shouted, Summed)` (up to eight), written as
/// the type of the object's `Calls<(..)>`. A call can only be given a continuation listed
/// here (a compile error otherwise), so every pending call finds its continuation when its
/// result comes back, also after a restart.
pub trait Continuations: 'static {
    /// Each continuation's name and how to run it.
    #[doc(hidden)]
    fn each() -> Vec<(&'static str, Deliver)>;
}

/// Runs the continuation of a pending call whose continuation value is `resume`
/// (`{"<name>": <value>}`).
pub(crate) async fn run<L: Continuations>(ctx: Ctx, resume: Value, result: CallResult) -> Result<()> {
    let found = machine::untag(resume).and_then(|(name, value)| L::each().into_iter().find(|(n, _)| *n == name).map(|(_, deliver)| (deliver, value)));
    match found {
        Some((deliver, value)) => deliver(ctx, value, result).await,
        None => Err(Error::Decode { id: ctx.id.into(), reason: "its continuation is not one of this object's Calls<(..)>".into() }),
    }
}

/// `Self` lists the continuation `C` (at position `I`, which the compiler infers).
#[diagnostic::on_unimplemented(
    message = "`{C}` is not one of the continuations of these `Calls`",
    label = "a continuation this object's `Calls<(..)>` does not list",
    note = "list it in the type of the object's `Calls`, e.g. `Calls<(.., {C})>`, so that its pending calls find it when their results come back"
)]
pub trait Has<C, I> {}

macro_rules! positions {
    ($($i:ident),*) => { $( #[doc(hidden)] pub struct $i; )* };
}
positions!(I0, I1, I2, I3, I4, I5, I6, I7);

impl<A> Has<A, I0> for (A,) {}
impl<A, B> Has<A, I0> for (A, B) {}
impl<A, B> Has<B, I1> for (A, B) {}
impl<A, B, C> Has<A, I0> for (A, B, C) {}
impl<A, B, C> Has<B, I1> for (A, B, C) {}
impl<A, B, C> Has<C, I2> for (A, B, C) {}
impl<A, B, C, D> Has<A, I0> for (A, B, C, D) {}
impl<A, B, C, D> Has<B, I1> for (A, B, C, D) {}
impl<A, B, C, D> Has<C, I2> for (A, B, C, D) {}
impl<A, B, C, D> Has<D, I3> for (A, B, C, D) {}
impl<A, B, C, D, E> Has<A, I0> for (A, B, C, D, E) {}
impl<A, B, C, D, E> Has<B, I1> for (A, B, C, D, E) {}
impl<A, B, C, D, E> Has<C, I2> for (A, B, C, D, E) {}
impl<A, B, C, D, E> Has<D, I3> for (A, B, C, D, E) {}
impl<A, B, C, D, E> Has<E, I4> for (A, B, C, D, E) {}
impl<A, B, C, D, E, F> Has<A, I0> for (A, B, C, D, E, F) {}
impl<A, B, C, D, E, F> Has<B, I1> for (A, B, C, D, E, F) {}
impl<A, B, C, D, E, F> Has<C, I2> for (A, B, C, D, E, F) {}
impl<A, B, C, D, E, F> Has<D, I3> for (A, B, C, D, E, F) {}
impl<A, B, C, D, E, F> Has<E, I4> for (A, B, C, D, E, F) {}
impl<A, B, C, D, E, F> Has<F, I5> for (A, B, C, D, E, F) {}
impl<A, B, C, D, E, F, G> Has<A, I0> for (A, B, C, D, E, F, G) {}
impl<A, B, C, D, E, F, G> Has<B, I1> for (A, B, C, D, E, F, G) {}
impl<A, B, C, D, E, F, G> Has<C, I2> for (A, B, C, D, E, F, G) {}
impl<A, B, C, D, E, F, G> Has<D, I3> for (A, B, C, D, E, F, G) {}
impl<A, B, C, D, E, F, G> Has<E, I4> for (A, B, C, D, E, F, G) {}
impl<A, B, C, D, E, F, G> Has<F, I5> for (A, B, C, D, E, F, G) {}
impl<A, B, C, D, E, F, G> Has<G, I6> for (A, B, C, D, E, F, G) {}
impl<A, B, C, D, E, F, G, H> Has<A, I0> for (A, B, C, D, E, F, G, H) {}
impl<A, B, C, D, E, F, G, H> Has<B, I1> for (A, B, C, D, E, F, G, H) {}
impl<A, B, C, D, E, F, G, H> Has<C, I2> for (A, B, C, D, E, F, G, H) {}
impl<A, B, C, D, E, F, G, H> Has<D, I3> for (A, B, C, D, E, F, G, H) {}
impl<A, B, C, D, E, F, G, H> Has<E, I4> for (A, B, C, D, E, F, G, H) {}
impl<A, B, C, D, E, F, G, H> Has<F, I5> for (A, B, C, D, E, F, G, H) {}
impl<A, B, C, D, E, F, G, H> Has<G, I6> for (A, B, C, D, E, F, G, H) {}
impl<A, B, C, D, E, F, G, H> Has<H, I7> for (A, B, C, D, E, F, G, H) {}

impl<A: Continuation> Continuations for (A,) {
    fn each() -> Vec<(&'static str, Deliver)> {
        vec![(A::NAME, deliver::<A> as Deliver)]
    }
}

impl<A: Continuation, B: Continuation> Continuations for (A, B) {
    fn each() -> Vec<(&'static str, Deliver)> {
        vec![(A::NAME, deliver::<A> as Deliver), (B::NAME, deliver::<B> as Deliver)]
    }
}

impl<A: Continuation, B: Continuation, C: Continuation> Continuations for (A, B, C) {
    fn each() -> Vec<(&'static str, Deliver)> {
        vec![(A::NAME, deliver::<A> as Deliver), (B::NAME, deliver::<B> as Deliver), (C::NAME, deliver::<C> as Deliver)]
    }
}

impl<A: Continuation, B: Continuation, C: Continuation, D: Continuation> Continuations for (A, B, C, D) {
    fn each() -> Vec<(&'static str, Deliver)> {
        vec![(A::NAME, deliver::<A> as Deliver), (B::NAME, deliver::<B> as Deliver), (C::NAME, deliver::<C> as Deliver), (D::NAME, deliver::<D> as Deliver)]
    }
}

impl<A: Continuation, B: Continuation, C: Continuation, D: Continuation, E: Continuation> Continuations for (A, B, C, D, E) {
    fn each() -> Vec<(&'static str, Deliver)> {
        vec![(A::NAME, deliver::<A> as Deliver), (B::NAME, deliver::<B> as Deliver), (C::NAME, deliver::<C> as Deliver), (D::NAME, deliver::<D> as Deliver), (E::NAME, deliver::<E> as Deliver)]
    }
}

impl<A: Continuation, B: Continuation, C: Continuation, D: Continuation, E: Continuation, F: Continuation> Continuations for (A, B, C, D, E, F) {
    fn each() -> Vec<(&'static str, Deliver)> {
        vec![(A::NAME, deliver::<A> as Deliver), (B::NAME, deliver::<B> as Deliver), (C::NAME, deliver::<C> as Deliver), (D::NAME, deliver::<D> as Deliver), (E::NAME, deliver::<E> as Deliver), (F::NAME, deliver::<F> as Deliver)]
    }
}

impl<A: Continuation, B: Continuation, C: Continuation, D: Continuation, E: Continuation, F: Continuation, G: Continuation> Continuations for (A, B, C, D, E, F, G) {
    fn each() -> Vec<(&'static str, Deliver)> {
        vec![(A::NAME, deliver::<A> as Deliver), (B::NAME, deliver::<B> as Deliver), (C::NAME, deliver::<C> as Deliver), (D::NAME, deliver::<D> as Deliver), (E::NAME, deliver::<E> as Deliver), (F::NAME, deliver::<F> as Deliver), (G::NAME, deliver::<G> as Deliver)]
    }
}

impl<A: Continuation, B: Continuation, C: Continuation, D: Continuation, E: Continuation, F: Continuation, G: Continuation, H: Continuation> Continuations for (A, B, C, D, E, F, G, H) {
    fn each() -> Vec<(&'static str, Deliver)> {
        vec![(A::NAME, deliver::<A> as Deliver), (B::NAME, deliver::<B> as Deliver), (C::NAME, deliver::<C> as Deliver), (D::NAME, deliver::<D> as Deliver), (E::NAME, deliver::<E> as Deliver), (F::NAME, deliver::<F> as Deliver), (G::NAME, deliver::<G> as Deliver), (H::NAME, deliver::<H> as Deliver)]
    }
}
