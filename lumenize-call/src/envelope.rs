//! The wire format: a versioned JSON envelope over `fetch`, signed with a shared secret so
//! that only lumenize callers can invoke an operation.
//!
//! ```text
//! POST /  x-lumenize-signature: hex(HMAC-SHA256(secret, body))
//! {"v":1,"id":"<call id>","op":<operation>}
//! 200 {"v":1,"id":"<call id>","ok":<reply>}  or  {"v":1,"id":"…","err":{"message":"…","panicked":false}}
//! 409 the call is being applied right now (retry later)
//! 400 malformed envelope or unknown version; 401 missing or wrong signature
//! ```
//!
//! A request that did not come from a lumenize caller (say, one a worker's catch-all route
//! forwarded from the internet) has no valid signature and is refused before anything runs.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

/// The envelope version this release speaks.
pub const VERSION: u32 = 1;

/// The header carrying the request's signature.
pub const SIGNATURE_HEADER: &str = "x-lumenize-signature";

/// A call as it travels to the remote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// Envelope version.
    pub v: u32,
    /// The call's id: the remote applies each id at most once.
    pub id: String,
    /// The operation, as JSON.
    pub op: Value,
}

/// The remote's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallReply {
    /// Envelope version.
    pub v: u32,
    /// The call's id.
    pub id: String,
    /// The operation's outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What the operation did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It returned `Ok` with this reply.
    Ok(Value),
    /// It returned `Err`, panicked, or was cut short.
    Err {
        /// The error's text.
        message: String,
        /// Whether it panicked.
        panicked: bool,
    },
}

/// Why an incoming request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Missing or wrong signature: not from a lumenize caller.
    #[error("missing or invalid {SIGNATURE_HEADER}: not a lumenize call")]
    BadSignature,
    /// Not a call envelope.
    #[error("malformed call envelope: {0}")]
    Malformed(String),
    /// A version this release does not speak.
    #[error("unsupported call envelope version {0} (this remote speaks {VERSION})")]
    UnsupportedVersion(u64),
}

impl Refusal {
    /// The HTTP status to answer with.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadSignature => 401,
            Refusal::Malformed(_) | Refusal::UnsupportedVersion(_) => 400,
        }
    }
}

fn mac(secret: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// The signature of `body` under `secret`, as lowercase hex.
///
/// ```
/// use lumenize_call::envelope::{sign, verify};
/// let sig = sign("s3cret", b"{}");
/// assert!(verify("s3cret", b"{}", &sig));
/// assert!(!verify("other", b"{}", &sig));
/// ```
#[must_use]
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `signature` (hex) is `body`'s signature under `secret` (constant-time compare).
#[must_use]
pub fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let Some(bytes) = decode_hex(signature) else { return false };
    let mut m = mac(secret);
    m.update(body);
    m.verify_slice(&bytes).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Checks and parses an incoming request body: signature first (nothing of an unsigned body
/// is even parsed), then the version, then the shape.
///
/// # Errors
/// The [`Refusal`] to answer with.
pub fn parse_request(secret: &str, body: &str, signature: Option<&str>) -> Result<CallRequest, Refusal> {
    if !signature.is_some_and(|sig| verify(secret, body.as_bytes(), sig)) {
        return Err(Refusal::BadSignature);
    }
    let value: Value = serde_json::from_str(body).map_err(|e| Refusal::Malformed(e.to_string()))?;
    match value.get("v").and_then(Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => return Err(Refusal::UnsupportedVersion(v)),
        None => return Err(Refusal::Malformed("no numeric `v` field".into())),
    }
    serde_json::from_value(value).map_err(|e| Refusal::Malformed(e.to_string()))
}

/// A signed request body for call `id` carrying `op`: `(body, signature)`.
#[must_use]
pub fn signed_request(secret: &str, id: &str, op: &Value) -> (String, String) {
    let body = serde_json::to_string(&CallRequest { v: VERSION, id: id.to_owned(), op: op.clone() })
        .unwrap_or_else(|_| unreachable!("a JSON value always serialises"));
    let signature = sign(secret, body.as_bytes());
    (body, signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_signed_request_round_trips() {
        let (body, sig) = signed_request("k", "c1", &json!({"Echo": "hi"}));
        let req = parse_request("k", &body, Some(&sig)).unwrap();
        assert_eq!(req, CallRequest { v: 1, id: "c1".into(), op: json!({"Echo": "hi"}) });
    }

    #[test]
    fn unsigned_or_tampered_requests_are_refused_before_parsing() {
        let (body, sig) = signed_request("k", "c1", &json!(1));
        assert_eq!(parse_request("k", &body, None), Err(Refusal::BadSignature));
        assert_eq!(parse_request("other", &body, Some(&sig)), Err(Refusal::BadSignature));
        let tampered = body.replace("c1", "c2");
        assert_eq!(parse_request("k", &tampered, Some(&sig)), Err(Refusal::BadSignature));
        assert_eq!(parse_request("k", "not json", Some("zz")), Err(Refusal::BadSignature));
        assert_eq!(Refusal::BadSignature.status(), 401);
    }

    #[test]
    fn malformed_and_unknown_versions_are_400() {
        let signed = |body: &str| parse_request("k", body, Some(&sign("k", body.as_bytes())));
        assert!(matches!(signed("{"), Err(Refusal::Malformed(_))));
        assert!(matches!(signed(r#"{"id":"x","op":1}"#), Err(Refusal::Malformed(_))));
        assert_eq!(signed(r#"{"v":2,"id":"x","op":1}"#), Err(Refusal::UnsupportedVersion(2)));
        assert!(matches!(signed(r#"{"v":1,"op":1}"#), Err(Refusal::Malformed(_))));
        assert_eq!(Refusal::UnsupportedVersion(2).status(), 400);
    }

    #[test]
    fn replies_serialise_as_ok_or_err() {
        let ok = CallReply { v: 1, id: "c".into(), outcome: Outcome::Ok(json!(5)) };
        assert_eq!(serde_json::to_value(&ok).unwrap(), json!({"v":1,"id":"c","ok":5}));
        let err = CallReply { v: 1, id: "c".into(), outcome: Outcome::Err { message: "no".into(), panicked: true } };
        let text = serde_json::to_string(&err).unwrap();
        assert_eq!(serde_json::from_str::<CallReply>(&text).unwrap(), err);
    }

    #[test]
    fn odd_hex_is_not_a_signature() {
        assert!(!verify("k", b"", "abc"));
        assert!(!verify("k", b"", "zz"));
    }
}
