//! lumenize-call on workerd: the sandbox's CallerDO calls RemoteDO, and each guarantee of
//! DESIGN.md (lumenize-call 1-7) is checked from the outside, over HTTP.
//!
//! One worker serves every test but three that start their own: the crash test (it kills
//! it), the panic test (a panic resets every object of its worker) and the rotation test
//! (other secrets).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lumenize_call::envelope::{sign, MAX_CLOCK_SKEW_MS, MAX_REQUEST_AGE_MS, SIGNATURE_HEADER};
use lumenize_call::{MAX_TIMEOUT_MS, SQLITE_MAX_BYTES};
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

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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

/// Issue 19: one object calls two operations, each with its own reply type and its own
/// continuation, and one remote serves both through one router. The caller's own task type
/// is an empty enum: its call tasks (the alarm dispatch below) are run by the library
/// before its handler sees anything (one reaching the handler could not even decode).
#[test]
fn two_operations_each_reach_their_own_typed_continuation() {
    let base = url();
    let (caller, remote) = (unique("caller"), unique("remote"));
    let add = |tag: &str, a: i64, b: i64| ok_json(post_json(&format!("{base}/calls/{caller}/add"), &json!({"tag": tag, "name": remote, "a": a, "b": b})).unwrap());
    add("sum", 2, 3);
    add("overflow", i64::MAX, 1);
    call(base, &caller, json!({"name": remote, "op": {"type": "echo", "value": "hi"}, "tag": "echo", "dispatch": "alarm"}));
    let done = by_tag(&wait_continuations(base, &caller, 3, Duration::from_secs(10)));
    assert_eq!(done["sum"], vec![json!({"Ok": 5})], "{done:?}");
    assert_eq!(done["echo"], vec![json!({"Ok": "hi"})], "{done:?}");
    let overflow = short(&done["overflow"][0]);
    assert!(overflow.contains(r#""kind":"remote""#) && overflow.contains("overflows"), "{overflow}");
    assert_eq!(applied(base, &remote).get("add"), Some(&2), "{:?}", applied(base, &remote));
    assert_eq!(pending(base, &caller), Vec::<Value>::new());
    assert_eq!(tasks(base, &caller), json!([]), "a call task was left (dead?)");
}

/// The native alarm of caller `caller` (Unix ms), or null.
fn armed(base: &str, caller: &str) -> Value {
    ok_json(get(&format!("{base}/calls/{caller}/alarm")).expect("alarm"))
}

/// When caller `caller`'s `alarm()` ran (Unix ms), and how many tasks each run started.
fn alarm_runs(base: &str, caller: &str) -> Vec<(i64, i64)> {
    let runs = ok_json(get(&format!("{base}/calls/{caller}/alarm_runs")).expect("alarm runs"));
    runs.as_array().into_iter().flatten().map(|r| (r["at_ms"].as_i64().unwrap_or(0), r["started"].as_i64().unwrap_or(0))).collect()
}

/// Issue 12: after a call settles and nothing else is scheduled, no alarm stays armed. The
/// settled call's backstop task is removed at once; the native alarm armed for it is not
/// written again (every alarm write costs the object about 2 ms locally: see
/// MEASUREMENTS.md): it fires once, finds nothing, and leaves nothing armed behind.
#[test]
fn a_settled_call_leaves_no_alarm_armed() {
    let base = url();
    for (dispatch, sending) in [("direct", 0), ("alarm", 1)] {
        let (caller, remote) = (unique("caller"), unique("remote"));
        let made = call(base, &caller, json!({"name": remote, "op": {"type": "count", "key": "k"}, "tag": "t", "dispatch": dispatch}));
        let created = made[0]["task"]["created_ms"].as_i64().expect("the call's task");
        let backstop = created + 1_000;
        assert_eq!(wait_continuations(base, &caller, 1, Duration::from_secs(10))[0]["result"], json!({"Ok": 1}), "{dispatch}");
        assert_eq!(tasks(base, &caller), json!([]), "{dispatch}: the settled call's task is removed at once");
        // Past the backstop's time: nothing armed. Direct armed its backstop before sending:
        // that alarm fires once, empty. The alarm path's run waited for the reply before it
        // armed anything (`Library::settle`): no backstop armed, no empty invocation.
        std::thread::sleep(Duration::from_millis(u64::try_from(backstop + 700 - now_ms()).unwrap_or(0)));
        let all = alarm_runs(base, &caller);
        let runs: Vec<(i64, i64)> = all.iter().map(|(at, started)| (at - created, *started)).collect();
        assert_eq!(all.iter().filter(|(_, started)| *started > 0).count(), sending, "{dispatch}: alarm() ran at +{runs:?} (ms, tasks started)");
        let empty = if dispatch == "alarm" { 0 } else { 1 };
        assert!(all.iter().filter(|(_, started)| *started == 0).count() <= empty, "{dispatch}: more than {empty} empty alarm(): +{runs:?}");
        assert_eq!(armed(base, &caller), Value::Null, "{dispatch}: still armed after +{runs:?}");
        std::thread::sleep(Duration::from_millis(1_200));
        assert_eq!(alarm_runs(base, &caller).len(), all.len(), "{dispatch}: alarm() ran again with nothing scheduled");
        assert_eq!(tasks(base, &caller), json!([]), "{dispatch}");
    }
}

/// Issue 12: while a slow operation is in flight, the backstop does not send the call
/// again, and looks at it less and less often (twice as long as the send has been out):
/// during a 4.5 s operation, at about 1 s and 3 s, not every second.
#[test]
fn a_slow_send_is_not_sent_again_and_its_backstop_backs_off() {
    let base = url();
    let (caller, remote) = (unique("caller"), unique("remote"));
    let made = call(base, &caller, json!({"name": remote, "op": {"type": "slow_count", "key": "k", "ms": 4_500}, "tag": "t", "dispatch": "direct"}));
    let created = made[0]["task"]["created_ms"].as_i64().expect("the call's task");
    assert_eq!(wait_continuations(base, &caller, 1, Duration::from_secs(15))[0]["result"], json!({"Ok": 1}));
    // The backstop's runs: alarm invocations that ran the call's task (an invocation a
    // little early, which finds nothing due and re-arms, is not one).
    let all = alarm_runs(base, &caller);
    let runs: Vec<i64> = all.iter().filter(|(_, started)| *started > 0).map(|(at, _)| at - created).collect();
    assert!(!runs.is_empty() && runs.len() <= 2, "the backstop ran at +{runs:?} ms during a 4.5 s send ({all:?}, call at {created})");
    if let [first, second] = runs[..] {
        assert!(second - first >= 2 * (first - 100), "no back-off: backstops at +{first} and +{second} ms");
    }
    assert_eq!(received(base, &remote).len(), 1, "sent again while in flight");
    assert_eq!(effects(base, &remote)["k"], 1);
    assert_eq!(tasks(base, &caller), json!([]), "the settled call's task is removed at once");
    // The alarm armed for the last backstop (twice the send's time out, at most) fires once,
    // empty, and leaves nothing armed.
    poll_until(Duration::from_secs(15), Duration::from_millis(50), || armed(base, &caller).is_null().then_some(()))
        .unwrap_or_else(|e| panic!("still armed for {}: {e}", armed(base, &caller)));
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
/// keeps serving after a panic; another operation of the remote that the panic cut short
/// ends as interrupted, not as a panic. On a worker of its own: a panic resets the wasm instance
/// that every object of the worker runs in, which would cut short other tests' requests.
#[test]
fn remote_errors_and_panics_arrive_as_typed_errors() -> Result<()> {
    let mut worker = Worker::start(&workspace_root().join("testing/sandbox"), options())?;
    let url = worker.url();
    let base = url.as_str();
    let (caller, remote) = (unique("caller"), unique("remote"));
    // A slow operation of the same remote, being applied when the panic happens: the panic
    // cuts it short, and it must not be reported as a panic of its own.
    let bystander = unique("bystander");
    call(base, &bystander, json!({"name": remote, "op": {"type": "slow_count", "key": "k", "ms": 3000}, "tag": "slow", "dispatch": "alarm"}));
    poll_until(Duration::from_secs(5), Duration::from_millis(20), || applied(base, &remote).contains_key("slow_count").then_some(()))
        .expect("the slow operation is being applied");
    call(base, &caller, json!({"name": remote, "op": {"type": "fail", "message": "nope"}, "tag": "fail", "dispatch": "direct"}));
    call(base, &caller, json!({"name": remote, "op": {"type": "panic"}, "tag": "panic", "dispatch": "direct"}));
    let slow = &wait_continuations(base, &bystander, 1, Duration::from_secs(30))[0]["result"]["Err"];
    assert_eq!(slow["panicked"], false, "the slow call was cut short, it did not panic: {slow}");
    assert!(slow["message"].as_str().unwrap_or("").contains(lumenize_call::machine::INTERRUPTED), "{slow}");
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
    worker.stop()
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

/// A call request body in lumenize-call's wire format (envelope version 2) for call `id`,
/// addressed to the RemoteDO with hex id `to`, issued at `issued_ms`, of the sandbox's
/// operation `op` (tagged with its name, `"op"`, as every operation travels). Written out by
/// hand: the format is a contract between versions, not whatever the library builds today.
fn request_at(id: &str, to: &str, issued_ms: i64, op: Value) -> String {
    let from = "0".repeat(64);
    json!({"v": 2, "id": id, "to": {"binding": "REMOTE", "object": to}, "from": from, "issued_ms": issued_ms, "op": {"op": op}}).to_string()
}

/// As [`request_at`], with `op` not tagged with its name (as a caller of an older release
/// would send it).
fn request_untagged(id: &str, to: &str, op: Value) -> String {
    let from = "0".repeat(64);
    json!({"v": 2, "id": id, "to": {"binding": "REMOTE", "object": to}, "from": from, "issued_ms": now_ms(), "op": op}).to_string()
}

fn envelope(id: &str, to: &str, op: Value) -> String {
    request_at(id, to, now_ms(), op)
}

/// The hex id of RemoteDO `name` (what an origin puts in the envelope's `to`).
fn remote_id(base: &str, name: &str) -> String {
    let (status, id) = get(&format!("{base}/remote/{name}/id")).expect("remote id");
    assert_eq!(status, 200, "{id}");
    id
}

/// What RemoteDO `name` received through `Calls::serve`: `(bytes, body, signature, status)`
/// per request, the body and signature only if the body was under 64 KiB.
fn received(base: &str, name: &str) -> Vec<(u64, Option<String>, Option<String>, u16)> {
    let rows = ok_json(get(&format!("{base}/remote/{name}/received")).expect("received"));
    rows.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let text = |k: &str| r[k].as_str().map(str::to_owned);
            (r["bytes"].as_u64().unwrap_or(0), text("body"), text("signature"), r["status"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(0))
        })
        .collect()
}

/// How often RemoteDO `name` applied each kind of operation.
fn applied(base: &str, name: &str) -> BTreeMap<String, i64> {
    let rows = ok_json(get(&format!("{base}/remote/{name}/applied")).expect("applied"));
    rows.as_array().into_iter().flatten().map(|r| (r["op"].as_str().unwrap_or("").to_owned(), r["n"].as_i64().unwrap_or(0))).collect()
}

fn tasks(base: &str, caller: &str) -> Value {
    ok_json(get(&format!("{base}/calls/{caller}/tasks")).expect("tasks"))
}

/// A continuation's result, with long strings shortened so that a failure message stays
/// readable.
fn short(result: &Value) -> String {
    let text = result.to_string();
    if text.len() > 400 {
        format!("{}... ({} bytes)", &text[..400], text.len())
    } else {
        text
    }
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
    let to = remote_id(base, &remote);
    let count = |id: &str| envelope(id, &to, json!({"type": "count", "key": "k"}));
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
        (json!({"v": 1, "id": "x", "op": {"type": "count", "key": "k"}}).to_string(), "unsupported"),
        (json!({"id": "x", "op": {}}).to_string(), "malformed"),
        (envelope("x", &to, json!({"type": "launch_missiles"})), "does not decode"),
        (request_untagged("x", &to, json!({"type": "count", "key": "k"})), "not tagged"),
    ] {
        let (status, text) = post(&at, &bad, &[(SIGNATURE_HEADER, &signed(&bad))]).unwrap();
        assert_eq!(status, 400, "{bad}: {text}");
        assert!(text.contains(why), "{bad}: {text}");
    }
    // An operation no route serves: 404, typed for the caller (CallError::Rejected).
    let unknown = json!({"v": 2, "id": "x", "to": {"binding": "REMOTE", "object": to}, "from": "0".repeat(64), "issued_ms": now_ms(), "op": {"launch": {}}}).to_string();
    let (status, text) = post(&at, &unknown, &[(SIGNATURE_HEADER, &signed(&unknown))]).unwrap();
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("no route serves the operation \"launch\""), "{text}");
    let (status, _) = get(&at).unwrap();
    assert_eq!(status, 405);
    assert!(effects(base, &remote).is_empty(), "a refused request ran an operation");

    let body = count("call-1");
    let first = ok_json(post(&at, &body, &[(SIGNATURE_HEADER, &signed(&body))]).unwrap());
    assert_eq!(first, json!({"v": 2, "id": "call-1", "ok": 1}));
    let again = ok_json(post(&at, &body, &[(SIGNATURE_HEADER, &signed(&body))]).unwrap());
    assert_eq!(again, first, "a re-dispatch must get the stored result");
    assert_eq!(effects(base, &remote)["k"], 1, "a re-dispatch ran the operation again");
    // The refused requests left nothing stored under their id: it is applied as a new call.
    let body = count("x");
    let applied = ok_json(post(&at, &body, &[(SIGNATURE_HEADER, &signed(&body))]).unwrap());
    assert_eq!(applied, json!({"v": 2, "id": "x", "ok": 2}), "a refused request kept its id");
}

/// Guarantee 3: stored results are kept for a day, then forgotten as calls are served: by
/// the remote itself, which has no scheduler and no `alarm()`. A result a minute short of
/// a day stays; results over a day old go with the next call served (`reopen` gives the
/// remote a fresh `Server`, as a new isolate would have, since a `Server` remembers when
/// its oldest result is due and looks no earlier).
#[test]
fn served_results_are_forgotten_a_day_later_without_a_scheduler() {
    let base = url();
    let (caller, remote) = (unique("caller"), unique("remote"));
    let echo = |tag: &str| call(base, &caller, json!({"name": remote, "op": {"type": "echo", "value": 1}, "tag": tag, "dispatch": "direct"}));
    let results = || ok_json(get(&format!("{base}/remote/{remote}/results")).unwrap());
    let backdate = |age_ms: i64| {
        poison(&format!("{base}/remote/{remote}/sql"), &format!("UPDATE _lumenize_call_results SET done_ms = {}", now_ms() - age_ms));
        ok_json(post(&format!("{base}/remote/{remote}/reopen"), "", &[]).unwrap());
    };
    let day = 24 * 3_600_000;
    echo("first");
    wait_continuations(base, &caller, 1, Duration::from_secs(10));
    assert_eq!(results(), json!(1));
    backdate(day - 60_000);
    echo("second");
    wait_continuations(base, &caller, 2, Duration::from_secs(10));
    assert_eq!(results(), json!(2), "a result under a day old was forgotten");
    backdate(day + 1);
    echo("third");
    wait_continuations(base, &caller, 3, Duration::from_secs(10));
    assert_eq!(results(), json!(1), "results over a day old outlived the next call served");
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

/// Guarantee 6 (issue 10, case 4): the envelope binds the target object. A request captured
/// from a real call and replayed through the public router to three other objects is
/// refused with 401 by each, and nothing is applied there; replayed to its own target it
/// is answered from the stored result.
#[test]
fn a_captured_request_replayed_to_other_objects_is_refused() {
    let base = url();
    let (caller, remote) = (unique("caller"), unique("remote"));
    call(base, &caller, json!({"name": remote, "op": {"type": "count", "key": "k"}, "tag": "t", "dispatch": "direct"}));
    assert_eq!(wait_continuations(base, &caller, 1, Duration::from_secs(10))[0]["result"], json!({"Ok": 1}));
    let captured = received(base, &remote);
    assert_eq!(captured.len(), 1, "one request reached the remote");
    let (_, Some(body), Some(signature), 200) = captured[0].clone() else { panic!("not captured: {:?}", captured[0]) };
    let replay = |name: &str| post(&format!("{base}/remote/{name}/"), &body, &[(SIGNATURE_HEADER, &signature)]).expect("replay");

    let (status, again) = replay(&remote);
    assert_eq!(status, 200, "{again}");
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap()["ok"], json!(1), "the replay to its own target: {again}");
    assert_eq!(effects(base, &remote)["k"], 1, "the replay to its own target applied it again");
    for i in 0..3 {
        let other = unique(&format!("other-{i}"));
        let (status, text) = replay(&other);
        assert_eq!(status, 401, "replayed to {other}: {text}");
        assert!(text.contains("addressed to another object"), "{text}");
        assert!(effects(base, &other).is_empty(), "applied at {other}");
        assert!(applied(base, &other).is_empty(), "applied at {other}");
    }
}

/// Guarantee 6 (issue 10, case 5): the envelope binds an issue time. A request issued longer
/// ago than the remote keeps results (so possibly applied, its result since dropped) is
/// refused with 410 and has no effect; one issued beyond the clock-skew allowance in the
/// future is refused with 401.
#[test]
fn requests_too_old_or_from_the_future_are_refused() {
    let base = url();
    let remote = unique("remote");
    let (at, to) = (format!("{base}/remote/{remote}/"), remote_id(base, &remote));
    let op = json!({"type": "count", "key": "k"});
    let send = |body: &str| post(&at, body, &[(SIGNATURE_HEADER, &sign(secret(), body.as_bytes()))]).expect("post");

    let old = request_at("old", &to, now_ms() - MAX_REQUEST_AGE_MS - 60_000, op.clone());
    let (status, text) = send(&old);
    assert_eq!(status, 410, "too old: {text}");
    assert!(text.contains("too old"), "{text}");
    let future = request_at("future", &to, now_ms() + MAX_CLOCK_SKEW_MS + 60_000, op.clone());
    let (status, text) = send(&future);
    assert_eq!(status, 401, "from the future: {text}");
    assert!(text.contains("future"), "{text}");
    assert!(effects(base, &remote).is_empty(), "a refused request was applied");
    assert!(applied(base, &remote).is_empty(), "a refused request was applied");

    // Within the bounds, the same request is applied: the refusals were for the time alone.
    let (skewed, aged) = (now_ms() + MAX_CLOCK_SKEW_MS - 60_000, now_ms() - MAX_REQUEST_AGE_MS + 60_000);
    assert_eq!(ok_json(send(&request_at("skewed", &to, skewed, op.clone())))["ok"], 1);
    assert_eq!(ok_json(send(&request_at("aged", &to, aged, op)))["ok"], 2);
}

/// Guarantee 6 (issue 10, case 5) from the origin's side: a real call older than the remote
/// can honour ends with `CallError::Expired`, once, and is never re-sent. Just over the
/// maximum age the remote refuses it (410); past the origin's own horizon (maximum age plus
/// clock skew) the origin does not send it at all.
#[test]
fn an_expired_call_ends_with_the_typed_error_and_is_not_resent() {
    let base = url();
    let caller = unique("caller");
    let over = MAX_REQUEST_AGE_MS + 60_000;
    let past_horizon = MAX_REQUEST_AGE_MS + MAX_CLOCK_SKEW_MS + 60_000;
    let cases = [("direct", over, 1), ("alarm", over, 1), ("alarm", past_horizon, 0), ("direct", past_horizon, 0)];
    let mut remotes = Vec::new();
    for (i, (dispatch, age, _)) in cases.iter().enumerate() {
        let remote = unique(&format!("remote-{i}"));
        let body = json!({"name": remote, "op": {"type": "count", "key": "k"}, "tag": format!("{i}"), "dispatch": dispatch, "age_ms": age});
        call(base, &caller, body);
        remotes.push(remote);
    }
    let done = by_tag(&wait_continuations(base, &caller, cases.len(), Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(continuations(base, &caller).len(), cases.len(), "a continuation ran twice");
    for (i, ((dispatch, age, sends), remote)) in cases.iter().zip(&remotes).enumerate() {
        let result = &done[&format!("{i}")];
        assert_eq!(result.len(), 1);
        assert_eq!(result[0]["Err"]["kind"], "expired", "{dispatch}, {age} ms old: {}", result[0]);
        let got = received(base, remote);
        assert_eq!(got.len(), *sends, "{dispatch}, {age} ms old: requests sent {got:?}");
        assert!(got.iter().all(|r| r.3 == 410), "{dispatch}, {age} ms old: {got:?}");
        assert!(effects(base, remote).is_empty(), "{dispatch}, {age} ms old: applied");
    }
    assert!(pending(base, &caller).is_empty());
    assert_eq!(tasks(base, &caller), json!([]));
}

/// Guarantee 7 (issue 10, case 6): a reply too large for SQLite (10 MB) becomes a typed
/// error outcome at the remote, stored in its place: the continuation gets
/// `CallError::TooLarge`, nothing answers 500, a re-dispatch is answered from the small
/// outcome without applying again, and the remote keeps serving. An operation of 10 MB is
/// refused by `call` before anything is stored.
#[test]
fn a_reply_too_large_to_store_ends_the_call_with_a_typed_error() {
    let base = url();
    let (caller, remote) = (unique("caller"), unique("remote"));
    let ten_mb = 10_000_000;
    call(base, &caller, json!({"name": remote, "op": {"type": "big", "bytes": ten_mb}, "tag": "big", "dispatch": "direct"}));
    let done = wait_continuations(base, &caller, 1, Duration::from_secs(20));
    let err = &done[0]["result"]["Err"];
    assert_eq!(err["kind"], "too_large", "{}", short(&done[0]["result"]));
    assert!(err["bytes"].as_u64().is_some_and(|b| b > ten_mb), "{err}");
    assert_eq!(applied(base, &remote).get("big"), Some(&1));
    let statuses: Vec<u16> = received(base, &remote).iter().map(|r| r.3).collect();
    assert_eq!(statuses, [200], "answers of the remote");

    // The same through the public router, signed: a 200 with the typed outcome, twice.
    let to = remote_id(base, &remote);
    let body = envelope("echo-10mb", &to, json!({"type": "echo", "value": "e".repeat(ten_mb as usize)}));
    let signature = sign(secret(), body.as_bytes());
    for _ in 0..2 {
        let reply = ok_json(post(&format!("{base}/remote/{remote}/"), &body, &[(SIGNATURE_HEADER, &signature)]).unwrap());
        assert!(reply["too_large"]["bytes"].as_u64().is_some_and(|b| b > ten_mb), "{}", short(&reply));
    }
    assert_eq!(applied(base, &remote).get("echo"), Some(&1), "the re-dispatch was applied again");

    // The remote still serves.
    call(base, &caller, json!({"name": remote, "op": {"type": "count", "key": "k"}, "tag": "after", "dispatch": "alarm"}));
    let done = by_tag(&wait_continuations(base, &caller, 2, Duration::from_secs(20)));
    assert_eq!(done["after"], vec![json!({"Ok": 1})]);

    // An operation of 10 MB: a typed error from `call`, and nothing stored.
    let caller = unique("caller");
    let (status, text) = post_json(
        &format!("{base}/calls/{caller}/call"),
        &json!({"name": remote, "op": {"type": "echo", "value": "e".repeat(ten_mb as usize)}, "tag": "t", "dispatch": "direct"}),
    )
    .unwrap();
    assert_eq!(status, 400, "{}", short(&json!(text)));
    assert!(text.contains("too large"), "{}", short(&json!(text)));
    assert!(pending(base, &caller).is_empty());
    assert_eq!(tasks(base, &caller), json!([]), "call() stored a task for a call it refused");
}

/// Guarantee 7 (issue 10, case 7): every call ends, once, and is applied once, whatever its
/// sizes. An operation of 1.2 MB echoed back (1.2 MB): the caller drops the operation when
/// the reply comes in, so the reply fits and the continuation gets it. A continuation value
/// of 1.2 MB and a reply of 1.2 MB cannot share the caller's row: the continuation gets
/// `CallError::TooLarge`. Neither is re-sent afterwards.
#[test]
fn calls_whose_result_is_hard_to_store_end_once_and_are_applied_once() {
    let base = url();
    let size = 1_200_000;
    let (caller, echo_remote, big_remote) = (unique("caller"), unique("remote-echo"), unique("remote-big"));
    let value = "v".repeat(size);
    call(base, &caller, json!({"name": echo_remote, "op": {"type": "echo", "value": value}, "tag": "echo", "dispatch": "direct"}));
    call(base, &caller, json!({"name": big_remote, "op": {"type": "big", "bytes": size}, "tag": "big", "dispatch": "direct", "resume_pad": size}));
    let done = by_tag(&wait_continuations(base, &caller, 2, Duration::from_secs(20)));
    assert!(done["echo"][0]["Ok"].as_str() == Some(value.as_str()), "echo: {}", short(&done["echo"][0]));
    let err = &done["big"][0]["Err"];
    assert_eq!(err["kind"], "too_large", "big: {}", short(&done["big"][0]));

    let sent = |remote: &str| received(base, remote).len();
    let before = (sent(&echo_remote), sent(&big_remote));
    std::thread::sleep(Duration::from_millis(3_000));
    assert_eq!((sent(&echo_remote), sent(&big_remote)), before, "re-sent after the call ended");
    assert_eq!(before, (1, 1), "requests per call");
    assert_eq!(continuations(base, &caller).len(), 2, "a continuation ran twice");
    assert_eq!(applied(base, &echo_remote), BTreeMap::from([("echo".to_owned(), 1)]));
    assert_eq!(applied(base, &big_remote), BTreeMap::from([("big".to_owned(), 1)]));
    assert!(pending(base, &caller).is_empty());
    assert_eq!(tasks(base, &caller), json!([]));
}

/// Guarantee 6: secret rotation. A worker whose objects have `LUMENIZE_CALL_SECRET` = new
/// and `LUMENIZE_CALL_SECRET_PREVIOUS` = old accepts requests signed with either, refuses
/// one signed with neither, and its own calls (signed with the new one) go through.
#[test]
fn a_request_signed_with_the_previous_secret_is_accepted_during_rotation() -> Result<()> {
    let (old, new) = (secret().to_owned(), format!("{}-rotated", secret()));
    let options = WorkerOptions::default()
        .arg("--var")
        .arg(format!("LUMENIZE_CALL_SECRET:{new}"))
        .arg("--var")
        .arg(format!("LUMENIZE_CALL_SECRET_PREVIOUS:{old}"));
    let mut worker = Worker::start(&workspace_root().join("testing/sandbox"), options)?;
    let base = worker.url();
    let remote = unique("remote");
    let (at, to) = (format!("{base}/remote/{remote}/"), remote_id(&base, &remote));
    let op = json!({"type": "count", "key": "k"});
    for (i, (key, status)) in [(&old, 200), (&new, 200), (&"neither".to_owned(), 401)].into_iter().enumerate() {
        let body = envelope(&format!("r{i}"), &to, op.clone());
        let (got, text) = post(&at, &body, &[(SIGNATURE_HEADER, &sign(key, body.as_bytes()))])?;
        assert_eq!(got, status, "signed with {key}: {text}");
    }
    assert_eq!(effects(&base, &remote)["k"], 2);
    let caller = unique("caller");
    call(&base, &caller, json!({"name": remote, "op": op, "tag": "t", "dispatch": "direct"}));
    assert_eq!(wait_continuations(&base, &caller, 1, Duration::from_secs(10))[0]["result"], json!({"Ok": 3}));
    worker.stop()
}

/// The SQLite limit lumenize-call's size limits rest on, measured in this workerd: a row
/// (SQLite's record: a header of a few bytes, then the values) is at most
/// `SQLITE_MAX_BYTES`, and so, less the header, is a value. In a row of two TEXT columns,
/// the header takes 6 bytes with one large value and an empty one (1 byte for its own
/// size, 4 for the large value's type, 1 for the empty one's), 9 with two large values.
#[test]
fn sqlite_in_a_durable_object_stores_values_and_rows_up_to_sqlite_max_bytes() {
    let limits = ok_json(get(&format!("{}/remote/{}/sql_limits", url(), unique("probe"))).unwrap());
    eprintln!("measured: {limits}");
    let max = SQLITE_MAX_BYTES as u64;
    assert_eq!(limits["max_text_bytes"].as_u64(), Some(max - 6), "{limits}");
    assert_eq!(limits["max_text_two_byte_chars"].as_u64(), Some((max - 6) / 2), "the limit counts UTF-8 bytes: {limits}");
    let each = limits["max_row_two_columns_each"].as_u64().unwrap();
    assert!(2 * each + 9 <= max && max < 2 * (each + 1) + 9, "rows: {limits}");
    for refusal in ["text_refusal", "row_refusal"] {
        assert!(limits[refusal].as_str().is_some_and(|e| e.contains("SQLITE_TOOBIG")), "{limits}");
    }
}

/// The sandbox's routes answer 400 with the reason for a body that does not decode.
#[test]
fn sandbox_routes_answer_400_for_bodies_that_do_not_decode() {
    let base = url();
    for route in [format!("calls/{}/call", unique("c")), format!("calls/{}/cancel", unique("c")), format!("calls/{}/add", unique("c"))] {
        let (status, text) = post(&format!("{base}/{route}"), "{not json", &[]).unwrap();
        assert_eq!(status, 400, "{route}: {text}");
        assert!(text.contains("bad request body"), "{route}: {text}");
    }
}

/// Runs `statement` through the sandbox's `sql` test hook at `url`; the rows it wrote (index
/// entries included).
fn sql(url: &str, statement: &str) -> u64 {
    let written = ok_json(post_json(url, &json!(statement)).expect("sql"));
    written.as_u64().unwrap_or_else(|| panic!("{statement}: wrote {written}"))
}

/// Writes a row the library would not write, through the `sql` test hook; checks that it
/// wrote.
fn poison(url: &str, statement: &str) {
    assert!(sql(url, statement) > 0, "{statement}: wrote nothing");
}

/// `lumenize_alarms::core::MAX_TIME_MS`: the latest time lumenize-call stores.
const MAX_TIME_MS: i64 = 9_223_372_036_854;

/// Issue 18, input 2: a timeout of `Duration::MAX` (or of `u64::MAX` ms) is stored as a
/// deadline the caller can read back: the call completes with its reply in both dispatches,
/// a slow one is listed by `pending()` with a deadline within the range and cancelled, and
/// nothing is left behind.
#[test]
fn a_timeout_of_duration_max_is_clamped_and_the_call_completes() {
    let base = url();
    let (caller, remote) = (unique("caller"), unique("remote"));
    let echo = |value: &str| json!({"type": "echo", "value": value});
    call(base, &caller, json!({"name": remote, "op": echo("max"), "tag": "max", "dispatch": "direct", "timeout_max": true}));
    call(base, &caller, json!({"name": remote, "op": echo("u64"), "tag": "u64", "dispatch": "alarm", "timeout_ms": u64::MAX}));
    let slow = call(base, &caller, json!({"name": remote, "op": {"type": "slow_count", "key": "k", "ms": 3_000}, "tag": "slow", "dispatch": "direct", "timeout_max": true}));
    let (status, listed) = get(&format!("{base}/calls/{caller}/pending")).unwrap();
    assert_eq!(status, 200, "pending() with a timeout of Duration::MAX: {listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let slow_id = slow[0]["id"].clone();
    let row = listed.as_array().unwrap().iter().find(|c| c["id"] == slow_id).cloned().unwrap_or_else(|| panic!("the slow call is not pending: {listed}"));
    let deadline = row["deadline_ms"].as_i64().unwrap_or_else(|| panic!("no integer deadline: {row}"));
    let made_at = slow[0]["task"]["created_ms"].as_i64().expect("the call's task");
    assert!((deadline - made_at - MAX_TIMEOUT_MS).abs() < 1_000, "deadline {deadline}, not made at {made_at} + MAX_TIMEOUT_MS ({row})");
    let (status, text) = post_json(&format!("{base}/calls/{caller}/cancel"), &slow_id).unwrap();
    assert_eq!((status, text.as_str()), (200, "true"), "cancel");
    let done = by_tag(&wait_continuations(base, &caller, 3, Duration::from_secs(15)));
    assert_eq!(done["max"], vec![json!({"Ok": "max"})]);
    assert_eq!(done["u64"], vec![json!({"Ok": "u64"})]);
    assert_eq!(done["slow"], vec![json!({"Err": {"kind": "cancelled"}})]);
    assert!(pending(base, &caller).is_empty());
    assert_eq!(tasks(base, &caller), json!([]));
}

/// Issue 18, input 2: the issue-time test hook takes `0 ..= MAX_TIME_MS`; `i64::MAX`,
/// `i64::MIN`, -1 and `MAX_TIME_MS + 1` are refused by `call` with a typed error before
/// anything is stored, and the object keeps working.
#[test]
fn issue_times_outside_the_range_are_refused_before_anything_is_stored() {
    let base = url();
    let (caller, remote) = (unique("caller"), unique("remote"));
    for issued in [i64::MAX, i64::MIN, -1, MAX_TIME_MS + 1] {
        let body = json!({"name": remote, "op": {"type": "count", "key": "k"}, "tag": "t", "dispatch": "direct", "issued_ms": issued});
        let (status, text) = post_json(&format!("{base}/calls/{caller}/call"), &body).unwrap();
        assert_eq!(status, 400, "issued at {issued}: {text}");
        assert!(text.contains("out of range"), "issued at {issued}: {text}");
        let (status, listed) = get(&format!("{base}/calls/{caller}/pending")).unwrap();
        assert_eq!((status, listed.as_str()), (200, "[]"), "issued at {issued}");
        assert_eq!(tasks(base, &caller), json!([]), "issued at {issued}");
    }
    assert!(received(base, &remote).is_empty(), "a refused call was sent");
    // The ends of the range are accepted: the epoch is past the send horizon (expired, never
    // sent); MAX_TIME_MS is in the remote's future (refused with 401).
    call(base, &caller, json!({"name": remote, "op": {"type": "count", "key": "k"}, "tag": "epoch", "dispatch": "direct", "issued_ms": 0}));
    call(base, &caller, json!({"name": remote, "op": {"type": "count", "key": "k"}, "tag": "end", "dispatch": "alarm", "issued_ms": MAX_TIME_MS}));
    let done = by_tag(&wait_continuations(base, &caller, 2, Duration::from_secs(15)));
    assert_eq!(done["epoch"][0]["Err"]["kind"], "expired", "{:?}", done["epoch"]);
    assert_eq!((done["end"][0]["Err"]["kind"].as_str(), done["end"][0]["Err"]["status"].as_u64()), (Some("rejected"), Some(401)), "{:?}", done["end"]);
    assert!(effects(base, &remote).is_empty());
    assert!(pending(base, &caller).is_empty());
}

/// Issue 18, input 3: a signed call whose id (or origin) is 2.5 MB is refused with 400 and
/// a typed reason: nothing is applied or stored, and the remote keeps serving.
#[test]
fn a_call_id_over_the_key_limit_is_refused_with_400_and_nothing_applied() {
    let base = url();
    let remote = unique("remote");
    let (at, to) = (format!("{base}/remote/{remote}/"), remote_id(base, &remote));
    let op = json!({"type": "count", "key": "k"});
    let huge = "i".repeat(2_500_000);
    let long_id = envelope(&huge, &to, op.clone());
    let long_origin = json!({"v": 2, "id": "c", "to": {"binding": "REMOTE", "object": to}, "from": huge, "issued_ms": now_ms(), "op": op}).to_string();
    let long_binding = json!({"v": 2, "id": "c", "to": {"binding": huge, "object": to}, "from": "0".repeat(64), "issued_ms": now_ms(), "op": op}).to_string();
    for (body, what) in [(long_id, "id"), (long_origin, "origin"), (long_binding, "binding")] {
        let (status, text) = post(&at, &body, &[(SIGNATURE_HEADER, &sign(secret(), body.as_bytes()))]).unwrap();
        assert_eq!(status, 400, "a {what} of 2.5 MB: {}", short(&json!(text)));
        assert!(text.contains("too long") && text.len() < 1_000, "a {what} of 2.5 MB: {}", short(&json!(text)));
    }
    assert!(applied(base, &remote).is_empty(), "a refused call was applied");
    assert_eq!(ok_json(get(&format!("{base}/remote/{remote}/results")).unwrap()), json!(0), "a refused call left a result row");
    let body = envelope("after", &to, op);
    assert_eq!(ok_json(post(&at, &body, &[(SIGNATURE_HEADER, &sign(secret(), body.as_bytes()))]).unwrap())["ok"], 1);
}

/// Issue 18, item 5: a stored result goes back only to the origin that made the call. A
/// second origin that sends a correctly signed request re-using a call id the remote served
/// is refused (403): it is neither applied nor answered with the first origin's reply. The
/// first origin's re-dispatch is still answered from the stored result.
#[test]
fn another_origin_reusing_a_served_call_id_is_refused() {
    let base = url();
    let remote = unique("remote");
    let (at, to) = (format!("{base}/remote/{remote}/"), remote_id(base, &remote));
    let from = |origin: char, id: &str, value: &str| {
        let body = json!({"v": 2, "id": id, "to": {"binding": "REMOTE", "object": to}, "from": origin.to_string().repeat(64), "issued_ms": now_ms(), "op": {"op": {"type": "echo", "value": value}}}).to_string();
        post(&at, &body, &[(SIGNATURE_HEADER, &sign(secret(), body.as_bytes()))]).unwrap()
    };
    assert_eq!(ok_json(from('a', "shared", "secret of a"))["ok"], "secret of a");
    let (status, text) = from('b', "shared", "b's own");
    assert_eq!(status, 403, "another origin re-using the id: {text}");
    assert!(!text.contains("secret of a"), "answered with the other origin's result: {text}");
    assert_eq!(applied(base, &remote).get("echo"), Some(&1), "the other origin's request was applied");
    // The first origin still gets its stored result, without applying again.
    assert_eq!(ok_json(from('a', "shared", "ignored"))["ok"], "secret of a");
    assert_eq!(applied(base, &remote).get("echo"), Some(&1));
    // Other ids of the second origin are served.
    assert_eq!(ok_json(from('b', "its-own", "b's own"))["ok"], "b's own");
}

/// Issue 18, item 2: a call row that does not decode (a REAL in `deadline_ms`, as an older
/// release stored `Duration::MAX`) is quarantined: `pending()` lists it with the decode
/// error, its task goes dead with that error (no endless retries), the other calls complete,
/// and `cancel` removes it (without a continuation: its row cannot be trusted).
#[test]
fn a_poisoned_call_row_is_quarantined_while_other_calls_complete() {
    let base = url();
    let (caller, remote) = (unique("caller"), unique("remote"));
    let made = call(base, &caller, json!({"name": remote, "op": {"type": "slow_count", "key": "slow", "ms": 2_000}, "tag": "poisoned", "dispatch": "direct"}));
    let id = made[0]["id"].as_str().unwrap().to_owned();
    poison(&format!("{base}/calls/{caller}/sql"), &format!("UPDATE _lumenize_calls SET deadline_ms = 9.3e18 WHERE id = '{id}'"));
    for dispatch in ["direct", "alarm"] {
        call(base, &caller, json!({"name": remote, "op": {"type": "count", "key": dispatch}, "tag": dispatch, "dispatch": dispatch}));
    }
    let done = by_tag(&wait_continuations(base, &caller, 2, Duration::from_secs(15)));
    assert_eq!((done["direct"].clone(), done["alarm"].clone()), (vec![json!({"Ok": 1})], vec![json!({"Ok": 1})]));
    let (status, listed) = get(&format!("{base}/calls/{caller}/pending")).unwrap();
    assert_eq!(status, 200, "pending() with a poisoned row: {listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0]["unreadable"].as_str().is_some_and(|e| e.contains("deadline_ms")), "{listed}");
    // Its task fails with the decode error and, after its retries, is kept dead.
    let task = poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
        tasks(base, &caller).as_array().and_then(|t| t.iter().find(|t| t["id"] == id.as_str() && t["status"] == "dead").cloned())
    })
    .unwrap_or_else(|e| panic!("the poisoned call's task is not dead: {e}; {}", tasks(base, &caller)));
    assert!(task["last_error"].as_str().is_some_and(|e| e.contains("deadline_ms")), "{task}");
    assert_eq!(effects(base, &remote).get("slow"), Some(&1), "the call was sent once, before the poison");
    let (status, text) = post_json(&format!("{base}/calls/{caller}/cancel"), &json!(id)).unwrap();
    assert_eq!((status, text.as_str()), (200, "true"), "cancel of the poisoned call");
    assert!(pending(base, &caller).is_empty());
    assert_eq!(tasks(base, &caller), json!([]));
    assert_eq!(continuations(base, &caller).len(), 2, "the poisoned call was continued");
}

/// Issue 18, item 2 at the remote: a stored result that does not decode (bad JSON in
/// `outcome`, a REAL in `done_ms`) is answered as a typed storage error, never applied
/// again, and is still forgotten a day later.
#[test]
fn a_poisoned_result_row_is_answered_with_a_typed_error_and_cleaned_up() {
    let base = url();
    let remote = unique("remote");
    let (at, to) = (format!("{base}/remote/{remote}/"), remote_id(base, &remote));
    let body = envelope("poisoned", &to, json!({"type": "count", "key": "k"}));
    let send = || post(&at, &body, &[(SIGNATURE_HEADER, &sign(secret(), body.as_bytes()))]).unwrap();
    assert_eq!(ok_json(send())["ok"], 1);
    poison(&format!("{base}/remote/{remote}/sql"), "UPDATE _lumenize_call_results SET outcome = '{not json', done_ms = 9.3e18 WHERE id = 'poisoned'");
    let again = ok_json(send());
    assert!(again["unstored"]["message"].as_str().is_some_and(|m| m.contains("does not decode")), "{again}");
    assert_eq!(effects(base, &remote)["k"], 1, "applied again");
    // It is forgotten a day later, like any other result: its done_ms, a REAL, is taken as
    // "now" by the next call served, then it ages like the others.
    ok_json(post(&format!("{base}/remote/{remote}/reopen"), "", &[]).unwrap());
    let other = envelope("other", &to, json!({"type": "count", "key": "j"}));
    assert_eq!(ok_json(post(&at, &other, &[(SIGNATURE_HEADER, &sign(secret(), other.as_bytes()))]).unwrap())["ok"], 1);
    assert_eq!(ok_json(get(&format!("{base}/remote/{remote}/results")).unwrap()), json!(2), "the poisoned result was dropped at once");
    poison(&format!("{base}/remote/{remote}/sql"), &format!("UPDATE _lumenize_call_results SET done_ms = {}", now_ms() - 2 * 24 * 3_600_000));
    ok_json(post(&format!("{base}/remote/{remote}/reopen"), "", &[]).unwrap());
    let last = envelope("last", &to, json!({"type": "count", "key": "i"}));
    assert_eq!(ok_json(post(&at, &last, &[(SIGNATURE_HEADER, &sign(secret(), last.as_bytes()))]).unwrap())["ok"], 1);
    assert_eq!(ok_json(get(&format!("{base}/remote/{remote}/results")).unwrap()), json!(1), "the poisoned result outlived a day");
}

/// Issue 18, item 5: the remote's results of schema version 1 (keyed by the call id alone,
/// no meta table) are migrated on open: kept, and answered to any origin as before (a
/// re-dispatch of a call applied before the upgrade is not applied again); results stored
/// after it answer only their origin.
#[test]
fn results_of_schema_version_1_are_migrated_and_kept_reachable() {
    let base = url();
    let remote = unique("remote");
    let (at, to) = (format!("{base}/remote/{remote}/"), remote_id(base, &remote));
    let hook = format!("{base}/remote/{remote}/sql");
    sql(&hook, "DROP TABLE _lumenize_call_meta; DROP TABLE _lumenize_call_results");
    let v1 = format!(
        "CREATE TABLE _lumenize_call_results (id TEXT PRIMARY KEY, outcome TEXT, done_ms INTEGER NOT NULL); \
         INSERT INTO _lumenize_call_results VALUES ('legacy', '{{\"ok\":\"stored by version 1\"}}', {})",
        now_ms()
    );
    poison(&hook, &v1);
    assert_eq!(ok_json(post(&format!("{base}/remote/{remote}/reopen"), "", &[]).unwrap()), json!(2), "the schema version after the migration");
    let from = |origin: char, id: &str| {
        let body = json!({"v": 2, "id": id, "to": {"binding": "REMOTE", "object": to}, "from": origin.to_string().repeat(64), "issued_ms": now_ms(), "op": {"op": {"type": "count", "key": "k"}}}).to_string();
        post(&at, &body, &[(SIGNATURE_HEADER, &sign(secret(), body.as_bytes()))]).unwrap()
    };
    for origin in ['a', 'b'] {
        assert_eq!(ok_json(from(origin, "legacy"))["ok"], "stored by version 1", "origin {origin}");
    }
    assert!(effects(base, &remote).is_empty(), "a call applied before the upgrade was applied again");
    assert_eq!(ok_json(from('a', "new"))["ok"], 1);
    assert_eq!(from('b', "new").0, 403);
    // Opening again finds version 2 and keeps everything.
    assert_eq!(ok_json(post(&format!("{base}/remote/{remote}/reopen"), "", &[]).unwrap()), json!(2));
    assert_eq!(ok_json(get(&format!("{base}/remote/{remote}/results")).unwrap()), json!(2));
}
