//! The SQS source and sink against moto on loopback (`MOTO_URL`; `scripts/test.sh` starts it).
//! Every check of delivery reads the queue's own counters, not the library's intentions.

mod common;
mod moto;

use common::{wait_until, wait_until_async, PATIENCE};
use etl::batch::{BatchOptions, FailureKind};
use etl::dead_letter::{DeadLetters, MemoryDeadLetters};
use etl::record::{Meta, Position};
use etl::sink::{Sink, Written};
use etl::{ConnectorError, Json, Pipeline};
use moto::{create_queue, moto_url, queue_depth, send_raw, sqs_client, Fault, FaultProxy};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, etl::Record)]
struct Order {
    id: i64,
    customer: String,
}

fn source<T>(url: &str) -> etl::source::SqsSource<T> {
    etl::source::sqs::<T>(url).endpoint_url(moto_url()).wait_time_seconds(1)
}

fn sink(url: &str) -> etl::sink::SqsSink {
    etl::sink::sqs(url).endpoint_url(moto_url())
}

/// Wait until the queue shows (visible, in flight) = `want`, or fail after `limit`.
async fn wait_for_depth(client: &aws_sdk_sqs::Client, url: &str, want: (u64, u64), limit: Duration) {
    let what = format!("queue depth {want:?}");
    wait_until_async(limit, &what, || async { queue_depth(client, url).await == want }).await
}

/// A sink that records what it wrote, with each record's metadata; with a gate, each write
/// waits until the gate is opened (cancelled).
#[derive(Clone, Default)]
struct Recording {
    written: Arc<Mutex<Vec<(Json, Meta)>>>,
    gate: Option<CancellationToken>,
    /// Writes begun.
    entered: Arc<std::sync::atomic::AtomicUsize>,
}

impl Sink<Json> for Recording {
    fn describe(&self) -> String {
        "recording".into()
    }
    async fn write(&mut self, records: &[Json]) -> Result<Written, ConnectorError> {
        self.write_batch(records, &vec![Meta::default(); records.len()]).await
    }
    async fn write_batch(&mut self, records: &[Json], meta: &[Meta]) -> Result<Written, ConnectorError> {
        self.entered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.cancelled().await;
        }
        self.written.lock().unwrap().extend(records.iter().cloned().zip(meta.iter().cloned()));
        Ok(Written::all())
    }
}

impl Recording {
    fn ids(&self) -> Vec<i64> {
        self.written.lock().unwrap().iter().map(|(r, _)| r.get("id").and_then(|v| v.as_i64()).unwrap()).collect()
    }
}

#[tokio::test]
async fn round_trip_counts_every_record_and_empties_the_queue() {
    let client = sqs_client().await;
    let url = create_queue(&client, "round-trip", &[]).await;
    let orders: Vec<Order> = (0..250).map(|id| Order { id, customer: format!("c,\"{id}\"\n") }).collect();
    let report = Pipeline::from(etl::source::iter(orders.clone()).batch_size(100))
        .to(sink(&url))
        .handle_signals(false)
        .dead_letters(MemoryDeadLetters::new())
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_out, 250);
    assert_eq!(queue_depth(&client, &url).await, (250, 0));

    let out = etl::sink::collect::<Order>();
    // A linger no poll of a queue holding 250 messages comes near: batches close on their size.
    let report = Pipeline::from(source::<Order>(&url).batch_size(100).batch_timeout(Duration::from_secs(60)).max_records(250))
        .to(out.sink())
        .handle_signals(false)
        .dead_letters(MemoryDeadLetters::new())
        .run()
        .await
        .unwrap();
    let mut got = out.records();
    got.sort_by_key(|o| o.id);
    assert_eq!(got, orders);
    // Batches fill across polls of at most 10 messages: 100, 100, and the last 50.
    assert_eq!(report.batches, 3, "{report}");
    // Deleted before `run` returned: the stream's end waits for the deletes.
    assert_eq!(queue_depth(&client, &url).await, (0, 0));
}

#[tokio::test]
async fn drain_after_consumes_what_a_concurrent_producer_sent_then_stops() {
    let client = sqs_client().await;
    let url = create_queue(&client, "drain", &[]).await;
    // The consumer goes through a proxy that shows each receive and its answer.
    let proxy = FaultProxy::start(vec![]).await;
    let producer_done = CancellationToken::new();
    let out = etl::sink::collect::<Order>();
    let consumer = Pipeline::from(
        etl::source::sqs::<Order>(&url).endpoint_url(&proxy.url).wait_time_seconds(1).batch_size(50).drain_after(producer_done.clone()),
    )
    .to(out.sink())
    .handle_signals(false)
    .dead_letters(MemoryDeadLetters::new())
    .run();
    let producer = async {
        // The producer starts only once the consumer's poll of the empty queue came back
        // empty: an empty poll before the producer is done must not stop the consumer.
        wait_until(PATIENCE, "an empty receive", || proxy.receives().contains(&Some(0))).await;
        let orders = (0..120).map(|id| Order { id, customer: "d".into() });
        let report = Pipeline::from(etl::source::iter(orders).batch_size(40))
            .to(sink(&url))
            .handle_signals(false)
            .dead_letters(MemoryDeadLetters::new())
            .run()
            .await;
        producer_done.cancel();
        report
    };
    let (consumed, produced) =
        tokio::time::timeout(PATIENCE, async { tokio::join!(consumer, producer) }).await.expect("the consumer stops once drained");
    assert_eq!(produced.unwrap().records_out, 120);
    assert_eq!(consumed.unwrap().records_out, 120);
    let ids: BTreeSet<i64> = out.records().iter().map(|o| o.id).collect();
    assert_eq!(ids.len(), 120);
    assert_eq!(queue_depth(&client, &url).await, (0, 0));
    let receives = proxy.receives();
    let first_full = receives.iter().position(|r| r.is_some_and(|n| n > 0)).expect("receives with messages");
    assert!(receives[..first_full].contains(&Some(0)), "an empty receive came before the first message: {receives:?}");
    // It stopped on an empty receive after the producer was done (nothing is left in a poll).
    assert_eq!(receives.last(), Some(&Some(0)), "{receives:?}");
}

#[tokio::test]
async fn an_oversized_record_is_dead_lettered_and_the_others_are_sent() {
    let client = sqs_client().await;
    let url = create_queue(&client, "oversized", &[("MaximumMessageSize", "1024")]).await;
    let mut records: Vec<Json> = (0..5).map(|i| serde_json::from_value(json!({"id": i})).unwrap()).collect();
    records.insert(2, serde_json::from_value(json!({"id": 99, "blob": "x".repeat(2000)})).unwrap());
    let dead = MemoryDeadLetters::new();
    let report =
        Pipeline::from(etl::source::iter(records)).to(sink(&url)).handle_signals(false).dead_letters(dead.clone()).run().await.unwrap();
    assert_eq!(report.records_out, 5);
    let entries = dead.list().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, FailureKind::Sink);
    assert!(entries[0].error.contains("maximum message size"), "{}", entries[0].error);
    assert!(entries[0].payload.len() > 2000);
    assert_eq!(queue_depth(&client, &url).await, (5, 0));
}

#[tokio::test]
async fn an_entry_the_queue_refuses_is_rejected_and_the_rest_of_its_request_sent() {
    let client = sqs_client().await;
    let url = create_queue(&client, "refused", &[]).await;
    let mut sink = sink(&url);
    Sink::<Json>::open(&mut sink, etl::sink::SinkContext::default()).await.unwrap();
    // The queue shrinks its limit after the sink read it: only the queue can refuse now.
    client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize, "1024")
        .send()
        .await
        .unwrap();
    let mut records: Vec<Json> = (0..12).map(|i| serde_json::from_value(json!({"id": i})).unwrap()).collect();
    records[7] = serde_json::from_value(json!({"id": 7, "blob": "y".repeat(3000)})).unwrap();
    let written = sink.write(&records).await.unwrap();
    assert_eq!(written.rejected.len(), 1, "{:?}", written.rejected);
    assert_eq!(written.rejected[0].0, 7);
    assert!(written.rejected[0].1.contains("InvalidParameterValue"), "{}", written.rejected[0].1);
    assert_eq!(queue_depth(&client, &url).await, (11, 0));
}

#[tokio::test]
async fn open_fails_on_a_missing_queue() {
    let url = format!("{}/123456789012/{}", moto_url(), moto::unique("missing"));
    let mut sink = sink(&url);
    let e = Sink::<Json>::open(&mut sink, etl::sink::SinkContext::default()).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("GetQueueAttributes"), "{e}");
    let out = etl::sink::collect::<Json>();
    let e = Pipeline::from(source::<Json>(&url)).to(out.sink()).handle_signals(false).run().await.unwrap_err();
    assert!(e.to_string().contains("sqs source") && e.to_string().contains("NonExistentQueue"), "{e}");
}

/// Fails every write once, after checking that the batch's messages are still on the queue
/// (in flight, not deleted).
struct FailOnce {
    client: aws_sdk_sqs::Client,
    url: String,
    failed: bool,
    seen_in_flight: Arc<Mutex<Vec<(u64, u64)>>>,
    written: Arc<Mutex<BTreeSet<i64>>>,
}

impl Sink<Order> for FailOnce {
    fn describe(&self) -> String {
        "fail-once".into()
    }
    async fn write(&mut self, records: &[Order]) -> Result<Written, ConnectorError> {
        let depth = queue_depth(&self.client, &self.url).await;
        self.seen_in_flight.lock().unwrap().push(depth);
        if !self.failed {
            self.failed = true;
            return Err(ConnectorError::permanent("fail-once", "table is gone"));
        }
        self.written.lock().unwrap().extend(records.iter().map(|o| o.id));
        Ok(Written::all())
    }
}

#[tokio::test]
async fn a_failed_run_makes_its_messages_visible_again_and_nothing_is_lost() {
    let client = sqs_client().await;
    // A long visibility timeout: only the source's reset can bring the messages back quickly.
    let url = create_queue(&client, "redeliver", &[("VisibilityTimeout", "60")]).await;
    let bodies: Vec<String> = (0..20).map(|id| serde_json::to_string(&Order { id, customer: "a".into() }).unwrap()).collect();
    send_raw(&client, &url, &bodies.iter().map(String::as_str).collect::<Vec<_>>()).await;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let written = Arc::new(Mutex::new(BTreeSet::new()));
    let failing =
        FailOnce { client: client.clone(), url: url.clone(), failed: false, seen_in_flight: seen.clone(), written: written.clone() };
    let e = Pipeline::from(source::<Order>(&url).batch_size(20).batch_timeout(Duration::from_secs(60)))
        .to(failing)
        .handle_signals(false)
        .dead_letters(MemoryDeadLetters::new())
        .run()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("table is gone"), "{e}");
    // During the write the messages were in flight, not deleted.
    assert_eq!(seen.lock().unwrap()[0], (0, 20));
    // Visible again at once: well before the 60 s visibility timeout.
    wait_for_depth(&client, &url, (20, 0), Duration::from_secs(40)).await;

    let working =
        FailOnce { client: client.clone(), url: url.clone(), failed: true, seen_in_flight: seen.clone(), written: written.clone() };
    let report = Pipeline::from(source::<Order>(&url).batch_size(20).batch_timeout(Duration::from_secs(60)).max_records(20))
        .to(working)
        .handle_signals(false)
        .dead_letters(MemoryDeadLetters::new())
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_out, 20);
    assert_eq!(written.lock().unwrap().len(), 20);
    assert_eq!(queue_depth(&client, &url).await, (0, 0));
}

#[tokio::test]
async fn a_retried_write_deletes_only_after_it_succeeds() {
    let client = sqs_client().await;
    let url = create_queue(&client, "retry", &[("VisibilityTimeout", "60")]).await;
    let bodies: Vec<String> = (0..10).map(|id| serde_json::to_string(&Order { id, customer: "b".into() }).unwrap()).collect();
    send_raw(&client, &url, &bodies.iter().map(String::as_str).collect::<Vec<_>>()).await;

    /// Fails the first attempt of each batch with a retryable error.
    struct Flaky {
        client: aws_sdk_sqs::Client,
        url: String,
        attempts: Vec<(u64, u64)>,
        written: Arc<Mutex<Vec<i64>>>,
    }
    impl Sink<Order> for Flaky {
        fn describe(&self) -> String {
            "flaky".into()
        }
        async fn write(&mut self, records: &[Order]) -> Result<Written, ConnectorError> {
            self.attempts.push(queue_depth(&self.client, &self.url).await);
            if self.attempts.len() % 2 == 1 {
                return Err(ConnectorError::retryable("flaky", "connection reset"));
            }
            self.written.lock().unwrap().extend(records.iter().map(|o| o.id));
            Ok(Written::all())
        }
    }
    let written = Arc::new(Mutex::new(Vec::new()));
    let flaky = Flaky { client: client.clone(), url: url.clone(), attempts: vec![], written: written.clone() };
    let report = Pipeline::from(source::<Order>(&url).batch_size(10).batch_timeout(Duration::from_secs(60)).max_records(10))
        .to(flaky)
        .retry(etl::pipeline::RetryPolicy::default().initial_delay(Duration::from_millis(10)))
        .handle_signals(false)
        .dead_letters(MemoryDeadLetters::new())
        .run()
        .await
        .unwrap();
    assert_eq!(report.retries, 1);
    assert_eq!(written.lock().unwrap().len(), 10);
    assert_eq!(queue_depth(&client, &url).await, (0, 0));
}

#[tokio::test]
async fn a_message_received_too_often_is_dead_lettered_with_its_body_then_deleted() {
    let client = sqs_client().await;
    let url = create_queue(&client, "poison", &[]).await;
    send_raw(&client, &url, &[r#"{"id":1,"customer":"p"}"#, r#"{"id":2,"customer":"p"}"#]).await;
    // Two earlier receives that never acknowledged (visibility 0: back at once).
    for _ in 0..2 {
        let mut got = 0;
        while got < 2 {
            let out = client.receive_message().queue_url(&url).max_number_of_messages(10).visibility_timeout(0).send().await.unwrap();
            got += out.messages().len();
        }
    }
    let dead = MemoryDeadLetters::new();
    let out = etl::sink::collect::<Order>();
    let report = Pipeline::from(source::<Order>(&url).max_receives(2).batch_size(2).max_records(2))
        .to(out.sink())
        .handle_signals(false)
        .dead_letters(dead.clone())
        .run()
        .await
        .unwrap();
    assert!(out.records().is_empty());
    assert_eq!(report.dead_lettered, 2);
    let entries = dead.list().await.unwrap();
    let mut payloads: Vec<String> = entries.iter().map(|e| String::from_utf8(e.payload.to_vec()).unwrap()).collect();
    payloads.sort();
    assert_eq!(payloads, [r#"{"id":1,"customer":"p"}"#, r#"{"id":2,"customer":"p"}"#]);
    for e in &entries {
        assert_eq!(e.attempts, 3);
        assert_eq!(e.kind, FailureKind::MaxDeliveries);
        assert!(e.error.contains("max_receives = 2"), "{}", e.error);
        assert!(matches!(e.position, Position::Id(_)));
    }
    assert_eq!(queue_depth(&client, &url).await, (0, 0));
}

#[tokio::test]
async fn a_malformed_body_is_dead_lettered_with_its_bytes_then_deleted() {
    let client = sqs_client().await;
    let url = create_queue(&client, "malformed", &[]).await;
    send_raw(&client, &url, &["{oops", r#"{"id":5,"customer":"ok"}"#, r#"{"id":"six"}"#]).await;
    let dead = MemoryDeadLetters::new();
    let out = etl::sink::collect::<Order>();
    Pipeline::from(source::<Order>(&url).batch_size(3).max_records(3))
        .to(out.sink())
        .handle_signals(false)
        .dead_letters(dead.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(out.records(), vec![Order { id: 5, customer: "ok".into() }]);
    let mut entries = dead.list().await.unwrap();
    entries.sort_by(|a, b| a.payload.cmp(&b.payload));
    assert_eq!(entries.len(), 2);
    assert_eq!(&entries[0].payload[..], br#"{"id":"six"}"#);
    assert_eq!(&entries[1].payload[..], b"{oops");
    assert!(entries.iter().all(|e| e.kind == FailureKind::Decode));
    assert_eq!(queue_depth(&client, &url).await, (0, 0));
}

#[tokio::test]
async fn the_heartbeat_keeps_a_slow_batch_invisible() {
    const VISIBILITY: Duration = Duration::from_secs(4);
    let client = sqs_client().await;
    let url = create_queue(&client, "heartbeat", &[]).await;
    send_raw(&client, &url, &[r#"{"id":1}"#]).await;
    // The source goes through a proxy that shows its visibility extensions.
    let proxy = FaultProxy::start(vec![]).await;
    let gate = CancellationToken::new();
    let sink = Recording { gate: Some(gate.clone()), ..Recording::default() };
    let run = tokio::spawn(
        Pipeline::from(
            etl::source::sqs::<Json>(&url)
                .endpoint_url(&proxy.url)
                .wait_time_seconds(1)
                .visibility_timeout(VISIBILITY)
                .batch_size(1)
                .max_records(1),
        )
        .to(sink.clone())
        .handle_signals(false)
        .dead_letters(MemoryDeadLetters::new())
        .run(),
    );
    // The sink holds the message while a second consumer polls the queue, until the heartbeat
    // has extended its visibility three times (each once half of the timeout has passed since
    // the last): the message has then been in flight for 1.5 visibility timeouts.
    wait_until(PATIENCE, "the sink to hold the message", || sink.entered.load(std::sync::atomic::Ordering::SeqCst) == 1).await;
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut stolen = 0;
    while proxy.answered("ChangeMessageVisibilityBatch") < 3 {
        assert!(std::time::Instant::now() < deadline, "three visibility extensions within {PATIENCE:?}: {:?}", proxy.exchanges());
        let out = client.receive_message().queue_url(&url).wait_time_seconds(1).send().await.unwrap();
        stolen += out.messages().len();
    }
    gate.cancel();
    tokio::time::timeout(PATIENCE, run).await.expect("the run ends once the sink has written").unwrap().unwrap();
    assert_eq!(stolen, 0, "the message became visible while in flight");
    let written = sink.written.lock().unwrap().clone();
    assert_eq!(written.len(), 1);
    let extra = written[0].1.extra.as_ref().unwrap();
    assert_eq!(extra.delivery_count, Some(1));
    assert_eq!(queue_depth(&client, &url).await, (0, 0));
}

#[tokio::test]
async fn shutdown_interrupts_a_long_poll() {
    let client = sqs_client().await;
    let url = create_queue(&client, "shutdown", &[]).await;
    send_raw(&client, &url, &[r#"{"id":1}"#, r#"{"id":2}"#]).await;
    // The source goes through a proxy that shows each receive and whether moto answered it.
    let proxy = FaultProxy::start(vec![]).await;
    let token = CancellationToken::new();
    let sink = Recording::default();
    let run = tokio::spawn(
        Pipeline::from(
            etl::source::sqs::<Json>(&url)
                .endpoint_url(&proxy.url)
                .wait_time_seconds(20)
                .batch_size(100)
                .batch_timeout(Duration::from_secs(60)),
        )
        .to(sink.clone())
        .cancel_on(token.clone())
        .handle_signals(false)
        .dead_letters(MemoryDeadLetters::new())
        .run(),
    );
    // Both messages in hand (a partial batch), and the source in a long poll of a queue with
    // nothing visible, which moto holds for 20 s.
    wait_until(PATIENCE, "both messages received and a long poll in progress", || {
        let receives = proxy.receives();
        receives.iter().flatten().sum::<usize>() == 2 && receives.last() == Some(&None)
    })
    .await;
    let polls = proxy.receives().len();
    token.cancel();
    let report = tokio::time::timeout(PATIENCE, run).await.expect("the run ends").unwrap().unwrap();
    // Returned while the poll in progress had no answer yet: it was cut off, not waited out.
    let receives = proxy.receives();
    assert_eq!(receives[polls - 1], None, "the run waited for the long poll to end: {receives:?}");
    assert_eq!(receives.len(), polls, "no poll after the cancellation");
    // The partial batch was flushed, written and deleted before `run` returned.
    assert_eq!(report.records_out, 2);
    let mut ids = sink.ids();
    ids.sort();
    assert_eq!(ids, [1, 2]);
    assert_eq!(queue_depth(&client, &url).await, (0, 0));
}

#[tokio::test]
async fn interpolated_queue_url_and_bad_options_fail_at_start_up() {
    let out = etl::sink::collect::<Json>();
    let e = Pipeline::from(source::<Json>("${ETL_TEST_SURELY_UNSET_QUEUE}")).to(out.sink()).handle_signals(false).run().await.unwrap_err();
    assert!(e.to_string().contains("ETL_TEST_SURELY_UNSET_QUEUE"), "{e}");
    let e =
        Pipeline::from(source::<Json>("http://x/q").wait_time_seconds(21)).to(out.sink()).handle_signals(false).run().await.unwrap_err();
    assert!(e.to_string().contains("wait_time_seconds"), "{e}");
}

#[tokio::test]
async fn entries_that_fail_on_the_queues_side_are_sent_again() {
    let client = sqs_client().await;
    let url = create_queue(&client, "entry-retry", &[]).await;
    let proxy = FaultProxy::start(vec![Fault::FailFirstEntry { action: "SendMessageBatch", times: 2 }]).await;
    let records: Vec<Json> = (0..25).map(|i| serde_json::from_value(json!({"id": i})).unwrap()).collect();
    let dead = MemoryDeadLetters::new();
    let report = Pipeline::from(etl::source::iter(records).batch_size(25))
        .to(etl::sink::sqs(&url).endpoint_url(&proxy.url))
        .handle_signals(false)
        .dead_letters(dead.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(proxy.injected.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(report.records_out, 25);
    assert!(dead.is_empty());
    // The failed entries never reached the queue; sent again, each message is there once.
    assert_eq!(queue_depth(&client, &url).await, (25, 0));
    let out = etl::sink::collect::<Json>();
    Pipeline::from(source::<Json>(&url).batch_size(25).max_records(25)).to(out.sink()).handle_signals(false).run().await.unwrap();
    let ids: BTreeSet<i64> = out.records().iter().map(|r| r.get("id").and_then(|v| v.as_i64()).unwrap()).collect();
    assert_eq!(ids, (0..25).collect());
}

#[tokio::test]
async fn deletes_that_fail_on_the_queues_side_are_retried_before_the_run_returns() {
    let client = sqs_client().await;
    let url = create_queue(&client, "delete-retry", &[("VisibilityTimeout", "60")]).await;
    let bodies: Vec<String> = (0..10).map(|id| format!(r#"{{"id":{id}}}"#)).collect();
    send_raw(&client, &url, &bodies.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let proxy = FaultProxy::start(vec![Fault::FailFirstEntry { action: "DeleteMessageBatch", times: 1 }]).await;
    let out = etl::sink::collect::<Json>();
    Pipeline::from(etl::source::sqs::<Json>(&url).endpoint_url(&proxy.url).wait_time_seconds(1).batch_size(10).max_records(10))
        .to(out.sink())
        .handle_signals(false)
        .dead_letters(MemoryDeadLetters::new())
        .run()
        .await
        .unwrap();
    assert_eq!(out.len(), 10);
    assert_eq!(proxy.injected.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Not one message left in flight: the failed entry was deleted on a retry.
    assert_eq!(queue_depth(&client, &url).await, (0, 0));
}
