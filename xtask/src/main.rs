//! `cargo xtask <command>`: the workspace's developer commands.
//!
//! - `setup`: install what this machine lacks (wasm target, worker-build, wasm-bindgen-cli at
//!   the `Cargo.lock` version, wrangler, binaryen's wasm-opt and playwright-core through
//!   `npm ci`, Debian's `chromium` for lumenize-board's browser test), skipping what is
//!   present.
//! - `build`: setup, then build every worker with worker-build (through `lumenize-harness`;
//!   which ones with `wasm-opt`: see [`WORKERS`]).
//! - `test`: setup, then four suites: native `cargo test`, wasm-bindgen-test of the
//!   libraries, the package checks, and the integration tests of `lumenize-harness` against
//!   workerd. Ends with one line `N passed, M failed`; exits non-zero if anything failed.
//! - `check-package`: the package checks alone (they need only the wasm target): the
//!   libraries package and build as crates.io would take them (`cargo package --offline` of
//!   all three together), and their docs build for wasm32 without a rustdoc warning.
//! - `screenshots`: setup, then the ignored `screenshot` test of `board_browser.rs`, which
//!   writes `lumenize-board/board.png` (the READMEs show it).
//! - `experiments [args]`: setup, then `cargo run --release -p lumenize-driver -- [args]`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use lumenize_harness as harness;
use lumenize_harness::Optimize;

/// The packages whose tests run the built workers in workerd (the integration suite).
const INTEGRATION: &[&str] = &["lumenize-harness", "lumenize-driver"];
/// The worker crates (cdylib, built by worker-build), relative to the workspace root, and how
/// `build` and `test` build them: the quickstart (what users copy) and alarms-robustness (the
/// library's widest workout) as users deploy them, with `wasm-opt`, so every test run checks
/// that the optimized wasm works (about 40 s more on 2 cores); the others `--no-opt`.
/// `LUMENIZE_HARNESS_OPTIMIZE=1` optimizes every one. The experiments build their worker
/// optimized themselves.
const WORKERS: &[(&str, Optimize)] = &[
    ("examples/call-alarm-delay", Optimize::Off),
    ("examples/alarms-robustness", Optimize::AsDeployed),
    ("examples/quickstart", Optimize::AsDeployed),
    ("testing/sandbox", Optimize::Off),
];
/// The libraries whose wasm-only pieces run under wasm-bindgen-test.
const WASM_TESTED: &[&str] = &["lumenize-alarms", "lumenize-call"];
/// The Rust target of workers.
const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The crates published to crates.io, in dependency order.
const PUBLISHED: &[&str] = &["lumenize-alarms", "lumenize-call", "lumenize-board"];

const USAGE: &str = "usage: cargo xtask <command>

commands:
  setup              install the wasm target, worker-build, wasm-bindgen-cli, wrangler and wasm-opt if missing
  build              setup, then build every worker (worker-build --release; --no-opt for the
                     sandbox and call-alarm-delay unless LUMENIZE_HARNESS_OPTIMIZE=1)
  test               setup, then native, wasm-bindgen-test, package and integration suites
  check-package      the package suite alone: cargo package and rustdoc of the libraries
  screenshots        setup, then write lumenize-board/board.png from the board in Chromium
  experiments [ARGS] setup, then cargo run --release -p lumenize-driver -- ARGS";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("setup") => setup().map(|_| ExitCode::SUCCESS),
        Some("build") => setup().and_then(|_| build_all()).map(|_| ExitCode::SUCCESS),
        Some("test") => Ok(test()),
        Some("check-package") => check_package(),
        Some("screenshots") => setup().and_then(|_| screenshots()),
        Some("experiments") => setup().and_then(|_| experiments(&args[1..])),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!("{USAGE}");
            Ok(ExitCode::from(2))
        }
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("xtask: error: {e:#}");
        ExitCode::FAILURE
    })
}

fn root() -> PathBuf {
    harness::workspace_root()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs a command to completion with inherited output; fails on a non-zero exit.
fn run(mut cmd: Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("running {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// setup

fn setup() -> Result<()> {
    let started = Instant::now();
    println!("xtask setup:");
    setup_wasm_target()?;
    let worker_build = harness::worker_build_version()?;
    setup_cargo_tool("worker-build", &["worker-build"], &worker_build)?;
    let wasm_bindgen = harness::wasm_bindgen_version()?;
    setup_cargo_tool("wasm-bindgen-cli", &["wasm-bindgen", "wasm-bindgen-test-runner"], &wasm_bindgen)?;
    setup_node_modules()?;
    setup_chromium()?;
    harness::check_tools()?;
    println!("  ready in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn setup_wasm_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(root())
        .output()
        .context("running `rustup target list --installed` (is rustup installed?)")?;
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == WASM_TARGET) {
        println!("  {WASM_TARGET} target: present");
        return Ok(());
    }
    println!("  {WASM_TARGET} target: installing");
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", WASM_TARGET]).current_dir(root());
    run(cmd)
}

/// The version a tool reports (`<name> x.y.z` or `x.y.z`), if it is installed and runs.
fn installed_version(bin: &str) -> Option<String> {
    let path = harness::find_tool(bin)?;
    let out = Command::new(path).arg("--version").stdin(Stdio::null()).output().ok()?;
    String::from_utf8_lossy(&out.stdout).split_whitespace().last().map(str::to_string)
}

/// `cargo install <package> --version <version>` unless every binary reports that version.
/// No `--locked`: the registry may lack patch releases that the tool's own lockfile names.
fn setup_cargo_tool(package: &str, bins: &[&str], version: &str) -> Result<()> {
    let have: Vec<Option<String>> = bins.iter().map(|b| installed_version(b)).collect();
    if have.iter().all(|v| v.as_deref() == Some(version)) {
        println!("  {package} {version}: present");
        return Ok(());
    }
    let found = have.iter().flatten().next().map_or("none".to_string(), |v| v.clone());
    println!("  {package} {version}: installing (found {found}; takes a few minutes)");
    let mut cmd = cargo();
    // `--force`: cargo's own record may say "installed" while the binary is gone or another
    // version answers; we only get here when the binaries themselves say otherwise.
    cmd.args(["install", package, "--version", version, "--force"]);
    run(cmd)
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// `npm ci` when node_modules is missing, lacks wrangler or wasm-opt, or is older than package-lock.json.
fn setup_node_modules() -> Result<()> {
    let root = root();
    let lock = root.join("package-lock.json");
    let modules = root.join("node_modules");
    // npm writes node_modules/.package-lock.json on every install.
    let installed = modified(&modules.join(".package-lock.json")).or_else(|| modified(&modules));
    let reason = if !modules.is_dir() {
        Some("node_modules is missing")
    } else if !modules.join(".bin/wrangler").exists() {
        Some("node_modules has no wrangler")
    } else if !modules.join(".bin/wasm-opt").exists() {
        Some("node_modules has no wasm-opt")
    } else if !modules.join("playwright-core").is_dir() {
        Some("node_modules has no playwright-core")
    } else if installed < modified(&lock) {
        Some("package-lock.json is newer than node_modules")
    } else {
        None
    };
    match reason {
        None => {
            println!("  node_modules (wrangler, wasm-opt): present");
            Ok(())
        }
        Some(reason) => {
            println!("  node_modules (wrangler, wasm-opt): npm ci ({reason})");
            let mut cmd = Command::new("npm");
            cmd.args(["ci", "--no-audit", "--no-fund"]).current_dir(&root);
            run(cmd)
        }
    }
}

/// The Chromium lumenize-board's browser test drives: `CHROMIUM`, or one on the PATH;
/// where neither is, Debian's `chromium` package (`apt-get`, as root or through `sudo`). On
/// a system without `apt-get`, a warning: install Chrome or Chromium and set `CHROMIUM`.
fn setup_chromium() -> Result<()> {
    let found = std::env::var_os("CHROMIUM").map(PathBuf::from).or_else(|| ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|b| harness::find_tool(b)));
    if let Some(path) = found {
        println!("  chromium: present ({})", path.display());
        return Ok(());
    }
    if harness::find_tool("apt-get").is_none() {
        println!("  chromium: MISSING, and no apt-get here: install Chrome or Chromium and set CHROMIUM=<its binary> (lumenize-board's browser test needs it)");
        return Ok(());
    }
    println!("  chromium: installing Debian's package (apt-get; takes a minute)");
    let root_user = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    let apt = |args: &[&str]| {
        let mut cmd = if root_user { Command::new("apt-get") } else { Command::new("sudo") };
        if !root_user {
            cmd.arg("apt-get");
        }
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run(apt(&["update"]))?;
    run(apt(&["install", "-y", "--no-install-recommends", "chromium"]))
}

/// `cargo xtask screenshots`: lumenize-board's page in Chromium, into its README's picture.
fn screenshots() -> Result<ExitCode> {
    let mut cmd = cargo();
    cmd.args(["test", "-p", "lumenize-harness", "--test", "board_browser", "--", "--ignored", "--exact", "screenshot", "--nocapture"]);
    run(cmd)?;
    println!("xtask screenshots: wrote lumenize-board/board.png");
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// build

/// Builds every worker; returns the first error after trying them all.
fn build_all() -> Result<()> {
    let mut failures = Vec::new();
    let all_optimized = Optimize::from_env() == Optimize::AsDeployed;
    for &(dir, optimize) in WORKERS {
        let optimize = if all_optimized { Optimize::AsDeployed } else { optimize };
        let started = Instant::now();
        match harness::build_worker_as(&root().join(dir), optimize) {
            Ok(()) => println!("xtask build: {dir} ({optimize:?}) built in {:.1} s", started.elapsed().as_secs_f64()),
            Err(e) => {
                eprintln!("xtask build: {dir} FAILED: {e:#}");
                failures.push(dir);
            }
        }
    }
    if !failures.is_empty() {
        bail!("worker build failed: {}", failures.join(", "));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// test

/// The outcome of one suite.
struct Suite {
    name: &'static str,
    passed: u64,
    failed: u64,
    /// Every command of the suite exited successfully.
    ok: bool,
    /// Why the suite failed beyond its counts (a command's exit status, a build error).
    notes: Vec<String>,
    duration: Duration,
}

impl Suite {
    fn new(name: &'static str) -> Self {
        Suite { name, passed: 0, failed: 0, ok: true, notes: Vec::new(), duration: Duration::ZERO }
    }

    fn fail(&mut self, note: impl Into<String>) {
        self.ok = false;
        self.notes.push(note.into());
    }

    /// Runs `cmd`, streaming its output and adding every `test result:` line to the counts.
    fn run(&mut self, cmd: Command) {
        let shown = short(&format!("{cmd:?}"));
        if let Err(why) = self.stream(cmd) {
            self.fail(format!("`{shown}` {why}"));
        }
    }

    /// Runs `cmd` as one check: one passed if it exits successfully, one failed otherwise.
    fn check(&mut self, what: &str, cmd: Command) {
        match self.stream(cmd) {
            Ok(()) => {
                self.passed += 1;
                println!("xtask test [{}]: {what}: ok", self.name);
            }
            Err(why) => {
                self.failed += 1;
                self.notes.push(format!("{what}: {why}"));
            }
        }
    }

    /// Runs `cmd` with its output streamed, adding every `test result:` line to the counts;
    /// `Err` says why it did not exit successfully ("exited with ...").
    fn stream(&mut self, mut cmd: Command) -> Result<(), String> {
        let shown = format!("{cmd:?}");
        println!("\n=== xtask test [{}]: {shown}", self.name);
        let spawned = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
        let mut child = spawned.map_err(|e| format!("could not be started: {e}"))?;
        let out = child.stdout.take().map(|s| thread::spawn(move || pump(s, false)));
        let err = child.stderr.take().map(|s| thread::spawn(move || pump(s, true)));
        let status = child.wait();
        let mut tail = Vec::new();
        for handle in [out, err].into_iter().flatten() {
            let pumped = handle.join().unwrap_or_default();
            for (passed, failed) in pumped.results {
                self.passed += passed;
                self.failed += failed;
            }
            tail.extend(pumped.tail);
        }
        match status {
            Ok(s) if s.success() => Ok(()),
            // The summary is often all a CI log keeps: it carries the command's last words.
            Ok(s) if tail.is_empty() => Err(format!("exited with {s}")),
            Ok(s) => Err(format!("exited with {s}; its last lines on stderr:\n  | {}", tail.join("\n  | "))),
            Err(e) => Err(format!("could not be waited for: {e}")),
        }
    }
}

/// A command line shortened for the summary.
fn short(cmd: &str) -> String {
    let cmd = cmd.replace('"', "");
    if cmd.len() > 90 {
        format!("{}...", &cmd[..cmd.char_indices().nth(87).map_or(cmd.len(), |(i, _)| i)])
    } else {
        cmd
    }
}

/// What [`pump`] kept of a child's stream.
#[derive(Default)]
struct Pumped {
    /// `(passed, failed)` of each `test result:` line.
    results: Vec<(u64, u64)>,
    /// The last [`TAIL_LINES`] lines of stderr that are not progress (`Compiling`, ...).
    tail: Vec<String>,
}

/// How many lines of a failed command's stderr the summary repeats.
const TAIL_LINES: usize = 15;

/// Copies a child's output to ours line by line, collecting `(passed, failed)` of each
/// `test result:` line (libtest, doc tests and wasm-bindgen-test-runner share that shape)
/// and, from stderr, the last lines that are not cargo's progress.
fn pump(stream: impl Read, to_stderr: bool) -> Pumped {
    let mut pumped = Pumped::default();
    let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES);
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    // Bounded by the child's output: ends at EOF, when the child exits.
    while let Ok(n) = reader.read_until(b'\n', &mut buf) {
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf);
        if let Some(counts) = parse_test_result(&line) {
            pumped.results.push(counts);
        }
        if to_stderr {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(&buf);
            let line = strip_ansi(line.trim_end());
            if !is_progress(&line) {
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        } else {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(&buf);
            let _ = o.flush();
        }
        buf.clear();
    }
    pumped.tail = tail.into();
    pumped
}

/// Cargo's progress lines (`Compiling x`, `Downloaded y`, ...), which say nothing of a failure.
fn is_progress(line: &str) -> bool {
    const PROGRESS: &[&str] = &[
        "Compiling", "Checking", "Downloaded", "Downloading", "Fresh", "Packaging", "Packaged",
        "Verifying", "Unpacking", "Updating", "Locking", "Adding", "Blocking", "Documenting",
    ];
    line.trim().is_empty() || PROGRESS.iter().any(|p| line.trim_start().starts_with(p))
}

/// `(passed, failed)` from a line like
/// `test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`.
fn parse_test_result(line: &str) -> Option<(u64, u64)> {
    let line = strip_ansi(line);
    let rest = &line[line.find("test result: ")?..];
    let count_before = |word: &str| -> Option<u64> {
        let end = rest.find(word)?;
        rest[..end].rsplit(|c: char| !c.is_ascii_digit()).find(|s| !s.is_empty())?.parse().ok()
    };
    Some((count_before(" passed")?, count_before(" failed")?))
}

/// Removes ANSI colour sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip `[`, parameters, and the final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn test() -> ExitCode {
    let mut suites = Vec::new();
    let tools = match setup().and_then(|_| harness::check_tools()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("xtask test: setup failed: {e:#}");
            let mut s = Suite::new("setup");
            s.fail(format!("{e:#}"));
            suites.push(s);
            return summary(&suites);
        }
    };

    // (a) Native: everything except the integration tests. The worker crates (cdylib) build
    // natively too, so pure helpers in them can have ordinary unit tests.
    let started = Instant::now();
    let mut native = Suite::new("native");
    let mut cmd = cargo();
    cmd.args(["test", "--no-fail-fast", "--workspace"]);
    for p in INTEGRATION {
        cmd.args(["--exclude", p]);
    }
    native.run(cmd);
    // The optional features' own tests: cron in a time zone (daylight saving time).
    let mut cmd = cargo();
    cmd.args(["test", "--no-fail-fast", "-p", "lumenize-alarms", "--features", "timezone", "--lib"]);
    native.run(cmd);
    native.duration = started.elapsed();
    suites.push(native);

    // (b) wasm-bindgen-test: the libraries' wasm-only pieces, under Node.
    let started = Instant::now();
    let mut wasm = Suite::new("wasm");
    let mut cmd = cargo();
    cmd.args(["test", "--no-fail-fast", "--target", WASM_TARGET]);
    for p in WASM_TESTED {
        cmd.args(["-p", p]);
    }
    cmd.env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", &tools.wasm_bindgen_test_runner);
    wasm.run(cmd);
    wasm.duration = started.elapsed();
    suites.push(wasm);

    // (c) Package: what crates.io and docs.rs will take, checked on every test run.
    suites.push(package_suite());

    // (d) Integration: the workers on workerd. Build them here once, then let the tests
    // trust those builds; if a build failed, let each test report it for its worker.
    let started = Instant::now();
    let mut integration = Suite::new("integration");
    println!("\n=== xtask test [integration]: building workers");
    let built = match build_all() {
        Ok(()) => true,
        Err(e) => {
            integration.fail(format!("{e:#}"));
            false
        }
    };
    let mut cmd = cargo();
    // Every test binary runs even after one fails, so a run reports every failure.
    cmd.args(["test", "--no-fail-fast"]);
    for p in INTEGRATION {
        cmd.args(["-p", p]);
    }
    if built {
        cmd.env("LUMENIZE_HARNESS_SKIP_BUILD", "1");
    }
    integration.run(cmd);
    integration.duration = started.elapsed();
    suites.push(integration);

    summary(&suites)
}

/// The package checks, one count each: (1) the libraries package and build as crates.io
/// would take them, `lumenize-call` and `lumenize-board` against the packaged `lumenize-alarms` (one
/// `cargo package` of all three; cargo 1.90+); (2) their docs build for wasm32, as
/// docs.rs builds them, with rustdoc warnings as errors.
///
/// `cargo package`, not `cargo publish --dry-run`: the dry run checks the same files and
/// builds, but also asks crates.io's API, so a network hiccup on the CI machine failed a
/// run (stop 23). `--offline` resolves the packages' lockfiles from what the other suites
/// (or `cargo fetch`, in `check-package`) already downloaded: the check needs no network.
fn package_suite() -> Suite {
    let started = Instant::now();
    let mut suite = Suite::new("package");

    if let Err(e) = forget_unpacked_packages() {
        suite.fail(format!("removing cargo's unpacked copies of the libraries: {e:#}"));
    }
    // And their builds: cargo takes a registry package of one name and version for immutable
    // and reuses its build without looking at the sources (the libraries rebuild in seconds).
    let mut clean = cargo();
    clean.args(["clean", "--offline", "--quiet"]);
    for p in PUBLISHED {
        clean.args(["-p", p]);
    }
    suite.run(clean);
    let mut package = cargo();
    // `--allow-dirty`: the check is about the files, not about a clean working tree.
    package.args(["package", "--offline", "--allow-dirty"]);
    for p in PUBLISHED {
        package.args(["-p", p]);
    }
    suite.check("cargo package --offline", package);

    let mut doc = cargo();
    doc.args(["doc", "--no-deps", "--all-features", "--target", WASM_TARGET]);
    for p in PUBLISHED {
        doc.args(["-p", p]);
    }
    doc.env("RUSTDOCFLAGS", "-D warnings");
    suite.check("rustdoc for wasm32 (-D warnings)", doc);

    semver_check(&mut suite);

    suite.duration = started.elapsed();
    suite
}

/// Removes cargo's unpacked copies of the libraries from earlier package checks (their
/// builds are removed by `cargo clean -p`).
///
/// `cargo package` verifies `lumenize-call` and `lumenize-board` against the packed
/// `lumenize-alarms` through a temporary registry in `target/package`, which cargo unpacks into
/// `$CARGO_HOME/registry/src/<registry>-<hash of its path>/<name>-<version>`. When that
/// directory is already there, from an earlier run at the same path with the same version,
/// cargo does not unpack again and builds against the old copy: CI's clone, always at one
/// path, verified `lumenize-board` against the `lumenize-alarms` of an earlier commit and
/// failed to compile. Only directories of our own packages outside crates.io's are removed
/// (crates.io has no package of these names).
fn forget_unpacked_packages() -> Result<()> {
    let home = std::env::var_os("CARGO_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry").join("src")) else { return Ok(()) };
    let Ok(registries) = std::fs::read_dir(&src) else { return Ok(()) };
    for registry in registries.flatten() {
        if registry.file_name().to_string_lossy().starts_with("index.crates.io") {
            continue;
        }
        for unpacked in std::fs::read_dir(registry.path())?.flatten() {
            let name = unpacked.file_name().to_string_lossy().into_owned();
            if PUBLISHED.iter().any(|p| name.strip_prefix(p).is_some_and(|v| v.starts_with('-') && v[1..].starts_with(|c: char| c.is_ascii_digit()))) {
                std::fs::remove_dir_all(unpacked.path()).with_context(|| format!("removing {}", unpacked.path().display()))?;
            }
        }
    }
    Ok(())
}

/// The version of cargo-semver-checks the semver check installs (from crates.io).
const SEMVER_CHECKS_VERSION: &str = "0.51.0";

/// The API of each library against its last release: once a release is tagged
/// (`v<version>`, on the commit the packages were published from), cargo-semver-checks
/// compares the public API of this tree with the packages built from that commit, and a
/// breaking change without a major (0.x: minor) version bump fails the suite. Hidden items
/// (`#[doc(hidden)]`: the cores, the wire format) are not API and not compared. Before the
/// first release there is nothing to compare with: the suite says so and counts nothing,
/// and the tool (a few minutes of `cargo install`) is not installed.
fn semver_check(suite: &mut Suite) {
    let tags = Command::new("git").args(["tag", "--list", "v*", "--sort=-v:refname"]).current_dir(root()).output();
    let Some(baseline) = tags.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned)) else {
        println!("  semver: no release tag (v*) yet: nothing to compare the API with; the check starts with the first release");
        return;
    };
    if let Err(e) = setup_cargo_tool("cargo-semver-checks", &["cargo-semver-checks"], SEMVER_CHECKS_VERSION) {
        suite.fail(format!("installing cargo-semver-checks: {e:#}"));
        return;
    }
    // One run per crate, so that a failure's line names that crate and its excerpt is the
    // end of its report ("N major and M minor checks failed"), not the tail of the last
    // crate's. The failed lint and the item it names are on stdout, in the full log.
    for p in PUBLISHED {
        let mut check = cargo();
        check.args(["semver-checks", "check-release", "--baseline-rev", &baseline, "-p", p]);
        suite.check(&format!("cargo semver-checks -p {p} against {baseline}"), check);
    }
}

/// `cargo xtask check-package`: the package suite alone, with the usual summary.
fn check_package() -> Result<ExitCode> {
    println!("xtask check-package:");
    setup_wasm_target()?;
    // What `cargo package --offline` resolves from.
    let mut fetch = cargo();
    fetch.arg("fetch");
    run(fetch)?;
    Ok(summary(&[package_suite()]))
}

/// Prints per-suite lines, then the total alone on the last line.
fn summary(suites: &[Suite]) -> ExitCode {
    println!("\n=== xtask test summary");
    for s in suites {
        println!(
            "{:<12} {:>5} passed, {:>3} failed  {:>7.1} s  {}",
            s.name,
            s.passed,
            s.failed,
            s.duration.as_secs_f64(),
            if s.ok && s.failed == 0 { "ok" } else { "FAILED" }
        );
        for note in &s.notes {
            println!("{:<12} {note}", "");
        }
    }
    let passed: u64 = suites.iter().map(|s| s.passed).sum();
    let failed: u64 = suites.iter().map(|s| s.failed).sum();
    println!("{passed} passed, {failed} failed");
    if suites.iter().all(|s| s.ok && s.failed == 0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

// ---------------------------------------------------------------------------------------
// experiments

fn experiments(args: &[String]) -> Result<ExitCode> {
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "lumenize-driver", "--"]).args(args);
    let status = cmd.status().context("running the experiment driver")?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_doctest_and_wasm_runner_lines() {
        assert_eq!(
            parse_test_result(
                "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"
            ),
            Some((12, 0))
        );
        assert_eq!(
            parse_test_result("test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 filtered out; finished in 0.20s"),
            Some((3, 2))
        );
        assert_eq!(
            parse_test_result("test result: \u{1b}[32mok\u{1b}[0m. 7 passed; 0 failed; 0 ignored"),
            Some((7, 0))
        );
        assert_eq!(parse_test_result("running 3 tests"), None);
    }

    #[test]
    fn a_failed_command_leaves_its_last_words_not_its_progress() {
        let mut err = String::from("   Compiling a v0.1.0\n");
        for i in 0..20 {
            err.push_str(&format!("line {i}\n"));
        }
        err.push_str("    Checking b v0.1.0\nerror: failed to verify package `c`\n\n");
        let pumped = pump(err.as_bytes(), true);
        assert_eq!(pumped.tail.len(), TAIL_LINES);
        assert_eq!(pumped.tail.last().map(String::as_str), Some("error: failed to verify package `c`"));
        assert!(pumped.tail.iter().all(|l| !l.contains("Compiling") && !l.contains("Checking")));
        assert_eq!(pumped.tail.first().map(String::as_str), Some("line 6"));
        // stdout is streamed, not kept.
        assert!(pump(err.as_bytes(), false).tail.is_empty());
    }
}
