//! One suite for every [`Store`]: the reference `MemoryStore` and the real `SqlStore` (the
//! statements that run in a Durable Object, here on a native SQLite limited to 2 MB values
//! like a Durable Object's). Each test is stamped out once per store.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use lumenize_alarms::core::{Change, Filter, Key, Store};
use lumenize_alarms::{Counts, Kind, MissedTicks, Schedule, Scheduled, Status};
use support::{Fresh, Edit};

fn task(id: &str, due_ms: i64) -> Scheduled {
    Scheduled::pending_once(id, due_ms, &format!("\"{id}\""), 7)
}

fn ids(tasks: &[Scheduled]) -> Vec<&str> {
    tasks.iter().map(|t| t.id.as_str()).collect()
}

fn get<S: Store>(store: &S, id: &str) -> Scheduled {
    store.get(id).unwrap().unwrap_or_else(|| panic!("{id} is not stored"))
}

fn every_field_round_trips<S: Fresh>() {
    let store = S::fresh();
    let tasks = [
        task("cron", 100).edit(|t| {
            t.schedule = Schedule::Cron { expr: "0 3 * * *".into(), zone: Some("Europe/Paris".into()) };
            t.retry = support::policy(9, 12, 3, 999);
            t.missed = MissedTicks::Burst;
            t.payload = r#"{"a":[1,"two",{"three":null}],"quote":"\"","unicode":"é✓"}"#.into();
        }),
        task("every", 200).edit(|t| t.schedule = Schedule::Every { interval_ms: 250 }),
        task("utc", 300).edit(|t| t.schedule = Schedule::Cron { expr: "*/5 * * * * *".into(), zone: None }),
    ];
    store.insert(&tasks[0], false).unwrap();
    store.insert_all(&tasks[1..], false).unwrap();
    for t in &tasks {
        let stored = get(&*store, &t.id);
        assert_eq!(stored.edit(|s| s.seq = 0), *t);
    }
}

fn inserts_take_fresh_sequence_numbers<S: Fresh>() {
    let store = S::fresh();
    let seq = |id: &str| get(&*store, id).seq;
    assert!(store.insert(&task("a", 5), false).unwrap());
    assert!(store.insert(&task("b", 5), false).unwrap());
    let (a, b) = (seq("a"), seq("b"));
    assert!(b > a);
    assert!(store.insert(&task("a", 9), false).unwrap());
    let again = seq("a");
    assert!(again > b, "a replaced task takes a new sequence number");
    assert_eq!(get(&*store, "a").due_ms, 9);
    assert!(!store.insert(&task("a", 1), true).unwrap(), "keep_existing keeps the stored task");
    assert_eq!((seq("a"), get(&*store, "a").due_ms), (again, 9));
    store.remove("b").unwrap();
    assert!(store.insert(&task("c", 5), false).unwrap());
    assert!(seq("c") > again, "numbers are never reused");
}

fn insert_all_stores_in_order_like_one_by_one<S: Fresh>() {
    let store = S::fresh();
    store.insert(&task("x", 1), false).unwrap();
    let batch = [task("a", 10), task("x", 10), task("b", 10), task("a", 10)];
    assert_eq!(store.insert_all(&batch, false).unwrap(), [true; 4], "without keep_existing every task is stored");
    let due = store.due(10, 10).unwrap();
    assert_eq!(ids(&due), ["x", "b", "a"], "replacements take new numbers in batch order; the last of a repeated id wins");
    let stored = store.insert_all(&[task("x", 0), task("c", 10), task("c", 0), task("d", 10)], true).unwrap();
    assert_eq!(stored, [false, true, false, true], "keep_existing says which were stored: not a stored id, nor a repeated one");
    assert_eq!(get(&*store, "x").due_ms, 10, "keep_existing keeps the stored one");
    assert_eq!(get(&*store, "c").due_ms, 10, "keep_existing: the first of a repeated id wins");
    assert_eq!(store.insert_all(&[], false).unwrap(), [false; 0]);
}

fn insert_all_takes_any_number_and_size_of_tasks<S: Fresh>() {
    // 3,000 tasks of 1 kB (3 MB, more than one statement may bind in a Durable Object), and
    // one whose JSON alone is over a megabyte (quotes double in JSON text).
    let store = S::fresh();
    let mut tasks: Vec<Scheduled> =
        (0..3_000).map(|i| task(&format!("t{i:04}"), i).edit(|t| t.payload = format!("\"{}\"", "p".repeat(1_000)))).collect();
    tasks.insert(1_500, task("quotes", 1_500).edit(|t| t.payload = format!("\"{}\"", "\\\"".repeat(400_000))));
    store.insert_all(&tasks, false).unwrap();
    let all = store.list(&Filter::default()).unwrap();
    assert_eq!(all.len(), 3_001);
    let seqs: Vec<i64> = tasks.iter().map(|t| get(&*store, &t.id).seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequence numbers follow the batch order");
    assert_eq!(get(&*store, "quotes").payload, tasks[1_500].payload);
}

fn due_is_live_tasks_in_order_up_to_the_limit<S: Fresh>() {
    let store = S::fresh();
    for (id, due) in [("late", 50), ("b", 10), ("a", 10), ("dead", 0), ("run", 5)] {
        store.insert(&task(id, due), false).unwrap();
    }
    let dead = get(&*store, "dead");
    store.change(&Key::of(&dead), &Change::Kill { error: "x".into(), attempts: 0 }).unwrap();
    let run = get(&*store, "run");
    store.change(&Key::of(&run), &Change::Claim).unwrap();
    assert_eq!(ids(&store.due(10, 10).unwrap()), ["run", "b", "a"]);
    assert_eq!(ids(&store.due(10, 2).unwrap()), ["run", "b"]);
    assert_eq!(ids(&store.due(4, 10).unwrap()), Vec::<&str>::new());
    assert_eq!(store.due(100, 0).unwrap(), vec![]);
    let head = store.earliest().unwrap().unwrap();
    assert_eq!((head.id.as_str(), head.status, head.due_ms), ("run", Status::Running, 5));
}

fn changes_apply_only_to_the_instance_read<S: Fresh>() {
    let store = S::fresh();
    store.insert(&task("t", 10), false).unwrap();
    let t = get(&*store, "t");
    let key = Key::of(&t);
    for stale in [Key { seq: t.seq + 1, ..key.clone() }, Key { status: Status::Running, ..key.clone() }, Key { due_ms: 11, ..key.clone() }] {
        assert!(!store.change(&stale, &Change::Claim).unwrap(), "{stale:?}");
    }
    assert!(store.change(&key, &Change::Claim).unwrap());
    let running = get(&*store, "t");
    assert_eq!((running.status, running.attempts), (Status::Running, 1));
    assert!(!store.change(&key, &Change::Claim).unwrap(), "claimed twice");
    let key = Key::of(&running);
    assert!(store.change(&key, &Change::Retry { due_ms: 40, error: "e1".into(), attempts: 1 }).unwrap());
    let retried = get(&*store, "t");
    assert_eq!((retried.status, retried.due_ms, retried.tick_ms, retried.attempts), (Status::Pending, 40, 10, 1));
    assert_eq!(retried.last_error.as_deref(), Some("e1"));
    let key = Key::of(&retried);
    store.change(&key, &Change::Claim).unwrap();
    let key = Key { status: Status::Running, ..key };
    assert!(store.change(&key, &Change::Advance { due_ms: 70 }).unwrap());
    let advanced = get(&*store, "t");
    assert_eq!((advanced.due_ms, advanced.tick_ms, advanced.attempts, advanced.last_error.as_deref()), (70, 70, 0, None));
    assert!(store.change(&Key::of(&advanced), &Change::Kill { error: "gone".into(), attempts: 4 }).unwrap());
    let dead = get(&*store, "t");
    assert_eq!((dead.status, dead.last_error.as_deref(), dead.attempts), (Status::Dead, Some("gone"), 4));
    assert!(store.change(&Key::of(&dead), &Change::Remove).unwrap());
    assert_eq!(store.get("t").unwrap(), None);
}

fn remove_all_removes_only_the_instances_read<S: Fresh>() {
    let store = S::fresh();
    for (id, due_ms) in [("a", 10), ("b", 10), ("c", 20), ("d", 30), ("e", 40)] {
        store.insert(&task(id, due_ms), false).unwrap();
    }
    let key = |id: &str| Key::of(&get(&*store, id));
    let (a, b, c, d, e) = (key("a"), key("b"), key("c"), key("d"), key("e"));
    // Changed in place since read (claimed, deferred), or replaced: not the instance read.
    assert!(store.change(&b, &Change::Claim).unwrap());
    assert!(store.change(&c, &Change::Retry { due_ms: 25, error: "e".into(), attempts: 0 }).unwrap());
    store.insert(&task("d", 30), false).unwrap();
    let stale_seq = Key { seq: e.seq + 100, ..e.clone() };
    assert_eq!(store.remove_all(&[a.clone(), b.clone(), c.clone(), d.clone(), stale_seq, e.clone(), a.clone()]).unwrap(), 2);
    assert_eq!(store.get("a").unwrap(), None);
    assert_eq!(store.get("e").unwrap(), None);
    assert_eq!(ids(&store.list(&Filter::default()).unwrap()), ["b", "c", "d"]);
    assert_eq!(store.remove_all(&[Key { status: Status::Running, ..b }, key("c")]).unwrap(), 2, "the instances as they are now");
    assert_eq!(ids(&store.list(&Filter::default()).unwrap()), ["d"]);
    assert_eq!(store.remove_all(&[]).unwrap(), 0);
}

fn remove_and_requeue_return_the_task<S: Fresh>() {
    let store = S::fresh();
    store.insert(&task("t", 10), false).unwrap();
    let t = get(&*store, "t");
    assert_eq!(store.requeue("t", 99).unwrap(), None, "only dead tasks are requeued");
    store.change(&Key::of(&t), &Change::Kill { error: "e".into(), attempts: 0 }).unwrap();
    let back = store.requeue("t", 99).unwrap().unwrap();
    assert_eq!((back.status, back.due_ms, back.attempts, back.last_error.as_deref()), (Status::Pending, 99, 0, Some("e")));
    assert_eq!(store.remove("t").unwrap(), Some(back));
    assert_eq!(store.remove("t").unwrap(), None);
    assert_eq!(store.requeue("t", 1).unwrap(), None);
    // `discard` removes as `remove` does, and only says whether there was a task.
    store.insert(&task("d", 10), false).unwrap();
    assert!(store.discard("d").unwrap());
    assert!(store.get("d").unwrap().is_none());
    assert!(!store.discard("d").unwrap());
}

fn list_filters_and_limits<S: Fresh>() {
    let store = S::fresh();
    store.insert(&task("once", 30), false).unwrap();
    store.insert(&task("every", 10).edit(|t| t.schedule = Schedule::Every { interval_ms: 5 }), false).unwrap();
    store.insert(&task("cron", 20).edit(|t| t.schedule = Schedule::Cron { expr: "* * * * *".into(), zone: None }), false).unwrap();
    let cron = get(&*store, "cron");
    store.change(&Key::of(&cron), &Change::Kill { error: "e".into(), attempts: 0 }).unwrap();
    let list = |f: Filter| ids(&store.list(&f).unwrap()).into_iter().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(list(Filter::default()), ["every", "cron", "once"]);
    assert_eq!(list(Filter::default().kind(Kind::Every)), ["every"]);
    assert_eq!(list(Filter::default().status(Status::Dead)), ["cron"]);
    assert_eq!(list(Filter::default().due_between(10, 30)), ["every", "cron"]);
    assert_eq!(list(Filter::default().limit(1)), ["every"]);
    assert_eq!(list(Filter::default().limit(0)), Vec::<String>::new());
}

fn pages_after_a_task_visit_every_task_once_in_order<S: Fresh>() {
    let store = S::fresh();
    // Seven tasks, five of them due at the same millisecond (a burst), and one dead.
    let tasks: Vec<Scheduled> = ["a", "b", "c", "d", "e"].iter().map(|id| task(id, 50)).chain([task("early", 10), task("late", 90)]).collect();
    store.insert_all(&tasks, false).unwrap();
    store.change(&Key::of(&get(&*store, "c")), &Change::Kill { error: "e".into(), attempts: 0 }).unwrap();
    let mut seen = Vec::new();
    let mut page = store.list(&Filter::default().limit(2)).unwrap();
    while let Some(last) = page.last().cloned() {
        seen.extend(ids(&page).into_iter().map(str::to_owned));
        page = store.list(&Filter::default().limit(2).after(&last)).unwrap();
    }
    assert_eq!(seen, ["early", "a", "b", "c", "d", "e", "late"]);
    // With other filters: the dead after "a", and none after the last.
    let a = get(&*store, "a");
    assert_eq!(ids(&store.list(&Filter::default().status(Status::Dead).after(&a)).unwrap()), ["c"]);
    assert_eq!(ids(&store.list(&Filter::default().after(&get(&*store, "late"))).unwrap()), Vec::<&str>::new());
    assert_eq!(store.requeue_dead(&Filter::default().after(&get(&*store, "d")), 5, 10).unwrap(), 0, "c is before d");
    assert_eq!(store.requeue_dead(&Filter::default().after(&a), 5, 10).unwrap(), 1);
}

fn kill_after_makes_out_of_range_tasks_dead<S: Fresh>() {
    let store = S::fresh();
    for (id, due) in [("ok", 100), ("edge", 1_000), ("far", 1_001), ("farther", 5_000)] {
        store.insert(&task(id, due), false).unwrap();
    }
    assert_eq!(store.kill_after(1_000, "out of range").unwrap(), 2);
    let dead = store.list(&Filter::default().status(Status::Dead)).unwrap();
    assert_eq!(ids(&dead), ["far", "farther"]);
    assert!(dead.iter().all(|t| t.last_error.as_deref() == Some("out of range")));
    assert_eq!(store.kill_after(1_000, "again").unwrap(), 0, "dead tasks stay as they are");
    assert_eq!(store.earliest().unwrap().map(|k| k.id), Some("ok".to_owned()));
}

/// A paused task leaves the queue (`due`, `earliest`, `kill_after` pass it by) and is not
/// requeued as a dead one; `Resume` makes it pending with the due time, tick and attempts
/// given, its last error kept. Both apply only to the instance read.
fn paused_tasks_leave_the_queue_until_resumed<S: Fresh>() {
    let store = S::fresh();
    for (id, due) in [("p", 5), ("q", 10), ("far", 5_000)] {
        store.insert(&task(id, due), false).unwrap();
    }
    let p = get(&*store, "p");
    store.change(&Key::of(&p), &Change::Retry { due_ms: 5, error: "e1".into(), attempts: 1 }).unwrap();
    let p = get(&*store, "p");
    assert!(!store.change(&Key { due_ms: 6, ..Key::of(&p) }, &Change::Pause).unwrap(), "a stale key");
    assert!(store.change(&Key::of(&p), &Change::Pause).unwrap());
    let paused = get(&*store, "p");
    assert_eq!((paused.status, paused.due_ms, paused.attempts, paused.last_error.as_deref()), (Status::Paused, 5, 1, Some("e1")));
    let far = get(&*store, "far");
    store.change(&Key::of(&far), &Change::Pause).unwrap();
    assert_eq!(ids(&store.due(100, 10).unwrap()), ["q"], "a paused task is never due");
    assert_eq!(store.earliest().unwrap().map(|k| k.id), Some("q".to_owned()), "nor armed for");
    assert_eq!(store.kill_after(1_000, "out of range").unwrap(), 0, "nor killed as out of range");
    assert_eq!(store.requeue("p", 99).unwrap(), None, "a paused task is not dead");
    assert_eq!(store.requeue_dead(&Filter::default(), 99, 10).unwrap(), 0);
    assert_eq!(ids(&store.list(&Filter::default().status(Status::Paused)).unwrap()), ["p", "far"]);
    let resume = Change::Resume { due_ms: 50, tick_ms: 40, attempts: 0 };
    assert!(!store.change(&Key::of(&p), &resume).unwrap(), "the key of the pending task is stale");
    assert!(store.change(&Key::of(&paused), &resume).unwrap());
    let back = get(&*store, "p");
    assert_eq!((back.status, back.due_ms, back.tick_ms, back.attempts, back.last_error.as_deref()), (Status::Pending, 50, 40, 0, Some("e1")));
    assert_eq!(ids(&store.due(100, 10).unwrap()), ["q", "p"]);
    assert_eq!(store.remove("far").unwrap().map(|t| t.status), Some(Status::Paused), "a paused task is removed like any");
}

/// `requeue_dead`: the first `limit` dead tasks that pass the filter (kind, due range), by
/// `(due_ms, seq)`, pending at the time given with no attempts; a status or limit in the
/// filter plays no part.
fn requeue_dead_requeues_the_dead_that_pass_in_order_up_to_the_limit<S: Fresh>() {
    let store = S::fresh();
    let cron = Schedule::Cron { expr: "* * * * *".into(), zone: None };
    for (id, due, schedule) in [("d3", 30, Schedule::Once), ("d1", 10, Schedule::Once), ("c2", 20, cron.clone()), ("d4", 40, Schedule::Once), ("live", 0, Schedule::Once)] {
        store.insert(&task(id, due).edit(|t| t.schedule = schedule), false).unwrap();
        if id != "live" {
            let t = get(&*store, id);
            store.change(&Key::of(&t), &Change::Kill { error: format!("{id} died"), attempts: 3 }).unwrap();
        }
    }
    let all = Filter::default().status(Status::Pending).limit(1);
    assert_eq!(store.requeue_dead(&all, 99, 2).unwrap(), 2, "up to the limit given, whatever the filter's");
    let pending = store.list(&Filter::default().status(Status::Pending)).unwrap();
    assert_eq!(ids(&pending), ["live", "d1", "c2"], "the first by due time");
    for t in &pending[1..] {
        assert_eq!((t.due_ms, t.attempts, t.last_error.clone()), (99, 0, Some(format!("{} died", t.id))));
    }
    assert_eq!(store.requeue_dead(&Filter::default().kind(Kind::Cron), 100, 10).unwrap(), 0, "no dead cron task is left");
    assert_eq!(store.requeue_dead(&Filter::default().due_between(35, 50), 100, 10).unwrap(), 1);
    assert_eq!(get(&*store, "d4").status, Status::Pending);
    assert_eq!(get(&*store, "d3").status, Status::Dead);
    assert_eq!(store.requeue_dead(&Filter::default(), 100, 0).unwrap(), 0, "a limit of 0 requeues none");
    assert_eq!(store.requeue_dead(&Filter::default(), 100, usize::MAX).unwrap(), 1);
    assert_eq!(store.requeue_dead(&Filter::default(), 100, usize::MAX).unwrap(), 0);
}

/// `counts` counts every task by status, and agrees with `list`.
fn counts_count_every_status<S: Fresh>() {
    let store = S::fresh();
    assert_eq!(store.counts().unwrap(), Counts::default());
    for i in 0..7 {
        store.insert(&task(&format!("t{i}"), i), false).unwrap();
    }
    let change = |id: &str, change: Change| {
        let t = get(&*store, id);
        assert!(store.change(&Key::of(&t), &change).unwrap());
    };
    change("t0", Change::Claim);
    change("t1", Change::Pause);
    change("t2", Change::Pause);
    change("t3", Change::Kill { error: "e".into(), attempts: 1 });
    let counts = store.counts().unwrap();
    assert_eq!(support::counts(counts), (3, 1, 2, 1));
    for status in [Status::Pending, Status::Running, Status::Paused, Status::Dead] {
        let listed = store.list(&Filter::default().status(status)).unwrap().len();
        let counted = match status {
            Status::Pending => counts.pending,
            Status::Running => counts.running,
            Status::Paused => counts.paused,
            Status::Dead => counts.dead,
            status => panic!("a status this test does not know: {status}"),
        };
        assert_eq!(listed, counted, "{status}");
    }
    assert_eq!(counts.total(), 7);
}

for_each_store!(
    paused_tasks_leave_the_queue_until_resumed,
    requeue_dead_requeues_the_dead_that_pass_in_order_up_to_the_limit,
    counts_count_every_status,
    every_field_round_trips,
    inserts_take_fresh_sequence_numbers,
    insert_all_stores_in_order_like_one_by_one,
    insert_all_takes_any_number_and_size_of_tasks,
    due_is_live_tasks_in_order_up_to_the_limit,
    changes_apply_only_to_the_instance_read,
    remove_all_removes_only_the_instances_read,
    remove_and_requeue_return_the_task,
    list_filters_and_limits,
    pages_after_a_task_visit_every_task_once_in_order,
    kill_after_makes_out_of_range_tasks_dead,
);
