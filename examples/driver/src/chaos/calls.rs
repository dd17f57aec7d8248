//! The driver's record of the calls of a chaos run: every call it asked an origin to make,
//! what the remote's behaviour implies for its continuation, every cancel with its answer;
//! and the requests to the origins (`/calls/<origin>/call`, `/cancel`), built from the
//! plan's [`CallOp`] and taken into the record.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::chaos::call_plan::{CallOp, Dispatch, MakeCall, Remote};
use crate::chaos::model::{Expect, Model, Outcome, Request};

/// What a call's continuation must receive, given what its remote does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Want {
    /// `Ok(1)`: the remote counted the call's key once and replied the count.
    Count,
    /// `Ok` with a string of this many bytes.
    Text(usize),
    /// `Err(Remote { message, panicked: false })`, the message the remote returned.
    Error,
    /// `Err(Remote { panicked: true })`.
    Panicked,
    /// `Err(Timeout)`.
    Timeout,
    /// `Err(TooLarge)`.
    TooLarge,
}

impl Want {
    /// What a call to a remote that does `does`, with `timeout_ms`, must end with.
    #[must_use]
    pub fn of(does: Remote, timeout_ms: Option<u64>) -> Want {
        match does {
            Remote::Answers => Want::Count,
            Remote::Fails => Want::Error,
            Remote::Panics => Want::Panicked,
            Remote::Slow { ms } if timeout_ms.is_some_and(|t| t < ms) => Want::Timeout,
            Remote::Slow { .. } => Want::Count,
            Remote::Big { bytes } => Want::Text(bytes),
            Remote::TooBig { .. } => Want::TooLarge,
        }
    }
}

/// The error message a failing remote returns for the call tagged `tag`.
#[must_use]
pub fn fail_message(tag: &str) -> String {
    format!("planned failure of {tag}")
}

/// One cancel of a call.
#[derive(Debug, Clone, Serialize)]
pub struct Cancel {
    /// When it was sent (driver's clock).
    pub sent_ms: i64,
    /// When its answer came.
    pub done_ms: i64,
    /// Its answer: whether the call was pending; `None` when the request got no answer.
    pub found: Option<bool>,
}

/// One call the run asked for.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    /// Its tag: the continuation records it, and its remote effect's key is it.
    pub tag: String,
    /// The step that made it (drain probes: after the last step).
    pub step: u64,
    /// Which origin.
    pub origin: usize,
    /// Which remote.
    pub remote: usize,
    /// How it left.
    pub dispatch: Dispatch,
    /// What its remote does.
    pub does: Remote,
    /// Its timeout.
    pub timeout_ms: Option<u64>,
    /// What its continuation must receive.
    pub want: Want,
    /// Its id, once the answer gave it.
    pub id: Option<String>,
    /// When its request was sent, and answered (driver's clock).
    pub sent_ms: i64,
    /// When its request was answered (or failed).
    pub done_ms: i64,
    /// The request was answered 2xx: the call was made, and must be continued once.
    pub made: bool,
    /// The request got no answer (a kill cut it off): the call may or may not exist.
    pub uncertain: bool,
    /// Its cancels.
    pub cancels: Vec<Cancel>,
    /// A call the drain made to see that the origin still works.
    pub probe: bool,
}

/// The calls of a run.
#[derive(Debug, Clone, Default)]
pub struct CallsModel {
    /// The origins' names (URL segments under `/calls/`).
    pub origins: Vec<String>,
    /// The remotes' names (under `/remote/`).
    pub remotes: Vec<String>,
    /// Every call, in order.
    pub calls: Vec<Call>,
    by_tag: HashMap<String, usize>,
    by_step: HashMap<(usize, u64, u32), usize>,
}

impl CallsModel {
    /// `origins` origins `<prefix>-c<i>` and `remotes` remotes `<prefix>-r<i>`.
    #[must_use]
    pub fn new(prefix: &str, origins: usize, remotes: usize) -> Self {
        CallsModel {
            origins: (0..origins).map(|i| format!("{prefix}-c{i}")).collect(),
            remotes: (0..remotes).map(|i| format!("{prefix}-r{i}")).collect(),
            ..CallsModel::default()
        }
    }

    /// The call tagged `tag`.
    #[must_use]
    pub fn by_tag(&self, tag: &str) -> Option<&Call> {
        self.by_tag.get(tag).map(|&i| &self.calls[i])
    }

    fn add(&mut self, call: Call, index: u32) -> usize {
        let i = self.calls.len();
        self.by_tag.insert(call.tag.clone(), i);
        self.by_step.insert((call.origin, call.step, index), i);
        self.calls.push(call);
        i
    }
}

/// A call request ready to send.
#[derive(Debug, Clone)]
pub(crate) struct CallPrepared {
    pub(crate) step: u64,
    pub(crate) origin: usize,
    pub(crate) route: &'static str,
    pub(crate) body: String,
    pub(crate) what: String,
    effect: CallEffect,
}

#[derive(Debug, Clone)]
enum CallEffect {
    /// Calls `first .. first + n` of the model.
    Make { first: usize, n: usize },
    /// A cancel of call `call` (if the plan's call is known), by id.
    Cancel { call: Option<usize> },
}

/// Builds the request of `op` for `origin`, adding the calls it makes to the model.
pub(crate) fn prepare(model: &mut Model, step: u64, origin: usize, op: &CallOp) -> CallPrepared {
    match op {
        CallOp::Make(m) => make(model, step, origin, m, false),
        CallOp::Cancel { step: made, index } => {
            let call = model.calls.by_step.get(&(origin, *made, *index)).copied();
            let id = call.and_then(|c| model.calls.calls[c].id.clone()).unwrap_or_else(|| format!("unknown-{made}-{index}"));
            CallPrepared { step, origin, route: "cancel", body: json!(id).to_string(), what: "call: cancel".into(), effect: CallEffect::Cancel { call } }
        }
    }
}

/// A call the drain makes to see that `origin` still works: the remote answers.
pub(crate) fn probe(model: &mut Model, step: u64, origin: usize, dispatch: Dispatch) -> CallPrepared {
    let tag = format!("probe-c{origin}-{}", dispatch.name());
    let m = MakeCall { tag, remote: 0, dispatch, does: Remote::Answers, timeout_ms: Some(super::call_plan::LONG_TIMEOUT_MS), count: None, cancel: false };
    let mut p = make(model, step, origin, &m, true);
    p.what = "call (drain probe)".into();
    p
}

/// A request that only reads an origin (`continuations`, `pending`), for the drain.
pub(crate) fn read(step: u64, origin: usize, route: &'static str) -> CallPrepared {
    CallPrepared { step, origin, route, body: "{}".into(), what: format!("call: {route} (drain)"), effect: CallEffect::Cancel { call: None } }
}

fn make(model: &mut Model, step: u64, origin: usize, m: &MakeCall, probe: bool) -> CallPrepared {
    let tags: Vec<String> = match m.count {
        Some(n) => (0..n).map(|i| format!("{}-{i}", m.tag)).collect(),
        None => vec![m.tag.clone()],
    };
    let first = model.calls.calls.len();
    for (i, tag) in tags.iter().enumerate() {
        let call = Call {
            tag: tag.clone(),
            step,
            origin,
            remote: m.remote,
            dispatch: m.dispatch,
            does: m.does,
            timeout_ms: m.timeout_ms,
            want: Want::of(m.does, m.timeout_ms),
            id: None,
            sent_ms: 0,
            done_ms: 0,
            made: false,
            uncertain: false,
            cancels: Vec::new(),
            probe,
        };
        model.calls.add(call, u32::try_from(i).unwrap_or(u32::MAX));
    }
    let mut op = match m.does {
        Remote::Answers => json!({ "key": m.tag }),
        Remote::Fails => json!({ "message": fail_message(&m.tag) }),
        Remote::Panics => json!({}),
        Remote::Slow { ms } => json!({ "key": m.tag, "ms": ms }),
        Remote::Big { bytes } | Remote::TooBig { bytes } => json!({ "bytes": bytes }),
    };
    op["type"] = json!(m.does.op_kind());
    let mut body = json!({ "name": model.calls.remotes[m.remote], "op": op, "tag": m.tag, "dispatch": m.dispatch });
    if let Some(t) = m.timeout_ms {
        body["timeout_ms"] = json!(t);
    }
    if let Some(n) = m.count {
        body["count"] = json!(n);
    }
    let mode = m.dispatch.name();
    let what = format!("call: {mode}, {}{}", m.does.name(), if m.count.is_some() { ", several" } else { "" });
    CallPrepared { step, origin, route: "call", body: body.to_string(), what, effect: CallEffect::Make { first, n: tags.len() } }
}

/// Takes the answer of `p` into the model, and logs the request.
pub(crate) fn absorb(model: &mut Model, p: &CallPrepared, sent_ms: i64, done_ms: i64, outcome: Outcome, value: Option<&Value>) {
    match &p.effect {
        CallEffect::Make { first, n } => {
            let ids: Vec<Option<String>> = value.and_then(Value::as_array).map(|a| a.iter().map(|c| c["id"].as_str().map(str::to_owned)).collect()).unwrap_or_default();
            if value.is_some() && ids.len() != *n {
                let got = value.map(ToString::to_string).unwrap_or_default();
                model.problem_calls(p.origin, format!("step {}: a call request of {n} calls answered {}", p.step, got.chars().take(300).collect::<String>()));
            }
            for (k, call) in model.calls.calls[*first..*first + *n].iter_mut().enumerate() {
                call.sent_ms = sent_ms;
                call.done_ms = done_ms;
                call.made = outcome == Outcome::Ok;
                call.uncertain = outcome.cut_off();
                call.id = ids.get(k).cloned().flatten();
            }
        }
        CallEffect::Cancel { call: Some(c) } => {
            let found = match (&outcome, value) {
                (Outcome::Ok, Some(v)) => v.as_bool(),
                _ => None,
            };
            if outcome == Outcome::Ok && found.is_none() {
                model.problem_calls(p.origin, format!("step {}: a cancel answered {:?}, not a boolean", p.step, value.map(ToString::to_string)));
            }
            model.calls.calls[*c].cancels.push(Cancel { sent_ms, done_ms, found });
        }
        CallEffect::Cancel { call: None } => {}
    }
    model.requests.push(Request { step: p.step, object: p.origin, calls: true, what: p.what.clone(), sent_ms, done_ms, expect: Expect::Ok, outcome });
}

/// One continuation an origin recorded (the sandbox's `continuations` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Continued {
    /// The call's tag.
    pub tag: String,
    /// What it received: `{"Ok": ..}` or `{"Err": {"kind": ..}}`.
    pub result: Value,
    /// When it ran (runtime clock).
    pub at_ms: i64,
}

/// A result as the checks read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// `Ok` with a number.
    Count(i64),
    /// `Ok` with a string of this length.
    Text(usize),
    /// `Err(Remote)`.
    Remote {
        /// Its message.
        message: String,
        /// Whether the remote panicked.
        panicked: bool,
    },
    /// `Err(Timeout)`.
    Timeout,
    /// `Err(Cancelled)`.
    Cancelled,
    /// `Err(TooLarge)`.
    TooLarge,
    /// Anything else (another error kind, another reply).
    Other(String),
}

impl Got {
    /// Reads a continuation's result.
    #[must_use]
    pub fn of(result: &Value) -> Got {
        if let Some(ok) = result.get("Ok") {
            return match ok {
                Value::Number(n) if n.as_i64().is_some() => Got::Count(n.as_i64().unwrap_or(0)),
                Value::String(s) => Got::Text(s.len()),
                other => Got::Other(format!("Ok({})", other.to_string().chars().take(100).collect::<String>())),
            };
        }
        let err = &result["Err"];
        match err["kind"].as_str() {
            Some("remote") => Got::Remote { message: err["message"].as_str().unwrap_or("").to_owned(), panicked: err["panicked"].as_bool().unwrap_or(false) },
            Some("timeout") => Got::Timeout,
            Some("cancelled") => Got::Cancelled,
            Some("too_large") => Got::TooLarge,
            _ => Got::Other(result.to_string().chars().take(300).collect()),
        }
    }

    /// Its name in the report.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Got::Count(_) | Got::Text(_) => "ok",
            Got::Remote { panicked: false, .. } => "remote error",
            Got::Remote { panicked: true, .. } => "remote panicked",
            Got::Timeout => "timeout",
            Got::Cancelled => "cancelled",
            Got::TooLarge => "too large",
            Got::Other(_) => "other",
        }
    }
}
