//! `Operation`: what a remote applies, tied to the type of its reply.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// An operation that a remote applies, tied to the type of its reply, so the compiler
/// checks both ends: the remote's handler must return [`Reply`](Self::Reply)
/// ([`Router::route`](crate::Router::route)), and the caller's continuation receives it
/// ([`Continuation::on_reply`](crate::Continuation::on_reply)). Implement it for each
/// operation type, where both objects can see it; an object calls and serves any number of
/// them, each with its own reply type.
///
/// ```
/// use lumenize_call::Operation;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// enum KvOp {
///     Get { key: String },
///     Put { key: String, value: String },
/// }
///
/// impl Operation for KvOp {
///     const NAME: &'static str = "kv";
///     /// The value of `key` (`Get`), or the value it replaced (`Put`).
///     type Reply = Option<String>;
/// }
/// ```
///
/// An operation travels as JSON tagged with its [`NAME`](Self::NAME) (`{"kv":{"Get":..}}`),
/// by which the remote's [`Router`](crate::Router) finds its handler. A reply that does not decode as `Reply` at the
/// caller (the objects run different versions of the type) reaches the continuation as
/// [`CallError::BadReply`](crate::CallError::BadReply).
pub trait Operation: Serialize + DeserializeOwned + 'static {
    /// Its name on the wire: unique among the operations one remote serves, and kept
    /// while calls may be pending (a call in flight under an old name is refused with 404,
    /// [`CallError::Rejected`](crate::CallError::Rejected)).
    const NAME: &'static str;
    /// What the remote replies to this operation.
    type Reply: Serialize + DeserializeOwned + 'static;
}
