//! From what was scheduled and what the object recorded to the scenario's figures: which
//! tasks were delivered, lost or early, the duplicates, and the lateness.

use std::collections::{BTreeMap, BTreeSet};

use alarms_robustness::{Firing, StatusReply};
use serde::{Deserialize, Serialize};

/// A task the driver scheduled and got an answer for: it must fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// The task's number.
    pub n: u32,
    /// No attempt may start before this (Unix milliseconds, the runtime's clock): the start
    /// of the request that scheduled it plus its delay.
    pub floor_ms: i64,
    /// When the request that scheduled it finished storing its tasks (runtime clock): the
    /// object could not start an alarm before (its input gate was closed).
    pub stored_ms: i64,
    /// How it must end.
    pub end: End,
}

/// How a task must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum End {
    /// Its handler succeeds, after `failures` planned failures (`failures + 1` firings).
    Succeeds {
        /// Planned failing attempts.
        failures: u32,
    },
    /// Its handler panics on every one of its `attempts`; then it is kept dead.
    Dies {
        /// Attempts allowed.
        attempts: u32,
    },
}

impl End {
    /// Firings a task with this end has when nothing else goes wrong.
    #[must_use]
    pub fn firings(self) -> usize {
        match self {
            End::Succeeds { failures } => failures as usize + 1,
            End::Dies { attempts } => attempts as usize,
        }
    }
}

/// A firing that started before its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Early {
    /// The task's number.
    pub n: u32,
    /// Which attempt.
    pub attempt: u32,
    /// When it started.
    pub fired_ms: i64,
    /// The earliest it was allowed to start: its due time, or its request's start plus delay.
    pub allowed_ms: i64,
}

/// What the firings of one scenario show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Tasks that had to fire (scheduled with an answer).
    pub tasks: u32,
    /// Tasks that ended as they must: succeeded, or (the panicking one) dead after all its
    /// attempts.
    pub delivered: u32,
    /// The numbers of the tasks that did not (by the deadline).
    pub lost: Vec<u32>,
    /// Firings that started before their time.
    pub early: Vec<Early>,
    /// Firings recorded, of expected tasks.
    pub firings: u32,
    /// Firings beyond the ones each task must have (retries of attempts cut short by a
    /// crash or panic: at-least-once delivery).
    pub duplicates: u32,
    /// Of those, the firings that repeat an attempt number of their task: a run that
    /// lumenize-alarms did not count, which at-least-once does not explain.
    pub unexplained_duplicates: u32,
    /// Per task, from its first recorded firing: fired minus scheduled time, milliseconds.
    pub lateness_ms: Vec<f64>,
    /// The same from the later of the scheduled time and the end of the task's request:
    /// the scheduler's own delay, without the wait for a long request to finish.
    pub lateness_after_request_ms: Vec<f64>,
    /// From the start of the first scheduling request to the last firing that ended a task
    /// (milliseconds, the runtime's clock).
    pub all_fired_ms: Option<i64>,
    /// Requests that got no answer (the runtime was killed under them): their tasks may or
    /// may not fire, but at most as often as their attempts allow.
    pub unacknowledged: u32,
    /// How many of those fired.
    pub unacknowledged_fired: u32,
    /// Firings of task numbers the driver never sent.
    pub strangers: u32,
}

impl Analysis {
    /// Whether every task was delivered, none early, and every duplicate is explained.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.lost.is_empty() && self.early.is_empty() && self.unexplained_duplicates == 0 && self.strangers == 0
    }

    /// Delivered tasks as a percentage of the tasks that had to fire.
    #[must_use]
    pub fn delivered_pct(&self) -> f64 {
        if self.tasks == 0 {
            return 100.0;
        }
        100.0 * f64::from(self.delivered) / f64::from(self.tasks)
    }
}

/// Checks `firings` against `expected`. `unacknowledged` are the numbers of tasks whose
/// request got no answer; `started_ms` is when the first request started (runtime clock);
/// `status` says which tasks are dead.
#[must_use]
pub fn analyse(expected: &[Expected], unacknowledged: &[u32], started_ms: i64, firings: &[Firing], status: &StatusReply) -> Analysis {
    let mut by_task: BTreeMap<u32, Vec<&Firing>> = BTreeMap::new();
    for f in firings {
        by_task.entry(f.n).or_default().push(f);
    }
    let dead: BTreeSet<&str> = status.dead.iter().map(|d| d.id.as_str()).collect();
    let unacknowledged: BTreeSet<u32> = unacknowledged.iter().copied().collect();
    let known: BTreeSet<u32> = expected.iter().map(|e| e.n).chain(unacknowledged.iter().copied()).collect();
    let mut a = Analysis {
        tasks: u32::try_from(expected.len()).unwrap_or(u32::MAX),
        unacknowledged: u32::try_from(unacknowledged.len()).unwrap_or(u32::MAX),
        unacknowledged_fired: count(unacknowledged.iter().filter(|n| by_task.contains_key(n))),
        strangers: count(firings.iter().filter(|f| !known.contains(&f.n))),
        ..Analysis::default()
    };
    let mut last_end_ms = None;
    for e in expected {
        let mine = by_task.get(&e.n).map_or(&[][..], Vec::as_slice);
        a.firings += count(mine.iter());
        let attempts: BTreeSet<u32> = mine.iter().map(|f| f.attempt).collect();
        a.unexplained_duplicates += count(mine.iter()) - count(attempts.iter());
        a.duplicates += count(mine.iter()).saturating_sub(u32::try_from(e.end.firings()).unwrap_or(u32::MAX));
        for f in mine {
            let allowed_ms = f.due_ms.max(e.floor_ms);
            if f.fired_ms < allowed_ms {
                a.early.push(Early { n: e.n, attempt: f.attempt, fired_ms: f.fired_ms, allowed_ms });
            }
        }
        if let Some(first) = mine.iter().min_by_key(|f| (f.attempt, f.seq)) {
            #[allow(clippy::cast_precision_loss)]
            a.lateness_ms.push((first.fired_ms - first.scheduled_ms) as f64);
            #[allow(clippy::cast_precision_loss)]
            a.lateness_after_request_ms.push((first.fired_ms - first.scheduled_ms.max(e.stored_ms)) as f64);
        }
        let ending = match e.end {
            End::Succeeds { .. } => mine.iter().find(|f| f.outcome == "ok"),
            End::Dies { attempts } => mine
                .iter()
                .filter(|f| f.outcome == "panic")
                .max_by_key(|f| f.attempt)
                .filter(|f| f.attempt >= attempts && dead.contains(f.task_id.as_str())),
        };
        match ending {
            Some(f) => {
                a.delivered += 1;
                last_end_ms = last_end_ms.max(Some(f.fired_ms));
            }
            None => a.lost.push(e.n),
        }
    }
    a.all_fired_ms = last_end_ms.filter(|_| a.lost.is_empty()).map(|t| t - started_ms);
    a
}

fn count<T>(it: impl Iterator<Item = T>) -> u32 {
    u32::try_from(it.count()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use alarms_robustness::DeadTask;

    use super::*;

    fn firing(seq: i64, n: u32, attempt: u32, scheduled_ms: i64, fired_ms: i64, outcome: &str) -> Firing {
        Firing { seq, n, task_id: format!("id-{n}"), scheduled_ms, due_ms: scheduled_ms, fired_ms, attempt, outcome: outcome.into() }
    }

    fn status(dead: &[u32]) -> StatusReply {
        StatusReply {
            firings: 0,
            succeeded: 0,
            queued: false,
            dead: dead.iter().map(|n| DeadTask { id: format!("id-{n}"), attempts: 3, last_error: None }).collect(),
            panics: 0,
            alarm_ms: None,
        }
    }

    const OK: End = End::Succeeds { failures: 0 };

    #[test]
    fn delivered_lost_early_and_lateness() {
        let expected = [0, 1, 2].map(|n| Expected { n, floor_ms: 1_000, stored_ms: 0, end: OK });
        let firings = [firing(1, 0, 1, 1_000, 1_010, "ok"), firing(2, 2, 1, 1_000, 990, "ok")];
        let a = analyse(&expected, &[], 900, &firings, &status(&[]));
        assert_eq!((a.tasks, a.delivered, a.lost.clone()), (3, 2, vec![1]));
        assert_eq!(a.early, vec![Early { n: 2, attempt: 1, fired_ms: 990, allowed_ms: 1_000 }]);
        assert_eq!(a.lateness_ms, vec![10.0, -10.0]);
        assert_eq!(a.all_fired_ms, None, "not all fired");
        assert!(!a.passed());
    }

    #[test]
    fn the_floor_catches_a_due_time_computed_too_early() {
        let expected = [Expected { n: 0, floor_ms: 5_000, stored_ms: 0, end: OK }];
        let a = analyse(&expected, &[], 0, &[firing(1, 0, 1, 10, 20, "ok")], &status(&[]));
        assert_eq!(a.early.len(), 1);
    }

    #[test]
    fn a_retried_cut_short_attempt_is_an_explained_duplicate_a_repeated_attempt_is_not() {
        let expected = [0, 1].map(|n| Expected { n, floor_ms: 0, stored_ms: 0, end: OK });
        let firings = [
            firing(1, 0, 1, 0, 5, "ok"),
            firing(2, 0, 2, 0, 2_000, "ok"), // attempt 1 was cut short by the crash
            firing(3, 1, 1, 0, 6, "ok"),
            firing(4, 1, 1, 0, 7, "ok"), // the same attempt twice
        ];
        let a = analyse(&expected, &[], 0, &firings, &status(&[]));
        assert_eq!((a.delivered, a.duplicates, a.unexplained_duplicates), (2, 2, 1));
        assert_eq!(a.all_fired_ms, Some(6), "the first ok firing ends a task");
        assert!(!a.passed());
    }

    #[test]
    fn failing_and_panicking_tasks_end_as_planned() {
        let expected = [
            Expected { n: 0, floor_ms: 0, stored_ms: 0, end: End::Succeeds { failures: 2 } },
            Expected { n: 1, floor_ms: 0, stored_ms: 0, end: End::Dies { attempts: 3 } },
        ];
        let mut firings = vec![firing(1, 0, 1, 0, 1, "err"), firing(2, 0, 2, 0, 101, "err"), firing(3, 0, 3, 0, 301, "ok")];
        firings.extend((1..=3).map(|a| firing(3 + i64::from(a), 1, a, 0, 400 + i64::from(a), "panic")));
        let a = analyse(&expected, &[], 0, &firings, &status(&[1]));
        assert_eq!((a.delivered, a.duplicates, a.unexplained_duplicates), (2, 0, 0));
        assert!(a.passed(), "{a:?}");
        let a = analyse(&expected, &[], 0, &firings, &status(&[]));
        assert_eq!(a.lost, vec![1], "the panicking task must end dead");
    }

    #[test]
    fn unacknowledged_tasks_may_fire_strangers_may_not() {
        let expected = [Expected { n: 0, floor_ms: 0, stored_ms: 0, end: OK }];
        let firings = [firing(1, 0, 1, 0, 1, "ok"), firing(2, 1, 1, 0, 1, "ok"), firing(3, 9, 1, 0, 1, "ok")];
        let a = analyse(&expected, &[1, 2], 0, &firings, &status(&[]));
        assert_eq!((a.unacknowledged, a.unacknowledged_fired, a.strangers), (2, 1, 1));
        assert!(!a.passed());
    }
}
