//! `lumenize-harness`: the one place that knows how to build a worker of this workspace and
//! run it locally on workerd under `wrangler dev`.
//!
//! Used by the integration tests in `testing/harness/tests/`, by `cargo xtask` and by the
//! experiment driver. Native only, blocking, no async runtime.
//!
//! ```no_run
//! use std::time::Duration;
//! use lumenize_harness::{get, poll_until, workspace_root, Worker, WorkerOptions};
//!
//! # fn main() -> lumenize_harness::Result<()> {
//! let dir = workspace_root().join("testing/sandbox");
//! // Builds once per process (worker-build), then starts `wrangler dev` on free ports with
//! // a fresh persist directory, and waits until `GET /` answers.
//! let mut worker = Worker::start(&dir, WorkerOptions::default())?;
//! let (status, body) = get(&format!("{}/", worker.url()))?;
//! assert_eq!(status, 200, "{body}");
//!
//! worker.kill()?;    // SIGKILL wrangler and workerd: a crash in the middle of a run
//! worker.restart()?; // same persist directory: Durable Object storage survives
//! let body = poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
//!     get(&format!("{}/", worker.url())).ok().filter(|(s, _)| *s == 200).map(|(_, b)| b)
//! })?;
//! # let _ = body;
//! Ok(())
//! // Drop stops the processes, even when the test panics.
//! # }
//! ```
//!
//! # Prerequisites
//!
//! `cargo xtask setup` installs everything: the `wasm32-unknown-unknown` target,
//! `worker-build`, `wasm-bindgen-cli` at the exact `wasm-bindgen` version of `Cargo.lock`,
//! and wrangler and binaryen's `wasm-opt` (`npm ci`, pinned in `package.json`). [`check_tools`] says what is missing.
//!
//! # The `wrangler.toml` recipe (one file for `wrangler deploy` and the harness)
//!
//! `wrangler dev` runs the `[build] command` of `wrangler.toml` on every start (twice, in
//! fact: once before starting and once more when its file watcher on `watch_dir` becomes
//! ready), and again whenever a file under `watch_dir` changes. A full `worker-build` costs
//! seconds even when cargo has nothing to do, so every worker of this workspace uses a build
//! command that is skipped when the environment says the build is already done:
//!
//! ```toml
//! name = "lumenize-sandbox"
//! main = "build/worker/shim.mjs"
//! compatibility_date = "2026-04-01"
//!
//! [build]
//! # The harness builds first (worker-build --release, with --no-opt for tests), then starts wrangler with
//! # LUMENIZE_PREBUILT=1, which turns this into a no-op. `wrangler deploy` and a plain
//! # `wrangler dev` run the real build.
//! command = "test -n \"$LUMENIZE_PREBUILT\" || worker-build --release --no-opt"
//!
//! # Durable Object bindings and migrations stay at the top level (no [env.*] sections,
//! # whose bindings would not be inherited and would have to be repeated).
//! ```
//!
//! wrangler runs the command through a shell (`sh -c` on Unix), so the `test -n` guard works.
//! Where `worker-build` cannot download `wasm-bindgen` and `wasm-opt` (as on the project's
//! build machines), export `WASM_BINDGEN_BIN=$HOME/.cargo/bin/wasm-bindgen` and
//! `WASM_OPT_BIN=<workspace>/node_modules/.bin/wasm-opt` before `wrangler deploy` or a plain
//! `wrangler dev`; the harness sets both itself. Deploying from a harness build also works:
//! `LUMENIZE_HARNESS_OPTIMIZE=1 cargo xtask build && LUMENIZE_PREBUILT=1 npx wrangler deploy`.
//!
//! # What a started worker looks like
//!
//! `node_modules/.bin/wrangler dev --ip 127.0.0.1 --port P --inspector-port Q --persist-to D`
//! runs in its own process group: a `node` launcher, the `node` wrangler CLI, an `esbuild`
//! service and two `workerd` processes (the entry proxy on port P, and the user worker).
//! The harness records all of them (walking `/proc/<pid>/task/*/children`, plus any
//! process of the group) and signals exactly those ids. A small watchdog shell in the same
//! group kills the group if the test process dies without running `Drop` (Ctrl-C, a
//! SIGKILL), so an interrupted test run does not leave workerd behind.
//!
//! Output of wrangler and workerd goes to [`Worker::log_path`]; failures print its tail.
//! Run directories (log + persist directory) live under `target/lumenize-harness/`.
//!
//! # Environment variables
//!
//! - `LUMENIZE_HARNESS_SKIP_BUILD=1`: trust the existing `build/` of each worker instead of
//!   running worker-build (set by `cargo xtask test` after it built every worker).
//! - `LUMENIZE_HARNESS_OPTIMIZE=1`: build with `wasm-opt`, as users deploy
//!   ([`Optimize::AsDeployed`]), where the caller does not choose; the default is
//!   `--no-opt` ([`Optimize::Off`]), which saves 10 to 30 s per worker.
//! - `LUMENIZE_PREBUILT=1`: set by the harness for wrangler; see the recipe above.

mod build;
mod http;
mod procs;
mod worker;

pub use build::{
    build_worker, build_worker_as, built_wasm, check_tools, find_tool, harness_target_dir, lock_package_version,
    wasm_bindgen_version, worker_build_version, workspace_root, Optimize, Tools,
};
pub use http::{get, poll_until, post, post_json};
pub use procs::pid_alive;
pub use worker::{Worker, WorkerOptions};

/// The harness' result type (an [`anyhow::Error`] with context).
pub type Result<T, E = anyhow::Error> = std::result::Result<T, E>;

/// Re-exported so tests can name the error type and add context without another dependency.
pub use anyhow;
