//! Guarantee 15, first half: every number a parameter accepts has a stated range, clamped or
//! refused before anything is written, so every stored number is an integer the store gives
//! back as written. Each test drives the public API with extreme values through
//! `Scheduler` on the real SQL store over a native SQLite that binds integers as a Durable
//! Object does (beyond 2^53 as a float), then checks every stored row in SQL and reads the
//! object back.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::time::Duration;

use lumenize_alarms::core::{MAX_ATTEMPTS, MAX_BACKOFF_MS, MAX_CRON_BYTES, MAX_FACTOR, MAX_ID_BYTES, MAX_TIME_MS, MAX_ZONE_BYTES};
use lumenize_alarms::sql::{Exec, SqlStore, Value};
use lumenize_alarms::{Error, Filter, Kind, Options, RetryPolicy, Scheduled, Status, When};
use support::{done, ready, Edit, Fixture, Sqlite};

const BASE: i64 = 1_700_000_000_000;

/// Times the tests throw at every parameter that takes one.
const EXTREME_TIMES: [i64; 8] = [i64::MIN, -1, 0, MAX_TIME_MS, MAX_TIME_MS + 1, 1 << 53, (1 << 53) + 1, i64::MAX];

/// A scheduler on the real SQL store over a native SQLite, with a simulated native alarm.
type Object = Fixture<SqlStore<Sqlite>>;

impl Object {
    fn schedule(&self, now: i64, when: &When, opts: Options) -> lumenize_alarms::Result<String> {
        done(self.sched.schedule(&self.alarm, now, when, "0".into(), &opts, || unreachable!("explicit ids")))
    }

    fn count(&self, sql: &str) -> i64 {
        match self.sched.store().inner().exec().query(sql, vec![]).unwrap().as_slice() {
            [row] => match row.as_slice() {
                [Value::Integer(n)] => *n,
                other => panic!("{sql}: {other:?}"),
            },
            other => panic!("{sql}: {other:?}"),
        }
    }

    /// Every stored number is an integer in `0 ..= MAX_TIME_MS` (the interval at least 1),
    /// every row reads back, and `list`, `get` and `cancel` of an unknown id work.
    #[track_caller]
    fn check(&self) -> Vec<Scheduled> {
        let max = MAX_TIME_MS;
        let bad = self.count(&format!(
            "SELECT count(*) FROM _lumenize_alarms WHERE \
             typeof(due_ms) != 'integer' OR due_ms NOT BETWEEN 0 AND {max} OR \
             typeof(tick_ms) != 'integer' OR tick_ms NOT BETWEEN 0 AND {max} OR \
             typeof(created_ms) != 'integer' OR created_ms NOT BETWEEN 0 AND {max} OR \
             typeof(attempts) != 'integer' OR attempts NOT BETWEEN 0 AND {max} OR \
             typeof(max_attempts) != 'integer' OR max_attempts NOT BETWEEN 1 AND {max} OR \
             typeof(backoff_ms) != 'integer' OR backoff_ms NOT BETWEEN 0 AND {max} OR \
             typeof(backoff_factor) != 'integer' OR backoff_factor NOT BETWEEN 1 AND {max} OR \
             typeof(max_backoff_ms) != 'integer' OR max_backoff_ms NOT BETWEEN 0 AND {max} OR \
             (every_ms IS NOT NULL AND (typeof(every_ms) != 'integer' OR every_ms NOT BETWEEN 1 AND {max}))"
        ));
        let rows = self.count("SELECT count(*) FROM _lumenize_alarms");
        let dump = self.sched.store().inner().exec().query("SELECT json_group_array(json_array(id, due_ms, tick_ms, created_ms, attempts, max_attempts, backoff_ms, backoff_factor, max_backoff_ms, every_ms)) FROM _lumenize_alarms", vec![]);
        assert_eq!(bad, 0, "stored numbers out of range: {dump:?}");
        let all = self.sched.list(&Filter::default()).expect("every row reads back");
        assert_eq!(i64::try_from(all.len()).unwrap(), rows);
        for t in &all {
            assert_eq!(self.sched.get(&t.id).unwrap().as_ref(), Some(t));
        }
        assert_eq!(self.sched.cancel("no such id").unwrap(), None);
        all
    }
}

/// Retry policies at their extremes, through the builder and written field by field (the
/// fields are public): stored clamped, never as a float; the task runs, fails, is retried
/// or dies, and every read keeps working.
#[test]
fn extreme_retry_policies_are_stored_in_range_and_read_back() {
    let o = Object::new();
    let policies = [
        RetryPolicy::attempts(u32::MAX).backoff(Duration::MAX, Duration::MAX),
        RetryPolicy::attempts(0).backoff(Duration::ZERO, Duration::MAX),
        RetryPolicy::attempts(u32::MAX).backoff(Duration::from_millis(1 << 53), Duration::from_millis((1 << 53) + 1)),
        support::policy(u32::MAX, i64::MAX, u32::MAX, i64::MAX),
        support::policy(0, i64::MIN, 0, i64::MIN),
        support::policy(7, 1 << 53, 2, -1),
    ];
    for (i, policy) in policies.iter().enumerate() {
        let id = format!("p{i}");
        let when = When::at_unix_ms(BASE);
        o.schedule(BASE, &when, Options::id(&id).retry(policy.clone())).unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        o.check();
    }
    let stored = |i: usize| o.sched.get(&format!("p{i}")).unwrap().unwrap().retry;
    assert_eq!(stored(0), support::policy(MAX_ATTEMPTS, MAX_BACKOFF_MS, 2, MAX_BACKOFF_MS));
    assert_eq!(stored(3), support::policy(MAX_ATTEMPTS, MAX_BACKOFF_MS, MAX_FACTOR, MAX_BACKOFF_MS));
    assert_eq!(stored(4), support::policy(1, 0, 1, 0));
    // They all run and fail: each is retried (its backoff clamped) or dies with the reason.
    let report = done(o.sched.run_due(&o.alarm, &|| BASE, None, usize::MAX, |_: u64, _| ready(Err("no".into())))).unwrap();
    // p5's wait is capped at its max_backoff_ms of -1, clamped to 0: its seven attempts run
    // at once, one after another; each other task runs once.
    assert_eq!(report.started, 6 + 6, "{report:?}");
    for t in o.check() {
        assert!(t.status == Status::Dead || (t.status == Status::Pending && t.due_ms >= BASE), "{t:?}");
        assert!(t.last_error.is_some(), "{t:?}");
    }
    if let Some(armed) = o.alarm.armed() {
        assert!((0..=MAX_TIME_MS).contains(&armed), "{armed}");
    }
}

/// Times, delays and intervals at their extremes: refused with a typed error before anything
/// is written, or stored in range.
#[test]
fn extreme_times_delays_and_intervals_are_refused_or_stored_in_range() {
    let o = Object::new();
    let mut whens = vec![
        When::after(Duration::MAX),
        When::after(Duration::from_millis(u64::MAX)),
        When::after(Duration::from_millis(1 << 53)),
        When::after(Duration::ZERO),
    ];
    whens.extend(EXTREME_TIMES.map(When::at_unix_ms));
    for d in [Duration::MAX, Duration::from_millis(u64::MAX), Duration::from_millis(1 << 53), Duration::from_millis(1), Duration::from_nanos(1)] {
        whens.extend(When::every(d));
    }
    for (i, when) in whens.iter().enumerate() {
        for now in [0, BASE] {
            let stored = o.schedule(now, when, Options::id(format!("w{i}-{now}")));
            if let Err(e) = &stored {
                assert!(matches!(e, Error::TimeOutOfRange { .. } | Error::ZeroInterval), "{when:?}: {e}");
            }
            o.check();
        }
    }
    // An interval task at the end of the range dies when its next tick would leave it.
    o.schedule(0, &When::every(Duration::from_millis(u64::try_from(MAX_TIME_MS).unwrap())).unwrap(), Options::id("long")).unwrap();
    done(o.sched.run_due(&o.alarm, &|| MAX_TIME_MS, None, 100, |_: u64, _| ready(Ok(())))).unwrap();
    assert_eq!(o.sched.get("long").unwrap().unwrap().status, Status::Dead);
    o.check();
}

/// The clock and the test hook at their extremes: a scheduler whose clock is out of range
/// stores nothing, the test hook refuses times out of range, and `defer` and `requeue`
/// store only times in range.
#[test]
fn extreme_clocks_hooks_defer_and_requeue_store_nothing_out_of_range() {
    let o = Object::new();
    for now in EXTREME_TIMES {
        let stored = o.schedule(now, &When::at_unix_ms(BASE), Options::id(format!("at-{now}")));
        if let Err(e) = &stored {
            assert!(matches!(e, Error::TimeOutOfRange { .. }), "now {now}: {e}");
        }
        o.check();
        let hook = done(o.sched.run_due(&o.alarm, &|| BASE, Some(now), 10, |_: u64, _| ready(Err("later".into()))));
        if let Err(e) = &hook {
            assert!(matches!(e, Error::TimeOutOfRange { .. }), "hook at {now}: {e}");
        }
        o.check();
    }
    o.schedule(BASE, &When::at_unix_ms(BASE), Options::id("deferred")).unwrap();
    for at in EXTREME_TIMES {
        let report = done(o.sched.run_due(&o.alarm, &|| BASE, None, 10, |_: u64, t: Scheduled| {
            let deferred = o.sched.defer(&t.id, at);
            ready(deferred.map_err(|e| e.to_string()))
        }))
        .unwrap();
        let _ = report;
        o.check();
        if o.sched.get("deferred").unwrap().is_none() {
            o.schedule(BASE, &When::at_unix_ms(BASE), Options::id("deferred")).unwrap();
        }
    }
    // Requeue with the clock at its extremes.
    o.schedule(BASE, &When::at_unix_ms(BASE), Options::id("dead").retry(RetryPolicy::none())).unwrap();
    done(o.sched.run_due(&o.alarm, &|| BASE, None, 100, |_: u64, _| ready(Err("dies".into())))).unwrap();
    for now in EXTREME_TIMES {
        let _ = o.sched.cancel("deferred");
        if o.sched.get("dead").unwrap().is_some_and(|t| t.status != Status::Dead) {
            done(o.sched.run_due(&o.alarm, &|| BASE, Some(MAX_TIME_MS), 100, |_: u64, _| ready(Err("dies".into())))).unwrap();
        }
        let requeued = done(o.sched.requeue(&o.alarm, now, "dead"));
        if let Err(e) = &requeued {
            assert!(matches!(e, Error::TimeOutOfRange { .. }), "requeue at {now}: {e}");
        }
        o.check();
    }
}

/// Filters and batch limits at their extremes read and run as if unbounded.
#[test]
fn extreme_filters_and_limits_work() {
    let o = Object::new();
    for i in 0..5 {
        o.schedule(BASE, &When::at_unix_ms(BASE + i), Options::id(format!("t{i}"))).unwrap();
    }
    o.schedule(BASE, &When::cron("0 3 * * *").unwrap(), Options::id("cron")).unwrap();
    let all = o.check();
    assert_eq!(all.len(), 6);
    let list = |f: Filter| o.sched.list(&f).unwrap_or_else(|e| panic!("{f:?}: {e}"));
    assert_eq!(list(Filter::default().limit(usize::MAX)), all);
    assert_eq!(list(Filter::default().limit(0)), vec![]);
    assert_eq!(list(Filter::default().due_between(i64::MIN, i64::MAX)), all);
    assert_eq!(list(Filter::default().due_between(i64::MAX, i64::MIN)), vec![]);
    assert_eq!(list(Filter::default().edit(|f| f.due_from = Some(i64::MIN))), all);
    assert_eq!(list(Filter::default().edit(|f| f.due_before = Some(i64::MAX))), all);
    assert_eq!(list(Filter::default().edit(|f| f.due_from = Some(i64::MAX))), vec![]);
    assert_eq!(list(Filter::default().edit(|f| f.due_before = Some(i64::MIN))), vec![]);
    assert_eq!(list(Filter::default().kind(Kind::Cron).due_between(0, i64::MAX).limit(usize::MAX)).len(), 1);
    assert_eq!(list(Filter::default().status(Status::Pending).due_between(BASE + 1, BASE + 3)).len(), 2);
    let report = done(o.sched.run_due(&o.alarm, &|| BASE + 10, None, usize::MAX, |_: u64, _| ready(Ok(())))).unwrap();
    assert_eq!((report.succeeded, report.more_due), (5, false));
    o.check();
}

/// Strings that are stored have byte limits, checked before anything is written; a lookup
/// by an id no task can have finds nothing.
#[test]
fn stored_strings_have_byte_limits() {
    let o = Object::new();
    let long_cron = format!("0 3 * * *{}", " ".repeat(MAX_CRON_BYTES));
    assert!(matches!(When::cron(&long_cron), Err(Error::TooLarge { what: "cron expression", .. })));
    assert!(matches!(When::cron_in("0 3 * * *", &"Z".repeat(MAX_ZONE_BYTES + 1)), Err(Error::TooLarge { what: "time zone", .. })));
    let long_id = "i".repeat(MAX_ID_BYTES + 1);
    let refused = o.schedule(BASE, &When::at_unix_ms(BASE), Options::id(&long_id));
    assert!(matches!(refused, Err(Error::TooLarge { what: "id", .. })), "{refused:?}");
    let huge_id = "i".repeat(3_000_000); // over what SQLite in a Durable Object binds
    assert_eq!(o.sched.get(&huge_id).unwrap(), None);
    assert_eq!(o.sched.cancel(&huge_id).unwrap(), None);
    assert!(matches!(done(o.sched.requeue(&o.alarm, BASE, &huge_id)), Err(Error::NotFound(_))));
    assert!(matches!(o.sched.defer(&huge_id, BASE), Err(Error::NotFound(_))));
    assert!(o.check().is_empty());
}
