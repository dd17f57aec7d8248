//! Process bookkeeping through `/proc` (Linux), and signals through the `kill` command
//! (the workspace forbids `unsafe`, so no direct `libc::kill`).

use std::collections::BTreeSet;
use std::fs;
use std::process::{Command, Stdio};

/// Most processes a worker tree is expected to have; walks stop there.
const MAX_TREE: usize = 256;

/// `(state, parent pid, process group)` of a process, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u32, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}

/// Whether `pid` is a live process (zombies, waiting to be reaped, count as dead).
///
/// ```
/// assert!(lumenize_harness::pid_alive(std::process::id()));
/// ```
pub fn pid_alive(pid: u32) -> bool {
    matches!(stat(pid), Some((state, _, _)) if state != 'Z' && state != 'X')
}

/// The process group of a live process.
pub(crate) fn pgid_of(pid: u32) -> Option<u32> {
    stat(pid).filter(|(s, _, _)| *s != 'Z' && *s != 'X').map(|(_, _, g)| g)
}

/// `pid` and all its descendants, walking `/proc/<pid>/task/*/children`.
pub(crate) fn tree(pid: u32) -> BTreeSet<u32> {
    let mut found = BTreeSet::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if found.len() >= MAX_TREE || !found.insert(p) {
            continue;
        }
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else { continue };
        for task in tasks.flatten() {
            let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
            todo.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    found
}

/// Every live process whose process group is `pgid`.
pub(crate) fn group_members(pgid: u32) -> BTreeSet<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return BTreeSet::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pgid_of(pid) == Some(pgid))
        .take(MAX_TREE)
        .collect()
}

/// Sends `signal` (`"TERM"`, `"KILL"`) to those of `pids` that are still alive and still in
/// process group `pgid` (so a recycled pid of some other process is never signalled).
pub(crate) fn signal(pids: impl IntoIterator<Item = u32>, pgid: u32, signal: &str) {
    let targets: Vec<String> =
        pids.into_iter().filter(|&p| pgid_of(p) == Some(pgid)).map(|p| p.to_string()).collect();
    if targets.is_empty() {
        return;
    }
    // A target may exit between the check and the signal: ignore `kill`'s complaint.
    let _ = Command::new("kill")
        .args(["-s", signal, "--"])
        .args(&targets)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
