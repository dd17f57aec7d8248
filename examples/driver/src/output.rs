//! What an experiment leaves behind: the output directory (`--out`), JSON files, a
//! description of the run (machine, versions, command), and Markdown tables.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The command-line option for where results go; flatten it into an experiment's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Directory for the JSON and SVG files (one subdirectory per experiment).
    #[arg(long, value_name = "DIR", default_value_os_t = default_out_dir())]
    pub out: PathBuf,
}

impl Default for OutputArgs {
    fn default() -> Self {
        OutputArgs { out: default_out_dir() }
    }
}

impl OutputArgs {
    /// `<out>/<experiment>/`, created if missing.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be created.
    pub fn dir(&self, experiment: &str) -> Result<PathBuf> {
        let dir = self.out.join(experiment);
        fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
        Ok(dir)
    }
}

/// `target/experiments/` of the workspace (or of `CARGO_TARGET_DIR`).
#[must_use]
pub fn default_out_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| lumenize_harness::workspace_root().join("target"))
        .join("experiments")
}

/// Writes `value` as pretty JSON to `path`.
///
/// # Errors
/// [`Error::Io`].
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Io { path: path.to_owned(), source: e.into() })?;
    fs::write(path, text + "\n").map_err(|source| Error::Io { path: path.to_owned(), source })
}

/// Where and how a run happened, for the record (the JSON files and the results documents).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// When the run started (Unix seconds).
    pub started_unix_s: u64,
    /// The driver's command line.
    pub command: String,
    /// What ran where ([`Target::describe`](crate::target::Target::describe)).
    pub target: String,
    /// CPU model and count, memory, kernel of this machine.
    pub machine: String,
    /// The 1-minute load average when the run started (the machine's other work).
    pub load_average: Option<f64>,
}

impl RunInfo {
    /// Describes this run against `target` (the output of `Target::describe`).
    #[must_use]
    pub fn collect(target: String) -> Self {
        RunInfo {
            started_unix_s: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            target,
            machine: machine(),
            load_average: load_average(),
        }
    }
}

/// The 1-minute load average, from `/proc/loadavg`.
#[must_use]
pub fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// `<cpu model> x <cores>, <memory> GiB, Linux <kernel>`, from `/proc` where available.
fn machine() -> String {
    let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map_or("?", |l| l.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease");
    format!("{model} x {cores} cores, {} GiB RAM, {} {}", mem_kib / 1024 / 1024, std::env::consts::OS, kernel.trim())
}

/// A Markdown table, aligned for reading in a terminal too.
///
/// ```
/// use lumenize_driver::output::Table;
/// let mut table = Table::new(["scenario", "delivered"]);
/// table.row(["burst-10", "100%"]);
/// assert_eq!(table.to_string(), "| scenario | delivered |\n| --- | --- |\n| burst-10 | 100%      |\n");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table { rows: vec![headers.into_iter().map(Into::into).collect()] }
    }

    /// Appends a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width = |c: usize| self.rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let mut out = String::new();
        for (i, row) in self.rows.iter().enumerate() {
            out.push('|');
            for (c, w) in widths.iter().enumerate() {
                let cell = row.get(c).map_or("", String::as_str);
                let _ = write!(out, " {cell:<w$} |");
            }
            out.push('\n');
            if i == 0 {
                out.push('|');
                out.push_str(&" --- |".repeat(columns));
                out.push('\n');
            }
        }
        f.write_str(&out)
    }
}
