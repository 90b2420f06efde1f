//! The delivery guarantees of the pipeline driver: nothing lost, nothing acknowledged early,
//! every acknowledgement resolved once and in order, failures dead-lettered, shutdown flushes.

mod common;

use common::*;
use etl::ack::Status;
use etl::batch::{BatchConfig, BatchOptions};
use etl::dead_letter::{DeadLetter, DeadLetters, DynRepublish, MemoryDeadLetters};
use etl::prelude::*;
use etl::{ConnectorError, Error};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn batches(n: usize, size: i64) -> Vec<Vec<i64>> {
    (0..n as i64).map(|b| (b * size..(b + 1) * size).collect()).collect()
}

#[tokio::test]
async fn sink_failing_then_succeeding_loses_nothing_and_acks_only_after_the_write() {
    let timeline = Timeline::default();
    let sink = ScriptedSink::new([Answer::Retryable, Answer::Retryable, Answer::Ok, Answer::Retryable], &timeline);
    let source = AckedBatches { batches: batches(4, 5), timeline: timeline.clone() };
    let report = Pipeline::from(source)
        .to(sink)
        .retry(quick_retries(3))
        .handle_signals(false)
        .dead_letters(MemoryDeadLetters::new())
        .run()
        .await
        .unwrap();

    assert_eq!(timeline.written(), (0..20).collect::<Vec<_>>(), "every record written exactly once, in order");
    assert_eq!(timeline.acks(), (0..4).map(|i| (i, Status::Delivered)).collect::<Vec<_>>());
    // Each batch's acknowledgement comes after its successful write, never after a failed one.
    let events = timeline.events();
    for (i, batch) in batches(4, 5).into_iter().enumerate() {
        let written_at = events.iter().position(|e| *e == Event::Written(batch.clone())).unwrap();
        let acked_at = events.iter().position(|e| *e == Event::Acked(i, Status::Delivered)).unwrap();
        assert!(written_at < acked_at, "batch {i} acknowledged before it was written: {events:?}");
    }
    assert_eq!(report.retries, 3);
    assert_eq!((report.records_in, report.records_out, report.batches), (20, 20, 4));
}

#[tokio::test]
async fn sink_that_always_fails_stops_the_run_and_acks_nothing() {
    let timeline = Timeline::default();
    let sink = ScriptedSink::new(std::iter::repeat_n(Answer::Retryable, 100), &timeline);
    let source = AckedBatches { batches: batches(3, 4), timeline: timeline.clone() };
    let err = Pipeline::from(source)
        .to(sink)
        .retry(quick_retries(2))
        .handle_signals(false)
        .dead_letters(MemoryDeadLetters::new())
        .run()
        .await
        .unwrap_err();

    assert!(matches!(err, Error::Sink(ref e) if e.is_retryable()), "{err}");
    assert!(timeline.written().is_empty());
    let acks = timeline.acks();
    assert!(!acks.is_empty() && acks.iter().all(|(_, s)| *s == Status::Errored), "nothing acknowledged as delivered: {acks:?}");
    let failed = timeline.events().iter().filter(|e| matches!(e, Event::WriteFailed(_))).count();
    assert_eq!(failed, 3, "one attempt and two retries of the first batch, then stop");
}

#[tokio::test]
async fn permanent_sink_errors_are_not_retried() {
    let timeline = Timeline::default();
    let sink = ScriptedSink::new([Answer::Permanent], &timeline);
    let source = AckedBatches { batches: batches(1, 3), timeline: timeline.clone() };
    let err = Pipeline::from(source).to(sink).retry(quick_retries(5)).handle_signals(false).run().await.unwrap_err();
    assert!(matches!(err, Error::Sink(ref e) if !e.is_retryable()), "{err}");
    assert_eq!(timeline.events(), vec![Event::WriteFailed(vec![0, 1, 2]), Event::Acked(0, Status::Errored)]);
}

#[tokio::test]
async fn records_the_sink_rejects_are_dead_lettered_and_the_batch_is_done() {
    let timeline = Timeline::default();
    let sink = ScriptedSink::new([], &timeline).rejecting(|r| r % 3 == 0);
    let dlq = MemoryDeadLetters::new();
    let source = AckedBatches { batches: batches(2, 3), timeline: timeline.clone() };
    let report = Pipeline::from(source).to(sink).handle_signals(false).dead_letters(dlq.clone()).run().await.unwrap();

    assert_eq!(timeline.written(), vec![1, 2, 4, 5]);
    let entries = dlq.list().await.unwrap();
    let payloads: Vec<&[u8]> = entries.iter().map(|e| &e.payload[..]).collect();
    assert_eq!(payloads, [&b"0"[..], b"3"]);
    assert!(entries.iter().all(|e| e.kind == etl::batch::FailureKind::Sink && e.source == "acked-batches"));
    assert_eq!(entries[1].position, etl::record::Position::Index(3));
    assert_eq!(timeline.acks(), vec![(0, Status::Rejected), (1, Status::Rejected)]);
    assert_eq!((report.records_out, report.dead_lettered), (4, 2));
}

#[tokio::test]
async fn failing_transforms_are_dead_lettered_with_the_input_record() {
    let timeline = Timeline::default();
    let dlq = MemoryDeadLetters::new();
    let source = AckedBatches { batches: vec![vec![1, -2, 3]], timeline: timeline.clone() };
    let report = Pipeline::from(source)
        .then(etl::operator::TryMap(|n: i64| if n < 0 { Err(format!("{n} is negative")) } else { Ok(n * 10) }))
        .to(ScriptedSink::new([], &timeline))
        .handle_signals(false)
        .dead_letters(dlq.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(timeline.written(), vec![10, 30]);
    let entries = dlq.list().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!((&entries[0].payload[..], entries[0].error.as_str()), (&b"-2"[..], "-2 is negative"));
    assert_eq!(report.dead_lettered, 1);
}

/// A dead-letter queue that is down.
struct DownQueue;

#[async_trait::async_trait]
impl DeadLetters for DownQueue {
    fn describe(&self) -> String {
        "down".into()
    }
    async fn write(&self, _: Vec<DeadLetter>) -> Result<(), ConnectorError> {
        Err(ConnectorError::retryable("down", "connection refused"))
    }
    async fn list(&self) -> Result<Vec<DeadLetter>, ConnectorError> {
        Ok(vec![])
    }
    async fn replay(
        &self,
        _: &(dyn for<'a> Fn(&'a DeadLetter) -> bool + Send + Sync),
        _: &mut dyn DynRepublish,
    ) -> Result<usize, ConnectorError> {
        Ok(0)
    }
    async fn purge(&self, _: Duration) -> Result<usize, ConnectorError> {
        Ok(0)
    }
}

#[tokio::test]
async fn a_dead_letter_queue_that_is_down_leaves_the_batch_for_redelivery() {
    let timeline = Timeline::default();
    let sink = ScriptedSink::new([], &timeline).rejecting(|r| r == 1);
    let source = AckedBatches { batches: vec![vec![0, 1, 2]], timeline: timeline.clone() };
    let err =
        Pipeline::from(source).to(sink).retry(quick_retries(1)).handle_signals(false).dead_letters(DownQueue).run().await.unwrap_err();
    assert!(matches!(err, Error::DeadLetters(_)), "{err}");
    assert_eq!(timeline.acks(), vec![(0, Status::Errored)], "not done: the rejected record is in nobody's custody");
}

#[tokio::test]
async fn a_dead_letter_write_that_fails_is_retried_and_the_batch_acknowledged_only_after_it() {
    let timeline = Timeline::default();
    let sink = ScriptedSink::new([], &timeline).rejecting(|r| r % 3 == 1);
    let queue = FlakyQueue::new(2, &timeline);
    let (attempts, stored) = (queue.attempts.clone(), queue.stored.clone());
    let source = AckedBatches { batches: batches(2, 3), timeline: timeline.clone() };
    // One batch in flight: each is committed (and acknowledged) before the next is read, so
    // the timeline has one order.
    let report = Pipeline::from(source)
        .to(sink)
        .retry(quick_retries(3))
        .max_in_flight(1)
        .handle_signals(false)
        .dead_letters(queue)
        .run()
        .await
        .unwrap();

    // Batch 0: the queue refuses twice, takes the third attempt; batch 1: the first.
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 4);
    assert_eq!(
        timeline.events(),
        vec![
            Event::Written(vec![0, 2]),
            Event::DeadLetterFailed(vec!["1".into()]),
            Event::DeadLetterFailed(vec!["1".into()]),
            Event::DeadLettered(vec!["1".into()]),
            Event::Acked(0, Status::Rejected),
            Event::Written(vec![3, 5]),
            Event::DeadLettered(vec!["4".into()]),
            Event::Acked(1, Status::Rejected),
        ],
        "each batch acknowledged once, only after its dead letters were stored"
    );
    assert_eq!(payloads(&stored.list().await.unwrap()), ["1", "4"], "each rejected record stored once");
    assert_eq!((report.retries, report.dead_lettered, report.records_out), (2, 2, 4));
}

#[tokio::test]
async fn a_dead_letter_queue_failing_past_the_retries_is_attempted_that_often_then_the_run_fails() {
    let timeline = Timeline::default();
    let sink = ScriptedSink::new([], &timeline).rejecting(|r| r == 1);
    let queue = FlakyQueue::new(usize::MAX, &timeline);
    let (attempts, stored) = (queue.attempts.clone(), queue.stored.clone());
    let source = AckedBatches { batches: batches(2, 3), timeline: timeline.clone() };
    let err = Pipeline::from(source)
        .to(sink)
        .retry(quick_retries(3))
        .max_in_flight(1)
        .handle_signals(false)
        .dead_letters(queue)
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DeadLetters(ref e) if e.is_retryable()), "{err}");
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 4, "one attempt and three retries");
    assert!(stored.is_empty());
    assert_eq!(timeline.written(), vec![0, 2], "batch 0 written once, batch 1 never");
    assert_eq!(timeline.acks(), vec![(0, Status::Errored), (1, Status::Errored)], "both left for redelivery, neither done");
}

// Paused time: no real I/O here, and a sleep lets every task run as far as it can before the
// clock moves, so "not written yet" is checked after the pipeline has taken all it can.
#[tokio::test(start_paused = true)]
async fn shutdown_mid_batch_flushes_the_partial_batch_and_acks_it() {
    let timeline = Timeline::default();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let source =
        Fed { rx, batching: BatchConfig::default().batch_size(100).batch_timeout(Duration::from_secs(3600)), timeline: timeline.clone() };
    let token = CancellationToken::new();
    let run =
        tokio::spawn(Pipeline::from(source).to(ScriptedSink::new([], &timeline)).handle_signals(false).cancel_on(token.clone()).run());
    for i in 0..10 {
        tx.send(i).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(timeline.written().is_empty(), "the batch is neither full nor timed out yet");
    let cancelled = tokio::time::Instant::now();
    token.cancel();
    let report = run.await.unwrap().unwrap();
    assert_eq!(cancelled.elapsed(), Duration::ZERO, "no timer was waited for (the linger is an hour)");
    assert_eq!(timeline.written(), (0..10).collect::<Vec<_>>());
    assert_eq!(timeline.acks(), vec![(0, Status::Delivered)]);
    assert_eq!((report.records_in, report.records_out), (10, 10));
    // The sender is still open: the source stopped because of the shutdown, not end of input.
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn a_trickle_is_flushed_batch_timeout_after_its_first_record() {
    let timeline = Timeline::default();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let source =
        Fed { rx, batching: BatchConfig::default().batch_size(1000).batch_timeout(Duration::from_secs(1)), timeline: timeline.clone() };
    let started = tokio::time::Instant::now();
    let written_at = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = written_at.clone();
    let sink = etl::sink::collect::<i64>();
    let handle = sink.clone();
    let run = tokio::spawn(
        Pipeline::from(source)
            .then(etl::operator::Inspect(move |_: &i64| seen.lock().unwrap().push(started.elapsed())))
            .to(sink.sink())
            .handle_signals(false)
            .run(),
    );
    // One record every 400 ms: an idle timeout would never fire; a linger from the first
    // record fires at 1 s with the records of 0, 0.4 and 0.8 s.
    let feeder = tokio::spawn(async move {
        for i in 0..6 {
            tx.send(i).unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(handle.records(), vec![0, 1, 2], "first batch flushed at 1 s");
    let first_flush = written_at.lock().unwrap()[0];
    assert!(first_flush >= Duration::from_secs(1) && first_flush < Duration::from_millis(1100), "{first_flush:?}");
    feeder.await.unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(handle.records(), (0..6).collect::<Vec<_>>());
    assert_eq!(timeline.acks().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_after_its_deadline_and_leaves_the_batch_for_redelivery() {
    let timeline = Timeline::default();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tx.send(1).unwrap();
    let source = Fed { rx, batching: BatchConfig::default().batch_size(1), timeline: timeline.clone() };
    let token = CancellationToken::new();
    let run = tokio::spawn(
        Pipeline::from(source)
            .to(ScriptedSink::new([Answer::Hang], &timeline))
            .handle_signals(false)
            .cancel_on(token.clone())
            .shutdown_timeout(Duration::from_secs(5))
            .run(),
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    token.cancel();
    let err = run.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::ShutdownTimeout { unfinished: 1, .. }), "{err}");
    assert_eq!(timeline.acks(), vec![(0, Status::Errored)]);
    drop(tx);
}

#[tokio::test]
async fn max_records_and_max_batches_end_the_source() {
    let out = etl::sink::collect::<i64>();
    let report =
        Pipeline::from(etl::source::iter(0..1000).batch_size(10).max_records(25)).to(out.sink()).handle_signals(false).run().await.unwrap();
    assert_eq!(out.records(), (0..25).collect::<Vec<_>>());
    assert_eq!(report.batches, 3);

    let out = etl::sink::collect::<i64>();
    Pipeline::from(etl::source::iter(0..1000).batch_size(10).max_batches(2)).to(out.sink()).handle_signals(false).run().await.unwrap();
    assert_eq!(out.len(), 20);
}

/// A source that fails after its first batch.
struct BreaksAfterOne(Timeline);

impl Source for BreaksAfterOne {
    type Item = i64;
    fn describe(&self) -> String {
        "breaks".into()
    }
    async fn open(self, _ctx: etl::source::SourceContext) -> etl::Result<etl::source::BatchStream<i64>> {
        let t = self.0.clone();
        let ack = etl::ack::Ack::new(move |s| t.push(Event::Acked(0, s)));
        let first = Batch::new(vec![1, 2], vec![Default::default(); 2], vec![], ack, "breaks".into());
        let items = vec![Ok(first), Err(Error::Source(ConnectorError::permanent("breaks", "stream reset")))];
        Ok(Box::pin(futures::stream::iter(items)))
    }
}

#[tokio::test]
async fn a_source_error_still_delivers_what_was_read_then_fails_the_run() {
    let timeline = Timeline::default();
    let err = Pipeline::from(BreaksAfterOne(timeline.clone()))
        .to(ScriptedSink::new([], &timeline))
        .handle_signals(false)
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Source(_)), "{err}");
    assert_eq!(timeline.written(), vec![1, 2]);
    assert_eq!(timeline.acks(), vec![(0, Status::Delivered)]);
}

mod ordered_resolution {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn answer() -> impl Strategy<Value = Answer> {
        prop_oneof![6 => Just(Answer::Ok), 3 => Just(Answer::Retryable), 1 => Just(Answer::Permanent)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the sink does (succeed, fail for a while, fail for good, reject some
        /// records), every batch's acknowledgement reaches the source exactly once, in batch
        /// order. The batches that are done (delivered or rejected) come first, with nothing
        /// done after an errored one; a done batch had its kept records written and its
        /// rejected ones dead-lettered, each exactly once, and is rejected exactly when it had
        /// a rejected record; an errored batch has nothing written nor dead-lettered.
        #[test]
        fn every_ack_once_in_order(
            n in 1usize..12,
            script in prop::collection::vec(answer(), 0..30),
            in_flight in 1usize..4,
            rejected in prop::collection::btree_set(0i64..36, 0..10),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            rt.block_on(async {
                let timeline = Timeline::default();
                let dlq = MemoryDeadLetters::new();
                let source = AckedBatches { batches: batches(n, 3), timeline: timeline.clone() };
                let refused = rejected.clone();
                let result = Pipeline::from(source)
                    .to(ScriptedSink::new(script, &timeline).rejecting(move |r| refused.contains(&r)))
                    .retry(quick_retries(2))
                    .max_in_flight(in_flight)
                    .handle_signals(false)
                    .dead_letters(dlq.clone())
                    .run()
                    .await;
                let acks = timeline.acks();
                let ids: Vec<usize> = acks.iter().map(|(i, _)| *i).collect();
                prop_assert_eq!(&ids, &(0..n).collect::<Vec<_>>(), "every batch resolved, once each, in order");

                let done: Vec<usize> = acks.iter().filter(|(_, s)| *s != Status::Errored).map(|(i, _)| *i).collect();
                prop_assert_eq!(&done, &(0..done.len()).collect::<Vec<_>>(), "nothing done after an errored batch");
                prop_assert_eq!(result.is_ok(), done.len() == n, "the run fails exactly when a batch errored: {:?}", result);

                let (mut kept, mut refused): (Vec<i64>, Vec<String>) = (Vec::new(), Vec::new());
                for &(i, status) in &acks[..done.len()] {
                    let batch = &batches(n, 3)[i];
                    let has_rejects = batch.iter().any(|r| rejected.contains(r));
                    let want = if has_rejects { Status::Rejected } else { Status::Delivered };
                    prop_assert_eq!(status, want, "batch {}", i);
                    kept.extend(batch.iter().filter(|r| !rejected.contains(r)));
                    refused.extend(batch.iter().filter(|r| rejected.contains(r)).map(|r| r.to_string()));
                }
                prop_assert_eq!(&timeline.written(), &kept, "the done batches' kept records written, once each, and nothing else");
                prop_assert_eq!(&payloads(&dlq.list().await.unwrap()), &refused, "the done batches' rejected records dead-lettered, once each");
                if let Ok(report) = &result {
                    prop_assert_eq!((report.records_out, report.dead_lettered), (kept.len() as u64, refused.len() as u64));
                }
                Ok(())
            })?;
        }
    }

    /// The strategy does produce the cases the property is about.
    #[test]
    fn the_cases_cover_rejected_and_errored_batches() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = (prop::collection::vec(answer(), 0..30), prop::collection::btree_set(0i64..36, 0..10));
        let (mut permanent, mut rejects) = (0, 0);
        for _ in 0..64 {
            let (script, rejected): (Vec<Answer>, BTreeSet<i64>) = strategy.new_tree(&mut runner).unwrap().current();
            permanent += usize::from(script.contains(&Answer::Permanent));
            rejects += usize::from(!rejected.is_empty());
        }
        assert!(permanent > 10 && rejects > 40, "{permanent} scripts with a permanent failure, {rejects} with rejections");
    }
}

#[derive(Debug, Clone, PartialEq, etl::Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
}

#[tokio::test]
async fn bad_json_lines_are_dead_lettered_with_raw_bytes_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.jsonl");
    let lines: Vec<&[u8]> = vec![
        br#"{"id":1,"customer":"Ada"}"#,
        br#"{"id":2,"customer":"#,               // truncated
        b"{\"id\":3,\"customer\":\"\xff\xfe\"}", // invalid UTF-8
        br#"{"id":"four","customer":"Bob"}"#,    // wrong type
        "{\"id\":5,\"customer\":\"Zoë, \\\"Z\\\"\"}".as_bytes(),
    ];
    std::fs::write(&input, lines.join(&b'\n')).unwrap();
    let dlq_path = dir.path().join("dlq/orders.jsonl");
    let out = etl::sink::collect::<Order>();

    let report = Pipeline::from(etl::source::file::<Order>(input.display().to_string()).batch_size(2))
        .to(out.sink())
        .handle_signals(false)
        .dead_letters(etl::dead_letter::FileDeadLetters::new(&dlq_path))
        .run()
        .await
        .unwrap();

    let ids: Vec<i64> = out.records().iter().map(|o| o.id).collect();
    assert_eq!(ids, [1, 5]);
    // A fresh handle on the file: what is listed was durably written.
    let entries = etl::dead_letter::FileDeadLetters::new(&dlq_path).list().await.unwrap();
    let payloads: Vec<&[u8]> = entries.iter().map(|e| &e.payload[..]).collect();
    assert_eq!(payloads, [lines[1], lines[2], lines[3]], "exact raw bytes, invalid UTF-8 included");
    let positions: Vec<_> = entries.iter().map(|e| e.position.clone()).collect();
    assert_eq!(positions, [2, 3, 4].map(etl::record::Position::Line));
    assert!(entries.iter().all(|e| e.kind == etl::batch::FailureKind::Decode && e.source.ends_with("orders.jsonl")));
    assert!(entries[2].error.contains("line 4"), "{}", entries[2].error);
    assert_eq!((report.records_in, report.records_out, report.dead_lettered), (5, 2, 3));
}

#[tokio::test]
async fn json_pipelines_work_on_field_paths_and_dead_letter_missing_fields() {
    let records: Vec<Json> = [r#"{"id":1,"length":{"new":10}}"#, r#"{"id":2}"#, r#"{"id":3,"length":{"new":null}}"#]
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    let dlq = MemoryDeadLetters::new();
    let out = etl::sink::collect::<Json>();
    Pipeline::from(etl::source::iter(records))
        .then(etl::operator::TryMap(|mut r: Json| r.rename("length.new", "length_new").map(|()| r)))
        .to(out.sink())
        .handle_signals(false)
        .dead_letters(dlq.clone())
        .run()
        .await
        .unwrap();
    let got: Vec<String> = out.records().iter().map(|r| serde_json::to_string(r).unwrap()).collect();
    assert_eq!(got, [r#"{"id":1,"length":{},"length_new":10}"#, r#"{"id":3,"length":{},"length_new":null}"#]);
    let entries = dlq.list().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(&entries[0].payload[..], br#"{"id":2}"#);
    assert_eq!(entries[0].error, "field `length.new` is missing");
}

/// A sink that records the largest number of batches read but not yet acknowledged.
struct WatchInFlight {
    timeline: Timeline,
    peak: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl etl::Sink<i64> for WatchInFlight {
    fn describe(&self) -> String {
        "watch".into()
    }
    async fn write(&mut self, records: &[i64]) -> Result<etl::sink::Written, ConnectorError> {
        // Give the reader every chance to run ahead.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let unacknowledged = READ.load(std::sync::atomic::Ordering::SeqCst) - self.timeline.acks().len();
        self.peak.fetch_max(unacknowledged, std::sync::atomic::Ordering::SeqCst);
        self.timeline.push(Event::Written(records.to_vec()));
        Ok(etl::sink::Written::all())
    }
}

/// Batches that went through the operators (counted by their first record, batches of 3).
static READ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[tokio::test]
async fn max_in_flight_bounds_batches_read_and_not_acknowledged() {
    for max in [1usize, 2, 3] {
        READ.store(0, std::sync::atomic::Ordering::SeqCst);
        let timeline = Timeline::default();
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let source = AckedBatches { batches: batches(10, 3), timeline: timeline.clone() };
        Pipeline::from(source)
            .then(etl::operator::Inspect(|n: &i64| {
                if n % 3 == 0 {
                    READ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }))
            .to(WatchInFlight { timeline: timeline.clone(), peak: peak.clone() })
            .max_in_flight(max)
            .handle_signals(false)
            .run()
            .await
            .unwrap();
        assert_eq!(timeline.written(), (0..30).collect::<Vec<_>>());
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), max, "max_in_flight = {max}");
    }
}
