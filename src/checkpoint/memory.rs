//! [`MemoryStore`]: checkpoints in memory, for tests.

use super::{CheckpointError, CheckpointStore, Claim, Revision, Versioned};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// Checkpoints in memory (shared by its clones), for tests: compare-and-set, claims, and an
/// optional value limit ([`MemoryStore::with_max_value_bytes`]) to exercise the chunking of
/// large state as a store with a payload limit would.
///
/// ```
/// use etl::checkpoint::{CheckpointStore, MemoryStore};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// store.put("k", b"v".to_vec(), None).await?;
/// assert_eq!(store.keys(), ["k"]);
/// # Ok::<(), etl::checkpoint::CheckpointError>(()) }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    max_value_bytes: Option<usize>,
}

#[derive(Debug, Default)]
struct Inner {
    values: HashMap<String, Versioned>,
    claims: HashSet<String>,
    next_revision: u64,
}

/// Releases a [`MemoryStore`] claim when dropped.
struct Held {
    inner: Arc<Mutex<Inner>>,
    key: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        lock(&self.inner).claims.remove(&self.key);
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic while holding the lock leaves the map consistent (each change is one call).
    inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryStore {
    /// An empty store without a value limit.
    ///
    /// ```
    /// assert!(etl::checkpoint::MemoryStore::new().keys().is_empty());
    /// ```
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Refuse values over `limit` bytes (as NATS KV refuses payloads over its limit).
    ///
    /// ```
    /// use etl::checkpoint::CheckpointStore;
    /// assert_eq!(etl::checkpoint::MemoryStore::new().with_max_value_bytes(10).max_value_bytes(), Some(10));
    /// ```
    pub fn with_max_value_bytes(mut self, limit: usize) -> MemoryStore {
        self.max_value_bytes = Some(limit);
        self
    }

    /// The keys present, sorted.
    ///
    /// ```
    /// assert!(etl::checkpoint::MemoryStore::new().keys().is_empty());
    /// ```
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = lock(&self.inner).values.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The largest value stored, in bytes (0 when empty).
    ///
    /// ```
    /// assert_eq!(etl::checkpoint::MemoryStore::new().largest_value(), 0);
    /// ```
    pub fn largest_value(&self) -> usize {
        lock(&self.inner).values.values().map(|v| v.value.len()).max().unwrap_or(0)
    }

    fn conflict(&self, key: &str, expected: Option<Revision>, found: Option<Revision>) -> CheckpointError {
        CheckpointError::Conflict { store: self.describe(), key: key.to_owned(), expected, found }
    }
}

#[async_trait::async_trait]
impl CheckpointStore for MemoryStore {
    fn describe(&self) -> String {
        "memory store".to_owned()
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>, CheckpointError> {
        Ok(lock(&self.inner).values.get(key).cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>, expected: Option<Revision>) -> Result<Revision, CheckpointError> {
        if let Some(limit) = self.max_value_bytes.filter(|limit| value.len() > *limit) {
            return Err(CheckpointError::TooLarge { store: self.describe(), key: key.to_owned(), len: value.len(), limit });
        }
        let mut inner = lock(&self.inner);
        let found = inner.values.get(key).map(|v| v.revision);
        if found != expected {
            return Err(self.conflict(key, expected, found));
        }
        inner.next_revision += 1;
        let revision = Revision(inner.next_revision);
        inner.values.insert(key.to_owned(), Versioned { value, revision });
        Ok(revision)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(), CheckpointError> {
        let mut inner = lock(&self.inner);
        let found = inner.values.get(key).map(|v| v.revision);
        match (found, expected) {
            (Some(f), Some(e)) if f != e => Err(self.conflict(key, expected, found)),
            _ => {
                inner.values.remove(key);
                Ok(())
            }
        }
    }

    async fn claim(&self, key: &str) -> Result<Claim, CheckpointError> {
        if !lock(&self.inner).claims.insert(key.to_owned()) {
            return Err(CheckpointError::Busy { key: key.to_owned(), store: self.describe() });
        }
        Ok(Claim::new(key, Held { inner: self.inner.clone(), key: key.to_owned() }))
    }

    fn max_value_bytes(&self) -> Option<usize> {
        self.max_value_bytes
    }
}
