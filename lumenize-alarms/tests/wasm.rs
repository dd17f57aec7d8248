//! The scheduling core on wasm32 (under Node, with `wasm-bindgen-test`): the pieces whose
//! behaviour can differ from a native build.
//!
//! - The run loop awaits handlers that await real JavaScript promises (timers), on the
//!   single-threaded wasm executor; two runs over one object in one isolate (an alarm and a
//!   test-hook request, say) must not run a task twice nor hold a `RefCell` borrow across an
//!   `.await`.
//! - Cron (`croner`, `chrono` without its clock feature) must never read the system clock,
//!   which panics on `wasm32-unknown-unknown`.
//!
//! The clock and UUIDv7 helpers of the adapter are tested next to them, in
//! `src/alarms.rs`. `Alarms` itself and `AbortOnPanic` need a Durable Object's state (and a
//! panic aborts the test runner's instance): they are tested in workerd by
//! `testing/harness/tests/alarms.rs`.
#![cfg(target_arch = "wasm32")]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use js_sys::{Function, Promise};
use lumenize_alarms::core::{self, InFlight, MemoryStore, Scheduled, Store};
use lumenize_alarms::{Options, RetryPolicy, Schedule, Status, When};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &Function, ms: i32);
}

/// Resolves after `ms` milliseconds of a JavaScript timer.
async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve, _reject| set_timeout(&resolve, ms));
    JsFuture::from(promise).await.expect("a timer promise resolves");
}

const T0: i64 = 1_700_000_000_000;

fn schedule(store: &MemoryStore, when: When, payload: &str, opts: Options) -> Scheduled {
    core::schedule(store, T0, &when, payload.to_owned(), &opts, || unreachable!("explicit ids")).expect("schedule")
}

#[wasm_bindgen_test]
async fn handlers_that_await_javascript_timers_run_in_order() {
    let store = MemoryStore::default();
    for (i, delay) in [(0, 30), (1, 10), (2, 20), (3, 0)] {
        schedule(&store, When::at_unix_ms(T0 + delay), &i.to_string(), Options::id(format!("t{i}")));
    }
    let ran = RefCell::new(Vec::new());
    let report = core::run_due(&store, &|| T0 + 100, 100, &InFlight::default(), |n: u32, info: Scheduled| {
        let ran = &ran;
        async move {
            sleep(5).await;
            ran.borrow_mut().push((n, info.due_ms));
            if n == 2 {
                return Err("planned");
            }
            Ok(())
        }
    })
    .await
    .expect("run");
    assert_eq!(*ran.borrow(), [(3, T0), (1, T0 + 10), (2, T0 + 20), (0, T0 + 30)], "(due, seq) order");
    assert_eq!((report.succeeded, report.retrying, report.died, report.more_due), (3, 1, 0, false), "{report:?}");
    let failed = store.get("t2").unwrap().expect("kept for a retry");
    assert_eq!((failed.status, failed.attempts), (Status::Pending, 1));
    assert_eq!(failed.last_error.as_deref(), Some("planned"));
    assert_eq!(failed.due_ms, T0 + 100 + RetryPolicy::default().delay_after(1), "backoff from the failure");
}

#[wasm_bindgen_test]
async fn a_second_run_in_the_same_isolate_never_runs_a_task_that_is_in_flight() {
    let store = Rc::new(MemoryStore::default());
    let in_flight = Rc::new(InFlight::default());
    schedule(&store, When::at_unix_ms(T0), "1", Options::id("slow"));
    schedule(&store, When::at_unix_ms(T0), "2", Options::id("next"));

    let runs = Rc::new(Cell::new(0u32));
    let first_done = Rc::new(RefCell::new(None));
    {
        let (store, in_flight, runs, first_done) = (store.clone(), in_flight.clone(), runs.clone(), first_done.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let report = core::run_due(&*store, &|| T0, 10, &in_flight, |n: u32, _| {
                let runs = runs.clone();
                async move {
                    runs.set(runs.get() + 1);
                    if n == 1 {
                        sleep(50).await;
                    }
                    Ok::<_, String>(())
                }
            })
            .await;
            *first_done.borrow_mut() = Some(report);
        });
    }
    sleep(10).await; // the first run is now inside the slow handler
    assert_eq!(in_flight.tasks().iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["slow"]);
    assert_eq!(store.get("slow").unwrap().expect("stored").status, Status::Running);

    let second = core::run_due(&*store, &|| T0, 10, &in_flight, |_: u32, _| async { Ok::<_, String>(()) })
        .await
        .expect("second run");
    assert_eq!((second.succeeded, second.more_due), (0, true), "the second run defers to the first: {second:?}");

    for _ in 0..100 {
        if first_done.borrow().is_some() {
            break;
        }
        sleep(10).await;
    }
    let first = first_done.borrow_mut().take().expect("the first run finished within a second").expect("first run");
    assert_eq!((first.succeeded, first.more_due), (2, false), "{first:?}");
    assert_eq!(runs.get(), 2, "each task ran once");
    assert!(in_flight.tasks().is_empty());
    assert_eq!(store.earliest().unwrap(), None);
}

#[wasm_bindgen_test]
fn cron_and_intervals_resolve_without_reading_the_clock() {
    let store = MemoryStore::default();
    // 2023-11-14T22:13:20Z: next 03:00 UTC is 2023-11-15T03:00:00Z.
    let nightly = schedule(&store, When::cron("0 3 * * *").unwrap(), "0", Options::id("nightly"));
    assert_eq!(nightly.due_ms, 1_700_017_200_000);
    let five = schedule(&store, When::cron("*/5 * * * * *").unwrap(), "0", Options::id("five"));
    assert_eq!(five.due_ms, T0 + 5_000, "strictly after now, on the seconds field");
    let every = schedule(&store, When::every(Duration::from_millis(250)).unwrap(), "0", Options::id("every"));
    assert_eq!((every.schedule, every.due_ms), (Schedule::Every { interval_ms: 250 }, T0 + 250));
    assert!(When::cron("61 * * * *").is_err());
}

#[wasm_bindgen_test]
async fn a_cron_task_advances_from_its_tick_after_a_late_run() {
    let store = MemoryStore::default();
    schedule(&store, When::cron("*/5 * * * * *").unwrap(), "0", Options::id("five"));
    // Ran 1.2 s late: the next tick is on the grid, from the tick, not from the late clock.
    let report = core::run_due(&store, &|| T0 + 6_200, 10, &InFlight::default(), |_: u32, _| async {
        sleep(1).await;
        Ok::<_, String>(())
    })
    .await
    .expect("run");
    assert_eq!(report.succeeded, 1);
    assert_eq!(store.get("five").unwrap().expect("recurring").due_ms, T0 + 10_000);
}
