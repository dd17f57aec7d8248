//! Where an experiment runs: a worker of this workspace started locally under
//! `wrangler dev` (the default), or a deployed one (`--url`).

use std::path::Path;
use std::thread;
use std::time::Duration;

use lumenize_harness::{built_wasm, workspace_root, Optimize, Worker, WorkerOptions};

use crate::{Error, Result};

/// The command-line options that choose the target; flatten them into an experiment's
/// arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// Run against this experiment's worker deployed at this URL (for example
    /// `https://<worker-name>.<account>.workers.dev`) instead of starting one locally.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Build the local worker with `worker-build --no-opt` instead of as users deploy it
    /// (with `wasm-opt`): for before/after comparisons, and to save the 10 to 30 s of
    /// `wasm-opt`.
    #[arg(long)]
    pub no_opt: bool,
}

impl TargetArgs {
    /// The options of a local worker: built as users deploy it unless `--no-opt`.
    #[must_use]
    pub fn worker_options(&self) -> WorkerOptions {
        WorkerOptions::default().optimize(if self.no_opt { Optimize::Off } else { Optimize::AsDeployed })
    }
}

/// A running worker to experiment on.
#[derive(Debug)]
pub enum Target {
    /// Started by this process through lumenize-harness: built with worker-build, run under
    /// `wrangler dev` on 127.0.0.1 with a fresh persist directory, stopped when dropped.
    Local(Box<Worker>),
    /// A deployed worker (or any worker this process did not start).
    Remote(String),
}

impl Target {
    /// The target `args` choose: `--url`, or the worker in `worker_dir` (relative to the
    /// workspace root, for example `examples/alarms-robustness`) started locally.
    ///
    /// # Errors
    /// [`Error::Harness`] when the local worker does not build or start.
    pub fn open(args: &TargetArgs, worker_dir: &str) -> Result<Target> {
        match &args.url {
            Some(url) => Ok(Target::Remote(url.trim_end_matches('/').to_owned())),
            None => Target::local(&workspace_root().join(worker_dir), args.worker_options()),
        }
    }

    /// Builds (once per process) and starts the worker in `dir` locally.
    ///
    /// # Errors
    /// [`Error::Harness`] when it does not build or start.
    pub fn local(dir: &Path, options: WorkerOptions) -> Result<Target> {
        Worker::start(dir, options).map(|w| Target::Local(Box::new(w))).map_err(Error::Harness)
    }

    /// The worker's base URL, without a trailing slash. A local worker's may change after
    /// [`crash_and_restart`](Self::crash_and_restart): read it again after.
    #[must_use]
    pub fn url(&self) -> String {
        match self {
            Target::Local(worker) => worker.url(),
            Target::Remote(url) => url.clone(),
        }
    }

    /// Whether this process started the worker (and so may kill it).
    #[must_use]
    pub fn is_local(&self) -> bool {
        matches!(self, Target::Local(_))
    }

    /// One line saying what runs where: for a local worker the runtime's versions and how the
    /// worker was built (with `wasm-opt` or `--no-opt`, and its wasm's size).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Target::Local(worker) => {
                format!("local: {}, {} at {}", local_runtime(), describe_build(worker), worker.url())
            }
            Target::Remote(url) => format!("deployed: {url}"),
        }
    }

    /// Kills the runtime (SIGKILL of wrangler and workerd, the processes the harness
    /// started), waits `down`, and restarts it on the same persisted storage.
    ///
    /// # Errors
    /// [`Error::NeedsLocal`] for a deployed worker; [`Error::Harness`] when the processes do
    /// not die or the restart fails.
    pub fn crash_and_restart(&mut self, down: Duration) -> Result<()> {
        self.kill()?;
        thread::sleep(down);
        self.restart()
    }

    /// SIGKILL of the runtime, as in a crash (local only). See [`crash_and_restart`](Self::crash_and_restart).
    ///
    /// # Errors
    /// As [`crash_and_restart`](Self::crash_and_restart).
    pub fn kill(&mut self) -> Result<()> {
        self.worker("a crash")?.kill().map_err(Error::Harness)
    }

    /// Starts the runtime again on the same persisted storage (local only).
    ///
    /// # Errors
    /// As [`crash_and_restart`](Self::crash_and_restart).
    pub fn restart(&mut self) -> Result<()> {
        self.worker("a restart")?.restart().map_err(Error::Harness)
    }

    fn worker(&mut self, what: &str) -> Result<&mut Worker> {
        match self {
            Target::Local(worker) => Ok(worker),
            Target::Remote(_) => Err(Error::NeedsLocal { what: what.to_owned() }),
        }
    }
}

/// `wrangler <version>, workerd <version>` as installed in the workspace's `node_modules`.
#[must_use]
pub fn local_runtime() -> String {
    let version = |package: &str| {
        let path = workspace_root().join("node_modules").join(package).join("package.json");
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|json| json["version"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".into())
    };
    format!("wrangler {}, workerd {}", version("wrangler"), version("@cloudflare/workerd-linux-64"))
}

/// `wasm-opt, 634,616 B wasm` or `--no-opt, 947,056 B wasm`: how `worker` was asked to be
/// built (a build trusted through `LUMENIZE_HARNESS_SKIP_BUILD` is whatever was built last).
fn describe_build(worker: &Worker) -> String {
    let how = match worker.options().optimize {
        Optimize::AsDeployed => "wasm-opt",
        Optimize::Off => "--no-opt",
    };
    let size = built_wasm(worker.dir()).ok().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len());
    match size {
        Some(bytes) => format!("{how}, {} B wasm", thousands(bytes)),
        None => how.to_owned(),
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_groups_digits_by_three() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(634_616), "634,616");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
