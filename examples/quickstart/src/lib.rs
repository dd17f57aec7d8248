//! lumenize quickstart: a Durable Object with durable tasks (lumenize-alarms) and a durable
//! call to another object (lumenize-call). `GET /start` schedules a task for now, a cron
//! task every second, and a call to `Echo`; `GET /log` shows what ran; `/board/` shows the
//! Greeter's tasks and pending calls (lumenize-board, behind the token `BOARD_TOKEN`).

use std::convert::Infallible;
use std::time::Duration;

use lumenize_alarms::{Alarms, Options, When};
use lumenize_board::{Auth, Board};
use lumenize_call::{CallError, Calls, Continuation, Ctx, Operation, Router, Server, Target};
use serde::{Deserialize, Serialize};
use worker::*;

/// The Greeter's own tasks.
#[derive(Serialize, Deserialize)]
enum Task {
    Hello { to: String },
    Tick,
}

/// What Echo serves, and what it replies.
#[derive(Serialize, Deserialize)]
struct Shout(String);

impl Operation for Shout {
    const NAME: &'static str = "shout";
    type Reply = String;
}

/// What the Greeter keeps of a call to Echo; runs back here, once, with the reply.
#[derive(Serialize, Deserialize)]
struct Shouted {
    asked: String,
}

impl Continuation for Shouted {
    type Op = Shout;
    const NAME: &'static str = "shouted";

    async fn on_reply(self, ctx: Ctx, reply: std::result::Result<String, CallError>) -> Result<()> {
        let line = match reply {
            Ok(loud) => format!("{} -> {loud}", self.asked),
            Err(e) => format!("{} failed: {e}", self.asked),
        };
        log(&ctx.state.storage().sql(), &line)
    }
}

/// Appends a line to the Greeter's log (a table in its SQLite).
fn log(sql: &SqlStorage, line: &str) -> Result<()> {
    sql.exec("CREATE TABLE IF NOT EXISTS log (line TEXT)", None)?;
    sql.exec("INSERT INTO log (line) VALUES (?)", vec![line.into()])?;
    Ok(())
}

/// The Greeter's log.
fn lines(sql: &SqlStorage) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Line {
        line: String,
    }
    sql.exec("CREATE TABLE IF NOT EXISTS log (line TEXT)", None)?;
    let lines: Vec<Line> = sql.exec("SELECT line FROM log", None)?.to_array()?;
    Ok(lines.into_iter().map(|l| l.line).collect())
}

#[durable_object]
pub struct Greeter {
    state: State,
    alarms: Alarms<Task>,
    calls: Calls<(Shouted,)>,
    board: Board<Task>,
}

impl DurableObject for Greeter {
    fn new(state: State, env: Env) -> Self {
        let alarms = Alarms::open(&state);
        let calls = Calls::open(&alarms, &env);
        let board = Board::new(&alarms, Auth::bearer(env.secret("BOARD_TOKEN").map(|s| s.to_string()).unwrap_or_default())).calls(&calls);
        Self { state, alarms, calls, board }
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
                self.calls.call(echo, &Shout("hello".into()), Shouted { asked: "hello".into() }).await?;
                Response::ok("started")
            }
            "/log" => Response::from_json(&lines(&self.state.storage().sql())?),
            _ => Response::ok("lumenize quickstart: GET /start, then GET /log"),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        // Runs the due tasks: the calls' own first, then each of ours.
        self.alarms
            .run_due(async |task, _| match task {
                Task::Hello { to } => log(&self.state.storage().sql(), &format!("hello {to}")),
                Task::Tick => log(&self.state.storage().sql(), "tick"),
            })
            .await?;
        Response::ok("ran")
    }
}

#[durable_object]
pub struct Echo {
    server: Server,
}

impl DurableObject for Echo {
    fn new(state: State, env: Env) -> Self {
        Self { server: Server::open(&state, &env) }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let router = Router::new().route(async |Shout(text)| Ok::<_, Infallible>(text.to_uppercase()));
        Ok(self.server.serve(req, router).await?)
    }
}

/// Every request goes to the one Greeter.
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    env.durable_object("GREETER")?.id_from_name("greeter")?.get_stub()?.fetch_with_request(req).await
}
