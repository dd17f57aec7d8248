//! What lumenize-call takes from the runtime: the secrets, the clock, call ids, and an
//! owned handle on the object's state.

use wasm_bindgen::{JsCast, JsValue};
use worker::{Env, State};

use crate::envelope::Secrets;
use crate::{Error, Result};

/// The name of the secret (or variable) that authenticates calls: every object that makes
/// or serves calls must see the same value. Objects sign with it and accept it.
pub const SECRET: &str = "LUMENIZE_CALL_SECRET";

/// The name of an optional second secret that objects accept (never sign with): the
/// previous value of [`SECRET`] during a rotation (see the crate docs).
pub const SECRET_PREVIOUS: &str = "LUMENIZE_CALL_SECRET_PREVIOUS";

/// The secret or variable `name`, if set and not empty.
fn secret(env: &Env, name: &str) -> Option<String> {
    let value = env.secret(name).map(|s| s.to_string()).or_else(|_| env.var(name).map(|v| v.to_string()));
    value.ok().filter(|s| !s.is_empty())
}

/// [`SECRET`] (required) and [`SECRET_PREVIOUS`] (optional).
pub(crate) fn secrets(env: &Env) -> Result<Secrets> {
    let secrets = Secrets::new(secret(env, SECRET).ok_or(Error::NoSecret(SECRET))?);
    Ok(match secret(env, SECRET_PREVIOUS) {
        Some(previous) => secrets.with_previous(previous),
        None => secrets,
    })
}

/// An owned handle on the same `DurableObjectState` (worker's `State` is not `Clone`).
pub(crate) fn own(state: &State) -> State {
    State::from(AsRef::<JsValue>::as_ref(state.as_raw()).clone().unchecked_into::<worker::worker_sys::DurableObjectState>())
}

/// The runtime's clock, Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX)
}

/// A fresh UUIDv7 for the time `now_ms`: the id of a call.
pub(crate) fn new_id(now_ms: i64) -> String {
    let ms = u64::try_from(now_ms).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, u32::try_from(ms % 1000).unwrap_or(0) * 1_000_000);
    uuid::Uuid::new_v7(ts).to_string()
}

/// The wasm-only helpers, under Node: the secret lookup works on a real JavaScript `env`
/// object, the clock is JavaScript's, ids are UUIDv7 from JavaScript's random source.
#[cfg(all(test, target_arch = "wasm32"))]
mod wasm_tests {
    use std::collections::HashSet;

    use super::*;
    use crate::envelope;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let object = js_sys::Object::new();
        for (key, value) in pairs {
            js_sys::Reflect::set(&object, &(*key).into(), &(*value).into()).expect("set a property");
        }
        JsValue::from(object).unchecked_into()
    }

    #[wasm_bindgen_test]
    fn the_secrets_come_from_the_environment() {
        assert_eq!(secrets(&env(&[(SECRET, "s3cret")])).unwrap(), Secrets::new("s3cret"));
        assert!(matches!(secrets(&env(&[])), Err(Error::NoSecret(SECRET))));
        assert!(matches!(secrets(&env(&[(SECRET, "")])), Err(Error::NoSecret(SECRET))));
        assert!(matches!(secrets(&env(&[("OTHER", "x")])), Err(Error::NoSecret(SECRET))));
        let rotating = secrets(&env(&[(SECRET, "new"), (SECRET_PREVIOUS, "old")])).unwrap();
        assert_eq!(rotating, Secrets::new("new").with_previous("old"));
        assert_eq!(secrets(&env(&[(SECRET, "new"), (SECRET_PREVIOUS, "")])).unwrap(), Secrets::new("new"));
        assert!(matches!(secrets(&env(&[(SECRET_PREVIOUS, "old")])), Err(Error::NoSecret(SECRET))));
    }

    #[wasm_bindgen_test]
    fn the_clock_is_javascripts_in_milliseconds() {
        #[allow(clippy::cast_possible_truncation)]
        let js = js_sys::Date::now() as i64;
        let ours = now_ms();
        assert!((ours - js).abs() < 1_000, "now_ms {ours} vs Date.now {js}");
    }

    #[wasm_bindgen_test]
    fn call_ids_are_distinct_uuidv7_of_the_given_millisecond() {
        let now = now_ms();
        let ids: HashSet<String> = (0..1_000).map(|_| new_id(now)).collect();
        assert_eq!(ids.len(), 1_000, "ids drawn in the same millisecond collide");
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 7, "{id}");
            let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
            assert_eq!(i64::try_from(secs * 1000 + u64::from(nanos / 1_000_000)).unwrap(), now, "{id}");
        }
    }

    #[wasm_bindgen_test]
    fn signatures_on_wasm_match_the_native_ones() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(envelope::sign("Jefe", b"what do ya want for nothing?"), expected);
    }
}
