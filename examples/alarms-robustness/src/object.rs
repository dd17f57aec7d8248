//! The Durable Object: schedules tasks with lumenize-alarms on request (or with a baseline
//! of `src/baselines.rs`), records every firing in its own table, and reports.

use std::cell::{Cell, OnceCell};
use std::time::Duration;

use lumenize_alarms::{abort_on_panic, Alarms, Panic, Filter, Options, RetryPolicy, Scheduled, Status, When};
use serde::{Deserialize, Serialize};
use worker::*;

use crate::api::{DeadTask, Firing, FiringsPage, ScheduleReply, ScheduleRequest, Scheduler, StatusReply};
use crate::baselines::{self, SchedulerOf};

/// The tasks of this experiment. Every handler records its firing first; `n` numbers the
/// tasks of one object (the driver chooses it), so the driver can tell which one fired.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Task {
    /// Succeeds.
    Fire {
        /// The task's number.
        n: u32,
    },
    /// Fails (returns `Err`) on its first `k` attempts, then succeeds.
    FailFirst {
        /// The task's number.
        n: u32,
        /// How many attempts fail.
        k: u32,
    },
    /// Panics on every attempt: retried per its policy, then kept dead.
    Panic {
        /// The task's number.
        n: u32,
    },
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS firings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, task_id TEXT NOT NULL,
    scheduled_ms INTEGER NOT NULL, due_ms INTEGER NOT NULL, fired_ms INTEGER NOT NULL,
    attempt INTEGER NOT NULL, outcome TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS panics (at_ms INTEGER NOT NULL, message TEXT NOT NULL);
";

/// Most firings one page returns.
const MAX_PAGE: i64 = 5_000;

/// The Durable Object of the experiment.
#[durable_object]
pub struct RobustnessDO {
    state: State,
    /// lumenize-alarms, or a baseline (`src/baselines.rs`).
    scheduler: SchedulerOf,
    /// lumenize-alarms. A user's object opens it in `new`; this one opens it at the first
    /// event that needs it, so that an object running a baseline never creates its table.
    alarms: OnceCell<Alarms<Task>>,
    /// Whether this instance has created its tables ([`SCHEMA`]): once per instance, not at
    /// every event (two `CREATE TABLE IF NOT EXISTS` statements per request were part of the
    /// example's fixed cost per request). `DELETE storage` drops them and clears it.
    schema: Cell<bool>,
}

pub(crate) fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

/// One number out of a query such as `SELECT COUNT(*) AS v ...`.
pub(crate) fn scalar(sql: &SqlStorage, query: &str) -> Result<i64> {
    #[derive(Deserialize)]
    struct V {
        v: i64,
    }
    let rows: Vec<V> = sql.exec(query, None)?.to_array()?;
    Ok(rows.first().map_or(0, |r| r.v))
}

impl RobustnessDO {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// Creates the tables of [`SCHEMA`] at the instance's first event.
    fn ensure_schema(&self) -> Result<()> {
        if !self.schema.get() {
            self.sql().exec(SCHEMA, None)?;
            self.schema.set(true);
        }
        Ok(())
    }

    /// Runs one task: records the firing, then does what the task says.
    fn handle(&self, task: Task, info: &Scheduled) -> std::result::Result<(), String> {
        let (n, outcome) = match task {
            Task::Fire { n } => (n, Ok(())),
            Task::FailFirst { n, k } if info.attempts <= k => (n, Err(format!("planned failure {} of {k}", info.attempts))),
            Task::FailFirst { n, .. } => (n, Ok(())),
            Task::Panic { n } => {
                self.record(n, info, "panic")?;
                panic!("planned panic in task {n}");
            }
        };
        self.record(n, info, if outcome.is_ok() { "ok" } else { "err" })?;
        outcome
    }

    fn record(&self, n: u32, info: &Scheduled, outcome: &str) -> std::result::Result<(), String> {
        record_firing(&self.sql(), n, &info.id, info.tick_ms, info.due_ms, info.attempts, outcome)
    }

    fn alarms(&self) -> Result<&Alarms<Task>> {
        if let Some(alarms) = self.alarms.get() {
            return Ok(alarms);
        }
        let alarms = Alarms::open(&self.state);
        alarms.ready()?;
        Ok(self.alarms.get_or_init(|| alarms))
    }

    async fn schedule(&self, alarms: &Alarms<Task>, r: ScheduleRequest) -> Result<ScheduleReply> {
        let mut retry = r.attempts.map_or_else(RetryPolicy::default, RetryPolicy::attempts);
        if let Some(ms) = r.backoff_ms {
            let backoff = Duration::from_millis(ms);
            retry = retry.backoff(backoff, backoff * 8);
        }
        let options = Options::default().retry(retry);
        let storage = self.state.storage();
        let mut alarm = if r.trace_alarm { storage.get_alarm().await? } else { None };
        let mut alarm_changes = 0;
        let changes_before = scalar(&self.sql(), "SELECT total_changes() AS v")?;
        let started_ms = now_ms();
        let task = |i: u32| {
            let n = r.first + i;
            let task = match (r.panic_n, r.fail_first) {
                (Some(p), _) if p == n => Task::Panic { n },
                (_, 0) => Task::Fire { n },
                (_, k) => Task::FailFirst { n, k },
            };
            (When::after(Duration::from_millis(r.delay_ms + u64::from(i) * r.stagger_ms)), task, options.clone())
        };
        if r.scheduler == Scheduler::LumenizeMany {
            // One statement for the whole burst (per megabyte of payloads), one alarm write.
            alarms.schedule_many_with((0..r.count).map(task)).await?;
            if r.trace_alarm {
                alarm_changes = u32::from(storage.get_alarm().await? != alarm);
            }
        } else {
            // Each `schedule_with` is one SQL write, durable when it returns. It writes the
            // native alarm only when the new task is due before the armed time: a burst in due
            // order moves it at most once.
            for i in 0..r.count {
                let (when, task, options) = task(i);
                alarms.schedule_with(when, task, options).await?;
                if r.trace_alarm {
                    let now = storage.get_alarm().await?;
                    alarm_changes += u32::from(now != alarm);
                    alarm = now;
                }
            }
        }
        Ok(ScheduleReply {
            first: r.first,
            count: r.count,
            started_ms,
            finished_ms: now_ms(),
            sql_rows_written: scalar(&self.sql(), "SELECT total_changes() AS v")? - changes_before,
            alarm_changes: r.trace_alarm.then_some(alarm_changes),
        })
    }

    fn firings(&self, url: &Url) -> Result<FiringsPage> {
        let query = |key: &str| url.query_pairs().find(|(k, _)| k == key).and_then(|(_, v)| v.parse::<i64>().ok());
        let after = query("after").unwrap_or(0);
        let limit = query("limit").unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        let firings: Vec<Firing> = self
            .sql()
            .exec(
                "SELECT seq, n, task_id, scheduled_ms, due_ms, fired_ms, attempt, outcome FROM firings WHERE seq > ? ORDER BY seq LIMIT ?",
                vec![after.into(), limit.into()],
            )?
            .to_array()?;
        let full = i64::try_from(firings.len()).unwrap_or(i64::MAX) == limit;
        let next = firings.last().filter(|_| full).map(|f| f.seq);
        Ok(FiringsPage { firings, next })
    }

    async fn status(&self, alarms: &Alarms<Task>) -> Result<StatusReply> {
        let sql = self.sql();
        let any = |status| alarms.list(&Filter::default().status(status).limit(1)).map(|t| !t.is_empty());
        let dead = alarms.list(&Filter::default().status(Status::Dead))?;
        Ok(StatusReply {
            firings: scalar(&sql, "SELECT COUNT(*) AS v FROM firings")?,
            succeeded: scalar(&sql, "SELECT COUNT(DISTINCT n) AS v FROM firings WHERE outcome = 'ok'")?,
            queued: any(Status::Pending)? || any(Status::Running)?,
            dead: dead.into_iter().map(|t| DeadTask { id: t.id, attempts: t.attempts, last_error: t.last_error }).collect(),
            panics: scalar(&sql, "SELECT COUNT(*) AS v FROM panics")?,
            alarm_ms: self.state.storage().get_alarm().await?,
        })
    }
}

/// Records one firing: the one statement every scheduler (lumenize-alarms and the
/// baselines) pays per firing.
pub(crate) fn record_firing(
    sql: &SqlStorage,
    n: u32,
    task_id: &str,
    scheduled_ms: i64,
    due_ms: i64,
    attempt: u32,
    outcome: &str,
) -> std::result::Result<(), String> {
    sql.exec(
        "INSERT INTO firings (n, task_id, scheduled_ms, due_ms, fired_ms, attempt, outcome) VALUES (?, ?, ?, ?, ?, ?, ?)",
        vec![
            i64::from(n).into(),
            task_id.into(),
            scheduled_ms.into(),
            due_ms.into(),
            now_ms().into(),
            i64::from(attempt).into(),
            outcome.into(),
        ],
    )
    .map(drop)
    .map_err(|e| e.to_string())
}

impl DurableObject for RobustnessDO {
    fn new(state: State, _env: Env) -> Self {
        Self { state, scheduler: SchedulerOf::default(), alarms: OnceCell::new(), schema: Cell::new(false) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        self.ensure_schema()?;
        let url = req.url()?;
        let (method, route) = (req.method(), url.path().rsplit('/').next().unwrap_or_default().to_owned());
        let schedule: Option<ScheduleRequest> = if (&method, route.as_str()) == (&Method::Post, "schedule") { Some(req.json().await?) } else { None };
        let scheduler = self.scheduler.get(&self.sql(), schedule.as_ref().map(|r| r.scheduler))?;
        // Opened at the first event (which re-arms an alarm the runtime lost: after a restart,
        // tasks that fell due while it was down run at once). Not in an object that uses a
        // baseline.
        let alarms = if scheduler.is_baseline() { None } else { Some(self.alarms()?) };
        match (method, route.as_str(), schedule, alarms) {
            (Method::Post, "schedule", Some(r), Some(alarms)) => Response::from_json(&self.schedule(alarms, r).await?),
            (Method::Post, "schedule", Some(r), None) => Response::from_json(&baselines::schedule(&self.state, scheduler, &r).await?),
            (Method::Get, "firings", ..) => Response::from_json(&self.firings(&url)?),
            // Nothing but what every request to the object pays (its fixed cost per request).
            (Method::Get, "ping", ..) => Response::ok("pong"),
            (Method::Post, "bench", ..) => Response::from_json(&crate::bench::run(&self.state, req.json().await?).await?),
            (Method::Get, "status", _, Some(alarms)) => Response::from_json(&self.status(alarms).await?),
            (Method::Get, "status", _, None) => Response::from_json(&baselines::status(&self.state, scheduler).await?),
            (Method::Delete, "storage", ..) => {
                self.state.storage().delete_all().await?;
                self.scheduler.forget();
                self.schema.set(false);
                Response::ok("cleared")
            }
            _ => Response::error("not found", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.ensure_schema()?;
        let scheduler = self.scheduler.get(&self.sql(), None)?;
        if scheduler.is_baseline() {
            baselines::alarm(&self.state, scheduler).await?;
            return Response::ok("ran");
        }
        // `run_due` already survives a panicking handler: it records the attempt as failed
        // and resets the object, and the runtime retries the alarm. Running it under
        // `abort_on_panic` of our own adds a row to `panics` before that reset, so the report
        // can count the panics of this object's handlers (not those of other objects, which
        // only cut this run short).
        let sql = self.sql();
        let on_panic = move |panic: &Panic<'_>| {
            if panic.here {
                let _ = sql.exec("INSERT INTO panics (at_ms, message) VALUES (?, ?)", vec![now_ms().into(), panic.message.into()]);
            }
        };
        abort_on_panic(&self.state, on_panic, self.alarms()?.run_due(async |task, info| self.handle(task, &info))).await?;
        Response::ok("ran")
    }
}

/// `/<object>/<route>` goes to the `RobustnessDO` named `<object>`; `/` says what this is.
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let path = req.path();
    match path.trim_matches('/').split_once('/') {
        Some((object, _route)) if !object.is_empty() => {
            env.durable_object("ROBUSTNESS")?.id_from_name(object)?.get_stub()?.fetch_with_request(req).await
        }
        _ if path == "/" => Response::ok("alarms-robustness: POST /<object>/schedule, GET /<object>/status; see the README"),
        _ => Response::error("not found", 404),
    }
}
