//! The chaos experiment in short, in `cargo xtask test`: 400 steps (about 40 s) of random
//! scheduler operations and calls in both dispatch modes, invalid inputs, kills mid-run and
//! mid-request, restarts and lost alarms on the sandbox worker (`testing/sandbox` under
//! `wrangler dev`), then the drain and every invariant. About a minute in all.
//!
//! A fresh seed each run, printed with the command that replays it; set
//! `LUMENIZE_CHAOS_SEED` to run a given one.
//!
//! Panicking tasks and panicking remotes are in (a panic resets the wasm instance all
//! objects share; the objects with a run in flight are reset with it, and their alarms
//! retried: see "What it found" in `examples/alarms-robustness/CHAOS.md`).

use lumenize_driver::chaos::{self, Args};
use lumenize_driver::progress::Progress;

#[test]
fn a_minute_of_chaos_breaks_no_invariant() {
    let seed = std::env::var("LUMENIZE_CHAOS_SEED").ok().map(|s| s.parse().expect("LUMENIZE_CHAOS_SEED is a number"));
    let args = Args { seed, steps: Some(400), objects: 3, drain: 60, ..Args::default() };
    let mut target = chaos::open_target().expect("start the sandbox worker");
    let report = chaos::run(&mut target, &args, &Progress::new(true)).expect("run the chaos plan");
    let text = report.render();
    println!("{text}");
    assert!(report.passed(), "{text}");
    // 400 steps of any seed hold at least this much (the plan's cadences).
    assert!(report.kills >= 1 && report.lost_alarms >= 1, "{text}");
    let invalid: u32 = report.requests.iter().filter(|(k, _)| k.starts_with("invalid")).map(|(_, n)| n).sum();
    assert!(invalid >= 10, "{text}");
    // Calls in both modes, to remotes that answer, fail and are slow, and their continuations.
    let calls = &report.calls;
    for mode in ["alarm", "direct"] {
        assert!(calls.by_mode.get(mode).is_some_and(|n| *n >= 15), "{mode}: {text}");
    }
    for does in ["answers", "fails", "slow"] {
        assert!(calls.by_remote.get(does).is_some_and(|n| *n >= 3), "{does}: {text}");
    }
    assert!(calls.tally.continued >= 40 && calls.cancels >= 3, "{text}");
}
