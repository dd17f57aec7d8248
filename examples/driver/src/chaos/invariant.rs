//! The invariants a chaos run checks, and a broken one.

use std::fmt;

use serde::Serialize;

/// The invariants, in the order the report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Invariant {
    /// Every task that had to fire fired (and ended as it had to).
    Delivered,
    /// No firing started before its time.
    NeverEarly,
    /// No task fired twice, except attempts cut short by a kill or a panic.
    NoDuplicates,
    /// A task's first attempts run in the order they were scheduled (a burst: FIFO).
    Fifo,
    /// Nothing fired after a cancel or an upsert removed it.
    RemovedStayRemoved,
    /// Every dead task is one the run meant to kill, and carries its error.
    DeadExplained,
    /// The queue drained: only what was meant to remain is left, and it is there.
    Drained,
    /// Every invalid input got its typed 4xx.
    TypedRefusals,
    /// No request failed (5xx, no answer) except those a kill or a panic cut off.
    NoServerErrors,
    /// Nothing ran or was stored that the run did not ask for.
    NoStrangers,
    /// Every answer agrees with its request (due times, ids, upserts, cancels, requeues).
    Answers,
    /// Every object still answers and fires a new task at the end.
    StillWorks,
    /// Every call's continuation ran exactly once (at most once for a call whose request a
    /// fault cut off), and no call is left pending.
    ContinuedOnce,
    /// Every continuation received what the remote's behaviour implies, or what a cancel,
    /// kill or panic explains.
    CallOutcomes,
    /// Every remote effect was applied at most once.
    AppliedAtMostOnce,
    /// Every origin still makes calls, in both modes, that complete.
    CallsStillWork,
}

impl Invariant {
    /// Every invariant.
    pub const ALL: [Invariant; 16] = [
        Invariant::Delivered,
        Invariant::NeverEarly,
        Invariant::NoDuplicates,
        Invariant::Fifo,
        Invariant::RemovedStayRemoved,
        Invariant::DeadExplained,
        Invariant::Drained,
        Invariant::TypedRefusals,
        Invariant::NoServerErrors,
        Invariant::NoStrangers,
        Invariant::Answers,
        Invariant::StillWorks,
        Invariant::ContinuedOnce,
        Invariant::CallOutcomes,
        Invariant::AppliedAtMostOnce,
        Invariant::CallsStillWork,
    ];

    /// What it says.
    #[must_use]
    pub fn says(self) -> &'static str {
        match self {
            Invariant::Delivered => "every task that had to fire fired, and ended as it had to",
            Invariant::NeverEarly => "no firing started before its due time",
            Invariant::NoDuplicates => "no task fired twice, except attempts cut short by a kill or a panic",
            Invariant::Fifo => "the tasks of a burst first ran in the order they were scheduled",
            Invariant::RemovedStayRemoved => "nothing fired after a cancel or an upsert removed it",
            Invariant::DeadExplained => "every dead task is one the run meant to kill, and carries its error",
            Invariant::Drained => "the queue drained: only what was meant to remain is left, and it is all there",
            Invariant::TypedRefusals => "every invalid input got its typed 4xx",
            Invariant::NoServerErrors => "no request failed (5xx, no answer) except those a kill or a panic cut off",
            Invariant::NoStrangers => "nothing ran or was stored that the run did not ask for",
            Invariant::Answers => "every answer agrees with its request",
            Invariant::StillWorks => "every object still answers and fires a new task",
            Invariant::ContinuedOnce => "every call's continuation ran exactly once",
            Invariant::CallOutcomes => "every continuation got what the remote's behaviour implies (or a cancel or fault explains)",
            Invariant::AppliedAtMostOnce => "every remote effect was applied at most once",
            Invariant::CallsStillWork => "every origin still makes calls that complete, in both modes",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = format!("{self:?}");
        let mut out = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        }
        f.write_str(&out)
    }
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which.
    pub invariant: Invariant,
    /// The object's name, if it concerns one.
    pub object: Option<String>,
    /// What exactly.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.object {
            Some(o) => write!(f, "{}: {o}: {}", self.invariant, self.detail),
            None => write!(f, "{}: {}", self.invariant, self.detail),
        }
    }
}
