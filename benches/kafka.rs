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

#[path = "harness/measure.rs"]
mod measure;

use etl::prelude::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use std::alloc::System;
use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

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

fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").expect("KAFKA_BROKERS is not set: start `etl-kafka-mock` (see scripts/services.sh)")
}

fn config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers());
    config
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Partitions for a topic of `n` records: at least 3, and enough that librdkafka's mock broker
/// keeps them all (it trims each partition's log past 5 MiB). The records have no key, so the
/// producers' sticky partitioner fills one partition at a time, unevenly: 10 000 records
/// (about 1 MB) a partition on average leaves room for five times that. A real cluster keeps
/// them anyway.
fn partitions_for(n: u64) -> i32 {
    i32::try_from(n / 10_000 + 1).unwrap_or(i32::MAX).max(3)
}

async fn create_topic(prefix: &str, partitions: i32) -> String {
    let topic = unique(prefix);
    if let Ok(addr) = std::env::var("KAFKA_MOCK_CONTROL") {
        let mut stream = std::net::TcpStream::connect(addr).expect("the mock's control port");
        stream.write_all(format!("create {topic} {partitions}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).unwrap();
        assert_eq!(answer.trim(), "ok");
    } else {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> = config().create().unwrap();
        admin.create_topics([&NewTopic::new(&topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    }
    topic
}

struct Side {
    wall: f64,
    cpu: f64,
    heap: usize,
}

fn row(label: &str, n: u64, side: &Side, base: &Side) {
    println!(
        "| {label} | {:.0} | {:.2} | {:.2} | {:.1} MiB | **{:.2}** |",
        n as f64 / side.wall,
        side.wall,
        side.cpu,
        side.heap as f64 / (1 << 20) as f64,
        base.wall / side.wall
    );
}

async fn measure<F: std::future::Future<Output = ()>>(run: F) -> Side {
    let live = measure::reset_peak();
    let cpu = measure::cpu_seconds();
    let started = Instant::now();
    run.await;
    Side { wall: started.elapsed().as_secs_f64(), cpu: measure::cpu_seconds() - cpu, heap: measure::peak().saturating_sub(live) }
}

/// The raw producer loop: send every record, await every delivery.
async fn raw_produce(topic: &str, n: u64) {
    let producer: FutureProducer = config().set("enable.idempotence", "true").set("acks", "all").create().unwrap();
    let mut pending = Vec::with_capacity(n as usize);
    for i in 0..n {
        let payload = serde_json::to_vec(&order(i)).unwrap();
        loop {
            match producer.send_result(FutureRecord::<(), _>::to(topic).payload(&payload)) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((e, _)) => {
                    assert_eq!(e.rdkafka_error_code(), Some(rdkafka::types::RDKafkaErrorCode::QueueFull), "{e}");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    for delivery in pending {
        delivery.await.unwrap().unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// The raw consumer loop: poll and decode N messages.
fn raw_consume(topic: &str, n: u64) {
    let consumer: BaseConsumer = config()
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
        }
    }
    std::hint::black_box(sum);
}

fn main() {
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
            let base = measure(raw_produce(&topic, n)).await;
            row(&format!("sink, {n} records | raw FutureProducer loop"), n, &base, &base);
            let sink_topic = create_topic("bench-sink", partitions_for(n)).await;
            let etl_side = measure(async {
                let report = Pipeline::from(etl::source::iter((0..n).map(order)).batch_size(1000))
                    .to(etl::sink::kafka(&sink_topic).brokers(brokers()))
                    .max_in_flight(4)
                    .handle_signals(false)
                    .run()
                    .await
                    .unwrap();
                assert_eq!(report.records_out, n);
            })
            .await;
            row(&format!("sink, {n} records | etl iter → kafka sink"), n, &etl_side, &base);

            let t = topic.clone();
            let base = measure(async move { tokio::task::spawn_blocking(move || raw_consume(&t, n)).await.unwrap() }).await;
            row(&format!("source, {n} records | raw BaseConsumer loop"), n, &base, &base);
            let etl_side = measure(async {
                let source = etl::source::kafka::<Order>([topic.as_str()], unique("bench-etl"))
                    .brokers(brokers())
                    .batch_size(1000)
                    .batch_timeout(Duration::from_millis(100))
                    .max_records(n);
                let report = Pipeline::from(source).to(etl::sink::blackhole()).max_in_flight(4).handle_signals(false).run().await.unwrap();
                assert_eq!(report.records_out, n);
            })
            .await;
            row(&format!("source, {n} records | etl kafka source → blackhole"), n, &etl_side, &base);
        }
    });
}
