//! `WorkQueue::source().workers(n)`: n claim loops feeding one pipeline, with random nacks and
//! worker deaths, each message acknowledged exactly once in the end.

use etl::ack::Status;
use etl::channel::WorkQueue;
use etl::prelude::*;
use etl::source::SourceContext;
use futures::StreamExt;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Messages in the big test: 1 000 000 (`ETL_WORKERS_MESSAGES` overrides).
fn messages() -> u64 {
    std::env::var("ETL_WORKERS_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

/// Every this many messages, one kills the worker decoding it the first time.
const DEATH_EVERY: u64 = 50_000;
static DEATHS: Mutex<Option<HashSet<u64>>> = Mutex::new(None);
static DIED: AtomicU64 = AtomicU64::new(0);

/// A message whose decoding panics (killing its worker, mid-batch) the first time for one id
/// in [`DEATH_EVERY`].
struct Msg(u64);

impl<'de> serde::Deserialize<'de> for Msg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = u64::deserialize(d)?;
        if id % DEATH_EVERY == 17 {
            let first = DEATHS.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(HashSet::new).insert(id);
            if first {
                DIED.fetch_add(1, Ordering::Relaxed);
                panic!("worker death on message {id} (on purpose)");
            }
        }
        Ok(Msg(id))
    }
}

/// Keep the deliberate panics out of the test's output.
fn quiet_deaths() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.to_string().contains("(on purpose)") {
                default(info);
            }
        }));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_messages_four_workers_random_nacks_and_deaths_each_acked_exactly_once() {
    quiet_deaths();
    let n = messages();
    let started = Instant::now();
    let queue = WorkQueue::with_limits(50_000, Duration::from_millis(300));
    let producer = {
        let queue = queue.clone();
        tokio::spawn(async move {
            for id in 0..n {
                queue.push(id.to_string().into()).await.expect("open queue");
            }
            queue.close();
        })
    };
    let mut acked = vec![0u8; n as usize];
    let (mut nacked_batches, mut rounds) = (0u64, 0u64);
    let mut rng = fastrand::Rng::with_seed(17);
    // A stream ends when the queue is closed and nothing is ready; claims of a dead worker
    // still leased then come back after their lease, for the next consumer (round).
    while !(queue.is_closed() && queue.is_empty()) {
        rounds += 1;
        let source = queue.source::<Msg>().workers(4).max_deliver(1000).batch_size(100).batch_timeout(Duration::from_millis(10));
        let mut stream = source.open(SourceContext::new(CancellationToken::new())).await.expect("opens");
        while let Some(batch) = stream.next().await {
            let parts = batch.expect("no source error").into_parts();
            assert!(parts.failures.is_empty(), "nothing dead-lettered: {:?}", parts.failures.first().map(|f| &f.error));
            if rng.u32(..100) < 3 {
                nacked_batches += 1;
                parts.ack.resolve(Status::Errored);
                continue;
            }
            for Msg(id) in &parts.records {
                acked[*id as usize] += 1;
            }
            parts.ack.resolve(Status::Delivered);
        }
        drop(stream);
        if !queue.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    producer.await.expect("no panic");
    let wrong: Vec<(usize, u8)> = acked.iter().enumerate().filter(|(_, &c)| c != 1).map(|(id, &c)| (id, c)).take(10).collect();
    assert!(wrong.is_empty(), "messages not acked exactly once (id, times): {wrong:?}");
    assert!(queue.is_empty() && queue.in_flight() == 0);
    let died = DIED.load(Ordering::Relaxed);
    assert_eq!(died, n / DEATH_EVERY + u64::from(n % DEATH_EVERY > 17), "every planned worker death happened");
    assert!(nacked_batches > 0);
    eprintln!(
        "{n} messages, 4 workers: {nacked_batches} batches nacked, {died} worker deaths, {rounds} consumer round(s), {:.1?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_feed_one_pipeline_and_every_message_arrives() {
    let queue = WorkQueue::with_limits(100_000, Duration::from_secs(30));
    for id in 0..20_000i64 {
        queue.push(id.to_string().into()).await.expect("open queue");
    }
    queue.close();
    let out = etl::sink::collect();
    let report =
        Pipeline::from(queue.source::<i64>().workers(4).batch_size(250)).to(out.sink()).handle_signals(false).run().await.expect("run");
    let mut got = out.records();
    got.sort_unstable();
    assert_eq!(got, (0..20_000).collect::<Vec<_>>());
    assert_eq!(report.records_in, 20_000);
    assert!(queue.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_records_counts_over_all_workers() {
    let queue = WorkQueue::with_limits(1_000, Duration::from_secs(30));
    for id in 0..500i64 {
        queue.push(id.to_string().into()).await.expect("open queue");
    }
    let out = etl::sink::collect();
    let source = queue.source::<i64>().workers(3).batch_size(7).max_records(50);
    let report = Pipeline::from(source).to(out.sink()).handle_signals(false).run().await.expect("run");
    assert_eq!(report.records_in, 50);
    assert_eq!(out.records().len(), 50);
    assert_eq!((queue.len(), queue.in_flight()), (450, 0), "the rest stays in the queue, unclaimed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_worker_and_leaves_nothing_leased() {
    let queue = WorkQueue::with_limits(1_000, Duration::from_secs(30));
    for id in 0..100i64 {
        queue.push(id.to_string().into()).await.expect("open queue");
    }
    let shutdown = CancellationToken::new();
    let seen = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&seen);
    let mut stream = queue.source::<i64>().workers(4).batch_size(10).open(SourceContext::new(shutdown.clone())).await.expect("opens");
    let first = stream.next().await.expect("a batch").expect("no error").into_parts();
    counted.fetch_add(first.records.len() as u64, Ordering::Relaxed);
    first.ack.resolve(Status::Delivered);
    shutdown.cancel();
    while let Some(batch) = stream.next().await {
        let parts = batch.expect("no error").into_parts();
        counted.fetch_add(parts.records.len() as u64, Ordering::Relaxed);
        parts.ack.resolve(Status::Delivered);
    }
    assert_eq!(queue.in_flight(), 0, "the workers' partial batches were flushed and acknowledged");
    assert_eq!(queue.len() as u64 + seen.load(Ordering::Relaxed), 100);
}
