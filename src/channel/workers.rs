//! [`QueueSource::workers`](super::QueueSource::workers): N claim loops, each a task of its
//! own, feeding one pipeline.
//!
//! Each worker claims, decodes and batches messages on its own (`batched` over its claims) and
//! sends its batches to the source's stream through a channel. A supervisor starts the workers
//! and starts again one that panicked. The claims a worker holds in a batch it has not emitted
//! yet are [`Held`]: when the worker dies, dropping them stops the heartbeat from renewing
//! their leases, so the queue hands them out again once the lease expires (a worker that stops
//! normally nacks them). Batches already emitted carry their own acknowledgement and are
//! renewed until it is resolved.

use super::queue::{LeaseId, WorkQueue};
use super::source::{heartbeat, incoming, lock, settle, NEVER};
use crate::ack::{settle_at_end, Leases, Outstanding};
use crate::batch::{batched, Batch, BatchConfig};
use crate::source::{BatchStream, SourceContext};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type Table = Arc<Mutex<Leases<LeaseId>>>;

/// Claims taken from the queue under one lock, at most.
const CLAIM_CHUNK: usize = 64;

/// A claim in a worker's hands (buffered, or in a batch not emitted yet), renewed by the
/// heartbeat until it is handed to a batch's acknowledgement ([`Held::into_lease`]). Dropped
/// otherwise: when its worker stops normally (shutdown, `max_records`), it is nacked at once;
/// when its worker dies (panics), nothing runs on its behalf, as for a killed process: it is
/// no longer renewed and the queue hands it out again once its lease expires.
struct Held {
    lease: Option<LeaseId>,
    table: Table,
    queue: WorkQueue,
}

impl Held {
    fn into_lease(mut self) -> Option<LeaseId> {
        self.lease.take()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else { return };
        lock(&self.table).remove([&lease]);
        if std::thread::panicking() {
            tracing::debug!(id = lease.id, "work-queue claim dropped by a dying worker; it is claimable again when its lease expires");
        } else if let Err(e) = self.queue.resolve(lease, true) {
            tracing::debug!(error = %e, "work-queue claim dropped unbatched; its lease was gone already");
        }
    }
}

/// What `max_records` and `max_batches` leave, over every worker (`u64::MAX`: no limit).
struct Budget {
    records: AtomicU64,
    batches: AtomicU64,
}

impl Budget {
    fn new(config: &BatchConfig) -> Budget {
        Budget {
            records: AtomicU64::new(config.max_records.unwrap_or(u64::MAX)),
            batches: AtomicU64::new(config.max_batches.unwrap_or(u64::MAX)),
        }
    }

    fn take(counter: &AtomicU64) -> bool {
        counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(1)).is_ok()
    }

    /// Reserve up to `n` records; how many were reserved.
    fn reserve(&self, n: usize) -> usize {
        let n = n as u64;
        match self.records.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| Some(left - left.min(n))) {
            Ok(left) => left.min(n) as usize,
            Err(_) => 0,
        }
    }

    /// Return records reserved and not claimed.
    fn give_back(&self, n: usize) {
        if n > 0 {
            self.records.fetch_add(n as u64, Ordering::AcqRel);
        }
    }
}

/// Everything a worker needs; cloned for each one.
struct Worker<T> {
    queue: WorkQueue,
    max_deliver: u32,
    batching: BatchConfig,
    origin: Arc<str>,
    table: Table,
    outstanding: Outstanding,
    budget: Arc<Budget>,
    /// Stops every worker: the run's shutdown, the stream dropped, `max_batches` reached.
    stop: CancellationToken,
    batches: mpsc::Sender<crate::Result<Batch<T>>>,
}

impl<T> Clone for Worker<T> {
    fn clone(&self) -> Self {
        Worker {
            queue: self.queue.clone(),
            max_deliver: self.max_deliver,
            batching: self.batching.clone(),
            origin: Arc::clone(&self.origin),
            table: Arc::clone(&self.table),
            outstanding: self.outstanding.clone(),
            budget: Arc::clone(&self.budget),
            stop: self.stop.clone(),
            batches: self.batches.clone(),
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> Worker<T> {
    /// Claim, decode and batch until the queue is closed and drained or the workers stop.
    async fn run(self, index: usize) {
        let Worker { queue, max_deliver, batching, origin, table, outstanding, budget, stop, batches } = self;
        // Claims are taken up to CLAIM_CHUNK at a time under one lock, and held (renewed) while
        // they wait in the buffer.
        let chunk = batching.batch_size.clamp(1, CLAIM_CHUNK);
        let start = (queue.clone(), Arc::clone(&table), Arc::clone(&budget), stop.clone(), VecDeque::new());
        let claims = futures::stream::unfold(start, move |(queue, table, budget, stop, mut buffer)| async move {
            if buffer.is_empty() {
                let wanted = budget.reserve(chunk);
                if wanted == 0 {
                    return None;
                }
                let claimed = queue.claim_many(wanted, &stop).await;
                budget.give_back(wanted - claimed.len());
                let now = Instant::now();
                let mut leases = lock(&table);
                for claim in claimed {
                    leases.insert(claim.lease(), now);
                    let held = Held { lease: Some(claim.lease()), table: Arc::clone(&table), queue: queue.clone() };
                    buffer.push_back((claim, held));
                }
            }
            let (claim, held) = buffer.pop_front()?;
            Some((Ok(incoming::<T, Held>(claim, max_deliver, held)), (queue, table, budget, stop, buffer)))
        });
        let make_ack = move |held: Vec<Held>| {
            let leases = held.into_iter().filter_map(Held::into_lease).collect();
            settle(queue.clone(), Arc::clone(&table), outstanding.token(), leases)
        };
        let mut own = batching;
        own.max_records = None;
        own.max_batches = None;
        let mut emitted = batched(claims, own, stop.clone(), origin, make_ack);
        while let Some(batch) = emitted.next().await {
            if !Budget::take(&budget.batches) {
                // Past `max_batches`: the batch is dropped unacknowledged (nacked), and so
                // are the other workers' next ones.
                stop.cancel();
                break;
            }
            if batches.send(batch).await.is_err() {
                break; // the pipeline stopped reading
            }
        }
        tracing::debug!(worker = index, "work-queue worker finished");
    }
}

/// The stream of a queue source with `workers` claim loops.
pub(super) fn open<T: DeserializeOwned + Send + 'static>(
    queue: WorkQueue,
    max_deliver: u32,
    batching: BatchConfig,
    workers: usize,
    origin: Arc<str>,
    ctx: SourceContext,
) -> BatchStream<T> {
    let table: Table = Arc::new(Mutex::new(Leases::new(queue.claim_timeout() / 2)));
    let outstanding = Outstanding::new();
    let renewing = CancellationToken::new();
    if queue.claim_timeout() < NEVER {
        tokio::spawn(heartbeat(queue.clone(), Arc::clone(&table), renewing.clone()));
    }
    let stop = ctx.shutdown.child_token();
    let (tx, mut rx) = mpsc::channel(workers);
    let worker = Worker {
        queue,
        max_deliver,
        budget: Arc::new(Budget::new(&batching)),
        batching,
        origin,
        table,
        outstanding: outstanding.clone(),
        stop: stop.clone(),
        batches: tx,
    };
    tokio::spawn(supervise(worker, workers));
    let received = Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    // The heartbeat stops once every emitted batch is resolved; the workers stop when the
    // stream is dropped.
    Box::pin(settle_at_end(received, outstanding, (renewing.drop_guard(), stop.drop_guard())))
}

/// Run `workers` workers, starting again any that panicked, until all have finished.
async fn supervise<T: DeserializeOwned + Send + 'static>(worker: Worker<T>, workers: usize) {
    let mut running = JoinSet::new();
    let mut index_of = HashMap::new();
    for index in 0..workers {
        let handle = running.spawn(worker.clone().run(index));
        index_of.insert(handle.id(), index);
    }
    while let Some(ended) = running.join_next_with_id().await {
        let (id, error) = match ended {
            Ok((id, ())) => (id, None),
            Err(e) => (e.id(), Some(e)),
        };
        let Some(index) = index_of.remove(&id) else { continue };
        match error {
            Some(e) if e.is_panic() && !worker.stop.is_cancelled() => {
                tracing::error!(
                    worker = index,
                    "work-queue worker panicked; starting it again (its unbatched claims return when their lease expires)"
                );
                let handle = running.spawn(worker.clone().run(index));
                index_of.insert(handle.id(), index);
            }
            Some(e) => tracing::warn!(worker = index, error = %e, "work-queue worker ended abnormally"),
            None => {}
        }
    }
    // `worker` (holding the last sender) goes now: the source's stream ends.
}
