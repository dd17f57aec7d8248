//! `call-alarm-delay`: what does sending a lumenize-call through the alarm cost, against
//! sending it at once, against a plain `stub.fetch` with or without the writes a durable
//! call needs?
//!
//! A client (the driver, `cargo run -p lumenize-driver -- call-alarm-delay`) opens a
//! WebSocket to `OriginDO` and sends one message per operation:
//!
//! ```json
//! {"action": "test-call", "mode": "alarm", "id": 17}
//! ```
//!
//! `OriginDO` calls `RemoteDO` ("test-instance"), which echoes the id. When the result is back,
//! the origin answers on the socket with `{"type": "call-complete", "id": 17}`, or
//! `{"type": "call-error", "id": 17, "error": "..."}`. The client times each operation from
//! send to answer on its own clock (inside the runtime, `Date.now()` only moves across I/O).
//!
//! | mode | what `OriginDO` does |
//! | --- | --- |
//! | `alarm` | `calls.call(..)` with [`Dispatch::Alarm`]: a zero-delay lumenize-alarms task sends it from the next native alarm |
//! | `direct` | `calls.call(..)` with [`Dispatch::Direct`]: sent at once, with a durable backstop task |
//! | `raw` | an awaited `stub.fetch` to the same `RemoteDO`: no record, no retry, no continuation (the floor) |
//! | `raw-durable` | `raw` plus the three writes a durable call needs, each committed before what follows it leaves the object: a row at the origin before sending, a row at the remote before it replies, a write at the origin before it reports completion (the durable floor) |
//!
//! With `"run_due_now": true` in the message, the origin runs its due tasks right after the
//! call through lumenize-alarms' test hook ([`Alarms::run_due_at`]) instead of waiting for
//! the native alarm: `alarm` then costs `direct` plus one task, without the alarm's delay
//! (the native alarm the call armed still fires, and finds nothing to run: `alarm-now`
//! pays its write and that empty invocation).
//!
//! The worker's routes: `GET /` says what this is; `/origin/<name>` (a WebSocket upgrade)
//! connects to the `OriginDO` called `<name>`.
//!
//! As an example of lumenize-call, this is the whole of it: `RemoteOp` names its reply type
//! ([`Operation`]); `Report`, the [`Continuation`] of each call, names `RemoteOp` and gets
//! its reply; `OriginDO` opens its [`Alarms`] and, from it, its [`Calls`] once, in `new`;
//! `call_with` sends; `alarm()` runs `run_due`, which runs the calls' tasks (this object has
//! none of its own). `RemoteDO` opens a [`Server`] and answers with `Server::serve` and a
//! [`Router`] (whose handler must return the reply type): no scheduler, no `alarm()`.
//!
//! [`Alarms::run_due_at`]: lumenize_alarms::Alarms::run_due_at

use std::convert::Infallible;

use lumenize_alarms::Alarms;
use lumenize_call::{CallError, CallOptions, Calls, Continuation, Ctx, Dispatch, Operation, Router, Server, Target};
use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::*;

/// The one `RemoteDO` every origin calls.
const REMOTE: &str = "test-instance";

/// How an operation reaches `RemoteDO`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `call()` with [`Dispatch::Alarm`].
    Alarm,
    /// `call()` with [`Dispatch::Direct`].
    Direct,
    /// A plain awaited `stub.fetch`.
    Raw,
    /// A plain awaited `stub.fetch` with a call's three durable writes.
    RawDurable,
}

/// A message from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum ClientMessage {
    /// Make one operation in `mode`; answer with `call-complete` (or `call-error`) and `id`.
    TestCall {
        /// How to reach the remote.
        mode: Mode,
        /// The client's id of the operation, echoed back.
        id: u64,
        /// Run due tasks now, through the test hook, instead of waiting for the native alarm.
        #[serde(default)]
        run_due_now: bool,
    },
}

/// The operation `RemoteDO` applies: echo the id.
#[derive(Debug, Serialize, Deserialize)]
pub enum RemoteOp {
    /// Reply with `id`.
    Echo {
        /// The client's operation id.
        id: u64,
    },
}

impl Operation for RemoteOp {
    const NAME: &'static str = "remote-op";
    /// The id, echoed.
    type Reply = u64;
}

/// The continuation of every call: which operation to report on the socket.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    /// The client's operation id.
    pub id: u64,
}

/// Reports the result on the socket. It runs once per call, in whatever event brought the
/// result in (a fetch's reply, the alarm), so it finds the socket through the object's
/// state.
impl Continuation for Report {
    type Op = RemoteOp;
    const NAME: &'static str = "report";

    async fn on_reply(self, ctx: Ctx, reply: std::result::Result<u64, CallError>) -> Result<()> {
        let message = match reply {
            Ok(echo) if echo == self.id => completed(self.id),
            Ok(echo) => failed(self.id, format!("echoed {echo}")),
            Err(e) => failed(self.id, e),
        };
        send_all(&ctx.state, &message)
    }
}

/// `OriginDO`'s own tasks: none. Its scheduler runs the calls' tasks.
#[derive(Debug, Serialize, Deserialize)]
pub enum Task {}

fn now_ms() -> i64 {
    i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX)
}

/// An operation id as SQLite stores it.
fn sql_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let path = req.path();
    match path.trim_matches('/').split_once('/') {
        Some(("origin", name)) if !name.is_empty() => {
            env.durable_object("ORIGIN")?.id_from_name(name)?.get_stub()?.fetch_with_request(req).await
        }
        _ if path == "/" => Response::ok("call-alarm-delay: open a WebSocket on /origin/<name>; see the README"),
        _ => Response::error("not found", 404),
    }
}

/// Sends `message` to every client socket of the origin (the driver opens one per origin).
/// Works after hibernation too: the runtime keeps the sockets, the object finds them again.
fn send_all(state: &State, message: &serde_json::Value) -> Result<()> {
    for socket in state.get_websockets() {
        socket.send(message)?;
    }
    Ok(())
}

fn completed(id: u64) -> serde_json::Value {
    json!({ "type": "call-complete", "id": id })
}

fn failed(id: u64, error: impl std::fmt::Display) -> serde_json::Value {
    json!({ "type": "call-error", "id": id, "error": error.to_string() })
}

/// The object that makes the calls and reports them on its WebSocket.
#[durable_object]
pub struct OriginDO {
    state: State,
    env: Env,
    alarms: Alarms<Task>,
    calls: Calls<(Report,)>,
}

impl OriginDO {
    /// One operation. Its answer comes from the continuation (`alarm`, `direct`) or from
    /// here once the fetch is back (`raw`, `raw-durable`).
    async fn test_call(&self, mode: Mode, id: u64, run_due_now: bool) -> Result<()> {
        let dispatch = match mode {
            Mode::Alarm => Dispatch::Alarm,
            Mode::Direct => Dispatch::Direct,
            Mode::Raw => return self.raw_call(id).await,
            Mode::RawDurable => return self.raw_durable_call(id).await,
        };
        let options = CallOptions::default().dispatch(dispatch);
        self.calls.call_with(Target::named("REMOTE", REMOTE), &RemoteOp::Echo { id }, Report { id }, options).await?;
        if run_due_now {
            // The test hook: run what is due now without waiting for the native alarm.
            self.alarms.run_due_at(now_ms(), async |task, _| -> std::result::Result<(), Infallible> { match task {} }).await?;
        }
        Ok(())
    }

    /// The floor: a plain awaited `stub.fetch`, nothing stored, nothing retried.
    async fn raw_call(&self, id: u64) -> Result<()> {
        let echo = self.fetch_remote("/raw", id).await?;
        send_all(&self.state, &echoed(id, &echo))
    }

    /// The durable floor: `raw` plus the writes a durable call makes, each with nothing
    /// awaited between it and what follows it, so that the runtime holds what follows until
    /// it is committed (as it does for a call): a row here before the request leaves, a row
    /// at the remote before its answer leaves (`/raw-durable`), a write here before the
    /// completion is reported. No retry, no continuation, no alarm.
    async fn raw_durable_call(&self, id: u64) -> Result<()> {
        let sql = self.state.storage().sql();
        sql.exec("INSERT OR REPLACE INTO raw_calls (id, sent_ms) VALUES (?, ?)", vec![sql_id(id).into(), now_ms().into()])?;
        let echo = self.fetch_remote("/raw-durable", id).await?;
        sql.exec("DELETE FROM raw_calls WHERE id = ?", vec![sql_id(id).into()])?;
        send_all(&self.state, &echoed(id, &echo))
    }

    /// POSTs `id` to `RemoteDO`'s `path`; its answer.
    async fn fetch_remote(&self, path: &str, id: u64) -> Result<String> {
        let stub = self.env.durable_object("REMOTE")?.id_from_name(REMOTE)?.get_stub()?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(id.to_string().into()));
        let mut response = stub.fetch_with_request(Request::new_with_init(&format!("https://remote{path}"), &init)?).await?;
        response.text().await
    }
}

/// Creates a table of the durable floor (`raw-durable`), once per instance: its writes then
/// cost what they cost, and no more. Should it fail, the floor's first write reports why.
fn raw_table(state: &State, create: &str) {
    if let Err(e) = state.storage().sql().exec(create, None) {
        console_error!("call-alarm-delay: {create}: {e}");
    }
}

/// What to report for a raw operation `id` whose answer was `echo`.
fn echoed(id: u64, echo: &str) -> serde_json::Value {
    if echo == id.to_string() {
        completed(id)
    } else {
        failed(id, format!("raw echo {echo:?}"))
    }
}

impl DurableObject for OriginDO {
    fn new(state: State, env: Env) -> Self {
        raw_table(&state, "CREATE TABLE IF NOT EXISTS raw_calls (id INTEGER PRIMARY KEY, sent_ms INTEGER)");
        let alarms = Alarms::open(&state);
        let calls = Calls::open(&alarms, &env);
        Self { state, env, alarms, calls }
    }

    /// Accepts a hibernatable WebSocket: the object may be evicted between messages.
    async fn fetch(&self, req: Request) -> Result<Response> {
        if req.headers().get("upgrade")?.as_deref() != Some("websocket") {
            return Response::error("expected a WebSocket upgrade", 426);
        }
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        Response::from_websocket(pair.client)
    }

    async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        let WebSocketIncomingMessage::String(text) = message else {
            return ws.send(&json!({ "type": "error", "error": "send JSON text" }));
        };
        let ClientMessage::TestCall { mode, id, run_due_now } = match serde_json::from_str(&text) {
            Ok(message) => message,
            Err(e) => return ws.send(&json!({ "type": "error", "error": format!("bad message: {e}") })),
        };
        if let Err(e) = self.test_call(mode, id, run_due_now).await {
            ws.send(&failed(id, e))?;
        }
        Ok(())
    }

    async fn websocket_close(&self, _ws: WebSocket, _code: usize, _reason: String, _clean: bool) -> Result<()> {
        Ok(())
    }

    async fn websocket_error(&self, _ws: WebSocket, _error: Error) -> Result<()> {
        Ok(())
    }

    /// The native alarm runs the due call tasks: `alarm`-mode dispatches, backstops.
    async fn alarm(&self) -> Result<Response> {
        self.alarms.run_due(async |task, _| -> std::result::Result<(), Infallible> { match task {} }).await?;
        Response::ok("ran")
    }
}

/// The object that is called: it echoes.
#[durable_object]
pub struct RemoteDO {
    state: State,
    server: Server,
}

impl DurableObject for RemoteDO {
    fn new(state: State, env: Env) -> Self {
        raw_table(&state, "CREATE TABLE IF NOT EXISTS raw_served (id INTEGER PRIMARY KEY, at_ms INTEGER)");
        Self { server: Server::open(&state, &env), state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match req.path().as_str() {
            "/raw" => Response::ok(req.text().await?),
            // One row, committed before the answer leaves (nothing awaited in between).
            "/raw-durable" => {
                let body = req.text().await?;
                let id = body.parse::<i64>().map_err(|e| Error::RustError(format!("not an id: {e}")))?;
                let sql = self.state.storage().sql();
                sql.exec("INSERT OR REPLACE INTO raw_served (id, at_ms) VALUES (?, ?)", vec![id.into(), now_ms().into()])?;
                Response::ok(body)
            }
            // The compiler checks that the handler returns RemoteOp::Reply.
            _ => {
                let router = Router::new().route(async |op: RemoteOp| match op {
                    RemoteOp::Echo { id } => Ok::<_, Infallible>(id),
                });
                Ok(self.server.serve(req, router).await?)
            }
        }
    }
}
