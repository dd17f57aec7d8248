//! The invariants of the calls of a chaos run, checked at the end against what the origins
//! and remotes recorded: every continuation (the sandbox's `continuations` table, by tag),
//! the calls left pending, and every remote's effects (one counter per counting call,
//! named by its tag) and applications (per kind of operation). Pure: the tests feed it
//! made-up records.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::chaos::call_drain::CallsDrained;
use crate::chaos::call_plan::Remote;
use crate::chaos::calls::{fail_message, Call, Continued, Got, Want};
use crate::chaos::faults::Faults;
use crate::chaos::invariant::{Invariant, Violation};
use crate::chaos::model::Model;

/// The answer of a remote reset while it applied a call (lumenize-call's `INTERRUPTED`).
const INTERRUPTED: &str = "may or may not have taken effect";

/// What the call checks counted (for the report).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallTally {
    /// Continuations recorded.
    pub continued: u32,
    /// Continuations by what they received.
    pub outcomes: BTreeMap<String, u32>,
    /// Continuations that received `Cancelled` after a cancel.
    pub cancelled: u32,
    /// Continuations that received something else than the remote's behaviour implies,
    /// explained by a kill or a panic (a timeout, or "may or may not have taken effect").
    pub explained: u32,
    /// Remote effects applied (counters at 1).
    pub effects: u32,
}

/// Checks the calls of `model` against what the drain read; the violations, and what was
/// counted.
#[must_use]
pub fn check_calls(model: &Model, drained: &CallsDrained, faults: &Faults) -> (Vec<Violation>, CallTally) {
    let mut c = CallChecker { model, faults, violations: Vec::new(), tally: CallTally::default() };
    for (o, name) in model.calls.origins.iter().enumerate() {
        c.origin(o, name, drained);
    }
    for (r, name) in model.calls.remotes.iter().enumerate() {
        c.remote(r, name, drained);
    }
    for (o, problem) in &model.call_answer_problems {
        c.fail(Invariant::Answers, model.calls.origins.get(*o), problem.clone());
    }
    (c.violations, c.tally)
}

struct CallChecker<'a> {
    model: &'a Model,
    faults: &'a Faults,
    violations: Vec<Violation>,
    tally: CallTally,
}

impl CallChecker<'_> {
    fn fail(&mut self, invariant: Invariant, object: Option<&String>, detail: String) {
        self.violations.push(Violation { invariant, object: object.cloned(), detail });
    }

    fn origin(&mut self, o: usize, name: &String, drained: &CallsDrained) {
        let effects = |r: usize| drained.effects.get(r).and_then(Option::as_ref);
        let object = Some(name);
        if let Some(problem) = drained.still_works.get(o).and_then(Option::as_ref) {
            self.fail(Invariant::CallsStillWork, object, problem.clone());
        }
        let pending = drained.pending.get(o).map_or(&[][..], Vec::as_slice);
        if !pending.is_empty() {
            let first: Vec<&String> = pending.iter().take(3).collect();
            self.fail(Invariant::ContinuedOnce, object, format!("{} calls still pending after the drain (first: {first:?})", pending.len()));
        }
        let Some(Some(rows)) = drained.continued.get(o) else {
            self.fail(Invariant::ContinuedOnce, object, "it did not answer `continuations` after the drain".into());
            return;
        };
        let mut by_tag: HashMap<&str, Vec<&Continued>> = HashMap::new();
        for row in rows {
            by_tag.entry(row.tag.as_str()).or_default().push(row);
        }
        for (tag, rows) in &by_tag {
            if self.model.calls.by_tag(tag).is_none_or(|call| call.origin != o) {
                self.fail(Invariant::ContinuedOnce, object, format!("a continuation ran for {tag:?}, a call the run never made here ({})", short(&rows[0].result)));
            }
        }
        for call in self.model.calls.calls.iter().filter(|c| c.origin == o) {
            let rows = by_tag.get(call.tag.as_str()).map_or(&[][..], Vec::as_slice);
            self.tally.continued += u32::try_from(rows.len()).unwrap_or(u32::MAX);
            self.once(call, rows, object);
            for row in rows {
                self.outcome(call, row, object);
                // A reply of the count 1 is the effect's: it must be recorded.
                if Got::of(&row.result) == Got::Count(1) {
                    if let Some(effects) = effects(call.remote) {
                        if !effects.contains_key(&call.tag) {
                            self.fail(Invariant::CallOutcomes, object, format!("{} was continued with Ok(1), but its remote recorded no effect under its tag", describe(call)));
                        }
                    }
                }
            }
        }
    }

    /// Exactly once for a call that was made, at most once for one a fault may have cut off,
    /// never for one that was refused.
    fn once(&mut self, call: &Call, rows: &[&Continued], object: Option<&String>) {
        let what = describe(call);
        match (rows.len(), call.made, call.uncertain) {
            (1, true, _) | (0 | 1, false, true) | (0, false, false) => {}
            (0, true, _) => self.fail(Invariant::ContinuedOnce, object, format!("{what} was never continued")),
            (n, _, _) => {
                let results: Vec<String> = rows.iter().map(|r| format!("{} at {}", short(&r.result), r.at_ms)).collect();
                self.fail(Invariant::ContinuedOnce, object, format!("{what} was continued {n} times: {}", results.join(", ")));
            }
        }
    }

    /// What the continuation received: what the remote's behaviour implies, or explained.
    fn outcome(&mut self, call: &Call, row: &Continued, object: Option<&String>) {
        let got = Got::of(&row.result);
        *self.tally.outcomes.entry(got.name().to_owned()).or_insert(0) += 1;
        let what = describe(call);
        let base = call.tag.split('-').next().unwrap_or(&call.tag);
        let wanted = match (call.want, &got) {
            (Want::Count, Got::Count(n)) => {
                if *n != 1 {
                    self.fail(Invariant::AppliedAtMostOnce, object, format!("{what} replied the count {n}: its key was applied {n} times"));
                }
                true
            }
            (Want::Text(bytes), Got::Text(len)) => bytes == *len,
            (Want::Error, Got::Remote { message, panicked: false }) => *message == fail_message(base),
            (Want::Panicked, Got::Remote { panicked: true, .. }) | (Want::TooLarge, Got::TooLarge) => true,
            (Want::Timeout, Got::Timeout) => {
                let deadline = call.sent_ms + i64::try_from(call.timeout_ms.unwrap_or(0)).unwrap_or(i64::MAX);
                if row.at_ms < deadline {
                    self.fail(Invariant::CallOutcomes, object, format!("{what} timed out at {}, before its deadline {deadline}", row.at_ms));
                }
                true
            }
            _ => false,
        };
        // A cancel that found nothing pending came after the continuation.
        if let Some(k) = call.cancels.iter().find(|k| k.found == Some(false) && k.done_ms < row.at_ms) {
            self.fail(Invariant::CallOutcomes, object, format!("{what}: a cancel answered \"not pending\" at {}, but the continuation ran later, at {}", k.done_ms, row.at_ms));
        }
        if wanted {
            return;
        }
        if got == Got::Cancelled {
            if call.cancels.iter().any(|k| k.found != Some(false) && k.sent_ms <= row.at_ms) {
                self.tally.cancelled += 1;
            } else {
                self.fail(Invariant::CallOutcomes, object, format!("{what} was continued with Cancelled at {}, but no cancel found it pending", row.at_ms));
            }
            return;
        }
        let fault = self.faults.between(call.sent_ms, row.at_ms);
        let explainable = match &got {
            Got::Timeout => call.timeout_ms.is_some(),
            Got::Remote { message, .. } => message.contains(INTERRUPTED),
            _ => false,
        };
        match fault {
            Some(_) if explainable => self.tally.explained += 1,
            fault => {
                let why = fault.map_or_else(|| "no kill or panic in between".to_owned(), |f| format!("which the {f} does not explain"));
                self.fail(Invariant::CallOutcomes, object, format!("{what} was continued at {} with {}; expected {:?} ({why})", row.at_ms, short(&row.result), call.want));
            }
        }
    }

    /// Each counter at most 1 and named by a counting call to this remote; each kind of
    /// operation applied at most as often as calls of it were made to this remote.
    fn remote(&mut self, r: usize, name: &String, drained: &CallsDrained) {
        let object = Some(name);
        let calls: Vec<&Call> = self.model.calls.calls.iter().filter(|c| c.remote == r && (c.made || c.uncertain)).collect();
        match drained.effects.get(r).and_then(Option::as_ref) {
            None => self.fail(Invariant::AppliedAtMostOnce, object, "it did not answer `effects` after the drain".into()),
            Some(effects) => {
                for (key, n) in effects {
                    let call = calls.iter().find(|c| c.tag == *key && matches!(c.does, Remote::Answers | Remote::Slow { .. }));
                    match call {
                        None => self.fail(Invariant::AppliedAtMostOnce, object, format!("an effect under {key:?}, which no counting call to it carried ({n} times)")),
                        Some(c) if *n > 1 => self.fail(Invariant::AppliedAtMostOnce, object, format!("{} was applied {n} times", describe(c))),
                        Some(_) => self.tally.effects += 1,
                    }
                }
            }
        }
        let Some(applied) = drained.applied.get(r).and_then(Option::as_ref) else {
            self.fail(Invariant::AppliedAtMostOnce, object, "it did not answer `applied` after the drain".into());
            return;
        };
        for (kind, n) in applied {
            let sent = calls.iter().filter(|c| c.does.op_kind() == kind).count();
            if usize::try_from(*n).unwrap_or(usize::MAX) > sent {
                self.fail(Invariant::AppliedAtMostOnce, object, format!("operations of kind {kind:?} were applied {n} times, for {sent} calls"));
            }
        }
    }
}

fn describe(call: &Call) -> String {
    let timeout = call.timeout_ms.map_or_else(|| "no timeout".to_owned(), |t| format!("timeout {t} ms"));
    format!("call {:?} ({:?}, remote {:?}, {timeout}, id {:?}, sent at {})", call.tag, call.dispatch, call.does, call.id.as_deref().unwrap_or("?"), call.sent_ms)
}

fn short(v: &serde_json::Value) -> String {
    let text = v.to_string();
    if text.len() > 200 {
        format!("{}... ({} bytes)", text.chars().take(120).collect::<String>(), text.len())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::call_plan::{CallOp, Dispatch, MakeCall};
    use crate::chaos::calls;
    use crate::chaos::model::{Kill, Outcome};
    use serde_json::json;

    /// One origin that made `c1` (answers) and `c2` (slow, times out) to remote 0.
    fn model() -> Model {
        let mut m = Model::new("o", 1);
        for (step, does, timeout_ms) in [(1, Remote::Answers, None), (2, Remote::Slow { ms: 1_500 }, Some(500))] {
            let op = CallOp::Make(MakeCall { tag: format!("c{step}"), remote: 0, dispatch: Dispatch::Direct, does, timeout_ms, count: None, cancel: false });
            let p = calls::prepare(&mut m, step, 0, &op);
            calls::absorb(&mut m, &p, 1_000, 1_010, Outcome::Ok, Some(&json!([{ "id": format!("id{step}") }])));
        }
        m
    }

    fn row(tag: &str, result: serde_json::Value, at_ms: i64) -> Continued {
        Continued { tag: tag.into(), result, at_ms }
    }

    fn drained(rows: Vec<Continued>, effects: &[(&str, i64)]) -> CallsDrained {
        let effects: BTreeMap<String, i64> = effects.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect();
        let applied = BTreeMap::from([("count".to_owned(), 1), ("slow_count".to_owned(), 1)]);
        CallsDrained {
            continued: vec![Some(rows), Some(Vec::new())],
            pending: vec![Vec::new(), Vec::new()],
            effects: vec![Some(effects), Some(BTreeMap::new())],
            applied: vec![Some(applied), Some(BTreeMap::new())],
            still_works: vec![None, None],
            waited_s: 0.0,
        }
    }

    fn broken(m: &Model, d: &CallsDrained) -> Vec<Invariant> {
        let faults = Faults { kills: m.kills.iter().map(|k| (k.killed_ms, k.up_ms)).collect(), ..Faults::default() };
        let mut v: Vec<Invariant> = check_calls(m, d, &faults).0.into_iter().map(|v| v.invariant).collect();
        v.dedup();
        v
    }

    fn good() -> Vec<Continued> {
        vec![row("c1", json!({"Ok": 1}), 1_020), row("c2", json!({"Err": {"kind": "timeout"}}), 1_600)]
    }

    #[test]
    fn a_clean_record_passes() {
        assert_eq!(broken(&model(), &drained(good(), &[("c1", 1), ("c2", 1)])), []);
    }

    #[test]
    fn a_continuation_twice_or_never_is_caught() {
        let mut rows = good();
        rows.push(row("c1", json!({"Ok": 1}), 1_030));
        assert_eq!(broken(&model(), &drained(rows, &[("c1", 1)])), [Invariant::ContinuedOnce]);
        assert_eq!(broken(&model(), &drained(good()[..1].to_vec(), &[("c1", 1)])), [Invariant::ContinuedOnce]);
    }

    #[test]
    fn an_effect_applied_twice_is_caught() {
        let rows = vec![row("c1", json!({"Ok": 2}), 1_020), good()[1].clone()];
        assert_eq!(broken(&model(), &drained(rows, &[("c1", 2)])), [Invariant::AppliedAtMostOnce]);
    }

    #[test]
    fn a_wrong_outcome_is_caught_unless_a_kill_explains_it() {
        let rows = vec![row("c1", json!({"Err": {"kind": "remote", "message": format!("the remote was reset: {INTERRUPTED}"), "panicked": false}}), 3_000), good()[1].clone()];
        let mut m = model();
        assert_eq!(broken(&m, &drained(rows.clone(), &[])), [Invariant::CallOutcomes]);
        m.kills.push(Kill { killed_ms: 2_000, up_ms: 2_500, mid_request: false });
        assert_eq!(broken(&m, &drained(rows, &[])), []);
        let early = vec![good()[0].clone(), row("c2", json!({"Err": {"kind": "timeout"}}), 1_200)];
        assert_eq!(broken(&model(), &drained(early, &[("c1", 1)])), [Invariant::CallOutcomes]);
    }
}
