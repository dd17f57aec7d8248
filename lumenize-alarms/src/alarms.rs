//! `Alarms`: the scheduler bound to a Durable Object's SQLite and its one native alarm. A
//! thin adapter: the clock, ids, the alarm API and the panic guard; everything else is
//! [`core::Scheduler`](crate::core::Scheduler).

use std::cell::{Cell, RefCell};
use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::{Rc, Weak};

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use wasm_bindgen::{JsCast, JsValue};
use worker::{console_error, ScheduledTime, SqlStorage, State, Storage};

use crate::core::{Counts, Event, NativeAlarm, Options, RunReport, Scheduled, Scheduler, When, MAX_BATCH_LIMIT};
use crate::error::{Error, Result, StorageError, StorageKind};
use crate::panic_abort::{guarded, Panic};
use crate::sql::SqlStore;
use crate::Filter;

/// How many tasks one [`Alarms::run_due`] runs before it re-arms the alarm and returns, by
/// default: 5,000.
///
/// The bound keeps one alarm invocation short however long the backlog: it returns, lets
/// the object's other events in, and re-arms for the rest. Each invocation costs a fixed
/// amount besides its tasks (the event, the alarm write, the commit and the wait for the
/// alarm to fire again), measured in local workerd at about 20 ms on an idle machine, while
/// a task costs lumenize-alarms about as much as the smallest hand-rolled scheduler, 10 to
/// 20 µs with a handler that writes one row (examples/alarms-robustness, RESULTS.md). At
/// 1,000 tasks per invocation, the earlier default, that fixed cost doubled the time to
/// drain 100,000 due tasks; at 5,000 it adds about a fifth, and one invocation of cheap
/// tasks stays around a tenth of a second of the scheduler's own work, far below the
/// platform's CPU limit per invocation (30 s by default). Handlers that take a millisecond
/// or more each make an invocation of 5,000 last seconds: set a lower
/// [`batch_limit`](Alarms::batch_limit) for them.
pub const DEFAULT_BATCH_LIMIT: usize = 5_000;

/// Any number of durable tasks of type `T` on the object's one native alarm.
///
/// `T` is your own `serde` type, usually an enum with one variant per kind of task. Tasks
/// live in the object's SQLite (table `_lumenize_alarms`); the native alarm is always armed
/// for the earliest pending one. Open it once, in `DurableObject::new`, and keep it in a
/// field: the handle remembers what it armed and which handlers are running. It is cheap to
/// clone (clones share everything), for example to hand it to `lumenize-call`.
///
/// ```no_run
/// use std::time::Duration;
/// use lumenize_alarms::{Alarms, Options, Scheduled, When};
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
///     alarms: Alarms<Task>,
/// }
///
/// impl Scheduler {
///     async fn handle(&self, task: Task, _info: Scheduled) -> Result<()> {
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
///         Self { alarms: Alarms::open(&state) }
///     }
///
///     async fn fetch(&self, _req: Request) -> Result<Response> {
///         self.alarms.schedule(When::after(Duration::ZERO), Task::Ping { n: 1 }).await?;
///         self.alarms.schedule_with(When::cron("0 3 * * *")?, Task::Nightly, Options::id("nightly")).await?;
///         Response::ok("scheduled")
///     }
///
///     async fn alarm(&self) -> Result<Response> {
///         self.alarms.run_due(async |task, info| self.handle(task, info).await).await?;
///         Response::ok("ran")
///     }
/// }
/// ```
pub struct Alarms<T> {
    inner: Rc<Inner>,
    _task: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Alarms<T> {
    fn clone(&self) -> Self {
        Alarms { inner: self.inner.clone(), _task: PhantomData }
    }
}

struct Inner {
    /// The scheduler, or why the object's storage could not be opened: then every method
    /// returns that error (see [`Alarms::open`]).
    scheduler: std::result::Result<Scheduler<SqlStore<SqlStorage>>, Error>,
    storage: Storage,
    /// The raw `DurableObjectState`, for the panic guard's `abort()`.
    state: JsValue,
    batch_limit: Cell<usize>,
    /// The libraries whose tasks this scheduler runs before the user's handler sees
    /// anything (lumenize-call's), by the name their tasks' payloads carry.
    libraries: RefCell<Vec<(&'static str, Weak<dyn Library>)>>,
}

impl Inner {
    fn scheduler(&self) -> Result<&Scheduler<SqlStore<SqlStorage>>> {
        self.scheduler.as_ref().map_err(Error::replay)
    }

    fn library(&self, name: &str) -> Option<Rc<dyn Library>> {
        self.libraries.borrow().iter().find(|(n, _)| *n == name).and_then(|(_, library)| library.upgrade())
    }

    /// Every attached library that is still open.
    fn attached(&self) -> Vec<Rc<dyn Library>> {
        self.libraries.borrow().iter().filter_map(|(_, library)| library.upgrade()).collect()
    }
}


/// A library's own tasks on an object's scheduler (lumenize-call's: a call's dispatch and
/// backstop). They are stored with a payload that names the library
/// ([`Alarms::schedule_library`]) and run by it inside [`Alarms::run_due`], before the
/// user's handler sees anything: the user's task type never names them. Not for
/// applications; the seam between this workspace's crates.
#[doc(hidden)]
pub trait Library {
    /// Runs one of the library's tasks; `Err` fails that attempt (the task's retry policy
    /// applies).
    fn run(&self, task: Scheduled) -> Pin<Box<dyn Future<Output = std::result::Result<(), String>> + '_>>;

    /// At the end of a run, before it arms the alarm for what is left: lets work that the
    /// library's tasks started end, until `until()` at the latest (when the earliest task
    /// still pending is due, read on demand: a statement; see
    /// [`Scheduler::run_due_settling`]). What is not done by then goes on in the
    /// background. Nothing, by default.
    fn settle<'a>(&'a self, until: &'a dyn Fn() -> i64) -> Pin<Box<dyn Future<Output = ()> + 'a>> {
        let _ = until;
        Box::pin(async {})
    }
}

/// The payload of a library's task: `{"lumenize":"<library>"}`. A user's task type that
/// encodes to exactly this would be taken for the library's: the key is reserved.
fn library_payload(name: &str) -> String {
    format!(r#"{{"lumenize":"{name}"}}"#)
}

/// The library a stored payload names, if it is a library's task.
fn library_of(payload: &str) -> Option<&str> {
    payload.strip_prefix(r#"{"lumenize":""#)?.strip_suffix(r#""}"#)
}

/// A task as `run_due` decodes it: a library's own, or the user's `T`. Decoding looks at
/// the stored text once (no copy) before handing it to `T`'s decoder.
enum Routed<T> {
    Library(String),
    User(T),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Routed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(d)?;
        match library_of(raw.get()) {
            Some(name) => Ok(Routed::Library(name.to_owned())),
            None => serde_json::from_str(raw.get()).map(Routed::User).map_err(D::Error::custom),
        }
    }
}

/// The native alarm of a Durable Object, through `worker::Storage`.
struct Runtime<'a>(&'a Storage);

impl NativeAlarm for Runtime<'_> {
    async fn get(&self) -> Result<Option<i64>> {
        self.0.get_alarm().await.map_err(storage_error)
    }

    async fn set(&self, at_ms: i64) -> Result<()> {
        self.0.set_alarm(ScheduledTime::new(js_date(at_ms))).await.map_err(storage_error)
    }

    async fn delete(&self) -> Result<()> {
        self.0.delete_alarm().await.map_err(storage_error)
    }
}

impl<T: Serialize + DeserializeOwned> Alarms<T> {
    /// Opens the scheduler of this object: creates its table on first use (synchronous SQL,
    /// so call it in `DurableObject::new`), and makes dead any stored task that could never
    /// be armed (due after [`MAX_TIME_MS`](crate::MAX_TIME_MS), written by an earlier
    /// release). The first event after it reads the native alarm once and re-arms it if it
    /// was lost (after the runtime gave up retrying a failed alarm, or a restart), whether or
    /// not that event uses the scheduler.
    ///
    /// Opening never fails and never panics (a panic in `new` would take down the isolate
    /// that every object of the worker shares): if the object's storage cannot be opened,
    /// every method of the handle returns why, as a typed error the caller can answer with
    /// (a 500 with the message, say): [`Error::NoSqlite`] for an object without SQLite
    /// storage (its class is not in `new_sqlite_classes`), [`Error::SchemaTooNew`], or a
    /// storage error. Never because of what a stored task holds.
    ///
    /// Open it once per object and keep the handle: libraries attach to it
    /// (lumenize-call's `Calls::open(&alarms, ..)`), and a second `open` would be a second
    /// scheduler over the same table, without them.
    pub fn open(state: &State) -> Self {
        let storage = state.storage();
        let scheduler = open_scheduler(&storage);
        let state = AsRef::<JsValue>::as_ref(state.as_raw()).clone();
        let opened = scheduler.is_ok();
        let inner = Inner { scheduler, storage, state, batch_limit: Cell::new(DEFAULT_BATCH_LIMIT), libraries: RefCell::default() };
        let inner = Rc::new(inner);
        if opened {
            let recover = inner.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let Ok(scheduler) = recover.scheduler() else { return };
                if let Err(e) = scheduler.armed(&Runtime(&recover.storage), now_ms()).await {
                    console_error!("lumenize-alarms: reading the native alarm failed ({e}); the next event tries again");
                }
            });
        }
        Alarms { inner, _task: PhantomData }
    }

    /// Whether the scheduler could be opened: `Err` with what [`open`](Self::open) met, as
    /// every method returns it (for a health check, or a clear error at start).
    ///
    /// ```no_run
    /// # fn demo(state: worker::State) -> worker::Result<()> {
    /// let alarms = lumenize_alarms::Alarms::<u32>::open(&state);
    /// alarms.ready()?; // Error::NoSqlite if the class is not in new_sqlite_classes
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::NoSqlite`], [`Error::SchemaTooNew`], storage errors.
    pub fn ready(&self) -> Result<()> {
        self.inner.scheduler().map(|_| ())
    }

    /// Sets how many tasks one [`run_due`](Self::run_due) runs before it re-arms the alarm
    /// for the rest and returns (default [`DEFAULT_BATCH_LIMIT`]), so that one alarm
    /// invocation stays within the runtime's limits however many tasks are due. The limit is
    /// clamped to `1 ..=` [`MAX_BATCH_LIMIT`].
    #[must_use]
    pub fn batch_limit(self, limit: usize) -> Self {
        self.inner.batch_limit.set(limit.clamp(1, MAX_BATCH_LIMIT));
        self
    }

    /// Sets a hook that sees every step in the life of every task: scheduled, started (with
    /// its lateness), succeeded, retrying (with the error and the next time), dead, and
    /// attempts found cut short by a crash. The hook runs synchronously; keep it cheap.
    ///
    /// ```no_run
    /// # fn demo(alarms: &lumenize_alarms::Alarms<u32>) {
    /// use lumenize_alarms::Event;
    /// alarms.on_event(|event| {
    ///     if let Event::Dead { task, error } = event {
    ///         worker::console_error!("task {} is dead: {error}", task.id);
    ///     }
    /// });
    /// # }
    /// ```
    pub fn on_event(&self, hook: impl Fn(&Event<'_>) + 'static) {
        if let Ok(scheduler) = self.inner.scheduler() {
            scheduler.on_event(hook);
        }
    }

    /// Schedules `task` to run per `when`, with a generated UUIDv7 id and default options.
    /// Returns its id ([`get`](Self::get) reads the stored task).
    ///
    /// The task is durable when this returns (one SQL statement); the native alarm is written
    /// only if this task is now the earliest.
    ///
    /// # Errors
    /// Out-of-range times, a cron expression with no next occurrence, a payload that does
    /// not encode or is over [`MAX_PAYLOAD_BYTES`](crate::MAX_PAYLOAD_BYTES): all
    /// refused before anything is written. Storage errors.
    pub async fn schedule(&self, when: When, task: T) -> Result<String> {
        self.schedule_with(when, task, Options::default()).await
    }

    /// Schedules `task` with explicit [`Options`]: an id (idempotent: upsert, or keep the
    /// existing one), a retry policy, a missed-tick policy. Returns its id.
    ///
    /// # Errors
    /// As [`schedule`](Self::schedule).
    pub async fn schedule_with(&self, when: When, task: T, opts: Options) -> Result<String> {
        let payload = encode(&task)?;
        let now = now_ms();
        self.inner.scheduler()?.schedule(&self.alarm(), now, &when, payload, &opts, || new_id(now)).await
    }

    /// Schedules many tasks at once, with generated ids and default options: one SQL
    /// statement per megabyte of payloads and at most one write of the native alarm,
    /// however many tasks. Every task is checked first: one bad input stores none. Returns
    /// their ids in order.
    ///
    /// ```no_run
    /// # async fn demo(alarms: &lumenize_alarms::Alarms<u32>) -> lumenize_alarms::Result<()> {
    /// use std::time::Duration;
    /// use lumenize_alarms::When;
    /// let ids = alarms.schedule_many((0..1_000).map(|n| (When::after(Duration::ZERO), n))).await?;
    /// assert_eq!(ids.len(), 1_000);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`schedule`](Self::schedule).
    pub async fn schedule_many(&self, tasks: impl IntoIterator<Item = (When, T)>) -> Result<Vec<String>> {
        self.schedule_many_with(tasks.into_iter().map(|(when, task)| (when, task, Options::default()))).await
    }

    /// As [`schedule_many`](Self::schedule_many), with [`Options`] per task.
    ///
    /// # Errors
    /// As [`schedule`](Self::schedule).
    pub async fn schedule_many_with(&self, tasks: impl IntoIterator<Item = (When, T, Options)>) -> Result<Vec<String>> {
        let tasks: Vec<(When, String, Options)> =
            tasks.into_iter().map(|(when, task, opts)| Ok((when, encode(&task)?, opts))).collect::<Result<_>>()?;
        let now = now_ms();
        self.inner.scheduler()?.schedule_many(&self.alarm(), now, tasks, || new_id(now)).await
    }

    /// The task with this id, if any. A stored row that does not decode is returned as a
    /// dead task whose last error says why (it is quarantined: see [`run_due`](Self::run_due)).
    ///
    /// # Errors
    /// Storage errors.
    pub fn get(&self, id: &str) -> Result<Option<Scheduled>> {
        self.inner.scheduler()?.get(id)
    }

    /// The tasks that pass `filter` (pending, running, paused and dead ones alike unless filtered),
    /// by due time then insertion order. Rows that do not decode are listed as dead tasks
    /// whose last error says why; they never make `list` fail.
    ///
    /// # Errors
    /// Storage errors.
    pub fn list(&self, filter: &Filter) -> Result<Vec<Scheduled>> {
        self.inner.scheduler()?.list(filter)
    }

    /// Removes the task with this id, pending, paused or dead (a quarantined one too), and returns
    /// what was removed.
    /// Cancelling a running task lets its handler finish, but nothing is recorded after it.
    /// The native alarm is not written: if it was armed for the removed task, it fires once
    /// with nothing to run, and leaves no alarm behind when nothing else is pending.
    ///
    /// # Errors
    /// Storage errors.
    pub fn cancel(&self, id: &str) -> Result<Option<Scheduled>> {
        self.inner.scheduler()?.cancel(id)
    }

    /// As [`cancel`](Self::cancel), without reading the task back: whether there was one.
    /// For a library forgetting its own task.
    ///
    /// # Errors
    /// Storage errors.
    #[doc(hidden)]
    pub fn discard(&self, id: &str) -> Result<bool> {
        self.inner.scheduler()?.discard(id)
    }

    /// From inside the running handler of task `id`: run it again at `at_ms` (Unix
    /// milliseconds, `0 ..=` [`MAX_TIME_MS`](crate::MAX_TIME_MS)) once the handler returns `Ok`, in place, instead of removing it (or
    /// advancing a recurring task). A poll, a backstop or a lease renews itself this way
    /// with one update.
    ///
    /// ```no_run
    /// # async fn demo(alarms: &lumenize_alarms::Alarms<u32>) -> lumenize_alarms::Result<()> {
    /// alarms.run_due(async |n, info| {
    ///     let again = info.due_ms + 60_000;
    ///     alarms.defer(&info.id, again).map_err(|e| e.to_string())?; // poll again in a minute
    ///     Ok::<_, String>(())
    /// }).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`] if no handler of that task is running in this object;
    /// [`Error::TimeOutOfRange`].
    pub fn defer(&self, id: &str, at_ms: i64) -> Result<()> {
        self.inner.scheduler()?.defer(id, at_ms)
    }

    /// Puts a dead task back in the queue, due now, with its attempts reset. A quarantined
    /// task (its row did not decode) is repaired first as far as it can be: numbers out of
    /// their range are clamped back into it.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::NotDead`], [`Error::Unreadable`] for a row that still
    /// does not decode (it stays dead); storage errors.
    pub async fn requeue(&self, id: &str) -> Result<Scheduled> {
        self.inner.scheduler()?.requeue(&self.alarm(), now_ms(), id).await
    }

    /// Pauses the pending task `id`: it does not run, and the native alarm is not armed for
    /// it, until [`resume`](Self::resume)d or [run now](Self::run_now). It keeps its
    /// definition, due time, attempts and last error, is listed with
    /// [`Status::Paused`](crate::Status::Paused), and can be cancelled. A paused one-shot
    /// task whose time passes stays paused; resumed, it runs at once. A paused task stays
    /// paused across crashes and restarts. One SQL statement; the native alarm is not
    /// written. Pausing a paused task returns it as it is.
    ///
    /// ```no_run
    /// # fn demo(alarms: &lumenize_alarms::Alarms<u32>) -> lumenize_alarms::Result<()> {
    /// let task = alarms.pause("nightly")?;
    /// assert_eq!(task.status, lumenize_alarms::Status::Paused);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongStatus`] for a task whose handler is running, or
    /// a dead one; storage errors.
    pub fn pause(&self, id: &str) -> Result<Scheduled> {
        self.inner.scheduler()?.pause(id)
    }

    /// Resumes the paused task `id`: pending again, and the native alarm armed for it if it
    /// is now the earliest. A one-shot task keeps its due time (one whose time passed runs
    /// at once). A recurring task skips the ticks it missed while paused per its
    /// [`MissedTicks`](crate::MissedTicks) policy: `Skip` (the default) moves it to its
    /// first tick at or after now, `Burst` runs every missed tick. A pending or running
    /// task is returned as it is.
    ///
    /// ```no_run
    /// # async fn demo(alarms: &lumenize_alarms::Alarms<u32>) -> lumenize_alarms::Result<()> {
    /// let task = alarms.resume("nightly").await?;
    /// assert_eq!(task.status, lumenize_alarms::Status::Pending);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongStatus`] for a dead task (requeue it instead);
    /// storage errors.
    pub async fn resume(&self, id: &str) -> Result<Scheduled> {
        self.inner.scheduler()?.resume(&self.alarm(), now_ms(), id).await
    }

    /// Makes the pending or paused task `id` due now, and arms the native alarm for it: it
    /// runs at the next alarm, in its turn among the due tasks. It keeps its definition: a
    /// recurring task runs now, then again at the tick it was waiting for, and on along its
    /// grid. A paused task is resumed by this.
    ///
    /// ```no_run
    /// # async fn demo(alarms: &lumenize_alarms::Alarms<u32>) -> lumenize_alarms::Result<()> {
    /// let task = alarms.run_now("nightly").await?;
    /// assert!(task.due_ms <= worker::Date::now().as_millis() as i64);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongStatus`] for a task whose handler is running, or
    /// a dead one (requeue it instead); storage errors.
    pub async fn run_now(&self, id: &str) -> Result<Scheduled> {
        self.inner.scheduler()?.run_now(&self.alarm(), now_ms(), id).await
    }

    /// Requeues dead tasks in bulk, as [`requeue`](Self::requeue) does one: all of them, or
    /// those `filter` passes (kind and due range; a status other than dead passes none),
    /// by due time then insertion order, due now, attempts reset. One SQL statement and at
    /// most one write of the native alarm; at most `filter.limit` and never more than
    /// [`MAX_REQUEUE_DEAD`](crate::MAX_REQUEUE_DEAD) (1,000) per call. Returns how many
    /// were requeued: call again while it returns 1,000.
    ///
    /// ```no_run
    /// # async fn demo(alarms: &lumenize_alarms::Alarms<u32>) -> lumenize_alarms::Result<()> {
    /// use lumenize_alarms::{Filter, Kind};
    /// let all = alarms.requeue_dead(&Filter::default()).await?;
    /// let crons = alarms.requeue_dead(&Filter::default().kind(Kind::Cron)).await?;
    /// # let _ = (all, crons); Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Storage errors.
    pub async fn requeue_dead(&self, filter: &Filter) -> Result<usize> {
        self.inner.scheduler()?.requeue_dead(&self.alarm(), now_ms(), filter).await
    }

    /// How many tasks are pending, running, paused and dead, read with one `GROUP BY`
    /// statement: no task is read into the object (SQLite counts the rows itself). A stored
    /// row that does not decode counts where its stored status says until a read
    /// quarantines it (then as dead).
    ///
    /// ```no_run
    /// # fn demo(alarms: &lumenize_alarms::Alarms<u32>) -> lumenize_alarms::Result<()> {
    /// let counts = alarms.counts()?;
    /// println!("{} pending, {} dead", counts.pending, counts.dead);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Storage errors.
    pub fn counts(&self) -> Result<Counts> {
        self.inner.scheduler()?.counts()
    }

    /// Runs the due tasks, in (due time, insertion) order, one at a time: call it from
    /// `DurableObject::alarm`. Runs at most the batch limit, then re-arms the native alarm for
    /// whatever is pending (overdue included) and returns.
    ///
    /// The handler (an async closure, which may borrow `self`) gets the decoded task and its
    /// stored record. `Ok` completes the task (one-shot: removed; recurring: advanced from its
    /// scheduled time); `Err` retries it per its [`RetryPolicy`](crate::RetryPolicy), then
    /// keeps it dead with the error. A payload that no longer decodes into `T` makes that
    /// task dead; the others keep running.
    ///
    /// Delivery is **at least once**: a crash or panic in the middle of a handler leaves the
    /// task in storage, and the next run counts that attempt as failed and retries it. Make
    /// handlers idempotent, or record their effect in the same SQLite.
    ///
    /// A stored row that does not decode never fails the run: it is quarantined (marked
    /// dead, listed with the reason) and the others run. A run that fails all the same (a
    /// storage error, an alarm write the runtime refuses) returns the error and re-arms the
    /// native alarm after a backoff, 1 s doubling to a minute while runs keep failing, never
    /// for "now", and nothing arms it earlier until then: a failing object runs its alarm at
    /// most once per backoff instead of spinning, and leaves its worker to the other
    /// objects. The first good run ends the backoff.
    ///
    /// # Errors
    /// Storage and alarm errors only: handler errors are recorded on their tasks.
    pub async fn run_due<E: Display>(&self, handler: impl AsyncFnMut(T, Scheduled) -> std::result::Result<(), E>) -> Result<RunReport> {
        self.run(None, handler).await
    }

    /// The test hook: runs the tasks due at `now_ms` (Unix milliseconds) as if the clock read
    /// that, without waiting for the native alarm. Recurring tasks advance as they would at
    /// that time. Otherwise as [`run_due`](Self::run_due).
    ///
    /// ```no_run
    /// # async fn demo(alarms: lumenize_alarms::Alarms<u32>) -> lumenize_alarms::Result<()> {
    /// // run everything due in the next hour, now
    /// let in_an_hour = worker::Date::now().as_millis() as i64 + 3_600_000;
    /// let report = alarms.run_due_at(in_an_hour, async |n, _| Ok::<_, String>(())).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::TimeOutOfRange`] for a time the runtime could not arm (nothing runs); as
    /// [`run_due`](Self::run_due).
    pub async fn run_due_at<E: Display>(
        &self,
        now_ms: i64,
        handler: impl AsyncFnMut(T, Scheduled) -> std::result::Result<(), E>,
    ) -> Result<RunReport> {
        self.run(Some(now_ms), handler).await
    }

    async fn run<E: Display>(&self, at_ms: Option<i64>, mut handler: impl AsyncFnMut(T, Scheduled) -> std::result::Result<(), E>) -> Result<RunReport> {
        let scheduler = self.inner.scheduler()?;
        let inner = self.inner.clone();
        let on_panic = move |panic: &Panic<'_>| {
            let error = if panic.here {
                format!("the handler panicked: {}", panic.message)
            } else {
                format!("the attempt was cut short by a panic elsewhere in the isolate: {}", panic.message)
            };
            // Best effort: if this fails, the next run still finds the task running and
            // counts the attempt as cut short.
            if let Some(at) = inner.scheduler().ok().and_then(|s| s.fail_in_flight(now_ms(), &error)) {
                arm_now(&inner.storage, at);
            }
        };
        // A library's tasks go to the library; the user's handler sees only its own type.
        let routed = async |task: Routed<T>, info: Scheduled| match task {
            Routed::User(task) => handler(task, info).await.map_err(|e| e.to_string()),
            Routed::Library(name) => match self.inner.library(&name) {
                Some(library) => library.run(info).await,
                None => Err(format!("a task of {name}, whose handle is not attached to this scheduler: open it from the object's one Alarms handle, in DurableObject::new")),
            },
        };
        let limit = self.inner.batch_limit.get();
        let alarm = self.alarm();
        // Work the libraries' tasks started (calls' sends) may end before the run arms for
        // what is left: a call settled by then leaves nothing to arm.
        let settle = async |until: &dyn Fn() -> i64| {
            for library in self.inner.attached() {
                library.settle(until).await;
            }
        };
        let run = scheduler.run_due_settling(&alarm, &now_ms, at_ms, limit, routed, settle);
        guarded(self.inner.state.clone(), on_panic, run).await
    }

    /// Schedules a task of the library attached under `name`, as
    /// [`schedule_with`](Self::schedule_with) does a user's.
    ///
    /// # Errors
    /// As [`schedule`](Self::schedule).
    #[doc(hidden)]
    pub async fn schedule_library(&self, name: &'static str, when: When, opts: Options) -> Result<String> {
        let now = now_ms();
        self.inner.scheduler()?.schedule(&self.alarm(), now, &when, library_payload(name), &opts, || new_id(now)).await
    }

    fn alarm(&self) -> Runtime<'_> {
        Runtime(&self.inner.storage)
    }
}

/// The seams between this workspace's crates: not for applications.
impl<T> Alarms<T> {
    /// Attaches `library`, which runs the tasks stored by
    /// [`schedule_library`](Self::schedule_library) under `name` (it replaces one attached
    /// under the same name). Held weakly: the library's handle owns it.
    #[doc(hidden)]
    pub fn attach(&self, name: &'static str, library: Weak<dyn Library>) {
        let mut libraries = self.inner.libraries.borrow_mut();
        libraries.retain(|(n, _)| *n != name);
        libraries.push((name, library));
    }

    /// The object's state, as given to [`open`](Self::open).
    #[doc(hidden)]
    #[must_use]
    pub fn object_state(&self) -> State {
        State::from(self.inner.state.clone().unchecked_into::<worker::worker_sys::DurableObjectState>())
    }

    /// The same handle (the same scheduler, the same attached libraries) for tasks of type
    /// `U`: for a library, or a continuation, that schedules the object's own tasks.
    #[doc(hidden)]
    #[must_use]
    pub fn retyped<U>(&self) -> Alarms<U> {
        Alarms { inner: self.inner.clone(), _task: PhantomData }
    }
}

/// The object's SQLite, or [`Error::NoSqlite`] for an object without it (where
/// `Storage::sql` would throw, uncatchably from Rust). For this workspace's crates.
///
/// # Errors
/// [`Error::NoSqlite`].
#[doc(hidden)]
pub fn sql_storage(storage: &Storage) -> Result<SqlStorage> {
    let sql = js_sys::Reflect::get(storage.as_raw(), &"sql".into()).map_err(|_| Error::NoSqlite)?;
    if sql.is_undefined() || sql.is_null() {
        return Err(Error::NoSqlite);
    }
    Ok(storage.sql())
}

/// The scheduler over the object's SQLite, repaired.
fn open_scheduler(storage: &Storage) -> Result<Scheduler<SqlStore<SqlStorage>>> {
    let store = SqlStore::open(sql_storage(storage)?).map_err(|e| match e {
        Error::Storage(e) if e.kind() == StorageKind::SqlNotEnabled => Error::NoSqlite,
        e => e,
    })?;
    let scheduler = Scheduler::new(store);
    scheduler.repair()?;
    Ok(scheduler)
}

/// Arms the alarm for `at_ms` without awaiting: the call is issued at once, which is all a
/// panic hook can do (no wasm runs after it). The write is durable before the object is
/// reset: the guard waits for `storage.sync()`.
fn arm_now(storage: &Storage, at_ms: i64) {
    let _ = storage.as_raw().set_alarm(js_date(at_ms), js_sys::Object::new());
}

/// `at_ms` (Unix milliseconds) as a JavaScript `Date`.
fn js_date(at_ms: i64) -> js_sys::Date {
    #[allow(clippy::cast_precision_loss)] // times are below 2^53
    js_sys::Date::new(&JsValue::from_f64(at_ms as f64))
}

fn encode<T: Serialize>(task: &T) -> Result<String> {
    serde_json::to_string(task).map_err(Error::Encode)
}

fn storage_error(e: worker::Error) -> Error {
    StorageError::classify(e.to_string()).into()
}

/// The runtime's clock, Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX)
}

thread_local! {
    /// The state of the generator of ids' random bits: seeded once per isolate from the
    /// platform's cryptographic source (a JavaScript call per id would cost more than the
    /// rest of a `schedule`).
    static RANDOM: Cell<u64> = Cell::new(uuid::Uuid::new_v4().as_u64_pair().0 | 1);
}

/// 64 random bits (SplitMix64).
fn random_u64() -> u64 {
    RANDOM.with(|state| {
        let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(s);
        let z = (s ^ (s >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

thread_local! {
    /// The millisecond and the 74 bits after the version and variant of the last id made.
    static LAST_ID: Cell<(u64, u128)> = const { Cell::new((u64::MAX, 0)) };
}

/// The 74 bits a UUIDv7 holds besides its timestamp, version and variant.
const ID_BITS: u32 = 74;

/// A fresh UUIDv7 for the time `now_ms`: its 48-bit timestamp, then 74 bits. The first id
/// of a millisecond draws them at random (the top one cleared, to leave room to count up);
/// each next id of the same millisecond adds a random step of 1 to 2^32 to the last one
/// (RFC 9562, 6.2, method 2: monotonic random). So the ids one request makes sort in the
/// order they were made, and a burst is appended to the table's index of ids instead of
/// scattered across it: with 100,000 ids of one millisecond in random order, running the
/// burst (which deletes the rows in order) touched a random page of that index per task.
pub(crate) fn new_id(now_ms: i64) -> String {
    let ms = u64::try_from(now_ms).unwrap_or(0);
    let bits = LAST_ID.with(|last| {
        let (last_ms, last_bits) = last.get();
        let step = u128::from(random_u64() >> 32) + 1;
        let bits = match last_bits.checked_add(step) {
            Some(next) if last_ms == ms && next < 1 << ID_BITS => next,
            _ => ((u128::from(random_u64()) << 64) | u128::from(random_u64())) & ((1 << (ID_BITS - 1)) - 1),
        };
        last.set((ms, bits));
        bits
    });
    uuid::Builder::from_unix_timestamp_millis(ms, &id_bytes(bits)).into_uuid().to_string()
}

/// The 74 bits of an id as the 10 bytes `uuid::Builder::from_unix_timestamp_millis` takes:
/// it keeps the low 4 bits of the first byte and the second (12 bits after the version),
/// then the low 6 bits of the third and the last seven (62 bits after the variant).
fn id_bytes(bits: u128) -> [u8; 10] {
    let (high, low) = ((bits >> 62) as u16, (bits & ((1 << 62) - 1)) as u64);
    let mut bytes = [0u8; 10];
    bytes[..2].copy_from_slice(&high.to_be_bytes());
    bytes[2..].copy_from_slice(&low.to_be_bytes());
    bytes
}

#[cfg(test)]
mod id_tests {
    use super::new_id;

    #[test]
    fn ids_of_one_millisecond_sort_in_the_order_they_were_made_and_never_repeat() {
        let ids: Vec<String> = (0..10_000).map(|_| new_id(1_700_000_000_000)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids, "ids of one millisecond are made in increasing order, none repeated");
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!((uuid.get_version_num(), uuid.get_variant()), (7, uuid::Variant::RFC4122), "{id}");
            let (secs, nanos) = uuid.get_timestamp().expect("a v7 has a timestamp").to_unix();
            assert_eq!(secs * 1000 + u64::from(nanos / 1_000_000), 1_700_000_000_000, "{id}");
        }
    }

    #[test]
    fn a_new_millisecond_draws_fresh_bits_and_an_earlier_one_is_kept() {
        let (a, b) = (new_id(5_000), new_id(5_000));
        let c = new_id(4_000);
        assert!(a < b, "{a} < {b}");
        assert!(c < a, "the earlier millisecond's id sorts first: {c} < {a}");
        assert!(c.starts_with("00000000-0fa0-7"), "{c}");
        assert_ne!(new_id(5_000)[15..], b[15..], "fresh bits, not the last id's count");
    }
}

/// How `run_due` tells a library's task from the user's: by the stored payload alone.
#[cfg(test)]
mod routing_tests {
    use super::{library_of, library_payload, Routed};

    #[derive(Debug, PartialEq, serde::Deserialize)]
    enum Task {
        Ping { n: u32 },
        Tick,
    }

    fn decode(payload: &str) -> Result<Routed<Task>, serde_json::Error> {
        serde_json::from_str(payload)
    }

    #[test]
    fn a_library_payload_goes_to_the_library_and_any_other_to_the_user() {
        assert_eq!(library_payload("call"), r#"{"lumenize":"call"}"#);
        assert_eq!(library_of(&library_payload("call")), Some("call"));
        assert!(matches!(decode(&library_payload("call")), Ok(Routed::Library(name)) if name == "call"));
        assert!(matches!(decode(r#"{"Ping":{"n":3}}"#), Ok(Routed::User(Task::Ping { n: 3 }))));
        assert!(matches!(decode(r#""Tick""#), Ok(Routed::User(Task::Tick))));
        // Near misses are the user's, and fail as the user's type would.
        for payload in [r#"{"lumenize":"call","x":1}"#, r#"{"lumenize": "call"}"#, r#"{"Lumenize":"call"}"#, r#"["lumenize","call"]"#] {
            assert_eq!(library_of(payload), None, "{payload}");
            let e = decode(payload).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!e.is_empty(), "{payload} decoded as a task");
        }
    }
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
