//! `abort_on_panic`: a panic must neither hang the object's events nor lose what was going on.
//!
//! On `wasm32-unknown-unknown` a panic aborts the wasm instance, and workers-rs replaces it
//! with a fresh one on the next call. The instance is shared by every Durable Object of the
//! worker in the isolate, so every future in it stops where it was, the panicking object's
//! and every other object's: the promises the runtime awaits for their events (`alarm()`, a
//! `fetch`) never settle, since what would settle them is a wasm closure of the dead instance
//! ("Cannot invoke closure from previous WASM instance"). The runtime gives a hung alarm 15
//! minutes before it retries it, and delivers no other alarm to that object meanwhile.
//!
//! While [`abort_on_panic`] runs a piece of work, a panic hook, still running synchronously
//! in the old instance:
//! 1. calls its `on_panic` with the [`Panic`]: the message, and whether the panic happened
//!    in this work or elsewhere in the isolate (it was being polled, or not), to record what
//!    the panic interrupted (lumenize-alarms records the running task's attempt as failed,
//!    lumenize-call the operation's outcome);
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
use std::future::Future;
use std::pin::pin;

use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use worker::State;

/// What a panic hook tells the work it interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Panic<'a> {
    /// The panic's message and location.
    pub message: &'a str,
    /// Whether the panic happened in this work (the work was being polled), rather than
    /// elsewhere in the isolate (another object's, or another event of this object's),
    /// where it only cut this work short.
    pub here: bool,
}

struct Guarded {
    on_panic: Box<dyn Fn(&Panic<'_>)>,
    /// Resets the guarded object from its own context: resolving it with the reason runs
    /// `storage.sync()`, then `abort(reason)`, there. `None` if the state has no `abort`
    /// or `storage.sync` (not a `DurableObjectState`): nothing to reset.
    trip: Option<Function>,
}

thread_local! {
    static GUARDED: RefCell<BTreeMap<u64, Guarded>> = const { RefCell::new(BTreeMap::new()) };
    /// The guards whose work is being polled now, outermost first.
    static POLLING: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    static NEXT: Cell<u64> = const { Cell::new(0) };
    static HOOKED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` so that a panic anywhere in the isolate (in `work`, in another object of the
/// worker, or in another event of this object) neither hangs this object's event nor loses
/// what `work` was doing: the panic hook calls `on_panic`, then resets the object
/// (`ctx.abort()`) once its storage writes are durable. Call it in the object's own handler:
/// the reset runs in the context that called it.
/// [`Alarms::run_due`](crate::Alarms::run_due) runs its handlers this way; wrap your own
/// long-running work the same way.
///
/// ```no_run
/// # async fn demo(state: &worker::State) {
/// use lumenize_alarms::abort_on_panic;
/// let sql = state.storage().sql();
/// let answer = abort_on_panic(state, move |panic| {
///     let _ = sql.exec("INSERT INTO crashes (message, here) VALUES (?, ?)", vec![panic.message.into(), panic.here.into()]);
/// }, async {
///     // ... work that might panic, or be cut short by a panic elsewhere ...
///     42
/// }).await;
/// # }
/// ```
pub async fn abort_on_panic<F: Future>(state: &State, on_panic: impl Fn(&Panic<'_>) + 'static, work: F) -> F::Output {
    guarded(AsRef::<JsValue>::as_ref(state.as_raw()).clone(), on_panic, work).await
}

/// As [`abort_on_panic`], for the raw `DurableObjectState`.
pub(crate) async fn guarded<F: Future>(state: JsValue, on_panic: impl Fn(&Panic<'_>) + 'static, work: F) -> F::Output {
    let guard = Guard::new(&state, on_panic);
    let mut work = pin!(work);
    std::future::poll_fn(|cx| {
        let _polling = Polling::push(guard.0);
        work.as_mut().poll(cx)
    })
    .await
}

/// Registered with the panic hook while it lives.
struct Guard(u64);

impl Guard {
    fn new(state: &JsValue, on_panic: impl Fn(&Panic<'_>) + 'static) -> Self {
        install_hook();
        let trip = arm(state);
        let key = NEXT.with(|n| n.replace(n.get() + 1));
        GUARDED.with(|g| g.borrow_mut().insert(key, Guarded { on_panic: Box::new(on_panic), trip }));
        Guard(key)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        GUARDED.with(|g| g.borrow_mut().remove(&self.0));
    }
}

/// Marks a guard's work as being polled, until dropped.
struct Polling;

impl Polling {
    fn push(key: u64) -> Self {
        POLLING.with(|p| p.borrow_mut().push(key));
        Polling
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        POLLING.with(|p| p.borrow_mut().pop());
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
        let polling = POLLING.with(|p| p.try_borrow().map(|p| p.clone()).unwrap_or_default());
        GUARDED.with(|g| {
            let Ok(guarded) = g.try_borrow() else { return };
            for (key, guard) in guarded.iter() {
                (guard.on_panic)(&Panic { message: &message, here: polling.contains(key) });
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
