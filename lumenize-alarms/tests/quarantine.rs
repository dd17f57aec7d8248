//! Guarantee 15, second half: a stored row that does not decode (written by an older
//! release, by hand, or by a bug) is quarantined: kept, listed as dead with the reason,
//! cancellable and requeueable by id, marked dead in storage so that the queue and the alarm
//! pass it by; it never stops `list`, `get`, `cancel`, `run_due` or the arming of the other
//! rows. Bad rows are written by hand with SQL next to good ones, on the real SQL store over
//! a native SQLite that binds and reads like a Durable Object.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::cell::RefCell;

use lumenize_alarms::core::{Scheduler, SimulatedAlarm, Store, MAX_BACKOFF_MS};
use lumenize_alarms::sql::{Exec, SqlStore, Value};
use lumenize_alarms::{Error, Filter, Options, Scheduled, Status, When};
use support::{done, ready, Fixture, Sqlite};

const BASE: i64 = 1_700_000_000_000;

/// A scheduler on the real SQL store over a native SQLite, with a simulated native alarm.
type Object = Fixture<SqlStore<Sqlite>>;

impl Object {
    /// A good task due at `due`.
    fn good(&self, id: &str, due: i64) {
        done(self.sched.schedule(&self.alarm, BASE, &When::at_unix_ms(due), "0".into(), &Options::id(id), || unreachable!())).unwrap();
    }

    /// A row written by hand: a good one-shot task due at `BASE` but for the columns given
    /// as SQL literals.
    fn bad(&self, id: &str, columns: &[(&str, &str)]) {
        let mut row = vec![
            ("kind", "'once'".to_owned()),
            ("cron", "NULL".to_owned()),
            ("zone", "NULL".to_owned()),
            ("every_ms", "NULL".to_owned()),
            ("due_ms", BASE.to_string()),
            ("tick_ms", BASE.to_string()),
            ("payload", "'0'".to_owned()),
            ("status", "'pending'".to_owned()),
            ("attempts", "0".to_owned()),
            ("max_attempts", "3".to_owned()),
            ("backoff_ms", "1000".to_owned()),
            ("backoff_factor", "2".to_owned()),
            ("max_backoff_ms", "300000".to_owned()),
            ("missed", "'skip'".to_owned()),
            ("last_error", "NULL".to_owned()),
            ("created_ms", BASE.to_string()),
        ];
        for (column, value) in columns {
            row.iter_mut().find(|(c, _)| c == column).unwrap_or_else(|| panic!("no column {column}")).1 = (*value).to_owned();
        }
        let names: Vec<&str> = row.iter().map(|(c, _)| *c).collect();
        let values: Vec<&str> = row.iter().map(|(_, v)| v.as_str()).collect();
        let sql = format!("INSERT INTO _lumenize_alarms (id, {}) VALUES ('{id}', {})", names.join(", "), values.join(", "));
        self.sched.store().inner().exec().execute(&sql, vec![]).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn stored_status(&self, id: &str) -> Option<String> {
        let rows = self.sched.store().inner().exec().query("SELECT status FROM _lumenize_alarms WHERE id = ?", vec![id.into()]).unwrap();
        rows.into_iter().next().map(|row| match &row[0] {
            Value::Text(s) => s.clone(),
            other => panic!("{other:?}"),
        })
    }

    fn get(&self, id: &str) -> Scheduled {
        self.sched.get(id).unwrap().unwrap_or_else(|| panic!("{id} is not stored"))
    }

    fn run_at(&self, now: i64) -> (lumenize_alarms::RunReport, Vec<String>) {
        let ran = RefCell::new(Vec::new());
        self.alarm.clear();
        let report = done(self.sched.run_due(&self.alarm, &|| now, None, 1_000, |_: u64, t: Scheduled| {
            ran.borrow_mut().push(t.id);
            ready(Ok(()))
        }))
        .unwrap();
        (report, ran.take())
    }
}

/// A bad row: its id, the columns it holds (SQL literals), and the column its reason names.
type BadRow = (&'static str, &'static [(&'static str, &'static str)], &'static str);

/// What each bad row holds, and the column its reason names.
const BAD: [BadRow; 10] = [
    ("real-backoff", &[("max_backoff_ms", "9.3e18")], "max_backoff_ms"),
    ("real-due", &[("due_ms", "1.5")], "due_ms"),
    ("inf-due", &[("due_ms", "1e999")], "due_ms"),
    ("text-due", &[("due_ms", "'soon'")], "due_ms"),
    ("unknown-status", &[("status", "'sleeping'")], "status"),
    ("negative-attempts", &[("attempts", "-1")], "attempts"),
    ("every-without-interval", &[("kind", "'every'")], "kind"),
    ("unknown-kind", &[("kind", "'weekly'")], "kind"),
    ("unknown-missed", &[("missed", "'sometimes'"), ("last_error", "'boom'")], "missed"),
    ("blob-error", &[("last_error", "X'00ff'")], "last_error"),
];

fn object_with_bad_rows() -> Object {
    let o = Object::new();
    o.good("a", BASE + 10);
    for (id, columns, _) in BAD {
        o.bad(id, columns);
    }
    o.good("b", BASE + 20);
    o
}

/// Every read works next to bad rows: `list` shows them as dead with the reason (and marks
/// them dead in storage), `get` reads each, the good tasks read as written.
#[test]
fn bad_rows_are_listed_dead_with_the_reason_and_the_others_read_as_written() {
    let o = object_with_bad_rows();
    let all = o.sched.list(&Filter::default()).expect("list works next to bad rows");
    assert_eq!(all.len(), BAD.len() + 2);
    for (id, _, column) in BAD {
        let t = all.iter().find(|t| t.id == id).unwrap_or_else(|| panic!("{id} is not listed"));
        assert_eq!(t.status, Status::Dead, "{t:?}");
        let error = t.last_error.as_deref().unwrap();
        // A float SQLite writes as `Inf` breaks the row's JSON: the reason cannot name the column.
        let why = if id == "inf-due" { "its columns do not parse as JSON" } else { column };
        assert!(error.starts_with(&format!("the stored row of task {id:?} is unreadable: {why} ")), "{id}: {error}");
        assert_eq!(o.stored_status(id).as_deref(), Some("dead"), "{id} is marked dead in storage");
        assert_eq!(&o.get(id), t, "get reads it as list does");
        assert!((0..=lumenize_alarms::core::MAX_TIME_MS).contains(&t.due_ms), "{t:?}");
    }
    assert!(o.get("unknown-missed").last_error.unwrap().ends_with("(its last error: boom)"));
    for (id, due) in [("a", BASE + 10), ("b", BASE + 20)] {
        let t = o.get(id);
        assert_eq!((t.status, t.due_ms, t.last_error), (Status::Pending, due, None));
    }
    let pending = o.sched.list(&Filter::default().status(Status::Pending)).unwrap();
    assert_eq!(pending.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(o.sched.list(&Filter::default().status(Status::Dead)).unwrap().len(), BAD.len());
}

/// A bad row that nothing has read yet is quarantined by whichever read meets it first: a
/// `list` filtered on pending leaves it out, and the arming of the alarm passes it by.
#[test]
fn the_first_read_that_meets_a_bad_row_quarantines_it() {
    let o = object_with_bad_rows();
    let pending = o.sched.list(&Filter::default().status(Status::Pending)).unwrap();
    assert_eq!(pending.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["a", "b"], "bad rows are dead now, not pending");
    // A restarted object reads the alarm: rows whose key (id, status, due time) does not
    // decode are quarantined as the earliest is looked for; here the earliest has a good key
    // (it is quarantined when it is due).
    let o = Object::new();
    o.bad("real-due", &[("due_ms", "1.5")]);
    o.bad("unknown-status", &[("status", "'sleeping'"), ("due_ms", "0")]);
    o.bad("blob-due", &[("due_ms", "X'01'")]);
    o.good("a", BASE + 10);
    let restarted = Scheduler::new(o.sched.store().inner().clone());
    let alarm = SimulatedAlarm::default();
    assert_eq!(done(restarted.armed(&alarm, BASE)).unwrap(), Some(BASE + 10), "the first good task is armed");
    for id in ["real-due", "unknown-status"] {
        assert_eq!(o.stored_status(id).as_deref(), Some("dead"), "{id}");
        let error = o.get(id).last_error.unwrap();
        assert!(error.contains("is unreadable: "), "{id}: {error}");
    }
    assert_eq!(o.stored_status("blob-due").as_deref(), Some("pending"), "a BLOB sorts after every number: not met yet");
}

/// `run_due` runs the good tasks next to bad ones, quarantining those it meets, and the run
/// arms the alarm for the next good task; nothing fails.
#[test]
fn runs_and_arming_pass_bad_rows_by() {
    let o = object_with_bad_rows();
    o.good("later", BASE + 5_000);
    let (report, ran) = o.run_at(BASE + 100);
    assert_eq!(ran, ["a", "b"]);
    assert_eq!((report.started, report.succeeded, report.died, report.more_due), (2, 2, 0, false), "{report:?}");
    assert_eq!(o.alarm.armed(), Some(BASE + 5_000), "armed for the next good task");
    assert_eq!(o.sched.store().earliest().unwrap().map(|k| k.id), Some("later".into()));
    // Rows the run met are dead in storage; those it did not (never due: their due time is
    // not a number it compares below now) stay as they are until a read meets them.
    for id in ["real-backoff", "real-due", "negative-attempts", "every-without-interval", "unknown-kind", "unknown-missed", "blob-error", "unknown-status"] {
        assert_eq!(o.stored_status(id).as_deref(), Some("dead"), "{id}");
    }
    assert!(o.sched.list(&Filter::default().status(Status::Pending)).unwrap().iter().all(|t| t.id == "later"));
    // A bad row due in the future with a good key is armed for, then quarantined when due.
    let o = Object::new();
    o.bad("poisoned", &[("due_ms", &(BASE + 50).to_string()), ("max_backoff_ms", "9.3e18")]);
    o.good("next", BASE + 100);
    assert_eq!(done(o.sched.armed(&o.alarm, BASE)).unwrap(), Some(BASE + 50));
    let (report, ran) = o.run_at(BASE + 50);
    assert_eq!((report.started, ran.len()), (0, 0));
    assert_eq!(o.alarm.armed(), Some(BASE + 100), "the run arms the next good task");
    assert_eq!(o.run_at(BASE + 100).1, ["next"]);
}

/// More bad rows than one batch reads (`FETCH`), and rows too large to read together (a
/// megabyte each: each row crosses on its own), hold nothing up.
#[test]
fn many_bad_rows_and_large_rows_hold_nothing_up() {
    let o = Object::new();
    for i in 0..300 {
        o.bad(&format!("bad{i:03}"), &[("due_ms", &(BASE + i).to_string()), ("backoff_factor", "1e300")]);
    }
    let big = format!("\"{}\"", "x".repeat(900_000));
    for id in ["big1", "big2", "big3"] {
        done(o.sched.schedule(&o.alarm, BASE, &When::at_unix_ms(BASE + 400), big.clone(), &Options::id(id), || unreachable!())).unwrap();
    }
    o.bad("bad-among-big", &[("due_ms", &(BASE + 400).to_string()), ("attempts", "'x'")]);
    let ran = RefCell::new(Vec::new());
    let report = done(o.sched.run_due(&o.alarm, &|| BASE + 500, None, 1_000, |_: String, t: Scheduled| {
        ran.borrow_mut().push(t.id);
        ready(Ok(()))
    }))
    .unwrap();
    assert_eq!(ran.take(), ["big1", "big2", "big3"]);
    assert_eq!((report.succeeded, report.more_due), (3, false));
    let dead = o.sched.list(&Filter::default().status(Status::Dead)).unwrap();
    assert_eq!(dead.len(), 301);
    assert!(dead.iter().all(|t| t.last_error.as_deref().unwrap().contains("is unreadable")));
}

/// `cancel` removes a bad row and returns it as shown; `requeue` repairs what can be
/// repaired (numbers clamped into their range, a due time given, an unknown missed-tick
/// policy made `skip`, an error made text) and runs it, and answers a typed error for a row
/// that still does not decode, which stays dead.
#[test]
fn bad_rows_can_be_cancelled_and_requeued_by_id() {
    let o = object_with_bad_rows();
    let shown = o.get("negative-attempts");
    assert_eq!(o.sched.cancel("negative-attempts").unwrap(), Some(shown));
    assert_eq!(o.sched.get("negative-attempts").unwrap(), None);
    // A bad row nothing has read yet is cancelled too.
    o.bad("never-read", &[("due_ms", "2.5")]);
    let cancelled = o.sched.cancel("never-read").unwrap().unwrap();
    assert_eq!((cancelled.id.as_str(), cancelled.status), ("never-read", Status::Dead));
    assert!(cancelled.last_error.unwrap().contains("due_ms 2.5 is not an integer"));
    // `discard` removes a bad row without reading it.
    o.bad("discarded", &[("due_ms", "2.5")]);
    assert!(o.sched.discard("discarded").unwrap());
    assert_eq!(o.sched.get("discarded").unwrap(), None);

    let now = BASE + 1_000;
    for id in ["real-backoff", "real-due", "inf-due", "text-due", "unknown-status", "unknown-missed", "blob-error"] {
        let t = done(o.sched.requeue(&o.alarm, now, id)).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!((t.status, t.due_ms, t.attempts), (Status::Pending, now, 0), "{id}: {t:?}");
        assert_eq!(o.stored_status(id).as_deref(), Some("pending"));
    }
    assert_eq!(o.get("real-backoff").retry.max_backoff_ms, MAX_BACKOFF_MS, "9.3e18 clamped into range");
    // Quarantined by the read that looked for it, with the reason as its last error.
    assert!(o.get("blob-error").last_error.unwrap().contains(r#"last_error {"blob":"00FF"} is not text"#));
    // A dead row nothing quarantined: its error is made text by the requeue itself.
    o.bad("dead-blob", &[("status", "'dead'"), ("last_error", "X'00ff'")]);
    let t = done(o.sched.requeue(&o.alarm, now, "dead-blob")).unwrap();
    assert_eq!((t.status, t.last_error.as_deref()), (Status::Pending, Some("X'00FF'")));
    for id in ["every-without-interval", "unknown-kind"] {
        let err = done(o.sched.requeue(&o.alarm, now, id)).unwrap_err();
        assert!(matches!(&err, Error::Unreadable { id: got, reason } if got == id && reason.contains("kind")), "{id}: {err}");
        assert_eq!(o.stored_status(id).as_deref(), Some("dead"), "{id} stays dead");
        assert_eq!(o.get(id).status, Status::Dead);
    }
    // Requeued rows run; the unrepairable ones stay out of the way.
    assert_eq!(o.alarm.armed(), Some(BASE + 10), "the earliest good task");
    let (_, ran) = o.run_at(now);
    assert_eq!(ran, ["a", "b", "real-backoff", "real-due", "inf-due", "text-due", "unknown-status", "unknown-missed", "blob-error", "dead-blob"]);
    let left = o.sched.list(&Filter::default()).unwrap();
    assert_eq!(left.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["every-without-interval", "unknown-kind"]);
    // A pending row never read before is quarantined by the requeue that looks for it.
    o.bad("fresh", &[("status", "'sleeping'")]);
    assert_eq!(done(o.sched.requeue(&o.alarm, now, "fresh")).unwrap().status, Status::Pending);
}
