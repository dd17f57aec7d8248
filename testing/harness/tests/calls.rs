//! lumenize-call on workerd: the sandbox's CallerDO calls RemoteDO, and each guarantee of
//! DESIGN.md (lumenize-call 1-6) is checked from the outside, over HTTP.
//!
//! One worker serves every test but the crash test, which kills its own.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lumenize_call::envelope::{sign, SIGNATURE_HEADER};
use lumenize_harness::{get, poll_until, post, post_json, workspace_root, Result, Worker, WorkerOptions};
use serde_json::{json, Value};

/// The secret every object of the sandbox signs and checks calls with, fresh per run.
fn secret() -> &'static str {
    static SECRET: OnceLock<String> = OnceLock::new();
    SECRET.get_or_init(|| {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        format!("test-{}-{nanos}", std::process::id())
    })
}

fn options() -> WorkerOptions {
    WorkerOptions::default().arg("--var").arg(format!("LUMENIZE_CALL_SECRET:{}", secret()))
}

/// The shared worker's URL. It is stopped when the test process exits (the harness'
/// watchdog ends its process group).
fn url() -> &'static str {
    static WORKER: OnceLock<(Worker, String)> = OnceLock::new();
    let (_, url) = WORKER.get_or_init(|| {
        let worker = Worker::start(&workspace_root().join("testing/sandbox"), options()).expect("start the sandbox");
        let url = worker.url();
        (worker, url)
    });
    url
}

/// A name no other test (or run) uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}-{nanos}")
}

fn ok_json(answer: (u16, String)) -> Value {
    let (status, body) = answer;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Makes calls from caller `caller`; returns what the route returns per call (`id`, `task`).
fn call(base: &str, caller: &str, body: Value) -> Vec<Value> {
    let made = ok_json(post_json(&format!("{base}/calls/{caller}/call"), &body).expect("call"));
    made.as_array().cloned().expect("a list of calls")
}

fn continuations(base: &str, caller: &str) -> Vec<Value> {
    ok_json(get(&format!("{base}/calls/{caller}/continuations")).expect("continuations")).as_array().cloned().unwrap_or_default()
}

/// Waits until `n` continuations are recorded (or fails after `timeout`).
fn wait_continuations(base: &str, caller: &str, n: usize, timeout: Duration) -> Vec<Value> {
    poll_until(timeout, Duration::from_millis(50), || Some(continuations(base, caller)).filter(|c| c.len() >= n))
        .unwrap_or_else(|e| panic!("{n} continuations of {caller}: {e}; have {:?}", continuations(base, caller)))
}

fn effects(base: &str, remote: &str) -> BTreeMap<String, i64> {
    let rows = ok_json(get(&format!("{base}/remote/{remote}/effects")).expect("effects"));
    rows.as_array().into_iter().flatten().map(|r| (r["key"].as_str().unwrap_or("").to_owned(), r["n"].as_i64().unwrap_or(0))).collect()
}

fn by_tag(rows: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for row in rows {
        map.entry(row["tag"].as_str().unwrap_or("").to_owned()).or_default().push(row["result"].clone());
    }
    map
}

fn pending(base: &str, caller: &str) -> Vec<Value> {
    ok_json(get(&format!("{base}/calls/{caller}/pending")).expect("pending")).as_array().cloned().unwrap_or_default()
}

/// Guarantees 1, 2 and 4: each dispatch replies, and the continuation runs exactly once.
#[test]
fn both_dispatches_reply_and_continue_exactly_once() {
    let base = url();
    for dispatch in ["direct", "alarm"] {
        let (caller, remote) = (unique("caller"), unique("remote"));
        let made = call(base, &caller, json!({"name": remote, "op": {"type": "count", "key": "k"}, "tag": "t", "dispatch": dispatch}));
        let task = &made[0]["task"];
        let (due, created) = (task["due_ms"].as_i64().unwrap(), task["created_ms"].as_i64().unwrap());
        match dispatch {
            // Alarm: the call's task is due at once, and it is what sends the call.
            "alarm" => assert!(due <= created, "alarm dispatch task due {due}, created {created}"),
            // Direct: sent already; the task is only a backstop, a second later.
            _ => assert!(due >= created + 900, "direct backstop due {due}, created {created}"),
        }
        let done = wait_continuations(base, &caller, 1, Duration::from_secs(10));
        assert_eq!(done[0]["tag"], "t");
        assert_eq!(done[0]["result"], json!({"Ok": 1}), "{dispatch}");
        // Nothing runs it again: not the backstop (due a second after the call), not a retry.
        std::thread::sleep(Duration::from_millis(1_500));
        assert_eq!(continuations(base, &caller).len(), 1, "{dispatch}: continuation ran twice");
        assert_eq!(pending(base, &caller), Vec::<Value>::new(), "{dispatch}: call still pending");
        let tasks = ok_json(get(&format!("{base}/calls/{caller}/tasks")).unwrap());
        assert_eq!(tasks, json!([]), "{dispatch}: the call's task outlived it");
        assert_eq!(effects(base, &remote), BTreeMap::from([("k".to_owned(), 1)]), "{dispatch}");
    }
}

/// Guarantee 2 under load: hundreds of calls made in one request all complete, once each,
/// in both modes.
#[test]
fn hundreds_of_calls_in_one_request_all_complete_once() {
    let base = url();
    for dispatch in ["alarm", "direct"] {
        let (caller, remote) = (unique("caller"), unique("remote"));
        let n = 300;
        let made = call(base, &caller, json!({"name": remote, "op": {"type": "count", "key": "k"}, "tag": "t", "dispatch": dispatch, "count": n}));
        assert_eq!(made.len(), n);
        let done = by_tag(&wait_continuations(base, &caller, n, Duration::from_secs(60)));
        assert_eq!(done.len(), n, "{dispatch}: distinct continuations");
        for (tag, results) in &done {
            assert_eq!(results, &vec![json!({"Ok": 1})], "{dispatch}: {tag}");
        }
        let effects = effects(base, &remote);
        assert_eq!(effects.len(), n, "{dispatch}: side effects");
        assert!(effects.values().all(|&n| n == 1), "{dispatch}: an operation ran twice: {effects:?}");
    }
}

/// Guarantee 4: the remote's `Err` and its panics arrive as typed errors, and the remote
/// keeps serving after a panic.
#[test]
fn remote_errors_and_panics_arrive_as_typed_errors() {
    let base = url();
    let (caller, remote) = (unique("caller"), unique("remote"));
    call(base, &caller, json!({"name": remote, "op": {"type": "fail", "message": "nope"}, "tag": "fail", "dispatch": "direct"}));
    call(base, &caller, json!({"name": remote, "op": {"type": "panic"}, "tag": "panic", "dispatch": "direct"}));
    let done = by_tag(&wait_continuations(base, &caller, 2, Duration::from_secs(30)));
    assert_eq!(done["fail"], vec![json!({"Err": {"kind": "remote", "message": "nope", "panicked": false}})]);
    let panicked = &done["panic"][0]["Err"];
    assert_eq!(panicked["kind"], "remote", "{panicked}");
    assert_eq!(panicked["panicked"], true, "{panicked}");
    assert!(panicked["message"].as_str().unwrap_or("").contains("panics on purpose"), "{panicked}");
    call(base, &caller, json!({"name": remote, "op": {"type": "echo", "value": "after"}, "tag": "after", "dispatch": "alarm"}));
    let done = by_tag(&wait_continuations(base, &caller, 3, Duration::from_secs(30)));
    assert_eq!(done["after"], vec![json!({"Ok": "after"})]);
    assert_eq!(done["panic"].len(), 1, "the panicked call was continued twice");
}

/// Guarantees 4 and 5: a timeout is a scheduled task; it continues once, and the reply
/// that comes later is dropped.
#[test]
fn a_timeout_continues_once_and_the_late_reply_is_dropped() {
    let base = url();
    let (caller, remote) = (unique("caller"), unique("remote"));
    let started = Instant::now();
    call(base, &caller, json!({"name": remote, "op": {"type": "slow_count", "key": "k", "ms": 2500}, "tag": "t", "dispatch": "direct", "timeout_ms": 300}));
    let done = wait_continuations(base, &caller, 1, Duration::from_secs(10));
    assert_eq!(done[0]["result"], json!({"Err": {"kind": "timeout"}}));
    assert!(started.elapsed() < Duration::from_millis(2_400), "timed out only after {:?}", started.elapsed());
    // The remote finishes later; its reply must not reach the continuation.
    poll_until(Duration::from_secs(10), Duration::from_millis(100), || (effects(base, &remote).get("k") == Some(&1)).then_some(()))
        .expect("the remote finished the operation");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(continuations(base, &caller).len(), 1, "the late reply ran the continuation again");
    assert!(pending(base, &caller).is_empty());
}

/// Guarantee 4: cancel continues with `Cancelled` once; a second cancel finds nothing.
#[test]
fn cancel_continues_with_cancelled_once() {
    let base = url();
    let (caller, remote) = (unique("caller"), unique("remote"));
    let made = call(base, &caller, json!({"name": remote, "op": {"type": "slow_count", "key": "k", "ms": 1500}, "tag": "t", "dispatch": "direct"}));
    let id = made[0]["id"].clone();
    assert_eq!(ok_json(post_json(&format!("{base}/calls/{caller}/cancel"), &id).unwrap()), json!(true));
    assert_eq!(ok_json(post_json(&format!("{base}/calls/{caller}/cancel"), &id).unwrap()), json!(false));
    let done = continuations(base, &caller);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["result"], json!({"Err": {"kind": "cancelled"}}));
    poll_until(Duration::from_secs(10), Duration::from_millis(100), || (effects(base, &remote).get("k") == Some(&1)).then_some(()))
        .expect("the remote finished the operation");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(continuations(base, &caller).len(), 1, "the reply after cancel ran the continuation");
}

/// Guarantee 4: targets that cannot serve end the call with a typed error, not a hang.
#[test]
fn targets_that_cannot_serve_end_with_typed_errors() {
    let base = url();
    let caller = unique("caller");
    call(base, &caller, json!({"binding": "NO_SUCH_BINDING", "name": "x", "op": {"type": "panic"}, "tag": "nobinding", "dispatch": "direct"}));
    // AlarmsDO is no lumenize-call remote: it answers 404.
    call(base, &caller, json!({"binding": "ALARMS", "name": "x", "op": {"type": "panic"}, "tag": "notremote", "dispatch": "alarm"}));
    let done = by_tag(&wait_continuations(base, &caller, 2, Duration::from_secs(20)));
    let nobinding = &done["nobinding"][0]["Err"];
    assert_eq!(nobinding["kind"], "transport", "{nobinding}");
    let notremote = &done["notremote"][0]["Err"];
    assert_eq!((notremote["kind"].as_str(), notremote["status"].as_u64()), (Some("rejected"), Some(404)), "{notremote}");
}

/// A continuation that fails is retried by its task, then completes once.
#[test]
fn a_failing_continuation_is_retried_until_it_succeeds() {
    let base = url();
    let (caller, remote) = (unique("caller"), unique("remote"));
    call(base, &caller, json!({"name": remote, "op": {"type": "count", "key": "k"}, "tag": "t", "dispatch": "direct", "fail_times": 1}));
    let done = wait_continuations(base, &caller, 1, Duration::from_secs(20));
    assert_eq!(done[0]["result"], json!({"Ok": 1}));
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(continuations(base, &caller).len(), 1);
    assert_eq!(effects(base, &remote)["k"], 1, "retrying the continuation re-ran the operation");
}

fn envelope(id: &str, op: Value) -> String {
    json!({"v": 1, "id": id, "op": op}).to_string()
}

/// Guarantees 3 and 6: a request that did not come from a lumenize caller cannot run an
/// operation, bad envelopes get a clear 4xx, and a re-dispatch is answered from the stored
/// result without running the operation again. The requests go through the sandbox's
/// public router, as a worker's catch-all route would forward them.
#[test]
fn envelopes_are_checked_and_replays_answered_from_the_stored_result() {
    let base = url();
    let remote = unique("remote");
    let at = format!("{base}/remote/{remote}/");
    let count = |id: &str| envelope(id, json!({"type": "count", "key": "k"}));
    let signed = |body: &str| sign(secret(), body.as_bytes());

    let body = count("forged");
    let (status, text) = post(&at, &body, &[]).unwrap();
    assert_eq!(status, 401, "unsigned: {text}");
    assert!(text.contains(SIGNATURE_HEADER), "{text}");
    let (status, _) = post(&at, &body, &[(SIGNATURE_HEADER, &sign("another secret", body.as_bytes()))]).unwrap();
    assert_eq!(status, 401, "signed with another secret");
    let (status, _) = post(&at, &body, &[(SIGNATURE_HEADER, "not hex")]).unwrap();
    assert_eq!(status, 401, "garbage signature");

    for (bad, why) in [
        ("{not json".to_owned(), "malformed"),
        (json!({"v": 2, "id": "x", "op": {"type": "count", "key": "k"}}).to_string(), "unsupported"),
        (json!({"id": "x", "op": {}}).to_string(), "malformed"),
        (envelope("x", json!({"type": "launch_missiles"})), "unknown operation"),
    ] {
        let (status, text) = post(&at, &bad, &[(SIGNATURE_HEADER, &signed(&bad))]).unwrap();
        assert_eq!(status, 400, "{bad}: {text}");
        assert!(text.contains(why), "{bad}: {text}");
    }
    let (status, _) = get(&at).unwrap();
    assert_eq!(status, 405);
    assert!(effects(base, &remote).is_empty(), "a refused request ran an operation");

    let body = count("call-1");
    let first = ok_json(post(&at, &body, &[(SIGNATURE_HEADER, &signed(&body))]).unwrap());
    assert_eq!(first, json!({"v": 1, "id": "call-1", "ok": 1}));
    let again = ok_json(post(&at, &body, &[(SIGNATURE_HEADER, &signed(&body))]).unwrap());
    assert_eq!(again, first, "a re-dispatch must get the stored result");
    assert_eq!(effects(base, &remote)["k"], 1, "a re-dispatch ran the operation again");
}

/// Guarantee 3: stored results are kept for a day and then removed by a scheduled task.
#[test]
fn served_results_are_cleaned_up_by_a_scheduled_task() {
    let base = url();
    let (caller, remote) = (unique("caller"), unique("remote"));
    call(base, &caller, json!({"name": remote, "op": {"type": "echo", "value": 1}, "tag": "t", "dispatch": "direct"}));
    wait_continuations(base, &caller, 1, Duration::from_secs(10));
    assert_eq!(ok_json(get(&format!("{base}/remote/{remote}/results")).unwrap()), json!(1));
    let tasks = ok_json(get(&format!("{base}/remote/{remote}/tasks")).unwrap());
    let cleanup = tasks.as_array().unwrap().iter().find(|t| t["id"] == "lumenize-call:cleanup").expect("a cleanup task");
    let (due, created) = (cleanup["due_ms"].as_i64().unwrap(), cleanup["created_ms"].as_i64().unwrap());
    let day = 24 * 3_600_000;
    assert!((day - 60_000..=day + 60_000).contains(&(due - created)), "cleanup due {due}, created {created}");
    // Not earlier than a day:
    ok_json(post_json(&format!("{base}/remote/{remote}/run_at"), &json!(due - 60_000)).unwrap());
    assert_eq!(ok_json(get(&format!("{base}/remote/{remote}/results")).unwrap()), json!(1));
    ok_json(post_json(&format!("{base}/remote/{remote}/run_at"), &json!(due + 1)).unwrap());
    assert_eq!(ok_json(get(&format!("{base}/remote/{remote}/results")).unwrap()), json!(0), "results outlived the cleanup");
}

/// The fault test: the runtime is killed (SIGKILL) while calls are in flight, and restarted
/// on the same storage. Every continuation still runs exactly once, and no operation takes
/// effect twice: quick operations (applied and stored in one step) take effect exactly
/// once; slow ones cut short by the kill take effect at most once, and their continuation
/// says so.
#[test]
fn a_crash_between_call_and_reply_loses_nothing_and_repeats_nothing() -> Result<()> {
    let mut worker = Worker::start(&workspace_root().join("testing/sandbox"), options())?;
    let (caller, remote) = (unique("caller"), unique("remote"));
    let (quick, slow) = (100, 20);
    for dispatch in ["direct", "alarm"] {
        let body = json!({"name": remote, "op": {"type": "count", "key": dispatch}, "tag": dispatch, "dispatch": dispatch, "count": quick});
        assert_eq!(call(&worker.url(), &caller, body).len(), quick);
    }
    let body = json!({"name": remote, "op": {"type": "slow_count", "key": "slow", "ms": 3_000}, "tag": "slow", "dispatch": "direct", "count": slow});
    assert_eq!(call(&worker.url(), &caller, body).len(), slow);
    std::thread::sleep(Duration::from_millis(500));
    let in_flight = pending(&worker.url(), &caller).len();
    assert!(in_flight >= slow, "the kill would not catch the slow calls in flight ({in_flight} pending)");
    worker.kill()?;
    worker.restart()?;
    let base = worker.url();

    let total = 2 * quick + slow;
    let done = by_tag(&wait_continuations(&base, &caller, total, Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(continuations(&base, &caller).len(), total, "a continuation ran twice after the restart");
    assert_eq!(done.len(), total);
    let effects = effects(&base, &remote);
    for (tag, results) in &done {
        assert_eq!(results.len(), 1, "{tag}");
        let applied = effects.get(tag).copied().unwrap_or(0);
        if tag.starts_with("slow") {
            let interrupted = results[0]["Err"]["message"].as_str().is_some_and(|m| m.contains("may or may not"));
            let replied = results[0] == json!({"Ok": 1});
            assert!((interrupted && applied == 0) || (replied && applied == 1), "{tag}: {} with {applied} effects", results[0]);
        } else {
            assert_eq!(results[0], json!({"Ok": 1}), "{tag}");
            assert_eq!(applied, 1, "{tag}: the operation took effect {applied} times");
        }
    }
    assert!(pending(&base, &caller).is_empty());
    worker.stop()
}

/// The sandbox's routes answer 400 with the reason for a body that does not decode.
#[test]
fn sandbox_routes_answer_400_for_bodies_that_do_not_decode() {
    let base = url();
    for route in [format!("calls/{}/call", unique("c")), format!("calls/{}/cancel", unique("c")), format!("remote/{}/run_at", unique("r"))] {
        let (status, text) = post(&format!("{base}/{route}"), "{not json", &[]).unwrap();
        assert_eq!(status, 400, "{route}: {text}");
        assert!(text.contains("bad request body"), "{route}: {text}");
    }
}
