//! `Operation`: what a remote applies, tied to the type of its reply.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// An operation that a remote applies, tied to the type of its reply, so the compiler
/// checks both ends: the remote's handler must return [`Reply`](Self::Reply)
/// ([`Server::serve`](crate::Server::serve)), and the caller's continuation receives it
/// ([`Calls::open`](crate::Calls::open)). Implement it for your operation type (usually an
/// enum, one variant per operation) where both objects can see it:
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
///     /// The value of `key` (`Get`), or the value it replaced (`Put`).
///     type Reply = Option<String>;
/// }
/// ```
///
/// Variants whose replies differ share one reply type: an enum of replies, or
/// `serde_json::Value`. Both travel as JSON. A reply that does not decode as `Reply` at the
/// caller (the objects run different versions of the type) reaches the continuation as
/// [`CallError::BadReply`](crate::CallError::BadReply).
pub trait Operation: Serialize + DeserializeOwned + 'static {
    /// What the remote replies to this operation.
    type Reply: Serialize + DeserializeOwned + 'static;
}
