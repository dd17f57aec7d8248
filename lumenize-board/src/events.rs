//! The recent lifecycle events the board keeps while mounted: a bounded ring fed by
//! `Alarms::on_event`.

use std::collections::VecDeque;

use lumenize_alarms::core::Event;
use serde::Serialize;

/// How many events the ring keeps (the oldest go first).
pub const EVENTS_KEPT: usize = 200;

/// One event as the board keeps it: strings cut to bounded lengths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Seen {
    /// When the board saw it (Unix milliseconds).
    pub(crate) at_ms: i64,
    /// scheduled, started, succeeded, retrying, dead or cut_short.
    pub(crate) kind: &'static str,
    pub(crate) task_id: String,
    /// How late the task started (started and cut_short).
    pub(crate) lateness_ms: Option<i64>,
    /// The error (retrying, dead) or the next time (succeeded, retrying).
    pub(crate) error: Option<String>,
    pub(crate) next_ms: Option<i64>,
}

impl Seen {
    /// The event as kept, or `None` for a kind this version does not know.
    pub(crate) fn of(event: &Event<'_>, at_ms: i64) -> Option<Seen> {
        let id = |t: &lumenize_alarms::Scheduled| crate::escape::clip(&t.id, 200).0.to_owned();
        let error = |e: &str| Some(crate::escape::clip(e, 300).0.to_owned());
        let seen = |kind, task, lateness_ms, error, next_ms| Some(Seen { at_ms, kind, task_id: id(task), lateness_ms, error, next_ms });
        match *event {
            Event::Scheduled(task) => seen("scheduled", task, None, None, None),
            Event::Started { task, lateness_ms } => seen("started", task, Some(lateness_ms), None, None),
            Event::Succeeded { task, next_ms } => seen("succeeded", task, None, None, next_ms),
            Event::Retrying { task, error: e, next_ms } => seen("retrying", task, None, error(e), Some(next_ms)),
            Event::Dead { task, error: e } => seen("dead", task, None, error(e), None),
            Event::CutShort { task, lateness_ms } => seen("cut_short", task, Some(lateness_ms), None, None),
            _ => None,
        }
    }
}

/// The ring.
#[derive(Debug, Default)]
pub(crate) struct Ring(VecDeque<Seen>);

impl Ring {
    pub(crate) fn push(&mut self, seen: Seen) {
        if self.0.len() == EVENTS_KEPT {
            self.0.pop_front();
        }
        self.0.push_back(seen);
    }

    /// The kept events, newest first.
    pub(crate) fn newest_first(&self) -> impl Iterator<Item = &Seen> {
        self.0.iter().rev()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest() {
        let mut ring = Ring::default();
        for i in 0..EVENTS_KEPT as i64 + 5 {
            ring.push(Seen { at_ms: i, kind: "started", task_id: "t".into(), lateness_ms: Some(i), error: None, next_ms: None });
        }
        let kept: Vec<i64> = ring.newest_first().map(|s| s.at_ms).collect();
        assert_eq!(kept.len(), EVENTS_KEPT);
        assert_eq!((kept[0], kept[EVENTS_KEPT - 1]), (EVENTS_KEPT as i64 + 4, 5));
    }
}
