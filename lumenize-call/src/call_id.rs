//! `CallId`: the id of a call, a type of its own so that it is not taken for a task id.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of a call: what [`Calls::call`](crate::Calls::call) returns, what
/// [`Calls::cancel`](crate::Calls::cancel) takes, and what a continuation finds in
/// [`Ctx::id`](crate::Ctx::id). A UUIDv7 as text, so ids sort in the order the calls were
/// made. It is a type of its own, not a `String`, so that it cannot be handed by mistake to
/// an API that takes a task id (the call's own task is the library's, not yours).
///
/// It serializes as its text; to keep it in your own storage, store [`CallId::as_str`] and
/// make it again with `CallId::from`.
///
/// ```
/// use lumenize_call::CallId;
/// let id = CallId::from("01890a5d-ac96-774b-bcce-b302099a8057");
/// assert_eq!(id.as_str(), "01890a5d-ac96-774b-bcce-b302099a8057");
/// assert_eq!(serde_json::to_string(&id).unwrap(), "\"01890a5d-ac96-774b-bcce-b302099a8057\"");
/// assert_eq!(id.to_string(), id.as_str());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(String);

impl CallId {
    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for CallId {
    fn from(id: String) -> Self {
        CallId(id)
    }
}

impl From<&str> for CallId {
    fn from(id: &str) -> Self {
        CallId(id.to_owned())
    }
}

impl From<CallId> for String {
    fn from(id: CallId) -> Self {
        id.0
    }
}

impl AsRef<str> for CallId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for CallId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for CallId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}
