//! The wire format: a versioned JSON envelope over `fetch`, signed with a shared secret so
//! that only lumenize callers can invoke an operation, and bound to the object it is for,
//! the object it comes from and the time it was issued.
//!
//! ```text
//! POST /  x-lumenize-signature: hex(HMAC-SHA256(secret, body))
//! {"v":2,"id":"<call id>","to":{"binding":"<binding>","object":"<target's hex id>"},
//!  "from":"<origin's hex id>","issued_ms":<Unix ms>,"op":<operation>}
//!
//! 200 {"v":2,"id":"<call id>","ok":<reply>}
//!  or {"v":2,"id":"…","err":{"message":"…","panicked":false}}
//!  or {"v":2,"id":"…","too_large":{"bytes":…,"limit":…}}    the reply did not fit (applied once)
//!  or {"v":2,"id":"…","unstored":{"message":"…"}}           storing the outcome failed (applied once)
//! 409 the call is being applied right now (ask again later)
//! 403 the call id belongs to another origin's call
//! 410 issued longer ago than MAX_REQUEST_AGE_MS: refused, never to be re-sent
//! 401 missing or wrong signature, addressed to another object, or issued in the future
//! 400 malformed envelope, unknown version, or a key (call id, origin, target) too long
//! ```
//!
//! The signature covers the whole body, so every field is bound: a request captured on
//! its way (or forwarded from the internet by a worker's catch-all route) cannot be
//! replayed to another object, nor after the remote forgot the call's result. The remote
//! checks the signature before it parses anything, then the version and the shape, then
//! that `to.object` is its own id (`state.id().to_string()`), then the issue time against
//! its clock ([`MAX_REQUEST_AGE_MS`], [`MAX_CLOCK_SKEW_MS`]). `to.binding` and `from` are
//! bound but not checked: the remote cannot know the binding name the origin used, nor
//! tell who the origin is except by the signed `from`. The remote keeps a call's result
//! for its origin (`from`) alone: another origin that sends the same call id is refused
//! with 403 ([`OTHER_ORIGIN_STATUS`](crate::machine::OTHER_ORIGIN_STATUS)). A call id, an
//! origin or a target over [`MAX_KEY_BYTES`](crate::machine::MAX_KEY_BYTES) is refused
//! with 400 before anything is stored.
//!
//! A remote accepts [`Secrets::current`] and, during a rotation, [`Secrets::previous`];
//! an origin signs with the current one (see the crate docs for the rotation procedure).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::machine::{check_key, RESULT_RETENTION_MS};

/// The envelope version this release speaks. Version 1 (no target, origin or issue time)
/// is refused with 400.
pub const VERSION: u32 = 2;

/// The header carrying the request's signature.
pub const SIGNATURE_HEADER: &str = "x-lumenize-signature";

/// How far apart two clocks involved in a call may be (the origin's and the remote's, or
/// the remote's on two machines it ran on): the allowance for issue times in the future,
/// and part of the margin between [`MAX_REQUEST_AGE_MS`] and the result retention.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// The oldest request a remote accepts, by its issue time: 23 hours. Older ones are
/// refused with 410 and the origin's continuation gets
/// [`CallError::Expired`](crate::CallError::Expired).
///
/// Why this bound makes "applied at most once" hold across the result retention. Let every
/// clock be within [`MAX_CLOCK_SKEW_MS`] (S) of every other, and let a call be issued at
/// `i` (the origin's clock; the same `i` for every dispatch of the call, so a replay
/// carries it too):
///
/// - the remote applies the call only if it accepts a request, so at a time `t ≥ i - S`
///   (its clock; issue times further in the future are refused), and it stores the call's
///   row at `t` or later, with that time;
/// - cleanup deletes a row only once its own clock reads the row's time plus
///   [`RESULT_RETENTION_MS`] (R): at the first machine's time `≥ i - S + R - S`;
/// - a later request for the same call is accepted only while the remote's clock reads at
///   most `i + MAX_REQUEST_AGE_MS`: at the first machine's time `≤ i + MAX_REQUEST_AGE_MS + S`.
///
/// So with `MAX_REQUEST_AGE_MS + 3 S < R` (checked at compile time; here 23 h + 15 min
/// < 24 h), any request the remote accepts still finds the stored result if the call was
/// applied, and is answered from it instead of applying the operation again.
pub const MAX_REQUEST_AGE_MS: i64 = 23 * 60 * 60 * 1000;

const _: () = assert!(MAX_REQUEST_AGE_MS + 3 * MAX_CLOCK_SKEW_MS < RESULT_RETENTION_MS);

/// The object a request is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// The origin's binding for the target's namespace (bound, not checked).
    pub binding: String,
    /// The target object's id, as lowercase hex (`ObjectId::to_string`).
    pub object: String,
}

/// A call as it travels to the remote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// Envelope version.
    pub v: u32,
    /// The call's id: the remote applies each id at most once.
    pub id: String,
    /// The object it is for.
    pub to: Recipient,
    /// The origin object's id, as hex.
    pub from: String,
    /// When the call was made, Unix ms on the origin's clock: the same for every dispatch.
    pub issued_ms: i64,
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

/// What the operation did, as the remote stores and answers it.
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
    /// It returned `Ok` (or `Err`), but the outcome's JSON is over
    /// [`MAX_REPLY_BYTES`](crate::MAX_REPLY_BYTES): stored in its place.
    TooLarge {
        /// The outcome's size, as JSON.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// It ran, but storing its outcome failed: stored in its place.
    Unstored {
        /// What storage said.
        message: String,
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
    /// A call id, origin or target over [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES): the remote would have to store
    /// it (the call id and origin key its stored result).
    #[error("{what} is too long: {bytes} bytes, over the limit of {limit}")]
    KeyTooLong {
        /// What is too long.
        what: &'static str,
        /// Its length.
        bytes: usize,
        /// [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES).
        limit: usize,
    },
    /// Signed, but for another object: a captured request replayed elsewhere.
    #[error("this call is addressed to another object ({to}), not to this one ({here})")]
    WrongTarget {
        /// The object the request is for.
        to: String,
        /// This object.
        here: String,
    },
    /// Issued longer ago than [`MAX_REQUEST_AGE_MS`]: its result may be gone, so it may
    /// not be applied.
    #[error("this call is too old: issued at {issued_ms}, {} ms ago; a remote accepts calls up to {MAX_REQUEST_AGE_MS} ms old", now_ms.saturating_sub(*issued_ms))]
    Expired {
        /// The request's issue time.
        issued_ms: i64,
        /// The remote's clock.
        now_ms: i64,
    },
    /// Issued further in the future than [`MAX_CLOCK_SKEW_MS`] allows.
    #[error("this call was issued in the future: at {issued_ms}, {} ms ahead of this remote's clock (allowed: {MAX_CLOCK_SKEW_MS} ms)", issued_ms.saturating_sub(*now_ms))]
    FromTheFuture {
        /// The request's issue time.
        issued_ms: i64,
        /// The remote's clock.
        now_ms: i64,
    },
}

/// The status of a [`Refusal::Expired`]: the origin ends the call with
/// [`CallError::Expired`](crate::CallError::Expired) and never re-sends it.
pub const EXPIRED_STATUS: u16 = 410;

impl Refusal {
    /// The HTTP status to answer with.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadSignature | Refusal::WrongTarget { .. } | Refusal::FromTheFuture { .. } => 401,
            Refusal::Malformed(_) | Refusal::UnsupportedVersion(_) | Refusal::KeyTooLong { .. } => 400,
            Refusal::Expired { .. } => EXPIRED_STATUS,
        }
    }
}

/// The secrets of one object: it signs with `current` and accepts `current` or
/// `previous`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    /// Signs outgoing requests; accepted on incoming ones.
    pub current: String,
    /// Also accepted on incoming ones, during a rotation.
    pub previous: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("previous", &self.previous.is_some()).finish_non_exhaustive()
    }
}

impl Secrets {
    /// Only `current`.
    #[must_use]
    pub fn new(current: impl Into<String>) -> Self {
        Secrets { current: current.into(), previous: None }
    }

    /// Also accepting `previous`.
    #[must_use]
    pub fn with_previous(self, previous: impl Into<String>) -> Self {
        Secrets { previous: Some(previous.into()), ..self }
    }

    /// Whether `signature` is `body`'s signature under the current or the previous secret
    /// (each compared in constant time).
    ///
    /// ```
    /// use lumenize_call::envelope::{sign, Secrets};
    /// let rotating = Secrets::new("new").with_previous("old");
    /// assert!(rotating.verify(b"{}", &sign("new", b"{}")));
    /// assert!(rotating.verify(b"{}", &sign("old", b"{}")));
    /// assert!(!rotating.verify(b"{}", &sign("other", b"{}")));
    /// ```
    #[must_use]
    pub fn verify(&self, body: &[u8], signature: &str) -> bool {
        std::iter::once(&self.current).chain(&self.previous).any(|secret| verify(secret, body, signature))
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

/// Checks and parses a request body that object `here` (its hex id) received at `now_ms`
/// (its clock): the signature first (nothing of an unsigned body is even parsed), then the
/// version and the shape, then the length of every key (at most [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES)), then
/// the target, then the issue time.
///
/// # Errors
/// The [`Refusal`] to answer with.
pub fn parse_request(secrets: &Secrets, body: &str, signature: Option<&str>, here: &str, now_ms: i64) -> Result<CallRequest, Refusal> {
    if !signature.is_some_and(|sig| secrets.verify(body.as_bytes(), sig)) {
        return Err(Refusal::BadSignature);
    }
    let value: Value = serde_json::from_str(body).map_err(|e| Refusal::Malformed(e.to_string()))?;
    match value.get("v").and_then(Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => return Err(Refusal::UnsupportedVersion(v)),
        None => return Err(Refusal::Malformed("no numeric `v` field".into())),
    }
    let request: CallRequest = serde_json::from_value(value).map_err(|e| Refusal::Malformed(e.to_string()))?;
    for (what, key) in [("the call id", &request.id), ("the origin", &request.from), ("the target's binding", &request.to.binding), ("the target object", &request.to.object)] {
        check_key(what, key).map_err(|o| Refusal::KeyTooLong { what: o.what, bytes: o.bytes, limit: o.limit })?;
    }
    if request.to.object != here {
        return Err(Refusal::WrongTarget { to: request.to.object, here: here.to_owned() });
    }
    check_issued(request.issued_ms, now_ms)?;
    Ok(request)
}

/// Whether a request issued at `issued_ms` may be accepted at `now_ms`: at most
/// [`MAX_REQUEST_AGE_MS`] old, at most [`MAX_CLOCK_SKEW_MS`] in the future.
///
/// # Errors
/// [`Refusal::Expired`] or [`Refusal::FromTheFuture`].
///
/// ```
/// use lumenize_call::envelope::{check_issued, Refusal, MAX_CLOCK_SKEW_MS, MAX_REQUEST_AGE_MS};
/// let now = 1_800_000_000_000;
/// assert!(check_issued(now - MAX_REQUEST_AGE_MS, now).is_ok());
/// assert!(matches!(check_issued(now - MAX_REQUEST_AGE_MS - 1, now), Err(Refusal::Expired { .. })));
/// assert!(check_issued(now + MAX_CLOCK_SKEW_MS, now).is_ok());
/// assert!(matches!(check_issued(now + MAX_CLOCK_SKEW_MS + 1, now), Err(Refusal::FromTheFuture { .. })));
/// ```
pub fn check_issued(issued_ms: i64, now_ms: i64) -> Result<(), Refusal> {
    if now_ms.saturating_sub(issued_ms) > MAX_REQUEST_AGE_MS {
        return Err(Refusal::Expired { issued_ms, now_ms });
    }
    if issued_ms.saturating_sub(now_ms) > MAX_CLOCK_SKEW_MS {
        return Err(Refusal::FromTheFuture { issued_ms, now_ms });
    }
    Ok(())
}

/// A signed request body: `(body, signature under secret)`.
#[must_use]
pub fn signed_request(secret: &str, request: &CallRequest) -> (String, String) {
    let body = serde_json::to_string(request).unwrap_or_else(|_| unreachable!("a request of strings and JSON values always serialises"));
    let signature = sign(secret, body.as_bytes());
    (body, signature)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::MAX_KEY_BYTES;
    use proptest::prelude::*;
    use serde_json::json;

    const HERE: &str = "aa11";
    const NOW: i64 = 1_800_000_000_000;

    fn request(id: &str, op: Value) -> CallRequest {
        CallRequest {
            v: VERSION,
            id: id.into(),
            to: Recipient { binding: "REMOTE".into(), object: HERE.into() },
            from: "bb22".into(),
            issued_ms: NOW,
            op,
        }
    }

    fn parse(secrets: &Secrets, body: &str, sig: Option<&str>) -> Result<CallRequest, Refusal> {
        parse_request(secrets, body, sig, HERE, NOW)
    }

    #[test]
    fn a_signed_request_round_trips_in_the_documented_format() {
        let (body, sig) = signed_request("k", &request("c1", json!({"Echo": "hi"})));
        let expected = json!({"v": 2, "id": "c1", "to": {"binding": "REMOTE", "object": HERE}, "from": "bb22", "issued_ms": NOW, "op": {"Echo": "hi"}});
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), expected);
        assert_eq!(parse(&Secrets::new("k"), &body, Some(&sig)).unwrap(), request("c1", json!({"Echo": "hi"})));
    }

    #[test]
    fn unsigned_or_tampered_requests_are_refused_before_parsing() {
        let k = Secrets::new("k");
        let (body, sig) = signed_request("k", &request("c1", json!(1)));
        assert_eq!(parse(&k, &body, None), Err(Refusal::BadSignature));
        assert_eq!(parse(&Secrets::new("other"), &body, Some(&sig)), Err(Refusal::BadSignature));
        for (from, to) in [("c1", "c2"), (HERE, "cc33"), ("bb22", "dd44"), (&NOW.to_string(), &(NOW - 1).to_string())] {
            let tampered = body.replace(from, to);
            assert_ne!(tampered, body);
            assert_eq!(parse(&k, &tampered, Some(&sig)), Err(Refusal::BadSignature), "{from} -> {to}");
        }
        assert_eq!(parse(&k, "not json", Some("zz")), Err(Refusal::BadSignature));
        assert_eq!(Refusal::BadSignature.status(), 401);
    }

    #[test]
    fn malformed_and_unknown_versions_are_400() {
        let k = Secrets::new("k");
        let signed = |body: &str| parse(&k, body, Some(&sign("k", body.as_bytes())));
        assert!(matches!(signed("{"), Err(Refusal::Malformed(_))));
        assert!(matches!(signed(r#"{"id":"x","op":1}"#), Err(Refusal::Malformed(_))));
        // Version 1 had no target, origin or issue time: refused, whatever its signature.
        assert_eq!(signed(r#"{"v":1,"id":"x","op":1}"#), Err(Refusal::UnsupportedVersion(1)));
        assert_eq!(signed(r#"{"v":3,"id":"x","op":1}"#), Err(Refusal::UnsupportedVersion(3)));
        assert!(matches!(signed(r#"{"v":2,"id":"x","op":1}"#), Err(Refusal::Malformed(_))));
        let mut extra = serde_json::to_value(request("x", json!(1))).unwrap();
        extra["more"] = json!(1);
        assert!(matches!(signed(&extra.to_string()), Err(Refusal::Malformed(_))));
        assert_eq!(Refusal::UnsupportedVersion(2).status(), 400);
    }

    #[test]
    fn keys_over_the_limit_are_400_before_the_target_is_checked() {
        let k = Secrets::new("k");
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        let fits = "x".repeat(MAX_KEY_BYTES);
        let id = request(&long, json!(1));
        let from = CallRequest { from: long.clone(), ..request("c", json!(1)) };
        let binding = CallRequest { to: Recipient { binding: long.clone(), object: HERE.into() }, ..request("c", json!(1)) };
        let object = CallRequest { to: Recipient { binding: "B".into(), object: long.clone() }, ..request("c", json!(1)) };
        for (req, what) in [(id, "the call id"), (from, "the origin"), (binding, "the target's binding"), (object, "the target object")] {
            let (body, sig) = signed_request("k", &req);
            let refusal = parse(&k, &body, Some(&sig)).unwrap_err();
            assert_eq!(refusal, Refusal::KeyTooLong { what, bytes: MAX_KEY_BYTES + 1, limit: MAX_KEY_BYTES });
            assert_eq!(refusal.status(), 400);
            assert!(refusal.to_string().len() < 200, "{refusal}");
        }
        let (body, sig) = signed_request("k", &CallRequest { from: fits.clone(), ..request(&fits, json!(1)) });
        assert!(parse(&k, &body, Some(&sig)).is_ok());
    }

    #[test]
    fn a_request_for_another_object_is_401() {
        let (body, sig) = signed_request("k", &request("c", json!(1)));
        let refusal = parse_request(&Secrets::new("k"), &body, Some(&sig), "ee55", NOW).unwrap_err();
        assert_eq!(refusal, Refusal::WrongTarget { to: HERE.into(), here: "ee55".into() });
        assert_eq!(refusal.status(), 401);
        assert!(refusal.to_string().contains("addressed to another object"), "{refusal}");
    }

    #[test]
    fn issue_times_are_checked_against_the_remotes_clock() {
        let k = Secrets::new("k");
        let at = |issued_ms: i64, now: i64| {
            let (body, sig) = signed_request("k", &CallRequest { issued_ms, ..request("c", json!(1)) });
            parse_request(&k, &body, Some(&sig), HERE, now)
        };
        assert!(at(NOW, NOW + MAX_REQUEST_AGE_MS).is_ok());
        let old = at(NOW, NOW + MAX_REQUEST_AGE_MS + 1).unwrap_err();
        assert_eq!(old, Refusal::Expired { issued_ms: NOW, now_ms: NOW + MAX_REQUEST_AGE_MS + 1 });
        assert_eq!(old.status(), EXPIRED_STATUS);
        assert!(old.to_string().contains("too old"), "{old}");
        assert!(at(NOW, NOW - MAX_CLOCK_SKEW_MS).is_ok());
        let future = at(NOW, NOW - MAX_CLOCK_SKEW_MS - 1).unwrap_err();
        assert_eq!(future.status(), 401);
        assert!(future.to_string().contains("future"), "{future}");
        // Extreme times neither overflow nor pass.
        assert!(matches!(at(i64::MIN, NOW), Err(Refusal::Expired { .. })));
        assert!(matches!(at(i64::MAX, NOW), Err(Refusal::FromTheFuture { .. })));
    }

    #[test]
    fn the_previous_secret_is_accepted_and_only_the_current_one_signs() {
        let rotating = Secrets::new("new").with_previous("old");
        let (body, _) = signed_request("x", &request("c", json!(1)));
        for key in ["new", "old"] {
            assert!(parse(&rotating, &body, Some(&sign(key, body.as_bytes()))).is_ok(), "{key}");
        }
        assert_eq!(parse(&rotating, &body, Some(&sign("neither", body.as_bytes()))), Err(Refusal::BadSignature));
        // After the rotation, the old secret is refused.
        assert_eq!(parse(&Secrets::new("new"), &body, Some(&sign("old", body.as_bytes()))), Err(Refusal::BadSignature));
        assert!(!format!("{rotating:?}").contains("old"), "secrets must not be printed: {rotating:?}");
    }

    #[test]
    fn replies_serialise_in_the_documented_format() {
        let reply = |outcome| serde_json::to_value(CallReply { v: 2, id: "c".into(), outcome }).unwrap();
        assert_eq!(reply(Outcome::Ok(json!(5))), json!({"v":2,"id":"c","ok":5}));
        assert_eq!(reply(Outcome::TooLarge { bytes: 9, limit: 8 }), json!({"v":2,"id":"c","too_large":{"bytes":9,"limit":8}}));
        assert_eq!(reply(Outcome::Unstored { message: "m".into() }), json!({"v":2,"id":"c","unstored":{"message":"m"}}));
        let err = CallReply { v: 2, id: "c".into(), outcome: Outcome::Err { message: "no".into(), panicked: true } };
        let text = serde_json::to_string(&err).unwrap();
        assert_eq!(serde_json::from_str::<CallReply>(&text).unwrap(), err);
    }

    #[test]
    fn odd_hex_is_not_a_signature() {
        assert!(!verify("k", b"", "abc"));
        assert!(!verify("k", b"", "zz"));
    }

    proptest! {
        /// A request is accepted exactly when it is signed with one of the secrets, for
        /// this object, and issued within [now - max age, now + skew].
        #[test]
        fn acceptance_is_exactly_signature_target_and_time(
            signer in prop::sample::select(vec!["new", "old", "neither"]),
            previous in any::<bool>(),
            for_here in any::<bool>(),
            offset in -2 * MAX_REQUEST_AGE_MS..2 * MAX_CLOCK_SKEW_MS,
        ) {
            let secrets = if previous { Secrets::new("new").with_previous("old") } else { Secrets::new("new") };
            let to = if for_here { HERE } else { "ff66" };
            let req = CallRequest { to: Recipient { binding: "B".into(), object: to.into() }, issued_ms: NOW + offset, ..request("c", json!(null)) };
            let (body, sig) = signed_request(signer, &req);
            let signed_ok = signer == "new" || (signer == "old" && previous);
            let time_ok = (-MAX_REQUEST_AGE_MS..=MAX_CLOCK_SKEW_MS).contains(&offset);
            let got = parse(&secrets, &body, Some(&sig));
            prop_assert_eq!(got.is_ok(), signed_ok && for_here && time_ok, "{:?}", got);
            if !signed_ok {
                prop_assert_eq!(got, Err(Refusal::BadSignature));
            } else if !for_here {
                prop_assert!(matches!(got, Err(Refusal::WrongTarget { .. })), "{:?}", got);
            }
        }
    }
}
