//! `AbortOnPanic`: a panic must neither hang the object's events nor lose what was going on.
//!
//! On `wasm32-unknown-unknown` a panic aborts the wasm instance: every future in it stops
//! where it was, and the promises the runtime awaits (for `alarm()`, for a `fetch`) never
//! settle; the runtime gives an alarm 15 minutes before it retries it. While a guard lives,
//! a panic hook, still running synchronously before the abort:
//! 1. calls the guard's `on_panic` with the panic message, to record what the panic
//!    interrupted (lumenize-alarms records the running task's attempt as failed);
//! 2. resets the object with `ctx.abort()` once `storage.sync()` has made those records
//!    durable (plain JavaScript promise chaining: no wasm runs after the panic). Its events
//!    fail at once; the runtime retries a failed alarm.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use worker::State;

struct Guarded {
    state: JsValue,
    on_panic: Box<dyn Fn(&str)>,
}

thread_local! {
    static GUARDED: RefCell<BTreeMap<u64, Guarded>> = const { RefCell::new(BTreeMap::new()) };
    static NEXT: Cell<u64> = const { Cell::new(0) };
    static HOOKED: Cell<bool> = const { Cell::new(false) };
}

/// While this guard lives, a panic anywhere in the isolate runs `on_panic` and then resets
/// the object (`ctx.abort()`) once its storage writes are durable, instead of leaving its
/// events hanging. [`Alarms::run_due`](crate::Alarms::run_due) holds one; use it around
/// your own long-running work the same way.
///
/// ```no_run
/// # fn demo(state: &worker::State) {
/// use lumenize_alarms::AbortOnPanic;
/// let sql = state.storage().sql();
/// let _guard = AbortOnPanic::new(state, move |msg| {
///     let _ = sql.exec("INSERT INTO crashes (message) VALUES (?)", vec![msg.into()]);
/// });
/// // ... work that might panic ...
/// # }
/// ```
#[must_use = "the guard protects only while it lives"]
pub struct AbortOnPanic(u64);

impl AbortOnPanic {
    /// Guards `state`'s object until the guard is dropped.
    pub fn new(state: &State, on_panic: impl Fn(&str) + 'static) -> Self {
        AbortOnPanic::for_raw(AsRef::<JsValue>::as_ref(state.as_raw()).clone(), on_panic)
    }

    /// As [`new`](Self::new), for the raw `DurableObjectState`.
    pub(crate) fn for_raw(state: JsValue, on_panic: impl Fn(&str) + 'static) -> Self {
        install_hook();
        let key = NEXT.with(|n| n.replace(n.get() + 1));
        GUARDED.with(|g| g.borrow_mut().insert(key, Guarded { state, on_panic: Box::new(on_panic) }));
        AbortOnPanic(key)
    }
}

impl Drop for AbortOnPanic {
    fn drop(&mut self) {
        GUARDED.with(|g| g.borrow_mut().remove(&self.0));
    }
}

fn install_hook() {
    if HOOKED.with(|h| h.replace(true)) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        let message = info.to_string();
        GUARDED.with(|g| {
            let Ok(guarded) = g.try_borrow() else { return };
            for guard in guarded.values() {
                (guard.on_panic)(&message);
            }
            for guard in guarded.values() {
                abort_after_sync(&guard.state, &message);
            }
        });
    }));
}

fn method(target: &JsValue, name: &str) -> Option<Function> {
    Reflect::get(target, &name.into()).ok().and_then(|f| f.dyn_into::<Function>().ok())
}

fn abort_after_sync(state: &JsValue, message: &str) {
    let Some(abort) = method(state, "abort") else { return };
    let reason = JsValue::from_str(&format!("reset after a panic: {message}"));
    let abort = abort.bind1(state, &reason);
    let synced = Reflect::get(state, &"storage".into())
        .ok()
        .and_then(|storage| method(&storage, "sync").and_then(|sync| sync.call0(&storage).ok()))
        .filter(|p| p.is_instance_of::<Promise>());
    match synced.and_then(|p| method(&p, "then").map(|then| (p, then))) {
        Some((synced, then)) => drop(then.call1(&synced, &abort)),
        // `abort` throws by design: the throw is what ends the object's events.
        None => drop(abort.call0(&JsValue::UNDEFINED)),
    }
}
