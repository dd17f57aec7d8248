//! `Target`: which Durable Object a call goes to.

use serde::{Deserialize, Serialize};

/// The Durable Object a call goes to: a binding of the caller's `wrangler.toml` and the
/// object's name or id. Stored with the call, so it must stay valid while the call is pending.
///
/// ```
/// use lumenize_call::Target;
/// let by_name = Target::named("REMOTE_DO", "test-instance");
/// let by_id = Target::id("REMOTE_DO", "8f8d3c0a9d0f4c1e8f8d3c0a9d0f4c1e8f8d3c0a9d0f4c1e8f8d3c0a9d0f4c1e");
/// assert_eq!(by_name.binding, "REMOTE_DO");
/// assert_ne!(by_name, by_id);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Target {
    /// The Durable Object namespace binding, as named in `wrangler.toml`.
    pub binding: String,
    /// The object within the namespace.
    pub object: Object,
}

/// How the object is addressed within its namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Object {
    /// `namespace.id_from_name(name)`.
    Name(String),
    /// `namespace.id_from_string(hex_id)`.
    Id(String),
}

impl Target {
    /// The object called `name` in `binding`'s namespace.
    pub fn named(binding: impl Into<String>, name: impl Into<String>) -> Self {
        Target { binding: binding.into(), object: Object::Name(name.into()) }
    }

    /// The object with this hex id (`ObjectId::to_string`) in `binding`'s namespace.
    pub fn id(binding: impl Into<String>, hex_id: impl Into<String>) -> Self {
        Target { binding: binding.into(), object: Object::Id(hex_id.into()) }
    }
}
