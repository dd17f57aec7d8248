//! Locating the workspace and its tools, and building a worker with worker-build.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};

use crate::Result;

/// The root of the lumenize-rs workspace (the directory holding `Cargo.lock`).
///
/// Known at compile time from this crate's location (`testing/harness`).
///
/// ```
/// let root = lumenize_harness::workspace_root();
/// assert!(root.join("Cargo.lock").is_file());
/// ```
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here.parent().and_then(Path::parent).unwrap_or(here);
    root.canonicalize().unwrap_or_else(|_| root.to_path_buf())
}

/// The version of the package `name` locked in the workspace's `Cargo.lock`.
///
/// Fails if the package is missing or locked at more than one version.
///
/// ```
/// let v = lumenize_harness::lock_package_version("wasm-bindgen").unwrap();
/// assert!(v.starts_with("0."));
/// ```
pub fn lock_package_version(name: &str) -> Result<String> {
    let path = workspace_root().join("Cargo.lock");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut versions: Vec<String> = Vec::new();
    let mut current_name: Option<&str> = None;
    for line in text.lines().map(str::trim) {
        if line == "[[package]]" {
            current_name = None;
        } else if let Some(v) = line.strip_prefix("name = ") {
            current_name = Some(v.trim_matches('"'));
        } else if let Some(v) = line.strip_prefix("version = ") {
            if current_name == Some(name) {
                let v = v.trim_matches('"').to_string();
                if !versions.contains(&v) {
                    versions.push(v);
                }
            }
        }
    }
    match versions.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("package `{name}` is not in {}", path.display()),
        many => bail!("package `{name}` is locked at several versions in {}: {many:?}", path.display()),
    }
}

/// The `wasm-bindgen` version in `Cargo.lock`: the `wasm-bindgen-cli` version to install.
pub fn wasm_bindgen_version() -> Result<String> {
    lock_package_version("wasm-bindgen")
}

/// The `worker-build` version to install: the version of the `worker` crate in `Cargo.lock`
/// (workers-rs releases `worker`, `worker-macros` and `worker-build` together).
pub fn worker_build_version() -> Result<String> {
    lock_package_version("worker")
}

/// Finds an executable: first in `$CARGO_HOME/bin` (default `~/.cargo/bin`, where
/// `cargo install` puts it, even when that is not on `PATH`), then on `PATH`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let path_dirs = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    cargo_home
        .map(|h| h.join("bin"))
        .into_iter()
        .chain(path_dirs.into_iter().flatten())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The external tools the harness runs, found and version-checked by [`check_tools`].
#[derive(Debug, Clone)]
pub struct Tools {
    /// `worker-build`, at [`worker_build_version`].
    pub worker_build: PathBuf,
    /// `wasm-bindgen`, at [`wasm_bindgen_version`] (passed to worker-build as `WASM_BINDGEN_BIN`).
    pub wasm_bindgen: PathBuf,
    /// `wasm-bindgen-test-runner` from the same `wasm-bindgen-cli` install.
    pub wasm_bindgen_test_runner: PathBuf,
    /// `node_modules/.bin/wrangler` of the workspace (pinned by `package-lock.json`).
    pub wrangler: PathBuf,
    /// `node_modules/.bin/wasm-opt` of the workspace: binaryen's, from the `binaryen` npm
    /// package pinned in `package.json` at the version worker-build expects (passed to
    /// worker-build as `WASM_OPT_BIN`, for [`Optimize::AsDeployed`] builds).
    pub wasm_opt: PathBuf,
}

/// The output of `<tool> --version`, last word (the version number), if it runs.
fn tool_version(path: &Path) -> Option<String> {
    let out = Command::new(path).arg("--version").stdin(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).split_whitespace().last().map(str::to_string)
}

/// Finds the tools and checks their versions against `Cargo.lock`.
///
/// The error lists every problem and ends with the fix: `cargo xtask setup`.
pub fn check_tools() -> Result<Tools> {
    let mut problems = Vec::new();
    let mut versioned = |name: &str, want: &str| -> PathBuf {
        match find_tool(name) {
            None => {
                problems.push(format!("`{name}` is not installed (need {want})"));
                PathBuf::from(name)
            }
            Some(path) => {
                let have = tool_version(&path);
                if have.as_deref() != Some(want) {
                    problems.push(format!(
                        "{} is version {}, but Cargo.lock needs {want}",
                        path.display(),
                        have.as_deref().unwrap_or("<unknown>")
                    ));
                }
                path
            }
        }
    };
    let wb_version = wasm_bindgen_version()?;
    let worker_build = versioned("worker-build", &worker_build_version()?);
    let wasm_bindgen = versioned("wasm-bindgen", &wb_version);
    let wasm_bindgen_test_runner = versioned("wasm-bindgen-test-runner", &wb_version);
    let wrangler = workspace_root().join("node_modules/.bin/wrangler");
    if !wrangler.exists() {
        problems.push(format!("{} is missing (npm ci)", wrangler.display()));
    }
    let wasm_opt = workspace_root().join("node_modules/.bin/wasm-opt");
    if !wasm_opt.exists() {
        problems.push(format!("{} is missing (npm ci)", wasm_opt.display()));
    }
    if !problems.is_empty() {
        bail!(
            "the worker toolchain is not ready:\n  - {}\nrun `cargo xtask setup` to install it",
            problems.join("\n  - ")
        );
    }
    Ok(Tools { worker_build, wasm_bindgen, wasm_bindgen_test_runner, wrangler, wasm_opt })
}

/// Where the harness keeps its builds' logs, its runs and its scratch copies:
/// `<target>/lumenize-harness`, under `CARGO_TARGET_DIR` if set.
///
/// ```
/// assert!(lumenize_harness::harness_target_dir().ends_with("lumenize-harness"));
/// ```
pub fn harness_target_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("lumenize-harness")
}

/// The last `n` lines of a file, for error messages.
pub(crate) fn file_tail(path: &Path, n: usize) -> String {
    let text = fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Canonical directory of a worker, with a friendly error.
pub(crate) fn worker_dir(dir: &Path) -> Result<PathBuf> {
    let dir = if dir.is_relative() { workspace_root().join(dir) } else { dir.to_path_buf() };
    let dir = dir.canonicalize().with_context(|| format!("worker directory {}", dir.display()))?;
    if !dir.join("wrangler.toml").is_file() {
        bail!("{} has no wrangler.toml (see the recipe in lumenize-harness' docs)", dir.display());
    }
    Ok(dir)
}

/// The entry point worker-build writes and wrangler.toml's `main` names.
pub(crate) fn shim_path(dir: &Path) -> PathBuf {
    dir.join("build/worker/shim.mjs")
}

/// Whether worker-build runs binaryen's `wasm-opt` on the worker's wasm.
///
/// ```
/// use lumenize_harness::Optimize;
/// assert_eq!(Optimize::AsDeployed.worker_build_args(), ["--release"]);
/// assert_eq!(Optimize::Off.worker_build_args(), ["--release", "--no-opt"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Optimize {
    /// `worker-build --release --no-opt`: wasm-bindgen's output as it is. For test builds:
    /// it saves the `wasm-opt` pass, 10 to 30 s per worker on 2 cores.
    Off,
    /// `worker-build --release`, worker-build's default and so what users deploy:
    /// `wasm-opt -O` with the wasm features workerd supports, the name section kept. The
    /// experiments measure these builds.
    AsDeployed,
}

impl Optimize {
    /// The choice of the environment: [`AsDeployed`](Self::AsDeployed) when
    /// `LUMENIZE_HARNESS_OPTIMIZE` is set to anything but empty or `0`, else [`Off`](Self::Off).
    pub fn from_env() -> Optimize {
        if std::env::var_os("LUMENIZE_HARNESS_OPTIMIZE").is_some_and(|v| !v.is_empty() && v != "0") {
            Optimize::AsDeployed
        } else {
            Optimize::Off
        }
    }

    /// The arguments of `worker-build` for this choice.
    pub fn worker_build_args(self) -> &'static [&'static str] {
        match self {
            Optimize::Off => &["--release", "--no-opt"],
            Optimize::AsDeployed => &["--release"],
        }
    }
}

/// Outcome of each directory built in this process, with the [`Optimize`] it was built
/// with (the error kept as text).
static BUILDS: Mutex<BTreeMap<PathBuf, Built>> = Mutex::new(BTreeMap::new());

/// How a directory was built in this process, and the outcome (the error kept as text).
type Built = (Optimize, Result<(), String>);

/// Builds the worker in `dir` as [`Optimize::from_env`] says (`worker-build --release
/// --no-opt` unless `LUMENIZE_HARNESS_OPTIMIZE=1`), once per process: see [`build_worker_as`].
///
/// ```no_run
/// lumenize_harness::build_worker("examples/call-alarm-delay".as_ref())?;
/// # Ok::<(), lumenize_harness::anyhow::Error>(())
/// ```
pub fn build_worker(dir: &Path) -> Result<()> {
    build_worker_as(dir, Optimize::from_env())
}

/// Builds the worker in `dir` with worker-build, optimized or not, once per process.
///
/// `dir` is absolute or relative to the workspace root. Concurrent callers wait for one
/// build; later calls with the same `optimize` return the first outcome (a failure is not
/// retried in the same process), a call with the other one builds again (both write the
/// worker's one `build/`). Output goes to `target/lumenize-harness/build-<dir name>.log`,
/// whose tail is in the error. With `LUMENIZE_HARNESS_SKIP_BUILD=1`, only checks that a
/// build exists, whichever way it was built.
///
/// ```no_run
/// use lumenize_harness::{build_worker_as, Optimize};
/// build_worker_as("examples/alarms-robustness".as_ref(), Optimize::AsDeployed)?;
/// # Ok::<(), lumenize_harness::anyhow::Error>(())
/// ```
pub fn build_worker_as(dir: &Path, optimize: Optimize) -> Result<()> {
    let dir = worker_dir(dir)?;
    // One build at a time: cargo would serialise them on the target directory anyway.
    let mut builds = BUILDS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((built, outcome)) = builds.get(&dir) {
        if *built == optimize || skip_build() {
            return outcome.clone().map_err(|e| anyhow!(e));
        }
    }
    let outcome = if skip_build() {
        if shim_path(&dir).is_file() {
            Ok(())
        } else {
            Err(anyhow!(
                "LUMENIZE_HARNESS_SKIP_BUILD is set but {} does not exist: run `cargo xtask build`",
                shim_path(&dir).display()
            ))
        }
    } else {
        run_worker_build(&dir, optimize)
    };
    builds.insert(dir, (optimize, outcome.as_ref().map(|_| ()).map_err(|e| format!("{e:#}"))));
    outcome
}

/// The built worker's wasm module: `build/index_bg.wasm`, where worker-build 0.8.7 writes it.
///
/// ```no_run
/// let wasm = lumenize_harness::built_wasm("examples/quickstart".as_ref())?;
/// println!("{} bytes", std::fs::metadata(&wasm)?.len());
/// # Ok::<(), lumenize_harness::anyhow::Error>(())
/// ```
pub fn built_wasm(dir: &Path) -> Result<PathBuf> {
    let wasm = worker_dir(dir)?.join("build/index_bg.wasm");
    if !wasm.is_file() {
        bail!("{} does not exist: build the worker first", wasm.display());
    }
    Ok(wasm)
}

fn skip_build() -> bool {
    std::env::var_os("LUMENIZE_HARNESS_SKIP_BUILD").is_some_and(|v| !v.is_empty() && v != "0")
}

fn run_worker_build(dir: &Path, optimize: Optimize) -> Result<()> {
    let tools = check_tools()?;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let logs = harness_target_dir();
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let log_path = logs.join(format!("build-{name}.log"));
    let log = File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    eprintln!("lumenize-harness: building {} ({optimize:?}, log: {})", dir.display(), log_path.display());
    let started = Instant::now();
    let status = Command::new(&tools.worker_build)
        .args(optimize.worker_build_args())
        .current_dir(dir)
        .env("WASM_BINDGEN_BIN", &tools.wasm_bindgen)
        // worker-build would download binaryen from a code host; the npm package has it.
        .env("WASM_OPT_BIN", &tools.wasm_opt)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("running {}", tools.worker_build.display()))?;
    if !status.success() {
        bail!(
            "worker-build failed in {} ({status}); last lines of {}:\n{}",
            dir.display(),
            log_path.display(),
            file_tail(&log_path, 60)
        );
    }
    if !shim_path(dir).is_file() {
        bail!("worker-build succeeded but {} is missing", shim_path(dir).display());
    }
    eprintln!("lumenize-harness: built {name} ({optimize:?}) in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
