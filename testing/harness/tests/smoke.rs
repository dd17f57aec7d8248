//! Smoke test of the harness itself: start the sandbox worker, kill it like a crash,
//! restart it on the same storage, and check that no process is left behind.

use std::time::Duration;

use lumenize_harness::{get, pid_alive, poll_until, workspace_root, Worker, WorkerOptions};

/// Any answer below 500 means the worker is up (the sandbox's routes may change).
fn answers(url: &str) -> bool {
    matches!(get(url), Ok((status, _)) if status < 500)
}

#[test]
fn start_kill_restart_stop() -> lumenize_harness::Result<()> {
    let dir = workspace_root().join("testing/sandbox");
    let mut worker = Worker::start(&dir, WorkerOptions::default())?;
    let root = format!("{}/", worker.url());
    let (status, body) = get(&root)?;
    assert!(status < 500, "GET / answered {status}: {body}");

    // wrangler (node), its CLI child, and at least one workerd.
    let pids = worker.pids();
    assert!(pids.len() >= 3, "expected wrangler and workerd processes, got {pids:?}");
    let persist = worker.persist_dir().to_path_buf();

    worker.kill()?;
    let alive: Vec<u32> = pids.iter().copied().filter(|&p| pid_alive(p)).collect();
    assert!(alive.is_empty(), "still alive after kill: {alive:?}");
    assert!(!answers(&root), "{root} still answers after kill");

    worker.restart()?;
    assert_eq!(worker.persist_dir(), persist, "restart must reuse the persist directory");
    let root = format!("{}/", worker.url());
    poll_until(Duration::from_secs(10), Duration::from_millis(100), || answers(&root).then_some(()))?;
    let new_pids = worker.pids();
    assert!(new_pids.iter().all(|p| !pids.contains(p)), "restart reused old processes");

    worker.stop()?;
    let alive: Vec<u32> = new_pids.iter().copied().filter(|&p| pid_alive(p)).collect();
    assert!(alive.is_empty(), "still alive after stop: {alive:?}");
    Ok(())
}

#[test]
fn drop_stops_the_worker() -> lumenize_harness::Result<()> {
    let dir = workspace_root().join("testing/sandbox");
    let worker = Worker::start(&dir, WorkerOptions::default())?;
    let pids = worker.pids();
    drop(worker);
    let alive: Vec<u32> = pids.iter().copied().filter(|&p| pid_alive(p)).collect();
    assert!(alive.is_empty(), "still alive after drop: {alive:?}");
    Ok(())
}
