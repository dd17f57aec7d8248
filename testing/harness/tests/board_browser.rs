//! lumenize-board in a real browser: headless Chromium, driven by Playwright
//! (`playwright-core`, pinned in the root `package.json`, with the system's Chromium: no
//! browser download) through `testing/browser/board.mjs`, against the sandbox worker in
//! workerd. This file starts the worker and seeds an object with tasks of every status,
//! hostile strings included; the script loads the page, presses the buttons and checks
//! storage through the sandbox's own routes. A second test does the same for the pending
//! calls of the sandbox's `CallerDO` (`Board::calls`).
//!
//! Needs `node_modules` (`npm ci`) and a Chromium: `cargo xtask setup` installs Debian's
//! `chromium` where it is missing; elsewhere set `CHROMIUM` to a Chrome or Chromium binary.
//! `cargo xtask screenshots` runs the ignored `screenshot` test, which writes
//! `lumenize-board/board.png`.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lumenize_harness::{poll_until, post_json, workspace_root, Worker, WorkerOptions};
use serde_json::{json, Value};

const TOKEN: &str = "sandbox-board-token";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as i64
}

struct Obj(String);

impl Obj {
    fn ok(&self, route: &str, body: Value) -> Value {
        let (status, text) = post_json(&format!("{}/{route}", self.0), &body).expect("the sandbox answers");
        assert_eq!(status, 200, "{route} {body}: {text}");
        serde_json::from_str(&text).expect("JSON")
    }

    fn fired(&self, label: &str) -> bool {
        self.ok("fired", json!({})).as_array().expect("an array").iter().any(|f| f["label"] == label)
    }
}

/// Runs the browser script; panics with its output unless it succeeds.
fn browse(obj: &Obj, args: &[&str]) {
    let root = workspace_root();
    assert!(root.join("node_modules/playwright-core").is_dir(), "playwright-core is missing: run `npm ci` (or `cargo xtask setup`) at the workspace root");
    let out = Command::new("node").arg(root.join("testing/browser/board.mjs")).arg(&obj.0).arg(TOKEN).args(args).current_dir(&root).output().expect("node runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "the browser script failed (no Chromium? `cargo xtask setup` installs it, or set CHROMIUM):\n{text}");
}

fn worker() -> Worker {
    // lumenize-call's secret, for the calls of the `CallerDO` (a test value).
    let options = WorkerOptions::default().arg("--var").arg(format!("LUMENIZE_CALL_SECRET:board-browser-secret-{}", std::process::id()));
    Worker::start(&workspace_root().join("testing/sandbox"), options).expect("the sandbox worker starts")
}

#[test]
fn the_board_works_in_chromium() {
    let worker = worker();
    let obj = Obj(format!("{}/alarms/board-browser-{}", worker.url(), std::process::id()));
    let record = |id: &str, when: Value| obj.ok("schedule", json!({ "when": when, "task": { "type": "record", "label": id }, "id": id }));
    // Dead: one that fails once (a requeue then succeeds), and rows that no longer decode,
    // one with a hostile variant name that the error quotes.
    obj.ok("schedule", json!({ "when": { "after_ms": 0 }, "task": { "type": "fail", "label": "dead-once", "times": 1 }, "id": "dead-once", "attempts": 1 }));
    obj.ok("schedule_raw", json!({ "when": { "after_ms": 0 }, "task": { "type": "<script>alert(5)</script>" }, "id": "undecodable" }));
    obj.ok("run_at", json!({ "now_ms": now_ms() + 1_000 }));
    // Pending, paused, cron, and the hostile ids.
    for (i, id) in ["later", "cancel-me", "<script>alert(1)</script>", "\"><img src=x onerror=alert(2)>", "</script><script>window.pwned=1</script>", "rtl\u{202e}exe.txt"].iter().enumerate() {
        record(id, json!({ "after_ms": 3_600_000 + i as u64 }));
    }
    record("paused-one", json!({ "after_ms": 7_200_000 }));
    obj.ok("pause", json!({ "id": "paused-one" }));
    obj.ok("schedule", json!({ "when": { "cron": "0 3 * * *" }, "task": { "type": "record", "label": "nightly" }, "id": "nightly" }));
    // Running: a handler that waits 8 s, started by the native alarm.
    obj.ok("schedule", json!({ "when": { "after_ms": 0 }, "task": { "type": "slow", "label": "slow", "wait_ms": 8_000 }, "id": "slow" }));
    poll_until(Duration::from_secs(10), Duration::from_millis(50), || obj.fired("slow").then_some(())).expect("the slow task starts");
    browse(&obj, &["test"]);
    // What the buttons did, as storage has it.
    assert_eq!(obj.ok("get", json!({ "id": "cancel-me" })), Value::Null);
    assert_eq!(obj.ok("get", json!({ "id": "later" })), Value::Null, "run now ran the one-shot");
    assert!(obj.fired("later") && obj.fired("dead-once"));
}

/// The pending calls of a `CallerDO` (its board has `Board::calls`): a call the remote
/// answers in a minute, with hostile strings in its operation, shown and cancelled by its
/// button.
#[test]
fn the_calls_section_works_in_chromium() {
    let worker = worker();
    let caller = Obj(format!("{}/calls/board-browser-{}", worker.url(), std::process::id()));
    let key = "<script>alert(1)</script> \"><img src=x onerror=alert(2)> rtl\u{202e}exe.txt";
    let made = caller.ok("call", json!({ "name": "slow-remote", "op": { "type": "slow_count", "key": key, "ms": 60_000 }, "tag": "hostile", "dispatch": "direct" }));
    let id = made[0]["id"].as_str().expect("a call id").to_owned();
    browse(&caller, &["calls", &id]);
    assert!(caller.ok("pending", json!({})).as_array().is_some_and(Vec::is_empty), "cancelled");
}

/// Writes `lumenize-board/board.png` (or `LUMENIZE_BOARD_SCREENSHOT`): `cargo xtask screenshots`.
#[test]
#[ignore = "writes the README's screenshot: cargo xtask screenshots"]
fn screenshot() {
    let worker = worker();
    let obj = Obj(format!("{}/alarms/board-demo", worker.url()));
    let raw = |id: &str, when: Value, task: Value| obj.ok("schedule_raw", json!({ "when": when, "task": task, "id": id }));
    // Recent starts, for the events and the lateness chart.
    obj.ok("burst", json!({ "n": 40, "label": "warm-up", "delay_ms": 0, "many": true }));
    poll_until(Duration::from_secs(20), Duration::from_millis(100), || obj.fired("warm-up-39").then_some(())).expect("the burst runs");
    for i in 0..6 {
        obj.ok("schedule", json!({ "when": { "after_ms": 0 }, "task": { "type": "record", "label": format!("ping-{i}") } }));
        std::thread::sleep(Duration::from_millis(150));
    }
    obj.ok("schedule", json!({ "when": { "after_ms": 0 }, "task": { "type": "fail", "label": "charge-invoice-2041", "times": 100 }, "id": "charge-invoice-2041", "attempts": 1 }));
    raw("import-legacy-orders", json!({ "after_ms": 0 }), json!({ "ImportOrders": { "since": "2026-11-01" } }));
    poll_until(Duration::from_secs(10), Duration::from_millis(100), || (obj.ok("counts", json!({}))["dead"] == 2).then_some(())).expect("two dead");
    raw("nightly-report", json!({ "cron_in": { "expr": "0 3 * * *", "zone": "Europe/Paris" } }), json!({ "type": "nightly_report", "format": "pdf" }));
    raw("sync-inventory", json!({ "every_ms": 900_000 }), json!({ "type": "sync_inventory", "warehouse": "ams-1" }));
    raw("weekly-digest", json!({ "cron": "0 9 * * MON" }), json!({ "type": "weekly_digest" }));
    obj.ok("pause", json!({ "id": "weekly-digest" }));
    for (i, user) in ["ada@example.com", "grace@example.com", "edsger@example.com"].iter().enumerate() {
        raw(&format!("welcome-{}", user.split('@').next().unwrap_or("")), json!({ "after_ms": 90_000 * (i as u64 + 1) }), json!({ "type": "send_welcome_email", "to": user }));
    }
    raw("expire-trial-7731", json!({ "after_ms": 86_400_000 }), json!({ "ExpireTrial": { "account": 7731 } }));
    let png = std::env::var("LUMENIZE_BOARD_SCREENSHOT").map_or_else(|_| workspace_root().join("lumenize-board/board.png"), Into::into);
    browse(&obj, &["screenshot", &png.to_string_lossy()]);
}
