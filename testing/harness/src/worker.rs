//! A worker running under `wrangler dev`, owned by a test.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};

use crate::build::{build_worker_as, file_tail, harness_target_dir, shim_path, workspace_root, worker_dir};
use crate::procs::{group_members, pid_alive, signal, tree};
use crate::{Optimize, Result};

/// How a [`Worker`] is started. `WorkerOptions::default()` suits most tests.
///
/// ```
/// use std::time::Duration;
/// use lumenize_harness::WorkerOptions;
/// let opts = WorkerOptions::default()
///     .persist_to("/tmp/my-state")          // reuse storage across Worker values
///     .ready_timeout(Duration::from_secs(30))
///     .env("MY_FLAG", "1");
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// `--persist-to` directory (Durable Object storage). `None`: a fresh directory in this
    /// Worker's run directory under `target/lumenize-harness/runs/`.
    pub persist_dir: Option<PathBuf>,
    /// Run [`build_worker_as`](crate::build_worker_as) before starting (once per process). Default `true`.
    pub build: bool,
    /// How to build: default [`Optimize::from_env`] (`--no-opt` unless
    /// `LUMENIZE_HARNESS_OPTIMIZE=1`).
    pub optimize: Optimize,
    /// How long to wait for the first HTTP answer after each (re)start. Default 90 s.
    pub ready_timeout: Duration,
    /// Extra environment variables for wrangler (and so for the build command it runs).
    pub env: Vec<(String, String)>,
    /// Extra arguments appended to `wrangler dev` (for example `["--var", "KEY:value"]`).
    pub args: Vec<String>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            persist_dir: None,
            build: true,
            optimize: Optimize::from_env(),
            ready_timeout: Duration::from_secs(90),
            env: Vec::new(),
            args: Vec::new(),
        }
    }
}

impl WorkerOptions {
    /// Use (and keep) this persist directory instead of a fresh one.
    pub fn persist_to(mut self, dir: impl Into<PathBuf>) -> Self {
        self.persist_dir = Some(dir.into());
        self
    }
    /// Do not build: the worker's `build/` must already exist.
    pub fn no_build(mut self) -> Self {
        self.build = false;
        self
    }
    /// Build this way (see [`Optimize`]).
    pub fn optimize(mut self, optimize: Optimize) -> Self {
        self.optimize = optimize;
        self
    }
    /// Bound on the wait for the first HTTP answer after each (re)start.
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }
    /// Add an environment variable for wrangler.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
    /// Append an argument to `wrangler dev`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }
}

/// How many times a start is retried on a port clash (another process took a chosen port).
const PORT_ATTEMPTS: usize = 4;
/// Bound on the wait for processes to exit after SIGTERM, then after SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(10);
const KILL_GRACE: Duration = Duration::from_secs(10);
/// Interval of the readiness probe and of the exit checks.
const POLL: Duration = Duration::from_millis(100);

/// The processes of one start: wrangler (our child, the leader of its own process group),
/// its descendants, and the watchdog.
#[derive(Debug)]
struct Running {
    child: Child,
    pgid: u32,
    pids: BTreeSet<u32>,
    watchdog: Option<Watchdog>,
}

/// A shell in the worker's process group that reads a line from a pipe held by this
/// process. If this process dies without stopping the worker (Ctrl-C of the test run, a
/// SIGKILL), the pipe closes, `read` fails and the shell kills the whole group. A normal
/// stop writes `stop` first, which makes it exit quietly.
#[derive(Debug)]
struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Watchdog {
    fn spawn(pgid: u32) -> Option<Self> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"read -r line; [ "$line" = stop ] || kill -s KILL -- "-$0""#)
            .arg(pgid.to_string())
            .process_group(i32::try_from(pgid).ok()?)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let stdin = child.stdin.take();
        Some(Self { child, stdin })
    }

    fn disarm(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        if wait_child(&mut self.child, Duration::from_secs(2)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits for a child to exit, bounded; `None` if it is still running.
fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    for _ in 0..=(timeout.as_millis() / 10) {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Waits until none of `pids` is alive, bounded; returns those still alive.
fn wait_gone(pids: &BTreeSet<u32>, timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    for _ in 0..=(timeout.as_millis() / 20) {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| pid_alive(p)).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        thread::sleep(Duration::from_millis(20));
    }
    pids.iter().copied().filter(|&p| pid_alive(p)).collect()
}

/// A free TCP port on 127.0.0.1, never the same one twice in this process, and below the
/// kernel's ephemeral range: workerd binds its own internal sockets to port 0, and the tests'
/// HTTP clients take ephemeral ports too, so a port from that range could be taken between
/// this check and wrangler's bind (in CI, workerd once failed to bind the port it
/// was handed, and the readiness probe was answered by whatever held it).
fn free_port() -> Result<u16> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let (low, high) = non_ephemeral_ports();
    let span = u32::from(high - low) + 1;
    let seed = std::process::id().wrapping_mul(2_654_435_761) ^ SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    for i in 0..span.min(4_096) {
        let port = low + ((seed.wrapping_add(i.wrapping_mul(7_919)) % span) as u16);
        if handed_out.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return Ok(port);
        }
    }
    bail!("no free port found on 127.0.0.1 in {low}..={high}")
}

/// The ports this harness hands out: outside `/proc/sys/net/ipv4/ip_local_port_range`
/// (Linux's default is 32768..=60999, so 10000..=32767), below it where there is room,
/// above it otherwise.
fn non_ephemeral_ports() -> (u16, u16) {
    let range = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut bounds = range.split_whitespace().map(|n| n.parse::<u16>().ok());
    let (start, end) = match (bounds.next().flatten(), bounds.next().flatten()) {
        (Some(start), Some(end)) => (start, end),
        _ => (32_768, 60_999),
    };
    if start > 12_000 {
        (10_000, start - 1)
    } else {
        (end.saturating_add(1).min(64_000), 65_535)
    }
}

/// Why a start attempt failed.
enum StartError {
    /// A port was taken (by the time wrangler bound it): retry with other ports.
    PortClash,
    Other(anyhow::Error),
}

/// A worker running locally under `wrangler dev` on workerd.
///
/// Dropping it stops it (SIGTERM, then SIGKILL), so a failing test does not leak processes.
/// See the crate docs for an example.
#[derive(Debug)]
pub struct Worker {
    dir: PathBuf,
    opts: WorkerOptions,
    wrangler: PathBuf,
    run_dir: PathBuf,
    persist_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    starts: u32,
    running: Option<Running>,
    last_pids: Vec<u32>,
}

impl Worker {
    /// Builds the worker in `dir` if needed (see [`build_worker_as`](crate::build_worker_as)), starts `wrangler dev` on
    /// free ports of 127.0.0.1 (outside the kernel's ephemeral range), and waits until its log says
    /// `Ready on` that port and `GET /` answers with any HTTP status.
    ///
    /// `dir` is absolute or relative to the workspace root, and holds a `wrangler.toml`
    /// that follows the crate's recipe. On failure the error holds the tail of the log.
    pub fn start(dir: &Path, opts: WorkerOptions) -> Result<Worker> {
        let dir = worker_dir(dir)?;
        if opts.build {
            build_worker_as(&dir, opts.optimize)?;
        } else if !shim_path(&dir).is_file() {
            bail!("{} does not exist: build the worker first", shim_path(&dir).display());
        }
        let wrangler = workspace_root().join("node_modules/.bin/wrangler");
        if !wrangler.exists() {
            bail!("{} is missing: run `cargo xtask setup` (npm ci)", wrangler.display());
        }
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let run_dir = harness_target_dir().join("runs").join(format!(
            "{name}-{millis}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let persist_dir = opts.persist_dir.clone().unwrap_or_else(|| run_dir.join("persist"));
        fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        fs::create_dir_all(&persist_dir).with_context(|| format!("creating {}", persist_dir.display()))?;
        let mut worker = Worker {
            dir,
            opts,
            wrangler,
            log_path: run_dir.join("wrangler.log"),
            run_dir,
            persist_dir,
            port: free_port()?,
            starts: 0,
            running: None,
            last_pids: Vec::new(),
        };
        worker.launch()?;
        Ok(worker)
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash. The port may change on
    /// [`restart`](Self::restart) if the old one was taken meanwhile: read it again after.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The worker's directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was started with.
    pub fn options(&self) -> &WorkerOptions {
        &self.opts
    }

    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The log of wrangler and workerd (all starts of this Worker, appended).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The `--persist-to` directory (Durable Object storage).
    pub fn persist_dir(&self) -> &Path {
        &self.persist_dir
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.log_path, lines)
    }

    /// The process ids of the current start (wrangler and all its descendants, workerd
    /// included), or of the last start after [`kill`](Self::kill) / [`stop`](Self::stop).
    pub fn pids(&self) -> Vec<u32> {
        match &self.running {
            Some(r) => r.pids.iter().copied().collect(),
            None => self.last_pids.clone(),
        }
    }

    /// Whether wrangler is still running (it may have exited on its own).
    pub fn is_running(&mut self) -> bool {
        match &mut self.running {
            Some(r) => matches!(r.child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL every process of the current start at once: wrangler and workerd die
    /// without any chance to clean up, as in a crash. Waits (bounded) until they are gone.
    pub fn kill(&mut self) -> Result<()> {
        let Some(running) = self.running.take() else { return Ok(()) };
        self.finish(running, false)
    }

    /// Stops gracefully: SIGTERM, a bounded wait, then SIGKILL for whatever is left.
    pub fn stop(&mut self) -> Result<()> {
        let Some(running) = self.running.take() else { return Ok(()) };
        self.finish(running, true)
    }

    /// Starts again on the same persist directory (stopping first if still running),
    /// on the same port if it is still free, and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.launch()
    }

    /// Every live process of a start: the recorded ids, the current tree under wrangler,
    /// and whatever else is in its process group, minus the watchdog.
    fn current_pids(running: &Running) -> BTreeSet<u32> {
        let mut pids = running.pids.clone();
        pids.extend(tree(running.pgid));
        pids.extend(group_members(running.pgid));
        if let Some(w) = &running.watchdog {
            pids.remove(&w.child.id());
        }
        pids
    }

    fn finish(&mut self, mut running: Running, graceful: bool) -> Result<()> {
        if let Some(w) = running.watchdog.take() {
            w.disarm();
        }
        let pgid = running.pgid;
        let pids = Self::current_pids(&running);
        let mut alive = Vec::new();
        if graceful {
            signal(pids.iter().copied(), pgid, "TERM");
            alive = wait_gone(&pids, TERM_GRACE);
        }
        if !graceful || !alive.is_empty() {
            // Pick up anything spawned since, then kill everything in one `kill` call.
            let mut all = pids.clone();
            all.extend(tree(pgid));
            all.extend(group_members(pgid));
            signal(all.iter().copied(), pgid, "KILL");
            alive = wait_gone(&all, KILL_GRACE);
        }
        // Reap wrangler (our child); its descendants are reaped by init.
        if wait_child(&mut running.child, KILL_GRACE).is_none() {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
        self.last_pids = pids.into_iter().collect();
        if !alive.is_empty() {
            bail!("processes {alive:?} of {} are still alive after SIGKILL", self.dir.display());
        }
        Ok(())
    }

    /// Starts wrangler, retrying on port clashes, and waits until it answers.
    fn launch(&mut self) -> Result<()> {
        let started = Instant::now();
        for attempt in 0..PORT_ATTEMPTS {
            if attempt > 0 {
                self.port = free_port()?;
            }
            let inspector_port = free_port()?;
            match self.try_launch(inspector_port) {
                Ok(()) => {
                    eprintln!(
                        "lumenize-harness: {} ready at {} in {:.1} s (log: {})",
                        self.dir.file_name().unwrap_or_default().to_string_lossy(),
                        self.url(),
                        started.elapsed().as_secs_f64(),
                        self.log_path.display()
                    );
                    return Ok(());
                }
                Err(StartError::PortClash) => continue,
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        bail!(
            "wrangler could not bind a port after {PORT_ATTEMPTS} attempts; last lines of {}:\n{}",
            self.log_path.display(),
            self.log_tail(40)
        )
    }

    fn try_launch(&mut self, inspector_port: u16) -> Result<(), StartError> {
        self.starts += 1;
        let (log, offset) = self.open_log(inspector_port).map_err(StartError::Other)?;
        let mut cmd = Command::new(&self.wrangler);
        cmd.current_dir(&self.dir)
            .arg("dev")
            .args(["--ip", "127.0.0.1"])
            .args(["--port", &self.port.to_string()])
            .args(["--inspector-port", &inspector_port.to_string()])
            .arg("--persist-to")
            .arg(&self.persist_dir)
            .arg("--show-interactive-dev-session=false")
            .args(&self.opts.args)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_SEND_ERROR_REPORTS", "false")
            .env("WRANGLER_LOG_PATH", &self.run_dir)
            .env("NO_COLOR", "1")
            .env("LUMENIZE_PREBUILT", "1")
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .stdin(Stdio::null());
        let stdout = log.try_clone().map_err(|e| StartError::Other(e.into()))?;
        cmd.stdout(stdout).stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", self.wrangler.display()))
            .map_err(StartError::Other)?;
        let pgid = child.id();
        let watchdog = Watchdog::spawn(pgid);
        self.running = Some(Running { child, pgid, pids: BTreeSet::from([pgid]), watchdog });

        let outcome = self.wait_ready(offset);
        match outcome {
            Ok(()) => {
                if let Some(running) = &mut self.running {
                    running.pids = Self::current_pids(running);
                }
                Ok(())
            }
            Err(e) => {
                if let Some(running) = self.running.take() {
                    let _ = self.finish(running, false);
                }
                Err(e)
            }
        }
    }

    /// Appends a header for this start to the log; returns the file and where this start begins.
    fn open_log(&self, inspector_port: u16) -> Result<(File, u64)> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let offset = log.seek(SeekFrom::End(0))?;
        writeln!(
            log,
            "=== lumenize-harness: start #{} of {} on port {} (inspector {}), persist {} ===",
            self.starts,
            self.dir.display(),
            self.port,
            inspector_port,
            self.persist_dir.display()
        )?;
        Ok((log, offset))
    }

    /// The log written since `offset` (this start).
    fn log_since(&self, offset: u64) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            if f.seek(SeekFrom::Start(offset)).is_ok() {
                let mut bytes = Vec::new();
                let _ = f.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        text
    }

    fn wait_ready(&mut self, offset: u64) -> Result<(), StartError> {
        let timeout = self.opts.ready_timeout;
        let deadline = Instant::now() + timeout;
        let url = format!("{}/", self.url());
        let ready_line = format!("Ready on {}", self.url());
        let max_probes = timeout.as_millis() / POLL.as_millis() + 1;
        for _ in 0..max_probes {
            let exited = match &mut self.running {
                Some(r) => r.child.try_wait().ok().flatten(),
                None => None,
            };
            // Read after `try_wait`, so that an exit's last lines are in it. A clash ends this
            // start whether or not wrangler is still up (it may outlive a workerd that could
            // not bind).
            let log = self.log_since(offset);
            if log.contains("Address already in use") {
                return Err(StartError::PortClash);
            }
            if let Some(status) = exited {
                return Err(StartError::Other(anyhow!(
                    "wrangler dev exited ({status}) before answering; last lines of {}:\n{}",
                    self.log_path.display(),
                    self.log_tail(40)
                )));
            }
            // Our wrangler says it serves this port, and the port answers. Without the first
            // check, a probe answered by some other process on the port would count as ready.
            if log.contains(&ready_line) && crate::http::probe(&url) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                break;
            }
            thread::sleep(POLL);
        }
        Err(StartError::Other(anyhow!(
            "{url} did not answer within {timeout:?}; last lines of {}:\n{}",
            self.log_path.display(),
            self.log_tail(40)
        )))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("lumenize-harness: stopping {}: {e:#}", self.dir.display());
        }
    }
}
