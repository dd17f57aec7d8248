//! A small alarms-robustness matrix, one crash included, against the local worker
//! (`examples/alarms-robustness` under `wrangler dev`), through the driver's library API.
//! Fails on any lost, early or unexplained duplicate firing. Plus the two baselines, a few
//! tasks each: the floor must deliver every task, the native alarm exactly the last of a
//! burst. About a minute.

use std::time::Duration;

use lumenize_driver::alarms_robustness::{self, Config, Fault, Load, Scenario, Scheduler};
use lumenize_driver::progress::Progress;
use lumenize_driver::target::{Target, TargetArgs};

#[test]
fn small_matrix_with_a_crash_delivers_every_task_never_early() {
    let burst = |n| Load::Burst { n, stagger_ms: 0 };
    let mut scenarios = vec![Scenario::new("single-0s", burst(1), 0)];
    scenarios.extend(Scenario::new("burst-500", burst(500), 0).trace_alarm().on_each(&[Scheduler::Lumenize, Scheduler::Floor]));
    scenarios.extend(Scenario::new("sequential-20-1s", Load::Sequential { n: 20 }, 1_000).trace_alarm().on_each(&[Scheduler::Lumenize, Scheduler::Floor]));
    scenarios.extend([
        Scenario::new("burst-20", burst(20), 0).on(Scheduler::Native),
        Scenario::new("fail-first-2", burst(10), 0).fault(Fault::FailFirst { k: 2 }),
        Scenario::new("panic-1-of-10", burst(10), 0).fault(Fault::Panic { attempts: 2 }),
        Scenario::new("crash", Load::Burst { n: 400, stagger_ms: 5 }, 0).fault(Fault::Crash { kill_after_ms: 600, down_ms: 500 }),
    ]);
    let config = Config { grace: Duration::from_secs(20), ..Config::new(scenarios) };
    let mut target = Target::open(&TargetArgs::default(), alarms_robustness::WORKER_DIR).expect("start the local worker");
    let report = alarms_robustness::run(&mut target, &config, &Progress::new(true)).expect("run the matrix");
    println!("{}", report.table());
    for note in report.notes() {
        println!("- {note}");
    }
    assert!(report.passed(), "failures: {:#?}", report.failures());

    let native = report.results.iter().find(|r| r.scenario.scheduler == Scheduler::Native).expect("native ran");
    assert_eq!(native.analysis.delivered, 1, "the native alarm delivers the last task of a burst, and only it: {:?}", native.analysis);
    assert_eq!(report.vs_floor.len(), 2, "lumenize against the floor on burst-500 and sequential-20-1s");
    for r in report.results.iter().filter(|r| r.scenario.scheduler != Scheduler::Native) {
        // One SQL row per task, plus at most one native alarm write per request (the alarm
        // lives in the object's SQLite too, so `total_changes()` counts it). The runtime's
        // own bookkeeping of the alarm may count there as well: on a loaded machine CI once
        // saw 502 rows for 500 tasks in one request (most likely the burst's first alarm
        // delivered while the request was still scheduling). Allow two such rows per
        // request, far below what a second row per task would add.
        let (tasks, requests) = (f64::from(r.scenario.load.tasks()), f64::from(r.cost.requests));
        let rows = r.cost.sql_rows_per_task.expect("rows measured") * tasks;
        assert!(rows <= tasks + 3.0 * requests, "{}: {rows} rows for {tasks} tasks in {requests} requests", r.scenario.name);
        if let Some(changes) = r.cost.alarm_changes_max {
            assert!(changes <= 1, "{}: a request moved the native alarm {changes} times", r.scenario.name);
        }
    }
    let crash = report.results.iter().find_map(|r| r.crash.clone()).expect("the crash ran");
    assert!(crash.fired_before_kill < 400, "the kill came after every task had fired: {crash:?}");
    let panic = report.results.iter().find(|r| r.scenario.name == "panic-1-of-10").expect("panic ran");
    assert_eq!(panic.status.as_ref().map(|s| s.dead.len()), Some(1), "the panicking task is kept dead");
}
