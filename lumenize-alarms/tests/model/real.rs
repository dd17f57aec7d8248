//! The real scheduler (`core::Scheduler` over a real store and a simulated native alarm),
//! driven by a program, with the checks that need no model.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use lumenize_alarms::core::{Filter, Scheduler, SimulatedAlarm, Store};
use lumenize_alarms::{MissedTicks, Options, RunReport, Schedule, Scheduled, Status};

use crate::programs::{bad_payload, handler_error, handler_policy, pool_id, Action, Outcome, Res, Sched, WhenSpec};
use crate::support::{block_on, Edit, HandlerFut};

/// What became of one scheduled instance `(id, seq)`, as the test saw it happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Alive,
    Replaced,
    Cancelled,
    /// A one-shot whose handler returned `Ok`.
    Completed,
}

#[derive(Debug)]
pub struct Instance {
    pub once: bool,
    pub fate: Fate,
}

/// One handler invocation, as seen by the handler.
pub use crate::reference::Inv;

pub struct Real<S: Store> {
    pub store: Rc<S>,
    /// Replaced by a fresh one when the object restarts: only storage and the native alarm
    /// survive.
    pub sched: Scheduler<Rc<S>>,
    /// The runtime's alarm, which survives restarts.
    pub alarm: SimulatedAlarm,
    pub clock: Cell<i64>,
    next_gen: Cell<u64>,
    next_payload: Cell<u64>,
    pub script: RefCell<VecDeque<Outcome>>,
    pub log: RefCell<Vec<Inv>>,
    pub ledger: RefCell<BTreeMap<(String, i64), Instance>>,
    pub violations: RefCell<Vec<String>>,
    /// A handler is running (it may schedule and cancel).
    in_handler: Cell<bool>,
}

impl<S: Store> Real<S> {
    pub fn new(store: Rc<S>, now: i64, script: Vec<Outcome>) -> Self {
        Real {
            sched: Scheduler::new(store.clone()),
            store,
            alarm: SimulatedAlarm::default(),
            clock: Cell::new(now),
            next_gen: Cell::new(0),
            next_payload: Cell::new(0),
            script: RefCell::new(script.into()),
            log: RefCell::new(Vec::new()),
            ledger: RefCell::new(BTreeMap::new()),
            violations: RefCell::new(Vec::new()),
            in_handler: Cell::new(false),
        }
    }

    pub fn violation(&self, v: String) {
        self.violations.borrow_mut().push(v);
    }

    /// Every stored task, as users see it (through the scheduler: with a run's completions).
    pub fn all(&self) -> Vec<Scheduled> {
        self.sched.list(&Filter::default()).unwrap()
    }

    /// Live tasks due at `now`, by `(due, seq)`, computed from `list`, not `due`.
    fn due_at(&self, now: i64) -> Vec<Scheduled> {
        self.all().into_iter().filter(|t| t.status.is_live() && t.due_ms <= now).collect()
    }

    fn payload(&self, bad: bool) -> String {
        let n = self.next_payload.get();
        self.next_payload.set(n + 1);
        if bad {
            bad_payload(n)
        } else {
            n.to_string()
        }
    }

    fn new_id(&self) -> String {
        self.next_gen.set(self.next_gen.get() + 1);
        format!("g{}", self.next_gen.get())
    }

    fn options(s: &Sched) -> Options {
        let opts = Options::default().edit(|o| (o.id, o.keep_existing) = (s.id.map(pool_id), s.keep));
        opts.retry(s.retry.clone()).missed(s.missed)
    }

    /// Records in the ledger what storing `id` did: the instance it replaced, the new one.
    fn note(&self, before: Option<Scheduled>, after: &Scheduled) {
        let mut ledger = self.ledger.borrow_mut();
        if let Some(before) = before {
            if before.seq != after.seq {
                ledger.get_mut(&(before.id, before.seq)).unwrap().fate = Fate::Replaced;
            }
        }
        ledger.entry((after.id.clone(), after.seq)).or_insert(Instance { once: after.schedule == Schedule::Once, fate: Fate::Alive });
    }

    pub fn schedule(&self, s: &Sched) {
        let opts = Self::options(s);
        let payload = self.payload(s.bad);
        let before = opts.id.as_ref().and_then(|id| self.sched.get(id).unwrap());
        let (writes, running) = (self.alarm.writes(), self.handler_running());
        let when = s.when.when();
        let fut = self.sched.schedule(&self.alarm, self.clock.get(), &when, payload, &opts, || self.new_id());
        let id = block_on(fut).expect("schedule completes").unwrap();
        let task = self.sched.get(&id).unwrap().expect("a scheduled task is stored");
        self.note(before, &task);
        self.check_writes(writes, running, "schedule");
    }

    pub fn schedule_many(&self, batch: &[Sched]) {
        let befores: BTreeMap<String, Option<Scheduled>> =
            batch.iter().filter_map(|s| s.id.map(pool_id)).map(|id| (id.clone(), self.sched.get(&id).unwrap())).collect();
        let items: Vec<_> = batch.iter().map(|s| (s.when.when(), self.payload(s.bad), Self::options(s))).collect();
        let (writes, running) = (self.alarm.writes(), self.handler_running());
        let fut = self.sched.schedule_many(&self.alarm, self.clock.get(), items, || self.new_id());
        let ids = block_on(fut).expect("schedule_many completes").unwrap();
        assert_eq!(ids.len(), batch.len());
        let mut seen = std::collections::BTreeSet::new();
        for id in ids {
            if seen.insert(id.clone()) {
                let after = self.sched.get(&id).unwrap().expect("a scheduled task is stored");
                self.note(befores.get(&id).cloned().flatten(), &after);
            }
        }
        self.check_writes(writes, running, "schedule_many");
    }

    /// Guarantee 14: storing tasks writes the native alarm at most once, and not at all
    /// while a handler runs.
    pub fn check_writes(&self, before: u32, running: bool, what: &str) {
        let writes = self.alarm.writes() - before;
        if writes > 1 || (running && writes > 0) {
            self.violation(format!("{what} wrote the native alarm {writes} times (a handler running: {running})"));
        }
    }

    fn handler_running(&self) -> bool {
        self.in_handler.get()
    }

    pub fn cancel(&self, id: &str) -> Option<(String, i64)> {
        let writes = self.alarm.writes();
        let removed = self.sched.cancel(id).unwrap();
        if self.alarm.writes() != writes {
            self.violation(format!("cancel({id:?}) wrote the native alarm"));
        }
        let removed = removed?;
        self.ledger.borrow_mut().get_mut(&(removed.id.clone(), removed.seq)).unwrap().fate = Fate::Cancelled;
        if self.sched.get(id).unwrap().is_some() {
            self.violation(format!("cancel({id:?}) returned the task but left it stored"));
        }
        Some((removed.id, removed.seq))
    }

    /// `discard`, checked as `cancel` is: the task it says it removed is gone, and no alarm
    /// was written.
    pub fn discard(&self, id: &str) -> bool {
        let before = self.sched.get(id).unwrap();
        let writes = self.alarm.writes();
        let removed = self.sched.discard(id).unwrap();
        if self.alarm.writes() != writes {
            self.violation(format!("discard({id:?}) wrote the native alarm"));
        }
        if removed != before.is_some() {
            self.violation(format!("discard({id:?}) returned {removed} for a stored task {before:?}"));
        }
        if let Some(task) = before.filter(|_| removed) {
            self.ledger.borrow_mut().get_mut(&(task.id.clone(), task.seq)).unwrap().fate = Fate::Cancelled;
        }
        if self.sched.get(id).unwrap().is_some() {
            self.violation(format!("discard({id:?}) left the task stored"));
        }
        removed
    }

    /// The isolate died, or was evicted: nothing survives but storage and the native alarm
    /// (with `lose`, the runtime lost that too). The first event reads the alarm and re-arms
    /// (guarantee 10).
    pub fn restart(&mut self, lose: bool) {
        if lose {
            self.alarm.clear();
        }
        self.sched = Scheduler::new(self.store.clone());
        block_on(self.sched.armed(&self.alarm, self.clock.get())).expect("the first read completes").unwrap();
    }

    /// One `run_due` call (`at`: the test hook's time); `None` when a handler crashed.
    pub fn run(&self, limit: usize, at: Option<i64>) -> Option<RunReport> {
        let clock = || self.clock.get();
        let calls = Cell::new(0usize);
        let handler = |payload: u64, task: Scheduled| {
            calls.set(calls.get() + 1);
            let now = self.clock.get();
            // Guarantee 1: never early.
            if now < task.due_ms {
                self.violation(format!("{} (seq {}) ran at {now}, before its time {}", task.id, task.seq, task.due_ms));
            }
            if task.status != Status::Running || task.attempts == 0 {
                self.violation(format!("handler told {:?} / attempts {}", task.status, task.attempts));
            }
            // Guarantee 3: the first live task by (due, seq) among those due now.
            match self.due_at(now).first() {
                Some(first) if (first.id.as_str(), first.seq) == (task.id.as_str(), task.seq) => {}
                first => self.violation(format!(
                    "ran {} (due {}, seq {}) at {now} while {:?} came first by (due, seq)",
                    task.id,
                    task.due_ms,
                    task.seq,
                    first.map(|f| (&f.id, f.due_ms, f.seq))
                )),
            }
            let out = self.script.borrow_mut().pop_front().unwrap_or_default();
            self.log.borrow_mut().push(Inv { id: task.id.clone(), seq: task.seq, due: task.due_ms, at: now, attempts: task.attempts, payload });
            self.in_handler.set(true);
            match out.action {
                Action::None => {}
                Action::RescheduleSelf { delay, keep } => {
                    let s = Sched { id: None, when: WhenSpec::After(delay), keep, retry: handler_policy(), missed: MissedTicks::Skip, bad: false };
                    self.schedule_id(&task.id, &s);
                }
                Action::CancelSelf => {
                    self.cancel(&task.id);
                }
                Action::ScheduleNew { id, delay } => {
                    let s = Sched { id, when: WhenSpec::After(delay), keep: false, retry: handler_policy(), missed: MissedTicks::Skip, bad: false };
                    self.schedule(&s);
                }
            }
            self.in_handler.set(false);
            self.clock.set(now + out.advance);
            let result = match out.res {
                Res::Ok => {
                    if let Some(i) = self.ledger.borrow_mut().get_mut(&(task.id.clone(), task.seq)) {
                        if i.once && i.fate == Fate::Alive {
                            i.fate = Fate::Completed;
                        }
                    }
                    Some(Ok(()))
                }
                Res::Err(k) => Some(Err(handler_error(k, &task.id))),
                Res::Crash => None,
            };
            HandlerFut { result, yields: out.yields }
        };
        let report = block_on(self.sched.run_due(&self.alarm, &clock, at, limit, handler)).map(|r| r.unwrap());
        // Guarantee 9: bounded work, and a truthful `more_due`.
        if calls.get() > limit {
            self.violation(format!("run_due(limit {limit}) ran {} handlers", calls.get()));
        }
        if let Some(report) = &report {
            let due = !self.due_at(self.clock.get()).is_empty();
            if report.more_due != due {
                self.violation(format!("run_due said more_due = {} but due tasks remain: {due}", report.more_due));
            }
            if report.started != u32::try_from(calls.get()).unwrap() {
                self.violation(format!("run_due reported {} started, {} ran", report.started, calls.get()));
            }
        }
        report
    }

    /// A handler schedules its own id again.
    fn schedule_id(&self, id: &str, s: &Sched) {
        let opts = Self::options(s).edit(|o| o.id = Some(id.to_owned()));
        let payload = self.payload(false);
        let before = self.sched.get(id).unwrap();
        let when = s.when.when();
        let fut = self.sched.schedule(&self.alarm, self.clock.get(), &when, payload, &opts, || unreachable!());
        block_on(fut).expect("schedule completes").unwrap();
        let task = self.sched.get(id).unwrap().expect("a scheduled task is stored");
        self.note(before, &task);
    }

    /// Checks that hold between operations: the alarm covers the earliest pending task, and
    /// no scheduled instance vanished without running.
    pub fn check_invariants(&self) {
        let now = self.clock.get();
        if let Some(head) = self.store.earliest().unwrap() {
            match self.alarm.armed() {
                Some(a) if a <= head.due_ms.max(now + 1) => {}
                armed => self.violation(format!("alarm {armed:?} at {now} is later than the earliest pending task {}", head.due_ms)),
            }
        }
        let stored: BTreeMap<(String, i64), Scheduled> = self.all().into_iter().map(|t| ((t.id.clone(), t.seq), t)).collect();
        for ((id, seq), inst) in self.ledger.borrow().iter() {
            let present = stored.contains_key(&(id.clone(), *seq));
            match inst.fate {
                Fate::Alive if !present => self.violation(format!("{id} (seq {seq}) was lost: never ran, not cancelled")),
                Fate::Completed if present => {
                    self.violation(format!("one-shot {id} (seq {seq}) succeeded but is still stored"));
                }
                _ => {}
            }
        }
    }
}
