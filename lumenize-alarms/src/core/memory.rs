//! `MemoryStore`: the reference [`Store`], in memory. The SQL store must behave exactly like
//! it (`tests/conformance.rs` runs the same suite over both).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::core::store::{Change, Filter, Key, Store};
use crate::core::task::{Counts, Scheduled, Status};
use crate::error::Result;

/// A [`Store`] in memory: a map from id to task.
///
/// ```
/// use lumenize_alarms::core::{MemoryStore, Store};
/// # use lumenize_alarms::core::{Change, Key};
/// let store = MemoryStore::default();
/// assert_eq!(store.due(i64::MAX, 10)?, vec![]);
/// assert_eq!(store.earliest()?, None);
/// # Ok::<(), lumenize_alarms::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    rows: RefCell<BTreeMap<String, Scheduled>>,
    last_seq: Cell<i64>,
}

impl MemoryStore {
    fn sorted(&self, keep: impl Fn(&Scheduled) -> bool) -> Vec<Scheduled> {
        let mut tasks: Vec<Scheduled> = self.rows.borrow().values().filter(|t| keep(t)).cloned().collect();
        tasks.sort_by_key(|t| (t.due_ms, t.seq));
        tasks
    }
}

fn live(task: &Scheduled) -> bool {
    task.status.is_live()
}

impl Store for MemoryStore {
    fn insert(&self, task: &Scheduled, keep_existing: bool) -> Result<bool> {
        if keep_existing && self.rows.borrow().contains_key(&task.id) {
            return Ok(false);
        }
        let seq = self.last_seq.get() + 1;
        self.last_seq.set(seq);
        self.rows.borrow_mut().insert(task.id.clone(), Scheduled { seq, ..task.clone() });
        Ok(true)
    }

    fn insert_all(&self, tasks: &[Scheduled], keep_existing: bool) -> Result<Vec<bool>> {
        tasks.iter().map(|task| self.insert(task, keep_existing)).collect()
    }

    fn get(&self, id: &str) -> Result<Option<Scheduled>> {
        Ok(self.rows.borrow().get(id).cloned())
    }

    fn list(&self, filter: &Filter) -> Result<Vec<Scheduled>> {
        let mut tasks = self.sorted(|t| filter.matches(t));
        tasks.truncate(filter.limit.unwrap_or(usize::MAX));
        Ok(tasks)
    }

    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Scheduled>> {
        let mut tasks = self.sorted(|t| live(t) && t.due_ms <= now_ms);
        tasks.truncate(limit);
        Ok(tasks)
    }

    fn earliest(&self) -> Result<Option<Key>> {
        Ok(self.sorted(live).first().map(Key::of))
    }

    fn remove(&self, id: &str) -> Result<Option<Scheduled>> {
        Ok(self.rows.borrow_mut().remove(id))
    }

    fn discard(&self, id: &str) -> Result<bool> {
        Ok(self.rows.borrow_mut().remove(id).is_some())
    }

    fn requeue(&self, id: &str, due_ms: i64) -> Result<Option<Scheduled>> {
        let mut rows = self.rows.borrow_mut();
        let Some(task) = rows.get_mut(id).filter(|t| t.status == Status::Dead) else { return Ok(None) };
        task.status = Status::Pending;
        task.attempts = 0;
        task.due_ms = due_ms;
        Ok(Some(task.clone()))
    }

    fn change(&self, key: &Key, change: &Change) -> Result<bool> {
        let mut rows = self.rows.borrow_mut();
        let Some(task) = rows.get_mut(&key.id).filter(|t| Key::of(t) == *key) else { return Ok(false) };
        match change {
            Change::Claim => {
                task.status = Status::Running;
                task.attempts += 1;
            }
            Change::Remove => {
                rows.remove(&key.id);
            }
            Change::Advance { due_ms } => {
                task.due_ms = *due_ms;
                task.tick_ms = *due_ms;
                task.status = Status::Pending;
                task.attempts = 0;
                task.last_error = None;
            }
            Change::Retry { due_ms, error, attempts } => {
                task.due_ms = *due_ms;
                task.status = Status::Pending;
                task.last_error = Some(error.clone());
                task.attempts = *attempts;
            }
            Change::Pause => task.status = Status::Paused,
            Change::Resume { due_ms, tick_ms, attempts } => {
                task.status = Status::Pending;
                task.due_ms = *due_ms;
                task.tick_ms = *tick_ms;
                task.attempts = *attempts;
            }
            Change::Kill { error, attempts } => {
                task.status = Status::Dead;
                task.last_error = Some(error.clone());
                task.attempts = *attempts;
            }
        }
        Ok(true)
    }

    fn remove_all(&self, keys: &[Key]) -> Result<usize> {
        let mut removed = 0;
        for key in keys {
            removed += usize::from(self.change(key, &Change::Remove)?);
        }
        Ok(removed)
    }

    fn requeue_dead(&self, filter: &Filter, due_ms: i64, limit: usize) -> Result<usize> {
        let dead = Filter { status: Some(Status::Dead), limit: Some(limit), ..filter.clone() };
        let ids: Vec<String> = self.list(&dead)?.into_iter().map(|t| t.id).collect();
        for id in &ids {
            self.requeue(id, due_ms)?;
        }
        Ok(ids.len())
    }

    fn counts(&self) -> Result<Counts> {
        let mut counts = Counts::default();
        for task in self.rows.borrow().values() {
            counts.add(task.status, 1);
        }
        Ok(counts)
    }

    fn kill_after(&self, max_ms: i64, error: &str) -> Result<usize> {
        let mut killed = 0;
        for task in self.rows.borrow_mut().values_mut().filter(|t| live(t) && t.due_ms > max_ms) {
            task.status = Status::Dead;
            task.last_error = Some(error.to_owned());
            killed += 1;
        }
        Ok(killed)
    }
}
