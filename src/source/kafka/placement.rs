//! Exactly-once placement: where the partitions of an assignment start reading, read from the
//! run's position store (see [`crate::positions`]) on the consumer's thread.
//!
//! The rebalance callback and the seeks run on the consumer's own thread, outside the tokio
//! runtime; the store is asynchronous (a query on the sink's connection pool, bound to the
//! runtime). The lookup is spawned on the runtime and the thread waits for its answer: the
//! pipeline goes on meanwhile (the runtime's threads are not the one waiting).

use crate::error::ConnectorError;
use crate::positions::{Partition, PositionStore};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How many times a lookup is tried before the source gives up (retryable errors only).
const ATTEMPTS: u32 = 3;
/// The pause between two attempts.
const PAUSE: Duration = Duration::from_secs(1);
/// The longest wait for one answer of the store (it has timeouts of its own).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(90);

/// The run's position store and what this source asks it.
pub(super) struct Placement {
    pub store: Arc<dyn PositionStore>,
    /// The consumer group, whose positions the store keeps.
    pub group: Arc<str>,
    /// The runtime the store's futures run on.
    pub runtime: tokio::runtime::Handle,
    /// The source, for errors.
    pub component: String,
}

impl Placement {
    /// The stored next offset of each of `partitions` that has one, waiting on the calling
    /// thread (never a thread of the runtime). An error after the retries: the store cannot be
    /// read, which is never taken for "nothing stored".
    pub(super) fn stored(&self, partitions: &[Partition]) -> Result<HashMap<Partition, i64>, ConnectorError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let (store, group, asked) = (Arc::clone(&self.store), Arc::clone(&self.group), partitions.to_vec());
            self.runtime.spawn(async move {
                let _ = tx.send(store.stored(&group, &asked).await);
            });
            let error = match rx.recv_timeout(ANSWER_TIMEOUT) {
                Ok(Ok(found)) => return Ok(found.into_iter().collect()),
                Ok(Err(e)) => e,
                Err(_) => ConnectorError::retryable(
                    self.component.clone(),
                    format!("the position store {} did not answer within {ANSWER_TIMEOUT:?}", self.store.describe()),
                ),
            };
            if !error.is_retryable() || attempt >= ATTEMPTS {
                return Err(ConnectorError {
                    component: self.component.clone().into(),
                    retry: error.retry,
                    error: format!("cannot read the stored positions of group `{}` from {}: {error}", self.group, self.store.describe())
                        .into(),
                });
            }
            tracing::warn!(error = %error, attempt, store = %self.store.describe(), "cannot read the stored positions; retrying");
            std::thread::sleep(PAUSE);
        }
    }
}
