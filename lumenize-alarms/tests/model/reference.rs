//! The reference model: written from the contract (the guarantees, the rustdoc of
//! `run_due`, `RetryPolicy`, `MissedTicks`, `Scheduled`), not from the core's code. Plain
//! maps and a loop that picks the next due task afresh every time.

use std::collections::{BTreeMap, VecDeque};

use lumenize_alarms::{Kind, MissedTicks, RetryPolicy, RunReport, Status};

use crate::programs::{handler_error, handler_policy, pool_id, bad_payload, Action, Outcome, Res, WhenSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MKind {
    Once,
    Every(i64),
    Cron(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MErr {
    Handler(String),
    CutShort,
    Decode,
}

#[derive(Debug, Clone)]
pub struct MTask {
    pub seq: i64,
    pub kind: MKind,
    pub due: i64,
    /// The scheduled time of the current occurrence of a recurring task: retries move
    /// `due`, not this; the next tick is computed from it (guarantee 4).
    pub tick: i64,
    pub payload: String,
    pub status: Status,
    pub attempts: u32,
    pub retry: RetryPolicy,
    pub missed: MissedTicks,
    pub last_error: Option<MErr>,
    pub created: i64,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub tasks: BTreeMap<String, MTask>,
    pub last_seq: i64,
    pub now: i64,
    pub next_gen: u64,
    pub next_payload: u64,
}

/// One handler invocation, as seen by the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inv {
    pub id: String,
    pub seq: i64,
    pub due: i64,
    pub at: i64,
    pub attempts: u32,
    pub payload: u64,
}

/// Backoff after failed attempt `attempt`: `initial * factor^(attempt-1)`, capped.
fn backoff(p: &RetryPolicy, attempt: u32) -> i64 {
    let mut d = i128::from(p.initial_backoff_ms.max(0));
    for _ in 1..attempt {
        d = (d * i128::from(p.factor)).min(i128::from(i64::MAX));
    }
    i64::try_from(d.min(i128::from(p.max_backoff_ms))).unwrap()
}

/// The first `*/k`-second boundary strictly after `t`.
fn cron_next(k: i64, t: i64) -> i64 {
    let step = k * 1_000;
    (t.div_euclid(step) + 1) * step
}

/// The tick after the occurrence at `tick` that ran (successfully) at `now`.
fn next_tick(kind: MKind, tick: i64, missed: MissedTicks, now: i64) -> i64 {
    match (kind, missed) {
        (MKind::Once, _) => unreachable!(),
        (MKind::Every(iv), MissedTicks::Burst) => tick + iv,
        (MKind::Every(iv), MissedTicks::Skip) => {
            // The first tick tick + n * iv (n >= 1) strictly after now.
            let mut next = tick + iv;
            if next <= now {
                next += ((now - next) / iv + 1) * iv;
            }
            next
        }
        (MKind::Cron(k), MissedTicks::Burst) => cron_next(k, tick),
        (MKind::Cron(k), MissedTicks::Skip) => {
            let next = cron_next(k, tick);
            if next > now {
                next
            } else {
                cron_next(k, now)
            }
        }
        // `MissedTicks` may grow: a policy the model does not know fails the test loudly.
        (_, missed) => panic!("the reference model knows no {missed:?}: extend it"),
    }
}

/// Pending and running tasks are the queue; paused and dead ones are not.
fn live(s: Status) -> bool {
    s == Status::Pending || s == Status::Running
}

impl MKind {
    fn kind(self) -> Kind {
        match self {
            MKind::Once => Kind::Once,
            MKind::Every(_) => Kind::Every,
            MKind::Cron(_) => Kind::Cron,
        }
    }
}

impl Model {
    pub fn new(now: i64) -> Self {
        Model { tasks: BTreeMap::new(), last_seq: 0, now, next_gen: 0, next_payload: 0 }
    }

    pub fn schedule(&mut self, id: Option<String>, when: WhenSpec, keep: bool, retry: RetryPolicy, missed: MissedTicks, bad: bool) {
        let n = self.next_payload;
        self.next_payload += 1;
        let payload = if bad { bad_payload(n) } else { n.to_string() };
        let id = id.unwrap_or_else(|| {
            self.next_gen += 1;
            format!("g{}", self.next_gen)
        });
        if keep && self.tasks.contains_key(&id) {
            return;
        }
        let now = self.now;
        let (kind, due) = match when {
            WhenSpec::After(d) => (MKind::Once, now + d),
            WhenSpec::At(t) => (MKind::Once, t),
            WhenSpec::Every(iv) => (MKind::Every(iv), now + iv),
            WhenSpec::Cron(k) => (MKind::Cron(k), cron_next(k, now)),
        };
        self.last_seq += 1;
        let task = MTask {
            seq: self.last_seq,
            kind,
            due,
            tick: due,
            payload,
            status: Status::Pending,
            attempts: 0,
            retry,
            missed,
            last_error: None,
            created: now,
        };
        self.tasks.insert(id, task);
    }

    pub fn cancel(&mut self, id: &str) -> Option<(String, i64)> {
        self.tasks.remove(id).map(|t| (id.to_owned(), t.seq))
    }

    pub fn requeue(&mut self, id: &str) -> Result<(), &'static str> {
        let now = self.now;
        let t = self.tasks.get_mut(id).ok_or("not found")?;
        if t.status != Status::Dead {
            return Err("not dead");
        }
        // A requeue is one more retry of the occurrence that died: due now, on the same tick.
        t.status = Status::Pending;
        t.attempts = 0;
        t.due = now;
        Ok(())
    }

    /// `pause`: a pending task is paused, a paused one stays as it is; a running or dead one
    /// is refused.
    pub fn pause(&mut self, id: &str) -> Result<Status, &'static str> {
        let t = self.tasks.get_mut(id).ok_or("not found")?;
        match t.status {
            Status::Pending | Status::Paused => {
                t.status = Status::Paused;
                Ok(Status::Paused)
            }
            Status::Running | Status::Dead => Err("wrong status"),
            status => panic!("the reference model knows no status {status}: extend it"),
        }
    }

    /// `resume`: pending again. A one-shot task, a `Burst` task and one whose due time has
    /// not passed keep their times; a `Skip` task whose due time passed moves to its first
    /// tick at or after now (its tick itself if that is still ahead), with no attempts.
    pub fn resume(&mut self, id: &str) -> Result<Status, &'static str> {
        let now = self.now;
        let t = self.tasks.get_mut(id).ok_or("not found")?;
        match t.status {
            Status::Paused => {}
            Status::Pending | Status::Running => return Ok(t.status),
            Status::Dead => return Err("wrong status"),
            status => panic!("the reference model knows no status {status}: extend it"),
        }
        t.status = Status::Pending;
        if t.due < now && t.missed == MissedTicks::Skip && t.kind != MKind::Once {
            let next = if t.tick >= now {
                t.tick
            } else {
                match t.kind {
                    MKind::Every(iv) => t.tick + (now - t.tick + iv - 1) / iv * iv,
                    MKind::Cron(k) => cron_next(k, now - 1),
                    MKind::Once => unreachable!(),
                }
            };
            t.due = next;
            t.tick = next;
            t.attempts = 0;
        }
        Ok(Status::Pending)
    }

    /// `run_now`: a pending or paused task is pending and due now (no later than it was).
    pub fn run_now(&mut self, id: &str) -> Result<Status, &'static str> {
        let now = self.now;
        let t = self.tasks.get_mut(id).ok_or("not found")?;
        match t.status {
            Status::Pending | Status::Paused => {
                t.status = Status::Pending;
                t.due = t.due.min(now);
                Ok(Status::Pending)
            }
            Status::Running | Status::Dead => Err("wrong status"),
            status => panic!("the reference model knows no status {status}: extend it"),
        }
    }

    /// `requeue_dead`: the first `limit` (at most 1 000) dead tasks of `kind`, by (due, seq),
    /// requeued as `requeue` does one.
    pub fn requeue_dead(&mut self, kind: Option<Kind>, limit: Option<usize>) -> usize {
        let mut dead: Vec<(i64, i64, String)> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.status == Status::Dead && kind.is_none_or(|k| k == t.kind.kind()))
            .map(|(id, t)| (t.due, t.seq, id.clone()))
            .collect();
        dead.sort();
        dead.truncate(limit.unwrap_or(1_000).min(1_000));
        for (_, _, id) in &dead {
            self.requeue(id).unwrap();
        }
        dead.len()
    }

    /// `(pending, running, paused, dead)`.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let n = |s: Status| self.tasks.values().filter(|t| t.status == s).count();
        (n(Status::Pending), n(Status::Running), n(Status::Paused), n(Status::Dead))
    }

    pub fn earliest(&self) -> Option<i64> {
        self.tasks.values().filter(|t| live(t.status)).map(|t| t.due).min()
    }

    fn next_due(&self) -> Option<String> {
        let now = self.now;
        self.tasks
            .iter()
            .filter(|(_, t)| live(t.status) && t.due <= now)
            .min_by_key(|(_, t)| (t.due, t.seq))
            .map(|(id, _)| id.clone())
    }

    /// The task `id` if it is still the instance `seq` (a handler may have replaced or
    /// cancelled it).
    fn same(&mut self, id: &str, seq: i64) -> Option<&mut MTask> {
        self.tasks.get_mut(id).filter(|t| t.seq == seq)
    }

    /// Attempt `attempts` of `id`/`seq` failed now: retry after the backoff, or dead.
    fn fail(&mut self, id: &str, seq: i64, error: MErr) -> Status {
        let now = self.now;
        let Some(t) = self.same(id, seq) else { return Status::Pending };
        t.last_error = Some(error);
        if t.attempts < t.retry.max_attempts {
            t.status = Status::Pending;
            t.due = now + backoff(&t.retry, t.attempts);
        } else {
            t.status = Status::Dead;
        }
        t.status
    }

    fn succeed(&mut self, id: &str, seq: i64) {
        let now = self.now;
        let Some(t) = self.same(id, seq) else { return };
        if t.kind == MKind::Once {
            self.tasks.remove(id);
            return;
        }
        // Ran before its tick (run now): that tick is still to come.
        if t.tick <= now {
            t.tick = next_tick(t.kind, t.tick, t.missed, now);
        }
        t.due = t.tick;
        t.status = Status::Pending;
        t.attempts = 0;
        t.last_error = None;
    }

    /// `run_due` as documented. `None`: the isolate crashed inside a handler.
    pub fn run(&mut self, limit: usize, script: &mut VecDeque<Outcome>, log: &mut Vec<Inv>) -> Option<RunReport> {
        let mut report = RunReport::default();
        let count = |report: &mut RunReport, s: Status| {
            if s == Status::Dead {
                report.died += 1;
            } else {
                report.retrying += 1;
            }
        };
        for _ in 0..limit {
            let Some(id) = self.next_due() else { return Some(report) };
            let t = self.tasks.get_mut(&id).unwrap();
            let seq = t.seq;
            if t.status == Status::Running {
                report.interrupted += 1;
                let s = self.fail(&id, seq, MErr::CutShort);
                count(&mut report, s);
                continue;
            }
            let Ok(payload) = serde_json::from_str::<u64>(&t.payload) else {
                t.status = Status::Dead;
                t.last_error = Some(MErr::Decode);
                report.died += 1;
                continue;
            };
            t.status = Status::Running;
            t.attempts += 1;
            log.push(Inv { id: id.clone(), seq, due: t.due, at: self.now, attempts: t.attempts, payload });
            let lateness = self.now - t.due;
            report.started += 1;
            report.max_lateness_ms = report.max_lateness_ms.max(lateness);
            report.total_lateness_ms += lateness;
            let out = script.pop_front().unwrap_or_default();
            match out.action {
                Action::None => {}
                Action::RescheduleSelf { delay, keep } => {
                    self.schedule(Some(id.clone()), WhenSpec::After(delay), keep, handler_policy(), MissedTicks::Skip, false);
                }
                Action::CancelSelf => {
                    self.cancel(&id);
                }
                Action::ScheduleNew { id: new, delay } => {
                    self.schedule(new.map(pool_id), WhenSpec::After(delay), false, handler_policy(), MissedTicks::Skip, false);
                }
            }
            self.now += out.advance;
            match out.res {
                Res::Crash => return None,
                Res::Ok => {
                    self.succeed(&id, seq);
                    report.succeeded += 1;
                }
                Res::Err(k) => {
                    let s = self.fail(&id, seq, MErr::Handler(handler_error(k, &id)));
                    count(&mut report, s);
                }
            }
        }
        report.more_due = self.next_due().is_some();
        Some(report)
    }
}

