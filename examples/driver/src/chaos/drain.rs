//! The end of a run, after the last step: every object gets a probe task first (an event
//! that, by guarantee 10, notices an alarm lost behind the scheduler's back), then the
//! driver waits (bounded) until nothing is left but dead tasks and those meant to remain
//! (due an hour or more ahead, or recurring), takes that as the final state, sees every
//! recurring task fire once more, cancels what remains, and checks that each object still
//! answers and fires a new task.

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use crate::chaos::check::Drained;
use crate::chaos::exec;
use crate::chaos::now_ms;
use crate::chaos::plan::FAR_MS;
use crate::chaos::session::Session;
use crate::chaos::wire::{Fired, Stored};

/// Between two looks at the objects while waiting.
const POLL: Duration = Duration::from_millis(300);
/// How long recurring tasks get to fire once more (their ticks are at most 2.5 s apart).
const RECUR_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the last probe gets to fire.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Tries of a request the drain needs an answer to (a panicking task may still be retried
/// and reset the instance meanwhile).
const TRIES: u32 = 5;

/// Whether `s` may be left when the queue has drained: dead, recurring, or due at least
/// half an hour after `now_ms` (nothing of a run is due that far ahead unless meant to).
fn may_remain(s: &Stored, now_ms: i64) -> bool {
    s.dead() || s.recurring() || s.due_ms > now_ms + i64::try_from(FAR_MS / 2).unwrap_or(i64::MAX)
}

/// Drains the run (see the module docs), waiting at most `timeout` for the queue; what it
/// found, and every object's firings.
pub(crate) fn drain(session: &mut Session<'_>, timeout: Duration) -> (Drained, Vec<Vec<Fired>>) {
    let objects = session.model.objects.len();
    let step = session.steps;
    let mut drained = Drained { started_ms: now_ms(), ..Drained::default() };
    for o in 0..objects {
        let probe = exec::probe(&mut session.model, step, o, &format!("probe-{o}"));
        session.send_until_answered(&probe, TRIES);
    }
    drained.finals = wait_until_drained(session, step, timeout);
    drained.ended_ms = now_ms();
    drained.recurred = wait_for_recurring(session, step, &drained);
    drained.still_works = (0..objects).map(|o| clear_and_probe(session, step, o, &drained.finals[o])).collect();
    let fired = (0..objects).map(|o| firings(session, step, o).unwrap_or_default()).collect();
    (drained, fired)
}

/// Lists every object until each holds only what may remain, or `timeout`; the last lists.
fn wait_until_drained(session: &mut Session<'_>, step: u64, timeout: Duration) -> Vec<Vec<Stored>> {
    let objects = session.model.objects.len();
    let mut finals: Vec<Option<Vec<Stored>>> = vec![None; objects];
    let mut done = vec![false; objects];
    let deadline = Instant::now() + timeout;
    let max_rounds = timeout.as_millis() / POLL.as_millis() + 1;
    for _ in 0..max_rounds {
        let todo: Vec<usize> = (0..objects).filter(|&o| !done[o]).collect();
        for o in todo {
            if let Some(list) = list(session, step, o) {
                done[o] = list.iter().all(|s| may_remain(s, now_ms()));
                finals[o] = Some(list);
            }
        }
        if done.iter().all(|d| *d) || Instant::now() >= deadline {
            break;
        }
        thread::sleep(POLL);
    }
    finals.into_iter().map(Option::unwrap_or_default).collect()
}

/// Waits (bounded) until every recurring task left has fired since the drain began.
fn wait_for_recurring(session: &mut Session<'_>, step: u64, drained: &Drained) -> Vec<HashSet<String>> {
    let mut recurred = Vec::new();
    for (o, finals) in drained.finals.iter().enumerate() {
        let deadline = Instant::now() + RECUR_TIMEOUT;
        let near = i64::try_from(FAR_MS / 2).unwrap_or(i64::MAX);
        let wanted: HashSet<String> = finals.iter().filter(|s| s.recurring() && !s.dead() && s.due_ms < now_ms() + near).filter_map(Stored::label).collect();
        if wanted.is_empty() {
            recurred.push(HashSet::new());
            continue;
        }
        let mut seen = HashSet::new();
        let max_rounds = RECUR_TIMEOUT.as_millis() / 500 + 1;
        for _ in 0..max_rounds {
            if let Some(fired) = firings(session, step, o) {
                seen = fired.into_iter().filter(|f| f.fired_ms >= drained.started_ms && wanted.contains(&f.label)).map(|f| f.label).collect();
            }
            if seen.len() == wanted.len() || Instant::now() >= deadline {
                break;
            }
            thread::sleep(Duration::from_millis(500));
        }
        recurred.push(seen);
    }
    recurred
}

/// Cancels what was left pending, schedules a last probe and waits for it; what went
/// wrong, if anything.
fn clear_and_probe(session: &mut Session<'_>, step: u64, o: usize, finals: &[Stored]) -> Option<String> {
    let mut problems = Vec::new();
    let left: Vec<&Stored> = finals.iter().filter(|s| !s.dead()).collect();
    let mut gone = Vec::new();
    for s in &left {
        let answer = session.send_until_answered(&exec::drain_cancel(step, o, &s.id), TRIES);
        if answer.as_ref().is_none_or(serde_json::Value::is_null) {
            gone.push(s.label().unwrap_or_else(|| s.id.clone()));
        }
    }
    if !gone.is_empty() {
        let first: Vec<&String> = gone.iter().take(3).collect();
        problems.push(format!("the drain's cancels removed nothing for {} of the {} tasks left (first: {first:?}): they ran or went in the meantime", gone.len(), left.len()));
    }
    let label = format!("probe-end-{o}");
    let probe = exec::probe(&mut session.model, step, o, &label);
    if session.send_until_answered(&probe, TRIES).is_none() {
        problems.push("the last probe could not be scheduled".into());
    } else {
        let deadline = Instant::now() + PROBE_TIMEOUT;
        let mut fired = false;
        for _ in 0..PROBE_TIMEOUT.as_millis() / POLL.as_millis() + 1 {
            fired = firings(session, step, o).is_some_and(|f| f.iter().any(|f| f.label == label));
            if fired || Instant::now() >= deadline {
                break;
            }
            thread::sleep(POLL);
        }
        if !fired {
            problems.push(format!("a new zero-delay task ({label}) did not fire within {PROBE_TIMEOUT:?}"));
        }
    }
    match list(session, step, o) {
        Some(left) if left.iter().any(|s| !s.dead()) => {
            let left: Vec<String> = left.iter().filter(|s| !s.dead()).map(|s| format!("{:?} {}", s.label(), s.status)).collect();
            problems.push(format!("after the drain cleared it, tasks are left: {left:?}"));
        }
        Some(_) => {}
        None => problems.push("it does not answer `list` any more".into()),
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

fn list(session: &mut Session<'_>, step: u64, o: usize) -> Option<Vec<Stored>> {
    let value = session.send_until_answered(&exec::read(step, o, "list"), TRIES)?;
    serde_json::from_value(value).ok()
}

fn firings(session: &mut Session<'_>, step: u64, o: usize) -> Option<Vec<Fired>> {
    let value = session.send_until_answered(&exec::read(step, o, "fired"), TRIES)?;
    serde_json::from_value(value).ok()
}
