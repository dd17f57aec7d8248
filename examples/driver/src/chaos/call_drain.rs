//! The end of a run for the calls, after the last step: the driver waits (bounded) until
//! no origin has a call pending (a call leaves `pending` only once its continuation
//! completed), makes one new call per origin in each dispatch mode and waits for their
//! continuations, waits a little longer for anything that would run a continuation again,
//! then reads every origin's continuations and every remote's effects.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::chaos::call_plan::Dispatch;
use crate::chaos::calls::{self, Continued};
use crate::chaos::session::Session;

/// Between two looks at the origins while waiting.
const POLL: Duration = Duration::from_millis(300);
/// How long the last calls get to complete.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// A second chance for whatever would run a continuation again (a call's backstop task is
/// due a second after its last dispatch).
const SETTLE: Duration = Duration::from_millis(2_500);
/// Tries of a request the drain needs an answer to.
const TRIES: u32 = 5;

/// What the drain of the calls found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallsDrained {
    /// Per origin: every continuation it recorded, in order (`None`: it did not answer).
    pub continued: Vec<Option<Vec<Continued>>>,
    /// Per origin: the calls still pending at the end (their tags or ids).
    pub pending: Vec<Vec<String>>,
    /// Per remote: its effects, by key (`None`: it did not answer).
    pub effects: Vec<Option<BTreeMap<String, i64>>>,
    /// Per remote: how often it applied each kind of operation.
    pub applied: Vec<Option<BTreeMap<String, i64>>>,
    /// Per origin: what went wrong with its last calls, if anything.
    pub still_works: Vec<Option<String>>,
    /// Seconds the wait for pending calls took.
    pub waited_s: f64,
}

/// Drains the calls (see the module docs), waiting at most `timeout` for pending calls.
pub(crate) fn drain(session: &mut Session<'_>, timeout: Duration) -> CallsDrained {
    let origins = session.model.calls.origins.len();
    let step = session.steps;
    let started = Instant::now();
    let mut pending = vec![Vec::new(); origins];
    let mut done = vec![false; origins];
    let rounds = timeout.as_millis() / POLL.as_millis() + 1;
    for _ in 0..rounds {
        let todo: Vec<usize> = (0..origins).filter(|&o| !done[o]).collect();
        for o in todo {
            if let Some(p) = pending_of(session, step, o) {
                done[o] = p.is_empty();
                pending[o] = p;
            }
        }
        if done.iter().all(|d| *d) || started.elapsed() >= timeout {
            break;
        }
        thread::sleep(POLL);
    }
    let waited_s = started.elapsed().as_secs_f64();
    let still_works = (0..origins).map(|o| probe(session, step, o)).collect();
    thread::sleep(SETTLE);
    let continued = (0..origins).map(|o| continuations(session, step, o)).collect();
    let remotes = session.model.calls.remotes.len();
    let effects = (0..remotes).map(|r| rows(session.read_remote(step, r, "effects", TRIES), "key")).collect();
    let applied = (0..remotes).map(|r| rows(session.read_remote(step, r, "applied", TRIES), "op")).collect();
    CallsDrained { continued, pending, effects, applied, still_works, waited_s }
}

/// One call in each mode from `o` to a remote that answers; what went wrong, if anything.
fn probe(session: &mut Session<'_>, step: u64, o: usize) -> Option<String> {
    let mut problems = Vec::new();
    let mut tags = Vec::new();
    for dispatch in [Dispatch::Alarm, Dispatch::Direct] {
        let p = calls::probe(&mut session.model, step, o, dispatch);
        let tag = session.model.calls.calls.last().map(|c| c.tag.clone()).unwrap_or_default();
        if session.send_call_until_answered(&p, TRIES).is_none() {
            problems.push(format!("a new call ({tag}) could not be made"));
        } else {
            tags.push(tag);
        }
    }
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut missing = tags.clone();
    for _ in 0..PROBE_TIMEOUT.as_millis() / POLL.as_millis() + 1 {
        if let Some(rows) = continuations(session, step, o) {
            missing.retain(|t| !rows.iter().any(|r| &r.tag == t));
        }
        if missing.is_empty() || Instant::now() >= deadline {
            break;
        }
        thread::sleep(POLL);
    }
    if !missing.is_empty() {
        problems.push(format!("new calls {missing:?} were not continued within {PROBE_TIMEOUT:?}"));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

fn pending_of(session: &mut Session<'_>, step: u64, o: usize) -> Option<Vec<String>> {
    let value = session.send_call_until_answered(&calls::read(step, o, "pending"), TRIES)?;
    let all = value.as_array()?;
    Some(all.iter().map(|c| c["id"].as_str().map_or_else(|| c.to_string(), str::to_owned)).collect())
}

fn continuations(session: &mut Session<'_>, step: u64, o: usize) -> Option<Vec<Continued>> {
    let value = session.send_call_until_answered(&calls::read(step, o, "continuations"), TRIES)?;
    serde_json::from_value(value).ok()
}

/// `[{<key>: k, "n": n}, ...]` as a map.
fn rows(value: Option<Value>, key: &str) -> Option<BTreeMap<String, i64>> {
    let all = value?;
    Some(all.as_array()?.iter().map(|r| (r[key].as_str().unwrap_or("").to_owned(), r["n"].as_i64().unwrap_or(0))).collect())
}
