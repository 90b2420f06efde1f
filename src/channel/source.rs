//! [`QueueSource`]: a pipeline source that consumes a [`WorkQueue`].

use super::queue::{LeaseId, WorkQueue};
use crate::ack::{Ack, Status};
use crate::batch::{batched, BatchConfig, BatchOptions, Failure, FailureKind, Incoming};
use crate::record::{Extra, Meta, Position};
use crate::source::{BatchStream, Source, SourceContext};
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::Arc;

/// Reads JSON messages from a [`WorkQueue`] and decodes them into `T`. See
/// [`WorkQueue::source`].
///
/// A batch's messages are acked when it is delivered (or its failed records were
/// dead-lettered) and nacked (claimable again at once) when it errored. A message that does
/// not decode is dead-lettered with its bytes; a message claimed more than `max_deliver`
/// times is dead-lettered ([`FailureKind::MaxDeliveries`]) instead of being processed again.
/// The stream ends when the queue is closed and drained, or on shutdown.
pub struct QueueSource<T> {
    queue: WorkQueue,
    name: String,
    batching: BatchConfig,
    max_deliver: u32,
    record: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for QueueSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueSource")
            .field("name", &self.name)
            .field("batching", &self.batching)
            .field("max_deliver", &self.max_deliver)
            .finish_non_exhaustive()
    }
}

impl WorkQueue {
    /// A pipeline source consuming this queue: JSON messages decoded into `T`.
    ///
    /// ```
    /// use etl::prelude::*;
    /// let queue = etl::channel::WorkQueue::new();
    /// let source = queue.source::<Json>().name("changes").max_deliver(3).batch_size(100);
    /// assert_eq!(source.describe(), "queue changes");
    /// ```
    pub fn source<T>(&self) -> QueueSource<T> {
        QueueSource {
            queue: self.clone(),
            name: "work-queue".into(),
            batching: BatchConfig::default(),
            max_deliver: 5,
            record: PhantomData,
        }
    }
}

impl<T> QueueSource<T> {
    /// The queue's name, for logs and dead-letter entries. Default `work-queue`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Deliveries of a message before it is dead-lettered instead of processed (at least 1).
    /// Default 5.
    pub fn max_deliver(mut self, n: u32) -> Self {
        self.max_deliver = n.max(1);
        self
    }
}

impl<T> BatchOptions for QueueSource<T> {
    fn batching(&mut self) -> &mut BatchConfig {
        &mut self.batching
    }
}

impl<T: DeserializeOwned + Send + 'static> Source for QueueSource<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("queue {}", self.name)
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        let origin: Arc<str> = Arc::from(self.describe());
        let QueueSource { queue, max_deliver, batching, .. } = self;
        let claims = futures::stream::unfold((queue.clone(), ctx.shutdown.clone()), move |(queue, shutdown)| async move {
            let claim = queue.claim(&shutdown).await?;
            let lease = claim.lease();
            let mut meta = Meta::at(Position::Sequence(claim.id)).with_raw(claim.payload.clone());
            if claim.deliveries > 1 {
                meta = meta.with_extra(Extra { delivery_count: Some(claim.deliveries), ..Extra::default() });
            }
            let incoming = if claim.deliveries > max_deliver {
                let error = format!("delivered {} times without success (max_deliver = {max_deliver})", claim.deliveries - 1);
                Incoming::failed(Failure::new(claim.payload, FailureKind::MaxDeliveries, error, meta), lease)
            } else {
                match serde_json::from_slice::<T>(&claim.payload) {
                    Ok(record) => Incoming::record(record, meta, claim.payload.len(), lease),
                    Err(e) => Incoming::failed(Failure::new(claim.payload, FailureKind::Decode, e.to_string(), meta), lease),
                }
            };
            Some((Ok(incoming), (queue, shutdown)))
        });
        let make_ack = move |leases: Vec<LeaseId>| {
            let queue = queue.clone();
            Ack::new(move |status| {
                // Rejected: the failed records are in the dead-letter queue; the batch is done.
                let requeue = status == Status::Errored;
                for lease in leases {
                    if let Err(e) = queue.resolve(lease, requeue) {
                        tracing::warn!(error = %e, "work-queue acknowledgement refused; the message may be processed twice");
                    }
                }
            })
        };
        Ok(batched(claims, batching, ctx.shutdown, origin, make_ack))
    }
}
