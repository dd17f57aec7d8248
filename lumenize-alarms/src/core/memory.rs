//! An in-memory [`Store`], for tests and for the reference-model property tests.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::core::{Filter, Status, Store, Scheduled};
use crate::Result;

/// A [`Store`] in memory. Behaves like the SQLite adapter, row for row.
///
/// ```
/// use lumenize_alarms::core::{self, MemoryStore, Store};
/// use lumenize_alarms::{Options, When};
/// use std::time::Duration;
///
/// let store = MemoryStore::default();
/// let task = core::schedule(&store, 1_000, &When::after(Duration::from_secs(1)), "1".into(),
///                           &Options::id("a"), || unreachable!())?;
/// assert_eq!(task.due_ms, 2_000);
/// assert_eq!(store.next_due(1_999)?, None);
/// assert_eq!(store.next_due(2_000)?.map(|t| t.id), Some("a".to_string()));
/// # Ok::<(), lumenize_alarms::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    rows: RefCell<BTreeMap<String, Scheduled>>,
    last_seq: Cell<i64>,
}

impl MemoryStore {
    fn live(&self) -> Vec<Scheduled> {
        let mut live: Vec<Scheduled> =
            self.rows.borrow().values().filter(|t| t.status != Status::Dead).cloned().collect();
        live.sort_by_key(|t| (t.due_ms, t.seq));
        live
    }
}

impl Store for MemoryStore {
    fn get(&self, id: &str) -> Result<Option<Scheduled>> {
        Ok(self.rows.borrow().get(id).cloned())
    }
    fn insert(&self, task: &Scheduled) -> Result<i64> {
        let seq = self.last_seq.get() + 1;
        self.last_seq.set(seq);
        self.rows.borrow_mut().insert(task.id.clone(), Scheduled { seq, ..task.clone() });
        Ok(seq)
    }
    fn put(&self, task: &Scheduled) -> Result<()> {
        self.rows.borrow_mut().insert(task.id.clone(), task.clone());
        Ok(())
    }
    fn remove(&self, id: &str) -> Result<bool> {
        Ok(self.rows.borrow_mut().remove(id).is_some())
    }
    fn next_due(&self, now_ms: i64) -> Result<Option<Scheduled>> {
        Ok(self.live().into_iter().find(|t| t.due_ms <= now_ms))
    }
    fn earliest(&self) -> Result<Option<i64>> {
        Ok(self.live().first().map(|t| t.due_ms))
    }
    fn list(&self, filter: &Filter) -> Result<Vec<Scheduled>> {
        let mut all: Vec<Scheduled> = self.rows.borrow().values().filter(|t| filter.matches(t)).cloned().collect();
        all.sort_by_key(|t| (t.due_ms, t.seq));
        all.truncate(filter.limit.unwrap_or(usize::MAX));
        Ok(all)
    }
}
