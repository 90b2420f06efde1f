//! The RabbitMQ source and sink against the broker at `RABBITMQ_URL` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`; a missing broker is a failure saying how to start
//! it): what the contract suite (tests/contract_rabbitmq.rs) does not cover. Every check of
//! custody reads the broker's own view (`rabbitmqctl list_queues`: messages ready and
//! unacknowledged), not the library's report. Each test has queues of its own.

mod common;
#[path = "common/proxy.rs"]
mod proxy;
#[path = "common/rabbitmq.rs"]
mod rabbit;

use bytes::Bytes;
use common::contract::LONG;
use common::{quick_retries, wait_until, wait_until_async, PATIENCE};
use etl::ack::Status;
use etl::batch::{BatchOptions, FailureKind};
use etl::dead_letter::{DeadLetters, MemoryDeadLetters};
use etl::sink::{Sink, SinkContext, Written};
use etl::source::{Source, SourceContext};
use etl::{ConnectorError, Json, Pipeline};
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn numbered(range: std::ops::Range<u64>) -> Vec<(String, Bytes)> {
    range.map(|n| (format!("m-{n}"), Bytes::from(json!({"n": n}).to_string()))).collect()
}

fn drained() -> CancellationToken {
    let token = CancellationToken::new();
    token.cancel();
    token
}

/// A two-phase sink that keeps what was committed (records with their `n`), shared with the
/// test.
#[derive(Clone, Default)]
struct Kept {
    committed: Arc<Mutex<Vec<u64>>>,
    buffered: Vec<u64>,
    /// Fail (retryably) every write holding a record with `"poison": true`.
    refuse_poison: bool,
    /// Take this long per write (so that a test can act while the run is under way).
    slow: Option<Duration>,
}

impl Kept {
    fn numbers(&self) -> Vec<u64> {
        self.committed.lock().unwrap().clone()
    }
}

impl Sink<Json> for Kept {
    fn describe(&self) -> String {
        "kept".into()
    }

    async fn write(&mut self, records: &[Json]) -> Result<Written, ConnectorError> {
        if self.refuse_poison && records.iter().any(|r| r.get("poison") == Some(&json!(true))) {
            return Err(ConnectorError::retryable("kept", "this record always fails"));
        }
        if let Some(pause) = self.slow {
            tokio::time::sleep(pause).await;
        }
        self.buffered.extend(records.iter().filter_map(|r| r.get("n").and_then(Value::as_u64)));
        Ok(Written::all())
    }

    async fn commit(&mut self) -> Result<(), ConnectorError> {
        self.committed.lock().unwrap().append(&mut self.buffered);
        Ok(())
    }
}

fn counts(numbers: &[u64]) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for n in numbers {
        *out.entry(*n).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn a_missing_queue_is_a_start_up_error_naming_it() {
    let _ = rabbit::admin().await;
    let queue = rabbit::unique("missing");
    let source = etl::source::rabbitmq::<Json>(&queue).url(rabbit::url());
    let result = Pipeline::from(source).to(etl::sink::blackhole()).handle_signals(false).run().await;
    let error = result.expect_err("a missing queue fails the start");
    assert!(error.is_startup(), "a start-up error: {error}");
    let text = format!("{error:#}");
    assert!(text.contains(&queue) && text.contains("NOT_FOUND"), "names the queue and the broker's answer: {text}");
}

#[tokio::test]
async fn refused_credentials_are_a_permanent_start_up_error() {
    let _ = rabbit::admin().await;
    let url = rabbit::url().replacen("guest:guest", "guest:wrong-password", 1);
    let source = etl::source::rabbitmq::<Json>("anything").url(url);
    let error = Pipeline::from(source).to(etl::sink::blackhole()).handle_signals(false).run().await.expect_err("refused");
    assert!(error.is_startup(), "{error}");
    assert!(!format!("{error:#}").contains("wrong-password"), "the password is never printed: {error:#}");
}

/// `declare = true` creates the queue, the exchange and the binding; messages published to
/// the exchange arrive with their exchange, routing key and headers beside the record.
#[tokio::test]
async fn declare_creates_queue_exchange_and_binding_and_metadata_says_where_a_message_came_from() {
    let (_c, channel) = rabbit::admin().await;
    let queue = rabbit::unique("declared");
    let exchange = rabbit::unique("declared-x");
    let make = || {
        etl::source::rabbitmq::<Json>(&queue)
            .url(rabbit::url())
            .declare(true)
            .exchange(&exchange)
            .exchange_type("topic")
            .routing_key("order.*")
            .drain_after(drained())
            .batch_size(10)
            .batch_timeout(LONG)
    };
    // The first run declares (the queue is empty: it ends at once).
    let out = common::contract::Lake::default();
    Pipeline::from(make()).to(out.sink()).handle_signals(false).run().await.expect("first run");
    let mut headers = lapin::types::FieldTable::default();
    headers.insert("source".into(), lapin::types::AMQPValue::LongString("shop".into()));
    headers.insert("attempt".into(), lapin::types::AMQPValue::LongInt(3));
    let properties = lapin::BasicProperties::default().with_message_id("m-1".into()).with_headers(headers).with_timestamp(1_700_000_000);
    for key in ["order.created", "invoice.created"] {
        channel
            .basic_publish(exchange.as_str().into(), key.into(), Default::default(), br#"{"n": 1}"#, properties.clone())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let out = common::contract::Lake::default();
    Pipeline::from(make()).to(out.sink()).handle_signals(false).run().await.expect("second run");
    let got = out.committed();
    assert_eq!(got.len(), 1, "only `order.*` is bound: {got:?}");
    let extra = got[0].1.extra.as_deref().expect("extras");
    assert_eq!(extra.exchange.as_deref(), Some(exchange.as_str()));
    assert_eq!(extra.key.as_deref(), Some(&b"order.created"[..]));
    assert_eq!(extra.message_id.as_deref(), Some("m-1"));
    assert_eq!(extra.timestamp, Some(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
    let header = |name: &str| extra.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(header("source").as_deref(), Some(&b"shop"[..]));
    assert_eq!(header("attempt").as_deref(), Some(&b"3"[..]));
    assert_eq!(rabbit::depth(&queue).await, (0, 0));
    rabbit::delete(&channel, &queue).await;
}

/// An errored batch is rejected with requeue, and the broker's view says so: the messages are
/// unacknowledged while the batch is in flight, then delivered again (redelivered, delivery
/// count 2), and gone once the second delivery is acknowledged.
#[tokio::test]
async fn an_errored_batch_is_requeued_and_delivered_again() {
    let (_c, channel) = rabbit::admin().await;
    let queue = rabbit::queue(&channel, "requeue", false).await;
    rabbit::publish(&channel, &queue, &numbered(0..5)).await;
    let source = etl::source::rabbitmq::<Json>(&queue).url(rabbit::url()).batch_size(5).batch_timeout(LONG);
    let token = CancellationToken::new();
    let mut batches = source.open(SourceContext::new(token.clone())).await.expect("open");
    let first = batches.next().await.expect("a batch").expect("no error").into_parts();
    assert_eq!(first.records.len(), 5);
    assert_eq!(rabbit::depth(&queue).await, (0, 5), "in flight: unacknowledged");
    first.ack.resolve(Status::Errored);
    let second = batches.next().await.expect("a batch").expect("no error").into_parts();
    let numbers: Vec<u64> = second.records.iter().map(|r| r.get("n").and_then(Value::as_u64).unwrap()).collect();
    assert_eq!(numbers, [0, 1, 2, 3, 4], "the same messages, in order");
    for meta in &second.meta {
        let extra = meta.extra.as_deref().unwrap();
        assert_eq!((extra.redelivered, extra.delivery_count), (Some(true), Some(2)), "{extra:?}");
    }
    second.ack.resolve(Status::Delivered);
    token.cancel();
    assert!(batches.next().await.is_none(), "the stream ends once settled");
    assert_eq!(rabbit::depth(&queue).await, (0, 0), "acknowledged");
    rabbit::delete(&channel, &queue).await;
}

/// Out-of-order completion: the second batch is delivered before the first fails. The
/// second's acknowledgement must not settle the first's messages (no `multiple` over them):
/// the first's come back, the second's do not.
#[tokio::test]
async fn a_batch_completing_before_an_earlier_one_settles_only_its_own_messages() {
    let (_c, channel) = rabbit::admin().await;
    let queue = rabbit::queue(&channel, "order", false).await;
    rabbit::publish(&channel, &queue, &numbered(0..6)).await;
    let source = etl::source::rabbitmq::<Json>(&queue).url(rabbit::url()).batch_size(3).batch_timeout(LONG);
    let token = CancellationToken::new();
    let mut batches = source.open(SourceContext::new(token.clone())).await.expect("open");
    let a = batches.next().await.unwrap().unwrap().into_parts();
    let b = batches.next().await.unwrap().unwrap().into_parts();
    b.ack.resolve(Status::Delivered);
    wait_until_async(PATIENCE, "the second batch acknowledged", || async { rabbit::depth(&queue).await == (0, 3) }).await;
    a.ack.resolve(Status::Errored);
    let again = batches.next().await.unwrap().unwrap().into_parts();
    let numbers: Vec<u64> = again.records.iter().map(|r| r.get("n").and_then(Value::as_u64).unwrap()).collect();
    assert_eq!(numbers, [0, 1, 2], "only the first batch comes back");
    again.ack.resolve(Status::Delivered);
    token.cancel();
    assert!(batches.next().await.is_none());
    assert_eq!(rabbit::depth(&queue).await, (0, 0));
    rabbit::delete(&channel, &queue).await;
}

/// A prefetch below the batch size is raised: a batch of 50 fills with a prefetch of 10 and
/// an hour-long linger (it would otherwise wait for the linger forever).
#[tokio::test]
async fn a_prefetch_below_the_batch_size_is_raised_so_a_batch_can_fill() {
    let (_c, channel) = rabbit::admin().await;
    let queue = rabbit::queue(&channel, "prefetch", false).await;
    rabbit::publish(&channel, &queue, &numbered(0..50)).await;
    let source = etl::source::rabbitmq::<Json>(&queue).url(rabbit::url()).prefetch_count(10).batch_size(50).batch_timeout(LONG);
    let token = CancellationToken::new();
    let mut batches = source.open(SourceContext::new(token.clone())).await.expect("open");
    let batch = tokio::time::timeout(PATIENCE, batches.next()).await.expect("a full batch, not a stall").unwrap().unwrap();
    assert_eq!(batch.len(), 50);
    batch.into_parts().ack.resolve(Status::Delivered);
    token.cancel();
    assert!(batches.next().await.is_none());
    assert_eq!(rabbit::depth(&queue).await, (0, 0));
    rabbit::delete(&channel, &queue).await;
}

/// A classic queue: the source counts redeliveries by message id. A message whose batch keeps
/// failing is, on its delivery past `max_redeliveries`, a failure with its exact bytes (kind
/// `max_deliveries`), and once that batch is done it is acknowledged: gone from the broker.
#[tokio::test]
async fn a_poison_message_of_a_classic_queue_is_set_aside_after_max_redeliveries() {
    let (_c, channel) = rabbit::admin().await;
    let queue = rabbit::queue(&channel, "poison", false).await;
    let body = Bytes::from_static(b"{\"n\": 7, \"poison\": true, \"bytes\": \"\xc3\xa9\"}");
    rabbit::publish(&channel, &queue, &[("poison-7".into(), body.clone())]).await;
    let source = etl::source::rabbitmq::<Json>(&queue).url(rabbit::url()).max_redeliveries(2).batch_size(1).batch_timeout(LONG);
    let token = CancellationToken::new();
    let mut batches = source.open(SourceContext::new(token.clone())).await.expect("open");
    let mut errored = 0;
    let failure = loop {
        let parts = tokio::time::timeout(PATIENCE, batches.next()).await.expect("a delivery").unwrap().unwrap().into_parts();
        if let Some(failure) = parts.failures.first().cloned() {
            parts.ack.resolve(Status::Rejected);
            break failure;
        }
        assert_eq!(parts.records.len(), 1);
        errored += 1;
        assert!(errored <= 3, "never around the loop forever");
        parts.ack.resolve(Status::Errored);
    };
    assert_eq!(errored, 3, "delivered once and redelivered twice before it is set aside");
    assert_eq!(failure.kind, FailureKind::MaxDeliveries);
    assert_eq!(failure.payload, body, "its exact bytes");
    assert_eq!(failure.attempts, 4);
    assert!(failure.error.contains("max_redeliveries = 2"), "{}", failure.error);
    token.cancel();
    assert!(batches.next().await.is_none());
    assert_eq!(rabbit::depth(&queue).await, (0, 0), "acknowledged once dead-lettered");
    rabbit::delete(&channel, &queue).await;
}

/// A quorum queue counts deliveries itself (`x-delivery-count`), across consumers and
/// restarts: a message that fails every run (the sink refuses it, the run fails, the broker
/// requeues) is dead-lettered by the run that receives it past `max_redeliveries`, with its
/// bytes, and acknowledged; the other messages arrive. (A prefetch of 1: RabbitMQ 3.x counts
/// every return of a quorum queue's message, so the messages a failed run had prefetched
/// behind the poison one would be counted too; see the source's docs.)
#[tokio::test]
async fn a_poison_message_of_a_quorum_queue_is_dead_lettered_across_runs() {
    let (_c, channel) = rabbit::admin().await;
    let queue = rabbit::queue(&channel, "poison-quorum", true).await;
    let poison = Bytes::from(json!({"n": 99, "poison": true}).to_string());
    // The poison message last: a message queued behind it would be handed out while a failed
    // run nacks the poison one and returned when that run's connection closes, and a quorum
    // queue counts that return as a delivery (seen in a suite run: `m-1` dead-lettered after 3
    // failed runs). That is the broker's count, which the source cannot tell apart.
    let mut messages = numbered(0..3);
    messages.push(("poison-99".into(), poison.clone()));
    rabbit::publish(&channel, &queue, &messages).await;
    let dlq = MemoryDeadLetters::new();
    let kept = Kept { refuse_poison: true, ..Kept::default() };
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs <= 6, "the poison message is set aside after max_redeliveries, not retried forever");
        let source = etl::source::rabbitmq::<Json>(&queue)
            .url(rabbit::url())
            .max_redeliveries(2)
            .prefetch_count(1)
            .drain_after(drained())
            .batch_size(1)
            .batch_timeout(LONG);
        let run = Pipeline::from(source).to(kept.clone()).retry(quick_retries(0)).dead_letters(dlq.clone()).handle_signals(false).run();
        if tokio::time::timeout(PATIENCE, run).await.expect("the run ends").is_ok() {
            break;
        }
    }
    let entries = dlq.list().await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].payload, poison);
    assert_eq!(entries[0].kind, FailureKind::MaxDeliveries);
    // A failed run returns the message once or twice (its batch is rejected with requeue,
    // the broker may hand it back before the connection closes, then the close returns it):
    // the first delivery past the limit is at least the fourth.
    assert!(entries[0].attempts >= 4, "x-delivery-count past 2: {}", entries[0].attempts);
    assert!(runs <= 4, "at most three failed runs before the one that dead-letters it: {runs}");
    let got = counts(&kept.numbers());
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), [0, 1, 2], "the others arrive: {got:?}");
    assert_eq!(rabbit::depth(&queue).await, (0, 0), "the queue is empty: acknowledged after the dead letter");
    rabbit::delete(&channel, &queue).await;
}

/// The connection drops twice during a run (a TCP proxy between the source and the broker
/// resets it, as a broker restart or a network failure would): the source reconnects with
/// backoff and resumes; what was unacknowledged is delivered again, nothing is lost, and
/// acknowledgements of the dead channels are never sent on the new one (the broker would
/// close it with "unknown delivery tag", or settle other messages).
#[tokio::test]
async fn a_dropped_connection_loses_nothing_and_resumes() {
    const N: u64 = 600;
    let (_c, channel) = rabbit::admin().await;
    let queue = rabbit::queue(&channel, "dropped", false).await;
    let slow = Some(Duration::from_millis(10));
    rabbit::publish(&channel, &queue, &numbered(0..N)).await;
    let proxy = proxy::TcpProxy::start(rabbit::addr()).await;
    let source = etl::source::rabbitmq::<Json>(&queue)
        .url(rabbit::url_via(proxy.addr))
        .prefetch_count(40)
        .drain_after(drained())
        .batch_size(20)
        .batch_timeout(Duration::from_millis(200));
    let kept = Kept { slow, ..Kept::default() };
    let run = tokio::spawn(Pipeline::from(source).to(kept.clone()).max_in_flight(2).handle_signals(false).run());
    for cut in 1..=2u64 {
        wait_until(PATIENCE, "progress before the cut", || kept.numbers().len() as u64 >= cut * N / 4).await;
        let before = proxy.accepted();
        proxy.reset_connections();
        wait_until(PATIENCE, "the source connects again", || proxy.accepted() > before).await;
    }
    let report = tokio::time::timeout(PATIENCE, run).await.expect("the run ends").expect("no panic").expect("the run succeeds");
    let got = counts(&kept.numbers());
    let missing: Vec<u64> = (0..N).filter(|n| !got.contains_key(n)).collect();
    assert!(missing.is_empty(), "nothing lost: missing {missing:?} ({report})");
    assert!(proxy.accepted() >= 3, "reconnected after each drop: {} connections", proxy.accepted());
    let duplicates: usize = got.values().map(|c| c - 1).sum();
    assert!(duplicates <= 2 * 80, "duplicates only from what was in flight at the drops: {duplicates}");
    assert_eq!(rabbit::depth(&queue).await, (0, 0), "every message acknowledged ({duplicates} delivered twice)");
    rabbit::delete(&channel, &queue).await;
}

/// Two consumers (two pipelines, two connections) share one queue; one dies mid-work (its
/// task is dropped with batches in flight, its connection closes): the broker hands its
/// unacknowledged messages to the other, which finishes the queue.
#[tokio::test]
async fn two_consumers_share_a_queue_and_when_one_dies_the_other_finishes() {
    const N: u64 = 400;
    let (_c, channel) = rabbit::admin().await;
    let queue = rabbit::queue(&channel, "shared", false).await;
    rabbit::publish(&channel, &queue, &numbered(0..N)).await;
    let make = |drain: CancellationToken| {
        etl::source::rabbitmq::<Json>(&queue)
            .url(rabbit::url())
            .prefetch_count(20)
            .drain_after(drain)
            .batch_size(10)
            .batch_timeout(Duration::from_millis(200))
    };
    /// A sink that takes its time, so that both consumers get work.
    #[derive(Clone, Default)]
    struct Slow(Kept);
    impl Sink<Json> for Slow {
        fn describe(&self) -> String {
            "slow".into()
        }
        async fn write(&mut self, records: &[Json]) -> Result<Written, ConnectorError> {
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.0.write(records).await
        }
        async fn commit(&mut self) -> Result<(), ConnectorError> {
            self.0.commit().await
        }
    }
    let (a, b) = (Slow::default(), Slow::default());
    let dies = tokio::spawn(Pipeline::from(make(CancellationToken::new())).to(a.clone()).handle_signals(false).run());
    let survivor_drain = CancellationToken::new();
    let survives = tokio::spawn(Pipeline::from(make(survivor_drain.clone())).to(b.clone()).handle_signals(false).run());
    wait_until(PATIENCE, "both consumers working", || a.0.numbers().len() >= 50 && b.0.numbers().len() >= 50).await;
    dies.abort();
    let _ = dies.await;
    let died_with = a.0.numbers().len();
    survivor_drain.cancel();
    tokio::time::timeout(PATIENCE, survives).await.expect("the survivor ends").expect("no panic").expect("the survivor's run");
    let mut all = a.0.numbers();
    all.extend(b.0.numbers());
    let got = counts(&all);
    let missing: Vec<u64> = (0..N).filter(|n| !got.contains_key(n)).collect();
    assert!(missing.is_empty(), "the survivor finished the queue: missing {missing:?}");
    assert!(b.0.numbers().len() as u64 >= N - died_with as u64, "the survivor took the rest");
    assert_eq!(rabbit::depth(&queue).await, (0, 0));
    rabbit::delete(&channel, &queue).await;
}

// ---------------------------------------------------------------------------------------------
// The sink

/// Messages no queue takes are returned by the broker (`mandatory`): the sink publishes them
/// again, then its commit fails (nothing is acknowledged upstream); once a queue is bound, the
/// same records are committed, and the queue holds each once.
#[tokio::test]
async fn unroutable_messages_fail_the_commit_until_a_queue_takes_them() {
    let (_c, channel) = rabbit::admin().await;
    let exchange = rabbit::exchange(&channel, "unroutable").await;
    let queue = rabbit::queue(&channel, "unroutable", false).await;
    let mut sink = etl::sink::rabbitmq("orders")
        .url(rabbit::url())
        .exchange(&exchange)
        .retry(etl::pipeline::RetryPolicy::default().max_retries(2).initial_delay(Duration::from_millis(10)));
    Sink::<Json>::open(&mut sink, SinkContext::default()).await.expect("open");
    let records: Vec<Json> = (0..3).map(|n| serde_json::from_value(json!({"n": n})).unwrap()).collect();
    sink.write(&records).await.expect("published");
    let error = Sink::<Json>::commit(&mut sink).await.expect_err("returned messages fail the commit");
    assert!(error.is_retryable(), "{error}");
    assert!(format!("{error}").contains("NO_ROUTE"), "says why: {error}");
    rabbit::bind(&channel, &queue, &exchange, "orders").await;
    sink.write(&records).await.expect("published again");
    Sink::<Json>::commit(&mut sink).await.expect("confirmed");
    Sink::<Json>::close(&mut sink).await.unwrap();
    assert_eq!(rabbit::depth(&queue).await, (3, 0), "each record once");
    let bodies = rabbit::drain(&channel, &queue).await;
    let got: Vec<Value> = bodies.iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
    assert_eq!(got, [json!({"n": 0}), json!({"n": 1}), json!({"n": 2})]);
    rabbit::delete(&channel, &queue).await;
}

#[tokio::test]
async fn the_routing_key_can_come_from_the_record() {
    let (_c, channel) = rabbit::admin().await;
    let exchange = rabbit::exchange(&channel, "by-kind").await;
    let (paid, other) = (rabbit::queue(&channel, "paid", false).await, rabbit::queue(&channel, "other", false).await);
    rabbit::bind(&channel, &paid, &exchange, "order.paid").await;
    rabbit::bind(&channel, &other, &exchange, "order.other").await;
    let records: Vec<Json> = (0..4).map(|n| serde_json::from_value(json!({"n": n, "paid": n % 2 == 0})).unwrap()).collect();
    let sink = etl::sink::rabbitmq(|r: &Json| if r.get("paid") == Some(&json!(true)) { "order.paid" } else { "order.other" })
        .url(rabbit::url())
        .exchange(&exchange);
    Pipeline::from(etl::source::iter(records)).to(sink).handle_signals(false).run().await.expect("run");
    assert_eq!(rabbit::depth(&paid).await, (2, 0));
    assert_eq!(rabbit::depth(&other).await, (2, 0));
    rabbit::delete(&channel, &paid).await;
    rabbit::delete(&channel, &other).await;
}

#[tokio::test]
async fn a_missing_exchange_is_a_start_up_error() {
    let _ = rabbit::admin().await;
    let exchange = rabbit::unique("missing-x");
    let sink = etl::sink::rabbitmq("k").url(rabbit::url()).exchange(&exchange);
    let error = Pipeline::from(etl::source::iter(vec![json!({"n": 1})])).to(sink).handle_signals(false).run().await.expect_err("refused");
    assert!(error.is_startup(), "{error}");
    assert!(format!("{error:#}").contains(&exchange), "names it: {error:#}");
}

/// The broker restarts during a run (a node of the test's own, stopped with `rabbitmqctl stop`
/// and started again on the same port and data): the source reconnects with backoff once it is
/// back and resumes; nothing is lost (the durable queue kept what was not acknowledged) and
/// the queue ends empty.
#[tokio::test]
async fn a_broker_restart_loses_nothing() {
    const N: u64 = 1000;
    let mut node = rabbit::Node::start().await;
    let connection = lapin::Connection::connect(&node.url(), Default::default()).await.expect("connect to the test's node");
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(Default::default()).await.unwrap();
    let queue = rabbit::queue(&channel, "restart", false).await;
    rabbit::publish(&channel, &queue, &numbered(0..N)).await;
    drop(channel);
    let _ = connection.close(200, "ok".into()).await;
    let source = etl::source::rabbitmq::<Json>(&queue)
        .url(node.url())
        .prefetch_count(40)
        .drain_after(drained())
        .batch_size(20)
        .batch_timeout(Duration::from_millis(200));
    // 50 batches of 20 at 200 ms each: the stop (about 2 s) lands mid-run.
    let kept = Kept { slow: Some(Duration::from_millis(200)), ..Kept::default() };
    let run = tokio::spawn(Pipeline::from(source).to(kept.clone()).max_in_flight(2).handle_signals(false).run());
    wait_until(PATIENCE, "progress before the restart", || kept.numbers().len() as u64 >= N / 5).await;
    node.stop().await;
    let during = kept.numbers().len();
    node.restart().await;
    let report = tokio::time::timeout(2 * PATIENCE, run).await.expect("the run ends").expect("no panic").expect("the run succeeds");
    let got = counts(&kept.numbers());
    let missing: Vec<u64> = (0..N).filter(|n| !got.contains_key(n)).collect();
    assert!(missing.is_empty(), "nothing lost: missing {missing:?} ({report}; {during} committed when the broker stopped)");
    assert!((during as u64) < N, "the restart happened mid-run");
    let duplicates: usize = got.values().map(|c| c - 1).sum();
    assert!(duplicates <= 80, "duplicates only from what was in flight at the stop: {duplicates}");
    assert_eq!(rabbit::depth_on(&node.name, &queue).await, Some((0, 0)), "the queue ends empty ({duplicates} delivered twice)");
    node.stop().await;
}

/// The `pipeline!` steps: a typed `rabbitmq` source into a `rabbitmq` sink routing by a field
/// of the record, with the steps' arguments as Rust expressions.
#[tokio::test]
async fn pipeline_macro_reads_and_writes_rabbitmq() {
    #[derive(Debug, Clone, etl::Record, serde::Serialize, serde::Deserialize)]
    struct Numbered {
        n: u64,
    }
    let (_c, channel) = rabbit::admin().await;
    let input = rabbit::queue(&channel, "macro-in", false).await;
    let (even, odd) = (rabbit::queue(&channel, "macro-even", false).await, rabbit::queue(&channel, "macro-odd", false).await);
    rabbit::publish(&channel, &input, &numbered(0..10)).await;
    let url = rabbit::url();
    let (even_key, odd_key) = (even.clone(), odd.clone());
    let report = etl::pipeline! {
        rabbitmq(queue = input.clone(), url = url.clone(), prefetch_count = 50, max_redeliveries = 3, batch_size = 4, max_records = 10) as Numbered
        | filter(|r| r.n < 100)
        | rabbitmq(routing_key = move |r: &Numbered| if r.n % 2 == 0 { even_key.clone() } else { odd_key.clone() }, url = url.clone(), mandatory = true)
    }
    .handle_signals(false)
    .run()
    .await
    .expect("the run");
    assert_eq!(report.records_out, 10, "{report}");
    assert_eq!(rabbit::depth(&even).await, (5, 0));
    assert_eq!(rabbit::depth(&odd).await, (5, 0));
    assert_eq!(rabbit::depth(&input).await, (0, 0));
    for q in [&input, &even, &odd] {
        rabbit::delete(&channel, q).await;
    }
}
