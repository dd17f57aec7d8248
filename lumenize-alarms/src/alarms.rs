//! `Alarms`: the scheduler bound to a Durable Object's SQLite and its one native alarm.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};
use worker::{ScheduledTime, State, Storage};

use crate::core::{self, InFlight, RunReport, Scheduled, Store};
use crate::panic_abort::AbortOnPanic;
use crate::sql_store::SqlStore;
use crate::{Error, Filter, Options, Result, When};

/// How many tasks one [`Alarms::run_due`] runs before it re-arms the alarm and returns, by
/// default.
pub const DEFAULT_BATCH_LIMIT: usize = 500;

/// Any number of durable tasks of type `T` on the object's one native alarm.
///
/// `T` is your own `serde` type, usually an enum with one variant per kind of task. Tasks
/// live in the object's SQLite (table `_lumenize_alarms`); the native alarm is always armed
/// for the earliest pending one. Open it where you need it: it is cheap, and the first open
/// in a freshly started object re-arms an alarm that was lost.
///
/// ```no_run
/// use std::time::Duration;
/// use lumenize_alarms::{Alarms, Options, When};
/// use serde::{Deserialize, Serialize};
/// use worker::*;
///
/// #[derive(Serialize, Deserialize)]
/// enum Task {
///     Ping { n: u32 },
///     Nightly,
/// }
///
/// #[durable_object]
/// pub struct Scheduler {
///     state: State,
/// }
///
/// impl Scheduler {
///     async fn handle(&self, task: Task) -> Result<()> {
///         match task {
///             Task::Ping { n } => console_log!("ping {n}"),
///             Task::Nightly => console_log!("nightly"),
///         }
///         Ok(())
///     }
/// }
///
/// impl DurableObject for Scheduler {
///     fn new(state: State, _env: Env) -> Self {
///         Self { state }
///     }
///
///     async fn fetch(&self, _req: Request) -> Result<Response> {
///         let alarms = Alarms::<Task>::new(&self.state).await?;
///         alarms.schedule(When::after(Duration::ZERO), Task::Ping { n: 1 }).await?;
///         alarms.schedule_with(When::cron("0 3 * * *")?, Task::Nightly, Options::id("nightly")).await?;
///         Response::ok("scheduled")
///     }
///
///     async fn alarm(&self) -> Result<Response> {
///         let alarms = Alarms::<Task>::new(&self.state).await?;
///         alarms.run_due(|task, _info| self.handle(task)).await?;
///         Response::ok("ran")
///     }
/// }
/// ```
pub struct Alarms<T> {
    state: State,
    storage: Storage,
    store: Rc<SqlStore>,
    in_flight: Rc<InFlight>,
    batch_limit: usize,
    _task: PhantomData<fn(T) -> T>,
}

/// What this isolate knows of one object: whether it was opened since the isolate started
/// (the first open also re-arms an alarm armed in the past), and which of its tasks are
/// running right now.
#[derive(Default)]
struct Local {
    recovered: bool,
    in_flight: Rc<InFlight>,
}

thread_local! {
    static LOCAL: RefCell<HashMap<String, Local>> = RefCell::new(HashMap::new());
}

impl<T: Serialize + DeserializeOwned> Alarms<T> {
    /// Opens the scheduler of this object: creates its table on first use, and re-arms the
    /// native alarm if pending tasks exist and no alarm is armed for them: after the runtime
    /// gave up retrying a failed alarm (which deletes it), or after a restart (where an alarm
    /// that fell due while the runtime was down may never fire; the first open in a freshly
    /// started isolate also re-arms an alarm armed in the past). Costs one `getAlarm`, and a
    /// `setAlarm` only when something was lost.
    ///
    /// # Errors
    /// [`Error::NoSqlite`] for an object without SQLite storage; storage errors.
    pub async fn new(state: &State) -> Result<Self> {
        let storage = state.storage();
        let store = Rc::new(SqlStore::open(&storage)?);
        let object = state.id().to_string();
        let (first_open, in_flight) = LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            let entry = local.entry(object.clone()).or_default();
            (!std::mem::replace(&mut entry.recovered, true), entry.in_flight.clone())
        });
        let alarms = Alarms {
            state: State::from(AsRef::<JsValue>::as_ref(state.as_raw()).clone().unchecked_into::<worker::worker_sys::DurableObjectState>()),
            storage,
            store,
            in_flight,
            batch_limit: DEFAULT_BATCH_LIMIT,
            _task: PhantomData,
        };
        // While a handler of this object runs in this isolate, a run is under way and re-arms
        // the alarm when it ends (and the runtime reports no alarm while `alarm()` runs).
        if first_open || alarms.in_flight.is_empty() {
            let armed = alarms.armed().await?;
            let now = now_ms();
            // An armed time in the past may never fire after a restart: arm it again. Later
            // opens leave an armed alarm alone, so that busy requests never postpone a due one.
            let armed = if first_open { armed.filter(|t| *t >= now) } else { armed };
            alarms.arm(core::alarm_to_set(armed, alarms.store.earliest()?, now)).await?;
        }
        Ok(alarms)
    }

    /// Sets how many tasks one [`run_due`](Self::run_due) runs before it re-arms the alarm
    /// for the rest and returns (default [`DEFAULT_BATCH_LIMIT`]), so that one alarm
    /// invocation stays within the runtime's limits however many tasks are due.
    #[must_use]
    pub fn batch_limit(self, limit: usize) -> Self {
        Alarms { batch_limit: limit.max(1), ..self }
    }

    /// Schedules `task` to run per `when`, with a generated UUIDv7 id and default options.
    /// Returns the task as stored.
    ///
    /// The task is durable when this returns (one SQL write); the native alarm is written
    /// only if this task is now the earliest.
    ///
    /// # Errors
    /// Out-of-range times, a cron expression with no next occurrence, a payload that does
    /// not encode, storage errors.
    pub async fn schedule(&self, when: When, task: T) -> Result<Scheduled> {
        self.schedule_with(when, task, Options::default()).await
    }

    /// Schedules `task` with explicit [`Options`]: an id (idempotent: upsert, or keep the
    /// existing one), a retry policy, a missed-tick policy.
    ///
    /// # Errors
    /// As [`schedule`](Self::schedule).
    pub async fn schedule_with(&self, when: When, task: T, opts: Options) -> Result<Scheduled> {
        let payload = serde_json::to_string(&task).map_err(Error::Encode)?;
        let now = now_ms();
        let scheduled = core::schedule(&*self.store, now, &when, payload, &opts, || new_id(now))?;
        self.arm_for(scheduled.due_ms).await?;
        Ok(scheduled)
    }

    /// The task with this id, if any.
    ///
    /// # Errors
    /// Storage errors.
    pub fn get(&self, id: &str) -> Result<Option<Scheduled>> {
        self.store.get(id)
    }

    /// The tasks that pass `filter` (pending, running and dead ones alike unless filtered),
    /// by due time then insertion order.
    ///
    /// # Errors
    /// Storage errors.
    pub fn list(&self, filter: &Filter) -> Result<Vec<Scheduled>> {
        self.store.list(filter)
    }

    /// Removes the task with this id, pending or dead, and returns what was removed.
    /// Cancelling a running task lets its handler finish, but nothing is recorded after it.
    ///
    /// # Errors
    /// Storage errors.
    pub fn cancel(&self, id: &str) -> Result<Option<Scheduled>> {
        core::cancel(&*self.store, id)
    }

    /// Puts a dead task back in the queue, due now, with its attempts reset.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::NotDead`], storage errors.
    pub async fn requeue(&self, id: &str) -> Result<Scheduled> {
        let now = now_ms();
        let task = core::requeue(&*self.store, id, now)?;
        self.arm_for(task.due_ms).await?;
        Ok(task)
    }

    /// Runs the due tasks, in (due time, insertion) order, one at a time: call it from
    /// `DurableObject::alarm`. Runs at most the batch limit, then re-arms the native alarm for
    /// whatever is pending (overdue included) and returns.
    ///
    /// The handler gets the decoded task and its stored record. `Ok` completes the task
    /// (one-shot: removed; recurring: advanced from its scheduled time); `Err` retries it per
    /// its [`RetryPolicy`](crate::RetryPolicy), then keeps it dead with the error. A payload
    /// that no longer decodes into `T` makes that task dead; the others keep running.
    ///
    /// Delivery is **at least once**: a crash or panic in the middle of a handler leaves the
    /// task in storage, and the next run counts that attempt as failed and retries it. Make
    /// handlers idempotent, or record their effect in the same SQLite.
    ///
    /// # Errors
    /// Storage errors only: handler errors are recorded on their tasks.
    pub async fn run_due<F, Fut, E>(&self, handler: F) -> Result<RunReport>
    where
        F: FnMut(T, Scheduled) -> Fut,
        Fut: Future<Output = std::result::Result<(), E>>,
        E: Display,
    {
        self.run(&now_ms, handler).await
    }

    /// The test hook: runs the tasks due at `now_ms` (Unix milliseconds) as if the clock read
    /// that, without waiting for the native alarm. Recurring tasks advance as they would at
    /// that time. Otherwise as [`run_due`](Self::run_due).
    ///
    /// ```no_run
    /// # async fn demo(alarms: lumenize_alarms::Alarms<u32>) -> lumenize_alarms::Result<()> {
    /// // run everything due in the next hour, now
    /// let in_an_hour = worker::Date::now().as_millis() as i64 + 3_600_000;
    /// let report = alarms.run_due_at(in_an_hour, |n, _| async move { Ok::<_, String>(()) }).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`run_due`](Self::run_due).
    pub async fn run_due_at<F, Fut, E>(&self, now_ms: i64, handler: F) -> Result<RunReport>
    where
        F: FnMut(T, Scheduled) -> Fut,
        Fut: Future<Output = std::result::Result<(), E>>,
        E: Display,
    {
        self.run(&move || now_ms, handler).await
    }

    async fn run<F, Fut, E>(&self, clock: &dyn Fn() -> i64, handler: F) -> Result<RunReport>
    where
        F: FnMut(T, Scheduled) -> Fut,
        Fut: Future<Output = std::result::Result<(), E>>,
        E: Display,
    {
        let (store, in_flight) = (self.store.clone(), self.in_flight.clone());
        let _abort_on_panic = AbortOnPanic::new(&self.state, move |message| {
            // Best effort: if this fails, the next run still finds the task running and
            // counts the attempt as cut short.
            for task in in_flight.tasks() {
                let _ = core::run::fail(&*store, &task, now_ms(), format!("the handler panicked: {message}"));
            }
        });
        let report = core::run_due(&*self.store, clock, self.batch_limit, &self.in_flight, handler).await?;
        // The alarm that called us is spent: arm the next one whatever the armed time says.
        match self.store.earliest()? {
            Some(earliest) => self.arm(core::alarm_to_set(None, Some(earliest), now_ms())).await?,
            // Nothing is pending: leave no alarm behind (the open that started this run may
            // have armed one for the tasks it has just run).
            None => {
                if self.armed().await?.is_some() {
                    self.storage.delete_alarm().await.map_err(storage_error)?;
                }
            }
        }
        Ok(report)
    }

    /// Arms the native alarm for a task due at `due_ms` if that is now the earliest. Not
    /// while a handler of this object runs in this isolate: that run arms the alarm for the
    /// earliest pending task when it ends, so a handler that schedules (a retry, a follow-up,
    /// lumenize-call's backstop) costs no alarm read or write.
    async fn arm_for(&self, due_ms: i64) -> Result<()> {
        if !self.in_flight.is_empty() {
            return Ok(());
        }
        self.arm(core::alarm_to_set(self.armed().await?, Some(due_ms), now_ms())).await
    }

    async fn armed(&self) -> Result<Option<i64>> {
        self.storage.get_alarm().await.map_err(storage_error)
    }

    async fn arm(&self, at: Option<i64>) -> Result<()> {
        let Some(at) = at else { return Ok(()) };
        #[allow(clippy::cast_precision_loss)]
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at as f64));
        self.storage.set_alarm(ScheduledTime::new(date)).await.map_err(storage_error)
    }
}

fn storage_error(e: worker::Error) -> Error {
    Error::Storage(e.to_string())
}

/// The runtime's clock, Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX)
}

/// A fresh UUIDv7 for the time `now_ms`.
pub(crate) fn new_id(now_ms: i64) -> String {
    let ms = u64::try_from(now_ms).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, u32::try_from(ms % 1000).unwrap_or(0) * 1_000_000);
    uuid::Uuid::new_v7(ts).to_string()
}

/// The wasm-only pieces of the adapter, run under Node by wasm-bindgen-test (`cargo xtask
/// test`): the JavaScript clock, and UUIDv7 ids drawn from the JavaScript `crypto`.
#[cfg(all(test, target_arch = "wasm32"))]
mod wasm_tests {
    use std::collections::HashSet;

    use wasm_bindgen_test::wasm_bindgen_test;

    use super::{new_id, now_ms};
    use crate::core::MAX_TIME_MS;

    #[allow(clippy::cast_possible_truncation)]
    fn js_now() -> i64 {
        js_sys::Date::now() as i64
    }

    #[wasm_bindgen_test]
    fn now_ms_reads_the_javascript_clock_in_unix_milliseconds() {
        let (before, now, after) = (js_now(), now_ms(), js_now());
        assert!(before <= now && now <= after, "{before} <= {now} <= {after}");
        assert!(now > 1_700_000_000_000, "not Unix milliseconds: {now}");
    }

    /// The 48-bit timestamp of a UUIDv7, in Unix milliseconds.
    fn v7_millis(id: &str) -> i64 {
        let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id:?} is not a UUID: {e}"));
        assert_eq!(uuid.get_version_num(), 7, "{id} is not version 7");
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
        let (secs, nanos) = uuid.get_timestamp().expect("a v7 has a timestamp").to_unix();
        i64::try_from(secs * 1000 + u64::from(nanos / 1_000_000)).expect("fits")
    }

    #[wasm_bindgen_test]
    fn generated_ids_are_uuidv7_of_the_given_millisecond_with_fresh_random_bits() {
        let now = now_ms();
        let ids: HashSet<String> = (0..1_000).map(|_| new_id(now)).collect();
        assert_eq!(ids.len(), 1_000, "ids drawn in the same millisecond collide");
        for id in &ids {
            assert_eq!(v7_millis(id), now, "{id}");
        }
    }

    #[wasm_bindgen_test]
    fn generated_ids_cover_the_whole_time_range() {
        assert_eq!(v7_millis(&new_id(0)), 0);
        assert_eq!(v7_millis(&new_id(1_234)), 1_234);
        assert_eq!(v7_millis(&new_id(MAX_TIME_MS)), MAX_TIME_MS);
        assert_eq!(v7_millis(&new_id(-5)), 0, "a time before the epoch is clamped, not a panic");
    }

    #[wasm_bindgen_test]
    fn ids_of_later_milliseconds_sort_after_earlier_ones() {
        let ids: Vec<String> = (0..50).map(|i| new_id(1_700_000_000_000 + i)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "UUIDv7 text order follows time");
    }
}
