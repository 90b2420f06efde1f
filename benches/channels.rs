//! The in-process channels: `WorkQueue` claims per second by queue depth, and `Broadcast`
//! throughput with 1 and 2 subscribers beside a hand-written `tokio::sync::broadcast` loop.
//!
//! `cargo bench --bench channels`. `ETL_BENCH_CLAIMS` (default 200 000) claims per depth,
//! `ETL_BENCH_RECORDS` (default 1 000 000) records through each broadcast.
//!
//! * **WorkQueue, steady**: the queue holds `depth` messages; each step claims the head, acks it
//!   and pushes a new message, so the depth stays put. sssn's work queue degrades to about
//!   5 500 msg/s at 20 000 queued (claims scan the list); the goal here is a flat line.
//! * **WorkQueue, drain**: claim all `depth` messages (the leases pile up), then ack them all.
//! * **WorkQueue source**: `depth` messages drained through `queue.source().workers(n)` into a
//!   pipeline (decode, batch, ack), on a 2-thread runtime.
//! * **Broadcast**: a task publishes `ETL_BENCH_RECORDS` u64 in chunks of 1 000 into a log of
//!   4 096 entries (`Overflow::Block`); each subscriber reads its source's stream and
//!   acknowledges each batch (`stream`), or runs a pipeline into a counting sink (`pipeline`).
//!   The baseline is `tokio::sync::broadcast` (capacity 4 096) with a sender loop and one
//!   `recv` loop per receiver, no batching, no acks; before each chunk of 1 000 the sender
//!   yields until the channel has room for it, so that nothing is lost, as with `Overflow::Block`. Also shown: the same loop
//!   without that wait (tokio's own policy: receivers lag and lose records, counted).

#[path = "harness/measure.rs"]
mod measure;

use etl::ack::Status;
use etl::channel::{Broadcast, Overflow, WorkQueue};
use etl::prelude::*;
use etl::sink::Written;
use etl::source::SourceContext;
use futures::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn filled(depth: usize) -> WorkQueue {
    let queue = WorkQueue::with_limits(depth + 1, Duration::from_secs(3600));
    for id in 0..depth {
        queue.push(id.to_string().into()).await.expect("open queue");
    }
    queue
}

/// Claims per second at a constant depth.
async fn steady(depth: usize, claims: u64) -> f64 {
    let queue = filled(depth).await;
    let started = Instant::now();
    for id in 0..claims {
        let claim = queue.try_claim().expect("a message is ready");
        queue.ack(&claim).expect("own lease");
        queue.push(id.to_string().into()).await.expect("open queue");
    }
    claims as f64 / started.elapsed().as_secs_f64()
}

/// Claims per second and acks per second, draining `depth` messages.
async fn drain(depth: usize) -> (f64, f64) {
    let queue = filled(depth).await;
    let started = Instant::now();
    let mut claims = Vec::with_capacity(depth);
    while let Some(claim) = queue.try_claim() {
        claims.push(claim);
    }
    let claimed = started.elapsed();
    let started = Instant::now();
    for claim in &claims {
        queue.ack(claim).expect("own lease");
    }
    let acked = started.elapsed();
    assert!(queue.is_empty());
    (depth as f64 / claimed.as_secs_f64(), depth as f64 / acked.as_secs_f64())
}

/// Records per second through `queue.source().workers(n)` into a pipeline.
async fn through_source(depth: usize, workers: usize) -> f64 {
    let queue = filled(depth).await;
    queue.close();
    let started = Instant::now();
    let report = Pipeline::from(queue.source::<u64>().workers(workers).batch_size(1000))
        .to(Count::default())
        .handle_signals(false)
        .run()
        .await
        .expect("run");
    assert_eq!(report.records_out as usize, depth);
    depth as f64 / started.elapsed().as_secs_f64()
}

#[derive(Default, Clone)]
struct Count(Arc<AtomicU64>);

impl Sink<u64> for Count {
    fn describe(&self) -> String {
        "count".into()
    }
    async fn write(&mut self, records: &[u64]) -> Result<Written, etl::ConnectorError> {
        self.0.fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(Written::all())
    }
}

const CAPACITY: usize = 4096;

/// Records per second (of the producer's records, all subscribers done) through a Broadcast.
async fn broadcast(records: u64, subscribers: usize, pipeline: bool) -> f64 {
    let log = Broadcast::<u64>::new(CAPACITY, Overflow::Block);
    let mut readers = Vec::new();
    for i in 0..subscribers {
        let subscription = log.subscribe(format!("s{i}")).batch_size(1000).batch_timeout(Duration::from_millis(5));
        readers.push(tokio::spawn(async move {
            if pipeline {
                let count = Count::default();
                Pipeline::from(subscription).to(count.clone()).handle_signals(false).run().await.expect("run");
                count.0.load(Ordering::Relaxed)
            } else {
                let mut stream = subscription.open(SourceContext::new(CancellationToken::new())).await.expect("opens");
                let mut n = 0;
                while let Some(batch) = stream.next().await {
                    let parts = batch.expect("no error").into_parts();
                    n += parts.records.len() as u64;
                    parts.ack.resolve(Status::Delivered);
                }
                n
            }
        }));
    }
    let started = Instant::now();
    let chunk: Vec<u64> = (0..1000).collect();
    let mut sent = 0;
    while sent < records {
        let n = (records - sent).min(1000) as usize;
        log.publish(&chunk[..n]).await.expect("open log");
        sent += n as u64;
    }
    log.close();
    for reader in readers {
        assert_eq!(reader.await.expect("no panic"), records);
    }
    records as f64 / started.elapsed().as_secs_f64()
}

/// The baseline: records per second and records lagged through `tokio::sync::broadcast`;
/// with `lossless`, the sender yields while the channel is full, so no receiver lags.
async fn tokio_broadcast(records: u64, receivers: usize, lossless: bool) -> (f64, u64) {
    let (tx, _) = tokio::sync::broadcast::channel::<u64>(CAPACITY);
    let mut readers = Vec::new();
    for _ in 0..receivers {
        let mut rx = tx.subscribe();
        readers.push(tokio::spawn(async move {
            let (mut got, mut lagged) = (0u64, 0u64);
            loop {
                match rx.recv().await {
                    Ok(_) => got += 1,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => lagged += n,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return (got, lagged),
                }
            }
        }));
    }
    let started = Instant::now();
    for i in 0..records {
        // Before each chunk of 1 000: wait for room for all of it.
        while lossless && i % 1000 == 0 && tx.len() > CAPACITY - 1000 {
            tokio::task::yield_now().await;
        }
        let _ = tx.send(i);
        if i % 1000 == 999 {
            tokio::task::yield_now().await;
        }
    }
    drop(tx);
    let mut lagged = 0;
    for reader in readers {
        let (got, lag) = reader.await.expect("no panic");
        assert_eq!(got + lag, records);
        lagged += lag;
    }
    (records as f64 / started.elapsed().as_secs_f64(), lagged)
}

fn main() {
    let claims = env("ETL_BENCH_CLAIMS", 200_000);
    let records = env("ETL_BENCH_RECORDS", 1_000_000);
    let current = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let threads = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");

    println!("WorkQueue: claims/s by depth ({claims} claims per depth, current-thread runtime; sssn: ~5 500 msg/s at 20 000)\n");
    println!("| queued | steady claim+ack+push /s | drain claims/s | drain acks/s | source workers(1) rec/s | source workers(4) rec/s | steady vs 10 k |");
    println!("|---|---|---|---|---|---|---|");
    let mut baseline = None;
    for depth in [10_000usize, 100_000, 1_000_000] {
        let per_second = current.block_on(steady(depth, claims));
        let (claimed, acked) = current.block_on(drain(depth));
        let one = threads.block_on(through_source(depth, 1));
        let four = threads.block_on(through_source(depth, 4));
        let base = *baseline.get_or_insert(per_second);
        println!("| {depth} | {per_second:.0} | {claimed:.0} | {acked:.0} | {one:.0} | {four:.0} | **{:.2}** |", per_second / base);
    }

    println!("\nBroadcast: {records} u64 records, log of {CAPACITY} (Block), 2-thread runtime\n");
    println!("| channel | subscribers | records/s | lagged (lost) | vs tokio::sync::broadcast |");
    println!("|---|---|---|---|---|");
    for subscribers in [1usize, 2] {
        let (lossy, lagged) = threads.block_on(tokio_broadcast(records, subscribers, false));
        let (base, none) = threads.block_on(tokio_broadcast(records, subscribers, true));
        assert_eq!(none, 0, "the lossless loop waits instead of lagging");
        println!("| tokio::sync::broadcast loop, sender yields while full (baseline) | {subscribers} | {base:.0} | 0 | 1.00 |");
        println!("| tokio::sync::broadcast loop, no backpressure | {subscribers} | {lossy:.0} | {lagged} | {:.2} |", lossy / base);
        let stream = threads.block_on(broadcast(records, subscribers, false));
        println!("| etl Broadcast → source stream, acked per batch | {subscribers} | {stream:.0} | 0 | **{:.2}** |", stream / base);
        let pipeline = threads.block_on(broadcast(records, subscribers, true));
        println!("| etl Broadcast → Pipeline → sink | {subscribers} | {pipeline:.0} | 0 | **{:.2}** |", pipeline / base);
    }
    println!("\nCPU seconds: {:.2}", measure::cpu_seconds());
}
