//! What the sandbox's `AlarmsDO` answers, as far as the chaos run reads it.

use serde::{Deserialize, Serialize};

/// A stored task, as `schedule`, `get`, `list`, `cancel` and `requeue` answer it (the
/// library's `Scheduled`; only the fields the checks read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// Its id.
    pub id: String,
    /// Insertion order.
    pub seq: i64,
    /// `"once"`, `{"cron": ..}` or `{"every": ..}`.
    pub schedule: serde_json::Value,
    /// When it runs next (Unix ms).
    pub due_ms: i64,
    /// The payload as stored (JSON text).
    pub payload: String,
    /// `pending`, `running` or `dead`.
    pub status: String,
    /// Attempts of the current occurrence.
    pub attempts: u32,
    /// The last failure's error.
    pub last_error: Option<String>,
    /// When it was scheduled (runtime clock).
    pub created_ms: i64,
}

impl Stored {
    /// The label its payload carries (every chaos task has one).
    #[must_use]
    pub fn label(&self) -> Option<String> {
        let payload: serde_json::Value = serde_json::from_str(&self.payload).ok()?;
        payload["label"].as_str().map(str::to_owned)
    }

    /// Whether it repeats (cron or interval).
    #[must_use]
    pub fn recurring(&self) -> bool {
        self.schedule != serde_json::Value::String("once".into())
    }

    /// Whether it is dead.
    #[must_use]
    pub fn dead(&self) -> bool {
        self.status == "dead"
    }
}

/// One recorded firing (the sandbox's `fired` table): a handler started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    /// The label its handler recorded.
    pub label: String,
    /// The task's id.
    pub task_id: String,
    /// The due time the scheduler gave the handler.
    pub due_ms: i64,
    /// When the handler started (runtime clock).
    pub fired_ms: i64,
    /// Which attempt.
    pub attempt: u32,
}
