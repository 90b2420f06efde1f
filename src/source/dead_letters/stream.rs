//! The I/O of the `dead_letters` source: the entries in batches, and the removal of a batch's
//! entries from the file once the batch is done.

use super::decode::decode;
use crate::ack::{settle_at_end, Ack, Outstanding, OutstandingToken, Status};
use crate::batch::{batched, BatchConfig, BatchStream};
use crate::dead_letter::{DeadLetter, FileDeadLetters};
use crate::record::Record;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The entries read at start-up as a stream of batches whose acknowledgement removes their
/// entries from `queue` (delivered or rejected) or leaves them (errored). The stream ends once
/// every removal is done.
pub(super) fn entries_in_batches<T: Record>(
    entries: Vec<DeadLetter>,
    queue: FileDeadLetters,
    path: &str,
    batching: BatchConfig,
    shutdown: CancellationToken,
) -> BatchStream<T> {
    let acks = Arc::new(Acks { queue, path: path.to_owned(), outstanding: Outstanding::new(), runtime: tokio::runtime::Handle::current() });
    let input = futures::stream::iter(entries.into_iter().map(|entry| Ok(decode::<T>(entry))));
    let outstanding = acks.outstanding.clone();
    let make_ack = move |ids: Vec<String>| {
        let owed = acks.outstanding.token();
        let acks = Arc::clone(&acks);
        Ack::new(move |status| acks.resolve(ids, status, owed))
    };
    let origin: Arc<str> = Arc::from(format!("dead_letters {path}"));
    let batches = batched(input, batching, shutdown, origin, make_ack);
    Box::pin(settle_at_end(batches, outstanding, ()))
}

/// What the acknowledgements of the batches share.
struct Acks {
    queue: FileDeadLetters,
    path: String,
    /// A token per emitted batch until its acknowledgement is handled, and every removal.
    outstanding: Outstanding,
    runtime: tokio::runtime::Handle,
}

impl Acks {
    /// A batch's final status is known: remove its entries (done) or leave them (errored).
    fn resolve(self: &Arc<Self>, ids: Vec<String>, status: Status, owed: OutstandingToken) {
        if ids.is_empty() {
            return;
        }
        if !status.is_done() {
            tracing::info!(queue = %self.path, entries = ids.len(), "batch failed; its entries stay in the dead-letter file");
            return;
        }
        let acks = Arc::clone(self);
        self.outstanding.spawn_on(&self.runtime, async move {
            let count = ids.len();
            match acks.queue.remove(&ids).await {
                Ok(removed) if removed == count => tracing::debug!(queue = %acks.path, removed, "delivered entries removed"),
                Ok(removed) => {
                    tracing::warn!(queue = %acks.path, delivered = count, removed, "some delivered entries were no longer in the file")
                }
                Err(error) => tracing::error!(
                    queue = %acks.path, entries = count, %error,
                    "could not remove delivered entries; they stay in the file and are read again by the next run (at-least-once)"
                ),
            }
        });
        drop(owed);
    }
}
