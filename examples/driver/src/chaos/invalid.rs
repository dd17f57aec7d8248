//! The invalid inputs a chaos run mixes in: each must be refused with a 400 whose body is
//! the typed error that names the problem (the library's `Error` text, or the sandbox's
//! "bad request body" for what does not decode), and must store nothing.

use rand::rngs::ChaCha8Rng;
use rand::RngExt;
use serde_json::json;

/// The latest time lumenize-alarms accepts (`lumenize_alarms::core::MAX_TIME_MS`), the
/// last one workerd arms. The driver does not depend on the library: it checks the edge
/// from outside, so a change of the constant shows up here.
pub const MAX_TIME_MS: i64 = 9_223_372_036_854;

/// Routes that decode a JSON body.
const ROUTES: [&str; 10] = ["schedule", "schedule_raw", "schedule_many", "burst", "cancel", "requeue", "get", "list", "run_at", "defer"];

/// One invalid input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// A cron expression that does not parse.
    BadCron,
    /// A cron expression with no occurrence (the 30th of February).
    CronNeverFires,
    /// `at_ms: -1`.
    AtNegative,
    /// `at_ms: MAX_TIME_MS + 1`, one past the edge.
    AtAfterMax,
    /// A delay that ends after the range.
    AfterOutOfRange,
    /// `every_ms: 0`.
    EveryZero,
    /// An interval whose first tick is after the range.
    EveryOutOfRange,
    /// A payload of more than 1,000,000 bytes.
    PayloadTooLarge,
    /// An explicit id of 513 bytes.
    IdTooLong,
    /// A body that is not JSON, to this route.
    BadJson {
        /// The route.
        route: &'static str,
    },
    /// A field of the wrong type.
    WrongShape,
    /// A task variant the sandbox does not have.
    UnknownTask,
    /// A burst at a time past the range (one bad task stores none).
    BurstAfterMax {
        /// Through `schedule_many`.
        many: bool,
    },
    /// The test hook at a time past the range.
    RunAtAfterMax,
    /// A time at an edge of `i64` or of what a JavaScript number holds exactly.
    AtExtreme {
        /// `i64::MIN`, `i64::MAX`, 2^53 or 2^53 + 1.
        ms: i64,
    },
    /// A delay or an interval of `u64::MAX` milliseconds.
    DurationMax {
        /// An interval, rather than a delay.
        every: bool,
    },
    /// The test hook at `i64::MIN`.
    RunAtMin,
    /// A cron expression in a time zone no build knows (`When::cron_in`).
    UnknownZone,
    /// An explicit id of 513 bytes of multi-byte characters (171 times a 3-byte one).
    UnicodeIdTooLong,
    /// A `schedule_many` batch whose last task has a time past the range: none is stored.
    ManyAfterMax,
    /// `defer` from outside a handler: no handler of that task is running.
    DeferOutside,
}

/// The times [`Invalid::AtExtreme`] draws from.
const EXTREME_TIMES: [i64; 4] = [i64::MIN, i64::MAX, 1 << 53, (1 << 53) + 1];

impl Invalid {
    /// One drawn at random.
    pub(crate) fn draw(rng: &mut ChaCha8Rng) -> Invalid {
        match rng.random_range(0..21) {
            0 => Invalid::BadCron,
            1 => Invalid::CronNeverFires,
            2 => Invalid::AtNegative,
            3 => Invalid::AtAfterMax,
            4 => Invalid::AfterOutOfRange,
            5 => Invalid::EveryZero,
            6 => Invalid::EveryOutOfRange,
            7 => Invalid::PayloadTooLarge,
            8 => Invalid::IdTooLong,
            9 => Invalid::BadJson { route: ROUTES[rng.random_range(0..ROUTES.len())] },
            10 => Invalid::WrongShape,
            11 => Invalid::UnknownTask,
            12 => Invalid::BurstAfterMax { many: rng.random_bool(0.5) },
            13 => Invalid::RunAtAfterMax,
            14 => Invalid::AtExtreme { ms: EXTREME_TIMES[rng.random_range(0..EXTREME_TIMES.len())] },
            15 => Invalid::DurationMax { every: rng.random_bool(0.5) },
            16 => Invalid::RunAtMin,
            17 => Invalid::UnknownZone,
            18 => Invalid::UnicodeIdTooLong,
            19 => Invalid::ManyAfterMax,
            _ => Invalid::DeferOutside,
        }
    }

    /// A short name, for the counts.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Invalid::BadCron => "bad cron",
            Invalid::CronNeverFires => "cron never fires",
            Invalid::AtNegative => "time before 1970",
            Invalid::AtAfterMax => "time MAX+1",
            Invalid::AfterOutOfRange => "delay past the range",
            Invalid::EveryZero => "zero interval",
            Invalid::EveryOutOfRange => "interval past the range",
            Invalid::PayloadTooLarge => "payload > 1 MB",
            Invalid::IdTooLong => "id > 512 bytes",
            Invalid::BadJson { .. } => "body not JSON",
            Invalid::WrongShape => "field of the wrong type",
            Invalid::UnknownTask => "unknown task variant",
            Invalid::BurstAfterMax { .. } => "burst at MAX+1",
            Invalid::RunAtAfterMax => "test hook at MAX+1",
            Invalid::AtExtreme { .. } => "time at an i64 or 2^53 edge",
            Invalid::DurationMax { every: false } => "delay u64::MAX ms",
            Invalid::DurationMax { every: true } => "interval u64::MAX ms",
            Invalid::RunAtMin => "test hook at i64::MIN",
            Invalid::UnknownZone => "unknown time zone",
            Invalid::UnicodeIdTooLong => "unicode id > 512 bytes",
            Invalid::ManyAfterMax => "schedule_many with one at MAX+1",
            Invalid::DeferOutside => "defer outside a handler",
        }
    }

    /// The route it goes to.
    #[must_use]
    pub fn route(&self) -> &'static str {
        match self {
            Invalid::BadJson { route } => route,
            Invalid::BurstAfterMax { .. } => "burst",
            Invalid::RunAtAfterMax | Invalid::RunAtMin => "run_at",
            Invalid::ManyAfterMax => "schedule_many",
            Invalid::DeferOutside => "defer",
            _ => "schedule",
        }
    }

    /// The request body, as text; `label` is what a task stored by mistake would record.
    #[must_use]
    pub fn body(&self, label: &str) -> String {
        let task = json!({ "type": "record", "label": label });
        let schedule = |when: serde_json::Value| json!({ "when": when, "task": task }).to_string();
        match self {
            Invalid::BadCron => schedule(json!({ "cron": "61 * * * *" })),
            Invalid::CronNeverFires => schedule(json!({ "cron": "0 0 30 2 *" })),
            Invalid::AtNegative => schedule(json!({ "at_ms": -1 })),
            Invalid::AtAfterMax => schedule(json!({ "at_ms": MAX_TIME_MS + 1 })),
            Invalid::AfterOutOfRange => schedule(json!({ "after_ms": MAX_TIME_MS })),
            Invalid::EveryZero => schedule(json!({ "every_ms": 0 })),
            Invalid::EveryOutOfRange => schedule(json!({ "every_ms": MAX_TIME_MS })),
            Invalid::PayloadTooLarge => {
                json!({ "when": { "after_ms": 0 }, "task": { "type": "record", "label": "x".repeat(1_000_001) } }).to_string()
            }
            Invalid::IdTooLong => json!({ "when": { "after_ms": 0 }, "id": "i".repeat(513), "task": task }).to_string(),
            Invalid::BadJson { .. } => "{\"when\": {\"after_ms\": 0}, \"task\": ".to_owned(),
            Invalid::WrongShape => json!({ "when": { "after_ms": "soon" }, "task": task }).to_string(),
            Invalid::UnknownTask => json!({ "when": { "after_ms": 0 }, "task": { "type": "explode", "label": label } }).to_string(),
            Invalid::BurstAfterMax { many } => json!({ "n": 3, "label": label, "at_ms": MAX_TIME_MS + 1, "many": many }).to_string(),
            Invalid::RunAtAfterMax => json!({ "now_ms": MAX_TIME_MS + 1 }).to_string(),
            Invalid::AtExtreme { ms } => schedule(json!({ "at_ms": ms })),
            Invalid::DurationMax { every: false } => schedule(json!({ "after_ms": u64::MAX })),
            Invalid::DurationMax { every: true } => schedule(json!({ "every_ms": u64::MAX })),
            Invalid::RunAtMin => json!({ "now_ms": i64::MIN }).to_string(),
            Invalid::UnknownZone => schedule(json!({ "cron_in": { "expr": "0 8 * * *", "zone": "Mars/Olympus_Mons" } })),
            Invalid::UnicodeIdTooLong => json!({ "when": { "after_ms": 0 }, "id": "\u{20ac}".repeat(171), "task": task }).to_string(),
            Invalid::ManyAfterMax => {
                let ok = json!({ "when": { "after_ms": 0 }, "task": task });
                let bad = json!({ "when": { "at_ms": MAX_TIME_MS + 1 }, "task": task });
                json!({ "tasks": [ok, bad] }).to_string()
            }
            Invalid::DeferOutside => json!({ "id": label, "at_ms": 0 }).to_string(),
        }
    }

    /// What the 400's body must contain: the typed error's text.
    #[must_use]
    pub fn expected(&self) -> &'static str {
        match self {
            Invalid::BadCron => "invalid cron expression \"61 * * * *\"",
            Invalid::CronNeverFires => "cron expression \"0 0 30 2 *\" has no occurrence after",
            Invalid::AtNegative => "time -1 ms is out of range",
            Invalid::AtAfterMax | Invalid::BurstAfterMax { .. } | Invalid::RunAtAfterMax => "time 9223372036855 ms is out of range",
            Invalid::AfterOutOfRange | Invalid::EveryOutOfRange => "ms is out of range",
            Invalid::EveryZero => "interval must be at least 1 ms",
            Invalid::PayloadTooLarge => "the task's payload is 1000029 bytes, over the limit of 1000000",
            Invalid::IdTooLong => "the task's id is 513 bytes, over the limit of 512",
            Invalid::BadJson { .. } | Invalid::WrongShape | Invalid::UnknownTask => "bad request body",
            Invalid::AtExtreme { .. } | Invalid::DurationMax { .. } | Invalid::RunAtMin => "ms is out of range",
            Invalid::UnknownZone => "invalid time zone \"Mars/Olympus_Mons\"",
            Invalid::UnicodeIdTooLong => "the task's id is 513 bytes, over the limit of 512",
            Invalid::ManyAfterMax => "time 9223372036855 ms is out of range",
            Invalid::DeferOutside => "no task with id",
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn every_invalid_input_is_drawn_and_its_body_is_what_it_says() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let drawn: std::collections::BTreeSet<&str> = (0..500).map(|_| Invalid::draw(&mut rng).name()).collect();
        assert_eq!(drawn.len(), 22, "{drawn:?}");
        assert!(serde_json::from_str::<serde_json::Value>(&Invalid::BadJson { route: "get" }.body("l")).is_err());
        assert!(Invalid::PayloadTooLarge.body("l").len() > 1_000_000);
        let v: serde_json::Value = serde_json::from_str(&Invalid::AtAfterMax.body("l")).unwrap();
        assert_eq!(v["when"]["at_ms"], 9_223_372_036_855_i64);
    }
}
