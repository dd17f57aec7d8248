//! The alarms-robustness experiment: does every task scheduled with lumenize-alarms fire,
//! on time, under load, with failing and panicking handlers, across a crash?
//!
//! Each [`Scenario`] gets a fresh `RobustnessDO` of the worker `examples/alarms-robustness`,
//! schedules its tasks, waits (bounded) until nothing is queued, reads back every recorded
//! firing and checks it against what was scheduled ([`analyse`]).
//!
//! A scenario runs on a [`Scheduler`]: lumenize-alarms, or one of the worker's two
//! baselines, `floor` (a minimal hand-rolled multiplexer, which must deliver every task
//! too) and `native` (the one native alarm set directly, which by design delivers only the
//! task whose alarm was not overwritten: its losses are reported, not failed). The report
//! compares each non-baseline scheduler with the floor on the same scenario ([`VsFloor`]).
//!
//! ```no_run
//! use lumenize_driver::alarms_robustness::{self, Config, Scenario};
//! use lumenize_driver::{progress::Progress, target::{Target, TargetArgs}};
//!
//! let mut target = Target::open(&TargetArgs::default(), alarms_robustness::WORKER_DIR)?;
//! let config = Config::new(Scenario::matrix());
//! let report = alarms_robustness::run(&mut target, &config, &Progress::new(true))?;
//! println!("{}", report.table());
//! assert!(report.passed(), "{:?}", report.failures());
//! # Ok::<(), lumenize_driver::Error>(())
//! ```

mod analysis;
pub mod bench;
mod client;
mod scenario;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alarms_robustness::{ScheduleReply, ScheduleRequest, StatusReply};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

pub use analysis::{analyse, Analysis, Early, End, Expected};
pub use client::ObjectClient;
pub use scenario::{Fault, Load, Scenario, Scheduler, BACKOFF_MS};

use crate::http::Client;
use crate::output::{write_json, OutputArgs, RunInfo, Table};
use crate::progress::Progress;
use crate::stats::Summary;
use crate::target::{Target, TargetArgs};
use crate::{plot, Error, Result};

/// The experiment's name: its subcommand and its output subdirectory.
pub const NAME: &str = "alarms-robustness";
/// The worker it runs against, relative to the workspace root.
pub const WORKER_DIR: &str = "examples/alarms-robustness";

/// The command-line options of `lumenize-driver alarms-robustness`. `Args::default()` is
/// what no option gives: the whole matrix against a local worker.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub target: TargetArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
    /// Run only these scenarios (comma-separated names, or the part of names before a dash:
    /// `burst` selects every burst, `burst-100` selects burst-100, burst-100-1s and
    /// burst-100-5s; see --list).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub only: Vec<String>,
    /// Run only on these schedulers (comma-separated: lumenize, floor, native; default: each
    /// scenario on every scheduler the matrix gives it).
    #[arg(long, value_delimiter = ',', value_name = "SCHEDULERS")]
    pub scheduler: Vec<Scheduler>,
    /// Run only the crash scenario: SIGKILL the local runtime while a burst fires and
    /// requests are in flight, restart it on the same storage, check every task fires.
    #[arg(long, conflicts_with = "no_crash")]
    pub crash: bool,
    /// Leave the crash scenario out (it is always left out with --url).
    #[arg(long)]
    pub no_crash: bool,
    /// Add a burst of this many zero-delay tasks in one request, on lumenize (one by one and
    /// through `schedule_many`) and on the floor
    /// (repeatable, comma-separated): where is the limit?
    #[arg(long, value_delimiter = ',', value_name = "N")]
    pub burst: Vec<u32>,
    /// Instead of the scenarios: measure each scheduler operation per task inside the
    /// worker (N tasks per measurement, at most 5,000, the default batch limit; 9 rounds),
    /// lumenize-alarms against the floor, and print the medians. The runtime's clock counts
    /// whole milliseconds: N = 5,000 resolves 0.2 µs per task, N = 1,000 only 1 µs.
    #[arg(long, value_name = "N")]
    pub bench: Option<u32>,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// How long after the last task was due a task that has not ended counts as lost.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_GRACE_S)]
    pub grace: u64,
    /// Keep each scenario's object and its records in storage (default: cleared after the
    /// scenario, so a deployed worker does not accumulate them).
    #[arg(long)]
    pub keep: bool,
}

/// The default of `--grace`.
const DEFAULT_GRACE_S: u64 = 30;

impl Default for Args {
    fn default() -> Self {
        Args {
            target: TargetArgs::default(),
            output: OutputArgs::default(),
            only: Vec::new(),
            scheduler: Vec::new(),
            crash: false,
            no_crash: false,
            burst: Vec::new(),
            bench: None,
            list: false,
            grace: DEFAULT_GRACE_S,
            keep: false,
        }
    }
}

/// How to run the experiment (what [`Args`] say, for callers of [`run`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// The scenarios, run one after the other.
    pub scenarios: Vec<Scenario>,
    /// How long after the last task was due a task that has not ended counts as lost.
    pub grace: Duration,
    /// Interval between two looks at the object's status while waiting.
    pub poll: Duration,
    /// Clear each object's storage after its scenario.
    pub clear: bool,
}

impl Config {
    /// These scenarios with the default grace (30 s), poll interval (100 ms) and clearing.
    #[must_use]
    pub fn new(scenarios: Vec<Scenario>) -> Self {
        Config { scenarios, grace: Duration::from_secs(DEFAULT_GRACE_S), poll: Duration::from_millis(100), clear: true }
    }

    /// What `args` select, for a local target or not (a deployed worker cannot be crashed).
    /// Returns the configuration and notes on what was left out.
    ///
    /// # Errors
    /// [`Error::Usage`] for `--crash` with `--url`, or a selection that matches nothing.
    pub fn from_args(args: &Args) -> Result<(Config, Vec<String>)> {
        let local = args.target.url.is_none();
        if args.crash && !local {
            return Err(Error::NeedsLocal { what: "--crash".into() });
        }
        let mut notes = Vec::new();
        let selected = |s: &Scenario| args.only.is_empty() || args.only.iter().any(|p| s.selected_by(p));
        let on = |s: &Scenario| args.scheduler.is_empty() || args.scheduler.contains(&s.scheduler);
        let extra = args
            .burst
            .iter()
            .flat_map(|&n| Scenario::new(format!("burst-{n}"), Load::Burst { n, stagger_ms: 0 }, 0).on_each(&[Scheduler::Lumenize, Scheduler::LumenizeMany, Scheduler::Floor]));
        let mut scenarios: Vec<Scenario> = Scenario::matrix().into_iter().filter(selected).chain(extra).filter(on).collect();
        if args.crash {
            scenarios.retain(Scenario::crashes);
        } else if args.no_crash || !local {
            if !local && scenarios.iter().any(Scenario::crashes) {
                notes.push("the crash scenario is left out: it needs the local worker (the driver kills its runtime)".into());
            }
            scenarios.retain(|s| !s.crashes());
        }
        if scenarios.is_empty() {
            return Err(Error::Usage("no scenario selected (see --list)".into()));
        }
        let config = Config { grace: Duration::from_secs(args.grace), clear: !args.keep, ..Config::new(scenarios) };
        Ok((config, notes))
    }
}

/// What scheduling cost, from the requests' answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Requests answered.
    pub requests: u32,
    /// Wall time of the scheduling requests by the driver's clock (round trips included).
    pub wall_ms: f64,
    /// The same by the runtime's clock (sum of `finished_ms - started_ms`), which inside
    /// workerd advances only across I/O.
    pub runtime_ms: i64,
    /// Tasks scheduled per second of that wall time.
    pub tasks_per_s: f64,
    /// SQLite rows written per task scheduled.
    pub sql_rows_per_task: Option<f64>,
    /// With alarm tracing: the most times one request changed the native alarm.
    pub alarm_changes_max: Option<u32>,
}

/// What the crash did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Crash {
    /// Firings recorded just before the kill.
    pub fired_before_kill: i64,
    /// Requests answered to the other client while the runtime was up.
    pub acknowledged_meanwhile: u32,
    /// From the kill until the restarted worker answered (down time plus start-up).
    pub restart_ms: f64,
}

/// The outcome of one scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// What ran.
    pub scenario: Scenario,
    /// The object's name.
    pub object: String,
    /// What the firings show.
    pub analysis: Analysis,
    /// Lateness (fired minus scheduled, first attempts), milliseconds.
    pub lateness: Option<Summary>,
    /// Lateness from the later of the scheduled time and the end of the task's request.
    pub lateness_after_request: Option<Summary>,
    /// What scheduling cost.
    pub cost: Cost,
    /// For the crash scenario.
    pub crash: Option<Crash>,
    /// The object's status at the end (dead tasks, panics recorded).
    pub status: Option<StatusReply>,
    /// How long the driver waited for the tasks after scheduling them, milliseconds.
    pub waited_ms: f64,
    /// Whether the wait ended at the deadline with tasks still queued.
    pub timed_out: bool,
    /// An error that ended the scenario early.
    pub error: Option<String>,
}

impl ScenarioResult {
    /// Whether the scenario ran to its end and every check held. The native baseline's lost
    /// tasks are no failure (it keeps only the last alarm set), but its last task must fire.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    /// Whether the tasks lost are the ones the scheduler loses by design: for the native
    /// baseline, every task but the last one scheduled.
    #[must_use]
    pub fn losses_expected(&self) -> bool {
        let a = &self.analysis;
        !self.scenario.scheduler.delivers_every_task() && a.tasks > 0 && !a.lost.contains(&(a.tasks - 1))
    }

    /// What went wrong, one line each.
    #[must_use]
    pub fn failures(&self) -> Vec<String> {
        let name = self.scenario.label();
        let a = &self.analysis;
        let mut out = Vec::new();
        if let Some(e) = &self.error {
            out.push(format!("{name}: {e}"));
        }
        if !a.lost.is_empty() && !self.losses_expected() {
            let timed_out = if self.timed_out { " (still queued at the deadline)" } else { "" };
            let last = if self.scenario.scheduler.delivers_every_task() { "" } else { " (the last one scheduled among them)" };
            out.push(format!("{name}: {} of {} tasks lost{timed_out}{last}, first: {:?}", a.lost.len(), a.tasks, first(&a.lost)));
        }
        if !a.early.is_empty() {
            out.push(format!("{name}: {} early firings, first: {:?}", a.early.len(), first(&a.early)));
        }
        if a.unexplained_duplicates > 0 {
            out.push(format!("{name}: {} firings repeat an attempt of their task", a.unexplained_duplicates));
        }
        if a.strangers > 0 {
            out.push(format!("{name}: {} firings of tasks never scheduled", a.strangers));
        }
        out
    }
}

fn first<T: Clone>(items: &[T]) -> Vec<T> {
    items.iter().take(5).cloned().collect()
}

/// A scheduler's figures divided by the floor's on the same scenario in the same run (above
/// 1: slower than the floor). `None` where a figure is missing or the floor's is 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VsFloor {
    /// The scenario's name.
    pub scenario: String,
    /// The scheduler compared.
    pub scheduler: Scheduler,
    /// Time until all fired.
    pub all_fired: Option<f64>,
    /// Lateness p50.
    pub p50: Option<f64>,
    /// Lateness p99.
    pub p99: Option<f64>,
    /// Wall time per scheduling request, by the driver's clock.
    pub ms_per_request: Option<f64>,
}

impl VsFloor {
    /// `r` against `floor`.
    #[must_use]
    pub fn of(r: &ScenarioResult, floor: &ScenarioResult) -> Self {
        let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).filter(|&(_, b)| b > 0.0).map(|(a, b)| a / b);
        #[allow(clippy::cast_precision_loss)]
        let all_fired = |r: &ScenarioResult| r.analysis.all_fired_ms.map(|t| t as f64);
        let p = |r: &ScenarioResult, q: fn(&Summary) -> f64| r.lateness.as_ref().map(q);
        let per_request = |r: &ScenarioResult| (r.cost.requests > 0).then(|| r.cost.wall_ms / f64::from(r.cost.requests));
        VsFloor {
            scenario: r.scenario.name.clone(),
            scheduler: r.scenario.scheduler,
            all_fired: ratio(all_fired(r), all_fired(floor)),
            p50: ratio(p(r, |l| l.p50), p(floor, |l| l.p50)),
            p99: ratio(p(r, |l| l.p99), p(floor, |l| l.p99)),
            ms_per_request: ratio(per_request(r), per_request(floor)),
        }
    }

    /// For the table: time until all fired for a burst, time per request for one task per
    /// request; then lateness p50 and p99.
    #[must_use]
    pub fn cell(&self, load: &Load) -> String {
        let x = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}x"));
        let first = match load {
            Load::Burst { .. } => format!("all {}", x(self.all_fired)),
            Load::Sequential { .. } | Load::Spaced { .. } => format!("req {}", x(self.ms_per_request)),
        };
        format!("{first}, p50 {}, p99 {}", x(self.p50), x(self.p99))
    }
}

/// The outcome of a run of the experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Where and how it ran.
    pub info: RunInfo,
    /// One per scenario, in order.
    pub results: Vec<ScenarioResult>,
    /// Each non-baseline result against the floor's on the same scenario, where both ran.
    #[serde(default)]
    pub vs_floor: Vec<VsFloor>,
}

impl Report {
    /// The report of these results (with their comparisons to the floor).
    #[must_use]
    pub fn new(info: RunInfo, results: Vec<ScenarioResult>) -> Self {
        let mut report = Report { info, results, vs_floor: Vec::new() };
        report.vs_floor = report.results.iter().filter_map(|r| report.vs_floor_of(r)).collect();
        report
    }

    fn vs_floor_of(&self, r: &ScenarioResult) -> Option<VsFloor> {
        if r.scenario.scheduler.is_baseline() {
            return None;
        }
        let floor = self.results.iter().find(|f| f.scenario.scheduler == Scheduler::Floor && f.scenario.name == r.scenario.name)?;
        Some(VsFloor::of(r, floor))
    }

    /// Whether every scenario passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.results.iter().all(ScenarioResult::passed)
    }

    /// What went wrong, one line each.
    #[must_use]
    pub fn failures(&self) -> Vec<String> {
        self.results.iter().flat_map(ScenarioResult::failures).collect()
    }

    /// The results as a Markdown table.
    #[must_use]
    pub fn table(&self) -> Table {
        let mut table = Table::new([
            "scenario", "scheduler", "tasks", "delivered", "lost", "early", "dup (unexpl.)", "p50 ms", "p99 ms", "max ms", "all fired s", "sched tasks/s",
            "SQL rows/task", "alarm writes/req", "vs floor",
        ]);
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        for r in &self.results {
            let a = &r.analysis;
            let l = r.lateness.as_ref();
            table.row([
                r.scenario.name.clone(),
                r.scenario.scheduler.to_string(),
                a.tasks.to_string(),
                format!("{:.1}%", a.delivered_pct()),
                a.lost.len().to_string(),
                a.early.len().to_string(),
                format!("{} ({})", a.duplicates, a.unexplained_duplicates),
                ms(l.map(|l| l.p50)),
                ms(l.map(|l| l.p99)),
                ms(l.map(|l| l.max)),
                #[allow(clippy::cast_precision_loss)]
                a.all_fired_ms.map_or("-".into(), |t| format!("{:.2}", t as f64 / 1000.0)),
                format!("{:.0}", r.cost.tasks_per_s),
                r.cost.sql_rows_per_task.map_or("-".into(), |v| format!("{v:.2}")),
                r.cost.alarm_changes_max.map_or("-".into(), |v| format!("≤ {v}")),
                self.vs_floor_of(r).map_or("-".into(), |v| v.cell(&r.scenario.load)),
            ]);
        }
        table
    }

    /// Notes under the table: crash details, dead tasks, errors.
    #[must_use]
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for r in &self.results {
            let name = &r.scenario.label();
            if r.losses_expected() && !r.analysis.lost.is_empty() {
                let a = &r.analysis;
                notes.push(format!(
                    "{name}: {} of {} delivered ({:.1}%), as expected of a baseline: each setAlarm replaces the previous one, \
                     so only the tasks whose alarm fired before the next was set are delivered (the last one always is)",
                    a.delivered,
                    a.tasks,
                    a.delivered_pct()
                ));
            }
            if let Some(c) = &r.crash {
                let a = &r.analysis;
                notes.push(format!(
                    "{name}: killed with {} firings recorded; restarted and answering {:.1} s after the kill; \
                     {} requests answered meanwhile (their tasks counted above); {} unanswered, {} of which fired",
                    c.fired_before_kill,
                    c.restart_ms / 1000.0,
                    c.acknowledged_meanwhile,
                    a.unacknowledged,
                    a.unacknowledged_fired
                ));
            }
            if let Some(s) = &r.status {
                for d in &s.dead {
                    notes.push(format!(
                        "{name}: task {} dead after {} attempts: {}",
                        d.id,
                        d.attempts,
                        d.last_error.as_deref().unwrap_or("")
                    ));
                }
                if s.panics > 0 {
                    notes.push(format!("{name}: {} panics recorded by the object's abort_on_panic", s.panics));
                }
            }
        }
        notes.extend(self.failures());
        notes
    }
}

/// Runs `config`'s scenarios one after the other against `target`. A scenario that fails
/// is reported in its result; only a failure to start is an error.
///
/// # Errors
/// [`Error::NeedsLocal`] for a crash scenario against a deployed worker.
pub fn run(target: &mut Target, config: &Config, progress: &Progress) -> Result<Report> {
    if !target.is_local() && config.scenarios.iter().any(Scenario::crashes) {
        return Err(Error::NeedsLocal { what: "the crash scenario".into() });
    }
    let info = RunInfo::collect(target.describe());
    let http = Client::default();
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    for scheduler in WARM_UP {
        warm_up(&ObjectClient::new(http.clone(), &target.url(), &format!("warm-up-{scheduler}-{stamp}")), scheduler);
    }
    let mut results = Vec::new();
    for scenario in &config.scenarios {
        let object = format!("{}-{}-{stamp}", scenario.name, scenario.scheduler);
        let result = run_scenario(target, &http, scenario, &object, config, progress);
        progress.println(summary_line(&result));
        results.push(result);
    }
    Ok(Report::new(info, results))
}

/// The schedulers [`warm_up`] runs, in this order, before the scenarios.
const WARM_UP: [alarms_robustness::Scheduler; 3] =
    [alarms_robustness::Scheduler::Lumenize, alarms_robustness::Scheduler::LumenizeMany, alarms_robustness::Scheduler::Floor];

/// How many tasks [`warm_up`] schedules on each scheduler.
const WARM_UP_TASKS: u32 = 3_000;

/// Schedules and runs a burst of [`WARM_UP_TASKS`] on `scheduler`, on an object of its own,
/// unmeasured: a fresh worker runs its wasm in V8's baseline tier until its hot functions
/// are compiled again, optimized, in the background, which takes thousands of calls (and
/// longer on a busy machine). With a warm-up of 10 tasks, the first scenario measured (1,000
/// tasks stored one `schedule` at a time) ran 2 to 4 times slower in a fresh worker than
/// in the same worker a run later, which made one-by-one scheduling look slower than it is.
/// Bounded (30 s); errors are left to the scenarios to meet.
fn warm_up(client: &ObjectClient, scheduler: alarms_robustness::Scheduler) {
    let _ = client.schedule(&ScheduleRequest { count: WARM_UP_TASKS, scheduler, ..ScheduleRequest::default() });
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && client.status().is_ok_and(|s| s.queued) {
        thread::sleep(Duration::from_millis(50));
    }
    let _ = client.clear();
}

fn summary_line(r: &ScenarioResult) -> String {
    let a = &r.analysis;
    let late = r.lateness.as_ref().map_or(String::new(), |l| format!(", lateness p50 {:.0} ms p99 {:.0} ms", l.p50, l.p99));
    let verdict = match (r.passed(), r.losses_expected() && !a.lost.is_empty()) {
        (true, true) => "ok (a baseline, losses expected)",
        (true, false) => "ok",
        (false, _) => "FAILED",
    };
    format!("{:<29} {verdict}: {}/{} delivered, {} early{late}", r.scenario.label(), a.delivered, a.tasks, a.early.len())
}

/// What was sent, and what the answers promise.
#[derive(Default)]
struct Sent {
    replies: Vec<ScheduleReply>,
    expected: Vec<Expected>,
    unacknowledged: Vec<u32>,
}

impl Sent {
    /// Records an answered request for `request`.
    fn answered(&mut self, s: &Scenario, request: &ScheduleRequest, reply: ScheduleReply) {
        for i in 0..reply.count {
            let n = reply.first + i;
            let offset = s.delay_ms + u64::from(i) * request.stagger_ms;
            let floor_ms = reply.started_ms + i64::try_from(offset).unwrap_or(i64::MAX);
            let end = match s.fault {
                Fault::Panic { attempts } if Some(n) == request.panic_n => End::Dies { attempts },
                Fault::FailFirst { k } => End::Succeeds { failures: k },
                _ => End::Succeeds { failures: 0 },
            };
            self.expected.push(Expected { n, floor_ms, stored_ms: reply.finished_ms, end });
        }
        self.replies.push(reply);
    }
}

/// The request that schedules tasks `first .. first + count` of scenario `s`.
fn request(s: &Scenario, first: u32, count: u32) -> ScheduleRequest {
    let (fail_first, panic_n, attempts) = match s.fault {
        Fault::FailFirst { k } => (k, None, Some(k + 1)),
        Fault::Panic { attempts } => (0, Some(s.load.tasks() / 2), Some(attempts)),
        Fault::None | Fault::Crash { .. } => (0, None, None),
    };
    let stagger_ms = match s.load {
        Load::Burst { stagger_ms, .. } => stagger_ms,
        _ => 0,
    };
    let faulty = fail_first > 0 || panic_n.is_some();
    ScheduleRequest {
        first,
        count,
        delay_ms: s.delay_ms,
        stagger_ms,
        fail_first,
        panic_n,
        attempts,
        backoff_ms: faulty.then_some(BACKOFF_MS),
        trace_alarm: s.trace_alarm,
        scheduler: s.scheduler,
    }
}

fn run_scenario(target: &mut Target, http: &Client, s: &Scenario, object: &str, config: &Config, progress: &Progress) -> ScenarioResult {
    let mut result = ScenarioResult {
        scenario: s.clone(),
        object: object.to_owned(),
        analysis: Analysis::default(),
        lateness: None,
        lateness_after_request: None,
        cost: Cost::default(),
        crash: None,
        status: None,
        waited_ms: 0.0,
        timed_out: false,
        error: None,
    };
    let bar = progress.bar(u64::from(s.load.tasks()), &s.label());
    if let Err(e) = drive(target, http, s, object, config, &bar, &mut result) {
        result.error = Some(e.to_string());
    }
    bar.finish_and_clear();
    result
}

/// Schedules, crashes if asked, waits, reads back and analyses, filling `result`.
fn drive(target: &mut Target, http: &Client, s: &Scenario, object: &str, config: &Config, bar: &ProgressBar, result: &mut ScenarioResult) -> Result<()> {
    let mut client = ObjectClient::new(http.clone(), &target.url(), object);
    bar.set_message(format!("{} scheduling", s.label()));
    let started = Instant::now();
    let mut sent = Sent::default();
    match s.load {
        Load::Burst { n, .. } => {
            let req = request(s, 0, n);
            sent.answered(s, &req, client.schedule(&req)?);
        }
        Load::Sequential { n } | Load::Spaced { n, .. } => {
            for i in 0..n {
                if let Load::Spaced { pause_ms, .. } = s.load {
                    if i > 0 {
                        thread::sleep(Duration::from_millis(pause_ms));
                    }
                }
                let req = request(s, i, 1);
                sent.answered(s, &req, client.schedule(&req)?);
                bar.set_position(u64::from(i + 1));
            }
        }
    }
    result.cost = cost(&sent.replies, started.elapsed(), s.load.tasks());
    if let Fault::Crash { kill_after_ms, down_ms } = s.fault {
        result.crash = Some(crash(target, &mut client, s, &mut sent, kill_after_ms, down_ms)?);
        bar.set_length(sent.expected.len() as u64);
    }

    bar.set_message(format!("{} firing", s.label()));
    let waiting = Instant::now();
    let deadline = waiting + budget(s) + config.grace;
    result.timed_out = wait(&client, deadline, config.poll, bar);
    result.waited_ms = waiting.elapsed().as_secs_f64() * 1000.0;

    let firings = client.firings()?;
    let status = client.status()?;
    let started_ms = sent.replies.iter().map(|r| r.started_ms).min().unwrap_or(0);
    result.analysis = analyse(&sent.expected, &sent.unacknowledged, started_ms, &firings, &status);
    result.lateness = Summary::of(&result.analysis.lateness_ms);
    result.lateness_after_request = Summary::of(&result.analysis.lateness_after_request_ms);
    result.status = Some(status);
    if config.clear {
        client.clear()?;
    }
    Ok(())
}

fn cost(replies: &[ScheduleReply], wall: Duration, tasks: u32) -> Cost {
    let rows: i64 = replies.iter().map(|r| r.sql_rows_written).sum();
    let wall_s = wall.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    Cost {
        requests: u32::try_from(replies.len()).unwrap_or(u32::MAX),
        wall_ms: wall_s * 1000.0,
        runtime_ms: replies.iter().map(|r| r.finished_ms - r.started_ms).sum(),
        tasks_per_s: if wall_s > 0.0 { f64::from(tasks) / wall_s } else { 0.0 },
        sql_rows_per_task: (tasks > 0).then(|| rows as f64 / f64::from(tasks)),
        alarm_changes_max: replies.iter().filter_map(|r| r.alarm_changes).max(),
    }
}

/// How long the scenario's tasks may legitimately take after scheduling, before the grace:
/// the latest due time, the retries' backoffs, and a little per task.
fn budget(s: &Scenario) -> Duration {
    let n = u64::from(s.load.tasks());
    let spread = match s.load {
        Load::Burst { stagger_ms, .. } => stagger_ms * n,
        _ => 0,
    };
    let retries = match s.fault {
        Fault::FailFirst { k: attempts } | Fault::Panic { attempts } => (0..attempts).map(|a| (BACKOFF_MS << a).min(BACKOFF_MS * 8)).sum(),
        Fault::Crash { .. } => 10_000, // the default policy's backoffs for attempts cut short
        Fault::None => 0,
    };
    Duration::from_millis(s.delay_ms + spread + retries + 2 * n)
}

/// Polls the object's status until nothing is queued or `deadline`; whether it timed out.
/// Errors (the object resetting after a panic, the runtime restarting) are retried.
fn wait(client: &ObjectClient, deadline: Instant, poll: Duration, bar: &ProgressBar) -> bool {
    loop {
        if let Ok(status) = client.status() {
            bar.set_position(u64::try_from(status.succeeded).unwrap_or(0));
            if !status.queued {
                return false;
            }
        }
        if Instant::now() >= deadline {
            return true;
        }
        thread::sleep(poll);
    }
}

/// The crash: another client keeps scheduling one task per request; `kill_after_ms` later
/// the runtime is killed, stays down `down_ms`, and restarts on the same storage.
fn crash(target: &mut Target, client: &mut ObjectClient, s: &Scenario, sent: &mut Sent, kill_after_ms: u64, down_ms: u64) -> Result<Crash> {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, stop, s) = (client.clone(), stop.clone(), s.clone());
        let first = s.load.tasks();
        thread::spawn(move || {
            let mut answered = Vec::new();
            let mut n = first;
            while !stop.load(Ordering::Relaxed) {
                let req = request(&Scenario { fault: Fault::None, trace_alarm: false, ..s.clone() }, n, 1);
                match client.schedule(&req) {
                    Ok(reply) => answered.push((req, reply)),
                    Err(_) => return (answered, Some(n)),
                }
                n += 1;
            }
            (answered, None)
        })
    };
    thread::sleep(Duration::from_millis(kill_after_ms));
    let fired_before_kill = client.status().map_or(-1, |st| st.firings);
    let killed = Instant::now();
    let outcome = target.kill();
    stop.store(true, Ordering::Relaxed);
    let (answered, unanswered) = writer.join().unwrap_or_default();
    outcome?;
    let acknowledged_meanwhile = u32::try_from(answered.len()).unwrap_or(u32::MAX);
    for (req, reply) in answered {
        sent.answered(s, &req, reply);
    }
    sent.unacknowledged.extend(unanswered);
    thread::sleep(Duration::from_millis(down_ms));
    target.restart()?;
    *client = client.at(&target.url());
    Ok(Crash { fired_before_kill, acknowledged_meanwhile, restart_ms: killed.elapsed().as_secs_f64() * 1000.0 })
}

/// The command-line entry point: runs the selected scenarios, prints the table, writes
/// `results.json` and `lateness.svg` under `<out>/alarms-robustness/`.
///
/// # Errors
/// Failing to start the worker or to write the files. Failed checks are not errors: see
/// [`Report::passed`].
pub fn main(args: &Args, progress: &Progress) -> Result<Report> {
    let (config, notes) = Config::from_args(args)?;
    if args.list {
        for s in &config.scenarios {
            println!("{:<20} {:<9} {}", s.name, s.scheduler, serde_json::to_string(&(s.load, s.delay_ms, s.fault)).unwrap_or_default());
        }
        return Ok(Report::new(RunInfo::collect(String::new()), Vec::new()));
    }
    for note in notes {
        progress.println(format!("note: {note}"));
    }
    let spinner = progress.spinner("starting the worker");
    let target = Target::open(&args.target, WORKER_DIR);
    spinner.finish_and_clear();
    let mut target = target?;
    progress.println(format!("{NAME}: {}", target.describe()));
    if let Some(n) = args.bench {
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let info = RunInfo::collect(target.describe());
        let reply = bench::run(&target, n, 9, &format!("bench-{stamp}"))?;
        write_json(&args.output.dir(NAME)?.join("bench.json"), &reply)?;
        println!("\n{}", bench::table(&reply));
        let load = info.load_average.map_or(String::new(), |l| format!(", load average {l:.2} at the start"));
        println!("{}{load}", info.machine);
        return Ok(Report::new(info, Vec::new()));
    }
    let report = run(&mut target, &config, progress)?;
    let dir = args.output.dir(NAME)?;
    write_json(&dir.join("results.json"), &report)?;
    let rows: Vec<(String, Summary)> = report.results.iter().filter_map(|r| Some((r.scenario.label(), r.lateness.clone()?))).collect();
    plot::percentile_rows(&dir.join("lateness.svg"), "alarms-robustness: lateness (fired - scheduled) per scenario", "ms", &rows)?;
    println!("\n{}", report.table());
    for note in report.notes() {
        println!("- {note}");
    }
    let load = report.info.load_average.map_or(String::new(), |l| format!(", load average {l:.2} at the start"));
    println!("\n{}\n{}{load}", report.info.target, report.info.machine);
    println!("written: {} and {}", dir.join("results.json").display(), dir.join("lateness.svg").display());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, scheduler: Scheduler, load: Load, delivered: u32, all_fired_ms: Option<i64>, lateness_ms: &[f64]) -> ScenarioResult {
        let tasks = load.tasks();
        let analysis = Analysis { tasks, delivered, lost: (0..tasks - delivered).collect(), all_fired_ms, ..Analysis::default() };
        ScenarioResult {
            scenario: Scenario::new(name, load, 0).on(scheduler),
            object: name.into(),
            analysis,
            lateness: Summary::of(lateness_ms),
            lateness_after_request: None,
            cost: Cost { requests: if matches!(load, Load::Burst { .. }) { 1 } else { tasks }, wall_ms: f64::from(tasks), ..Cost::default() },
            crash: None,
            status: None,
            waited_ms: 0.0,
            timed_out: false,
            error: None,
        }
    }

    const BURST: Load = Load::Burst { n: 10, stagger_ms: 0 };

    #[test]
    fn the_native_baseline_may_lose_tasks_but_not_its_last_one() {
        // Tasks 0..9 lost, task 9 (the last scheduled) delivered: expected of native.
        let native = result("burst-10", Scheduler::Native, BURST, 1, None, &[4.0]);
        assert!(native.passed() && native.losses_expected(), "{:?}", native.failures());
        let mut last_lost = native.clone();
        last_lost.analysis.lost = vec![9];
        assert!(!last_lost.passed(), "the last task of a native burst must fire");
        let floor = result("burst-10", Scheduler::Floor, BURST, 9, None, &[4.0]);
        assert!(!floor.passed() && !floor.losses_expected(), "the floor must deliver every task");
    }

    #[test]
    fn each_non_baseline_result_is_divided_by_the_floor_of_the_same_scenario() {
        let report = Report::new(
            RunInfo::collect(String::new()),
            vec![
                result("burst-10", Scheduler::Lumenize, BURST, 10, Some(300), &[20.0, 40.0]),
                result("burst-10", Scheduler::Floor, BURST, 10, Some(100), &[10.0, 20.0]),
                result("burst-10", Scheduler::Native, BURST, 1, None, &[4.0]),
                result("burst-20", Scheduler::Lumenize, Load::Burst { n: 20, stagger_ms: 0 }, 20, Some(5), &[1.0]),
            ],
        );
        assert_eq!(report.vs_floor.len(), 1, "burst-20 has no floor, the baselines no ratio: {:?}", report.vs_floor);
        let v = &report.vs_floor[0];
        assert_eq!((v.scenario.as_str(), v.scheduler, v.all_fired, v.ms_per_request), ("burst-10", Scheduler::Lumenize, Some(3.0), Some(1.0)));
        assert!(v.p99.is_some_and(|r| (r - 2.0).abs() < 0.01), "{v:?}");
        assert_eq!(v.cell(&BURST), "all 3.00x, p50 2.00x, p99 2.00x");
        assert!(report.passed(), "{:?}", report.failures());
    }
}
