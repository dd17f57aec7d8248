//! The call store on a native SQLite that binds like a Durable Object (the same SQL
//! statements as in workerd): the schema version and the migration from version 1, and rows
//! that do not decode, quarantined one by one.

#![cfg(not(target_arch = "wasm32"))]

#[path = "../../lumenize-alarms/tests/support/mod.rs"]
mod support;

use lumenize_alarms::sql::Exec;
use lumenize_alarms::StorageError;
use lumenize_call::core::{PendingCall, Store, SCHEMA_VERSION};
use lumenize_call::envelope::Outcome;
use lumenize_call::machine::{Record, Seen, ANY_ORIGIN, RESULT_RETENTION_MS};
use lumenize_call::{CallError, CallState, Dispatch, Target, MAX_PENDING_PAGE};
use serde_json::json;
use support::Sqlite;

const NOW: i64 = 1_800_000_000_000;

fn call(id: &str) -> PendingCall {
    PendingCall::new(id.into(), Target::named("REMOTE", "r"), json!({"op": 1}), json!({"then": 2}), Dispatch::Direct, Some(NOW + 5_000), NOW)
}

fn run(store: &Store<Sqlite>, sql: &str) {
    store.exec().script(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A remote's results of version 1 (no meta table, keyed by the call id alone), opened by
/// this release: migrated to version 2, every row kept, answering any origin as before;
/// opening again finds version 2 and changes nothing.
#[test]
fn results_of_schema_version_1_are_migrated_and_kept() {
    let v1 = Sqlite::new();
    v1.script(&format!(
        "CREATE TABLE _lumenize_call_results (id TEXT PRIMARY KEY, outcome TEXT, done_ms INTEGER NOT NULL);
         INSERT INTO _lumenize_call_results VALUES ('done', '{{\"ok\":\"stored by version 1\"}}', {NOW});
         INSERT INTO _lumenize_call_results VALUES ('running', NULL, {NOW});"
    ))
    .expect("a version-1 table");
    let store = Store::open(v1).expect("open and migrate");
    assert_eq!(store.schema_version().unwrap(), Some(SCHEMA_VERSION));
    assert_eq!(SCHEMA_VERSION, 2);
    let done = Record { origin: ANY_ORIGIN.into(), seen: Seen::Done(Outcome::Ok(json!("stored by version 1"))) };
    assert_eq!(store.record("done").unwrap(), Some(done.clone()));
    assert_eq!(store.record("running").unwrap(), Some(Record { origin: ANY_ORIGIN.into(), seen: Seen::Running }));
    // Results stored after the migration carry their origin.
    assert!(store.start("aa", "new", NOW).unwrap());
    assert!(!store.start("bb", "new", NOW).unwrap(), "a stored row is kept, not replaced");
    assert_eq!(store.record("new").unwrap().map(|r| r.origin), Some("aa".into()));
    // Opened again (a new isolate): version 2, nothing lost.
    let store = Store::open(store.into_exec()).expect("open again");
    assert_eq!(store.schema_version().unwrap(), Some(SCHEMA_VERSION));
    assert_eq!(store.record("done").unwrap(), Some(done));
    assert_eq!(store.record("new").unwrap().map(|r| r.origin), Some("aa".into()));
    let count = store.exec().query("SELECT count(*) FROM _lumenize_call_results", vec![]).unwrap();
    assert_eq!(count, vec![vec![3.into()]]);
}

/// A fresh object gets version 2 at once; tables written by a newer release are refused,
/// not misread.
#[test]
fn a_fresh_store_is_at_version_2_and_a_newer_one_is_refused() {
    let store = Store::open(Sqlite::new()).expect("open");
    assert_eq!(store.schema_version().unwrap(), Some(SCHEMA_VERSION));
    run(&store, "UPDATE _lumenize_call_meta SET value = 3 WHERE key = 'schema_version'");
    let err = Store::open(store.into_exec()).err().expect("version 3 refused").to_string();
    assert!(err.contains("schema version") && err.contains("newer release"), "{err}");
}

/// A connection that refuses every statement as a class without SQLite does.
struct NoSqlite;

impl Exec for NoSqlite {
    fn query(&self, _: &str, _: Vec<lumenize_alarms::sql::Value>) -> lumenize_alarms::Result<Vec<Vec<lumenize_alarms::sql::Value>>> {
        Err(StorageError::classify("SQL is not enabled for this Durable Object class.").into())
    }
    fn execute(&self, _: &str, _: Vec<lumenize_alarms::sql::Value>) -> lumenize_alarms::Result<usize> {
        Err(StorageError::classify("SQL is not enabled for this Durable Object class.").into())
    }
    fn script(&self, _: &str) -> lumenize_alarms::Result<()> {
        Err(StorageError::classify("SQL is not enabled for this Durable Object class.").into())
    }
}

/// Opening on an object whose class has no SQLite says so, typed (not a storage error).
#[test]
fn opening_without_sqlite_is_the_typed_no_sqlite_error() {
    let err = Store::open(NoSqlite).err().expect("refused");
    assert!(matches!(err, lumenize_call::Error::Alarms(lumenize_alarms::Error::NoSqlite)), "{err:?}");
}

/// A call stored and read back is the call written; a result stored replaces the operation.
#[test]
fn calls_read_back_as_written() {
    let store = Store::open(Sqlite::new()).expect("open");
    let c = call("c1");
    store.insert_call(&c).unwrap();
    assert_eq!(store.call("c1").unwrap(), Some(c.clone()));
    store.store_result("c1", &Err(CallError::Timeout)).unwrap();
    store.store_result("c1", &Ok(json!(1))).unwrap(); // the first result stays
    let settled = store.call("c1").unwrap().expect("still pending");
    assert_eq!((settled.op, settled.result), (None, Some(Err(CallError::Timeout))));
    store.remove_call("c1").unwrap();
    assert_eq!(store.call("c1").unwrap(), None);
}

/// Rows poisoned as an older release, a bug or a hand could write them (a REAL where an
/// integer belongs, as a Durable Object stores an integer of 2^53 or more; a blob; an
/// infinity; text that is not JSON) are each quarantined with why, and never stop the
/// other rows being read.
#[test]
fn rows_that_do_not_decode_are_quarantined_one_by_one() {
    let store = Store::open(Sqlite::new()).expect("open");
    for id in ["good", "real", "huge", "blob", "inf", "json"] {
        store.insert_call(&call(id)).unwrap();
    }
    run(&store, "UPDATE _lumenize_calls SET deadline_ms = 9.3e18 WHERE id = 'real'");
    run(&store, "UPDATE _lumenize_calls SET created_ms = 9.3e18 WHERE id = 'huge'");
    run(&store, "UPDATE _lumenize_calls SET result = x'00ff' WHERE id = 'blob'");
    run(&store, "UPDATE _lumenize_calls SET deadline_ms = 1e999 WHERE id = 'inf'");
    run(&store, "UPDATE _lumenize_calls SET target = '{not json' WHERE id = 'json'");
    // An integer beyond 2^53, bound as a Durable Object binds it (a float, which the
    // column's INTEGER affinity stores back as an integer when it fits), is no count.
    store.exec().execute("UPDATE _lumenize_calls SET failures = ? WHERE id = 'good'", vec![(1_i64 << 60).into()]).unwrap();
    store.insert_call(&call("fine")).unwrap();
    let all = store.calls().expect("every row is read");
    let why = |id: &str| all.iter().find(|c| c.id == id).and_then(|c| c.unreadable.clone()).unwrap_or_else(|| panic!("{id} not quarantined: {all:?}"));
    assert!(why("real").contains("deadline_ms: the float 9.3e18 where an integer belongs"), "{}", why("real"));
    assert!(why("huge").starts_with("created_ms: the float"), "{}", why("huge"));
    assert!(why("blob").starts_with("result: a blob"), "{}", why("blob"));
    assert!(why("inf").contains("do not parse as JSON"), "{}", why("inf"));
    assert!(why("json").starts_with("target: not the JSON"), "{}", why("json"));
    assert!(why("good").starts_with("failures: 1152921504606846976 is not a count"), "{}", why("good"));
    assert_eq!(all.iter().filter(|c| c.unreadable.is_none()).map(|c| c.id.as_str()).collect::<Vec<_>>(), ["fine"]);
    // One by one, by id, as cancel reads them.
    assert!(store.call("inf").unwrap().is_some_and(|c| c.unreadable.is_some()));
    assert_eq!(store.call("fine").unwrap(), Some(call("fine")));
}

/// At the remote: an outcome that does not decode is answered as a storage error (never
/// applied again); finish times out of range are kept a day from the cleanup, then
/// forgotten.
#[test]
fn results_that_do_not_decode_are_answered_as_storage_errors_and_forgotten() {
    let store = Store::open(Sqlite::new()).expect("open");
    assert!(store.start("aa", "bad", NOW).unwrap());
    assert!(store.start("aa", "blob", NOW).unwrap());
    store.record_outcome("aa", "ok", Outcome::Ok(json!(1)), NOW);
    run(&store, "UPDATE _lumenize_call_results SET outcome = '{not json', done_ms = 9.3e18 WHERE id = 'bad'");
    run(&store, "UPDATE _lumenize_call_results SET outcome = x'00' WHERE id = 'blob'");
    for id in ["bad", "blob"] {
        let Some(Record { origin, seen: Seen::Done(Outcome::Unstored { message }) }) = store.record(id).unwrap() else { panic!("{id}") };
        assert_eq!(origin, "aa");
        assert!(message.contains("does not decode"), "{message}");
    }
    assert_eq!(store.record("ok").unwrap().map(|r| r.seen), Some(Seen::Done(Outcome::Ok(json!(1)))));
    // The cleanup a day later: the row with the float finish time is given `now`, kept.
    let later = NOW + RESULT_RETENTION_MS;
    assert_eq!(store.forget_results(later - RESULT_RETENTION_MS, later, 1_000).unwrap(), Some(later));
    assert!(store.record("bad").unwrap().is_some() && store.record("ok").unwrap().is_none());
    assert_eq!(store.forget_results(later, later + 1, 1_000).unwrap(), None);
}

/// The ids of a page.
fn ids(page: &[PendingCall]) -> Vec<&str> {
    page.iter().map(|c| c.id.as_str()).collect()
}

/// Pages of pending calls: in id order from a keyset cursor, each one statement of at most
/// `limit` rows, `limit` clamped to `1 ..= MAX_PENDING_PAGE` (0 reads one row, a huge one
/// `MAX_PENDING_PAGE`), the next cursor only after a full page; rows that do not decode
/// are listed, quarantined, in their place.
#[test]
fn pending_calls_page_by_id_bounded_with_quarantined_rows_listed() {
    let store = Store::open(Sqlite::new()).expect("open");
    // Inserted out of order: the pages follow the ids (UUIDv7s: creation order), not insertion.
    for id in ["c3", "c1", "c5", "c2", "c4"] {
        store.insert_call(&call(id)).unwrap();
    }
    run(&store, "UPDATE _lumenize_calls SET deadline_ms = 9.3e18 WHERE id = 'c2'");
    store.store_result("c4", &Ok(json!(4))).unwrap();

    let (first, next) = store.calls_page(None, 2).unwrap();
    assert_eq!((ids(&first), next.as_deref()), (vec!["c1", "c2"], Some("c2")));
    assert_eq!(first[0].state(), CallState::Awaiting);
    assert_eq!(first[1].state(), CallState::Quarantined, "listed, not an error: {:?}", first[1]);
    assert!(first[1].unreadable.as_deref().is_some_and(|w| w.starts_with("deadline_ms: the float")));
    let (second, next) = store.calls_page(next.as_deref(), 2).unwrap();
    assert_eq!((ids(&second), next.as_deref()), (vec!["c3", "c4"], Some("c4")));
    assert_eq!(second[1].state(), CallState::Delivering, "its result is in");
    let (last, next) = store.calls_page(next.as_deref(), 2).unwrap();
    assert_eq!((ids(&last), next), (vec!["c5"], None), "a page that is not full is the last");
    // A full last page gives a cursor; the page after it is empty.
    assert_eq!(store.calls_page(Some("c4"), 1).unwrap(), (vec![call("c5")], Some("c5".into())));
    assert_eq!(store.calls_page(Some("c5"), 1).unwrap(), (vec![], None));
    // A cursor that is no stored id still pages from its place.
    assert_eq!(ids(&store.calls_page(Some("c2x"), 10).unwrap().0), ["c3", "c4", "c5"]);
    assert_eq!(ids(&store.calls_page(Some(""), 10).unwrap().0), ["c1", "c2", "c3", "c4", "c5"]);

    // Limits: 0 reads one row; any larger than the maximum reads the maximum.
    assert_eq!(ids(&store.calls_page(None, 0).unwrap().0), ["c1"]);
    assert_eq!(store.calls_page(None, usize::MAX).unwrap().0.len(), 5);
    assert_eq!(store.calls_page(None, 5).unwrap().1.as_deref(), Some("c5"));
    assert_eq!(store.calls_page(None, 6).unwrap().1, None);
    assert_eq!(MAX_PENDING_PAGE, 1_000);
    // More than a page of calls: each page holds at most MAX_PENDING_PAGE, and paging
    // through them lists every call once, in order.
    store.exec().script("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500) \
        INSERT INTO _lumenize_calls (id, target, op, resume, dispatch, deadline_ms, failures, last_error, result, created_ms) \
        SELECT printf('d%05d', i), '{\"binding\":\"REMOTE\",\"object\":{\"name\":\"r\"}}', '{}', '{}', '\"alarm\"', NULL, 0, NULL, NULL, 1 FROM n").unwrap();
    let (mut seen, mut after, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let (page, next) = store.calls_page(after.as_deref(), usize::MAX).unwrap();
        assert!(page.len() <= MAX_PENDING_PAGE);
        pages += 1;
        seen.extend(page.into_iter().map(|c| c.id));
        let Some(next) = next else { break };
        after = Some(next);
    }
    assert_eq!((seen.len(), pages), (2_505, 3));
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in id order, each once");

    // A row whose id is a blob (written by hand) sorts after every text id: listed on the
    // last page, quarantined, and the paging ends there (its id reads as "", no cursor).
    store.exec().script("UPDATE _lumenize_calls SET id = x'00' WHERE id = 'c3'").unwrap();
    let (last, next) = store.calls_page(Some("d02500"), 1).unwrap();
    assert_eq!((last.len(), last[0].state(), next), (1, CallState::Quarantined, None));
}

/// The state a pending call's row tells: awaiting its result, delivering it, or quarantined
/// (which wins over a stored result).
#[test]
fn a_calls_state_is_what_its_row_tells() {
    let mut c = call("c");
    assert_eq!(c.state(), CallState::Awaiting);
    c.failures = 2;
    c.last_error = Some("transport".into());
    assert_eq!(c.state(), CallState::Awaiting, "retrying is still awaiting the result");
    c.result = Some(Err(CallError::Cancelled));
    assert_eq!(c.state(), CallState::Delivering);
    c.unreadable = Some("why".into());
    assert_eq!(c.state(), CallState::Quarantined);
    assert_eq!(serde_json::to_value(CallState::Delivering).unwrap(), json!("delivering"));
    for s in [CallState::Awaiting, CallState::Delivering, CallState::Quarantined] {
        assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
    }
}

/// 100,000 pending calls: a page from anywhere reads its rows through the primary key's
/// index (a search from the cursor, no sort, no scan), so it costs what its rows cost.
#[test]
fn a_page_of_100_000_pending_calls_reads_only_its_rows() {
    let store = Store::open(Sqlite::new()).expect("open");
    store.exec().script("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) \
        INSERT INTO _lumenize_calls (id, target, op, resume, dispatch, deadline_ms, failures, last_error, result, created_ms) \
        SELECT printf('e%06d', i), '{\"binding\":\"REMOTE\",\"object\":{\"name\":\"r\"}}', '{}', '{}', '\"alarm\"', NULL, 0, NULL, NULL, 1 FROM n").unwrap();
    let (page, next) = store.calls_page(Some("e050000"), 25).unwrap();
    assert_eq!((page.len(), page[0].id.as_str(), next.as_deref()), (25, "e050001", Some("e050025")));
    assert!(page.iter().all(|c| c.state() == CallState::Awaiting));
    for (sql, args) in [
        ("EXPLAIN QUERY PLAN SELECT * FROM _lumenize_calls WHERE id > ? ORDER BY id LIMIT ?", vec!["e050000".into(), 25.into()]),
        ("EXPLAIN QUERY PLAN SELECT * FROM _lumenize_calls ORDER BY id LIMIT ?", vec![25.into()]),
    ] {
        let plan = format!("{:?}", store.exec().query(sql, args).unwrap());
        assert!(plan.contains("USING INDEX sqlite_autoindex__lumenize_calls_1") || plan.contains("USING COVERING INDEX sqlite_autoindex__lumenize_calls_1"), "{sql}: {plan}");
        assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
    }
}
