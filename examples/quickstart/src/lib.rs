//! lumenize quickstart: a Durable Object with durable tasks (lumenize-alarms) and a durable
//! call to another object (lumenize-call). `GET /start` schedules a task for now, a cron
//! task every second, and a call to `Echo`; `GET /log` shows what ran; `/board/` shows the
//! Greeter's tasks (lumenize-board, behind the token `BOARD_TOKEN`).

use std::convert::Infallible;
use std::time::Duration;

use lumenize_alarms::{Alarms, Options, When};
use lumenize_board::{Auth, Board};
use lumenize_call::{CallError, CallOptions, CallTask, Calls, Ctx, Operation, Server, Target};
use serde::{Deserialize, Serialize};
use worker::*;

/// The Greeter's tasks: its own, and lumenize-call's.
#[derive(Serialize, Deserialize)]
enum Task {
    Hello { to: String },
    Tick,
    Call(CallTask),
}

impl From<CallTask> for Task {
    fn from(task: CallTask) -> Self {
        Task::Call(task)
    }
}

/// What Echo serves, and what it replies.
#[derive(Serialize, Deserialize)]
struct Shout(String);

impl Operation for Shout {
    type Reply = String;
}

/// What the Greeter keeps of a call, to use when the reply comes back.
#[derive(Serialize, Deserialize)]
struct Resume {
    asked: String,
}

/// Appends a line to the Greeter's log (a table in its SQLite).
fn log(sql: &SqlStorage, line: &str) -> Result<()> {
    sql.exec("INSERT INTO log (line) VALUES (?)", vec![line.into()])?;
    Ok(())
}

/// The continuation: runs back in the Greeter once per call, with the reply or why none.
async fn on_reply(ctx: Ctx, resume: Resume, reply: std::result::Result<String, CallError>) -> Result<()> {
    let line = match reply {
        Ok(shouted) => format!("{} -> {shouted}", resume.asked),
        Err(e) => format!("{} failed: {e}", resume.asked),
    };
    log(&ctx.state.storage().sql(), &line)
}

#[durable_object]
pub struct Greeter {
    sql: SqlStorage,
    alarms: Alarms<Task>,
    calls: Calls<Task, Shout, Resume>,
    board: Board<Task>,
}

impl DurableObject for Greeter {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        sql.exec("CREATE TABLE IF NOT EXISTS log (line TEXT)", None).expect("create the log");
        let alarms = Alarms::open(&state).expect("a SQLite-backed class");
        let calls = Calls::open(&state, &env, alarms.clone(), on_reply).expect("LUMENIZE_CALL_SECRET is set");
        let board = Board::new(&alarms, Auth::bearer(env.secret("BOARD_TOKEN").map(|s| s.to_string()).unwrap_or_default()));
        Self { sql, alarms, calls, board }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        if let Some(response) = self.board.serve(&req).await? {
            return Ok(response);
        }
        match req.path().as_str() {
            "/start" => {
                self.alarms.schedule(When::after(Duration::ZERO), Task::Hello { to: "world".into() }).await?;
                self.alarms.schedule_with(When::cron("* * * * * *")?, Task::Tick, Options::id("tick")).await?;
                let echo = Target::named("ECHO", "echo");
                let resume = Resume { asked: "hello".into() };
                self.calls.call(echo, &Shout("hello".into()), resume, CallOptions::default()).await?;
                Response::ok("started")
            }
            "/log" => {
                #[derive(Serialize, Deserialize)]
                struct Line {
                    line: String,
                }
                let lines: Vec<Line> = self.sql.exec("SELECT line FROM log", None)?.to_array()?;
                Response::from_json(&lines.into_iter().map(|l| l.line).collect::<Vec<_>>())
            }
            _ => Response::ok("lumenize quickstart: GET /start, then GET /log"),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarms
            .run_due(async |task, info| match task {
                Task::Hello { to } => log(&self.sql, &format!("hello {to}")),
                Task::Tick => log(&self.sql, "tick"),
                Task::Call(task) => Ok(self.calls.run(task, &info).await?),
            })
            .await?;
        Response::ok("ran")
    }
}

#[durable_object]
pub struct Echo {
    alarms: Alarms<CallTask>,
    server: Server,
}

impl DurableObject for Echo {
    fn new(state: State, env: Env) -> Self {
        let alarms = Alarms::open(&state).expect("a SQLite-backed class");
        let server = Server::open(&state, &env, alarms.clone()).expect("LUMENIZE_CALL_SECRET is set");
        Self { alarms, server }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        Ok(self.server.serve(req, async |Shout(text)| Ok::<_, Infallible>(text.to_uppercase())).await?)
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarms.run_due(async |task, info| self.server.run(task, &info).await).await?;
        Response::ok("ran")
    }
}

/// Every request goes to the one Greeter.
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    env.durable_object("GREETER")?.id_from_name("greeter")?.get_stub()?.fetch_with_request(req).await
}
