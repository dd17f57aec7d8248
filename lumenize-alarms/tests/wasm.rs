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
//! `src/alarms.rs`. `Alarms` itself and `abort_on_panic` need a Durable Object's state (and a
//! panic aborts the test runner's instance): they are tested in workerd by
//! `testing/harness/tests/alarms.rs`.
#![cfg(target_arch = "wasm32")]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use js_sys::{Function, Promise};
use lumenize_alarms::core::{MemoryStore, Scheduler, SimulatedAlarm, Scheduled, Store, LEAVE_TO_FIRE_MS};
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

/// A scheduler over a memory store and a simulated native alarm.
fn scheduler() -> (Rc<Scheduler<MemoryStore>>, Rc<SimulatedAlarm>) {
    (Rc::new(Scheduler::new(MemoryStore::default())), Rc::new(SimulatedAlarm::default()))
}

async fn schedule(s: &Scheduler<MemoryStore>, alarm: &SimulatedAlarm, when: When, payload: &str, opts: Options) -> Scheduled {
    let id = s.schedule(alarm, T0, &when, payload.to_owned(), &opts, || unreachable!("explicit ids")).await.expect("schedule");
    s.get(&id).expect("read").expect("stored")
}

#[wasm_bindgen_test]
async fn handlers_that_await_javascript_timers_run_in_order() {
    let (s, alarm) = scheduler();
    for (i, delay) in [(0, 30), (1, 10), (2, 20), (3, 0)] {
        schedule(&s, &alarm, When::at_unix_ms(T0 + delay), &i.to_string(), Options::id(format!("t{i}"))).await;
    }
    let ran = RefCell::new(Vec::new());
    let report = s
        .run_due(&*alarm, &|| T0 + 100, None, 100, async |n: u32, info: Scheduled| {
            sleep(5).await;
            ran.borrow_mut().push((n, info.due_ms));
            if n == 2 {
                return Err("planned");
            }
            Ok(())
        })
        .await
        .expect("run");
    assert_eq!(*ran.borrow(), [(3, T0), (1, T0 + 10), (2, T0 + 20), (0, T0 + 30)], "(due, seq) order");
    assert_eq!((report.succeeded, report.retrying, report.died, report.more_due), (3, 1, 0, false), "{report:?}");
    let failed = s.store().get("t2").unwrap().expect("kept for a retry");
    assert_eq!((failed.status, failed.attempts), (Status::Pending, 1));
    assert_eq!(failed.last_error.as_deref(), Some("planned"));
    assert_eq!(failed.due_ms, T0 + 100 + RetryPolicy::default().delay_after(1), "backoff from the failure");
}

#[wasm_bindgen_test]
async fn a_second_run_in_the_same_isolate_never_runs_a_task_that_is_in_flight() {
    let (s, alarm) = scheduler();
    schedule(&s, &alarm, When::at_unix_ms(T0), "1", Options::id("slow")).await;
    schedule(&s, &alarm, When::at_unix_ms(T0), "2", Options::id("next")).await;

    let runs = Rc::new(Cell::new(0u32));
    let first_done = Rc::new(RefCell::new(None));
    {
        let (s, alarm, runs, first_done) = (s.clone(), alarm.clone(), runs.clone(), first_done.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let report = s
                .run_due(&*alarm, &|| T0, None, 10, async |n: u32, _| {
                    runs.set(runs.get() + 1);
                    if n == 1 {
                        sleep(50).await;
                    }
                    Ok::<_, String>(())
                })
                .await;
            *first_done.borrow_mut() = Some(report);
        });
    }
    sleep(10).await; // the first run is now inside the slow handler
    assert_eq!(s.store().get("slow").unwrap().expect("stored").status, Status::Running);

    let second = s.run_due(&*alarm, &|| T0, None, 10, async |_: u32, _| Ok::<_, String>(())).await.expect("second run");
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
    assert_eq!(s.store().earliest().unwrap(), None);
    // Nothing pending: the alarm the second run armed (for the task in flight, now + 1 ms)
    // is due within LEAVE_TO_FIRE_MS, so it is left to fire once, empty; no later alarm.
    let armed = alarm.armed();
    assert!(armed.is_none_or(|t| t <= T0 + LEAVE_TO_FIRE_MS), "the first run ended with nothing pending, but armed {armed:?}");
}

#[wasm_bindgen_test]
async fn cron_and_intervals_resolve_without_reading_the_clock() {
    let (s, alarm) = scheduler();
    // 2023-11-14T22:13:20Z: next 03:00 UTC is 2023-11-15T03:00:00Z.
    let nightly = schedule(&s, &alarm, When::cron("0 3 * * *").unwrap(), "0", Options::id("nightly")).await;
    assert_eq!(nightly.due_ms, 1_700_017_200_000);
    let five = schedule(&s, &alarm, When::cron("*/5 * * * * *").unwrap(), "0", Options::id("five")).await;
    assert_eq!(five.due_ms, T0 + 5_000, "strictly after now, on the seconds field");
    let every = schedule(&s, &alarm, When::every(Duration::from_millis(250)).unwrap(), "0", Options::id("every")).await;
    assert_eq!((every.schedule, every.due_ms), (Schedule::Every { interval_ms: 250 }, T0 + 250));
    assert!(When::cron("61 * * * *").is_err());
}

#[wasm_bindgen_test]
async fn a_cron_task_advances_from_its_tick_after_a_late_run() {
    let (s, alarm) = scheduler();
    schedule(&s, &alarm, When::cron("*/5 * * * * *").unwrap(), "0", Options::id("five")).await;
    // Ran 1.2 s late: the next tick is on the grid, from the tick, not from the late clock.
    let report = s
        .run_due(&*alarm, &|| T0 + 6_200, None, 10, async |_: u32, _| {
            sleep(1).await;
            Ok::<_, String>(())
        })
        .await
        .expect("run");
    assert_eq!(report.succeeded, 1);
    assert_eq!(s.store().get("five").unwrap().expect("recurring").due_ms, T0 + 10_000);
    assert_eq!(alarm.armed(), Some(T0 + 10_000));
}
