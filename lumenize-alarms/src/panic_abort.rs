//! A panic must neither hang the alarm nor lose the attempt.
//!
//! On `wasm32-unknown-unknown` a panic aborts the wasm instance: every future in it stops
//! where it was, and the promise the runtime awaits for `alarm()` would never settle (the
//! runtime gives an alarm 15 minutes before it retries). So while a run is in progress, a
//! panic hook, still running synchronously before the abort:
//! 1. records the attempt of each running task as failed ("the handler panicked"), so the
//!    retry policy applies and a task that always panics ends dead instead of blocking the
//!    queue;
//! 2. resets the object with `ctx.abort()` once `storage.sync()` has made that record
//!    durable (plain JavaScript promise chaining: no wasm runs after the panic). The alarm
//!    fails at once, the runtime retries it, and the queue goes on.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::core::{self, InFlight};
use crate::sql_store::SqlStore;

/// What the hook needs of one object with a run in progress.
struct Running {
    state: JsValue,
    storage: JsValue,
    store: Rc<SqlStore>,
    in_flight: Rc<InFlight>,
}

thread_local! {
    static RUNNING: RefCell<HashMap<String, Running>> = RefCell::new(HashMap::new());
    static HOOKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Registers an object as running tasks until dropped.
pub(crate) struct AbortOnPanic(String);

impl AbortOnPanic {
    pub(crate) fn new(object_id: &str, state: &JsValue, storage: &JsValue, store: &Rc<SqlStore>, in_flight: &Rc<InFlight>) -> Self {
        install_hook();
        let running = Running { state: state.clone(), storage: storage.clone(), store: store.clone(), in_flight: in_flight.clone() };
        RUNNING.with(|r| r.borrow_mut().insert(object_id.to_owned(), running));
        AbortOnPanic(object_id.to_owned())
    }
}

impl Drop for AbortOnPanic {
    fn drop(&mut self) {
        RUNNING.with(|r| r.borrow_mut().remove(&self.0));
    }
}

fn install_hook() {
    if HOOKED.with(|h| h.replace(true)) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        let error = format!("the handler panicked: {info}");
        RUNNING.with(|r| {
            let Ok(running) = r.try_borrow() else { return };
            for object in running.values() {
                let now = crate::alarms::now_ms();
                for task in object.in_flight.tasks() {
                    // Best effort: if this fails, the next run still finds the task running
                    // and counts the attempt as cut short.
                    let _ = core::run::fail(&*object.store, &task, now, error.clone());
                }
                abort_after_sync(object, &error);
            }
        });
    }));
}

fn abort_after_sync(object: &Running, error: &str) {
    let method = |target: &JsValue, name: &str| Reflect::get(target, &name.into()).ok().and_then(|f| f.dyn_into::<Function>().ok());
    let (Some(sync), Some(abort)) = (method(&object.storage, "sync"), method(&object.state, "abort")) else { return };
    let reason = JsValue::from_str(&format!("lumenize-alarms reset the object after a panic: {error}"));
    let abort = abort.bind1(&object.state, &reason);
    let synced = sync.call0(&object.storage).ok().filter(|p| p.is_instance_of::<Promise>());
    if let Some((synced, then)) = synced.and_then(|p| method(&p, "then").map(|then| (p, then))) {
        let _ = then.call1(&synced, &abort);
    } else {
        let _ = abort.call0(&JsValue::UNDEFINED);
    }
}
