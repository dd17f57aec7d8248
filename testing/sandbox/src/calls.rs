//! `CallerDO` and `RemoteDO`: lumenize-call over HTTP. The caller records every
//! continuation in a `continuations` table and every invocation of its `alarm()` in
//! `alarm_runs`; the remote counts the side effects of its operations in an `effects`
//! table, every application of an operation in `applied`, and every call request it
//! receives (with its answer's status) in `received`, so tests can check "exactly once" on
//! both sides, replay captured requests, and see what a call leaves armed. The caller
//! mounts lumenize-board with its calls at `board/`, behind the token `BOARD_TOKEN`.

use std::time::Duration;

use lumenize_alarms::{Alarms, Filter};
use lumenize_call::{CallError, CallOptions, Calls, Continuation, Ctx, Dispatch, Operation, Router, Server, Target};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::*;

/// What the remote can be asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// Reply with the value.
    Echo { value: Value },
    /// Add one to the counter `key` (a side effect) and reply with its new value.
    Count { key: String },
    /// Return `Err(message)`.
    Fail { message: String },
    /// Panic.
    Panic,
    /// Wait `ms`, then add one to the counter `key` and reply with its new value.
    SlowCount { key: String, ms: u64 },
    /// Reply with a string of `bytes` bytes (a large reply from a small operation).
    Big { bytes: usize },
}

/// Replies are JSON values: the operations reply with different types.
impl Operation for Op {
    const NAME: &'static str = "op";
    type Reply = Value;
}

/// A second operation, with its own reply type: `a + b`, or an error on overflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Add(i64, i64);

impl Operation for Add {
    const NAME: &'static str = "add";
    type Reply = i64;
}

impl Op {
    fn kind(&self) -> &'static str {
        match self {
            Op::Echo { .. } => "echo",
            Op::Count { .. } => "count",
            Op::Fail { .. } => "fail",
            Op::Panic => "panic",
            Op::SlowCount { .. } => "slow_count",
            Op::Big { .. } => "big",
        }
    }
}

/// The continuation: which request made the call, and how often the continuation should
/// fail before it succeeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resume {
    tag: String,
    #[serde(default)]
    fail_times: u32,
    /// Padding that makes the continuation value large.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pad: String,
}

/// The caller's own tasks: none (lumenize-call's are the library's, which its handle runs
/// before the handler sees anything).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Task {}

/// The continuation of an [`Add`]: which request made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summed {
    tag: String,
}

impl Continuation for Summed {
    type Op = Add;
    const NAME: &'static str = "summed";

    async fn on_reply(self, ctx: Ctx, reply: std::result::Result<i64, CallError>) -> Result<()> {
        record(&ctx, self.tag, &reply)
    }
}

#[derive(Deserialize)]
struct CallReq {
    /// `{"name": ...}` or `{"id": ...}` of a RemoteDO, or another binding.
    #[serde(default = "remote_binding")]
    binding: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    object_id: Option<String>,
    op: Op,
    tag: String,
    #[serde(default)]
    fail_times: u32,
    dispatch: Dispatch,
    /// `CallOptions::timeout` in ms (any `u64`, `u64::MAX` included).
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// `CallOptions::timeout(Duration::MAX)` (overrides `timeout_ms`).
    #[serde(default)]
    timeout_max: bool,
    /// Make this many calls (tags `<tag>-<i>`), all in this one request.
    #[serde(default)]
    count: Option<u32>,
    /// Pad the continuation value with this many bytes.
    #[serde(default)]
    resume_pad: usize,
    /// Back-date the call by this many ms, as if it had been made that long ago (a caller
    /// that was down meanwhile), through the test hook `CallOptions::issued_at`.
    #[serde(default)]
    age_ms: Option<i64>,
    /// The test hook `CallOptions::issued_at` with this Unix time in ms, as given (any
    /// `i64`; overrides `age_ms`).
    #[serde(default)]
    issued_ms: Option<i64>,
}

fn remote_binding() -> String {
    "REMOTE".into()
}

fn json_response(value: &impl Serialize) -> Result<Response> {
    Response::from_json(value)
}

/// The request's JSON body as `T`; `Err` holds the answer to give instead: 400 with the
/// reason for a body that does not decode.
async fn decode<T: DeserializeOwned>(req: &mut Request) -> std::result::Result<T, Result<Response>> {
    let text = req.text().await.map_err(Err)?;
    serde_json::from_str(&text).map_err(|e| Response::error(format!("bad request body: {e}"), 400))
}

fn lib_error(e: impl std::fmt::Display) -> Result<Response> {
    Response::error(e.to_string(), 400)
}

/// The test hook `sql`: runs the statement posted as a JSON string on the object's SQLite
/// (tests poison a stored row with it, as a bug or an older release could have written it)
/// and answers the rows it wrote; 400 with SQLite's message if it fails.
async fn sql_route(state: &State, req: &mut Request) -> Result<Response> {
    let statement: String = match decode(req).await {
        Ok(statement) => statement,
        Err(answer) => return answer,
    };
    match state.storage().sql().exec(&statement, None) {
        Ok(cursor) => json_response(&cursor.rows_written()),
        Err(e) => lib_error(e),
    }
}

/// A Durable Object that makes calls.
#[durable_object]
pub struct CallerDO {
    state: State,
    alarms: Alarms<Task>,
    calls: Calls<(Resume, Summed)>,
    /// lumenize-board with the pending calls (`Board::calls`), at `board/`.
    board: lumenize_board::Board<Task>,
}

fn now_ms() -> i64 {
    i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX)
}

/// The continuation of an [`Op`]: records the result in the same SQLite, with no await
/// (the record and the call's completion commit together), after failing on purpose
/// `fail_times` times.
impl Continuation for Resume {
    type Op = Op;
    const NAME: &'static str = "resume";

    async fn on_reply(self, ctx: Ctx, reply: std::result::Result<Value, CallError>) -> Result<()> {
        let sql = ctx.state.storage().sql();
        #[derive(Deserialize)]
        struct Tries {
            n: u32,
        }
        sql.exec("INSERT INTO tries (tag, n) VALUES (?, 1) ON CONFLICT (tag) DO UPDATE SET n = n + 1", vec![self.tag.as_str().into()])?;
        let tries: Vec<Tries> = sql.exec("SELECT n FROM tries WHERE tag = ?", vec![self.tag.as_str().into()])?.to_array()?;
        if tries.first().map_or(0, |t| t.n) <= self.fail_times {
            return Err(Error::RustError(format!("continuation {} fails on purpose", self.tag)));
        }
        record(&ctx, self.tag, &reply)
    }
}

impl Resume {
    /// A continuation value with this tag, that does not fail.
    pub fn tagged(tag: &str) -> Self {
        Resume { tag: tag.to_owned(), fail_times: 0, pad: String::new() }
    }
}

/// Records a continuation's result under its tag.
fn record(ctx: &Ctx, tag: String, reply: &std::result::Result<impl Serialize, CallError>) -> Result<()> {
    let result = serde_json::to_string(reply).map_err(|e| Error::RustError(e.to_string()))?;
    ctx.state.storage().sql().exec("INSERT INTO continuations (tag, result, at_ms) VALUES (?, ?, ?)", vec![tag.into(), result.into(), now_ms().into()])?;
    Ok(())
}

impl DurableObject for CallerDO {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for create in [
            "CREATE TABLE IF NOT EXISTS continuations (seq INTEGER PRIMARY KEY AUTOINCREMENT, tag TEXT, result TEXT, at_ms INTEGER)",
            "CREATE TABLE IF NOT EXISTS tries (tag TEXT PRIMARY KEY, n INTEGER)",
            "CREATE TABLE IF NOT EXISTS alarm_runs (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER, started INTEGER)",
        ] {
            sql.exec(create, None).expect("create caller tables");
        }
        let alarms = Alarms::open(&state);
        let calls = Calls::open(&alarms, &env);
        let token = env.var("BOARD_TOKEN").map(|v| v.to_string()).unwrap_or_default();
        let board = lumenize_board::Board::new(&alarms, lumenize_board::Auth::bearer(token)).calls(&calls);
        Self { state, alarms, calls, board }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if let Some(response) = self.board.serve(&req).await? {
            return Ok(response);
        }
        match req.path().trim_start_matches('/') {
            "call" => {
                let r: CallReq = match decode(&mut req).await {
                    Ok(r) => r,
                    Err(answer) => return answer,
                };
                let target = match (r.name, r.object_id) {
                    (_, Some(id)) => Target::id(r.binding, id),
                    (name, None) => Target::named(r.binding, name.unwrap_or_else(|| "remote".into())),
                };
                let mut options = CallOptions::default().dispatch(r.dispatch);
                if let Some(ms) = r.timeout_ms {
                    options = options.timeout(Duration::from_millis(ms));
                }
                if r.timeout_max {
                    options = options.timeout(Duration::MAX);
                }
                if let Some(age) = r.age_ms {
                    options = options.issued_at(now_ms().saturating_sub(age));
                }
                if let Some(at) = r.issued_ms {
                    options = options.issued_at(at);
                }
                let mut made = Vec::new();
                for i in 0..r.count.unwrap_or(1) {
                    let tag = if r.count.is_some() { format!("{}-{i}", r.tag) } else { r.tag.clone() };
                    let op = match &r.op {
                        Op::Count { key } if r.count.is_some() => Op::Count { key: format!("{key}-{i}") },
                        Op::SlowCount { key, ms } if r.count.is_some() => Op::SlowCount { key: format!("{key}-{i}"), ms: *ms },
                        op => op.clone(),
                    };
                    let resume = Resume { tag, fail_times: r.fail_times, pad: "r".repeat(r.resume_pad) };
                    match self.calls.call_with(target.clone(), &op, resume, options).await {
                        Ok(id) => made.push(json!({ "id": id, "task": self.alarms.get(id.as_str())? })),
                        Err(e) => return lib_error(e),
                    }
                }
                json_response(&made)
            }
            "continuations" => {
                #[derive(Serialize, Deserialize)]
                struct Row {
                    tag: String,
                    result: String,
                    at_ms: i64,
                }
                let rows: Vec<Row> =
                    self.state.storage().sql().exec("SELECT tag, result, at_ms FROM continuations ORDER BY seq", None)?.to_array()?;
                let rows: Vec<Value> = rows
                    .into_iter()
                    .map(|r| json!({ "tag": r.tag, "result": serde_json::from_str::<Value>(&r.result).unwrap_or(Value::Null), "at_ms": r.at_ms }))
                    .collect();
                json_response(&rows)
            }
            // A call of the second operation, `{"tag": .., "name": .., "a": .., "b": ..}`, to the
            // RemoteDO called `name`.
            "add" => {
                #[derive(Deserialize)]
                struct AddReq {
                    tag: String,
                    name: String,
                    a: i64,
                    b: i64,
                }
                let r: AddReq = match decode(&mut req).await {
                    Ok(r) => r,
                    Err(answer) => return answer,
                };
                match self.calls.call(Target::named("REMOTE", r.name), &Add(r.a, r.b), Summed { tag: r.tag }).await {
                    Ok(id) => json_response(&id),
                    Err(e) => lib_error(e),
                }
            }
            "pending" => json_response(&self.calls.pending()?),
            "tasks" => json_response(&self.alarms.list(&Filter::default())?),
            // The native alarm's time (Unix ms), or null.
            "alarm" => json_response(&self.state.storage().get_alarm().await?),
            // When `alarm()` ran (Unix ms), and how many tasks it started.
            "alarm_runs" => {
                #[derive(Serialize, Deserialize)]
                struct Run {
                    at_ms: i64,
                    started: Option<i64>,
                }
                let rows: Vec<Run> =
                    self.state.storage().sql().exec("SELECT at_ms, started FROM alarm_runs ORDER BY seq", None)?.to_array()?;
                json_response(&rows)
            }
            "sql" if req.method() == Method::Post => sql_route(&self.state, &mut req).await,
            "cancel" => {
                let id: lumenize_call::CallId = match decode(&mut req).await {
                    Ok(id) => id,
                    Err(answer) => return answer,
                };
                match self.calls.cancel(&id).await {
                    Ok(found) => json_response(&found),
                    Err(e) => lib_error(e),
                }
            }
            _ => Response::error("unknown caller route", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let sql = self.state.storage().sql();
        sql.exec("INSERT INTO alarm_runs (at_ms) VALUES (?)", vec![now_ms().into()])?;
        let report = self
            .alarms
            .run_due(async |task: Task, _| -> std::result::Result<(), String> { match task {} })
            .await?;
        let started = i64::from(report.started);
        sql.exec("UPDATE alarm_runs SET started = ? WHERE seq = (SELECT MAX(seq) FROM alarm_runs)", vec![started.into()])?;
        json_response(&report)
    }
}

/// A Durable Object that serves calls, and has no scheduler and no `alarm()`. Its routes
/// other than `effects`, `applied`, `received`, `id`, `sql`, `reopen`, `results` and
/// `sql_limits` all go to [`Server::serve`], as a catch-all would forward them.
#[durable_object]
pub struct RemoteDO {
    state: State,
    env: Env,
    /// Replaced by the test hook `reopen`, as a new isolate would open it.
    server: std::cell::RefCell<Server>,
}

impl RemoteDO {
    fn count(&self, key: &str) -> Result<i64> {
        #[derive(Deserialize)]
        struct N {
            n: i64,
        }
        let sql = self.state.storage().sql();
        sql.exec("INSERT INTO effects (key, n) VALUES (?, 1) ON CONFLICT (key) DO UPDATE SET n = n + 1", vec![key.into()])?;
        let rows: Vec<N> = sql.exec("SELECT n FROM effects WHERE key = ?", vec![key.into()])?.to_array()?;
        Ok(rows.first().map_or(0, |r| r.n))
    }

    async fn apply(&self, op: Op) -> std::result::Result<Value, String> {
        let sql = self.state.storage().sql();
        let counted = sql.exec("INSERT INTO applied (op, n) VALUES (?, 1) ON CONFLICT (op) DO UPDATE SET n = n + 1", vec![op.kind().into()]);
        counted.map_err(|e| e.to_string())?;
        match op {
            Op::Echo { value } => Ok(value),
            Op::Count { key } => self.count(&key).map(Value::from).map_err(|e| e.to_string()),
            Op::Fail { message } => Err(message),
            Op::Panic => panic!("the remote panics on purpose"),
            Op::SlowCount { key, ms } => {
                Delay::from(Duration::from_millis(ms)).await;
                self.count(&key).map(Value::from).map_err(|e| e.to_string())
            }
            Op::Big { bytes } => Ok(Value::String("b".repeat(bytes))),
        }
    }

    /// Hands a call request to [`Server::serve`], recording it (body and signature if the
    /// body is under 64 KiB, its size, and the status of the answer) so tests can count
    /// sends and replay a captured request.
    async fn serve(&self, mut req: Request) -> Result<Response> {
        let body = req.text().await?;
        let signature = req.headers().get("x-lumenize-signature")?;
        let mut init = RequestInit::new();
        init.with_method(req.method()).with_headers(req.headers().clone());
        if !body.is_empty() {
            init.with_body(Some(body.as_str().into()));
        }
        let inner = Request::new_with_init(req.url()?.as_ref(), &init)?;
        let router = Router::new().route(async |op: Op| self.apply(op).await).route(async |Add(a, b)| {
            let sql = self.state.storage().sql();
            sql.exec("INSERT INTO applied (op, n) VALUES ('add', 1) ON CONFLICT (op) DO UPDATE SET n = n + 1", None).map_err(|e| e.to_string())?;
            a.checked_add(b).ok_or_else(|| format!("{a} + {b} overflows"))
        });
        let server = self.server.borrow().clone();
        let response = server.serve(inner, router).await?;
        let kept = (body.len() <= 64 * 1024).then_some(body.as_str());
        let bytes = i64::try_from(body.len()).unwrap_or(i64::MAX);
        self.state.storage().sql().exec(
            "INSERT INTO received (bytes, body, signature, status) VALUES (?, ?, ?, ?)",
            vec![bytes.into(), kept.into(), signature.into(), i64::from(response.status_code()).into()],
        )?;
        Ok(response)
    }
}

/// The largest TEXT value, and the largest row of two equal TEXT columns, this object's
/// SQLite stores, found by bisection, with SQLite's refusal just past each.
fn sql_limits(sql: &SqlStorage) -> Result<Value> {
    sql.exec("CREATE TABLE IF NOT EXISTS _probe (a TEXT, b TEXT)", None)?;
    let fits = |a: usize, b: usize| -> std::result::Result<(), String> {
        let result = sql.exec("INSERT INTO _probe (a, b) VALUES (?, ?)", vec!["x".repeat(a).into(), "y".repeat(b).into()]);
        sql.exec("DELETE FROM _probe", None).map_err(|e| e.to_string())?;
        result.map(|_| ()).map_err(|e| e.to_string())
    };
    // Past any limit a Durable Object could have (a result of LIMIT - 1 means: no limit found).
    const LIMIT: usize = 8 << 20;
    // The largest n with ok(n), given ok(lo) and !ok(hi).
    let bisect = |mut lo: usize, mut hi: usize, ok: &dyn Fn(usize) -> bool| {
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if ok(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let text = bisect(0, LIMIT, &|n| fits(n, 0).is_ok());
    let half = bisect(0, LIMIT, &|n| fits(n, n).is_ok());
    let two_byte = bisect(0, LIMIT, &|n| {
        let ok = sql.exec("INSERT INTO _probe (a) VALUES (?)", vec!["é".repeat(n).into()]).is_ok();
        let _ = sql.exec("DELETE FROM _probe", None);
        ok
    });
    Ok(json!({
        "max_text_bytes": text,
        "text_refusal": fits(text + 1, 0).err(),
        "max_text_two_byte_chars": two_byte,
        "max_row_two_columns_each": half,
        "row_refusal": fits(half + 1, half + 1).err(),
    }))
}

impl DurableObject for RemoteDO {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for create in [
            "CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, n INTEGER)",
            "CREATE TABLE IF NOT EXISTS applied (op TEXT PRIMARY KEY, n INTEGER)",
            "CREATE TABLE IF NOT EXISTS received (seq INTEGER PRIMARY KEY AUTOINCREMENT, bytes INTEGER, body TEXT, signature TEXT, status INTEGER)",
        ] {
            sql.exec(create, None).expect("create remote tables");
        }
        let server = Server::open(&state, &env).into();
        Self { state, env, server }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match req.path().trim_start_matches('/') {
            // The test hook: open the server again, as a new isolate of this object would
            // (creating or migrating lumenize-call's tables, remembering nothing); answers
            // the schema version found.
            "reopen" if req.method() == Method::Post => {
                let server = Server::open(&self.state, &self.env);
                if let Err(e) = server.ready() {
                    return lib_error(e);
                }
                *self.server.borrow_mut() = server;
                #[derive(Serialize, Deserialize)]
                struct Version {
                    value: i64,
                }
                let rows: Vec<Version> =
                    self.state.storage().sql().exec("SELECT value FROM _lumenize_call_meta WHERE key = 'schema_version'", None)?.to_array()?;
                json_response(&rows.first().map(|v| v.value))
            }
            "effects" => {
                #[derive(Serialize, Deserialize)]
                struct Effect {
                    key: String,
                    n: i64,
                }
                let rows: Vec<Effect> = self.state.storage().sql().exec("SELECT key, n FROM effects ORDER BY key", None)?.to_array()?;
                json_response(&rows)
            }
            "applied" => {
                #[derive(Serialize, Deserialize)]
                struct Applied {
                    op: String,
                    n: i64,
                }
                let rows: Vec<Applied> = self.state.storage().sql().exec("SELECT op, n FROM applied ORDER BY op", None)?.to_array()?;
                json_response(&rows)
            }
            "received" => {
                #[derive(Serialize, Deserialize)]
                struct Received {
                    bytes: i64,
                    body: Option<String>,
                    signature: Option<String>,
                    status: i64,
                }
                let rows: Vec<Received> =
                    self.state.storage().sql().exec("SELECT bytes, body, signature, status FROM received ORDER BY seq", None)?.to_array()?;
                json_response(&rows)
            }
            "id" => Response::ok(self.state.id().to_string()),
            "sql" if req.method() == Method::Post => sql_route(&self.state, &mut req).await,
            "sql_limits" => json_response(&sql_limits(&self.state.storage().sql())?),
            "results" => {
                #[derive(Serialize, Deserialize)]
                struct Count {
                    n: i64,
                }
                let rows: Vec<Count> =
                    self.state.storage().sql().exec("SELECT COUNT(*) AS n FROM _lumenize_call_results", None)?.to_array()?;
                json_response(&rows.first().map_or(0, |r| r.n))
            }
            _ => self.serve(req).await,
        }
    }
}

