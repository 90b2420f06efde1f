//! A dead-letter queue in memory: for tests, and the model of the [`DeadLetters`] semantics
//! that the durable queues follow.

use super::replay::republish;
use super::{DeadLetter, DeadLetters, DynRepublish};
use crate::error::ConnectorError;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

/// Dead letters kept in memory (tests). Clones share the same storage.
///
/// ```
/// use etl::batch::{Failure, FailureKind};
/// use etl::dead_letter::{DeadLetter, DeadLetters, MemoryDeadLetters};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let queue = MemoryDeadLetters::new();
/// let seen_by_pipeline = queue.clone();
/// let failure = Failure::new(bytes::Bytes::from_static(b"{oops"), FailureKind::Decode, "expected value", Default::default());
/// seen_by_pipeline.write(vec![DeadLetter::from_failure(failure, "file in.jsonl")]).await?;
/// assert_eq!(queue.len(), 1);
/// assert_eq!(&queue.list().await?[0].payload[..], b"{oops");
/// # Ok::<(), etl::ConnectorError>(()) }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryDeadLetters {
    entries: Arc<Mutex<Vec<DeadLetter>>>,
}

impl MemoryDeadLetters {
    /// An empty queue.
    ///
    /// ```
    /// let queue = etl::dead_letter::MemoryDeadLetters::new();
    /// assert!(queue.is_empty());
    /// ```
    pub fn new() -> MemoryDeadLetters {
        MemoryDeadLetters::default()
    }

    /// How many entries the queue holds.
    ///
    /// ```
    /// assert_eq!(etl::dead_letter::MemoryDeadLetters::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when the queue holds no entry.
    ///
    /// ```
    /// assert!(etl::dead_letter::MemoryDeadLetters::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<DeadLetter>> {
        // The vector is never left half-updated by a panic, so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl DeadLetters for MemoryDeadLetters {
    fn describe(&self) -> String {
        "memory".to_owned()
    }

    async fn write(&self, entries: Vec<DeadLetter>) -> Result<(), ConnectorError> {
        self.lock().extend(entries);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<DeadLetter>, ConnectorError> {
        Ok(self.lock().clone())
    }

    async fn replay(
        &self,
        filter: &(dyn for<'a> Fn(&'a DeadLetter) -> bool + Send + Sync),
        target: &mut dyn DynRepublish,
    ) -> Result<usize, ConnectorError> {
        // Finite: only the entries present now are replayed, even if the target writes more.
        let snapshot: Vec<DeadLetter> = self.lock().iter().filter(|e| filter(e)).cloned().collect();
        let (mut replayed, failed) = republish(&snapshot, target, "memory").await;
        let count = replayed.count();
        if count > 0 {
            self.lock().retain(|e| !replayed.take(&e.id));
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(count),
        }
    }

    async fn purge(&self, older_than: Duration) -> Result<usize, ConnectorError> {
        let Some(cutoff) = SystemTime::now().checked_sub(older_than) else {
            return Ok(0);
        };
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|e| e.last_failed >= cutoff);
        Ok(before - entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::FailureKind;
    use crate::dead_letter::Republish;
    use crate::record::Position;
    use bytes::Bytes;

    fn entry(id: &str) -> DeadLetter {
        let now = SystemTime::now();
        DeadLetter {
            id: id.to_owned(),
            payload: Bytes::from_static(b"x"),
            error: "bad".into(),
            kind: FailureKind::Decode,
            source: "test".into(),
            position: Position::None,
            step: None,
            headers: Vec::new(),
            attempts: 1,
            first_failed: now,
            last_failed: now,
        }
    }

    struct Ok_;
    impl Republish for Ok_ {
        async fn republish(&mut self, _: &DeadLetter) -> Result<(), ConnectorError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn dead_letter_memory_clones_share_storage() {
        let a = MemoryDeadLetters::new();
        let b = a.clone();
        b.write(vec![entry("1"), entry("2")]).await.unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a.replay(&|e| e.id == "1", &mut Ok_).await.unwrap(), 1);
        assert_eq!(b.list().await.unwrap().iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["2"]);
        assert!(!b.is_empty());
    }

    #[tokio::test]
    async fn dead_letter_memory_duplicate_ids_are_removed_once_per_replay() {
        let q = MemoryDeadLetters::new();
        q.write(vec![entry("1"), entry("1")]).await.unwrap();
        // A target that writes the entry back (same id) during the replay.
        struct Back(MemoryDeadLetters);
        impl Republish for Back {
            async fn republish(&mut self, e: &DeadLetter) -> Result<(), ConnectorError> {
                self.0.write(vec![e.clone()]).await
            }
        }
        assert_eq!(q.replay(&|_| true, &mut Back(q.clone())).await.unwrap(), 2);
        assert_eq!(q.len(), 2);
    }
}
