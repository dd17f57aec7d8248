//! The quickstart (`examples/quickstart`) is what the README shows, it works on the real
//! runtime, and it builds as a crate of its own outside this workspace.

use std::process::Command;
use std::time::Duration;

use lumenize_harness::{get, harness_target_dir, poll_until, workspace_root, Worker, WorkerOptions};

/// The README's blocks marked `<!-- quickstart: <file> -->` ... `<!-- /quickstart -->`, with
/// the file each names.
fn readme_blocks(readme: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut rest = readme;
    while let Some(start) = rest.find("<!-- quickstart: ") {
        let after = &rest[start + "<!-- quickstart: ".len()..];
        let (file, after) = after.split_once(" -->").expect("a closed quickstart marker");
        let (block, after) = after.split_once("<!-- /quickstart -->").expect("an end marker");
        let code = block.trim().split_once('\n').expect("a fenced block").1;
        let code = code.trim_end().strip_suffix("```").expect("a closed fence");
        blocks.push((file.to_owned(), code.to_owned()));
        rest = after;
    }
    blocks
}

#[test]
fn the_readme_shows_the_quickstart_as_it_is() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let blocks = readme_blocks(&readme);
    let files: Vec<&str> = blocks.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(files, ["examples/quickstart/Cargo.toml", "examples/quickstart/wrangler.toml", "examples/quickstart/src/lib.rs"]);
    for (file, shown) in blocks {
        let actual = std::fs::read_to_string(root.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(shown == actual, "README.md shows another {file} than the file: copy the file into its block\n--- file:\n{actual}");
    }
}

#[test]
fn the_quickstart_runs_its_tasks_and_its_call_on_workerd() {
    let options = WorkerOptions::default().arg("--var").arg("LUMENIZE_CALL_SECRET:quickstart-test").arg("--var").arg("BOARD_TOKEN:quickstart-board");
    let worker = Worker::start(&workspace_root().join("examples/quickstart"), options).expect("start the quickstart");
    let (status, body) = get(&format!("{}/start", worker.url())).expect("GET /start");
    assert_eq!((status, body.as_str()), (200, "started"));
    let done = |log: &[String]| {
        let count = |line: &str| log.iter().filter(|l| *l == line).count();
        count("hello world") == 1 && count("tick") >= 2 && count("hello -> HELLO") == 1
    };
    let mut last = Vec::new();
    poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
        let (_, body) = get(&format!("{}/log", worker.url())).ok()?;
        last = serde_json::from_str::<Vec<String>>(&body).ok()?;
        done(&last).then_some(())
    })
    .unwrap_or_else(|e| panic!("the zero-delay task, two cron ticks and the call's continuation: {e}; log: {last:?}"));
    // The board, at /board/ behind BOARD_TOKEN: 401 without it; with it, the cron task.
    let (status, _) = get(&format!("{}/board/api/tasks", worker.url())).expect("GET /board/api/tasks");
    assert_eq!(status, 401);
    let (status, body) = lumenize_harness::post(&format!("{}/board/api/pause?id=tick", worker.url()), "", &[("authorization", "Bearer quickstart-board")]).expect("POST /board/api/pause");
    assert!(status == 200 && body.contains(r#""status":"paused""#), "{status} {body}");
    // Its calls are mounted too (`.calls(&calls)`): the call is done, so there is no such call.
    let (status, body) = lumenize_harness::post(&format!("{}/board/api/calls/cancel?id=done", worker.url()), "", &[("authorization", "Bearer quickstart-board")]).expect("POST /board/api/calls/cancel");
    assert!(status == 404 && body.contains("no such call"), "{status} {body}");
}

/// A copy of the quickstart in a directory of its own, with its lumenize dependencies
/// pointed at this checkout, type-checks for wasm32: what a reader copying it into a fresh
/// `cargo new --lib` gets (with the published crates instead of paths).
#[test]
fn the_quickstart_builds_outside_the_workspace() {
    let root = workspace_root();
    let copy = harness_target_dir().join("quickstart-copy");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(copy.join("src")).expect("create the copy");
    let manifest = std::fs::read_to_string(root.join("examples/quickstart/Cargo.toml")).expect("Cargo.toml");
    let absolute = |name: &str| root.join(name).display().to_string();
    let manifest = manifest
        .replace("../../lumenize-alarms", &absolute("lumenize-alarms"))
        .replace("../../lumenize-call", &absolute("lumenize-call"))
        .replace("../../lumenize-board", &absolute("lumenize-board"));
    std::fs::write(copy.join("Cargo.toml"), format!("{manifest}\n[workspace]\n")).expect("write Cargo.toml");
    for file in ["src/lib.rs", "wrangler.toml"] {
        std::fs::copy(root.join("examples/quickstart").join(file), copy.join(file)).expect("copy");
    }
    // The workspace's lockfile, so that the copy resolves the versions this checkout was
    // tested with; and its target directory, so that nothing is compiled twice.
    std::fs::copy(root.join("Cargo.lock"), copy.join("Cargo.lock")).expect("copy Cargo.lock");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["check", "--quiet", "--target", "wasm32-unknown-unknown"])
        .current_dir(&copy)
        .env("CARGO_TARGET_DIR", harness_target_dir().parent().expect("the target directory"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "the copied quickstart does not build: cargo check in {}", copy.display());
}
