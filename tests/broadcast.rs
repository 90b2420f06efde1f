//! `etl::channel::Broadcast`: subscribers at their own pace, both overflow policies, the
//! missed count, redelivery of an errored batch, late subscribers and resumed cursors.

use etl::ack::Status;
use etl::channel::{missed, Broadcast, Overflow, Subscriber};
use etl::prelude::*;
use etl::record::Position;
use etl::sink::Written;
use etl::source::SourceContext;
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A record with its sequence number and missed header.
type Got = (u64, u64, Option<u64>);

/// What a subscriber's sink saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Got>>>);

impl Seen {
    fn records(&self) -> Vec<u64> {
        self.0.lock().unwrap().iter().map(|(_, r, _)| *r).collect()
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A sink that takes `delay` per batch and notes what it got (the metadata comes from an
/// operator placed before it, since sinks see records only).
struct Slow {
    delay: Duration,
    seen: Seen,
}

impl Sink<Got> for Slow {
    fn describe(&self) -> String {
        "slow".into()
    }
    async fn write(&mut self, records: &[Got]) -> Result<Written, etl::ConnectorError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.seen.0.lock().unwrap().extend_from_slice(records);
        Ok(Written::all())
    }
}

/// An operator pairing each record with its sequence number and missed header.
struct WithMeta;

impl Operator<u64> for WithMeta {
    type Out = Got;
    async fn apply(&mut self, batch: Batch<u64>) -> Batch<Got> {
        let meta: Vec<_> = batch.meta().iter().map(|m| (sequence(&m.position), missed(m))).collect();
        let mut i = 0;
        batch.map(|r| {
            let (seq, missed) = meta[i];
            i += 1;
            (seq, r, missed)
        })
    }
}

fn sequence(position: &Position) -> u64 {
    match position {
        Position::Sequence(s) => *s,
        other => panic!("a broadcast record has a sequence number, not {other:?}"),
    }
}

/// Run `subscription` into a [`Slow`] sink until the log is closed and drained.
fn consume(
    subscription: etl::channel::Subscription<u64>,
    batch_size: usize,
    delay: Duration,
) -> (Seen, tokio::task::JoinHandle<etl::Result<etl::RunReport>>) {
    let seen = Seen::default();
    let sink = Slow { delay, seen: seen.clone() };
    let run = Pipeline::from(subscription.batch_size(batch_size).batch_timeout(Duration::from_millis(5)))
        .then(WithMeta)
        .to(sink)
        .handle_signals(false)
        .run();
    (seen, tokio::spawn(run))
}

/// Every record once, in order, without a missed header.
fn assert_everything(seen: &Seen, n: u64) {
    let got = seen.0.lock().unwrap().clone();
    assert_eq!(got.len() as u64, n, "every record");
    for (i, (seq, record, missed)) in got.into_iter().enumerate() {
        assert_eq!((seq, record, missed), (i as u64, i as u64, None), "in order, nothing missed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_makes_the_producer_wait_for_the_slowest_and_nobody_loses_anything() {
    const N: u64 = 2_000;
    const CAPACITY: usize = 64;
    let log = Broadcast::<u64>::new(CAPACITY, Overflow::Block);
    let (fast, fast_run) = consume(log.subscribe("fast"), 50, Duration::ZERO);
    let (slow, slow_run) = consume(log.subscribe("slow"), 16, Duration::from_millis(2));
    let records: Vec<u64> = (0..N).collect();
    let producer = Pipeline::from(etl::source::iter(records).batch_size(100)).to(log.sink()).handle_signals(false).run();
    let report = producer.await.expect("the producer's run");
    assert_eq!(report.records_out, N);
    // Everything is appended, and at most CAPACITY records were not acknowledged by the slow
    // subscriber: the producer waited for it.
    let slow_done = slow.len();
    assert!(slow_done as u64 >= N - CAPACITY as u64, "the slow subscriber had written {slow_done} of {N} when the producer finished");
    assert!(log.len() <= CAPACITY);
    log.close();
    fast_run.await.expect("no panic").expect("fast run");
    slow_run.await.expect("no panic").expect("slow run");
    assert_everything(&fast, N);
    assert_everything(&slow, N);
    assert!(log.is_empty(), "acknowledged by both: nothing kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_tells_a_late_subscriber_exactly_what_it_missed() {
    const N: u64 = 1_000;
    const CAPACITY: usize = 100;
    let log = Broadcast::<u64>::new(CAPACITY, Overflow::DropOldest);
    let fast = log.subscribe("fast");
    let slow = log.subscribe("slow"); // subscribed from the start, but not read until the end
    let (fast_handle, slow_handle) = (fast.handle(), slow.handle());
    let (fast_seen, fast_run) = consume(fast, 10, Duration::ZERO);
    // The producer never runs more than half the log ahead of the fast subscriber.
    for chunk in (0..N).collect::<Vec<_>>().chunks(CAPACITY / 2) {
        log.publish(chunk).await.expect("open log");
        wait_until(&fast_handle, chunk[chunk.len() - 1] + 1).await;
    }
    log.close();
    fast_run.await.expect("no panic").expect("fast run");
    assert_everything(&fast_seen, N);
    assert_eq!(fast_handle.missed(), 0);

    let (slow_seen, slow_run) = consume(slow, 7, Duration::ZERO);
    let slow_report = slow_run.await.expect("no panic").expect("slow run");
    assert_eq!(slow_report.missed, N - CAPACITY as u64, "the run's report counts what it missed: {slow_report}");
    let got = slow_seen.0.lock().unwrap().clone();
    let first = N - CAPACITY as u64;
    assert_eq!(slow_seen.records(), (first..N).collect::<Vec<_>>(), "a contiguous suffix: the last {CAPACITY} records");
    assert_eq!(got[0].2, Some(first), "the first record it receives says how many it missed");
    assert!(got[1..].iter().all(|(_, _, missed)| missed.is_none()));
    assert_eq!(slow_handle.missed(), first, "missed + received = written");
    assert_eq!(log.dropped(), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_with_a_slow_subscriber_reading_along_counts_every_gap() {
    const N: u64 = 5_000;
    const CAPACITY: usize = 200;
    let log = Broadcast::<u64>::new(CAPACITY, Overflow::DropOldest);
    let fast = log.subscribe("fast");
    let slow = log.subscribe("slow");
    let (fast_handle, slow_handle) = (fast.handle(), slow.handle());
    let (fast_seen, fast_run) = consume(fast, 50, Duration::ZERO);
    let (slow_seen, slow_run) = consume(slow, 20, Duration::from_millis(5));
    for chunk in (0..N).collect::<Vec<_>>().chunks(CAPACITY / 2) {
        log.publish(chunk).await.expect("open log");
        wait_until(&fast_handle, chunk[chunk.len() - 1] + 1).await;
    }
    log.close();
    fast_run.await.expect("no panic").expect("fast run");
    slow_run.await.expect("no panic").expect("slow run");
    assert_everything(&fast_seen, N);

    let got = slow_seen.0.lock().unwrap().clone();
    let mut expected_next = 0;
    let mut headers = 0;
    for (seq, record, missed) in &got {
        assert_eq!(seq, record);
        assert!(*seq >= expected_next, "in order, no duplicate");
        let gap = seq - expected_next;
        assert_eq!(missed.unwrap_or(0), gap, "a gap before {seq} is announced on the record after it, exactly");
        headers += gap;
        expected_next = seq + 1;
    }
    assert_eq!(expected_next, N, "the slow subscriber gets the last record");
    assert!(slow_handle.missed() > 0, "the slow subscriber lagged");
    assert_eq!(slow_handle.missed(), headers);
    assert_eq!(got.len() as u64 + slow_handle.missed(), N, "every record received or counted as missed");
}

async fn wait_until(handle: &Subscriber, acknowledged: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while handle.acknowledged() < acknowledged {
        assert!(tokio::time::Instant::now() < deadline, "{} stuck at {}", handle.name(), handle.acknowledged());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_subscribers_each_at_its_own_pace_and_a_late_one_from_the_end() {
    let log = Broadcast::<u64>::named("processed", 1_000, Overflow::Block);
    let (a, a_run) = consume(log.subscribe("dashboard"), 1, Duration::from_micros(200));
    let (b, b_run) = consume(log.subscribe("archive"), 333, Duration::from_millis(20));
    log.publish(&(0..500).collect::<Vec<_>>()).await.expect("open log");
    let late = log.subscribe("late");
    log.publish(&(500..1000).collect::<Vec<_>>()).await.expect("open log");
    let (c, c_run) = consume(late, 100, Duration::ZERO);
    log.close();
    for run in [a_run, b_run, c_run] {
        run.await.expect("no panic").expect("run");
    }
    assert_everything(&a, 1000);
    assert_everything(&b, 1000);
    assert_eq!(c.records(), (500..1000).collect::<Vec<_>>(), "a late subscriber starts at the end");
}

#[tokio::test]
async fn an_errored_batch_is_redelivered_from_the_cursor_and_a_reopened_subscriber_resumes() {
    let log = Broadcast::<u64>::new(100, Overflow::Block);
    let subscription = log.subscribe("s").batch_size(3);
    log.publish(&[10, 11, 12, 13, 14, 15]).await.expect("open log");
    let shutdown = CancellationToken::new();
    let mut stream = subscription.open(SourceContext::new(shutdown.clone())).await.expect("opens");
    let first = stream.next().await.expect("a batch").expect("no error").into_parts();
    assert_eq!(first.records, [10, 11, 12]);
    first.ack.resolve(Status::Errored);
    let again = stream.next().await.expect("a batch").expect("no error").into_parts();
    assert_eq!(again.records, [10, 11, 12], "read again from the cursor");
    assert_eq!(again.meta[0].position, Position::Sequence(0));
    again.ack.resolve(Status::Delivered);
    let next = stream.next().await.expect("a batch").expect("no error").into_parts();
    assert_eq!(next.records, [13, 14, 15]);
    // A second source on the same subscriber is refused while this one reads.
    let err = log.subscribe("s").open(SourceContext::new(CancellationToken::new())).await.err().expect("busy");
    assert!(err.to_string().contains("already being read"), "{err}");
    // The run stops with 13..16 unacknowledged: subscribing again resumes there.
    drop(next);
    shutdown.cancel();
    while stream.next().await.is_some() {}
    drop(stream);
    let mut resumed = log.subscribe("s").open(SourceContext::new(CancellationToken::new())).await.expect("released");
    let batch = resumed.next().await.expect("a batch").expect("no error").into_parts();
    assert_eq!(batch.records, [13, 14, 15]);
    assert_eq!(log.len(), 3, "0..3 acknowledged and dropped");
}

#[tokio::test]
async fn a_closed_log_fails_the_producing_pipeline() {
    let log = Broadcast::<u64>::new(10, Overflow::Block);
    log.close();
    let result = Pipeline::from(etl::source::iter(vec![1u64])).to(log.sink()).handle_signals(false).run().await;
    let err = result.expect_err("closed");
    assert!(err.to_string().contains("closed"), "{err}");
}
