//! lumenize-board on the real runtime: mounted in the sandbox's `AlarmsDO` at `board/`,
//! behind the token `BOARD_TOKEN` of `testing/sandbox/wrangler.toml`. What it must never do
//! (serve without the token, act on a cross-site request, let a stored string become
//! markup), and that its actions change storage (read back through the sandbox's own
//! routes, not through the board). The pending calls of lumenize-call (`Board::calls`) are
//! checked on the sandbox's `CallerDO`, which mounts its board with them. The browser test
//! is `board_browser.rs`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lumenize_harness::{post_json, workspace_root, Worker, WorkerOptions};
use serde_json::{json, Value};

const TOKEN: &str = "sandbox-board-token";

/// Ids, payload strings and (through a payload that does not decode) errors that would run
/// script or change the page if they reached it unescaped.
const HOSTILE: [&str; 5] = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(2)>", "</script><script>alert(3)</script>", "rtl\u{202e}exe.txt\u{0}\u{1b}[31m", "' onmouseover='alert(4)"];

/// The two hostile strings that would inject an attribute, each with its escaped form.
const ATTRIBUTE_PAYLOADS: [(&str, &str); 2] = [("onerror=alert(2)", "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"), ("onmouseover=", "&#39; onmouseover=&#39;alert(4)")];

/// A page the hostile strings reached, inert: no script or img element, no injected
/// attribute, no raw control character, and every attribute payload only inside its escaped
/// form (so none closed an attribute value).
fn assert_inert(body: &str) {
    let lower = body.to_lowercase();
    assert!(!lower.contains("<script"), "a script element in the page: {body}");
    assert!(!lower.contains("<img"), "an img element in the page");
    assert!(!lower.contains("onmouseover='"), "an injected attribute");
    for c in ['\u{202e}', '\u{0}', '\u{1b}'] {
        assert!(!body.contains(c), "a raw control {c:?} in the page");
    }
    for (raw, escaped) in ATTRIBUTE_PAYLOADS {
        assert_eq!(body.matches(raw).count(), body.matches(escaped).count(), "{raw} outside its escaped form: {body}");
    }
}

fn shared() -> String {
    static SHARED: OnceLock<Result<Worker, String>> = OnceLock::new();
    // The secret of lumenize-call, for the calls of the `CallerDO` (a test value).
    let options = WorkerOptions::default().arg("--var").arg(format!("LUMENIZE_CALL_SECRET:board-test-secret-{}", std::process::id()));
    match SHARED.get_or_init(|| Worker::start(&workspace_root().join("testing/sandbox"), options).map_err(|e| format!("{e:#}"))) {
        Ok(worker) => worker.url(),
        Err(e) => panic!("the sandbox worker did not start: {e}"),
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as i64
}

/// One object of the sandbox, with a fresh name.
struct Obj {
    base: String,
}

/// An answer: status, body, `Location`.
struct Answer {
    status: u16,
    body: String,
    location: Option<String>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// A request, redirects not followed, any status.
fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
    let agent = ureq::AgentBuilder::new().redirects(0).timeout(Duration::from_secs(30)).build();
    let request = headers.iter().fold(agent.request(method, url), |r, (k, v)| r.set(k, v));
    let result = match body {
        Some(b) => request.send_string(b),
        None => request.call(),
    };
    let response = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let (status, location) = (response.status(), response.header("location").map(str::to_owned));
    Answer { status, location, body: response.into_string().expect("a text body") }
}

impl Obj {
    fn new(test: &str) -> Obj {
        static N: AtomicU32 = AtomicU32::new(0);
        Obj { base: format!("{}/alarms/{test}-{}-{}", shared(), std::process::id(), N.fetch_add(1, Ordering::Relaxed)) }
    }

    /// A sandbox route (not the board's): the library as storage has it.
    fn sandbox(&self, route: &str, body: &Value) -> Value {
        let (status, text) = post_json(&format!("{}/{route}", self.base), body).expect("sandbox answers");
        assert_eq!(status, 200, "{route} {body}: {text}");
        serde_json::from_str(&text).expect("sandbox answers JSON")
    }

    fn schedule(&self, id: &str, when: Value, label: &str) -> Value {
        self.sandbox("schedule", &json!({ "when": when, "task": { "type": "record", "label": label }, "id": id }))
    }

    fn stored(&self, id: &str) -> Value {
        self.sandbox("get", &json!({ "id": id }))
    }

    fn board(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
        send(method, &format!("{}/board{path}", self.base), headers, body)
    }

    /// A board request with the token, as a script sends it.
    fn api(&self, method: &str, path: &str) -> Answer {
        self.board(method, path, &[("authorization", &bearer())], if method == "POST" { Some("") } else { None })
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn every_route_answers_401_without_the_token_and_changes_nothing() {
    let obj = Obj::new("board-auth");
    obj.schedule("keep", json!({ "after_ms": 3_600_000 }), "keep");
    let routes = [
        ("GET", "".to_owned()),
        ("GET", "/".to_owned()),
        ("GET", "/?status=dead".to_owned()),
        ("GET", "/api/tasks".to_owned()),
        ("GET", "/api/task?id=keep".to_owned()),
        ("GET", "/api/counts".to_owned()),
        ("GET", "/api/events".to_owned()),
        ("GET", "/api/nothing-here".to_owned()),
        ("POST", "/api/cancel?id=keep".to_owned()),
        ("POST", "/api/pause?id=keep".to_owned()),
        ("POST", "/api/resume?id=keep".to_owned()),
        ("POST", "/api/run_now?id=keep".to_owned()),
        ("POST", "/api/requeue?id=keep".to_owned()),
        ("POST", "/api/requeue_dead".to_owned()),
    ];
    let basic_wrong = format!("Basic {}", "dXNlcjp3cm9uZw=="); // user:wrong
    let wrong = [None, Some("Bearer wrong"), Some("Bearer sandbox-board-token2"), Some("Bearer sandbox-board-toke"), Some("bearer"), Some(basic_wrong.as_str()), Some(TOKEN)];
    for (method, path) in &routes {
        for auth in wrong {
            let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().chain([("sec-fetch-site", "same-origin")]).collect();
            let a = obj.board(method, path, &headers, (*method == "POST").then_some(""));
            assert_eq!(a.status, 401, "{method} board{path} with {auth:?}: {}", a.body);
            assert!(!a.body.contains("keep"), "a refused request reads nothing: {}", a.body);
        }
    }
    let kept = obj.stored("keep");
    assert_eq!(kept["status"], "pending", "nothing changed: {kept}");
    // The same routes with the token (as a bearer, or as a browser's Basic password) do answer.
    let basic = format!("Basic {}", base64(&format!("anyone:{TOKEN}")));
    assert_eq!(obj.board("GET", "/api/counts", &[("authorization", &basic)], None).status, 200);
    assert_eq!(obj.api("GET", "/api/task?id=keep").status, 200);
    let root = obj.api("GET", "");
    assert_eq!((root.status, root.location.as_deref()), (308, Some("board/")), "the page lives at board/");
    assert_eq!(obj.api("GET", "/api/nothing-here").status, 404);
    // Outside the prefix, the object's own routes: not the board's business.
    assert_eq!(obj.stored("keep")["id"], "keep");
}

#[test]
fn hostile_ids_payloads_and_errors_come_back_inert() {
    let obj = Obj::new("board-hostile");
    for (i, h) in HOSTILE.iter().enumerate() {
        obj.schedule(h, json!({ "after_ms": 3_600_000 + i as u64 }), h);
        // A payload `Task` does not decode: dead at its first run, with serde's error, which
        // quotes the hostile variant name.
        obj.sandbox("schedule_raw", &json!({ "when": { "after_ms": 0 }, "task": { "type": h, "label": h }, "id": format!("raw-{h}") }));
    }
    obj.sandbox("run_at", &json!({ "now_ms": now_ms() + 1_000 }));
    let dead = obj.api("GET", "/api/tasks?status=dead").json();
    assert_eq!(dead["tasks"].as_array().unwrap().len(), HOSTILE.len(), "{dead}");
    for status in ["", "?status=dead", "?status=pending"] {
        let page = obj.api("GET", &format!("/{status}"));
        assert_eq!(page.status, 200);
        assert_inert(&page.body);
        assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the id shows as text");
    }
    let page = obj.api("GET", "/?status=dead").body;
    assert!(page.contains("unknown variant `&lt;/script&gt;&lt;script&gt;alert(3)&lt;/script&gt;`"), "the error shows as text: {page}");
    // The filters echo back escaped too.
    let echoed = obj.api("GET", &format!("/?prefix={}&kind={}", enc(HOSTILE[1]), enc(HOSTILE[0]))).body;
    assert!(!echoed.to_lowercase().contains("<img") && !echoed.to_lowercase().contains("<script"), "{echoed}");
    // JSON answers carry the strings exactly, as JSON (not HTML), and say so.
    let tasks = obj.api("GET", "/api/tasks?status=pending").json();
    let ids: Vec<&str> = tasks["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, HOSTILE);
    let one = obj.board("GET", &format!("/api/task?id={}", enc(HOSTILE[2])), &[("authorization", &bearer())], None);
    assert_eq!(one.json()["id"], HOSTILE[2]);
}

#[test]
fn a_cross_site_post_is_refused_and_changes_nothing() {
    let obj = Obj::new("board-csrf");
    obj.schedule("victim", json!({ "after_ms": 3_600_000 }), "victim");
    let auth = bearer();
    for (op, headers) in [
        ("cancel", vec![("sec-fetch-site", "cross-site")]),
        ("pause", vec![("sec-fetch-site", "same-site")]),
        ("run_now", vec![("origin", "http://evil.example")]),
        ("cancel", vec![("origin", "null")]),
        ("pause", vec![("sec-fetch-site", "cross-site"), ("origin", "http://evil.example")]),
    ] {
        let headers: Vec<(&str, &str)> = headers.into_iter().chain([("authorization", auth.as_str()), ("content-type", "application/x-www-form-urlencoded")]).collect();
        let a = obj.board("POST", &format!("/api/{op}"), &headers, Some("id=victim"));
        assert_eq!(a.status, 403, "{op} {headers:?}: {}", a.body);
    }
    let stored = obj.stored("victim");
    assert_eq!(stored["status"], "pending", "{stored}");
    let bulk = obj.board("POST", "/api/requeue_dead", &[("authorization", &auth), ("sec-fetch-site", "cross-site")], Some(""));
    assert_eq!(bulk.status, 403);
    // The same form from the board's own page goes through, and sends the browser back.
    let a = obj.board("POST", "/api/pause", &[("authorization", &auth), ("sec-fetch-site", "same-origin"), ("content-type", "application/x-www-form-urlencoded")], Some("id=victim&back=status%3Dpaused"));
    assert_eq!((a.status, a.location.as_deref()), (303, Some("../?status=paused")));
    assert_eq!(obj.stored("victim")["status"], "paused");
}

#[test]
fn actions_change_storage_and_answer_the_new_state() {
    let obj = Obj::new("board-actions");
    obj.schedule("one", json!({ "after_ms": 3_600_000 }), "one");
    let paused = obj.api("POST", "/api/pause?id=one").json();
    assert_eq!(paused["task"]["status"], "paused");
    assert_eq!(obj.stored("one")["status"], "paused");
    assert_eq!(obj.api("GET", "/api/counts").json()["paused"], 1);
    let resumed = obj.api("POST", "/api/resume?id=one").json();
    assert_eq!((resumed["task"]["status"].as_str(), obj.stored("one")["status"].as_str()), (Some("pending"), Some("pending")));
    let now = obj.api("POST", "/api/run_now?id=one").json();
    assert!(now["task"]["due_ms"].as_i64().is_some_and(|due| due <= now_ms() + 1_000), "{now}");
    // Due now, so the native alarm runs it at once: the sandbox records the firing, and the
    // one-shot task is gone.
    let fired = || obj.sandbox("fired", &json!({})).as_array().expect("an array").iter().any(|f| f["label"] == "one");
    lumenize_harness::poll_until(Duration::from_secs(10), Duration::from_millis(50), || fired().then_some(())).expect("run now runs it");
    assert_eq!(obj.stored("one"), Value::Null);
    // Dead tasks: one requeued alone, the others in bulk.
    for id in ["d1", "d2", "d3"] {
        obj.sandbox("schedule", &json!({ "when": { "after_ms": 0 }, "task": { "type": "fail", "label": id, "times": 100 }, "id": id, "attempts": 1 }));
    }
    obj.sandbox("run_at", &json!({ "now_ms": now_ms() + 1_000 }));
    assert_eq!(obj.stored("d1")["status"], "dead");
    assert_eq!(obj.api("POST", "/api/pause?id=d1").status, 409, "a dead task is not paused");
    // Requeued, they are due now and run again at once (and fail again: dead again).
    let runs = |label: &str| obj.sandbox("fired", &json!({})).as_array().expect("an array").iter().filter(|f| f["label"] == label).count();
    let ran = |expected: &[(&str, usize)]| lumenize_harness::poll_until(Duration::from_secs(10), Duration::from_millis(50), || expected.iter().all(|(l, n)| runs(l) == *n).then_some(()));
    assert_eq!(obj.api("POST", "/api/requeue?id=d1").json()["task"]["status"], "pending");
    ran(&[("d1", 2)]).expect("the requeued task runs again");
    assert_eq!(runs("d2"), 1);
    poll_until_dead(&obj, "d1");
    let bulk = obj.api("POST", "/api/requeue_dead").json();
    assert_eq!(bulk["requeued"], 3, "d1 (dead again), d2 and d3: {bulk}");
    ran(&[("d1", 3), ("d2", 2), ("d3", 2)]).expect("the requeued tasks run again");
    // Cancel removes; a second cancel finds nothing.
    assert_eq!(obj.api("POST", "/api/cancel?id=d2").json()["task"], Value::Null);
    assert_eq!(obj.stored("d2"), Value::Null);
    assert_eq!(obj.api("POST", "/api/cancel?id=d2").status, 404);
    // The events the board kept while mounted, newest first.
    let events = obj.api("GET", "/api/events").json();
    assert!(events.as_array().unwrap().iter().any(|e| e["kind"] == "dead" && e["task_id"] == "d3"), "{events}");
}

fn poll_until_dead(obj: &Obj, id: &str) {
    lumenize_harness::poll_until(Duration::from_secs(10), Duration::from_millis(50), || (obj.stored(id)["status"] == "dead").then_some(())).expect("dead again");
}

#[test]
fn pages_walk_every_task_once_and_cron_tasks_show_their_next_runs() {
    let obj = Obj::new("board-pages");
    // 60 tasks due at the same millisecond (one statement), then a cron task.
    let at = now_ms() + 3_600_000;
    obj.sandbox("burst", &json!({ "n": 60, "label": "b", "at_ms": at, "many": true }));
    obj.sandbox("schedule", &json!({ "when": { "cron": "0 3 * * *" }, "task": { "type": "record", "label": "nightly" }, "id": "nightly" }));
    let mut seen = Vec::new();
    let mut query = "limit=25".to_owned();
    for _ in 0..10 {
        let page = obj.api("GET", &format!("/api/tasks?{query}")).json();
        assert!(page["read"].as_u64().unwrap() <= 25);
        seen.extend(page["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => query = format!("limit=25&after={next}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (61, 61), "every task once");
    let nightly = obj.api("GET", "/api/task?id=nightly").json();
    let runs: Vec<i64> = nightly["next_runs"].as_array().unwrap().iter().map(|r| r.as_i64().unwrap()).collect();
    assert_eq!(runs.len(), 5, "{nightly}");
    assert!(runs.windows(2).all(|w| w[1] - w[0] == 86_400_000) && runs[0] % 86_400_000 == 3 * 3_600_000, "{runs:?}");
    let page = obj.api("GET", "/?kind=record&prefix=nightly").body;
    assert!(page.contains("cron <code>0 3 * * *</code> UTC") && page.contains("next runs"), "{page}");
}

/// A cron task in a zone: its next runs on the zone's wall clock, with the abbreviation and
/// offset of each (so a daylight-saving change shows), UTC beside them. Noon on the 1st of
/// each month in Paris: 11:00 UTC in winter (CET, +01:00), 10:00 UTC in summer (CEST).
#[test]
fn a_zoned_cron_task_shows_its_next_runs_on_its_own_clock() {
    let obj = Obj::new("board-zone");
    obj.sandbox("schedule", &json!({ "when": { "cron_in": { "expr": "0 12 1 * *", "zone": "Europe/Paris" } }, "task": { "type": "record", "label": "paris" }, "id": "paris" }));
    let task = obj.api("GET", "/api/task?id=paris").json();
    let utc: Vec<i64> = task["next_runs"].as_array().unwrap().iter().map(|r| r.as_i64().unwrap()).collect();
    let local: Vec<&str> = task["next_runs_local"].as_array().unwrap_or_else(|| panic!("{task}")).iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!((utc.len(), local.len()), (5, 5), "{task}");
    for (ms, local) in utc.iter().zip(&local) {
        let hour_utc = ms % 86_400_000 / 3_600_000;
        let want = if hour_utc == 11 { "12:00:00 CET +01:00" } else { "12:00:00 CEST +02:00" };
        assert!(local.ends_with(want) && local.contains("-01 "), "{ms} shown as {local:?}");
    }
    let page = obj.api("GET", "/?prefix=paris").body;
    assert!(page.contains("cron <code>0 12 1 * *</code> Europe/Paris") && page.contains(local[0]), "{page}");
}

/// A `CallerDO` of the sandbox, with a fresh name: lumenize-board with its pending calls
/// (`Board::calls`) at `board/`.
struct Caller {
    base: String,
    /// A fresh name for the `RemoteDO` its calls go to.
    remote: String,
}

impl Caller {
    fn new(test: &str) -> Caller {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = format!("{test}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        Caller { base: format!("{}/calls/{n}", shared()), remote: format!("remote-{n}") }
    }

    /// A sandbox route of the caller (not the board's).
    fn sandbox(&self, route: &str, body: &Value) -> Value {
        let (status, text) = post_json(&format!("{}/{route}", self.base), body).expect("sandbox answers");
        assert_eq!(status, 200, "{route} {body}: {text}");
        serde_json::from_str(&text).expect("sandbox answers JSON")
    }

    /// A call of `op` (JSON of the sandbox's `Op`) to the remote `name`, sent at once: its id.
    fn call(&self, name: &str, op: Value, tag: &str, fail_times: u32) -> String {
        let made = self.sandbox("call", &json!({ "name": name, "op": op, "tag": tag, "dispatch": "direct", "fail_times": fail_times }));
        made[0]["id"].as_str().expect("a call id").to_owned()
    }

    /// A call the remote answers in a minute: pending, awaiting its result, meanwhile.
    fn slow_call(&self, key: &str, tag: &str) -> String {
        self.call(&self.remote, json!({ "type": "slow_count", "key": key, "ms": 60_000 }), tag, 0)
    }

    /// The continuations that ran: `(tag, result)`.
    fn continuations(&self) -> Vec<(String, Value)> {
        let rows = self.sandbox("continuations", &json!({}));
        rows.as_array().expect("an array").iter().map(|r| (r["tag"].as_str().unwrap_or_default().to_owned(), r["result"].clone())).collect()
    }

    /// The ids lumenize-call itself lists as pending (`Calls::pending`).
    fn pending(&self) -> Vec<String> {
        let rows = self.sandbox("pending", &json!({}));
        rows.as_array().expect("an array").iter().map(|c| c["id"].as_str().unwrap_or_default().to_owned()).collect()
    }

    fn board(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
        send(method, &format!("{}/board{path}", self.base), headers, body)
    }

    fn api(&self, method: &str, path: &str) -> Answer {
        self.board(method, path, &[("authorization", &bearer())], if method == "POST" { Some("") } else { None })
    }

    /// The calls `api/calls` lists, by id.
    fn listed(&self) -> Vec<Value> {
        let page = self.api("GET", "/api/calls").json();
        page["calls"].as_array().cloned().unwrap_or_else(|| panic!("{page}"))
    }
}

#[test]
fn pending_calls_are_listed_with_their_state_and_cancelled_through_the_api() {
    let caller = Caller::new("board-calls");
    let slow = caller.slow_call("k", "slow");
    // A call whose result is in but whose continuation keeps failing: delivering.
    let failing = caller.call(&caller.remote, json!({ "type": "echo", "value": "hi" }), "failing", 1_000);
    let state = |id: &str| caller.listed().iter().find(|c| c["id"] == id).map(|c| c["state"].clone());
    lumenize_harness::poll_until(Duration::from_secs(10), Duration::from_millis(50), || (state(&failing) == Some(json!("delivering"))).then_some(())).expect("the failing continuation's call is delivering");

    let listed = caller.listed();
    let call = listed.iter().find(|c| c["id"] == slow.as_str()).unwrap_or_else(|| panic!("{slow} listed: {listed:?}"));
    assert_eq!(call["state"], "awaiting", "{call}");
    assert_eq!((call["binding"].as_str(), call["object_by"].as_str(), call["object"].as_str()), (Some("REMOTE"), Some("name"), Some(caller.remote.as_str())));
    assert_eq!((call["operation"].as_str(), call["dispatch"].as_str(), call["failures"].as_u64()), (Some("op"), Some("direct"), Some(0)));
    assert!(call["operation_preview"].as_str().is_some_and(|p| p.contains("slow_count")), "{call}");
    assert!(call["created_ms"].as_i64().is_some_and(|ms| (ms - now_ms()).abs() < 60_000), "{call}");
    // The page shows both, each with its state and a Cancel button.
    let page = caller.api("GET", "/").body;
    assert!(page.contains(r#"<h2 id="calls">Pending calls</h2>"#), "{page}");
    assert!(page.contains(&format!(r#"<tr data-id="{slow}" data-state="awaiting">"#)), "{page}");
    assert!(page.contains(&format!(r#"<tr data-id="{failing}" data-state="delivering">"#)), "{page}");
    assert!(page.contains(&format!(r#"<input type="hidden" name="id" value="{slow}">"#)) && page.contains(r#"action="api/calls/cancel""#));
    // Paging: one call a page, every call once, in id order (UUIDv7: the order they were
    // made in, to the millisecond).
    let (a, b) = if slow < failing { (&slow, &failing) } else { (&failing, &slow) };
    let first = caller.api("GET", "/api/calls?limit=1").json();
    assert_eq!((first["calls"][0]["id"].as_str(), first["next"].as_str()), (Some(a.as_str()), Some(a.as_str())), "{first}");
    let second = caller.api("GET", &format!("/api/calls?limit=1&after={}", enc(a))).json();
    assert_eq!((second["calls"][0]["id"].as_str(), second["calls"].as_array().map(Vec::len)), (Some(b.as_str()), Some(1)), "{second}");

    // Cancel through the API: the continuation runs with Cancelled, the call is gone.
    let cancelled = caller.api("POST", &format!("/api/calls/cancel?id={}", enc(&slow)));
    assert_eq!((cancelled.status, cancelled.json()), (200, json!({ "call": null })), "{}", cancelled.body);
    let ran: Vec<(String, Value)> = caller.continuations().into_iter().filter(|(tag, _)| tag == "slow").collect();
    assert_eq!(ran, [("slow".to_owned(), json!({ "Err": { "kind": "cancelled" } }))]);
    assert!(!caller.pending().contains(&slow) && state(&slow).is_none(), "gone");
    assert_eq!(caller.api("POST", &format!("/api/calls/cancel?id={}", enc(&slow))).status, 404, "no such call any more");
    assert_eq!(caller.api("POST", "/api/calls/cancel?id=no-such-call").status, 404);
    // A cancel whose continuation fails: 500 with the call as it is (its result stays in).
    let failed = caller.api("POST", &format!("/api/calls/cancel?id={}", enc(&failing)));
    assert_eq!((failed.status, failed.json()["call"]["state"].as_str()), (500, Some("delivering")), "{}", failed.body);
    assert!(failed.json()["error"].as_str().is_some_and(|e| e.contains("fails on purpose")), "{}", failed.body);
    // The form of the page: sent back to the page, two levels up.
    let other = caller.slow_call("k2", "slow2");
    let form = caller.board("POST", "/api/calls/cancel", &[("authorization", &bearer()), ("sec-fetch-site", "same-origin"), ("content-type", "application/x-www-form-urlencoded")], Some(&format!("id={}&back=status%3Ddead", enc(&other))));
    assert_eq!((form.status, form.location.as_deref()), (303, Some("../../?status=dead")));
    assert!(!caller.pending().contains(&other));
    // Boards without `Board::calls` (the AlarmsDO's) have no such routes, and no section.
    let obj = Obj::new("board-no-calls");
    assert_eq!(obj.api("GET", "/api/calls").status, 404);
    assert_eq!(obj.api("POST", "/api/calls/cancel?id=x").status, 404);
    assert!(!obj.api("GET", "/").body.contains("Pending calls"));
}

#[test]
fn call_routes_answer_401_without_the_token_and_refuse_cross_site_cancels() {
    let caller = Caller::new("board-calls-guard");
    let id = caller.slow_call("k", "victim");
    for (method, path) in [("GET", "/api/calls".to_owned()), ("GET", "/api/calls?limit=100".to_owned()), ("POST", format!("/api/calls/cancel?id={}", enc(&id)))] {
        for auth in [None, Some("Bearer wrong"), Some(TOKEN)] {
            let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().chain([("sec-fetch-site", "same-origin")]).collect();
            let a = caller.board(method, &path, &headers, (method == "POST").then_some(""));
            assert_eq!(a.status, 401, "{method} board{path} with {auth:?}: {}", a.body);
            assert!(!a.body.contains(&id), "a refused request reads nothing: {}", a.body);
        }
    }
    let auth = bearer();
    for headers in [vec![("sec-fetch-site", "cross-site")], vec![("sec-fetch-site", "same-site")], vec![("origin", "http://evil.example")], vec![("origin", "null")]] {
        let headers: Vec<(&str, &str)> = headers.into_iter().chain([("authorization", auth.as_str()), ("content-type", "application/x-www-form-urlencoded")]).collect();
        let a = caller.board("POST", "/api/calls/cancel", &headers, Some(&format!("id={}", enc(&id))));
        assert_eq!(a.status, 403, "{headers:?}: {}", a.body);
    }
    assert_eq!(caller.pending(), std::slice::from_ref(&id), "still pending");
    assert!(caller.continuations().is_empty(), "no continuation ran");
    assert_eq!(caller.listed()[0]["state"], "awaiting");
}

#[test]
fn hostile_strings_in_a_calls_operation_and_target_come_back_inert() {
    let caller = Caller::new("board-calls-hostile");
    let ids: Vec<String> = HOSTILE.iter().enumerate().map(|(i, h)| caller.call(&format!("{h}-{}", caller.remote), json!({ "type": "slow_count", "key": h, "ms": 60_000 }), &format!("h{i}"), 0)).collect();
    let page = caller.api("GET", "/");
    assert_eq!(page.status, 200);
    for id in &ids {
        assert!(page.body.contains(&format!(r#"data-id="{id}""#)), "{id} listed: {}", page.body);
    }
    assert_inert(&page.body);
    assert!(page.body.contains("rtl\\u{202e}exe.txt"), "the override shows as what it is: {}", page.body);
    for (_, escaped) in ATTRIBUTE_PAYLOADS {
        assert!(page.body.contains(escaped), "{escaped}");
    }
    // JSON carries the strings exactly, as JSON.
    let listed = caller.listed();
    assert_eq!(listed.len(), HOSTILE.len(), "{listed:?}");
    for (id, h) in ids.iter().zip(HOSTILE) {
        let c = listed.iter().find(|c| c["id"] == id.as_str()).unwrap_or_else(|| panic!("{id}: {listed:?}"));
        assert_eq!(c["object"].as_str(), Some(format!("{h}-{}", caller.remote).as_str()), "{c}");
        let preview: Value = serde_json::from_str(c["operation_preview"].as_str().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {c}"));
        assert_eq!(preview["op"]["key"], h, "{c}");
    }
}

/// Standard base64 (for a Basic login).
fn base64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &c)| n | u32::from(c) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}
