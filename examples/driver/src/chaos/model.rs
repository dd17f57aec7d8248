//! The driver's record of a chaos run: every task it asked for, what it expects of each,
//! and every request with its answer. Built from the plan and the answers only; the checks
//! ([`check`](crate::chaos::check)) hold it against what the objects recorded.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::chaos::call_plan::{ORIGINS, REMOTES};
use crate::chaos::calls::CallsModel;
use crate::chaos::invalid::MAX_TIME_MS;
use crate::chaos::plan::{Handler, FAR_MS};

/// How a task must end, if nothing the run did may have removed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum End {
    /// Its handler succeeds (and a one-shot task is removed).
    Succeeds,
    /// It goes dead, with a last error containing this.
    Dies(&'static str),
    /// It is still pending when the run ends (due after the run, or its retry is).
    Remains,
    /// A cron or interval task due within the run: it keeps firing.
    Recurs,
}

impl End {
    /// How a task ends whose handler is `handler`, with `failures` planned failures left
    /// (a `Fail` handler fails while its label was recorded at most `times` times).
    #[must_use]
    pub fn of(task: &Task, failures: u32) -> End {
        if task.far {
            return End::Remains;
        }
        if task.recurring {
            return End::Recurs;
        }
        match task.handler {
            Handler::Panic => End::Dies("planned panic in task"),
            Handler::Undecodable => End::Dies("no longer deserialises"),
            Handler::Reschedule { delay_ms } if delay_ms >= FAR_MS => End::Dies("is out of range"),
            Handler::Fail { .. } if failures > 0 => {
                // Attempt k fails (k = 1 ..= failures): the last attempt dies; otherwise its
                // retry comes after the policy's delay, which may put it after the range
                // (dies at once) or past the run (remains pending).
                for k in 1..=failures {
                    if k >= task.attempts {
                        return End::Dies("planned failure");
                    }
                    let delay = task.delay_after(k);
                    if delay > MAX_TIME_MS / 2 {
                        return End::Dies("(no retry: ");
                    }
                    if delay >= i64::try_from(FAR_MS).unwrap_or(i64::MAX) {
                        return End::Remains;
                    }
                }
                End::Succeeds
            }
            _ => End::Succeeds,
        }
    }
}

/// A task's place in the model: a child of another task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Child {
    /// `<parent>-<i>`, scheduled by a `Spawn` handler (a fresh id for each of its firings).
    Spawned,
    /// `<parent>-again`, the `Record` a `Reschedule` handler puts under its own id.
    Again,
}

/// One task the run asked for (by a request, or through a handler that schedules).
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    /// The label its handler records: unique in the run.
    pub label: String,
    /// Its id, once known.
    pub id: Option<String>,
    /// The step that asked for it.
    pub step: u64,
    /// What its handler does (`Record` for bursts and children).
    pub handler: Handler,
    /// Whether it repeats.
    pub recurring: bool,
    /// Whether it is due an hour or more after it was scheduled (never within a run).
    pub far: bool,
    /// Attempts in all, as the sandbox applies its options (default 3).
    pub attempts: u32,
    /// The backoff after the first failure, as the sandbox applies it (default 1 s; the
    /// request's `backoff_ms` only with explicit attempts).
    pub backoff_ms: u64,
    /// The growth of the backoff (default 2).
    pub factor: u32,
    /// The longest backoff (default 5 minutes; 8 times `backoff_ms` in the short form).
    pub max_backoff_ms: u64,
    /// Its interval, for an interval task.
    pub interval_ms: Option<i64>,
    /// Its first due time as the answer gave it.
    pub due_ms: Option<i64>,
    /// No firing of its first life may start before this (the driver's clock when it sent
    /// the request plus the delay, or the exact due time).
    pub not_before_ms: i64,
    /// How it must end.
    pub end: End,
    /// Whether the run knows it was stored and did nothing since that may remove or replace
    /// it: only then must it fire and end as `end` says.
    pub certain: bool,
    /// `keep_existing` kept another task: this one was never stored.
    pub never_stored: bool,
    /// An acknowledged cancel or replacement removed it by this time (driver's clock):
    /// nothing of it may start later.
    pub removed_ms: Option<i64>,
    /// The cancel that removed it found it pending, never attempted: it never fired.
    pub removed_unstarted: bool,
    /// Acknowledged requeues: each starts a new life at this time (the answer's due time).
    pub requeued: Vec<i64>,
    /// A requeue got no answer at this time: from then on its lives cannot be told apart.
    pub blind_from: Option<i64>,
    /// `(step, index)` of its burst.
    pub burst: Option<(u64, u32)>,
    /// The task that scheduled it, and how.
    pub parent: Option<(usize, Child)>,
}

impl Task {
    /// A task of step `step` with label `label`, certain until told otherwise, with the
    /// default retry policy.
    pub(crate) fn new(label: String, step: u64, handler: Handler, end: End, not_before_ms: i64) -> Self {
        Task {
            label,
            id: None,
            step,
            handler,
            recurring: false,
            far: false,
            attempts: 3,
            backoff_ms: 1_000,
            factor: 2,
            max_backoff_ms: 300_000,
            interval_ms: None,
            due_ms: None,
            not_before_ms,
            end,
            certain: true,
            never_stored: false,
            removed_ms: None,
            removed_unstarted: false,
            requeued: Vec::new(),
            blind_from: None,
            burst: None,
            parent: None,
        }
    }
}

impl Task {
    /// The wait after failed attempt `attempt` (1-based), as the library computes it from the
    /// policy once it is in range: every backoff at most [`MAX_BACKOFF_MS`], the factor in
    /// `1 ..= MAX_FACTOR`, the maximum at least the first wait.
    #[must_use]
    pub fn delay_after(&self, attempt: u32) -> i64 {
        let clamp = |ms: u64| i64::try_from(ms).unwrap_or(i64::MAX).min(MAX_BACKOFF_MS);
        let (initial, max) = (clamp(self.backoff_ms), clamp(self.max_backoff_ms));
        let max = max.max(initial);
        let mut delay = initial;
        for _ in 1..attempt {
            if delay >= max {
                break;
            }
            delay = delay.saturating_mul(i64::from(self.factor.clamp(1, MAX_FACTOR)));
        }
        delay.min(max)
    }
}

/// The longest backoff the library stores (it clamps longer ones): the latest time the
/// runtime arms, so that a retry after it falls after the range and its task dies
/// (`lumenize_alarms::core::MAX_BACKOFF_MS`).
pub(crate) const MAX_BACKOFF_MS: i64 = MAX_TIME_MS;
/// The most attempts a task makes (`lumenize_alarms::core::MAX_ATTEMPTS`): more are clamped.
pub(crate) const MAX_ATTEMPTS: u32 = 1_000;
/// The largest growth factor of a backoff (`lumenize_alarms::core::MAX_FACTOR`): a larger
/// one is clamped, and 0 is 1.
pub(crate) const MAX_FACTOR: u32 = 1_000;

/// What a label the run used stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A task (index into [`ObjectModel::tasks`]).
    Task(usize),
    /// The `-done` mark a `Slow` task records when its wait ended.
    Done(usize),
    /// The label of an invalid input: nothing may ever record it.
    Invalid,
    /// A task the drain schedules to see that the object still works.
    Probe,
}

/// The model of one object.
#[derive(Debug, Clone, Default)]
pub struct ObjectModel {
    /// Its name (the URL segment).
    pub name: String,
    /// Every task asked for, in order.
    pub tasks: Vec<Task>,
    labels: HashMap<String, Role>,
    by_step: HashMap<(u64, u32), String>,
    by_id: HashMap<String, Vec<usize>>,
    /// Ids a `Cancel` handler may cancel at any time: no task under them is certain.
    doomed: HashSet<String>,
}

impl ObjectModel {
    /// An object named `name`.
    #[must_use]
    pub fn new(name: String) -> Self {
        ObjectModel { name, ..ObjectModel::default() }
    }

    /// Adds a task, and the tasks its handler schedules; its index.
    pub(crate) fn add(&mut self, task: Task) -> usize {
        let (label, step, handler) = (task.label.clone(), task.step, task.handler.clone());
        let i = self.push(task);
        let child = |label: String, how: Child| Task { parent: Some((i, how)), ..Task::new(label, step, Handler::Record, End::Succeeds, 0) };
        match handler {
            Handler::Slow { .. } => {
                self.labels.insert(format!("{label}-done"), Role::Done(i));
            }
            Handler::Spawn { count } => {
                for c in 0..count {
                    self.push(child(format!("{label}-{c}"), Child::Spawned));
                }
            }
            Handler::Reschedule { delay_ms } if delay_ms < FAR_MS => {
                self.push(child(format!("{label}-again"), Child::Again));
            }
            _ => {}
        }
        i
    }

    fn push(&mut self, task: Task) -> usize {
        let i = self.tasks.len();
        self.labels.insert(task.label.clone(), Role::Task(i));
        if let Some(id) = &task.id {
            self.by_id.entry(id.clone()).or_default().push(i);
        }
        self.tasks.push(task);
        i
    }

    /// Marks a label as an invalid input's.
    pub(crate) fn add_invalid(&mut self, label: String) {
        self.labels.insert(label, Role::Invalid);
    }

    /// Marks a label as a probe's.
    pub(crate) fn add_probe(&mut self, label: String) {
        self.labels.insert(label, Role::Probe);
    }

    /// What `label` stands for.
    #[must_use]
    pub fn role(&self, label: &str) -> Option<Role> {
        self.labels.get(label).copied()
    }

    /// The task labelled `label`.
    #[must_use]
    pub fn task(&self, label: &str) -> Option<(usize, &Task)> {
        match self.role(label)? {
            Role::Task(i) => Some((i, &self.tasks[i])),
            _ => None,
        }
    }

    /// Records that task `i` was stored under `id` (and, for a step's task, under which
    /// reference).
    pub(crate) fn set_id(&mut self, i: usize, id: &str, step_ref: Option<(u64, u32)>) {
        self.tasks[i].id = Some(id.to_owned());
        if self.doomed.contains(id) {
            self.tasks[i].certain = false;
        }
        let tasks = self.by_id.entry(id.to_owned()).or_default();
        if !tasks.contains(&i) {
            tasks.push(i);
        }
        if let Some(r) = step_ref {
            self.by_step.insert(r, id.to_owned());
        }
        // A `Reschedule` puts its `-again` task under its own id.
        if let Some(j) = (i + 1..self.tasks.len()).find(|&j| self.tasks[j].parent == Some((i, Child::Again))) {
            self.tasks[j].id = Some(id.to_owned());
            self.by_id.entry(id.to_owned()).or_default().push(j);
        }
    }

    /// The id the task of step `step` (burst index `index`) got, if its answer came.
    #[must_use]
    pub fn id_of_step(&self, step: u64, index: u32) -> Option<&str> {
        self.by_step.get(&(step, index)).map(String::as_str)
    }

    /// The tasks that were ever stored under `id`.
    #[must_use]
    pub fn with_id(&self, id: &str) -> Vec<usize> {
        self.by_id.get(id).cloned().unwrap_or_default()
    }

    /// A `Cancel` handler may cancel `id` whenever it runs: no task under it, stored now or
    /// later, is certain.
    pub(crate) fn doom(&mut self, id: &str) {
        self.doomed.insert(id.to_owned());
        self.touch(id);
    }

    /// Something may have removed or replaced the tasks under `id`: none of them is certain
    /// any more.
    pub(crate) fn touch(&mut self, id: &str) {
        for i in self.with_id(id) {
            self.tasks[i].certain = false;
        }
    }
}

/// What a request had to get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Expect {
    /// A 2xx.
    Ok,
    /// A 2xx, or a 400 whose body contains one of these (a typed refusal the driver cannot
    /// foresee: a requeue of a task that is not dead).
    OkOr(&'static [&'static str]),
    /// A 400 whose body contains this: an invalid input.
    Refused(&'static str),
}

/// What a request got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// A 2xx.
    Ok,
    /// A 4xx, with (the start of) its body.
    Refused {
        /// The status.
        status: u16,
        /// The body, cut to 2,000 characters.
        body: String,
    },
    /// A 5xx (or another status), with (the start of) its body.
    Failed {
        /// The status.
        status: u16,
        /// The body, cut to 2,000 characters.
        body: String,
    },
    /// No HTTP answer (refused, reset, timed out).
    NoAnswer(String),
}

impl Outcome {
    /// Whether an answer came that says nothing about whether the request took effect.
    #[must_use]
    pub fn cut_off(&self) -> bool {
        matches!(self, Outcome::Failed { .. } | Outcome::NoAnswer(_))
    }
}

/// One request of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    /// The step that sent it (drain requests: after the last step).
    pub step: u64,
    /// The object: an index into [`Model::objects`], or into the call origins
    /// ([`CallsModel::origins`]) for a request to an origin.
    pub object: usize,
    /// A request to a call origin.
    pub calls: bool,
    /// What it was, for the counts (`schedule`, `burst-many`, `invalid: bad cron`, ...).
    pub what: String,
    /// When it was sent (driver's clock, Unix ms).
    pub sent_ms: i64,
    /// When its answer (or the failure) came.
    pub done_ms: i64,
    /// What it had to get.
    pub expect: Expect,
    /// What it got.
    pub outcome: Outcome,
}

/// One kill of the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Kill {
    /// Just before the SIGKILL (driver's clock).
    pub killed_ms: i64,
    /// When the restarted runtime answered.
    pub up_ms: i64,
    /// Whether a request was in flight.
    pub mid_request: bool,
}

/// The whole record of a run.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// One per object.
    pub objects: Vec<ObjectModel>,
    /// Every request, in order.
    pub requests: Vec<Request>,
    /// Every kill.
    pub kills: Vec<Kill>,
    /// Alarms deleted behind the scheduler's back.
    pub lost_alarms: u32,
    /// Disagreements between an answer and the request, found as answers came.
    pub answer_problems: Vec<(usize, String)>,
    /// The calls.
    pub calls: CallsModel,
    /// Disagreements between an origin's answer and the call request, by origin.
    pub call_answer_problems: Vec<(usize, String)>,
}

impl Model {
    /// A model of `objects` objects named `<prefix>-<i>`.
    #[must_use]
    pub fn new(prefix: &str, objects: usize) -> Self {
        Model {
            objects: (0..objects).map(|i| ObjectModel::new(format!("{prefix}-{i}"))).collect(),
            calls: CallsModel::new(prefix, ORIGINS, REMOTES),
            ..Model::default()
        }
    }

    /// Notes an answer that disagrees with its request.
    pub(crate) fn problem(&mut self, object: usize, what: String) {
        self.answer_problems.push((object, what));
    }

    /// Notes an origin's answer that disagrees with its request.
    pub(crate) fn problem_calls(&mut self, origin: usize, what: String) {
        self.call_answer_problems.push((origin, what));
    }

    /// The name of the object a request went to.
    #[must_use]
    pub fn object_name(&self, r: &Request) -> Option<&str> {
        if r.calls {
            self.calls.origins.get(r.object).map(String::as_str)
        } else {
            self.objects.get(r.object).map(|o| o.name.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_get_their_labels_and_the_again_task_shares_its_parents_id() {
        let mut o = ObjectModel::new("o".into());
        let spawn = o.add(Task::new("s1".into(), 1, Handler::Spawn { count: 2 }, End::Succeeds, 0));
        let again = o.add(Task::new("s2".into(), 2, Handler::Reschedule { delay_ms: 10 }, End::Succeeds, 0));
        let slow = o.add(Task::new("s3".into(), 3, Handler::Slow { wait_ms: 10 }, End::Succeeds, 0));
        assert_eq!(o.task("s1").map(|(i, _)| i), Some(spawn));
        assert_eq!(o.task("s1-1").map(|(_, t)| t.parent), Some(Some((spawn, Child::Spawned))));
        assert_eq!(o.task("s2").map(|(i, _)| i), Some(again));
        assert_eq!(o.role("s3-done"), Some(Role::Done(slow)));
        o.set_id(again, "abc", Some((2, 0)));
        assert_eq!(o.task("s2-again").and_then(|(_, t)| t.id.clone()).as_deref(), Some("abc"));
        assert_eq!(o.with_id("abc").len(), 2);
        assert_eq!(o.id_of_step(2, 0), Some("abc"));
        o.touch("abc");
        assert!(!o.task("s2-again").unwrap().1.certain && !o.task("s2").unwrap().1.certain);
        assert!(o.task("s1-0").unwrap().1.certain);
    }
}
