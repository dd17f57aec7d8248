//! The transitions of a task: a new task from what the user says, and what success and
//! failure make of a task that ran. Pure: the time comes in as an argument, and each
//! transition is a [`Change`] for the store.

use crate::core::cron;
use crate::core::limits::{check_size, clip, MAX_ID_BYTES, MAX_PAYLOAD_BYTES};
use crate::core::options::Options;
use crate::core::policy::MissedTicks;
use crate::core::store::Change;
use crate::core::task::{Scheduled, Status};
use crate::core::time::{check_time, later};
use crate::core::when::{Schedule, When};
use crate::error::Result;

/// A new pending task due per `when`, seen from `now_ms`, with the id `id`: the one place a
/// task is built from what a user says, so every number it will store is checked or clamped
/// here, before anything is written (the retry policy is [normalized](crate::RetryPolicy::normalized)).
///
/// # Errors
/// [`Error::TimeOutOfRange`] (a `now_ms` out of range too: it is stored as the creation
/// time), [`Error::CronNeverFires`], [`Error::TooLarge`] for a payload or id over its limit.
pub(crate) fn new_task(now_ms: i64, when: &When, payload: String, opts: &Options, id: String) -> Result<Scheduled> {
    check_size("payload", payload.len(), MAX_PAYLOAD_BYTES)?;
    check_size("id", id.len(), MAX_ID_BYTES)?;
    check_time(now_ms)?;
    let (schedule, due_ms) = when.resolve(now_ms)?;
    Ok(Scheduled {
        id,
        seq: 0,
        schedule,
        due_ms,
        tick_ms: due_ms,
        payload,
        status: Status::Pending,
        attempts: 0,
        retry: opts.retry.normalized(),
        missed: opts.missed,
        last_error: None,
        created_ms: now_ms,
    })
}

/// What becomes of `ran` when its handler succeeded at `now_ms`: a one-shot task is removed,
/// a recurring one advances from its scheduled time (per its missed-tick policy), or dies
/// if it has no next time within the accepted range.
pub(crate) fn after_success(ran: &Scheduled, now_ms: i64) -> Change {
    match next_tick(ran, now_ms) {
        Ok(None) => Change::Remove,
        Ok(Some(due_ms)) => Change::Advance { due_ms },
        Err(e) => Change::Kill { error: clip(e.to_string()), attempts: ran.attempts },
    }
}

/// What becomes of `ran` when its attempt `ran.attempts` failed at `now_ms` with `error`:
/// a retry after the policy's backoff, or dead after the last attempt or when the retry
/// would fall after the accepted range.
pub(crate) fn after_failure(ran: &Scheduled, now_ms: i64, error: &str) -> Change {
    let (error, attempts) = (clip(error.to_owned()), ran.attempts);
    if attempts >= ran.retry.max_attempts {
        return Change::Kill { error, attempts };
    }
    match later(now_ms, ran.retry.delay_after(attempts)) {
        Ok(due_ms) => Change::Retry { due_ms, error, attempts },
        Err(range) => Change::Kill { error: clip(format!("{error} (no retry: {range})")), attempts },
    }
}

/// What [`resume`](crate::core::Scheduler::resume) makes of the paused task `task` at
/// `now_ms`: pending again. A one-shot task keeps its due time (overdue: it runs at once), as
/// does a recurring one whose time has not passed, or whose missed-tick policy is
/// [`Burst`](MissedTicks::Burst) (every tick missed while paused runs, one after another).
/// A recurring [`Skip`](MissedTicks::Skip) task whose time passed skips the ticks it missed:
/// due at its first tick at or after `now_ms` (its pending tick, if that is still ahead),
/// with no attempts made for it; dead if it has none within the accepted range.
pub(crate) fn resumed(task: &Scheduled, now_ms: i64) -> Change {
    let stay = Change::Resume { due_ms: task.due_ms, tick_ms: task.tick_ms, attempts: task.attempts };
    if task.due_ms >= now_ms || task.missed == MissedTicks::Burst || task.schedule == Schedule::Once {
        return stay;
    }
    let skip_to = if task.tick_ms >= now_ms { Ok(Some(task.tick_ms)) } else { occurrence_after(task, now_ms - 1) };
    match skip_to {
        Ok(Some(due_ms)) => Change::Resume { due_ms, tick_ms: due_ms, attempts: 0 },
        Ok(None) => stay,
        Err(e) => Change::Kill { error: clip(e.to_string()), attempts: task.attempts },
    }
}

/// What [`run_now`](crate::core::Scheduler::run_now) makes of the pending or paused task
/// `task` at `now_ms`: pending and due now (an overdue one keeps its earlier due time, and
/// its place), its tick and attempts kept. A recurring task that then runs before its tick
/// runs next at that tick: it stays on its grid (see [`after_success`]).
pub(crate) fn run_now(task: &Scheduled, now_ms: i64) -> Change {
    Change::Resume { due_ms: task.due_ms.min(now_ms), tick_ms: task.tick_ms, attempts: task.attempts }
}

/// The next due time of a recurring task that ran for its tick at `task.tick_ms`, or `None`
/// for a one-shot task. One that ran before its tick (run now) runs next at that tick.
fn next_tick(task: &Scheduled, now_ms: i64) -> Result<Option<i64>> {
    if task.schedule != Schedule::Once && task.tick_ms > now_ms {
        return Ok(Some(task.tick_ms));
    }
    match (occurrence_after(task, task.tick_ms)?, task.missed) {
        (Some(due), MissedTicks::Skip) if due <= now_ms => occurrence_after(task, now_ms),
        (due, _) => Ok(due),
    }
}

/// The first occurrence of a recurring task strictly after `after` (an interval task's on the
/// grid of its tick), or `None` for a one-shot task.
fn occurrence_after(task: &Scheduled, after: i64) -> Result<Option<i64>> {
    match &task.schedule {
        Schedule::Once => Ok(None),
        Schedule::Cron { expr, zone } => cron::next_after(expr, zone.as_deref(), after).map(Some),
        Schedule::Every { interval_ms } => {
            let since = after.saturating_sub(task.tick_ms).rem_euclid(*interval_ms);
            later(after.saturating_sub(since), *interval_ms).map(Some)
        }
    }
}

impl Scheduled {
    /// The next `n` times this task is due (Unix milliseconds), computed by the scheduler's
    /// own cron and interval code: its due time, then, for a recurring task, the occurrences
    /// after it (a cron one in its zone, daylight saving time included; an interval one on
    /// the grid of its tick). What runs and retries may shift them; a dead task's are what a
    /// requeue would start from. `n` is clamped to `0 ..= 1,000`; the list stops early at
    /// the last time the runtime can arm.
    ///
    /// ```
    /// # fn demo(task: &lumenize_alarms::Scheduled) {
    /// for ms in task.upcoming(5) {
    ///     println!("{ms}");
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn upcoming(&self, n: usize) -> Vec<i64> {
        let mut times = Vec::new();
        let mut next = Some(self.due_ms);
        while let Some(at) = next.filter(|_| times.len() < n.min(1_000)) {
            times.push(at);
            next = occurrence_after(self, at).ok().flatten();
        }
        times
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::limits::MAX_ERROR_BYTES;
    use crate::core::policy::RetryPolicy;
    use crate::core::time::MAX_TIME_MS;
    use crate::error::Error;

    fn task(when: When, opts: &Options, now: i64) -> Scheduled {
        new_task(now, &when, "null".into(), opts, "x".into()).unwrap()
    }

    #[test]
    fn upcoming_lists_the_due_time_then_the_next_occurrences() {
        let t = task(When::every(Duration::from_millis(100)).unwrap(), &Options::default(), 1_000);
        assert_eq!(t.upcoming(3), [1_100, 1_200, 1_300]);
        assert_eq!(t.upcoming(0), Vec::<i64>::new());
        let cron = task(When::cron("0 3 * * *").unwrap(), &Options::default(), 0);
        assert_eq!(cron.upcoming(2), [3 * 3_600_000, 27 * 3_600_000]);
        let once = task(When::at_unix_ms(5), &Options::default(), 0);
        assert_eq!(once.upcoming(5), [5]);
        let last = task(When::at_unix_ms(MAX_TIME_MS - 50), &Options::default(), 0);
        let last = Scheduled { schedule: Schedule::Every { interval_ms: 20 }, ..last };
        assert_eq!(last.upcoming(usize::MAX), [MAX_TIME_MS - 50, MAX_TIME_MS - 30, MAX_TIME_MS - 10]);
    }

    fn running(t: Scheduled) -> Scheduled {
        Scheduled { status: Status::Running, attempts: t.attempts + 1, ..t }
    }

    #[test]
    fn failures_back_off_then_die() {
        let opts = Options::default().retry(RetryPolicy::attempts(2).backoff(Duration::from_millis(10), Duration::from_secs(1)));
        let t = running(task(When::at_unix_ms(0), &opts, 0));
        assert_eq!(after_failure(&t, 5, "e1"), Change::Retry { due_ms: 15, error: "e1".into(), attempts: 1 });
        let t = running(t);
        assert_eq!(after_failure(&t, 20, "e2"), Change::Kill { error: "e2".into(), attempts: 2 });
    }

    #[test]
    fn a_retry_past_the_range_kills_the_task_instead_of_storing_it() {
        let huge = Duration::from_millis(10_000_000_000_000);
        let opts = Options::default().retry(RetryPolicy::attempts(3).backoff(huge, huge));
        let t = running(task(When::at_unix_ms(0), &opts, 0));
        let Change::Kill { error, .. } = after_failure(&t, 1_700_000_000_000, "boom") else { panic!("not killed") };
        assert!(error.starts_with("boom (no retry: time"), "{error}");
    }

    #[test]
    fn recurring_tasks_advance_from_their_scheduled_time() {
        let every = When::every(Duration::from_millis(100)).unwrap();
        let t = running(task(every.clone(), &Options::default(), 0)); // tick 100
        assert_eq!(after_success(&t, 130), Change::Advance { due_ms: 200 }, "from 100, not from 130");
        assert_eq!(after_success(&t, 555), Change::Advance { due_ms: 600 }, "Skip: first tick after now, on the grid");
        let burst = running(task(every, &Options::default().missed(MissedTicks::Burst), 0));
        assert_eq!(after_success(&burst, 555), Change::Advance { due_ms: 200 }, "Burst: every missed tick runs");
        let cron = running(task(When::cron("*/10 * * * * *").unwrap(), &Options::default(), 0)); // 10_000
        assert_eq!(after_success(&cron, 10_004), Change::Advance { due_ms: 20_000 });
        let once = running(task(When::at_unix_ms(5), &Options::default(), 0));
        assert_eq!(after_success(&once, 5), Change::Remove);
    }

    #[test]
    fn a_recurring_task_whose_next_tick_is_out_of_range_dies() {
        let every = When::every(Duration::from_millis(1_000)).unwrap();
        let t = running(task(every, &Options::default(), MAX_TIME_MS - 1_000)); // tick MAX_TIME_MS
        assert!(matches!(after_success(&t, MAX_TIME_MS), Change::Kill { .. }));
        let cron = running(task(When::cron("0 0 1 1 *").unwrap(), &Options::default(), MAX_TIME_MS - 400 * 86_400_000));
        let Change::Kill { error, .. } = after_success(&cron, MAX_TIME_MS) else { panic!("not killed") };
        assert!(error.contains("no occurrence"), "{error}");
    }

    #[test]
    fn oversized_payloads_ids_and_errors_are_bounded() {
        let big = "x".repeat(MAX_PAYLOAD_BYTES + 1);
        let err = new_task(0, &When::at_unix_ms(0), big, &Options::default(), "x".into()).unwrap_err();
        assert!(matches!(err, Error::TooLarge { what: "payload", .. }), "{err}");
        let err = new_task(0, &When::at_unix_ms(0), "1".into(), &Options::default(), "i".repeat(MAX_ID_BYTES + 1)).unwrap_err();
        assert!(matches!(err, Error::TooLarge { what: "id", .. }), "{err}");
        let long = "é".repeat(MAX_ERROR_BYTES);
        let cut = clip(long);
        assert!(cut.len() <= MAX_ERROR_BYTES && cut.ends_with("bytes cut)"), "{}", cut.len());
    }
}
