//! What a chaos run exercised, what broke, and how to replay it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::chaos::call_check::CallTally;
use crate::chaos::call_drain::CallsDrained;
use crate::chaos::calls::Call;
use crate::chaos::check::{Drained, Tally};
use crate::chaos::invariant::{Invariant, Violation};
use crate::chaos::model::{Kill, Model, Outcome, Request, Task};
use crate::chaos::wire::Fired;
use crate::chaos::plan::Handler;
use crate::output::RunInfo;

/// How the requests were answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Answers {
    /// 2xx.
    pub ok: u32,
    /// 4xx (typed refusals of invalid inputs and of requeues of tasks that are not dead).
    pub refused: u32,
    /// 5xx.
    pub failed: u32,
    /// No HTTP answer.
    pub unanswered: u32,
}

/// The report of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where and how it ran.
    pub info: RunInfo,
    /// The seed of its plan.
    pub seed: u64,
    /// Objects.
    pub objects: usize,
    /// Steps of the plan run.
    pub steps: u64,
    /// Seconds of steps, then of the drain.
    pub operations_s: f64,
    /// Seconds the drain took.
    pub drain_s: f64,
    /// Requests by kind.
    pub requests: BTreeMap<String, u32>,
    /// Tasks asked for, by what their handler does (children of handlers included).
    pub tasks: BTreeMap<String, u32>,
    /// Of those, the tasks the run knew were stored and left alone (held to every check).
    pub certain: u32,
    /// How the requests were answered.
    pub answers: Answers,
    /// Kills of the runtime (each followed by a restart on the same storage).
    pub kills: u32,
    /// Of those, kills with a request in flight.
    pub kills_mid_request: u32,
    /// Alarms deleted behind the scheduler's back.
    pub lost_alarms: u32,
    /// Panicking handlers that ran (each reset the worker's wasm instance).
    pub panics: u32,
    /// What the checks counted.
    pub tally: Tally,
    /// What the calls exercised, and how they ended.
    pub calls: CallCounts,
    /// The broken invariants.
    pub violations: Vec<Violation>,
    /// The command that replays the run.
    pub replay: String,
    /// Everything the run recorded, for looking into a failure (written to a file of its
    /// own: `chaos-<seed>-records.json`).
    #[serde(skip)]
    pub records: Records,
}

/// Everything a run recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Records {
    /// Per object: the tasks asked for and the firings recorded.
    pub objects: Vec<ObjectRecords>,
    /// Every request and its answer.
    pub requests: Vec<Request>,
    /// Every kill.
    pub kills: Vec<Kill>,
    /// What the drain found.
    pub drained: Drained,
    /// Every call the run asked for, as the model expects it.
    pub calls: Vec<Call>,
    /// What the drain of the calls found.
    pub calls_drained: CallsDrained,
}

/// What the calls of a run exercised, and how they ended.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallCounts {
    /// Calls made (their request answered), the drain's included.
    pub made: u32,
    /// Calls whose request a fault cut off (made or not).
    pub uncertain: u32,
    /// Calls made, by dispatch mode.
    pub by_mode: BTreeMap<String, u32>,
    /// Calls made, by what the remote does.
    pub by_remote: BTreeMap<String, u32>,
    /// Calls made several in one request.
    pub several: u32,
    /// Calls made with a timeout.
    pub with_timeout: u32,
    /// Cancels sent.
    pub cancels: u32,
    /// Of those, cancels that found the call pending.
    pub cancels_found: u32,
    /// What the checks counted.
    pub tally: CallTally,
}

impl CallCounts {
    /// The counts of `model`'s calls, with the checks' tally.
    #[must_use]
    pub fn new(model: &Model, tally: CallTally) -> Self {
        let mut c = CallCounts { tally, ..CallCounts::default() };
        for call in &model.calls.calls {
            c.uncertain += u32::from(call.uncertain);
            c.cancels += u32::try_from(call.cancels.len()).unwrap_or(u32::MAX);
            c.cancels_found += u32::try_from(call.cancels.iter().filter(|k| k.found == Some(true)).count()).unwrap_or(u32::MAX);
            if !call.made {
                continue;
            }
            c.made += 1;
            let mode = call.dispatch.name();
            *c.by_mode.entry(mode.to_owned()).or_insert(0) += 1;
            *c.by_remote.entry(call.does.name().to_owned()).or_insert(0) += 1;
            c.several += u32::from(call.tag.contains('-') && !call.probe);
            c.with_timeout += u32::from(call.timeout_ms.is_some());
        }
        c
    }
}

/// What one object recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObjectRecords {
    /// Its name.
    pub name: String,
    /// The tasks the run asked for, as the model expects them.
    pub tasks: Vec<Task>,
    /// Its firings, in the order recorded.
    pub fired: Vec<Fired>,
}

impl Records {
    /// The records of a finished run.
    #[must_use]
    pub fn new(model: Model, fired: Vec<Vec<Fired>>, drained: Drained, calls_drained: CallsDrained) -> Self {
        let objects = model.objects.into_iter().zip(fired.into_iter().chain(std::iter::repeat_with(Vec::new))).map(|(o, fired)| ObjectRecords { name: o.name, tasks: o.tasks, fired }).collect();
        Records { objects, requests: model.requests, kills: model.kills, drained, calls: model.calls.calls, calls_drained }
    }
}

impl Report {
    /// The report of a run of `model` with `steps` steps of the plan of `seed`, replayed by
    /// `replay`; its records are added by the caller, which owns the model.
    #[must_use]
    #[allow(clippy::too_many_arguments)]
    pub fn new(info: RunInfo, seed: u64, model: &Model, steps: u64, panics: u32, timing: (f64, f64), (tally, calls): (Tally, CallCounts), violations: Vec<Violation>, replay: String) -> Self {
        let mut requests = BTreeMap::new();
        let mut answers = Answers::default();
        for r in &model.requests {
            *requests.entry(r.what.clone()).or_insert(0) += 1;
            match r.outcome {
                Outcome::Ok => answers.ok += 1,
                Outcome::Refused { .. } => answers.refused += 1,
                Outcome::Failed { .. } => answers.failed += 1,
                Outcome::NoAnswer(_) => answers.unanswered += 1,
            }
        }
        let mut tasks = BTreeMap::new();
        let mut certain = 0;
        for t in model.objects.iter().flat_map(|o| &o.tasks) {
            let kind = match (&t.handler, t.parent.is_some(), t.burst.is_some(), t.recurring) {
                (_, true, _, _) => "scheduled by a handler",
                (_, _, true, _) => "in a burst",
                (_, _, _, true) => "recurring",
                (Handler::Record, ..) => "record",
                (Handler::Fail { .. }, ..) => "fails k times",
                (Handler::Panic, ..) => "panics",
                (Handler::Slow { .. }, ..) => "takes long",
                (Handler::Reschedule { .. }, ..) => "reschedules itself",
                (Handler::Spawn { .. }, ..) => "schedules others",
                (Handler::Cancel { .. }, ..) => "cancels another",
                (Handler::Undecodable, ..) => "does not decode",
            };
            *tasks.entry(kind.to_owned()).or_insert(0) += 1;
            certain += u32::from(t.certain && !t.never_stored);
        }
        let objects = model.objects.len();
        Report {
            info,
            seed,
            objects,
            steps,
            operations_s: timing.0,
            drain_s: timing.1,
            requests,
            tasks,
            certain,
            answers,
            kills: u32::try_from(model.kills.len()).unwrap_or(u32::MAX),
            kills_mid_request: u32::try_from(model.kills.iter().filter(|k| k.mid_request).count()).unwrap_or(u32::MAX),
            lost_alarms: model.lost_alarms,
            panics,
            tally,
            calls,
            violations,
            replay,
            records: Records::default(),
        }
    }

    /// Whether every invariant held.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The summary printed at the end of a run.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "chaos: seed {}, {} objects, {} steps in {:.0} s, then a drain of {:.1} s",
            self.seed, self.objects, self.steps, self.operations_s, self.drain_s
        );
        let total: u32 = self.requests.values().sum();
        let invalid: u32 = self.requests.iter().filter(|(k, _)| k.starts_with("invalid")).map(|(_, n)| n).sum();
        let _ = writeln!(out, "requests: {total} ({})", list(self.requests.iter().filter(|(k, _)| !k.starts_with("invalid"))));
        let _ = writeln!(out, "invalid inputs: {invalid} ({})", list(self.requests.iter().filter(|(k, _)| k.starts_with("invalid")).map(|(k, n)| (k.trim_start_matches("invalid: "), n))));
        let a = &self.answers;
        let _ = writeln!(
            out,
            "answers: {} ok, {} refused (4xx), {} failed (5xx), {} unanswered; {} of the failed and unanswered cut off by a kill or a panic",
            a.ok, a.refused, a.failed, a.unanswered, self.tally.cut_off
        );
        let n: u32 = self.tasks.values().sum();
        let _ = writeln!(out, "tasks: {n}, {} held to every check ({})", self.certain, list(self.tasks.iter()));
        let _ = writeln!(
            out,
            "faults: {} kills ({} with a request in flight), {} restarts, {} lost alarms, {} panics",
            self.kills, self.kills_mid_request, self.kills, self.lost_alarms, self.panics
        );
        let dead: u32 = self.tally.dead.values().sum();
        let _ = writeln!(
            out,
            "firings: {}, {} repeats of attempts cut short by a kill or a panic; dead at the end: {dead} ({})",
            self.tally.firings,
            self.tally.cut_short,
            list(self.tally.dead.iter())
        );
        let c = &self.calls;
        let _ = writeln!(
            out,
            "calls: {} made ({}; {}), {} several to a request, {} with a timeout, {} cut off by a fault; {} cancels ({} found the call pending)",
            c.made,
            list(c.by_mode.iter()),
            list(c.by_remote.iter()),
            c.several,
            c.with_timeout,
            c.uncertain,
            c.cancels,
            c.cancels_found
        );
        let _ = writeln!(
            out,
            "continuations: {} ({}); {} cancelled by a cancel, {} other outcomes explained by a kill or a panic; {} remote effects applied",
            c.tally.continued,
            list(c.tally.outcomes.iter()),
            c.tally.cancelled,
            c.tally.explained,
            c.tally.effects
        );
        let broken: BTreeMap<Invariant, usize> = self.violations.iter().fold(BTreeMap::new(), |mut m, v| {
            *m.entry(v.invariant).or_insert(0) += 1;
            m
        });
        for invariant in Invariant::ALL {
            let verdict = broken.get(&invariant).map_or("holds".to_owned(), |n| format!("BROKEN ({n})"));
            let _ = writeln!(out, "  {:<22} {verdict}: {}", invariant.to_string(), invariant.says());
        }
        if self.passed() {
            let _ = write!(out, "chaos: every invariant held (seed {})", self.seed);
        } else {
            let _ = writeln!(out, "\nchaos FAILED: {} violations, the first ones:", self.violations.len());
            for v in self.violations.iter().take(20) {
                let _ = writeln!(out, "- {v}");
            }
            let _ = write!(out, "seed {}: replay with `{}`", self.seed, self.replay);
        }
        out
    }
}

fn list<'a, K: std::fmt::Display + 'a, V: std::fmt::Display + 'a>(items: impl Iterator<Item = (K, V)>) -> String {
    items.map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}
