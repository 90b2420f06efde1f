//! RabbitMQ throughput against `RABBITMQ_URL` (`source scripts/services.sh && ensure_rabbitmq`),
//! each side beside a hand-written lapin loop doing the same work in the same run:
//!
//! * **sink**: N records (JSON orders of about 130 bytes) published persistent to a durable
//!   queue through the default exchange; `etl::sink::rabbitmq` (batches of 1000, 4 in flight,
//!   every confirm awaited by the commits) beside a raw loop on a channel in confirm mode that
//!   publishes a batch of 1000 and awaits its confirms before the next (confirm per batch);
//! * **source**: N messages published (by the raw loop) to a fresh queue just before each
//!   side consumes it, decoding into the same type; the etl source (batches of 1000, prefetch 2000)
//!   → `etl::sink::blackhole()`, beside a raw consumer (prefetch 2000) that decodes each
//!   delivery and acknowledges per batch of 1000 (`multiple = true`). `ETL_BENCH_ROUNDS`
//!   rounds (default 3), the sides' order alternating; each side's best round is shown.
//!
//! `cargo bench --features rabbitmq --bench rabbitmq`; `ETL_BENCH_RECORDS` (default
//! `100000`). Prints records/s, wall and CPU seconds (of this process: the broker's own CPU is
//! not counted, on either side), peak heap and the ratio etl / loop (records/s).

#[path = "harness/measure.rs"]
mod measure;
#[path = "../tests/common/rabbitmq.rs"]
mod rabbit;
#[path = "harness/run.rs"]
mod run;

use etl::prelude::*;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use measure::{best, row};
use std::alloc::System;

#[global_allocator]
static ALLOC: measure::Counting<System> = measure::Counting(System);

const BATCH: u64 = 1000;

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

/// The raw publisher: batches of 1000, each confirmed before the next.
async fn raw_publish(queue: &str, n: u64) {
    let (_connection, channel) = rabbit::admin().await;
    let properties = BasicProperties::default().with_content_type("application/json".into()).with_delivery_mode(2);
    let mut i = 0;
    while i < n {
        let mut confirms = Vec::with_capacity(BATCH as usize);
        for j in i..(i + BATCH).min(n) {
            let body = serde_json::to_vec(&order(j)).unwrap();
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions { mandatory: true, immediate: false },
                    &body,
                    properties.clone(),
                )
                .await
                .unwrap();
            confirms.push(confirm);
        }
        for confirm in confirms {
            let confirmation = confirm.await.unwrap();
            assert!(confirmation.is_ack() && confirmation.take_message().is_none(), "confirmed and routed");
        }
        i += BATCH;
    }
}

/// `ETL_BENCH_PREFETCH` (default 2000): both consumers' prefetch count.
fn prefetch() -> u16 {
    std::env::var("ETL_BENCH_PREFETCH").ok().and_then(|p| p.parse().ok()).unwrap_or(2000)
}

/// The raw consumer: decode every delivery, acknowledge per batch of 1000.
async fn raw_consume(queue: &str, n: u64) {
    let (_connection, channel) = rabbit::admin().await;
    channel.basic_qos(prefetch(), BasicQosOptions::default()).await.unwrap();
    let mut consumer = channel.basic_consume(queue.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()).await.unwrap();
    let mut got = 0;
    let mut sum = 0i64;
    while got < n {
        let delivery = consumer.next().await.unwrap().unwrap();
        let o: Order = serde_json::from_slice(&delivery.data).unwrap();
        sum = sum.wrapping_add(o.amount_cents);
        got += 1;
        if got % BATCH == 0 || got == n {
            channel.basic_ack(delivery.delivery_tag, BasicAckOptions { multiple: true }).await.unwrap();
        }
    }
    std::hint::black_box(sum);
}

/// The etl side of the source: the `rabbitmq` source (batches of 1000, prefetch 2000) →
/// blackhole, until it has read `n` messages.
async fn etl_consume(queue: &str, n: u64) {
    let source = etl::source::rabbitmq::<Order>(queue)
        .url(rabbit::url())
        .prefetch_count(prefetch())
        .batch_size(BATCH as usize)
        .batch_timeout(std::time::Duration::from_millis(100))
        .max_records(n);
    run::etl(source, etl::sink::blackhole(), n).await;
}

fn main() {
    // `RUST_LOG=etl=debug` shows the connectors' logs on stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_writer(std::io::stderr).init();
    }
    let sizes: Vec<u64> = std::env::var("ETL_BENCH_RECORDS")
        .unwrap_or_else(|_| "100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("ETL_BENCH_RECORDS: numbers"))
        .collect();
    let rounds = measure::rounds(3);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let (_connection, admin) = rabbit::admin().await;
        println!("rabbitmq: against {} ({} cores)\n", rabbit::addr(), std::thread::available_parallelism().map_or(1, |n| n.get()));
        println!("| what | side | records/s | wall s | CPU s | peak heap | ratio |");
        println!("|---|---|---|---|---|---|---|");
        for &n in &sizes {
            let raw_queue = rabbit::queue(&admin, "bench-raw", false).await;
            let etl_queue = rabbit::queue(&admin, "bench-etl", false).await;
            let base = measure::side(raw_publish(&raw_queue, n)).await;
            row(&format!("sink, {n} records | raw lapin loop, confirm per batch"), n, &base, &base);
            let source = etl::source::iter((0..n).map(order)).batch_size(BATCH as usize);
            let sink = etl::sink::rabbitmq(etl_queue.as_str()).url(rabbit::url());
            let etl_side = measure::side(run::etl(source, sink, n)).await;
            row(&format!("sink, {n} records | etl iter → rabbitmq sink"), n, &etl_side, &base);
            assert_eq!(rabbit::ready(&admin, &raw_queue).await as u64, n);
            assert_eq!(rabbit::ready(&admin, &etl_queue).await as u64, n);

            rabbit::delete(&admin, &raw_queue).await;
            rabbit::delete(&admin, &etl_queue).await;

            // Each side reads a queue filled just before, by the same raw publisher, so both
            // read under the same conditions: the broker delivers a queue read right after it
            // was filled at about half the pace of one filled before another queue (whichever
            // side reads it). The sides' order alternates; each side's best round is shown.
            let (mut base, mut etl_best) = (None, None);
            for round in 0..rounds {
                for etl_turn in [round % 2 == 1, round % 2 == 0] {
                    let queue = rabbit::queue(&admin, if etl_turn { "bench-etl-src" } else { "bench-raw-src" }, false).await;
                    raw_publish(&queue, n).await;
                    if etl_turn {
                        etl_best = best(etl_best, measure::side(etl_consume(&queue, n)).await);
                    } else {
                        base = best(base, measure::side(raw_consume(&queue, n)).await);
                    }
                    assert_eq!(rabbit::ready(&admin, &queue).await, 0);
                    rabbit::delete(&admin, &queue).await;
                }
            }
            let (base, etl_side) = (base.unwrap(), etl_best.unwrap());
            row(&format!("source, {n} records | raw lapin consumer, ack per batch (best of {rounds})"), n, &base, &base);
            row(&format!("source, {n} records | etl rabbitmq source → blackhole (best of {rounds})"), n, &etl_side, &base);
        }
    });
}
