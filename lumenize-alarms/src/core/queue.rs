//! The state transitions of a task: scheduled, started, succeeded, failed, dead, requeued,
//! cancelled; and which native alarm time that leaves.

use crate::core::{cron, Status, Store, Scheduled};
use crate::{Error, MissedTicks, Options, Result, Schedule, When};

/// Stores a new task due per `when`, seen from `now_ms`, and returns it as stored.
///
/// With an explicit id this is an upsert (or, with `keep_existing`, returns the stored task
/// untouched); `new_id` is called only when no id was given.
///
/// # Errors
/// Out-of-range times, a cron expression with no next occurrence, and storage errors.
pub fn schedule<S: Store>(
    store: &S,
    now_ms: i64,
    when: &When,
    payload: String,
    opts: &Options,
    new_id: impl FnOnce() -> String,
) -> Result<Scheduled> {
    let (schedule, due_ms) = when.resolve(now_ms)?;
    let id = opts.id.clone().unwrap_or_else(new_id);
    if opts.keep_existing {
        if let Some(existing) = store.get(&id)? {
            return Ok(existing);
        }
    }
    let mut task = Scheduled {
        id,
        seq: 0,
        schedule,
        due_ms,
        tick_ms: due_ms,
        payload,
        status: Status::Pending,
        attempts: 0,
        retry: opts.retry.clone(),
        missed: opts.missed,
        last_error: None,
        created_ms: now_ms,
    };
    task.seq = store.insert(&task)?;
    Ok(task)
}

/// Removes the task with this id and returns it, or `None` if there was none.
///
/// # Errors
/// Storage errors.
pub fn cancel<S: Store>(store: &S, id: &str) -> Result<Option<Scheduled>> {
    let task = store.get(id)?;
    if task.is_some() {
        store.remove(id)?;
    }
    Ok(task)
}

/// Puts a dead task back in the queue, due at `now_ms`, with its attempts reset. Its last
/// error stays until it next succeeds.
///
/// # Errors
/// [`Error::NotFound`], [`Error::NotDead`], storage errors.
pub fn requeue<S: Store>(store: &S, id: &str, now_ms: i64) -> Result<Scheduled> {
    let task = store.get(id)?.ok_or_else(|| Error::NotFound(id.to_owned()))?;
    if task.status != Status::Dead {
        return Err(Error::NotDead(id.to_owned()));
    }
    let task = Scheduled { status: Status::Pending, attempts: 0, due_ms: now_ms, ..task };
    store.put(&task)?;
    Ok(task)
}

/// Marks `task` as started: one more attempt, status running. Returns it as stored.
pub(crate) fn begin<S: Store>(store: &S, task: &Scheduled) -> Result<Scheduled> {
    let started = Scheduled { status: Status::Running, attempts: task.attempts + 1, ..task.clone() };
    store.put(&started)?;
    Ok(started)
}

/// The stored task, if it is still the very one that `ran` (same id and sequence number):
/// a handler that rescheduled or cancelled its own task must not see that undone.
fn unchanged<S: Store>(store: &S, ran: &Scheduled) -> Result<Option<Scheduled>> {
    Ok(store.get(&ran.id)?.filter(|t| t.seq == ran.seq))
}

/// What happens after `ran` succeeded at `now_ms`: a one-shot task is removed, a recurring
/// one advances from its scheduled time (per its missed-tick policy).
pub(crate) fn succeed<S: Store>(store: &S, ran: &Scheduled, now_ms: i64) -> Result<()> {
    let Some(task) = unchanged(store, ran)? else { return Ok(()) };
    match next_tick(&task, now_ms) {
        Ok(None) => {
            store.remove(&task.id)?;
        }
        Ok(Some(due_ms)) => {
            store.put(&Scheduled { due_ms, tick_ms: due_ms, status: Status::Pending, attempts: 0, last_error: None, ..task })?;
        }
        Err(e) => store.put(&Scheduled { status: Status::Dead, last_error: Some(e.to_string()), ..task })?,
    }
    Ok(())
}

/// What happens after attempt `ran.attempts` of `ran` failed at `now_ms` with `error`:
/// a retry after the policy's backoff, or dead after the last attempt.
pub(crate) fn fail<S: Store>(store: &S, ran: &Scheduled, now_ms: i64, error: String) -> Result<Status> {
    let Some(task) = unchanged(store, ran)? else { return Ok(Status::Pending) };
    let retry = task.attempts < task.retry.max_attempts;
    let failed = if retry {
        let due_ms = now_ms.saturating_add(task.retry.delay_after(task.attempts));
        Scheduled { status: Status::Pending, due_ms, last_error: Some(error), ..task }
    } else {
        Scheduled { status: Status::Dead, last_error: Some(error), ..task }
    };
    store.put(&failed)?;
    Ok(failed.status)
}

/// Marks `task` dead at once with `error` (its payload no longer deserialises).
pub(crate) fn kill<S: Store>(store: &S, task: &Scheduled, error: String) -> Result<()> {
    let Some(task) = unchanged(store, task)? else { return Ok(()) };
    store.put(&Scheduled { status: Status::Dead, last_error: Some(error), ..task })
}

/// The next due time of a recurring task that ran for its tick at `task.tick_ms`, or `None`
/// for a one-shot task.
fn next_tick(task: &Scheduled, now_ms: i64) -> Result<Option<i64>> {
    let next = |after: i64| match &task.schedule {
        Schedule::Once => Ok(None),
        Schedule::Cron(expr) => cron::next_after(expr, after).map(Some),
        Schedule::Every { interval_ms } => Ok(Some(after - (after - task.tick_ms).rem_euclid(*interval_ms) + interval_ms)),
    };
    match (next(task.tick_ms)?, task.missed) {
        (Some(due), MissedTicks::Skip) if due <= now_ms => next(now_ms),
        (due, _) => Ok(due),
    }
}

/// The time to arm the native alarm for, given the one armed now (`armed`), the earliest
/// pending task (`earliest`) and the time: `None` leaves the alarm as it is.
///
/// An overdue task arms the alarm for `now_ms + 1` (an alarm set for "now" from inside
/// `alarm()` may be dropped by the runtime); the alarm is only ever moved earlier, or set
/// where there is none, so a burst of schedules writes it at most once.
#[must_use]
pub fn alarm_to_set(armed: Option<i64>, earliest: Option<i64>, now_ms: i64) -> Option<i64> {
    let want = earliest?.max(now_ms + 1);
    match armed {
        Some(t) if t <= want => None,
        _ => Some(want),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::MemoryStore;
    use crate::RetryPolicy;

    fn sched(store: &MemoryStore, now: i64, when: When, id: &str) -> Scheduled {
        schedule(store, now, &when, "null".into(), &Options::id(id), || unreachable!()).unwrap()
    }

    #[test]
    fn explicit_ids_upsert_or_keep() {
        let store = MemoryStore::default();
        let a = sched(&store, 0, When::at_unix_ms(50), "x");
        let b = sched(&store, 0, When::at_unix_ms(70), "x");
        assert!(b.seq > a.seq);
        assert_eq!(store.get("x").unwrap().unwrap().due_ms, 70);
        let opts = Options::id("x").keep_existing();
        let kept = schedule(&store, 0, &When::at_unix_ms(90), "null".into(), &opts, || unreachable!()).unwrap();
        assert_eq!(kept, b);
    }

    #[test]
    fn cancel_returns_what_it_removed() {
        let store = MemoryStore::default();
        let a = sched(&store, 0, When::at_unix_ms(50), "x");
        assert_eq!(cancel(&store, "x").unwrap(), Some(a));
        assert_eq!(cancel(&store, "x").unwrap(), None);
    }

    #[test]
    fn a_rescheduled_task_is_not_undone_by_the_run_that_rescheduled_it() {
        let store = MemoryStore::default();
        let ran = begin(&store, &sched(&store, 0, When::at_unix_ms(0), "x")).unwrap();
        sched(&store, 0, When::at_unix_ms(500), "x"); // the handler reschedules itself
        succeed(&store, &ran, 1).unwrap();
        assert_eq!(store.get("x").unwrap().unwrap().due_ms, 500);
        fail(&store, &ran, 1, "boom".into()).unwrap();
        assert_eq!(store.get("x").unwrap().unwrap().status, Status::Pending);
    }

    #[test]
    fn failures_back_off_then_die_and_requeue_revives() {
        let store = MemoryStore::default();
        let opts = Options::id("x").retry(RetryPolicy::attempts(2).backoff(Duration::from_millis(10), Duration::from_secs(1)));
        let t = schedule(&store, 0, &When::at_unix_ms(0), "null".into(), &opts, || unreachable!()).unwrap();
        let ran = begin(&store, &t).unwrap();
        assert_eq!(fail(&store, &ran, 5, "e1".into()).unwrap(), Status::Pending);
        let t = store.get("x").unwrap().unwrap();
        assert_eq!((t.due_ms, t.attempts), (15, 1));
        let ran = begin(&store, &t).unwrap();
        assert_eq!(fail(&store, &ran, 20, "e2".into()).unwrap(), Status::Dead);
        assert_eq!(store.get("x").unwrap().unwrap().last_error.as_deref(), Some("e2"));
        assert_eq!(store.next_due(i64::MAX).unwrap(), None);
        let back = requeue(&store, "x", 30).unwrap();
        assert_eq!((back.status, back.attempts, back.due_ms), (Status::Pending, 0, 30));
        assert!(matches!(requeue(&store, "x", 30), Err(Error::NotDead(_))));
        assert!(matches!(requeue(&store, "y", 30), Err(Error::NotFound(_))));
    }

    #[test]
    fn recurring_tasks_advance_from_their_scheduled_time() {
        let store = MemoryStore::default();
        let every = When::every(Duration::from_millis(100)).unwrap();
        let t = sched(&store, 0, every.clone(), "skip"); // due 100
        succeed(&store, &begin(&store, &t).unwrap(), 130).unwrap();
        assert_eq!(store.get("skip").unwrap().unwrap().due_ms, 200, "from 100, not from 130");
        let t = store.get("skip").unwrap().unwrap();
        succeed(&store, &begin(&store, &t).unwrap(), 555).unwrap();
        assert_eq!(store.get("skip").unwrap().unwrap().due_ms, 600, "Skip: first tick after now, on the grid");

        let opts = Options::id("burst").missed(MissedTicks::Burst);
        let t = schedule(&store, 0, &every, "null".into(), &opts, || unreachable!()).unwrap();
        succeed(&store, &begin(&store, &t).unwrap(), 555).unwrap();
        assert_eq!(store.get("burst").unwrap().unwrap().due_ms, 200, "Burst: every missed tick runs");

        let cron = sched(&store, 0, When::cron("*/10 * * * * *").unwrap(), "cron"); // due 10_000
        succeed(&store, &begin(&store, &cron).unwrap(), 10_004).unwrap();
        assert_eq!(store.get("cron").unwrap().unwrap().due_ms, 20_000);
    }

    #[test]
    fn alarm_is_armed_for_the_earliest_and_only_moved_earlier() {
        assert_eq!(alarm_to_set(None, None, 10), None);
        assert_eq!(alarm_to_set(None, Some(50), 10), Some(50));
        assert_eq!(alarm_to_set(None, Some(5), 10), Some(11), "overdue: armed just after now");
        assert_eq!(alarm_to_set(Some(40), Some(50), 10), None);
        assert_eq!(alarm_to_set(Some(60), Some(50), 10), Some(50));
    }
}
