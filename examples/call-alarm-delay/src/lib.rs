//! `call-alarm-delay`: what does sending a lumenize-call through the alarm cost, against
//! sending it at once, against a plain `stub.fetch`?
//!
//! A client (the driver, `cargo run -p lumenize-driver -- call-alarm-delay`) opens a
//! WebSocket to `OriginDO` and sends one message per operation:
//!
//! ```json
//! {"action": "test-call", "mode": "alarm", "id": 17}
//! ```
//!
//! `OriginDO` calls `RemoteDO` ("test-instance"), which echoes. When the result is back,
//! the origin answers on the socket with `{"type": "call-complete", "id": 17}`, or
//! `{"type": "call-error", "id": 17, "error": "..."}`. The client times each operation from
//! send to answer on its own clock (inside the runtime, `Date.now()` only moves across I/O).
//!
//! | mode | what `OriginDO` does |
//! | --- | --- |
//! | `alarm` | `calls.call(..)` with [`Dispatch::Alarm`]: a zero-delay lumenize-alarms task sends it from the next native alarm |
//! | `direct` | `calls.call(..)` with [`Dispatch::Direct`]: sent at once, with a durable backstop task |
//! | `raw` | an awaited `stub.fetch` to the same `RemoteDO`: no record, no retry, no continuation (the floor) |
//!
//! With `"run_due_now": true` in the message, the origin runs its due tasks right after the
//! call through lumenize-alarms' test hook ([`Alarms::run_due_at`]) instead of waiting for
//! the native alarm: `alarm` then costs `direct` plus one task, without the alarm's delay.
//!
//! The worker's routes: `GET /` says what this is; `/origin/<name>` (a WebSocket upgrade)
//! connects to the `OriginDO` called `<name>`.
//!
//! [`Alarms::run_due_at`]: lumenize_alarms::Alarms::run_due_at

use lumenize_call::{CallOptions, CallTask, Calls, Ctx, Dispatch, Target};
use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::*;

/// The one `RemoteDO` every origin calls.
const REMOTE: &str = "test-instance";

/// How an operation reaches `RemoteDO`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `call()` with [`Dispatch::Alarm`].
    Alarm,
    /// `call()` with [`Dispatch::Direct`].
    Direct,
    /// A plain awaited `stub.fetch`.
    Raw,
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

/// The continuation: which operation to report on the socket.
#[derive(Debug, Serialize, Deserialize)]
pub struct Resume {
    /// The client's operation id.
    pub id: u64,
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
}

impl OriginDO {
    /// Opens the object's calls with the continuation: report the result on the socket.
    async fn calls(&self) -> Result<Calls<CallTask>> {
        let calls = Calls::<CallTask>::new(&self.state, &self.env).await?;
        Ok(calls.on_result(|ctx: Ctx, resume: Resume, result| async move {
            let message = match result {
                Ok(_echo) => completed(resume.id),
                Err(e) => failed(resume.id, e),
            };
            send_all(&ctx.state, &message)
        }))
    }

    /// One operation. Its answer comes from the continuation (`alarm`, `direct`) or from
    /// here once the fetch is back (`raw`).
    async fn test_call(&self, mode: Mode, id: u64, run_due_now: bool) -> Result<()> {
        let dispatch = match mode {
            Mode::Alarm => Dispatch::Alarm,
            Mode::Direct => Dispatch::Direct,
            Mode::Raw => return self.raw_call(id).await,
        };
        let calls = self.calls().await?;
        let options = CallOptions::default().dispatch(dispatch);
        calls.call(Target::named("REMOTE", REMOTE), &RemoteOp::Echo { id }, &Resume { id }, options).await?;
        if run_due_now {
            // The test hook: run what is due now without waiting for the native alarm.
            let now = i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX);
            calls
                .alarms()
                .run_due_at(now, |task, info| {
                    let calls = calls.clone();
                    async move { calls.run(task, &info).await }
                })
                .await?;
        }
        Ok(())
    }

    /// The floor: a plain awaited `stub.fetch`, nothing stored, nothing retried.
    async fn raw_call(&self, id: u64) -> Result<()> {
        let stub = self.env.durable_object("REMOTE")?.id_from_name(REMOTE)?.get_stub()?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(id.to_string().into()));
        let mut response = stub.fetch_with_request(Request::new_with_init("https://remote/raw", &init)?).await?;
        let echo = response.text().await?;
        let message = if echo == id.to_string() { completed(id) } else { failed(id, format!("raw echo {echo:?}")) };
        send_all(&self.state, &message)
    }
}

impl DurableObject for OriginDO {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
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
        self.calls().await?.run_due().await?;
        Response::ok("ran")
    }
}

/// The object that is called: it echoes.
#[durable_object]
pub struct RemoteDO {
    state: State,
    env: Env,
}

impl DurableObject for RemoteDO {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if req.path() == "/raw" {
            return Response::ok(req.text().await?);
        }
        let calls = Calls::<CallTask>::new(&self.state, &self.env).await?;
        let echo = |op: RemoteOp| async move { Ok::<_, std::convert::Infallible>(op) };
        Ok(calls.serve(req, echo).await?)
    }

    /// Cleans up the stored results of served calls.
    async fn alarm(&self) -> Result<Response> {
        Calls::<CallTask>::new(&self.state, &self.env).await?.run_due().await?;
        Response::ok("ran")
    }
}
