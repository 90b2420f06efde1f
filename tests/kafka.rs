//! The Kafka source and sink against a broker (`KAFKA_BROKERS`; `scripts/test.sh` starts
//! librdkafka's mock cluster in a process of its own, and a missing broker is a failure saying
//! how to start it). Each test has topics and groups of its own. Every check of what is
//! committed reads the group's committed offsets from the broker, through another client.
//!
//! * `round_trip`: the sink produces records keyed by a field, with headers, to 3 partitions;
//!   the source consumes every one, with the topic, partition, offset, key, headers and
//!   timestamp beside the record, and the group's committed offsets end at the end offsets.
//! * `out_of_order_completion_never_commits_past_an_unfinished_batch`: batches acknowledged
//!   out of order, one of them failing: the broker's committed offset stays at the end of the
//!   contiguous done prefix, the failed batch's partition is read again from its first offset
//!   (nothing after it skipped), and the end is committed once everything is done.
//! * `poison_payloads_are_dead_lettered_and_the_rest_flows`.
//! * `a_rebalance_mid_run_loses_nothing`: a second consumer joins the group while the first
//!   one works; every record is consumed at least once across both, and the group's committed
//!   offsets end at the end offsets.
//! * `a_message_too_large_is_dead_lettered_not_retried`: the sink rejects it, the rest is
//!   delivered.
//!
//! The shutdown mid-batch property is in the contract suite (`tests/contract_kafka.rs`).

mod common;
#[path = "common/kafka.rs"]
mod kafka_broker;

use bytes::Bytes;
use common::contract::{Lake, LONG};
use common::{wait_until, wait_until_async, PATIENCE};
use etl::ack::Status;
use etl::batch::{BatchOptions, FailureKind};
use etl::dead_letter::{DeadLetters, MemoryDeadLetters};
use etl::record::Position;
use etl::source::{Source, SourceContext};
use etl::{Json, Pipeline};
use futures::StreamExt;
use kafka_broker::{brokers, committed_async, create_topic, end_offsets_async, produce_async, unique, Out};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn next(stream: &mut etl::batch::BatchStream<Json>) -> etl::batch::BatchParts<Json> {
    tokio::time::timeout(PATIENCE, stream.next()).await.expect("a batch in time").expect("a batch").expect("no error").into_parts()
}

fn n_of(record: &Json) -> u64 {
    record.get("n").and_then(Value::as_u64).expect("a numeric n")
}

fn source(topic: &str, group: &str) -> etl::source::KafkaSource<Json> {
    etl::source::kafka::<Json>([topic], group)
        .brokers(brokers())
        .poll_timeout(Duration::from_millis(20))
        .session_timeout(Duration::from_secs(6))
}

/// Wait until the broker says `group` committed exactly `want` on `topic`.
async fn wait_committed(group: &str, topic: &str, want: Vec<Option<i64>>) {
    let what = format!("group {group} to commit {want:?} on {topic}");
    wait_until_async(PATIENCE, &what, || {
        let (group, topic, want) = (group.to_owned(), topic.to_owned(), want.clone());
        async move { committed_async(&group, &topic).await == want }
    })
    .await;
}

#[tokio::test]
async fn round_trip() {
    const N: u64 = 300;
    let topic = create_topic("round-trip", 3).await;
    let records: Vec<Json> = (0..N).map(|n| serde_json::from_value(json!({"n": n, "customer": format!("c{}", n % 7)})).unwrap()).collect();
    let sink = etl::sink::kafka(&topic).brokers(brokers()).key("customer").headers([("source", "etl-test")]);
    let report = Pipeline::from(etl::source::iter(records).batch_size(50))
        .to(sink)
        .max_in_flight(4)
        .handle_signals(false)
        .run()
        .await
        .expect("produce");
    assert_eq!(report.records_out, N);
    assert_eq!(end_offsets_async(&topic).await.iter().sum::<i64>(), N as i64, "every record produced once");

    let group = unique("round-trip");
    let out = Lake::default();
    let run = Pipeline::from(source(&topic, &group).batch_size(64).batch_timeout(Duration::from_millis(200)).max_records(N))
        .to(out.sink())
        .handle_signals(false)
        .run();
    let report = tokio::time::timeout(PATIENCE, run).await.expect("in time").expect("consume");
    assert_eq!(report.records_out, N);
    let got = out.committed();
    let mut seen = BTreeMap::new();
    for (record, meta) in &got {
        let n = n_of(record);
        *seen.entry(n).or_insert(0) += 1;
        assert_eq!(record.0.len(), 2, "nothing added to the record: {record:?}");
        let Position::Offset { partition, offset } = meta.position else { panic!("an offset position: {meta:?}") };
        assert!((0..3).contains(&partition) && offset >= 0);
        let extra = meta.extra.as_deref().expect("extras");
        assert_eq!(extra.event_type.as_deref(), Some(topic.as_str()), "the topic");
        assert_eq!(extra.key.as_deref(), Some(format!("c{}", n % 7).as_bytes()), "the key is the customer field");
        assert_eq!(extra.headers, vec![("source".to_string(), Bytes::from_static(b"etl-test"))]);
        assert!(extra.timestamp.is_some(), "a timestamp");
        assert_eq!(meta.raw.as_deref().map(|r| serde_json::from_slice::<Value>(r).unwrap()), Some(serde_json::to_value(record).unwrap()));
    }
    assert_eq!(seen.len() as u64, N, "every record");
    assert!(seen.values().all(|c| *c == 1), "each once");
    let ends = end_offsets_async(&topic).await;
    assert_eq!(committed_async(&group, &topic).await, ends.iter().map(|e| Some(*e)).collect::<Vec<_>>(), "committed up to the end");
}

/// Batches of one partition, resolved by hand: C (20..30) delivered, then A (0..10), then B
/// (10..20) errored.
#[tokio::test]
async fn out_of_order_completion_never_commits_past_an_unfinished_batch() {
    let topic = create_topic("out-of-order", 1).await;
    let group = unique("out-of-order");
    produce_async(&topic, (0..30).map(|n| Out::value(json!({"n": n}).to_string())).collect()).await;
    let shutdown = CancellationToken::new();
    let mut stream =
        source(&topic, &group).batch_size(10).batch_timeout(LONG).open(SourceContext::new(shutdown.clone())).await.expect("open");
    let offsets = |meta: &[etl::record::Meta]| -> Vec<i64> {
        meta.iter().map(|m| if let Position::Offset { offset, .. } = m.position { offset } else { -1 }).collect()
    };
    let a = next(&mut stream).await;
    let b = next(&mut stream).await;
    let c = next(&mut stream).await;
    assert_eq!(offsets(&a.meta), (0..10).collect::<Vec<_>>());
    assert_eq!(offsets(&b.meta), (10..20).collect::<Vec<_>>());
    assert_eq!(offsets(&c.meta), (20..30).collect::<Vec<_>>());

    c.ack.resolve(Status::Delivered);
    // C is done but A and B are not: nothing may be committed. Give the source time to (wrongly)
    // commit: several poll timeouts and commit intervals.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(committed_async(&group, &topic).await, vec![None], "nothing committed while the first batch is in flight");
    a.ack.resolve(Status::Delivered);
    wait_committed(&group, &topic, vec![Some(10)]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(committed_async(&group, &topic).await, vec![Some(10)], "never past B, still in flight, whatever C did");

    // B fails: the source seeks back to 10 and reads 10..30 again; nothing is skipped.
    b.ack.resolve(Status::Errored);
    let mut again = Vec::new();
    while again.len() < 20 {
        let batch = next(&mut stream).await;
        let got = offsets(&batch.meta);
        assert!(got.iter().all(|o| *o >= 10), "nothing before the failed batch is read again: {got:?}");
        again.extend(got);
        batch.ack.resolve(Status::Delivered);
    }
    assert_eq!(again, (10..30).collect::<Vec<_>>(), "read again from the failed batch's first offset, in order, nothing skipped");
    assert_eq!(committed_async(&group, &topic).await.first().copied().flatten().map(|o| o <= 30), Some(true));
    wait_committed(&group, &topic, vec![Some(30)]).await;
    shutdown.cancel();
    while let Some(item) = tokio::time::timeout(PATIENCE, stream.next()).await.expect("the stream ends in time") {
        item.expect("no error").into_parts().ack.resolve(Status::Delivered);
    }
    assert_eq!(committed_async(&group, &topic).await, vec![Some(30)]);
}

#[tokio::test]
async fn poison_payloads_are_dead_lettered_and_the_rest_flows() {
    let topic = create_topic("poison", 1).await;
    let group = unique("poison");
    let mut messages: Vec<Out> = (0..20).map(|n| Out::value(json!({"n": n}).to_string())).collect();
    messages[3] = Out::value(Bytes::from_static(b"{\"n\": 3,"));
    messages[11] = Out { value: Bytes::from_static(b"\xff\xfe binary \x00"), key: Some(Bytes::from_static(b"k")), ..Out::default() };
    let positions = produce_async(&topic, messages.clone()).await;
    let dlq = MemoryDeadLetters::new();
    let out = Lake::default();
    let run = Pipeline::from(source(&topic, &group).batch_size(8).batch_timeout(Duration::from_millis(200)).max_records(20))
        .to(out.sink())
        .dead_letters(dlq.clone())
        .handle_signals(false)
        .run();
    let report = tokio::time::timeout(PATIENCE, run).await.expect("in time").expect("the run");
    assert_eq!((report.records_out, report.dead_lettered), (18, 2), "{report}");
    let mut good: Vec<u64> = out.numbers();
    good.sort_unstable();
    assert_eq!(good, (0..20).filter(|n| *n != 3 && *n != 11).collect::<Vec<_>>());
    let entries = dlq.list().await.unwrap();
    let got: Vec<(Bytes, Position, FailureKind)> = entries.iter().map(|e| (e.payload.clone(), e.position.clone(), e.kind)).collect();
    let at = |i: usize| Position::Offset { partition: positions[i].0, offset: positions[i].1 };
    assert_eq!(
        got,
        vec![(messages[3].value.clone(), at(3), FailureKind::Decode), (messages[11].value.clone(), at(11), FailureKind::Decode)]
    );
    assert_eq!(committed_async(&group, &topic).await, vec![Some(20)], "the batches with dead letters are done");
}

#[tokio::test]
async fn a_rebalance_mid_run_loses_nothing() {
    const FIRST: u64 = 200;
    const SECOND: u64 = 200;
    let topic = create_topic("rebalance", 4).await;
    let group = unique("rebalance");
    let keyed = |n: u64| Out { key: Some(Bytes::from(format!("k{n}"))), value: Bytes::from(json!({"n": n}).to_string()), ..Out::default() };
    produce_async(&topic, (0..FIRST).map(keyed).collect()).await;

    let run = |out: Lake, token: CancellationToken| {
        let slow = out.sink();
        Pipeline::from(source(&topic, &group).batch_size(10).batch_timeout(Duration::from_millis(100)))
            .inspect(|_: &Json| std::thread::sleep(Duration::from_micros(300)))
            .to(slow)
            .max_in_flight(3)
            .cancel_on(token)
            .handle_signals(false)
            .run()
    };
    let (one, two) = (Lake::default(), Lake::default());
    let (stop_one, stop_two) = (CancellationToken::new(), CancellationToken::new());
    let first = tokio::spawn(run(one.clone(), stop_one.clone()));
    wait_until(PATIENCE, "the first consumer to work", || one.len() >= 20).await;
    let second = tokio::spawn(run(two.clone(), stop_two.clone()));
    // The second consumer gets partitions, and records, while the first one is still working.
    produce_async(&topic, (FIRST..FIRST + SECOND).map(keyed).collect()).await;
    wait_until(PATIENCE, "the second consumer to get records", || two.len() > 0).await;
    let all = || {
        let mut seen: Vec<u64> = one.numbers().into_iter().chain(two.numbers()).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len() as u64
    };
    wait_until(PATIENCE, "every record consumed by one of the two", || all() == FIRST + SECOND).await;
    let ends: Vec<Option<i64>> = end_offsets_async(&topic).await.into_iter().map(Some).collect();
    wait_committed(&group, &topic, ends.clone()).await;
    stop_one.cancel();
    stop_two.cancel();
    first.await.expect("no panic").expect("the first consumer's run");
    second.await.expect("no panic").expect("the second consumer's run");
    let (a, b) = (one.len(), two.len());
    assert!(a > 0 && b > 0, "both consumers worked: {a} and {b}");
    assert_eq!(all(), FIRST + SECOND, "every record at least once");
    assert_eq!(committed_async(&group, &topic).await, ends, "committed offsets end at the end");
    eprintln!("rebalance: first consumer {a} records, second {b}, duplicates {}", a + b - (FIRST + SECOND) as usize);
}

#[tokio::test]
async fn a_message_too_large_is_dead_lettered_not_retried() {
    let topic = create_topic("too-large", 1).await;
    let mut records: Vec<Json> = (0..10).map(|n| serde_json::from_value(json!({"n": n})).unwrap()).collect();
    records[4] = serde_json::from_value(json!({"n": 4, "blob": "x".repeat(20_000)})).unwrap();
    let sink = etl::sink::kafka(&topic).brokers(brokers()).properties([("message.max.bytes", "10000")]);
    let dlq = MemoryDeadLetters::new();
    let report = Pipeline::from(etl::source::iter(records).batch_size(5))
        .to(sink)
        .dead_letters(dlq.clone())
        .handle_signals(false)
        .run()
        .await
        .expect("the run goes on");
    assert_eq!((report.records_out, report.dead_lettered), (9, 1), "{report}");
    let entries = dlq.list().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert!(entries[0].error.contains("larger than"), "{}", entries[0].error);
    assert_eq!(entries[0].kind, FailureKind::Sink);
    assert_eq!(end_offsets_async(&topic).await, vec![9], "the others were produced, once");
}

/// The runner's `check` on a Kafka source reaches the brokers and checks the topics, and
/// consumes nothing: the group has no committed offset afterwards; a missing topic is an
/// error naming it. (It does not subscribe, so it never joins the group: the mock broker
/// answers no ListGroups and rebalances on its own, so that part is not observed here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reaches_the_topic_and_consumes_nothing() {
    let topic = create_topic("check", 2).await;
    produce_async(&topic, (0..10).map(|n| Out::value(json!({ "n": n }).to_string())).collect()).await;
    let group = unique("check-group");
    source(&topic, &group).check(SourceContext::new(CancellationToken::new())).await.expect("the topic exists");
    assert_eq!(committed_async(&group, &topic).await, vec![None, None], "check consumed");

    let missing = unique("no-such-topic");
    match source(&missing, &group).check(SourceContext::new(CancellationToken::new())).await {
        Err(err) => assert!(err.to_string().contains(&missing), "{err}"),
        // The mock broker creates topics on first use (auto-creation); a cluster without it
        // refuses.
        Ok(()) => eprintln!("the broker auto-created `{missing}`"),
    }
}
