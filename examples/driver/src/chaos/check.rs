//! The invariants of a chaos run, checked at the end against what the objects recorded:
//! every firing (the sandbox's `fired` table), the tasks left after the drain, every
//! request's answer, and the faults (kills by the driver's clock, panics by the panicking
//! tasks' own firings). Pure: the tests feed it made-up records.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::chaos::faults::Faults;
use crate::chaos::invariant::{Invariant, Violation};
use crate::chaos::model::{Child, End, Expect, Model, ObjectModel, Outcome, Role, Task};
use crate::chaos::plan::Handler;
use crate::chaos::wire::{Fired, Stored};

/// What the drain found, per object.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Drained {
    /// When the drain began (driver's clock, Unix ms): recurring tasks must fire after.
    pub started_ms: i64,
    /// When the drain's wait for the queue to empty ended.
    pub ended_ms: i64,
    /// Per object: the tasks stored once the queue had drained (or at the deadline).
    pub finals: Vec<Vec<Stored>>,
    /// Per object: labels of the recurring tasks that fired during the drain.
    pub recurred: Vec<HashSet<String>>,
    /// Per object: what went wrong when checking that it still answers and fires a new
    /// task, if anything.
    pub still_works: Vec<Option<String>>,
}

/// What the checks counted on the way (for the report).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// Firings recorded.
    pub firings: u64,
    /// Repeated firings of a task explained by a kill or a panic.
    pub cut_short: u64,
    /// Requests that failed (5xx, no answer) explained by a kill or a panic.
    pub cut_off: u64,
    /// Dead tasks at the end, by reason.
    pub dead: BTreeMap<String, u32>,
}

/// Checks everything; the violations, and what was counted.
#[must_use]
pub fn check(model: &Model, fired: &[Vec<Fired>], drained: &Drained, faults: &Faults) -> (Vec<Violation>, Tally) {
    let mut c = Checker { faults, drained, violations: Vec::new(), tally: Tally::default() };
    c.requests(model);
    for (o, object) in model.objects.iter().enumerate() {
        let fired = fired.get(o).map_or(&[][..], Vec::as_slice);
        c.tally.firings += fired.len() as u64;
        let finals = drained.finals.get(o).map_or(&[][..], Vec::as_slice);
        let one = ObjectCheck::new(object, fired, finals);
        one.strangers(&mut c);
        for task in &object.tasks {
            one.task(&mut c, task);
        }
        one.fifo(&mut c);
        one.finals(&mut c);
        if let Some(problem) = drained.still_works.get(o).and_then(Option::as_ref) {
            c.fail(Invariant::StillWorks, Some(&object.name), problem.clone());
        }
    }
    for (o, problem) in &model.answer_problems {
        c.fail(Invariant::Answers, model.objects.get(*o).map(|x| x.name.as_str()), problem.clone());
    }
    (c.violations, c.tally)
}

struct Checker<'a> {
    faults: &'a Faults,
    drained: &'a Drained,
    violations: Vec<Violation>,
    tally: Tally,
}

impl Checker<'_> {
    fn fail(&mut self, invariant: Invariant, object: Option<&str>, detail: String) {
        self.violations.push(Violation { invariant, object: object.map(str::to_owned), detail });
    }

    fn requests(&mut self, model: &Model) {
        for r in &model.requests {
            let name = model.object_name(r);
            let at = format!("step {} ({}, sent at {})", r.step, r.what, r.sent_ms);
            match (&r.expect, &r.outcome) {
                (Expect::Ok | Expect::OkOr(_), Outcome::Ok) => {}
                (Expect::OkOr(typed), Outcome::Refused { status: 400, body }) if typed.iter().any(|t| body.contains(t)) => {}
                (Expect::Refused(typed), Outcome::Refused { status: 400, body }) if body.contains(typed) => {}
                (Expect::Refused(typed), Outcome::Ok) => self.fail(Invariant::TypedRefusals, name, format!("{at}: accepted; expected a 400 with {typed:?}")),
                (Expect::Refused(typed), Outcome::Refused { status, body }) => {
                    self.fail(Invariant::TypedRefusals, name, format!("{at}: answered {status} {body:?}; expected a 400 with {typed:?}"));
                }
                (_, Outcome::Refused { status, body }) => self.fail(Invariant::Answers, name, format!("{at}: a valid request was refused: {status} {body:?}")),
                (_, failed) => match self.faults.cut_off(r.sent_ms, r.done_ms) {
                    Some(_) => self.tally.cut_off += 1,
                    None => self.fail(Invariant::NoServerErrors, name, format!("{at}: {failed:?} at {}, with no kill or panic to explain it", r.done_ms)),
                },
            }
        }
    }
}

/// The checks of one object.
struct ObjectCheck<'a> {
    object: &'a ObjectModel,
    /// Firings by label, in the order recorded.
    by_label: HashMap<&'a str, Vec<(usize, &'a Fired)>>,
    finals: &'a [Stored],
    fired: &'a [Fired],
}

impl<'a> ObjectCheck<'a> {
    fn new(object: &'a ObjectModel, fired: &'a [Fired], finals: &'a [Stored]) -> Self {
        let mut by_label: HashMap<&str, Vec<(usize, &Fired)>> = HashMap::new();
        for (seq, f) in fired.iter().enumerate() {
            by_label.entry(f.label.as_str()).or_default().push((seq, f));
        }
        ObjectCheck { object, by_label, finals, fired }
    }

    fn name(&self) -> Option<&'a str> {
        Some(self.object.name.as_str())
    }

    fn firings(&self, label: &str) -> Vec<&'a Fired> {
        self.by_label.get(label).map(|v| v.iter().map(|(_, f)| *f).collect()).unwrap_or_default()
    }

    /// Every firing's label is one the run used, under an id it was given.
    fn strangers(&self, c: &mut Checker<'_>) {
        for f in self.fired {
            let problem = match self.object.role(&f.label) {
                None => Some("the run never asked for it".to_owned()),
                Some(Role::Invalid) => Some("it is the label of an invalid input, which must store nothing".to_owned()),
                Some(Role::Task(i)) => match &self.object.tasks[i].id {
                    Some(id) if *id != f.task_id && self.object.tasks[i].parent.is_none() => Some(format!("it was stored under id {id}")),
                    _ => None,
                },
                Some(Role::Done(_) | Role::Probe) => None,
            };
            if let Some(problem) = problem {
                c.fail(Invariant::NoStrangers, self.name(), format!("{:?} fired (task {}, at {}): {problem}", f.label, f.task_id, f.fired_ms));
            }
        }
    }

    /// The checks of one task's firings.
    fn task(&self, c: &mut Checker<'_>, t: &Task) {
        let all = self.firings(&t.label);
        let name = self.name();
        // A spawned child has one id per firing of its parent: each copy is a task.
        let mut copies: BTreeMap<&str, Vec<&Fired>> = BTreeMap::new();
        for f in &all {
            copies.entry(f.task_id.as_str()).or_default().push(f);
        }
        for f in &all {
            if f.fired_ms < f.due_ms || f.fired_ms < t.not_before_ms {
                let due = f.due_ms.max(t.not_before_ms);
                c.fail(Invariant::NeverEarly, name, format!("{:?} attempt {} fired at {}, {} ms before its time {due}", t.label, f.attempt, f.fired_ms, due - f.fired_ms));
            }
            if let Some(removed) = t.removed_ms.filter(|r| f.fired_ms > *r) {
                c.fail(Invariant::RemovedStayRemoved, name, format!("{:?} fired at {} (attempt {}), after it was removed at {removed}", t.label, f.fired_ms, f.attempt));
            }
        }
        if t.never_stored && !all.is_empty() {
            c.fail(Invariant::NoStrangers, name, format!("{:?} fired, but keep_existing kept another task in its place", t.label));
        }
        if t.removed_unstarted && !all.is_empty() {
            c.fail(Invariant::RemovedStayRemoved, name, format!("{:?} fired {} times, but its cancel found it pending and never attempted", t.label, all.len()));
        }
        self.recurrence(c, t, &all);
        self.parentage(c, t, &copies);
        let mut index = 0;
        for firings in copies.values() {
            self.lives(c, t, firings, &mut index);
        }
        self.delivered(c, t, &all);
    }

    /// Cron ticks on whole seconds, interval ticks on their grid.
    fn recurrence(&self, c: &mut Checker<'_>, t: &Task, all: &[&Fired]) {
        if !t.recurring {
            return;
        }
        let mut ticks = HashSet::new();
        for f in all.iter().filter(|f| f.attempt == 1) {
            if !ticks.insert(f.due_ms) {
                c.fail(Invariant::NoDuplicates, self.name(), format!("{:?}: the tick due at {} ran its first attempt twice", t.label, f.due_ms));
            }
            let off_grid = match (t.interval_ms, t.due_ms) {
                (Some(every), Some(first)) => (f.due_ms - first).rem_euclid(every) != 0,
                (None, _) => f.due_ms % 1000 != 0,
                _ => false,
            };
            if off_grid {
                c.fail(Invariant::NeverEarly, self.name(), format!("{:?}: a tick due at {} is off its schedule (first {:?}, every {:?})", t.label, f.due_ms, t.due_ms, t.interval_ms));
            }
        }
    }

    /// A child runs after its parent; a spawned child runs once per firing of its parent.
    fn parentage(&self, c: &mut Checker<'_>, t: &Task, copies: &BTreeMap<&str, Vec<&Fired>>) {
        let Some((p, how)) = t.parent else { return };
        let parent = &self.object.tasks[p];
        let parent_firings = self.firings(&parent.label);
        let Some(first) = parent_firings.iter().map(|f| f.fired_ms).min() else {
            if !copies.is_empty() {
                c.fail(Invariant::NoStrangers, self.name(), format!("{:?} fired, but its parent {:?} never did", t.label, parent.label));
            }
            return;
        };
        for f in copies.values().flatten() {
            let earliest = match (how, &parent.handler) {
                (Child::Again, Handler::Reschedule { delay_ms }) => first + i64::try_from(*delay_ms).unwrap_or(0),
                _ => first,
            };
            if f.fired_ms < earliest {
                c.fail(Invariant::NeverEarly, self.name(), format!("{:?} fired at {}, before {earliest} (its parent {:?} first ran at {first})", t.label, f.fired_ms, parent.label));
            }
        }
        // Copies still waiting after the drain are reported as such (not drained), not lost.
        let waiting: HashSet<&str> = self.finals.iter().filter(|s| !s.dead() && s.label().as_deref() == Some(t.label.as_str())).map(|s| s.id.as_str()).collect();
        let copies_seen = copies.keys().copied().chain(waiting).collect::<HashSet<&str>>().len();
        if how == Child::Spawned && copies_seen != parent_firings.len() {
            let invariant = if copies_seen < parent_firings.len() { Invariant::Delivered } else { Invariant::NoStrangers };
            c.fail(
                invariant,
                self.name(),
                format!("{:?}: {copies_seen} copies fired or are stored, but its parent {:?} ran {} times (each run schedules one)", t.label, parent.label, parent_firings.len()),
            );
        }
    }

    /// Within each life of a task (a requeue starts a new one), consecutive firings: the
    /// earlier failed as planned, or a kill or a panic came between them; attempts grow.
    fn lives(&self, c: &mut Checker<'_>, t: &Task, firings: &[&Fired], index: &mut u32) {
        let mut sorted: Vec<&Fired> = firings.to_vec();
        sorted.sort_by_key(|f| f.fired_ms);
        let life = |f: &Fired| t.requeued.iter().filter(|r| f.fired_ms >= **r).count();
        for pair in sorted.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            *index += 1;
            let blind = t.blind_from.is_some_and(|from| b.fired_ms >= from);
            let new_tick = t.recurring && b.attempt == 1;
            if blind || life(a) != life(b) || new_tick {
                continue;
            }
            if b.attempt <= a.attempt {
                c.fail(Invariant::NoDuplicates, self.name(), format!("{:?} ran attempt {} at {} and attempt {} at {}", t.label, a.attempt, a.fired_ms, b.attempt, b.fired_ms));
                continue;
            }
            if self.planned_failure(t, *index) {
                continue;
            }
            match c.faults.between(a.fired_ms, b.fired_ms) {
                Some(_) => c.tally.cut_short += 1,
                None => c.fail(
                    Invariant::NoDuplicates,
                    self.name(),
                    format!("{:?} ran again at {} (attempt {}) after attempt {} at {}, with no planned failure, kill or panic between", t.label, b.fired_ms, b.attempt, a.attempt, a.fired_ms),
                ),
            }
        }
        *index += 1;
    }

    /// Whether the `n`-th firing (1-based, over the label's whole history) failed by plan.
    fn planned_failure(&self, t: &Task, n: u32) -> bool {
        match t.handler {
            Handler::Panic => true,
            Handler::Fail { times } => n <= times,
            Handler::Reschedule { delay_ms } => delay_ms >= crate::chaos::plan::FAR_MS,
            _ => false,
        }
    }

    /// The firings a certain task must have.
    fn delivered(&self, c: &mut Checker<'_>, t: &Task, all: &[&Fired]) {
        if !self.required(t) {
            return;
        }
        let name = self.name();
        if t.handler == Handler::Undecodable {
            if !all.is_empty() {
                c.fail(Invariant::DeadExplained, name, format!("{:?}: its payload does not decode, but its handler ran {} times", t.label, all.len()));
            }
            return;
        }
        if t.far {
            return;
        }
        let lives = 1 + t.requeued.len();
        for life in 0..lives {
            let from = if life == 0 { i64::MIN } else { t.requeued[life - 1] };
            let to = t.requeued.get(life).copied().unwrap_or(i64::MAX);
            let stuck = life == lives - 1 && self.stored(t).is_some_and(|s| !s.dead());
            if !stuck && !all.iter().any(|f| (from..to).contains(&f.fired_ms)) {
                let what = if life == 0 { "never fired".to_owned() } else { format!("never fired after its requeue at {from}") };
                c.fail(Invariant::Delivered, name, format!("{:?} {what} (due {:?}, not before {})", t.label, t.due_ms, t.not_before_ms));
            }
        }
        if t.recurring && !c.drained.recurred.iter().any(|r| r.contains(&t.label)) && self.stored(t).is_some_and(|s| !s.dead()) {
            c.fail(Invariant::Delivered, name, format!("{:?} (recurring) did not fire during the drain", t.label));
        }
        if let Handler::Slow { .. } = t.handler {
            if self.stored(t).is_none() && self.firings(&format!("{}-done", t.label)).is_empty() {
                c.fail(Invariant::Delivered, name, format!("{:?} ended, but no attempt of it ran to its end (no {:?})", t.label, format!("{}-done", t.label)));
            }
        }
    }

    /// Whether the run knows this task was stored and nothing may have removed it since.
    fn required(&self, t: &Task) -> bool {
        if t.never_stored || t.removed_ms.is_some() {
            return false;
        }
        match t.parent {
            None => t.certain,
            Some((p, Child::Spawned)) => !self.firings(&self.object.tasks[p].label).is_empty(),
            Some((p, Child::Again)) => {
                let parent = &self.object.tasks[p];
                parent.certain && !self.firings(&parent.label).is_empty() && t.certain
            }
        }
    }

    /// The stored task (after the drain) of `t`.
    fn stored(&self, t: &Task) -> Option<&'a Stored> {
        self.finals.iter().find(|s| s.label().as_deref() == Some(t.label.as_str()))
    }

    /// How `t` must have ended: its end, recomputed for its last life after requeues.
    fn expected_end(&self, t: &Task) -> End {
        let Handler::Fail { times } = t.handler else { return t.end };
        let Some(&since) = t.requeued.last() else { return t.end };
        let before = u32::try_from(self.firings(&t.label).iter().filter(|f| f.fired_ms < since).count()).unwrap_or(u32::MAX);
        End::of(t, times.saturating_sub(before))
    }

    /// What is left after the drain: every dead task explained, nothing pending that had
    /// to end, everything that had to remain still there.
    fn finals(&self, c: &mut Checker<'_>) {
        let name = self.name();
        let mut stuck = Vec::new();
        for s in self.finals {
            let label = s.label().unwrap_or_default();
            match self.object.role(&label) {
                Some(Role::Task(_) | Role::Probe) => {}
                Some(Role::Invalid) => {
                    c.fail(Invariant::NoStrangers, name, format!("task {} labelled {label:?} is stored: an invalid input stored it", s.id));
                    continue;
                }
                _ => {
                    c.fail(Invariant::NoStrangers, name, format!("task {} labelled {label:?} is stored, which the run never asked for", s.id));
                    continue;
                }
            }
            let task = self.object.task(&label).map(|(_, t)| t);
            if s.dead() {
                self.dead(c, s, &label, task);
            } else if !(s.recurring() || task.is_some_and(|t| t.far || self.expected_end(t) == End::Remains || self.retry_after_drain(c, t, s))) {
                stuck.push(s);
            }
        }
        if !stuck.is_empty() {
            let shown: Vec<String> = stuck.iter().take(5).map(|s| format!("{:?} {} due at {}", s.label().unwrap_or_default(), s.status, s.due_ms)).collect();
            let diagnosis = self.stall(c, &stuck);
            c.fail(Invariant::Drained, name, format!("{} tasks are still pending or running after the drain ({}{}); {diagnosis}", stuck.len(), shown.join(", "), if stuck.len() > 5 { ", ..." } else { "" }));
        }
        for t in &self.object.tasks {
            if !self.required(t) {
                continue;
            }
            let end = self.expected_end(t);
            let stored = self.stored(t);
            let problem = match (end, stored) {
                (End::Succeeds, Some(s)) if s.dead() => None, // reported with the dead tasks
                (End::Succeeds, _) => None,                    // reported as not drained
                (End::Dies(_), None) => Some("had to be kept dead, but it is gone".to_owned()),
                (End::Dies(_), Some(s)) if !s.dead() => None, // reported as not drained
                (End::Remains | End::Recurs, None) => Some(format!("had to remain ({end:?}), but it is gone")),
                (End::Remains | End::Recurs, Some(s)) if s.dead() => None,
                _ => None,
            };
            if let Some(problem) = problem {
                c.fail(Invariant::Drained, name, format!("{:?} (id {:?}) {problem}", t.label, t.id));
            }
        }
    }

    /// Whether `s` is a retry of `t` that its policy put after the drain's wait ended: pending
    /// as it must be. A wait shorter than an hour (not [`End::Remains`]) may still be longer
    /// than a run's drain waits (a factor clamped to 1,000 turns 247 ms into 247 s); the
    /// stored due time must then be at least the policy's wait after the failed attempt began.
    fn retry_after_drain(&self, c: &Checker<'_>, t: &Task, s: &Stored) -> bool {
        let began = self.firings(&t.label).iter().filter(|f| f.attempt == s.attempts).map(|f| f.fired_ms).max();
        s.status == "pending" && s.attempts > 0 && s.due_ms > c.drained.ended_ms && began.is_some_and(|b| s.due_ms >= b + t.delay_after(s.attempts))
    }

    /// A dead task: meant to die, with its error; or cut short by a kill or panic.
    fn dead(&self, c: &mut Checker<'_>, s: &Stored, label: &str, task: Option<&Task>) {
        let name = self.name();
        let error = s.last_error.clone().unwrap_or_default();
        let Some(t) = task else { return }; // a stranger, reported as such
        if error.is_empty() {
            c.fail(Invariant::DeadExplained, name, format!("{label:?} is dead without an error"));
            return;
        }
        let last = self.firings(label).iter().map(|f| f.fired_ms).max();
        let meant = match self.expected_end(t) {
            End::Dies(why) => Some(why),
            _ => match End::of(t, u32::MAX) {
                // An uncertain task may have died the way its handler dies.
                End::Dies(why) if !self.required(t) => Some(why),
                _ => None,
            },
        };
        let reason = if meant.is_some_and(|why| error.contains(why)) {
            meant.map(str::to_owned)
        } else if error.contains("the handler panicked") {
            if !error.contains("planned panic in task") {
                c.fail(Invariant::DeadExplained, name, format!("{label:?} died of a panic nobody planned: {error:?}"));
                return;
            }
            last.and_then(|l| c.faults.after(l)).map(|_| "cut short by a panic".to_owned())
        } else if error.contains("was cut short") {
            last.and_then(|l| c.faults.after(l)).map(|_| "cut short by a kill or a panic".to_owned())
        } else {
            None
        };
        match reason {
            Some(reason) => *c.tally.dead.entry(reason).or_default() += 1,
            None => c.fail(Invariant::DeadExplained, name, format!("{label:?} (task {}) is dead with {error:?}, which the run did not mean (expected {meant:?})", s.id)),
        }
    }

    /// Why an object's tasks may be stuck: the panic that came before the earliest of them
    /// was due (its alarm events stop there; only the test hook still runs tasks of it).
    fn stall(&self, c: &Checker<'_>, stuck: &[&Stored]) -> String {
        let earliest = stuck.iter().map(|s| s.due_ms).min().unwrap_or(0);
        let last = self.fired.iter().map(|f| f.fired_ms).max();
        let running: Vec<String> = stuck.iter().filter(|s| s.status == "running").filter_map(|s| s.label()).collect();
        let mut facts = format!("the earliest was due at {earliest}, its last firing was at {last:?}");
        if !running.is_empty() {
            let _ = write!(facts, ", {running:?} left running");
        }
        let panic = c.faults.panics.iter().rev().find(|p| **p <= earliest.max(last.unwrap_or(0)));
        let kills: Vec<i64> = c.faults.kills.iter().map(|(k, _)| *k).filter(|k| *k >= earliest).collect();
        if !kills.is_empty() {
            let _ = write!(facts, ", kills after it at {kills:?}");
        }
        match panic {
            Some(p) => format!(
                "{facts}; the last panic before was at {p}: a panic resets the wasm instance all objects share, and an alarm \
                 event of another object waiting then is never settled: no alarm of that object runs until workerd gives up \
                 on it (15 minutes), though a test-hook request still runs its due tasks"
            ),
            None => format!("{facts}; no panic came before"),
        }
    }

    /// The first attempts of a burst's tasks were recorded in the order they were scheduled.
    fn fifo(&self, c: &mut Checker<'_>) {
        let mut bursts: BTreeMap<u64, Vec<(u32, usize)>> = BTreeMap::new();
        for t in &self.object.tasks {
            let Some((step, index)) = t.burst else { continue };
            let first = self.by_label.get(t.label.as_str()).and_then(|v| v.iter().find(|(_, f)| f.attempt == 1).map(|(seq, _)| *seq));
            if let Some(seq) = first {
                bursts.entry(step).or_default().push((index, seq));
            }
        }
        for (step, mut firsts) in bursts {
            firsts.sort_by_key(|(_, seq)| *seq);
            if let Some(pair) = firsts.windows(2).find(|p| p[1].0 < p[0].0) {
                c.fail(Invariant::Fifo, self.name(), format!("burst of step {step}: task {} first ran before task {}", pair[1].0, pair[0].0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::model::Kill;

    fn fired(label: &str, id: &str, due: i64, at: i64, attempt: u32) -> Fired {
        Fired { label: label.into(), task_id: id.into(), due_ms: due, fired_ms: at, attempt }
    }

    /// One object with a `Record` task `s1` (id `a`, due at 1000) and a burst of three.
    fn model() -> Model {
        let mut m = Model::new("o", 1);
        let o = &mut m.objects[0];
        let i = o.add(Task::new("s1".into(), 1, Handler::Record, End::Succeeds, 1_000));
        o.set_id(i, "a", Some((1, 0)));
        for n in 0..3 {
            let mut t = Task::new(format!("s2-{n}"), 2, Handler::Record, End::Succeeds, 0);
            t.burst = Some((2, n));
            let j = o.add(t);
            o.set_id(j, &format!("b{n}"), Some((2, n)));
        }
        m
    }

    fn good() -> Vec<Fired> {
        vec![fired("s1", "a", 1_000, 1_001, 1), fired("s2-0", "b0", 5, 10, 1), fired("s2-1", "b1", 5, 11, 1), fired("s2-2", "b2", 5, 12, 1)]
    }

    fn broken(m: &Model, f: Vec<Fired>) -> Vec<Invariant> {
        let drained = Drained { finals: vec![Vec::new()], recurred: vec![HashSet::new()], still_works: vec![None], ..Drained::default() };
        let fired = [f];
        check(m, &fired, &drained, &Faults::of(m, &fired)).0.into_iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn a_clean_record_passes() {
        assert_eq!(broken(&model(), good()), []);
    }

    #[test]
    fn an_early_firing_is_caught() {
        let mut f = good();
        f[0] = fired("s1", "a", 1_000, 999, 1);
        assert_eq!(broken(&model(), f), [Invariant::NeverEarly]);
    }

    #[test]
    fn a_task_that_never_fired_is_caught() {
        let f = good()[1..].to_vec();
        assert_eq!(broken(&model(), f), [Invariant::Delivered]);
    }

    #[test]
    fn a_repeat_is_caught_unless_a_kill_or_panic_came_between() {
        let mut f = good();
        f.push(fired("s1", "a", 1_000, 3_000, 2));
        let mut m = model();
        assert_eq!(broken(&m, f.clone()), [Invariant::NoDuplicates]);
        m.kills.push(Kill { killed_ms: 2_000, up_ms: 2_500, mid_request: false });
        assert_eq!(broken(&m, f.clone()), []);
        f.push(fired("s1", "a", 1_000, 3_001, 2));
        assert_eq!(broken(&m, f), [Invariant::NoDuplicates], "the same attempt twice is never explained");
    }

    #[test]
    fn a_burst_out_of_order_and_a_stranger_are_caught() {
        let mut f = good();
        f.swap(1, 2);
        f.push(fired("s99", "z", 0, 1, 1));
        assert_eq!(broken(&model(), f), [Invariant::NoStrangers, Invariant::Fifo]);
    }

    #[test]
    fn a_pending_task_after_the_drain_is_caught_and_a_far_one_must_stay() {
        let mut m = model();
        let o = &mut m.objects[0];
        let mut far = Task::new("s3".into(), 3, Handler::Record, End::Remains, 0);
        far.far = true;
        let i = o.add(far);
        o.set_id(i, "far", Some((3, 0)));
        let stored = |label: &str, id: &str, status: &str| Stored {
            id: id.into(),
            seq: 1,
            schedule: "once".into(),
            due_ms: 10,
            payload: format!("{{\"type\":\"record\",\"label\":\"{label}\"}}"),
            status: status.into(),
            attempts: 0,
            last_error: None,
            created_ms: 0,
        };
        let drained = |finals| Drained { finals: vec![finals], recurred: vec![HashSet::new()], still_works: vec![None], ..Drained::default() };
        let v = |finals| check(&m, &[good()], &drained(finals), &Faults::of(&m, &[good()])).0.into_iter().map(|v| v.invariant).collect::<Vec<_>>();
        assert_eq!(v(vec![stored("s3", "far", "pending")]), []);
        assert_eq!(v(vec![]), [Invariant::Drained], "the far task is gone");
        assert_eq!(v(vec![stored("s3", "far", "pending"), stored("s1", "a", "pending")]), [Invariant::Drained]);
        assert_eq!(v(vec![stored("s3", "far", "pending"), stored("s1", "a", "dead")]), [Invariant::DeadExplained]);
    }

    #[test]
    fn a_retry_due_after_the_drain_may_remain_when_its_policy_put_it_there() {
        // Seed 264174443: fails twice, 247 ms then 247 s (factor u32::MAX, clamped to 1,000).
        let mut m = Model::new("o", 1);
        let mut t = Task::new("s1".into(), 1, Handler::Fail { times: 2 }, End::Succeeds, 0);
        (t.attempts, t.backoff_ms, t.factor, t.max_backoff_ms) = (4, 247, u32::MAX, 9_223_372_036_854);
        let i = m.objects[0].add(t);
        m.objects[0].set_id(i, "a", None);
        let fired = vec![fired("s1", "a", 0, 10, 1), fired("s1", "a", 257, 300, 2)];
        let v = |due_ms, ended_ms| {
            let pending = Stored { id: "a".into(), seq: 1, schedule: "once".into(), due_ms, payload: "{\"label\":\"s1\"}".into(), status: "pending".into(), attempts: 2, last_error: Some("planned failure".into()), created_ms: 0 };
            let drained = Drained { finals: vec![vec![pending]], recurred: vec![HashSet::new()], still_works: vec![None], ended_ms, ..Drained::default() };
            let fired = [fired.clone()];
            check(&m, &fired, &drained, &Faults::of(&m, &fired)).0.into_iter().map(|v| v.invariant).collect::<Vec<_>>()
        };
        assert_eq!(v(247_300, 60_000), [], "due after the drain, as the policy says");
        assert_eq!(v(247_300, 250_000), [Invariant::Drained], "the drain waited past its due time");
        assert_eq!(v(200_000, 60_000), [Invariant::Drained], "sooner than the policy's wait");
    }

    #[test]
    fn requests_need_their_typed_refusal_and_failures_an_explanation() {
        use crate::chaos::model::Request;
        let mut m = model();
        let req = |expect, outcome, sent_ms| Request { step: 9, object: 0, calls: false, what: "x".into(), sent_ms, done_ms: sent_ms + 10, expect, outcome };
        m.requests.push(req(Expect::Refused("bad request body"), Outcome::Refused { status: 400, body: "bad request body: eof".into() }, 0));
        m.requests.push(req(Expect::Refused("is out of range"), Outcome::Ok, 0));
        m.requests.push(req(Expect::Ok, Outcome::Failed { status: 500, body: "boom".into() }, 100));
        m.requests.push(req(Expect::Ok, Outcome::NoAnswer("reset".into()), 5_000));
        m.kills.push(Kill { killed_ms: 5_005, up_ms: 6_000, mid_request: true });
        assert_eq!(broken(&m, good()), [Invariant::TypedRefusals, Invariant::NoServerErrors]);
    }
}
