//! [`QueueSource`]: a pipeline source that consumes a [`WorkQueue`].

use super::queue::{Claim, LeaseId, WorkQueue};
use crate::ack::{settle_at_end, Ack, Leases, Outstanding, OutstandingToken, Status};
use crate::batch::{batched, BatchConfig, BatchOptions, Failure, FailureKind, Incoming};
use crate::record::{Extra, Meta, Position};
use crate::source::{BatchStream, Source, SourceContext};
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Reads JSON messages from a [`WorkQueue`] and decodes them into `T`. See
/// [`WorkQueue::source`].
///
/// A batch's messages are acked when it is delivered (or its failed records were
/// dead-lettered) and nacked (claimable again at once) when it errored. While a batch is in
/// the pipeline, a heartbeat extends its claims at half the queue's `claim_timeout`, so a slow
/// sink does not make the queue hand the messages to another consumer. A message that does
/// not decode is dead-lettered with its bytes; a message claimed more than `max_deliver`
/// times is dead-lettered ([`FailureKind::MaxDeliveries`]) instead of being processed again.
/// The stream ends when the queue is closed and drained, or on shutdown.
pub struct QueueSource<T> {
    queue: WorkQueue,
    name: String,
    batching: BatchConfig,
    max_deliver: u32,
    workers: usize,
    record: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for QueueSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueSource")
            .field("name", &self.name)
            .field("batching", &self.batching)
            .field("max_deliver", &self.max_deliver)
            .field("workers", &self.workers)
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
            workers: 1,
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

    /// Claim with `n` concurrent workers (at least 1; default 1). Each worker is a task of
    /// its own that claims, decodes and batches messages; their batches feed this one
    /// pipeline as they fill, each acked or nacked on its own as above. A worker that panics
    /// (a `Deserialize` impl that panics, say) is logged and started again; the claims it held
    /// in a batch not yet emitted are no longer renewed and come back when their lease
    /// expires. `max_records` and `max_batches` count over all the workers together (a batch
    /// past `max_batches` is nacked).
    ///
    /// ```
    /// use etl::prelude::*;
    /// use etl::channel::WorkQueue;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let queue = WorkQueue::new();
    /// for n in 0..100i64 {
    ///     queue.push(n.to_string().into()).await?;
    /// }
    /// queue.close();
    /// let out = etl::sink::collect();
    /// Pipeline::from(queue.source::<i64>().workers(4).batch_size(10)).to(out.sink()).handle_signals(false).run().await?;
    /// let mut got = out.records();
    /// got.sort();
    /// assert_eq!(got, (0..100).collect::<Vec<_>>());
    /// assert!(queue.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
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
        if self.workers > 1 {
            return Ok(super::workers::open(self.queue, self.max_deliver, self.batching, self.workers, origin, ctx));
        }
        let QueueSource { queue, max_deliver, batching, .. } = self;
        // Claims not yet resolved, renewed at half the claim timeout by the heartbeat.
        let leases = Arc::new(Mutex::new(Leases::new(queue.claim_timeout() / 2)));
        let held = Arc::clone(&leases);
        let claims = futures::stream::unfold((queue.clone(), ctx.shutdown.clone()), move |(queue, shutdown)| {
            let held = Arc::clone(&held);
            async move {
                let claim = queue.claim(&shutdown).await?;
                let lease = claim.lease();
                lock(&held).insert(lease, Instant::now());
                Some((Ok(incoming(claim, max_deliver, lease)), (queue, shutdown)))
            }
        });
        // The heartbeat runs until every emitted batch is resolved (the stream's end waits).
        let outstanding = Outstanding::new();
        let stop = CancellationToken::new();
        if queue.claim_timeout() < NEVER {
            tokio::spawn(heartbeat(queue.clone(), Arc::clone(&leases), stop.clone()));
        }
        let owed = outstanding.clone();
        let make_ack = move |batch: Vec<LeaseId>| settle(queue.clone(), Arc::clone(&leases), owed.token(), batch);
        let batches = batched(claims, batching, ctx.shutdown, origin, make_ack);
        Ok(Box::pin(settle_at_end(batches, outstanding, stop.drop_guard())))
    }
}

/// A claimed message as the batcher takes it: decoded into `T`, or dead-lettered because it
/// does not decode or was delivered more than `max_deliver` times.
pub(super) fn incoming<T: DeserializeOwned, K>(claim: Claim, max_deliver: u32, token: K) -> Incoming<T, K> {
    let mut meta = Meta::at(Position::Sequence(claim.id)).with_raw(claim.payload.clone());
    if claim.deliveries > 1 {
        meta = meta.with_extra(Extra { delivery_count: Some(claim.deliveries), ..Extra::default() });
    }
    if claim.deliveries > max_deliver {
        let error = format!("delivered {} times without success (max_deliver = {max_deliver})", claim.deliveries - 1);
        return Incoming::failed(Failure::new(claim.payload, FailureKind::MaxDeliveries, error, meta), token);
    }
    match serde_json::from_slice::<T>(&claim.payload) {
        Ok(record) => Incoming::record(record, meta, claim.payload.len(), token),
        Err(e) => Incoming::failed(Failure::new(claim.payload, FailureKind::Decode, e.to_string(), meta), token),
    }
}

/// The acknowledgement of a batch of claims: acked when delivered or dead-lettered, nacked
/// (claimable again at once) when errored; the heartbeat stops renewing them either way.
pub(super) fn settle(queue: WorkQueue, leases: Arc<Mutex<Leases<LeaseId>>>, token: OutstandingToken, batch: Vec<LeaseId>) -> Ack {
    Ack::new(move |status| {
        lock(&leases).remove(batch.iter());
        // Rejected: the failed records are in the dead-letter queue; the batch is done.
        queue.resolve_all(&batch, status == Status::Errored);
        drop(token);
    })
}

/// Claim timeouts this long (or `Duration::MAX`) never expire in practice: no heartbeat.
pub(super) const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

pub(super) fn lock(leases: &Mutex<Leases<LeaseId>>) -> MutexGuard<'_, Leases<LeaseId>> {
    // The table holds no invariant a panic could break half-way.
    leases.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Extends the leases of claims in flight past half the claim timeout, so that a batch that
/// takes longer than `claim_timeout` in the pipeline is not handed to another consumer.
pub(super) async fn heartbeat(queue: WorkQueue, leases: Arc<Mutex<Leases<LeaseId>>>, stop: CancellationToken) {
    let tick = (queue.claim_timeout() / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        let now = Instant::now();
        let due = lock(&leases).due(now);
        let (mut kept, mut gone) = (Vec::new(), Vec::new());
        for lease in due {
            match queue.extend_lease(lease) {
                Ok(()) => kept.push(lease),
                Err(e) => {
                    tracing::warn!(error = %e, "work-queue lease could not be extended; the message may be processed twice");
                    gone.push(lease);
                }
            }
        }
        let mut leases = lock(&leases);
        leases.renewed(kept, now);
        leases.remove(gone.iter());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Pipeline;
    use crate::sink::{Sink, Written};

    /// A sink that takes `delay` per batch and notes the delivery counts it saw.
    struct Slow {
        delay: Duration,
        seen: Arc<Mutex<Vec<i64>>>,
    }

    impl Sink<i64> for Slow {
        fn describe(&self) -> String {
            "slow".into()
        }
        async fn write(&mut self, records: &[i64]) -> Result<Written, crate::ConnectorError> {
            tokio::time::sleep(self.delay).await;
            self.seen.lock().unwrap().extend_from_slice(records);
            Ok(Written::all())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_slower_than_the_claim_timeout_is_not_handed_to_another_consumer() {
        let queue = WorkQueue::with_limits(100, Duration::from_millis(200));
        for n in 0..2i64 {
            queue.push(n.to_string().into()).await.unwrap();
        }
        queue.close();
        let seen = Arc::new(Mutex::new(Vec::new()));
        // Each batch spends 1 s (five claim timeouts) in the sink; both are claimed at once
        // (two batches in flight).
        let sink = Slow { delay: Duration::from_secs(1), seen: Arc::clone(&seen) };
        let run = tokio::spawn(Pipeline::from(queue.source::<i64>().batch_size(1)).to(sink).handle_signals(false).run());
        // Another consumer of the same queue, well past the claim timeout.
        let other = queue.clone();
        let stolen = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            other.try_claim()
        });
        assert_eq!(stolen.await.unwrap(), None, "the claims of the batches in flight were extended");
        let report = run.await.unwrap().unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![0, 1], "each message once");
        assert_eq!(report.records_in, 2);
        assert!(queue.is_empty() && queue.in_flight() == 0);
    }
}
