//! The two baselines measured next to lumenize-alarms, in the same object class and the
//! same run: `native` (the one native alarm, no multiplexing) and `floor` (the smallest
//! honest hand-rolled multiplexer). An object uses one scheduler, chosen by its first
//! `schedule` request; its `alarm()` dispatches on it without touching the others' tables.
//!
//! Every scheduler records a firing with the same statement ([`record_firing`]), so the
//! comparison measures the schedulers, not the recording.

use std::cell::Cell;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::js_sys;
use worker::wasm_bindgen::JsValue;
use worker::*;

use crate::api::{ScheduleReply, ScheduleRequest, Scheduler, StatusReply};
use crate::object::{now_ms, record_firing, scalar};

/// Which scheduler an object uses. Its first `schedule` request stores it in a one-row
/// table; it is remembered in memory after the first read, so an event costs at most one
/// query per instance for it (and none once known).
#[derive(Debug, Default)]
pub(crate) struct SchedulerOf(Cell<Option<Scheduler>>);

impl SchedulerOf {
    /// The object's scheduler. `asked` is the one a `schedule` request names: stored if the
    /// object has none yet, refused if it differs. An object that never scheduled anything
    /// answers as a lumenize-alarms object (not remembered: its first request may choose).
    pub(crate) fn get(&self, sql: &SqlStorage, asked: Option<Scheduler>) -> Result<Scheduler> {
        let known = match self.0.get() {
            Some(known) => Some(known),
            None => {
                #[derive(Deserialize)]
                struct Row {
                    name: String,
                }
                sql.exec("CREATE TABLE IF NOT EXISTS scheduler (name TEXT NOT NULL)", None)?;
                let rows: Vec<Row> = sql.exec("SELECT name FROM scheduler", None)?.to_array()?;
                rows.first().map(|r| r.name.parse::<Scheduler>()).transpose().map_err(Error::RustError)?
            }
        };
        let scheduler = match (known, asked) {
            (Some(known), Some(asked)) if known != asked => {
                return Err(Error::RustError(format!("this object uses the {known} scheduler, not {asked}: use another object")));
            }
            (Some(known), _) => known,
            (None, Some(asked)) => {
                sql.exec("INSERT INTO scheduler (name) VALUES (?)", vec![asked.as_str().into()])?;
                asked
            }
            (None, None) => return Ok(Scheduler::Lumenize),
        };
        self.0.set(Some(scheduler));
        Ok(scheduler)
    }

    /// After the object's storage was deleted.
    pub(crate) fn forget(&self) {
        self.0.set(None);
    }
}

/// A baseline's task: its number, as the payload the floor stores.
#[derive(Serialize, Deserialize)]
struct Job {
    n: u32,
}

/// `POST schedule` for a baseline object: tasks `first .. first + count`, each due
/// `delay_ms + i * stagger_ms` after it is scheduled.
pub(crate) async fn schedule(state: &State, scheduler: Scheduler, r: &ScheduleRequest) -> Result<ScheduleReply> {
    if r.fail_first > 0 || r.panic_n.is_some() || r.attempts.is_some() || r.backoff_ms.is_some() {
        return Err(Error::RustError(format!("the {scheduler} baseline has no retries: no fail_first, panic_n, attempts or backoff_ms")));
    }
    let sql = state.storage().sql();
    let changes_before = scalar(&sql, "SELECT total_changes() AS v")?;
    let started_ms = now_ms();
    let due = |i: u32| now_ms() + i64::try_from(r.delay_ms + u64::from(i) * r.stagger_ms).unwrap_or(i64::MAX);
    let alarm_writes = match scheduler {
        Scheduler::Floor => {
            let floor = Floor::open(state)?;
            let armed = floor.armed().await?;
            let mut earliest = None;
            for i in 0..r.count {
                let due_ms = due(i);
                floor.insert(due_ms, &Job { n: r.first + i })?;
                earliest = Some(earliest.map_or(due_ms, |e: i64| e.min(due_ms)));
            }
            u32::from(floor.arm(armed, earliest).await?)
        }
        Scheduler::Native => {
            let native = Native::open(state)?;
            for i in 0..r.count {
                native.schedule(r.first + i, due(i)).await?;
            }
            r.count
        }
        Scheduler::Lumenize | Scheduler::LumenizeMany => return Err(Error::RustError("not a baseline".into())),
    };
    Ok(ScheduleReply {
        first: r.first,
        count: r.count,
        started_ms,
        finished_ms: now_ms(),
        sql_rows_written: scalar(&sql, "SELECT total_changes() AS v")? - changes_before,
        alarm_changes: r.trace_alarm.then_some(alarm_writes),
    })
}

/// `alarm()` of a baseline object: records each task that fires, exactly as the
/// lumenize-alarms handler of `src/object.rs` does (a task of the baselines fires once:
/// attempt 1, scheduled and due at the same time).
pub(crate) async fn alarm(state: &State, scheduler: Scheduler) -> Result<()> {
    let sql = state.storage().sql();
    let record = |n: u32, id: &str, due_ms: i64| record_firing(&sql, n, id, due_ms, due_ms, 1, "ok").map_err(Error::RustError);
    match scheduler {
        Scheduler::Floor => Floor::open(state)?.run_due(|id, due_ms, job: Job| record(job.n, &id.to_string(), due_ms)).await,
        Scheduler::Native => match Native::open(state)?.last()? {
            Some((n, due_ms)) => record(n, &n.to_string(), due_ms),
            None => Ok(()),
        },
        Scheduler::Lumenize | Scheduler::LumenizeMany => Err(Error::RustError("not a baseline".into())),
    }
}

/// `GET status` of a baseline object (no dead tasks: the baselines have no retries).
pub(crate) async fn status(state: &State, scheduler: Scheduler) -> Result<StatusReply> {
    let sql = state.storage().sql();
    let alarm_ms = state.storage().get_alarm().await?;
    let queued = match scheduler {
        Scheduler::Floor => Floor::open(state)?.pending()?,
        // Nothing to look at but the alarm itself: a task is queued while it is armed.
        _ => alarm_ms.is_some(),
    };
    Ok(StatusReply {
        firings: scalar(&sql, "SELECT COUNT(*) AS v FROM firings")?,
        succeeded: scalar(&sql, "SELECT COUNT(DISTINCT n) AS v FROM firings WHERE outcome = 'ok'")?,
        queued,
        dead: Vec::new(),
        panics: scalar(&sql, "SELECT COUNT(*) AS v FROM panics")?,
        alarm_ms,
    })
}

fn set_alarm_at(storage: &Storage, at_ms: i64) -> impl std::future::Future<Output = Result<()>> + '_ {
    #[allow(clippy::cast_precision_loss)]
    let date = js_sys::Date::new(&JsValue::from_f64(at_ms as f64));
    storage.set_alarm(ScheduledTime::new(date))
}

/// `native`: no multiplexing. Each task overwrites the one native alarm and a one-row table
/// naming the task, so `alarm()` knows which one fired; every task overwritten before its
/// alarm fired is lost. What the platform gives a Durable Object without a scheduler.
struct Native {
    storage: Storage,
    sql: SqlStorage,
}

impl Native {
    fn open(state: &State) -> Result<Self> {
        let storage = state.storage();
        let sql = storage.sql();
        sql.exec("CREATE TABLE IF NOT EXISTS native_task (k INTEGER PRIMARY KEY CHECK (k = 0), n INTEGER NOT NULL, due_ms INTEGER NOT NULL)", None)?;
        Ok(Native { storage, sql })
    }

    async fn schedule(&self, n: u32, due_ms: i64) -> Result<()> {
        self.sql.exec("INSERT OR REPLACE INTO native_task (k, n, due_ms) VALUES (0, ?, ?)", vec![i64::from(n).into(), due_ms.into()])?;
        set_alarm_at(&self.storage, due_ms).await
    }

    /// The last task scheduled: the one an alarm that fires is for.
    fn last(&self) -> Result<Option<(u32, i64)>> {
        #[derive(Deserialize)]
        struct Row {
            n: u32,
            due_ms: i64,
        }
        let rows: Vec<Row> = self.sql.exec("SELECT n, due_ms FROM native_task", None)?.to_array()?;
        Ok(rows.first().map(|r| (r.n, r.due_ms)))
    }
}

/// `floor`: the smallest honest multiplexer of many tasks on the one native alarm, written
/// the way a workers-rs user would write it by hand. One table; a task is an `INSERT`; the
/// alarm moves only when a request brings an earlier task (one `getAlarm` per request);
/// `alarm()` runs every due task in due order, deleting each, then re-arms for the next.
///
/// What it leaves out, all of which lumenize-alarms does: retries and backoff (a handler
/// error fails the whole `alarm()`, which the runtime retries a few times and then drops,
/// and nothing records which tasks gave up); attempt counting and a running state, so a
/// handler that awaits I/O and is cut short by a crash cannot be told apart from one that
/// never ran; catching a panic (it resets the object and the panicking task blocks the
/// queue on every retry); a batch limit (one `alarm()` runs the whole backlog, however
/// long); re-arming a lost alarm when the object starts; ids, cancel, list, cron and
/// interval schedules, and refusing due times the runtime cannot arm.
pub(crate) struct Floor {
    storage: Storage,
    sql: SqlStorage,
}

impl Floor {
    pub(crate) fn open(state: &State) -> Result<Self> {
        let storage = state.storage();
        let sql = storage.sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS floor_tasks (id INTEGER PRIMARY KEY, due_ms INTEGER NOT NULL, payload TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS floor_tasks_due ON floor_tasks (due_ms, id);",
            None,
        )?;
        Ok(Floor { storage, sql })
    }

    pub(crate) async fn armed(&self) -> Result<Option<i64>> {
        self.storage.get_alarm().await
    }

    pub(crate) fn insert(&self, due_ms: i64, payload: &impl Serialize) -> Result<()> {
        let payload = serde_json::to_string(payload)?;
        self.sql.exec("INSERT INTO floor_tasks (due_ms, payload) VALUES (?, ?)", vec![due_ms.into(), payload.into()])?;
        Ok(())
    }

    /// Moves the alarm to `earliest` if it is earlier than `armed`; whether it did.
    pub(crate) async fn arm(&self, armed: Option<i64>, earliest: Option<i64>) -> Result<bool> {
        match earliest {
            Some(at) if armed.is_none_or(|armed| at < armed) => set_alarm_at(&self.storage, at).await.map(|()| true),
            _ => Ok(false),
        }
    }

    fn pending(&self) -> Result<bool> {
        Ok(scalar(&self.sql, "SELECT COUNT(*) AS v FROM (SELECT 1 FROM floor_tasks LIMIT 1)")? > 0)
    }

    /// Runs `run(id, due_ms, payload)` for every due task, in due order, deleting each after
    /// it ran; then arms the alarm for the next (now + 1 ms at the soonest: an alarm set for
    /// "now" inside `alarm()` may be dropped).
    async fn run_due<T: DeserializeOwned>(&self, run: impl FnMut(i64, i64, T) -> Result<()>) -> Result<()> {
        self.run_due_at(now_ms(), run)?;
        #[derive(Deserialize)]
        struct Next {
            v: Option<i64>,
        }
        let next: Vec<Next> = self.sql.exec("SELECT MIN(due_ms) AS v FROM floor_tasks", None)?.to_array()?;
        match next.first().and_then(|n| n.v) {
            Some(at) => set_alarm_at(&self.storage, at.max(now_ms() + 1)).await,
            None => Ok(()),
        }
    }

    /// Runs every task due at `now` as [`run_due`](Self::run_due) does, without the alarm.
    pub(crate) fn run_due_at<T: DeserializeOwned>(&self, now: i64, mut run: impl FnMut(i64, i64, T) -> Result<()>) -> Result<()> {
        #[derive(Deserialize)]
        struct Row {
            id: i64,
            due_ms: i64,
            payload: String,
        }
        let due: Vec<Row> =
            self.sql.exec("SELECT id, due_ms, payload FROM floor_tasks WHERE due_ms <= ? ORDER BY due_ms, id", vec![now.into()])?.to_array()?;
        for row in due {
            run(row.id, row.due_ms, serde_json::from_str(&row.payload)?)?;
            self.sql.exec("DELETE FROM floor_tasks WHERE id = ?", vec![row.id.into()])?;
        }
        Ok(())
    }
}
