//! What the experiment found: per-mode results, differences between modes with 95%
//! confidence intervals, the issue's targets, as a text table, JSON and SVG.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::client::Mode;
use super::segment::Outcome;
use super::{Args, NAME};
use crate::cdf::cdf;
use crate::confidence::{bootstrap_quantile_diff, welch_mean_diff, Interval};
use crate::output::{write_json, OutputArgs, RunInfo};
use crate::stats::Summary;
use crate::Result;

/// Bootstrap resamples for the interval of a difference of medians.
const RESAMPLES: usize = 1000;

/// Target: `p50(direct) / p50(raw-durable)` at most this (a call costs its durable writes
/// and little more).
pub const DIRECT_OVER_RAW_DURABLE_MAX: f64 = 1.05;

/// Target: the alarm path's cost, `p50(alarm-now) - p50(direct)`, at most this (ms);
/// and `p50(alarm) - p50(direct)` at most one alarm hop plus this. `alarm-now` also pays
/// the native alarm its call arms: the write, and an invocation that finds the task
/// already run by the test hook. In the probe of examples/call-alarm-delay/MEASUREMENTS.md
/// (stop 30), those were most of the difference; the alarm path's own work was about 0.2 ms.
pub const ALARM_PATH_MAX_MS: f64 = 0.2;

/// Latency segments (bounded in flight) or batch segments (all at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// At most `--in-flight` outstanding: per-operation latency.
    Latency,
    /// Everything sent at once: throughput.
    Batch,
}

impl Kind {
    /// `latency` or `batch`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Latency => "latency",
            Kind::Batch => "batch",
        }
    }
}

/// One measured segment.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentRecord {
    /// Run number, from 0.
    pub run: u64,
    /// Latency or batch.
    pub kind: Kind,
    /// What it measured.
    pub outcome: Outcome,
}

/// One mode in one kind of segment, all runs together.
#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    /// The mode.
    pub mode: Mode,
    /// Latency or batch.
    pub kind: Kind,
    /// Operations sent.
    pub sent: u64,
    /// Operations answered `call-complete`.
    pub completed: u64,
    /// Operations answered `call-error`.
    pub errors: u64,
    /// Operations with no answer within the deadline.
    pub lost: u64,
    /// Second answers for one operation.
    pub duplicates: u64,
    /// Send-to-answer latency of the completed operations (ms); `None` if none completed.
    pub summary: Option<Summary>,
    /// Wall time of all its segments (ms).
    pub total_ms: f64,
    /// Completed operations per second of wall time.
    pub ops_per_s: f64,
    /// Operations per second of each run.
    pub ops_per_s_by_run: Vec<f64>,
    /// Median latency of each run (ms).
    pub p50_by_run: Vec<f64>,
    /// The first few error messages.
    pub first_errors: Vec<String>,
}

/// `a` against `b` in one kind of segment.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Latency or batch.
    pub kind: Kind,
    /// The first mode.
    pub a: Mode,
    /// The second mode.
    pub b: Mode,
    /// `mean(a) - mean(b)`, ms, Welch 95% interval.
    pub mean_diff_ms: Interval,
    /// `p50(a) - p50(b)`, ms, bootstrap 95% interval.
    pub p50_diff_ms: Interval,
    /// `p95(a) - p95(b)`, ms.
    pub p95_diff_ms: f64,
    /// `p99(a) - p99(b)`, ms.
    pub p99_diff_ms: f64,
    /// `stddev(a) / stddev(b)`.
    pub stddev_ratio: f64,
    /// `p50(a) / p50(b)`.
    pub p50_ratio: f64,
    /// `ops/s(a) / ops/s(b)`.
    pub ops_per_s_ratio: f64,
    /// `ops/s(a) - ops/s(b)` over runs, Welch 95% interval.
    pub ops_per_s_diff: Interval,
}

/// The issues' targets, as measured (a `None` could not be computed from this run).
#[derive(Debug, Clone, Serialize)]
pub struct Targets {
    /// Latency mode: `p50(direct) / p50(raw-durable)`; target at most
    /// [`DIRECT_OVER_RAW_DURABLE_MAX`].
    pub direct_over_raw_durable_p50: Option<f64>,
    /// Latency mode: the alarm path's cost, `p50(alarm-now) - p50(direct)`, ms (its own
    /// work and the native alarm's; see [`ALARM_PATH_MAX_MS`]); target at most
    /// [`ALARM_PATH_MAX_MS`].
    pub alarm_path_p50_ms: Option<Interval>,
    /// Latency mode: `p50(direct) / p50(raw)`; target at most 1.25.
    pub direct_over_raw_p50: Option<f64>,
    /// Latency mode: `p50(alarm) - p50(direct)`, ms. Target: at most one alarm hop plus
    /// [`ALARM_PATH_MAX_MS`].
    pub alarm_overhead_p50_ms: Option<Interval>,
    /// Latency mode: one native-alarm hop, `p50(alarm) - p50(alarm-now)`, ms (needs mode
    /// `alarm-now`).
    pub alarm_hop_p50_ms: Option<Interval>,
    /// Batch mode: `ops/s(alarm) / ops/s(direct)`; target at least 0.5.
    pub batch_alarm_over_direct: Option<f64>,
    /// Operations sent, lost, failed and duplicated over every measured segment.
    pub sent: u64,
    /// Lost operations; target 0.
    pub lost: u64,
    /// Operations answered with an error.
    pub errors: u64,
    /// Duplicate answers.
    pub duplicates: u64,
}

/// The whole result of one experiment.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where, when and how it ran.
    pub run: RunInfo,
    /// The `OriginDO` name used.
    pub origin: String,
    /// The options.
    pub config: Value,
    /// Warm-up latencies (ms) per mode, not in the results.
    pub warmup: Vec<(Mode, Option<Summary>)>,
    /// Per mode and kind.
    pub results: Vec<ModeResult>,
    /// Differences between modes.
    pub comparisons: Vec<Comparison>,
    /// The targets.
    pub targets: Targets,
    /// Every measured segment with its raw latencies.
    pub segments: Vec<SegmentRecord>,
}

/// The pairs worth comparing, when both modes were measured.
const PAIRS: [(Mode, Mode); 9] = [
    (Mode::Alarm, Mode::Direct),
    (Mode::Alarm, Mode::Raw),
    (Mode::Direct, Mode::Raw),
    (Mode::Direct, Mode::RawDurable),
    (Mode::RawDurable, Mode::Raw),
    (Mode::Alarm, Mode::AlarmNow),
    (Mode::AlarmNow, Mode::Direct),
    (Mode::AlarmNow, Mode::Raw),
    (Mode::DirectNow, Mode::Direct),
];

impl Report {
    /// Gathers the report from the measured segments.
    pub fn new(args: &Args, run: RunInfo, origin: String, warmup: &[Outcome], segments: Vec<SegmentRecord>) -> Report {
        let mut results = Vec::new();
        for kind in [Kind::Latency, Kind::Batch] {
            for &mode in &args.modes {
                let mine: Vec<&SegmentRecord> = segments.iter().filter(|s| s.kind == kind && s.outcome.mode == mode).collect();
                if !mine.is_empty() {
                    results.push(mode_result(mode, kind, &mine));
                }
            }
        }
        let find = |kind: Kind, mode: Mode| results.iter().find(|r| r.kind == kind && r.mode == mode);
        let samples = |kind: Kind, mode: Mode| -> Vec<f64> {
            segments.iter().filter(|s| s.kind == kind && s.outcome.mode == mode).flat_map(|s| s.outcome.latencies_ms.iter().copied()).collect()
        };
        let mut comparisons = Vec::new();
        for kind in [Kind::Latency, Kind::Batch] {
            for (a, b) in PAIRS {
                let (Some(ra), Some(rb)) = (find(kind, a), find(kind, b)) else { continue };
                let (Some(qa), Some(qb)) = (&ra.summary, &rb.summary) else { continue };
                let (sa, sb) = (samples(kind, a), samples(kind, b));
                comparisons.push(Comparison {
                    kind,
                    a,
                    b,
                    mean_diff_ms: welch_mean_diff(&sa, &sb),
                    p50_diff_ms: bootstrap_quantile_diff(&sa, &sb, 0.5, RESAMPLES),
                    p95_diff_ms: qa.p95 - qb.p95,
                    p99_diff_ms: qa.p99 - qb.p99,
                    stddev_ratio: ratio(qa.stddev, qb.stddev),
                    p50_ratio: ratio(qa.p50, qb.p50),
                    ops_per_s_ratio: ratio(ra.ops_per_s, rb.ops_per_s),
                    ops_per_s_diff: welch_mean_diff(&ra.ops_per_s_by_run, &rb.ops_per_s_by_run),
                });
            }
        }
        let compared = |kind: Kind, a: Mode, b: Mode| comparisons.iter().find(|c| c.kind == kind && c.a == a && c.b == b);
        let targets = Targets {
            direct_over_raw_durable_p50: compared(Kind::Latency, Mode::Direct, Mode::RawDurable).map(|c| c.p50_ratio),
            alarm_path_p50_ms: compared(Kind::Latency, Mode::AlarmNow, Mode::Direct).map(|c| c.p50_diff_ms),
            direct_over_raw_p50: compared(Kind::Latency, Mode::Direct, Mode::Raw).map(|c| c.p50_ratio),
            alarm_overhead_p50_ms: compared(Kind::Latency, Mode::Alarm, Mode::Direct).map(|c| c.p50_diff_ms),
            alarm_hop_p50_ms: compared(Kind::Latency, Mode::Alarm, Mode::AlarmNow).map(|c| c.p50_diff_ms),
            batch_alarm_over_direct: compared(Kind::Batch, Mode::Alarm, Mode::Direct).map(|c| c.ops_per_s_ratio),
            sent: results.iter().map(|r| r.sent).sum(),
            lost: results.iter().map(|r| r.lost).sum(),
            errors: results.iter().map(|r| r.errors).sum(),
            duplicates: results.iter().map(|r| r.duplicates).sum(),
        };
        let config = serde_json::json!({
            "ops_per_mode": args.ops,
            "runs": args.runs,
            "warmup_per_mode": args.warmup,
            "in_flight": args.in_flight,
            "modes": args.modes,
            "deadline_s": args.deadline,
            "latency": !args.no_latency,
            "batch": !args.no_batch,
        });
        Report {
            run,
            origin,
            config,
            warmup: warmup.iter().map(|o| (o.mode, Summary::of(&o.latencies_ms))).collect(),
            results,
            comparisons,
            targets,
            segments,
        }
    }

    /// Whether every measured operation completed: nothing lost, failed or answered twice.
    pub fn passed(&self) -> bool {
        let t = &self.targets;
        t.lost == 0 && t.errors == 0 && t.duplicates == 0 && self.results.iter().all(|r| r.completed == r.sent)
    }

    /// The tables, differences and targets as text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{NAME} on {}", self.run.target);
        let _ = writeln!(out, "{}", self.config);
        for kind in [Kind::Latency, Kind::Batch] {
            let rows: Vec<&ModeResult> = self.results.iter().filter(|r| r.kind == kind).collect();
            if rows.is_empty() {
                continue;
            }
            let title = match kind {
                Kind::Latency => format!("latency mode ({} in flight)", self.config["in_flight"]),
                Kind::Batch => "batch mode (each run's operations sent at once)".to_owned(),
            };
            let _ = writeln!(out, "\n{title}, milliseconds from send to answer");
            let _ = writeln!(
                out,
                "{:<11} {:>6} {:>5} {:>5} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7}",
                "mode", "ops", "lost", "err", "total s", "ops/s", "mean", "min", "p50", "p95", "p99", "max", "stddev"
            );
            for r in &rows {
                let Some(s) = &r.summary else {
                    let _ = writeln!(out, "{:<11} {:>6} {:>5} {:>5}  (nothing completed)", r.mode.name(), r.sent, r.lost, r.errors);
                    continue;
                };
                let _ = writeln!(
                    out,
                    "{:<11} {:>6} {:>5} {:>5} {:>8.2} {:>8.1} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>8.2} {:>7.2}",
                    r.mode.name(),
                    r.sent,
                    r.lost,
                    r.errors,
                    r.total_ms / 1000.0,
                    r.ops_per_s,
                    s.mean,
                    s.min,
                    s.p50,
                    s.p95,
                    s.p99,
                    s.max,
                    s.stddev
                );
            }
            for r in &rows {
                let by_run = match kind {
                    Kind::Latency => r.p50_by_run.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join(" "),
                    Kind::Batch => r.ops_per_s_by_run.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(" "),
                };
                let what = if kind == Kind::Latency { "p50 ms" } else { "ops/s" };
                let _ = writeln!(out, "  {:<11} {what} by run: {by_run}", r.mode.name());
            }
            let pairs: Vec<&Comparison> = self.comparisons.iter().filter(|c| c.kind == kind).collect();
            if !pairs.is_empty() {
                let _ = writeln!(out, "differences a - b, ms, with 95% confidence intervals (mean: Welch; p50: bootstrap)");
                for c in pairs {
                    let pair = format!("{} - {}", c.a.name(), c.b.name());
                    let _ = write!(out, "  {pair:<22} mean {}  p50 {}  p95 {:+.2}  p99 {:+.2}  p50 ratio {:.2}x  stddev ratio {:.2}x", c.mean_diff_ms, c.p50_diff_ms, c.p95_diff_ms, c.p99_diff_ms, c.p50_ratio, c.stddev_ratio);
                    if kind == Kind::Batch {
                        let _ = write!(out, "  ops/s ratio {:.2}x, ops/s diff {}", c.ops_per_s_ratio, c.ops_per_s_diff);
                    }
                    out.push('\n');
                }
            }
        }
        let t = &self.targets;
        let verdict = |ok: bool| if ok { "holds" } else { "MISSED" };
        let _ = writeln!(out, "\ntargets (p50 of latency segments; verdicts on the estimates, 95% intervals in brackets)");
        let p50 = |mode: Mode| self.results.iter().find(|r| r.kind == Kind::Latency && r.mode == mode).and_then(|r| r.summary.as_ref()).map(|s| s.p50);
        let line = "  direct / raw-durable <= 1.05:";
        match (t.direct_over_raw_durable_p50, p50(Mode::Direct), p50(Mode::RawDurable)) {
            (Some(r), Some(d), Some(f)) => {
                _ = writeln!(out, "{line:<40} {r:.3}x ({d:.2} / {f:.2} ms)  {}", verdict(r <= DIRECT_OVER_RAW_DURABLE_MAX));
            }
            _ => _ = writeln!(out, "{line:<40} not measured (needs latency segments of direct and raw-durable)"),
        }
        let line = "  alarm-now - direct <= 0.2 ms:";
        match t.alarm_path_p50_ms {
            Some(d) => _ = writeln!(out, "{line:<40} {d} ms  {}", verdict(d.estimate <= ALARM_PATH_MAX_MS)),
            None => _ = writeln!(out, "{line:<40} not measured (needs alarm-now and direct)"),
        }
        let line = "  alarm - direct <= hop + 0.2 ms:";
        match (t.alarm_overhead_p50_ms, t.alarm_hop_p50_ms) {
            (Some(o), Some(h)) => {
                let ok = o.estimate <= h.estimate + ALARM_PATH_MAX_MS;
                _ = writeln!(out, "{line:<40} {o} ms vs hop (alarm - alarm-now) {h} ms + 0.2  {}", verdict(ok));
            }
            (Some(o), None) => _ = writeln!(out, "{line:<40} {o} ms; hop not measured (add alarm-now to --modes)"),
            _ => _ = writeln!(out, "{line:<40} not measured (needs alarm and direct)"),
        }
        let line = "  direct / raw <= 1.25:";
        match t.direct_over_raw_p50 {
            Some(r) => _ = writeln!(out, "{line:<40} {r:.2}x  {}", verdict(r <= 1.25)),
            None => _ = writeln!(out, "{line:<40} not measured (needs latency segments of direct and raw)"),
        }
        let line = "  batch ops/s alarm >= 0.5 x direct:";
        match t.batch_alarm_over_direct {
            Some(r) => _ = writeln!(out, "{line:<40} {r:.2}x  {}", verdict(r >= 0.5)),
            None => _ = writeln!(out, "{line:<40} not measured (needs batch segments of alarm and direct)"),
        }
        let _ = writeln!(
            out,
            "{:<40} {} lost, {} failed, {} duplicated of {} sent  {}",
            "  no operation lost:",
            t.lost,
            t.errors,
            t.duplicates,
            t.sent,
            verdict(self.passed())
        );
        for r in self.results.iter().filter(|r| !r.first_errors.is_empty()) {
            let _ = writeln!(out, "  errors of {} {}: {:?}", r.kind.name(), r.mode.name(), r.first_errors);
        }
        out
    }

    /// Writes `call-alarm-delay.json`, `latency.svg` and `batch.svg` (those measured) to
    /// `<out>/call-alarm-delay/`; returns their paths.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io), [`Error::Plot`](crate::Error::Plot).
    pub fn write(&self, output: &OutputArgs) -> Result<Vec<PathBuf>> {
        let dir = output.dir(NAME)?;
        let json = dir.join(format!("{NAME}.json"));
        write_json(&json, self)?;
        let mut written = vec![json];
        for kind in [Kind::Latency, Kind::Batch] {
            let samples: Vec<(String, Vec<f64>)> = super::latencies(&self.segments, kind)
                .into_iter()
                .map(|(mode, values)| {
                    let label = match Summary::of(&values) {
                        Some(s) => format!("{}: p50 {:.2}, p99 {:.2} ms (n = {})", mode.name(), s.p50, s.p99, s.count),
                        None => format!("{}: none completed", mode.name()),
                    };
                    (label, values)
                })
                .collect();
            if samples.is_empty() {
                continue;
            }
            let title = format!("{NAME}, {} mode: ms from send to answer", kind.name());
            let path = dir.join(format!("{}.svg", kind.name()));
            cdf(&path, &title, "ms", &samples)?;
            written.push(path);
        }
        Ok(written)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

fn mode_result(mode: Mode, kind: Kind, segments: &[&SegmentRecord]) -> ModeResult {
    let latencies: Vec<f64> = segments.iter().flat_map(|s| s.outcome.latencies_ms.iter().copied()).collect();
    let total_ms: f64 = segments.iter().map(|s| s.outcome.wall_ms).sum();
    let completed = latencies.len() as u64;
    ModeResult {
        mode,
        kind,
        sent: segments.iter().map(|s| s.outcome.sent).sum(),
        completed,
        errors: segments.iter().map(|s| s.outcome.errors.len() as u64).sum(),
        lost: segments.iter().map(|s| s.outcome.lost).sum(),
        duplicates: segments.iter().map(|s| s.outcome.duplicates).sum(),
        summary: Summary::of(&latencies),
        total_ms,
        ops_per_s: if total_ms > 0.0 { completed as f64 * 1000.0 / total_ms } else { 0.0 },
        ops_per_s_by_run: segments.iter().map(|s| s.outcome.ops_per_s()).collect(),
        p50_by_run: segments.iter().map(|s| Summary::of(&s.outcome.latencies_ms).map_or(f64::NAN, |s| s.p50)).collect(),
        first_errors: segments.iter().flat_map(|s| s.outcome.errors.iter().map(|(_, e)| e.clone())).take(5).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A latency segment of `mode` whose operations all took `ms` (plus a little spread).
    fn segment(mode: Mode, ms: f64) -> SegmentRecord {
        let latencies_ms: Vec<f64> = (0..41).map(|i| ms + f64::from(i - 20) * 0.001).collect();
        let outcome = Outcome {
            mode,
            sent: 41,
            latencies_ms,
            errors: vec![],
            lost: 0,
            duplicates: 0,
            late: 0,
            other: vec![],
            wall_ms: 41.0 * ms,
        };
        SegmentRecord { run: 0, kind: Kind::Latency, outcome }
    }

    fn report(p50s: &[(Mode, f64)]) -> Report {
        let args = Args { modes: p50s.iter().map(|(m, _)| *m).collect(), no_batch: true, ..Args::default() };
        let info = RunInfo::collect("test".into());
        Report::new(&args, info, "o".into(), &[], p50s.iter().map(|&(m, ms)| segment(m, ms)).collect())
    }

    /// The line of the targets section that starts with `label`.
    fn line(text: &str, label: &str) -> String {
        text.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("no line {label:?} in\n{text}")).to_owned()
    }

    #[test]
    fn the_issue_targets_are_computed_and_judged() {
        // direct 4.0, raw-durable 3.9 (1.026x), alarm-now 4.15 (+0.15), alarm 5.3 (+1.3; hop 1.15).
        let good = report(&[(Mode::Alarm, 5.3), (Mode::Direct, 4.0), (Mode::Raw, 2.0), (Mode::RawDurable, 3.9), (Mode::AlarmNow, 4.15)]);
        let t = &good.targets;
        // (Summary's percentiles are within 0.1%.)
        let near = |got: f64, want: f64| assert!((got - want).abs() < 0.01, "{got} is not {want}");
        near(t.direct_over_raw_durable_p50.unwrap(), 4.0 / 3.9);
        near(t.alarm_path_p50_ms.unwrap().estimate, 0.15);
        near(t.alarm_overhead_p50_ms.unwrap().estimate, 1.3);
        near(t.alarm_hop_p50_ms.unwrap().estimate, 1.15);
        let text = good.render();
        assert!(line(&text, "direct / raw-durable <= 1.05:").ends_with("holds"), "{text}");
        assert!(line(&text, "alarm-now - direct <= 0.2 ms:").ends_with("holds"), "{text}");
        assert!(line(&text, "alarm - direct <= hop + 0.2 ms:").ends_with("holds"), "{text}");
        assert!(line(&text, "direct / raw <= 1.25:").ends_with("MISSED"), "{text}");

        // direct 4.5 against raw-durable 3.9 (1.15x), alarm-now +0.5, alarm +2.0 against a hop of 1.5.
        let bad = report(&[(Mode::Alarm, 6.5), (Mode::Direct, 4.5), (Mode::RawDurable, 3.9), (Mode::AlarmNow, 5.0)]);
        let text = bad.render();
        for label in ["direct / raw-durable <= 1.05:", "alarm-now - direct <= 0.2 ms:", "alarm - direct <= hop + 0.2 ms:"] {
            assert!(line(&text, label).ends_with("MISSED"), "{label}\n{text}");
        }
        assert!(line(&text, "direct / raw <= 1.25:").contains("not measured"), "{text}");

        // Without raw-durable and alarm-now, the lines say what to add.
        let text = report(&[(Mode::Alarm, 6.5), (Mode::Direct, 4.5)]).render();
        assert!(line(&text, "direct / raw-durable <= 1.05:").contains("not measured"), "{text}");
        assert!(line(&text, "alarm-now - direct <= 0.2 ms:").contains("not measured"), "{text}");
        assert!(line(&text, "alarm - direct <= hop + 0.2 ms:").contains("add alarm-now"), "{text}");
    }
}
