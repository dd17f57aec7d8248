//! `lumenize-driver`: the command line of the experiments. See the library's docs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lumenize_driver::{alarms_robustness, call_alarm_delay, chaos};
use lumenize_driver::progress::Progress;

/// Runs lumenize-rs' experiments against a local `wrangler dev` (default) or a deployed
/// worker (`--url`). With no subcommand, runs the two measuring experiments with their
/// default matrix (`chaos`, a randomised test rather than a measurement, runs on its own).
#[derive(Debug, Parser)]
#[command(name = "lumenize-driver", version)]
struct Cli {
    #[command(subcommand)]
    experiment: Option<Experiment>,
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Experiment {
    /// Does every task scheduled with lumenize-alarms fire, on time, under load, with failing
    /// and panicking handlers, across a crash? (examples/alarms-robustness)
    AlarmsRobustness(alarms_robustness::Args),
    /// What does lumenize-call's `Dispatch::Alarm` cost against `Dispatch::Direct`, and each
    /// against a plain `stub.fetch`? (examples/call-alarm-delay)
    CallAlarmDelay(call_alarm_delay::Args),
    /// Random operations from the whole lumenize-alarms API, invalid inputs, kills, restarts,
    /// lost alarms and panics on the local sandbox worker, checked against the driver's own
    /// record; seeded (`--seed` replays a run). Exits non-zero if an invariant broke.
    Chaos(chaos::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let progress = Progress::new(cli.quiet);
    let experiments = match cli.experiment {
        Some(e) => vec![e],
        None => vec![
            Experiment::AlarmsRobustness(alarms_robustness::Args::default()),
            Experiment::CallAlarmDelay(call_alarm_delay::Args::default()),
        ],
    };
    let mut passed = true;
    for experiment in experiments {
        let outcome = match experiment {
            Experiment::AlarmsRobustness(args) => alarms_robustness::main(&args, &progress).map(|r| r.passed()),
            Experiment::CallAlarmDelay(args) => call_alarm_delay::main(&args, &progress).map(|r| r.passed()),
            Experiment::Chaos(args) => chaos::main(&args, &progress).map(|r| r.passed()),
        };
        match outcome {
            Ok(ok) => passed &= ok,
            Err(e) => {
                eprintln!("lumenize-driver: error: {e}");
                passed = false;
            }
        }
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
