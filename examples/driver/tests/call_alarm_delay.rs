//! The call-alarm-delay experiment stays working: a few operations of every mode against
//! the local worker (built and started through lumenize-harness), every one completes, and
//! the report, JSON and pictures come out.

use lumenize_driver::call_alarm_delay::{self, Args, Kind, Mode};
use lumenize_driver::output::OutputArgs;
use lumenize_driver::progress::Progress;

#[test]
fn every_operation_of_every_mode_completes() {
    let out = std::env::temp_dir().join(format!("lumenize-call-alarm-delay-{}", std::process::id()));
    let args = Args {
        ops: 6,
        runs: 2,
        warmup: 2,
        in_flight: 2,
        modes: Mode::ALL.to_vec(),
        deadline: 20,
        output: OutputArgs { out: out.clone() },
        ..Args::default()
    };
    let target = call_alarm_delay::open_target(&args.target).expect("start the call-alarm-delay worker");
    let report = call_alarm_delay::run(&target, &args, &Progress::new(true)).expect("run the experiment");
    drop(target);
    let text = report.render();
    assert!(report.passed(), "{text}");
    assert_eq!(report.results.len(), 2 * Mode::ALL.len(), "{text}");
    for r in &report.results {
        assert_eq!((r.sent, r.completed, r.lost, r.errors, r.duplicates), (6, 6, 0, 0, 0), "{:?} {:?}\n{text}", r.kind, r.mode);
    }
    // Every run measured every mode in both kinds of segment.
    for kind in [Kind::Latency, Kind::Batch] {
        for run in 0..2 {
            let modes = report.segments.iter().filter(|s| s.kind == kind && s.run == run).count();
            assert_eq!(modes, Mode::ALL.len(), "{kind:?} run {run}");
        }
    }
    assert!(report.targets.direct_over_raw_p50.is_some() && report.targets.alarm_hop_p50_ms.is_some(), "{text}");
    let written = report.write(&args.output).expect("write the report");
    assert_eq!(written.len(), 3, "{written:?}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&written[0]).unwrap()).unwrap();
    assert_eq!(json["targets"]["lost"], 0);
    assert!(std::fs::read_to_string(&written[1]).unwrap().contains("<svg"));
    let _ = std::fs::remove_dir_all(&out);
}
