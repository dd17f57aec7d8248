//! The call-alarm-delay experiment: what does `Dispatch::Alarm` cost against
//! `Dispatch::Direct`, and each against a plain `stub.fetch` (`raw`) and the same with the
//! three durable writes a call needs (`raw-durable`, the durable floor)?
//!
//! One WebSocket to a fresh `OriginDO` of `examples/call-alarm-delay`. After a warm-up of
//! every mode, `--runs` runs each do, per mode in an order that rotates from run to run:
//! - a latency segment: `ops / runs` operations with at most `--in-flight` outstanding,
//!   each timed from send to answer on the driver's clock;
//! - a batch segment: `ops / runs` operations sent at once, timed from the first send to
//!   the last answer (throughput), each operation timed too.
//!
//! An operation with no answer after `--deadline-secs` is counted lost, and the run goes on.

mod client;
mod report;
mod segment;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lumenize_harness::workspace_root;

pub use client::{Answer, Client, Mode};
pub use report::{Comparison, Kind, ModeResult, Report, SegmentRecord, Targets, ALARM_PATH_MAX_MS, DIRECT_OVER_RAW_DURABLE_MAX};
pub use segment::{Outcome, Segment};

use crate::output::{OutputArgs, RunInfo};
use crate::progress::Progress;
use crate::target::{Target, TargetArgs};
use crate::{Error, Result};

/// The experiment's name: its subcommand and its output subdirectory.
pub const NAME: &str = "call-alarm-delay";
/// The worker, relative to the workspace root.
pub const WORKER_DIR: &str = "examples/call-alarm-delay";

/// Options of `lumenize-driver call-alarm-delay`. `Args::default()` is what no option gives.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub target: TargetArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
    /// Operations per mode, in each of latency and batch mode (split over the runs).
    #[arg(long, default_value_t = 1000)]
    pub ops: u64,
    /// Runs; the order of the modes rotates from one run to the next.
    #[arg(long, default_value_t = 5)]
    pub runs: u64,
    /// Warm-up operations per mode before measuring (not counted).
    #[arg(long, default_value_t = 50)]
    pub warmup: u64,
    /// Latency mode: at most this many operations outstanding.
    #[arg(long, default_value_t = 1)]
    pub in_flight: u64,
    /// The modes to compare (comma-separated). `raw-durable`: `raw` with a call's three
    /// durable writes. `alarm-now` / `direct-now`: the origin runs its due tasks through the
    /// test hook right after the call instead of waiting for the native alarm. The default
    /// measures every target.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "alarm,direct,raw,raw-durable,alarm-now")]
    pub modes: Vec<Mode>,
    /// An operation with no answer after this many seconds is lost.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub deadline: u64,
    /// Skip the batch segments.
    #[arg(long)]
    pub no_batch: bool,
    /// Skip the latency segments.
    #[arg(long)]
    pub no_latency: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            target: TargetArgs::default(),
            output: OutputArgs::default(),
            ops: 1000,
            runs: 5,
            warmup: 50,
            in_flight: 1,
            modes: vec![Mode::Alarm, Mode::Direct, Mode::Raw, Mode::RawDurable, Mode::AlarmNow],
            deadline: 30,
            no_batch: false,
            no_latency: false,
        }
    }
}

/// `--url`, or the local worker with a fresh `LUMENIZE_CALL_SECRET`.
///
/// # Errors
/// [`Error::Harness`] when the local worker does not build or start.
pub fn open_target(args: &TargetArgs) -> Result<Target> {
    if args.url.is_some() {
        return Target::open(args, WORKER_DIR);
    }
    let options = args.worker_options().arg("--var").arg(format!("LUMENIZE_CALL_SECRET:{}", random_secret()?));
    Target::local(&workspace_root().join(WORKER_DIR), options)
}

/// 32 hex digits from the operating system's random source.
fn random_secret() -> Result<String> {
    use std::io::Read;
    let path = "/dev/urandom";
    let mut bytes = [0u8; 16];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut bytes)).map_err(|source| Error::Io { path: path.into(), source })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `ops` split over `runs`: the share of run `run` (the first `ops % runs` runs get one more).
fn share(ops: u64, runs: u64, run: u64) -> u64 {
    ops / runs + u64::from(run < ops % runs)
}

/// `modes` rotated left by `run`: each mode goes first, second, ... in turn.
fn order(modes: &[Mode], run: u64) -> Vec<Mode> {
    let mut order = modes.to_vec();
    if !order.is_empty() {
        let k = usize::try_from(run % order.len() as u64).unwrap_or(0);
        order.rotate_left(k);
    }
    order
}

/// The segments of an experiment, in order: (run, kind, segment); run `None` is warm-up.
fn plan(args: &Args) -> Vec<(Option<u64>, Kind, Segment)> {
    let runs = args.runs.max(1);
    let deadline = Duration::from_secs(args.deadline.max(1));
    let mut next_id = 1;
    let mut segment = |mode, count, in_flight| {
        let s = Segment { mode, count, first_id: next_id, in_flight, deadline };
        next_id += count;
        s
    };
    let mut plan = Vec::new();
    if args.warmup > 0 {
        for &mode in &args.modes {
            plan.push((None, Kind::Latency, segment(mode, args.warmup, args.in_flight)));
        }
    }
    for run in 0..runs {
        let count = share(args.ops, runs, run);
        if count == 0 {
            continue;
        }
        for kind in [Kind::Latency, Kind::Batch] {
            if (kind == Kind::Latency && args.no_latency) || (kind == Kind::Batch && args.no_batch) {
                continue;
            }
            for mode in order(&args.modes, run) {
                let in_flight = if kind == Kind::Batch { count } else { args.in_flight };
                plan.push((Some(run), kind, segment(mode, count, in_flight)));
            }
        }
    }
    plan
}

/// Runs the experiment against `target` and gathers the report.
///
/// # Errors
/// [`Error::Transport`] when the socket fails; lost answers are not errors, they are counted.
pub fn run(target: &Target, args: &Args, progress: &Progress) -> Result<Report> {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let origin = format!("driver-{}-{millis}", std::process::id());
    let info = RunInfo::collect(target.describe());
    let plan = plan(args);
    let total: u64 = plan.iter().map(|(_, _, s)| s.count).sum();
    let bar = progress.bar(total, NAME);
    let mut client = Client::connect(&target.url(), &origin)?;
    let mut segments = Vec::new();
    let mut warmup = Vec::new();
    for (run, kind, segment) in &plan {
        bar.set_message(match run {
            None => format!("warm-up {}", segment.mode.name()),
            Some(r) => format!("run {}/{} {} {}", r + 1, args.runs.max(1), kind.name(), segment.mode.name()),
        });
        let outcome = segment::run(&mut client, segment, || bar.inc(1))?;
        match run {
            None => warmup.push(outcome),
            Some(run) => segments.push(SegmentRecord { run: *run, kind: *kind, outcome }),
        }
    }
    bar.finish_and_clear();
    client.close();
    Ok(Report::new(args, info, origin, &warmup, segments))
}

/// The subcommand: opens the target, runs, prints the tables, writes
/// `<out>/call-alarm-delay/{call-alarm-delay.json, latency.svg, batch.svg}`, stops a local
/// worker. [`Report::passed`] says whether every operation completed.
///
/// # Errors
/// As [`open_target`] and [`run`]; [`Error::Io`] / [`Error::Plot`] for the files.
pub fn main(args: &Args, progress: &Progress) -> Result<Report> {
    let target = open_target(&args.target)?;
    let report = run(&target, args, progress)?;
    drop(target);
    println!("{}", report.render());
    let written = report.write(&args.output)?;
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    progress.println(format!("wrote {}", names.join(", ")));
    Ok(report)
}

/// Latencies of one kind per mode, all runs together (for tests and pictures).
pub fn latencies(segments: &[report::SegmentRecord], kind: Kind) -> BTreeMap<Mode, Vec<f64>> {
    let mut map: BTreeMap<Mode, Vec<f64>> = BTreeMap::new();
    for s in segments.iter().filter(|s| s.kind == kind) {
        map.entry(s.outcome.mode).or_default().extend(&s.outcome.latencies_ms);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_interleaves_modes_and_splits_operations() {
        let args = Args { ops: 10, runs: 3, warmup: 2, modes: vec![Mode::Alarm, Mode::Direct, Mode::Raw], ..Args::default() };
        let plan = plan(&args);
        let warm: Vec<_> = plan.iter().filter(|(r, _, _)| r.is_none()).collect();
        assert_eq!(warm.len(), 3);
        for mode in [Mode::Alarm, Mode::Direct, Mode::Raw] {
            for kind in [Kind::Latency, Kind::Batch] {
                let n: u64 =
                    plan.iter().filter(|(r, k, s)| r.is_some() && *k == kind && s.mode == mode).map(|(_, _, s)| s.count).sum();
                assert_eq!(n, 10, "{mode:?} {kind:?}");
            }
        }
        let firsts: Vec<Mode> =
            plan.iter().filter(|(r, k, _)| r.is_some() && *k == Kind::Latency).step_by(3).map(|(_, _, s)| s.mode).collect();
        assert_eq!(firsts, vec![Mode::Alarm, Mode::Direct, Mode::Raw]);
        // Ids never repeat.
        let mut ids: Vec<u64> = plan.iter().flat_map(|(_, _, s)| s.first_id..s.first_id + s.count).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n);
        // Batch segments send everything at once.
        assert!(plan.iter().filter(|(_, k, _)| *k == Kind::Batch).all(|(_, _, s)| s.in_flight == s.count));
    }

    #[test]
    fn the_default_modes_measure_every_target() {
        let modes = Args::default().modes;
        for needed in [Mode::Alarm, Mode::Direct, Mode::Raw, Mode::RawDurable, Mode::AlarmNow] {
            assert!(modes.contains(&needed), "{needed:?}");
        }
        let parsed = <Args as clap::FromArgMatches>::from_arg_matches(&<Args as clap::Args>::augment_args(clap::Command::new("t")).get_matches_from(["t"])).unwrap();
        assert_eq!(parsed.modes, modes, "the command line's default and Args::default() differ");
    }

    #[test]
    fn shares_add_up() {
        assert_eq!((0..3).map(|r| share(10, 3, r)).collect::<Vec<_>>(), vec![4, 3, 3]);
        assert_eq!(order(&[Mode::Alarm, Mode::Direct, Mode::Raw], 4), vec![Mode::Direct, Mode::Raw, Mode::Alarm]);
    }
}
