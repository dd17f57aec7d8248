//! The chaos experiment: random operations and faults against lumenize-alarms on workerd,
//! checked against the driver's own record.
//!
//! Several `AlarmsDO` objects of the sandbox worker (`testing/sandbox`, started locally
//! under `wrangler dev` through lumenize-harness) get a random mix of the whole public API:
//! `schedule` after delays, at past, near, far and edge times (`0`, `MAX_TIME_MS`), cron and
//! interval tasks, explicit ids that collide (upsert, `keep_existing`), bursts (one
//! `schedule` each, or one `schedule_many`), `cancel`, `requeue`, `get`, `list`, the test
//! hook, handlers that fail k times, panic, take long, reschedule themselves, schedule or
//! cancel other tasks, payloads that do not decode, and invalid inputs that must each get
//! a typed 4xx. Mixed in, a quarter of the requests go to call origins (`CallerDO`):
//! lumenize-call calls in both dispatch modes to remotes (`RemoteDO`) that answer, fail,
//! panic, are slow, or reply large or too large to store, with timeouts, several to a
//! request, and cancels. Meanwhile the runtime is SIGKILLed (between requests or in the middle of
//! one) and restarted on the same storage, and alarms are deleted behind the scheduler's
//! back.
//!
//! The steps come from a seeded [`Plan`]: the same seed (with the same `--objects`) gives
//! the same steps in the same order, whatever the runtime answers; only the timing varies,
//! and the checks allow for that by what the answers and the records say, never by slack.
//! After the last step the run drains the calls, then the scheduler (bounded waits
//! everywhere), and [`check`] and [`check_calls`] hold the record against the invariants; the [`Report`] says what was exercised, which invariants
//! broke, and the command that replays the run.
//!
//! ```no_run
//! use std::time::Duration;
//! use lumenize_driver::chaos::{self, Args};
//! use lumenize_driver::progress::Progress;
//!
//! let args = Args { seed: Some(7), duration: Duration::from_secs(60), ..Args::default() };
//! let mut target = chaos::open_target()?;
//! let report = chaos::run(&mut target, &args, &Progress::new(true))?;
//! println!("{}", report.render());
//! assert!(report.passed());
//! # Ok::<(), lumenize_driver::Error>(())
//! ```

mod call_check;
mod call_drain;
mod call_plan;
mod calls;
mod check;
mod drain;
mod exec;
mod faults;
mod invalid;
mod invariant;
mod model;
mod plan;
mod report;
mod session;
mod wire;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lumenize_harness::{workspace_root, WorkerOptions};

pub use call_check::{check_calls, CallTally};
pub use call_drain::CallsDrained;
pub use call_plan::{CallOp, Dispatch, MakeCall, Remote, BIG_MAX_BYTES, CALL_EVERY, LONG_TIMEOUT_MS, ORIGINS, REMOTES, TOO_BIG_BYTES};
pub use calls::{fail_message, Call, Cancel, CallsModel, Continued, Got, Want};
pub use check::{check, Drained, Tally};
pub use faults::{Faults, CALL_PANIC_WITHIN_MS, PANIC_RESET_MS};
pub use invariant::{Invariant, Violation};
pub use invalid::{Invalid, MAX_TIME_MS};
pub use model::{Child, End, Expect, Kill, Model, ObjectModel, Outcome, Request, Role, Task};
pub use plan::{Action, Burst, Handler, MidRequest, Op, Plan, Schedule, Step, TaskRef, When, EXPLICIT_IDS, FAR_MS, KILL_EVERY, LOSE_ALARM_EVERY, PANIC_EVERY, RECURRING_IDS};
pub use report::{Answers, CallCounts, ObjectRecords, Records, Report};
pub use wire::{Fired, Stored};

use crate::output::{write_json, OutputArgs, RunInfo};
use crate::progress::Progress;
use crate::target::Target;
use crate::{Error, Result};

/// The experiment's name: its subcommand and its output subdirectory.
pub const NAME: &str = "chaos";
/// The worker it runs against, relative to the workspace root.
pub const WORKER_DIR: &str = "testing/sandbox";

/// The command-line options of `lumenize-driver chaos`. `Args::default()` is what no option
/// gives.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
    /// The seed of the plan (default: a fresh one, printed). The same seed, --objects and
    /// --no-panics give the same steps.
    #[arg(long)]
    pub seed: Option<u64>,
    /// How long to run steps before the drain: `90s`, `3m`, `10m`, `1h` (a bare number is
    /// seconds).
    #[arg(long, value_parser = parse_duration, default_value = "3m")]
    pub duration: Duration,
    /// Run exactly this many steps (what a failing run printed), whatever --duration says.
    #[arg(long)]
    pub steps: Option<u64>,
    /// How many objects.
    #[arg(long, default_value_t = 4)]
    pub objects: usize,
    /// How long the drain waits for the queues to empty, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 90)]
    pub drain: u64,
    /// Leave panicking tasks out of the plan (another request is drawn in their place).
    #[arg(long)]
    pub no_panics: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args { output: OutputArgs::default(), seed: None, duration: Duration::from_secs(180), steps: None, objects: 4, drain: 90, no_panics: false }
    }
}

/// Parses `90s`, `3m`, `10m`, `1h`, `500ms` or a bare number of seconds.
///
/// ```
/// use std::time::Duration;
/// use lumenize_driver::chaos::parse_duration;
/// assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
/// assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
/// assert!(parse_duration("soon").is_err());
/// ```
///
/// # Errors
/// A text that is not a number followed by `ms`, `s`, `m`, `h` or nothing.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 90s, 3m or 10m"))?;
    let ms = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        other => return Err(format!("unknown unit {other:?} in {text:?} (use ms, s, m or h)")),
    };
    Ok(Duration::from_millis(n.saturating_mul(ms)))
}

/// Unix milliseconds by this machine's clock (workerd on 127.0.0.1 reads the same clock).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A seed for a run that was given none.
fn fresh_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    // Keep it short enough to type: 0 ..= 999,999,999.
    u64::try_from((nanos ^ (u128::from(std::process::id()) << 20)) % 1_000_000_000).unwrap_or(0)
}

/// Builds (once per process) and starts the sandbox worker locally: a chaos run kills and
/// restarts its runtime, which only a worker this process started allows.
///
/// # Errors
/// [`Error::Harness`] when it does not build or start.
pub fn open_target() -> Result<Target> {
    // The secret lumenize-call signs and checks calls with (any value: origins and remotes
    // are objects of this one worker).
    let options = WorkerOptions::default().arg("--var").arg(format!("LUMENIZE_CALL_SECRET:chaos-{}", fresh_seed()));
    Target::local(&workspace_root().join(WORKER_DIR), options)
}

/// Runs the plan of `args` against `target` (which must be local), drains, checks. The
/// report carries every record of the run ([`Report::records`]).
///
/// # Errors
/// [`Error::NeedsLocal`] for a deployed worker; a kill or restart that failed. Broken
/// invariants are no error: see [`Report::passed`].
pub fn run(target: &mut Target, args: &Args, progress: &Progress) -> Result<Report> {
    if !target.is_local() {
        return Err(Error::NeedsLocal { what: "the chaos experiment".into() });
    }
    let seed = args.seed.unwrap_or_else(fresh_seed);
    let objects = args.objects.max(1);
    let info = RunInfo::collect(target.describe());
    let replay = format!("--seed {seed} --objects {objects}{}", if args.no_panics { " --no-panics" } else { "" });
    progress.println(format!("chaos: seed {seed} (replay: {replay}); {}", target.describe()));
    let mut session = session::Session::new(target, Model::new(&format!("chaos-{seed}"), objects));
    let mut plan = Plan::new(seed, objects);
    if args.no_panics {
        plan = plan.without_panics();
    }
    let started = Instant::now();
    let bar = match args.steps {
        Some(n) => progress.bar(n, "chaos steps"),
        None => progress.bar(args.duration.as_secs().max(1), "chaos seconds"),
    };
    // Bounded: by the step count, or by the duration (each step ends within the client's
    // timeout, or a kill's bounded restart).
    loop {
        let done = match args.steps {
            Some(n) => session.steps >= n,
            None => started.elapsed() >= args.duration,
        };
        if done {
            break;
        }
        let Some(step) = plan.next() else { break };
        session.step(&step)?;
        bar.set_position(args.steps.map_or(started.elapsed().as_secs(), |_| session.steps));
        bar.set_message(format!("chaos: {} steps, {} kills", session.steps, session.model.kills.len()));
    }
    bar.finish_and_clear();
    let operations_s = started.elapsed().as_secs_f64();
    let spinner = progress.spinner("chaos: draining");
    let drain_started = Instant::now();
    let calls_drained = call_drain::drain(&mut session, Duration::from_secs(args.drain));
    let (drained, fired) = drain::drain(&mut session, Duration::from_secs(args.drain));
    spinner.finish_and_clear();
    let drain_s = drain_started.elapsed().as_secs_f64();
    let faults = Faults::of(&session.model, &fired);
    let (mut violations, tally) = check(&session.model, &fired, &drained, &faults);
    let (call_violations, call_tally) = check_calls(&session.model, &calls_drained, &faults);
    violations.extend(call_violations);
    let panics = u32::try_from(faults.panics.len()).unwrap_or(u32::MAX);
    let calls = CallCounts::new(&session.model, call_tally);
    let replay = format!("cargo xtask experiments chaos {replay} --steps {}", session.steps);
    let mut report = Report::new(info, seed, &session.model, session.steps, panics, (operations_s, drain_s), (tally, calls), violations, replay);
    report.records = Records::new(session.model, fired, drained, calls_drained);
    Ok(report)
}

/// The command-line entry point: starts the sandbox worker, runs, prints the summary and
/// writes `<out>/chaos/chaos-<seed>.json`.
///
/// # Errors
/// Failing to start the worker, to kill or restart it, or to write the file.
pub fn main(args: &Args, progress: &Progress) -> Result<Report> {
    let spinner = progress.spinner("starting the sandbox worker");
    let target = open_target();
    spinner.finish_and_clear();
    let mut target = target?;
    let report = run(&mut target, args, progress)?;
    let dir = args.output.dir(NAME)?;
    let path = dir.join(format!("chaos-{}.json", report.seed));
    write_json(&path, &report)?;
    let records = dir.join(format!("chaos-{}-records.json", report.seed));
    write_json(&records, &report.records)?;
    println!("\n{}", report.render());
    let load = report.info.load_average.map_or(String::new(), |l| format!(", load average {l:.2} at the start"));
    println!("\n{}\n{}{load}\nwritten: {} and {}", report.info.target, report.info.machine, path.display(), records.display());
    Ok(report)
}
