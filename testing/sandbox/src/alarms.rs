//! `AlarmsDO`: lumenize-alarms over HTTP, its whole public surface, for black-box tests.
//! Every firing is recorded in a `fired` table, every native alarm invocation (failed ones
//! included) in a `runs` table, and every lifecycle event (`Alarms::on_event`) in an `events`
//! table, which the tests read back; task kinds exercise success, failure, panic,
//! self-rescheduling, deferring, spawning and cancelling others.
//!
//! Routes (under `/alarms/<object-name>/`, bodies and answers in JSON). Numbers cross as
//! JSON: milliseconds of a duration as `u64` (so `u64::MAX` reaches the library), times as
//! `i64`.
//! - `schedule`: `{when, task, id?, keep_existing?, attempts?, backoff_ms?, retry?, missed?,
//!   burst?}` → the stored task (read back with `get`), or 400 with the library's error text.
//!   `when` is one of `{after_ms: u64}`, `{at_ms: i64}`, `{cron: expr}`, `{cron_in: {expr,
//!   zone}}` (`When::cron_in`, the `timezone` feature is on), `{every_ms: u64}`. `attempts`
//!   and `backoff_ms` are the short form of a policy (backoff doubling, capped at 8 times
//!   it); `retry: {max_attempts?, initial_backoff_ms?, max_backoff_ms?, factor?}` sets every
//!   field of a `RetryPolicy` (defaults those of `RetryPolicy::default()`). `missed`:
//!   `"skip"` or `"burst"` (`burst: true` is the same as `"burst"`).
//! - `schedule_raw`: the same with any JSON as the task (a payload `Task` may not decode).
//! - `schedule_many`: `{tasks: [<schedule body>, ..]}`, one `schedule_many_with` (explicit
//!   ids and options per task; duplicate ids in one batch included) → their ids in order.
//! - `burst`: `{n, label, delay_ms?, at_ms?, from?, many?}` schedules `n` `Record` tasks
//!   labelled `<label>-<from + i>` in one request, one `schedule` each or (`many`) one
//!   `schedule_many` → their ids in order.
//! - `fired`: every recorded firing, in order. `runs`: every native alarm invocation with its
//!   `RunReport`, or (`error`) why `run_due` failed. `events`: every lifecycle event, in
//!   order, as `{kind, task_id, detail}`.
//! - `get {id}`, `list {kind?, status?, due_from?, due_before?, limit?}` (a `Filter`; `limit`
//!   a `u64`, saturated to `usize`), `cancel {id}`, `requeue {id}`.
//! - `pause {id}`, `resume {id}`, `run_now {id}` → the task as stored after it, or 400 with
//!   the library's error text. `requeue_dead {kind?, status?, due_from?, due_before?,
//!   limit?}` (a `Filter`, as `list` takes it) → how many were requeued. `counts` → the
//!   `Counts` by status.
//! - `defer {id, at_ms}`: `Alarms::defer` from outside a handler (the `defer` task calls it
//!   from inside one).
//! - `run_at {now_ms}`: the test hook `run_due_at`, runs what is due at `now_ms` → the
//!   `RunReport`.
//! - `alarm`: the native alarm time (`getAlarm`), or null. `lose_alarm`: deletes it behind
//!   the scheduler's back. `batch_limit`: the library's `DEFAULT_BATCH_LIMIT`, which
//!   `alarm()` uses unless `set_batch_limit {limit}` (a `u64`, saturated to `usize`) set
//!   another for this instance of the object (until the runtime restarts).
//! - `brick {id}`: stores, straight in the scheduler's table, a task due at
//!   9999-12-31 (what a release that accepted such times stored, and then could never arm).
//! - `poison {id, column}`: stores, straight in the scheduler's table, a due task whose
//!   `column` (`due_ms` or `max_backoff_ms`) holds a REAL (`now + 0.5`, or 2^63 as stored
//!   by a release that let `Duration::MAX` through): a row that does not decode.
//!
//! - `board/...`: lumenize-board (`Board::serve`, first thing in `fetch`), behind the
//!   token `BOARD_TOKEN` of `wrangler.toml`.
//!
//! A body that does not decode answers 400 with the reason, as a user's worker would.

use std::time::Duration;

use lumenize_alarms::core::Event;
use lumenize_alarms::{Alarms, Filter, Kind, MissedTicks, Options, RetryPolicy, Scheduled, Status, When};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::*;

/// What the sandbox schedules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Task {
    /// Records its firing.
    Record { label: String },
    /// Records, then fails while this label has been recorded at most `times` times in all
    /// (so the count survives a requeue, which resets the task's attempts).
    Fail { label: String, times: u32 },
    /// Records, then panics, every attempt.
    Panic { label: String },
    /// Records, then reschedules its own id as a `Record` `delay_ms` later.
    Reschedule { label: String, delay_ms: u64 },
    /// Records, then schedules `count` zero-delay `Record` tasks.
    Spawn { label: String, count: u32 },
    /// Records `<label>`; on its first attempt then waits `wait_ms` (long enough for a test
    /// to kill the runtime in the middle of the task); records `<label>-done`.
    Slow { label: String, wait_ms: u64 },
    /// Records, then cancels the task `id` (another task, or none: a cancel that removes
    /// nothing is no failure).
    Cancel { label: String, id: String },
    /// Records, then, while this label has been recorded at most `times` times, defers
    /// itself (`Alarms::defer`) to `at_ms`, or to `delay_ms` after its due time; a defer
    /// the library refuses fails the attempt with its error.
    Defer {
        label: String,
        times: u32,
        #[serde(default)]
        delay_ms: u64,
        #[serde(default)]
        at_ms: Option<i64>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum WhenReq {
    AfterMs(u64),
    AtMs(i64),
    Cron(String),
    CronIn { expr: String, zone: String },
    EveryMs(u64),
}

impl WhenReq {
    fn into_when(self) -> lumenize_alarms::Result<When> {
        match self {
            WhenReq::AfterMs(ms) => Ok(When::after(Duration::from_millis(ms))),
            WhenReq::AtMs(ms) => Ok(When::at_unix_ms(ms)),
            WhenReq::Cron(expr) => When::cron(&expr),
            WhenReq::CronIn { expr, zone } => When::cron_in(&expr, &zone),
            WhenReq::EveryMs(ms) => When::every(Duration::from_millis(ms)),
        }
    }
}

/// Every field of a `RetryPolicy`, durations in milliseconds as `u64`.
#[derive(Deserialize)]
struct RetryReq {
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    initial_backoff_ms: Option<u64>,
    #[serde(default)]
    max_backoff_ms: Option<u64>,
    #[serde(default)]
    factor: Option<u32>,
}

impl RetryReq {
    fn policy(&self) -> RetryPolicy {
        let default = RetryPolicy::default();
        let ms = |v: Option<u64>, d: i64| v.map_or(Duration::from_millis(u64::try_from(d).unwrap_or(0)), Duration::from_millis);
        RetryPolicy::attempts(self.max_attempts.unwrap_or(default.max_attempts))
            .backoff(ms(self.initial_backoff_ms, default.initial_backoff_ms), ms(self.max_backoff_ms, default.max_backoff_ms))
            .factor(self.factor.unwrap_or(default.factor))
    }
}

#[derive(Deserialize)]
struct ScheduleReq<P> {
    when: WhenReq,
    task: P,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    keep_existing: bool,
    #[serde(default)]
    attempts: Option<u32>,
    #[serde(default)]
    backoff_ms: Option<u64>,
    #[serde(default)]
    retry: Option<RetryReq>,
    #[serde(default)]
    missed: Option<MissedTicks>,
    #[serde(default)]
    burst: bool,
}

impl<P> ScheduleReq<P> {
    fn options(&self) -> Options {
        let mut opts = self.id.clone().map_or_else(Options::default, Options::id);
        if self.keep_existing {
            opts = opts.keep_existing();
        }
        if let Some(n) = self.attempts {
            let backoff = Duration::from_millis(self.backoff_ms.unwrap_or(100));
            opts = opts.retry(RetryPolicy::attempts(n).backoff(backoff, backoff.saturating_mul(8)));
        }
        if let Some(retry) = &self.retry {
            opts = opts.retry(retry.policy());
        }
        if self.burst {
            opts = opts.missed(MissedTicks::Burst);
        }
        if let Some(missed) = self.missed {
            opts = opts.missed(missed);
        }
        opts
    }
}

#[derive(Deserialize)]
struct ManyReq {
    tasks: Vec<ScheduleReq<Task>>,
}

#[derive(Deserialize)]
struct BurstReq {
    n: u32,
    label: String,
    /// Each task this long after it is scheduled (default 0)...
    #[serde(default)]
    delay_ms: u64,
    /// ...or all of them at this one absolute time.
    #[serde(default)]
    at_ms: Option<i64>,
    /// The first label number (to continue a burst in another request).
    #[serde(default)]
    from: u32,
    /// Store them with one `schedule_many`.
    #[serde(default)]
    many: bool,
}

#[derive(Deserialize)]
struct ListReq {
    kind: Option<Kind>,
    status: Option<Status>,
    #[serde(default)]
    due_from: Option<i64>,
    #[serde(default)]
    due_before: Option<i64>,
    #[serde(default)]
    limit: Option<u64>,
}

impl ListReq {
    fn filter(&self) -> Filter {
        let mut filter = Filter::default();
        (filter.kind, filter.status, filter.due_from, filter.due_before) = (self.kind, self.status, self.due_from, self.due_before);
        filter.limit = self.limit.map(saturate);
        filter
    }
}

#[derive(Deserialize)]
struct DeferReq {
    id: String,
    at_ms: i64,
}

#[derive(Deserialize)]
struct LimitReq {
    limit: u64,
}

#[derive(Deserialize)]
struct PoisonReq {
    id: String,
    column: String,
}

#[derive(Deserialize)]
struct IdReq {
    id: String,
}

#[derive(Deserialize)]
struct RunAtReq {
    now_ms: i64,
}

/// One recorded firing.
#[derive(Serialize, Deserialize)]
struct Fired {
    label: String,
    task_id: String,
    due_ms: i64,
    fired_ms: i64,
    attempt: i64,
}

/// One native alarm invocation and what its `run_due` reported, or why it failed.
#[derive(Serialize, Deserialize)]
struct Run {
    at_ms: i64,
    succeeded: i64,
    retrying: i64,
    died: i64,
    interrupted: i64,
    more_due: i64,
    error: Option<String>,
}

/// One lifecycle event, as the `on_event` hook saw it.
#[derive(Serialize, Deserialize)]
struct Recorded {
    kind: String,
    task_id: String,
    /// The event's other fields, as JSON.
    detail: String,
}

impl Recorded {
    fn of(event: &Event<'_>) -> Recorded {
        let (kind, task, detail) = match event {
            Event::Scheduled(task) => ("scheduled", Some(*task), serde_json::json!({ "due_ms": task.due_ms })),
            Event::Started { task, lateness_ms } => ("started", Some(*task), serde_json::json!({ "attempt": task.attempts, "lateness_ms": lateness_ms })),
            Event::Succeeded { task, next_ms } => ("succeeded", Some(*task), serde_json::json!({ "next_ms": next_ms })),
            Event::Retrying { task, error, next_ms } => ("retrying", Some(*task), serde_json::json!({ "error": error, "next_ms": next_ms })),
            Event::Dead { task, error } => ("dead", Some(*task), serde_json::json!({ "error": error })),
            Event::CutShort { task, lateness_ms } => ("cut_short", Some(*task), serde_json::json!({ "lateness_ms": lateness_ms })),
            other => ("other", None, serde_json::json!({ "debug": format!("{other:?}") })),
        };
        Recorded { kind: kind.to_owned(), task_id: task.map(|t| t.id.clone()).unwrap_or_default(), detail: detail.to_string() }
    }
}

/// `n` as a `usize`, saturated (on wasm32 a `usize` is 32 bits).
fn saturate(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A SQLite-backed object using lumenize-alarms.
#[durable_object]
pub struct AlarmsDO {
    state: State,
    alarms: Alarms<Task>,
    /// The same scheduler seen with another task type, to store payloads `Task` does not
    /// decode (as if the type changed since).
    raw: Alarms<serde_json::Value>,
    /// lumenize-board, mounted at `board/` behind the `BOARD_TOKEN` var.
    board: lumenize_board::Board<Task>,
}

impl AlarmsDO {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn record(&self, label: &str, info: &Scheduled) -> Result<()> {
        let now = Date::now().as_millis() as i64;
        self.sql().exec(
            "INSERT INTO fired (label, task_id, due_ms, fired_ms, attempt) VALUES (?, ?, ?, ?, ?)",
            vec![label.into(), info.id.as_str().into(), info.due_ms.into(), now.into(), i64::from(info.attempts).into()],
        )?;
        Ok(())
    }

    fn times_recorded(&self, label: &str) -> Result<i64> {
        #[derive(Deserialize)]
        struct Count {
            n: i64,
        }
        let rows: Vec<Count> = self.sql().exec("SELECT COUNT(*) AS n FROM fired WHERE label = ?", vec![label.into()])?.to_array()?;
        Ok(rows.first().map_or(0, |c| c.n))
    }

    async fn handle(&self, task: Task, info: Scheduled) -> Result<()> {
        let alarms = &self.alarms;
        match task {
            Task::Record { label } => self.record(&label, &info),
            Task::Fail { label, times } => {
                self.record(&label, &info)?;
                let n = self.times_recorded(&label)?;
                if n <= i64::from(times) {
                    return Err(Error::RustError(format!("planned failure {n} of {times}")));
                }
                Ok(())
            }
            Task::Panic { label } => {
                self.record(&label, &info)?;
                panic!("planned panic in task {}", info.id);
            }
            Task::Reschedule { label, delay_ms } => {
                self.record(&label, &info)?;
                let again = Task::Record { label: format!("{label}-again") };
                alarms.schedule_with(When::after(Duration::from_millis(delay_ms)), again, Options::id(info.id)).await?;
                Ok(())
            }
            Task::Slow { label, wait_ms } => {
                self.record(&label, &info)?;
                if info.attempts == 1 {
                    Delay::from(Duration::from_millis(wait_ms)).await;
                }
                self.record(&format!("{label}-done"), &info)
            }
            Task::Cancel { label, id } => {
                self.record(&label, &info)?;
                alarms.cancel(&id)?;
                Ok(())
            }
            Task::Defer { label, times, delay_ms, at_ms } => {
                self.record(&label, &info)?;
                if self.times_recorded(&label)? <= i64::from(times) {
                    let at = at_ms.unwrap_or_else(|| info.due_ms.saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX)));
                    alarms.defer(&info.id, at).map_err(|e| Error::RustError(format!("defer refused: {e}")))?;
                }
                Ok(())
            }
            Task::Spawn { label, count } => {
                self.record(&label, &info)?;
                for i in 0..count {
                    alarms.schedule(When::after(Duration::ZERO), Task::Record { label: format!("{label}-{i}") }).await?;
                }
                Ok(())
            }
        }
    }
}

fn json<T: Serialize>(value: &T) -> Result<Response> {
    Response::from_json(value)
}

/// The task an operation answered, or 400 with the library's error.
fn answer(result: lumenize_alarms::Result<Scheduled>) -> Result<Response> {
    match result {
        Ok(task) => json(&task),
        Err(e) => lib_error(e),
    }
}

fn lib_error(e: lumenize_alarms::Error) -> Result<Response> {
    Response::error(e.to_string(), 400)
}

/// The request's JSON body, or a 400 that says why not.
pub(crate) async fn body<T: DeserializeOwned>(req: &mut Request) -> std::result::Result<T, Result<Response>> {
    let text = req.text().await.map_err(Err)?;
    serde_json::from_str(&text).map_err(|e| Response::error(format!("bad request body: {e}"), 400))
}

/// `body`, or return its 400.
macro_rules! body {
    ($req:expr) => {
        match body(&mut $req).await {
            Ok(value) => value,
            Err(answer) => return answer,
        }
    };
}

impl DurableObject for AlarmsDO {
    fn new(state: State, env: Env) -> Self {
        state
            .storage()
            .sql()
            .exec(
                "CREATE TABLE IF NOT EXISTS fired (seq INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT, task_id TEXT, due_ms INTEGER, fired_ms INTEGER, attempt INTEGER)",
                None,
            )
            .expect("create fired table");
        state
            .storage()
            .sql()
            .exec(
                "CREATE TABLE IF NOT EXISTS runs (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER, succeeded INTEGER, retrying INTEGER, died INTEGER, interrupted INTEGER, more_due INTEGER, error TEXT)",
                None,
            )
            .expect("create runs table");
        state
            .storage()
            .sql()
            .exec("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, task_id TEXT, detail TEXT)", None)
            .expect("create events table");
        let alarms = Alarms::open(&state);
        let token = env.var("BOARD_TOKEN").map(|v| v.to_string()).unwrap_or_default();
        let board = lumenize_board::Board::new(&alarms, lumenize_board::Auth::bearer(token));
        let sql = state.storage().sql();
        let seen = board.clone();
        alarms.on_event(move |event| {
            seen.record(event);
            let e = Recorded::of(event);
            // Best effort: an event that cannot be recorded must not fail the step it reports.
            let _ = sql.exec("INSERT INTO events (kind, task_id, detail) VALUES (?, ?, ?)", vec![e.kind.into(), e.task_id.into(), e.detail.into()]);
        });
        let raw = Alarms::open(&state);
        Self { state, alarms, raw, board }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if let Some(response) = self.board.serve(&req).await? {
            return Ok(response);
        }
        let path = req.path();
        let alarms = &self.alarms;
        match path.trim_start_matches('/') {
            "schedule" => {
                let r: ScheduleReq<Task> = body!(req);
                let opts = r.options();
                match r.when.into_when() {
                    // The stored task, as the tests look at it.
                    Ok(when) => match alarms.schedule_with(when, r.task, opts).await {
                        Ok(id) => json(&alarms.get(&id)?),
                        Err(e) => lib_error(e),
                    },
                    Err(e) => lib_error(e),
                }
            }
            // A payload of another shape than `Task`, as if the task type changed since.
            "schedule_raw" => {
                let r: ScheduleReq<serde_json::Value> = body!(req);
                let opts = r.options();
                match r.when.into_when() {
                    Ok(when) => match self.raw.schedule_with(when, r.task, opts).await {
                        Ok(id) => json(&alarms.get(&id)?),
                        Err(e) => lib_error(e),
                    },
                    Err(e) => lib_error(e),
                }
            }
            "burst" => {
                let r: BurstReq = body!(req);
                let when = || match r.at_ms {
                    Some(at) => When::at_unix_ms(at),
                    None => When::after(Duration::from_millis(r.delay_ms)),
                };
                let tasks = (r.from..r.from + r.n).map(|i| (when(), Task::Record { label: format!("{}-{i}", r.label) }));
                let ids = if r.many {
                    alarms.schedule_many(tasks).await
                } else {
                    let mut ids = Vec::with_capacity(r.n as usize);
                    for (when, task) in tasks {
                        match alarms.schedule(when, task).await {
                            Ok(id) => ids.push(id),
                            Err(e) => return lib_error(e),
                        }
                    }
                    Ok(ids)
                };
                match ids {
                    Ok(ids) => json(&ids),
                    Err(e) => lib_error(e),
                }
            }
            "schedule_many" => {
                let r: ManyReq = body!(req);
                let mut tasks = Vec::with_capacity(r.tasks.len());
                for t in r.tasks {
                    let opts = t.options();
                    match t.when.into_when() {
                        Ok(when) => tasks.push((when, t.task, opts)),
                        Err(e) => return lib_error(e),
                    }
                }
                match alarms.schedule_many_with(tasks).await {
                    Ok(ids) => json(&ids),
                    Err(e) => lib_error(e),
                }
            }
            "events" => {
                let events: Vec<Recorded> = self.sql().exec("SELECT kind, task_id, detail FROM events ORDER BY seq", None)?.to_array()?;
                json(&events)
            }
            "fired" => {
                let fired: Vec<Fired> = self.sql().exec("SELECT label, task_id, due_ms, fired_ms, attempt FROM fired ORDER BY seq", None)?.to_array()?;
                json(&fired)
            }
            "runs" => {
                let runs: Vec<Run> = self
                    .sql()
                    .exec("SELECT at_ms, succeeded, retrying, died, interrupted, more_due, error FROM runs ORDER BY seq", None)?
                    .to_array()?;
                json(&runs)
            }
            "get" => {
                let r: IdReq = body!(req);
                json(&alarms.get(&r.id)?)
            }
            "list" => {
                let r: ListReq = body!(req);
                json(&alarms.list(&r.filter())?)
            }
            "cancel" => {
                let r: IdReq = body!(req);
                json(&alarms.cancel(&r.id)?)
            }
            "requeue" => {
                let r: IdReq = body!(req);
                answer(alarms.requeue(&r.id).await)
            }
            "pause" => {
                let r: IdReq = body!(req);
                answer(alarms.pause(&r.id))
            }
            "resume" => {
                let r: IdReq = body!(req);
                answer(alarms.resume(&r.id).await)
            }
            "run_now" => {
                let r: IdReq = body!(req);
                answer(alarms.run_now(&r.id).await)
            }
            "requeue_dead" => {
                let r: ListReq = body!(req);
                match alarms.requeue_dead(&r.filter()).await {
                    Ok(n) => json(&n),
                    Err(e) => lib_error(e),
                }
            }
            "counts" => json(&alarms.counts()?),
            "defer" => {
                let r: DeferReq = body!(req);
                match alarms.defer(&r.id, r.at_ms) {
                    Ok(()) => json(&"deferred"),
                    Err(e) => lib_error(e),
                }
            }
            "run_at" => {
                let r: RunAtReq = body!(req);
                match alarms.run_due_at(r.now_ms, async |task, info| self.handle(task, info).await).await {
                    Ok(report) => json(&report),
                    Err(e) => lib_error(e),
                }
            }
            "alarm" => json(&self.state.storage().get_alarm().await?),
            // The native alarm lost behind the scheduler's back, as when the runtime gives up
            // retrying a failed alarm.
            "lose_alarm" => json(&self.state.storage().delete_alarm().await?),
            "batch_limit" => json(&lumenize_alarms::DEFAULT_BATCH_LIMIT),
            "set_batch_limit" => {
                let r: LimitReq = body!(req);
                // The handle's clones share its settings: this sets the limit `alarm()` uses.
                let _ = alarms.clone().batch_limit(saturate(r.limit));
                json(&"set")
            }
            "brick" => {
                let r: IdReq = body!(req);
                self.sql().exec(
                    "INSERT INTO _lumenize_alarms (id, kind, due_ms, tick_ms, payload, status, attempts, max_attempts, backoff_ms, \
                     backoff_factor, max_backoff_ms, missed, created_ms) \
                     VALUES (?, 'once', 253402300799999, 253402300799999, '{\"type\":\"record\",\"label\":\"bricked\"}', 'pending', 0, 3, 1000, 2, 300000, 'skip', 0)",
                    vec![r.id.into()],
                )?;
                json(&"stored")
            }
            "poison" => {
                let r: PoisonReq = body!(req);
                let now = Date::now().as_millis() as i64;
                #[allow(clippy::cast_precision_loss)] // a time is far below 2^53
                let due: SqlStorageValue = match r.column.as_str() {
                    "due_ms" => (now as f64 + 0.5).into(),
                    "max_backoff_ms" => now.into(),
                    _ => return Response::error(format!("no poison for column {:?}: due_ms or max_backoff_ms", r.column), 400),
                };
                let max_backoff: SqlStorageValue = if r.column == "max_backoff_ms" { 9_223_372_036_854_775_807_f64.into() } else { 300_000_i64.into() };
                self.sql().exec(
                    "INSERT INTO _lumenize_alarms (id, kind, due_ms, tick_ms, payload, status, attempts, max_attempts, backoff_ms, \
                     backoff_factor, max_backoff_ms, missed, created_ms) \
                     VALUES (?, 'once', ?, ?, '{\"type\":\"record\",\"label\":\"poisoned\"}', 'pending', 0, 3, 1000, 2, ?, 'skip', 0)",
                    vec![r.id.into(), due.clone(), due, max_backoff],
                )?;
                json(&"stored")
            }
            _ => Response::error("not found", 404),
        }
    }

    /// Runs what is due and records the invocation, failed ones too (then fails as before,
    /// so that the runtime's own retry of a failed alarm is what the tests see).
    async fn alarm(&self) -> Result<Response> {
        let result = self.alarms.run_due(async |task, info| self.handle(task, info).await).await;
        let report = result.as_ref().cloned().unwrap_or_default();
        let error = result.as_ref().err().map(ToString::to_string);
        self.sql().exec(
            "INSERT INTO runs (at_ms, succeeded, retrying, died, interrupted, more_due, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![
                (Date::now().as_millis() as i64).into(),
                i64::from(report.succeeded).into(),
                i64::from(report.retrying).into(),
                i64::from(report.died).into(),
                i64::from(report.interrupted).into(),
                i64::from(report.more_due).into(),
                error.map_or(SqlStorageValue::Null, SqlStorageValue::from),
            ],
        )?;
        result?;
        Response::ok("ran")
    }
}

/// A key-value backed object (no SQLite), to check that opening never panics and every
/// handle says why it cannot work, as a typed error, on first use: `open` asks the scheduler,
/// `schedule` schedules, `call` makes a call, anything else is served as a call.
#[durable_object]
pub struct KvDO {
    alarms: Alarms<Task>,
    calls: lumenize_call::Calls<(crate::calls::Resume,)>,
    server: lumenize_call::Server,
}

impl DurableObject for KvDO {
    fn new(state: State, env: Env) -> Self {
        let alarms = Alarms::open(&state);
        let calls = lumenize_call::Calls::open(&alarms, &env);
        Self { alarms, calls, server: lumenize_call::Server::open(&state, &env) }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let outcome = match req.path().rsplit('/').next().unwrap_or_default() {
            "open" => self.alarms.ready().map_err(|e| e.to_string()),
            "schedule" => self.alarms.schedule(When::after(Duration::ZERO), Task::Record { label: "kv".into() }).await.map(|_| ()).map_err(|e| e.to_string()),
            "call" => {
                let op = crate::calls::Op::Echo { value: 1.into() };
                let then = crate::calls::Resume::tagged("kv");
                self.calls.call(lumenize_call::Target::named("REMOTE", "remote"), &op, then).await.map(|_| ()).map_err(|e| e.to_string())
            }
            _ => return Ok(self.server.serve(req, lumenize_call::Router::new()).await?),
        };
        match outcome {
            Ok(()) => Response::ok("opened"),
            Err(e) => Response::error(e, 500),
        }
    }
}
