//! Kafka throughput against `KAFKA_BROKERS` (`scripts/test.sh` or `etl-kafka-mock` starts
//! librdkafka's mock cluster in a process of its own; topics are created through its control
//! port `KAFKA_MOCK_CONTROL`, or the admin API on a real cluster), each side beside a
//! hand-written rdkafka loop doing the same work in the same run:
//!
//! * **source**: N messages of about 100 bytes (JSON orders), produced beforehand into a topic
//!   of 3 partitions; the etl Kafka source (a group of its own, batches of 1000) →
//!   `etl::sink::blackhole()`, beside a raw `BaseConsumer` loop that polls the same N messages
//!   and decodes each into the same type with serde_json;
//! * **sink**: N records produced by `etl::sink::kafka` (batches of 1000, 4 in flight, every
//!   delivery awaited), beside a raw `FutureProducer` loop that sends them all and awaits
//!   every delivery.
//!
//! `cargo bench --features kafka --bench kafka`; `ETL_BENCH_RECORDS` (default
//! `100000,1000000`). Prints records/s, wall and CPU seconds, the etl side's peak heap (a
//! counting allocator; librdkafka's own buffers are C allocations, not counted on either side)
//! and the ratio etl / loop (records/s).

#[path = "harness/kafka.rs"]
mod kafka_bench;
#[path = "harness/measure.rs"]
mod measure;
#[path = "harness/run.rs"]
mod run;

use etl::prelude::*;
use kafka_bench::{brokers, config, create_topic, partitions_for, produce, unique};
use measure::row;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use std::alloc::System;
use std::time::Duration;

#[global_allocator]
static ALLOC: measure::Counting<System> = measure::Counting(System);

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
    status: String,
    created_at: String,
}

fn order(i: u64) -> Order {
    Order {
        id: 1_000_000_000 + i as i64,
        customer: format!("customer-{:05}", i % 10_000),
        amount_cents: (i as i64 * 7919) % 100_000,
        status: if i % 10 == 0 { "test".into() } else { "paid".into() },
        created_at: format!("2026-11-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, i % 60),
    }
}

/// The raw producer loop: send every record keyed by its id, await every delivery. (Keyed, as
/// the etl sink's records: the hash partitioner spreads them evenly, where the sticky one,
/// for records without a key, can overfill one partition of the mock broker, which then
/// trims it, and the source sides wait for records that are gone.)
async fn raw_produce(topic: &str, n: u64) {
    produce(topic, n, true, |i| serde_json::to_vec(&order(i)).unwrap()).await;
}

/// `ETL_BENCH_KAFKA_PROPS` (`key=value,key=value`): librdkafka properties given to both
/// consumer sides, for tuning experiments.
fn extra_properties() -> Vec<(String, String)> {
    std::env::var("ETL_BENCH_KAFKA_PROPS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// [`raw_consume`] on a blocking thread, measured.
async fn raw_side(topic: &str, n: u64, commit_every: Option<u64>, properties: &'static [(&'static str, &'static str)]) -> measure::Side {
    let topic = topic.to_owned();
    measure::side(async move { tokio::task::spawn_blocking(move || raw_consume(&topic, n, commit_every, properties)).await.unwrap() }).await
}

/// The raw consumer loop: poll and decode N messages. With `commit_every`, an at-least-once
/// loop: after each `commit_every` messages, an asynchronous commit of the consumer's position
/// on every assigned partition (what a hand-written loop that commits per batch does; the etl
/// source commits each acknowledged batch's offsets the same way).
fn raw_consume(topic: &str, n: u64, commit_every: Option<u64>, properties: &[(&str, &str)]) {
    let mut config = config();
    for (key, value) in extra_properties() {
        config.set(key, value);
    }
    for (key, value) in properties {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config
        .set("group.id", unique("bench-raw"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut got = 0;
    let mut sum = 0i64;
    while got < n {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let o: Order = serde_json::from_slice(rdkafka::Message::payload(&m).unwrap()).unwrap();
            sum = sum.wrapping_add(o.amount_cents);
            got += 1;
            if commit_every.is_some_and(|every| got % every == 0 || got == n) {
                consumer.commit_consumer_state(CommitMode::Async).unwrap();
            }
        }
    }
    std::hint::black_box(sum);
}

fn main() {
    // `RUST_LOG=etl=debug` shows the connectors' logs on stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_writer(std::io::stderr).init();
    }
    let sizes: Vec<u64> = std::env::var("ETL_BENCH_RECORDS")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("ETL_BENCH_RECORDS: numbers"))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        println!("kafka: against {} ({} cores)\n", brokers(), std::thread::available_parallelism().map_or(1, |n| n.get()));
        println!("| what | side | records/s | wall s | CPU s | peak heap | ratio |");
        println!("|---|---|---|---|---|---|---|");
        for &n in &sizes {
            // The sink first: it also fills the topic the sources read.
            let topic = create_topic("bench", partitions_for(n)).await;
            let base = measure::side(raw_produce(&topic, n)).await;
            row(&format!("sink, {n} records | raw FutureProducer loop"), n, &base, &base);
            // `ETL_BENCH_ONLY=source`: the raw producer still fills the topic; the etl sink is skipped.
            if std::env::var("ETL_BENCH_ONLY").is_ok_and(|only| only == "source") {
                println!("| sink, {n} records | etl iter → kafka sink | skipped (ETL_BENCH_ONLY=source) | | | | |");
            } else {
                let sink_topic = create_topic("bench-sink", partitions_for(n)).await;
                let source = etl::source::iter((0..n).map(order)).batch_size(1000);
                let sink = etl::sink::kafka(&sink_topic).brokers(brokers()).key("id");
                let etl_side = measure::side(run::etl(source, sink, n)).await;
                row(&format!("sink, {n} records | etl iter → kafka sink"), n, &etl_side, &base);
            }

            let plain = raw_side(&topic, n, None, &[]).await;
            row(&format!("source, {n} records | raw BaseConsumer loop, no commits"), n, &plain, &plain);
            let committing = raw_side(&topic, n, Some(1000), &[]).await;
            row(&format!("source, {n} records | raw BaseConsumer loop, async commit per 1000"), n, &committing, &committing);
            // The baseline: the same loop with the one librdkafka setting the etl source changes
            // from librdkafka's defaults (a stalled partition's fetch retried after 10 ms, not 1 s).
            let base = raw_side(&topic, n, Some(1000), &[("fetch.queue.backoff.ms", "10")]).await;
            row(
                &format!("source, {n} records | raw BaseConsumer loop, async commit per 1000, fetch.queue.backoff.ms=10 (baseline)"),
                n,
                &base,
                &base,
            );
            let etl_side = measure::side(async {
                let source = etl::source::kafka::<Order>([topic.as_str()], unique("bench-etl"))
                    .brokers(brokers())
                    .batch_size(1000)
                    .batch_timeout(Duration::from_millis(100))
                    .max_records(n)
                    .properties(extra_properties());
                run::etl(source, etl::sink::blackhole(), n).await;
            })
            .await;
            row(&format!("source, {n} records | etl kafka source → blackhole"), n, &etl_side, &base);
            row(
                &format!("source, {n} records | etl kafka source → blackhole, against the loop with librdkafka's defaults"),
                n,
                &etl_side,
                &committing,
            );
            row(&format!("source, {n} records | etl kafka source → blackhole, against the loop without commits"), n, &etl_side, &plain);
        }
    });
}
