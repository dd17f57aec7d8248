//! `alarms-robustness --bench N`: what each scheduler operation costs per task, measured
//! inside the worker by its own clock (`POST /<object>/bench`, see the worker's
//! `src/bench.rs`): lumenize-alarms against the floor, interleaved in one request.

use alarms_robustness::{BenchReply, BenchRequest};

use crate::http::Client;
use crate::output::Table;
use crate::stats::Summary;
use crate::target::Target;
use crate::Result;

/// Runs the bench on an object of its own and returns what the worker measured.
///
/// # Errors
/// HTTP and decoding errors.
pub fn run(target: &Target, n: u32, rounds: u32, object: &str) -> Result<BenchReply> {
    Client::default().post(&format!("{}/{object}/bench", target.url()), &BenchRequest { n, rounds })
}

/// The medians per task, and lumenize-alarms' over the floor's.
#[must_use]
pub fn table(reply: &BenchReply) -> Table {
    let median = |v: &[f64]| Summary::of(v).map_or(f64::NAN, |s| s.p50);
    let (insert, run) = (median(&reply.floor_insert_us), median(&reply.floor_run_us));
    let mut table = Table::new(["operation", "µs per task (median)", "rounds", "vs floor"]);
    let mut row = |what: &str, v: &[f64], floor: Option<f64>| {
        let m = median(v);
        let ratio = floor.map_or("-".into(), |f| format!("{:.2}x", m / f));
        table.row([what.to_owned(), format!("{m:.1}"), v.len().to_string(), ratio]);
    };
    row("lumenize-alarms: schedule, one by one", &reply.lumenize_schedule_us, Some(insert));
    row("lumenize-alarms: schedule_many", &reply.lumenize_schedule_many_us, Some(insert));
    row("lumenize-alarms: run (no handler work)", &reply.lumenize_run_us, Some(run));
    row("floor: INSERT, one by one", &reply.floor_insert_us, None);
    row("floor: run (no handler work)", &reply.floor_run_us, None);
    table
}
