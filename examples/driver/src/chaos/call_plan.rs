//! The call steps of the plan: origins (the sandbox's `CallerDO`) making lumenize-call
//! calls, in both dispatch modes, to remotes (`RemoteDO`) that answer, fail, panic, are
//! slow, or reply large or too large to store, with timeouts, several calls in one request,
//! and cancels of calls made before.
//!
//! Drawn from the plan's one generator, so they depend on the seed and the options only.
//! A call is named by the step that made it (and its place in the request): its tag
//! `c<step>` (`c<step>-<i>` for several), which is also the key of its remote effect.

use rand::rngs::ChaCha8Rng;
use rand::RngExt;
use serde::Serialize;

/// Origins (`CallerDO` objects) of a run.
pub const ORIGINS: usize = 2;
/// Remotes (`RemoteDO` objects) of a run.
pub const REMOTES: usize = 2;
/// Of the steps that send a request, one in this many makes or cancels a call.
pub const CALL_EVERY: u32 = 4;
/// The largest reply the remote returns that must fit (its JSON is a little larger).
pub const BIG_MAX_BYTES: usize = 200_000;
/// Replies from this size up are over lumenize-call's `MAX_REPLY_BYTES` (2,000,000): too
/// large to store, a typed error.
pub const TOO_BIG_BYTES: usize = 2_000_001;
/// The timeout most calls get: long enough that only a fault explains reaching it.
pub const LONG_TIMEOUT_MS: u64 = 30_000;
/// How many calls of its history per origin the plan remembers for cancels.
const HISTORY: usize = 8;

/// How a call leaves the origin (`lumenize_call::Dispatch`, as the sandbox reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dispatch {
    /// Through a zero-delay scheduled task.
    Alarm,
    /// At once, with a backstop task.
    Direct,
}

impl Dispatch {
    /// Its name in requests, tags and the report.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Dispatch::Alarm => "alarm",
            Dispatch::Direct => "direct",
        }
    }
}

/// What the remote does with a call (the sandbox's remote `Op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Remote {
    /// Adds one to the counter named by the call's tag (its effect) and replies with the
    /// new count: 1, applied once.
    Answers,
    /// Returns an error.
    Fails,
    /// Panics (resetting the worker's wasm instance).
    Panics,
    /// Waits `ms`, then counts as `Answers` does.
    Slow {
        /// How long.
        ms: u64,
    },
    /// Replies with a string of `bytes` bytes, which fits.
    Big {
        /// Its length.
        bytes: usize,
    },
    /// Replies with a string of `bytes` bytes, too large to store.
    TooBig {
        /// Its length.
        bytes: usize,
    },
}

impl Remote {
    /// Its name in the report.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Remote::Answers => "answers",
            Remote::Fails => "fails",
            Remote::Panics => "panics",
            Remote::Slow { .. } => "slow",
            Remote::Big { .. } => "large reply",
            Remote::TooBig { .. } => "reply too large",
        }
    }

    /// The `type` of the sandbox's remote operation it sends.
    #[must_use]
    pub fn op_kind(self) -> &'static str {
        match self {
            Remote::Answers => "count",
            Remote::Fails => "fail",
            Remote::Panics => "panic",
            Remote::Slow { .. } => "slow_count",
            Remote::Big { .. } | Remote::TooBig { .. } => "big",
        }
    }
}

/// One `call` request: `count` calls (tags `<tag>-<i>`) or one (tag `<tag>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakeCall {
    /// `c<step>`.
    pub tag: String,
    /// Which remote (`0 .. REMOTES`).
    pub remote: usize,
    /// How it leaves.
    pub dispatch: Dispatch,
    /// What the remote does.
    pub does: Remote,
    /// Its timeout.
    pub timeout_ms: Option<u64>,
    /// Several calls in one request.
    pub count: Option<u32>,
    /// Cancel the (first) call at once, in the same step, after its request was answered:
    /// it races the call's dispatch and the remote.
    pub cancel: bool,
}

/// A call step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOp {
    /// Make calls.
    Make(MakeCall),
    /// Cancel the call made by step `step` (`index`-th of its request) at this origin.
    Cancel {
        /// The step that made it.
        step: u64,
        /// Its place in that request.
        index: u32,
    },
}

/// The calls the plan made per origin, to cancel later.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallHistory {
    /// Per origin: `(step, calls in its request, whether its remote is slow)`.
    made: Vec<Vec<(u64, u32, bool)>>,
}

impl CallHistory {
    pub(crate) fn new() -> Self {
        CallHistory { made: vec![Vec::new(); ORIGINS] }
    }

    /// Draws a call step of `origin` at step `index`.
    pub(crate) fn draw(&mut self, rng: &mut ChaCha8Rng, index: u64, origin: usize, panics: bool) -> CallOp {
        let made = &self.made[origin];
        if !made.is_empty() && rng.random_ratio(3, 20) {
            // Mostly a call to a slow remote, which may still be in flight.
            let slow: Vec<&(u64, u32, bool)> = made.iter().filter(|m| m.2).collect();
            let (step, count, _) = if !slow.is_empty() && rng.random_ratio(3, 4) { *slow[rng.random_range(0..slow.len())] } else { made[rng.random_range(0..made.len())] };
            return CallOp::Cancel { step, index: rng.random_range(0..count.max(1)) };
        }
        let mut timeout_ms = match rng.random_range(0..3) {
            0 => None,
            _ => Some(LONG_TIMEOUT_MS),
        };
        let does = match rng.random_range(0..100) {
            0..=39 => Remote::Answers,
            40..=54 => Remote::Fails,
            55..=79 => {
                if rng.random_bool(0.5) {
                    // Times out: the reply comes at least three times the timeout later.
                    let ms = rng.random_range(1_500..3_000);
                    timeout_ms = Some(ms / 3);
                    Remote::Slow { ms }
                } else {
                    Remote::Slow { ms: rng.random_range(100..2_500) }
                }
            }
            80..=89 => Remote::Big { bytes: rng.random_range(10_000..BIG_MAX_BYTES) },
            90..=93 => Remote::TooBig { bytes: rng.random_range(TOO_BIG_BYTES..TOO_BIG_BYTES + 500_000) },
            _ if panics => Remote::Panics,
            _ => Remote::Answers,
        };
        let several = matches!(does, Remote::Answers | Remote::Fails | Remote::Slow { .. }) && rng.random_ratio(1, 8);
        let count = several.then(|| rng.random_range(2..=6));
        let dispatch = if rng.random_bool(0.5) { Dispatch::Alarm } else { Dispatch::Direct };
        let remote = rng.random_range(0..REMOTES);
        let cancel = (matches!(does, Remote::Slow { .. }) && rng.random_ratio(1, 4)) || rng.random_ratio(1, 20);
        let history = &mut self.made[origin];
        if history.len() == HISTORY {
            history.remove(0);
        }
        history.push((index, count.unwrap_or(1), matches!(does, Remote::Slow { .. })));
        CallOp::Make(MakeCall { tag: format!("c{index}"), remote, dispatch, does, timeout_ms, count, cancel })
    }
}
