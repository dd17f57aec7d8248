//! `AbortOnPanic`: a panic must neither hang the object's events nor lose what was going on.
//!
//! On `wasm32-unknown-unknown` a panic aborts the wasm instance, and workers-rs replaces it
//! with a fresh one on the next call. The instance is shared by every Durable Object of the
//! worker in the isolate, so every future in it stops where it was, the panicking object's
//! and every other object's: the promises the runtime awaits for their events (`alarm()`, a
//! `fetch`) never settle, since what would settle them is a wasm closure of the dead instance
//! ("Cannot invoke closure from previous WASM instance"). The runtime gives a hung alarm 15
//! minutes before it retries it, and delivers no other alarm to that object meanwhile.
//!
//! While a guard lives, a panic hook, still running synchronously in the old instance:
//! 1. calls the guard's `on_panic` with the panic message, to record what the panic
//!    interrupted (lumenize-alarms records the running task's attempt as failed);
//! 2. trips the guard: it resolves a promise the guard created in its own object's context,
//!    whose continuation is plain JavaScript (no wasm runs after the panic):
//!    `storage.sync()`, then `ctx.abort(reason)`. The object's events fail at once; the
//!    runtime retries a failed alarm.
//!
//! The continuation must run in the guarded object's context, not the panicking one's:
//! workerd's `abort()` aborts the *current* context (`IoContext::current().abort()`, in
//! `DurableObjectState::abort`), so calling another object's `abort()` from the hook would
//! reset the panicking object again and leave the other one hung. A promise continuation
//! does run in the context that created the promise, whichever context resolves it, under
//! the compatibility flag `handle_cross_request_promise_resolution` (the default from the
//! compatibility date 2024-10-14 on).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use worker::State;

struct Guarded {
    on_panic: Box<dyn Fn(&str)>,
    /// Resets the guarded object from its own context: resolving it with the reason runs
    /// `storage.sync()`, then `abort(reason)`, there. `None` if the state has no `abort`
    /// or `storage.sync` (not a `DurableObjectState`): nothing to reset.
    trip: Option<Function>,
}

thread_local! {
    static GUARDED: RefCell<BTreeMap<u64, Guarded>> = const { RefCell::new(BTreeMap::new()) };
    static NEXT: Cell<u64> = const { Cell::new(0) };
    static HOOKED: Cell<bool> = const { Cell::new(false) };
}

/// While this guard lives, a panic anywhere in the isolate (in this object or in any other
/// object of the worker) runs `on_panic` and then resets the object (`ctx.abort()`) once its
/// storage writes are durable, instead of leaving its events hanging. Create it in the
/// object's own handler: the reset runs in the context that created the guard.
/// [`Alarms::run_due`](crate::Alarms::run_due) holds one; use it around your own
/// long-running work the same way.
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
        let trip = arm(&state);
        let key = NEXT.with(|n| n.replace(n.get() + 1));
        GUARDED.with(|g| g.borrow_mut().insert(key, Guarded { on_panic: Box::new(on_panic), trip }));
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
            let reason = JsValue::from_str(&format!("reset after a panic: {message}"));
            for trip in guarded.values().filter_map(|guard| guard.trip.as_ref()) {
                drop(trip.call1(&JsValue::UNDEFINED, &reason));
            }
        });
    }));
}

fn method(target: &JsValue, name: &str) -> Option<Function> {
    Reflect::get(target, &name.into()).ok().and_then(|f| f.dyn_into::<Function>().ok())
}

/// Creates, in the current context (the guarded object's), a pending promise whose
/// continuation resets the object; returns the function that resolves it with the reason.
///
/// The continuation is made of bound JavaScript built-ins only, so it still runs once the
/// wasm instance is gone: `Promise.all([tripped, Promise.allSettled([tripped.then(sync)])])
/// .then(Reflect.apply.bind(undefined, abort, state))`, which calls `abort(reason, ..)`
/// after `storage.sync()` settles (a failed sync must not prevent the reset).
fn arm(state: &JsValue) -> Option<Function> {
    let abort = method(state, "abort")?;
    let storage = Reflect::get(state, &"storage".into()).ok()?;
    let sync = method(&storage, "sync")?.bind0(&storage);
    let apply = method(&Reflect::get(&js_sys::global(), &"Reflect".into()).ok()?, "apply")?;
    let abort = apply.bind2(&JsValue::UNDEFINED, &abort, state);

    let mut resolve = None;
    let tripped = Promise::new(&mut |res, _| resolve = Some(res));
    let synced = then(&tripped, sync.as_ref())?;
    let settled = Promise::all_settled(&Array::of1(&synced));
    // Rejects once tripped: `abort` throws by design, which is what ends the object's events.
    let _reset = then(&Promise::all(&Array::of2(&tripped, &settled)), abort.as_ref())?;
    resolve
}

/// `promise.then(f)`, through `Reflect` (js_sys's `then` takes a wasm closure, which would
/// be dead by the time it runs).
fn then(promise: &Promise, f: &JsValue) -> Option<Promise> {
    method(promise, "then")?.call1(promise, f).ok()?.dyn_into::<Promise>().ok()
}
