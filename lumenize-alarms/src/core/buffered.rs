//! `Buffered`: the store as the scheduler sees it, which holds back the deletes of the
//! one-shot tasks a run completed and makes them, in one statement, before any other
//! operation on the store: no caller has to remember to.

use std::cell::RefCell;

use crate::core::store::{Change, Filter, Key, Store};
use crate::core::task::{Counts, Scheduled};
use crate::error::Result;

/// A [`Store`] that holds back the removal of completed one-shot tasks
/// ([`complete`](Self::complete)) and removes them all in one statement
/// ([`Store::remove_all`]) before any other operation, read or write, reaches the store
/// below: a batch of handlers that do not await costs one delete, and every read sees
/// their completions.
///
/// [`Scheduler::store`](crate::core::Scheduler::store) returns it. The store below
/// ([`inner`](Self::inner)) does not see completions still held back.
///
/// ```
/// use lumenize_alarms::core::{Buffered, Key, MemoryStore, Scheduled, Store};
/// # fn main() -> Result<(), lumenize_alarms::Error> {
/// let task = Scheduled::pending_once("a", 5, "1", 0);
/// let store = Buffered::new(MemoryStore::default());
/// store.insert(&task, false)?;
/// let stored = store.get("a")?.expect("stored");
/// store.complete(Key::of(&stored));
/// assert!(store.inner().get("a")?.is_some(), "held back");
/// assert_eq!(store.get("a")?, None, "removed before the read");
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Buffered<S> {
    store: S,
    /// The keys of completed one-shot tasks whose rows are not deleted yet.
    completed: RefCell<Vec<Key>>,
}

impl<S: Store> Buffered<S> {
    /// `store`, with nothing held back.
    pub fn new(store: S) -> Self {
        Buffered { store, completed: RefCell::new(Vec::new()) }
    }

    /// Holds back the removal of the completed one-shot task `key`
    /// ([`Change::Remove`], applied only if its row is still what `key` says): it is made,
    /// with the others held back, before the next operation on the store.
    pub fn complete(&self, key: Key) {
        self.completed.borrow_mut().push(key);
    }

    /// The store below, for what the [`Store`] trait does not say (the SQL store's
    /// connection). Its operations do not see the completions held back: go through
    /// `self` for those.
    pub fn inner(&self) -> &S {
        &self.store
    }

    /// Removes the tasks held back, in one statement. On an error they are not held back
    /// any more (their rows stay: such a task runs again).
    fn flush(&self) -> Result<()> {
        let keys = std::mem::take(&mut *self.completed.borrow_mut());
        if !keys.is_empty() {
            self.store.remove_all(&keys)?;
        }
        Ok(())
    }
}

/// Every operation removes the tasks held back first.
impl<S: Store> Store for Buffered<S> {
    fn insert(&self, task: &Scheduled, keep_existing: bool) -> Result<bool> {
        self.flush()?;
        self.store.insert(task, keep_existing)
    }
    fn insert_all(&self, tasks: &[Scheduled], keep_existing: bool) -> Result<Vec<bool>> {
        self.flush()?;
        self.store.insert_all(tasks, keep_existing)
    }
    fn get(&self, id: &str) -> Result<Option<Scheduled>> {
        self.flush()?;
        self.store.get(id)
    }
    fn list(&self, filter: &Filter) -> Result<Vec<Scheduled>> {
        self.flush()?;
        self.store.list(filter)
    }
    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Scheduled>> {
        self.flush()?;
        self.store.due(now_ms, limit)
    }
    fn earliest(&self) -> Result<Option<Key>> {
        self.flush()?;
        self.store.earliest()
    }
    fn remove(&self, id: &str) -> Result<Option<Scheduled>> {
        self.flush()?;
        self.store.remove(id)
    }
    fn discard(&self, id: &str) -> Result<bool> {
        self.flush()?;
        self.store.discard(id)
    }
    fn requeue(&self, id: &str, due_ms: i64) -> Result<Option<Scheduled>> {
        self.flush()?;
        self.store.requeue(id, due_ms)
    }
    fn change(&self, key: &Key, change: &Change) -> Result<bool> {
        self.flush()?;
        self.store.change(key, change)
    }
    fn remove_all(&self, keys: &[Key]) -> Result<usize> {
        self.flush()?;
        self.store.remove_all(keys)
    }
    fn requeue_dead(&self, filter: &Filter, due_ms: i64, limit: usize) -> Result<usize> {
        self.flush()?;
        self.store.requeue_dead(filter, due_ms, limit)
    }
    fn counts(&self) -> Result<Counts> {
        self.flush()?;
        self.store.counts()
    }
    fn kill_after(&self, max_ms: i64, error: &str) -> Result<usize> {
        self.flush()?;
        self.store.kill_after(max_ms, error)
    }
    fn recreated(&self) -> u64 {
        self.store.recreated()
    }
}
