//! The faults of a run that explain a repeated firing or a failed request: the kills (by
//! the driver's clock) and the panics (by the panicking tasks' own firings, the runtime's
//! clock; both read the same machine clock).

use crate::chaos::call_plan::Remote;
use crate::chaos::model::Model;
use crate::chaos::plan::Handler;
use crate::chaos::wire::Fired;

/// A request whose answer a panic may have cut off: the panic at most this long before the
/// request was sent (the panicking object is reset once its writes are durable, and the
/// wasm instance all objects share is replaced), or while it was in flight.
pub const PANIC_RESET_MS: i64 = 1_000;

/// A call to a panicking remote panics this long after its request was answered at most
/// (its dispatch, or the zero-delay alarm that sends it); the driver knows no closer time.
pub const CALL_PANIC_WITHIN_MS: i64 = 2_000;

/// The faults that explain a retry or a failed request.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// `(killed, up again)`, driver's clock.
    pub kills: Vec<(i64, i64)>,
    /// When each panicking handler ran (runtime clock): the wasm instance was reset then.
    pub panics: Vec<i64>,
    /// When each call to a panicking remote may have panicked: from its request to
    /// [`CALL_PANIC_WITHIN_MS`] after its answer (driver's clock).
    pub call_panics: Vec<(i64, i64)>,
}

impl Faults {
    /// The faults of `model`, with the panics its firings show.
    #[must_use]
    pub fn of(model: &Model, fired: &[Vec<Fired>]) -> Self {
        let mut panics: Vec<i64> = model
            .objects
            .iter()
            .zip(fired)
            .flat_map(|(o, fired)| fired.iter().filter(|f| o.task(&f.label).is_some_and(|(_, t)| t.handler == Handler::Panic)).map(|f| f.fired_ms))
            .collect();
        panics.sort_unstable();
        let call_panics = model.calls.calls.iter().filter(|c| c.does == Remote::Panics && (c.made || c.uncertain)).map(|c| (c.sent_ms, c.done_ms + CALL_PANIC_WITHIN_MS)).collect();
        Faults { kills: model.kills.iter().map(|k| (k.killed_ms, k.up_ms)).collect(), panics, call_panics }
    }

    /// A kill or a panic between two firings of a task: the first was cut short.
    #[must_use]
    pub fn between(&self, from_ms: i64, to_ms: i64) -> Option<String> {
        if let Some((k, _)) = self.kills.iter().find(|(k, _)| (from_ms..=to_ms).contains(k)) {
            return Some(format!("kill at {k}"));
        }
        if let Some(p) = self.panics.iter().find(|p| (from_ms..=to_ms).contains(*p)) {
            return Some(format!("panic at {p}"));
        }
        self.call_panic(from_ms, to_ms)
    }

    /// A call to a panicking remote that may have panicked between `from_ms` and `to_ms`.
    fn call_panic(&self, from_ms: i64, to_ms: i64) -> Option<String> {
        self.call_panics.iter().find(|(a, b)| *a <= to_ms && *b >= from_ms).map(|(a, b)| format!("a remote's panic in {a} ..= {b}"))
    }

    /// A kill or panic that may have cut off a request sent at `sent_ms`, answered (or
    /// failed) at `done_ms`.
    #[must_use]
    pub fn cut_off(&self, sent_ms: i64, done_ms: i64) -> Option<String> {
        if let Some((k, _)) = self.kills.iter().find(|(k, up)| *k <= done_ms && *up >= sent_ms) {
            return Some(format!("kill at {k}"));
        }
        if let Some(p) = self.panics.iter().find(|p| (sent_ms - PANIC_RESET_MS..=done_ms).contains(*p)) {
            return Some(format!("panic at {p}"));
        }
        self.call_panic(sent_ms - PANIC_RESET_MS, done_ms)
    }

    /// A kill or panic at or after `ms`.
    #[must_use]
    pub fn after(&self, ms: i64) -> Option<String> {
        self.between(ms, i64::MAX)
    }
}
