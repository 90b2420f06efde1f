//! NATS JetStream throughput against `NATS_URL` (`scripts/test.sh`, or `source
//! scripts/services.sh; ensure_nats`, starts nats-server 2.15 with JetStream on loopback), each
//! side beside a hand-written async-nats loop doing the same work in the same run:
//!
//! * **sink**: N orders (JSON, about 130 bytes) published by `etl::sink::nats` (batches of
//!   1000, 4 in flight, each commit awaiting its publishes' acknowledgements), beside a loop
//!   that publishes 1000 messages and awaits their acknowledgements, batch after batch;
//! * **source**: the N messages read by the etl `nats` source (a durable pull consumer of its
//!   own, batches of 1000) → `etl::sink::blackhole()`, beside a loop that pulls batches of 1000
//!   from a durable consumer of its own, decodes each message into the same type with
//!   serde_json, and acknowledges the batch (every `+ACK` published, the last one confirmed by
//!   the server, as the etl source does).
//!
//! The sources run `ETL_BENCH_ROUNDS` rounds (default 5), each side on a new durable consumer,
//! their order alternating; each side's best round is shown.
//!
//! `cargo bench --features nats --bench nats`; `ETL_BENCH_RECORDS` (default `100000`). Prints
//! records/s, wall and CPU seconds (the client's: the server is another process), the side's
//! peak heap and the ratio etl / loop (records/s).

#[path = "harness/measure.rs"]
mod measure;
#[path = "harness/run.rs"]
mod run;

use async_nats::jetstream::{self, consumer, stream};
use etl::prelude::*;
use futures::StreamExt;
use measure::{best, row};
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

const BATCH: u64 = 1000;

fn url() -> String {
    std::env::var("NATS_URL").expect("NATS_URL is not set: `source scripts/services.sh; ensure_nats`")
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}_{}_{nanos}", std::process::id())
}

async fn new_stream(js: &jetstream::Context, prefix: &str) -> (String, String) {
    let name = unique(prefix);
    let subject = format!("bench.{name}");
    js.create_stream(stream::Config { name: name.clone(), subjects: vec![subject.clone()], ..Default::default() }).await.unwrap();
    (name, subject)
}

async fn new_consumer(js: &jetstream::Context, stream: &str) -> String {
    let durable = unique("bench");
    js.get_stream(stream)
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some(durable.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    durable
}

/// The raw publish loop: per batch of 1000, publish each order, then await every ack.
async fn raw_publish(js: &jetstream::Context, subject: &str, n: u64) {
    let mut i = 0;
    while i < n {
        let end = (i + BATCH).min(n);
        let mut acks = Vec::with_capacity(BATCH as usize);
        for j in i..end {
            let payload = serde_json::to_vec(&order(j)).unwrap();
            acks.push(js.publish(subject.to_owned(), payload.into()).await.unwrap());
        }
        for ack in futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future)).await {
            ack.unwrap();
        }
        i = end;
    }
}

/// The raw consume loop: pull batches of 1000, decode each, ack the batch (the last ack
/// confirmed by the server).
async fn raw_consume(client: &async_nats::Client, js: &jetstream::Context, stream: &str, durable: &str, n: u64) {
    let consumer: consumer::PullConsumer = js.get_stream(stream).await.unwrap().get_consumer(durable).await.unwrap();
    let mut got = 0;
    let mut sum = 0i64;
    while got < n {
        let mut batch =
            consumer.batch().max_messages((n - got).min(BATCH) as usize).expires(Duration::from_secs(5)).messages().await.unwrap();
        let mut replies = Vec::with_capacity(BATCH as usize);
        while let Some(m) = batch.next().await {
            let m = m.unwrap();
            let o: Order = serde_json::from_slice(&m.payload).unwrap();
            sum = sum.wrapping_add(o.amount_cents);
            replies.push(m.reply.clone().unwrap());
            got += 1;
        }
        if let Some(last) = replies.pop() {
            for reply in replies {
                client.publish(reply, "+ACK".into()).await.unwrap();
            }
            client.request(last, "+ACK".into()).await.unwrap();
        }
    }
    std::hint::black_box(sum);
}

/// The etl side of the source: the `nats` source on `durable` (batches of 1000) → blackhole,
/// until it has read `n` messages.
async fn etl_consume(url: &str, stream: &str, durable: &str, n: u64) {
    let source = etl::source::nats::<Order>(stream, durable)
        .url(url)
        .batch_size(BATCH as usize)
        .batch_timeout(Duration::from_millis(100))
        .max_records(n);
    run::etl(source, etl::sink::blackhole(), n).await;
}

fn main() {
    let sizes: Vec<u64> = std::env::var("ETL_BENCH_RECORDS")
        .unwrap_or_else(|_| "100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("ETL_BENCH_RECORDS: numbers"))
        .collect();
    let rounds = measure::rounds(5);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let url = url();
        let client = async_nats::connect(&url).await.expect("connect to NATS_URL");
        let js = jetstream::new(client.clone());
        println!("nats: against {url} ({} cores)\n", std::thread::available_parallelism().map_or(1, |n| n.get()));
        println!("| what | side | records/s | wall s | CPU s | peak heap | ratio |");
        println!("|---|---|---|---|---|---|---|");
        for &n in &sizes {
            // The sink first: the raw loop also fills the stream the sources read.
            let (stream, subject) = new_stream(&js, "BENCH").await;
            let base = measure::side(raw_publish(&js, &subject, n)).await;
            row(&format!("sink, {n} records | async-nats publish loop (acks awaited per batch)"), n, &base, &base);
            let (_, sink_subject) = new_stream(&js, "BENCH_SINK").await;
            let source = etl::source::iter((0..n).map(order)).batch_size(BATCH as usize);
            let sink = etl::sink::nats(sink_subject.as_str()).url(&url);
            let etl_side = measure::side(run::etl(source, sink, n)).await;
            row(&format!("sink, {n} records | etl iter → nats sink"), n, &etl_side, &base);

            // Each round reads the stream again through two new durable consumers, the sides'
            // order alternating (a single run varies by ±50 %); each side's best round is shown.
            let (mut base, mut etl_best) = (None, None);
            for round in 0..rounds {
                let raw_durable = new_consumer(&js, &stream).await;
                let etl_durable = new_consumer(&js, &stream).await;
                let raw_side = || async { measure::side(raw_consume(&client, &js, &stream, &raw_durable, n)).await };
                let etl_side = || async { measure::side(etl_consume(&url, &stream, &etl_durable, n)).await };
                if round % 2 == 0 {
                    base = best(base, raw_side().await);
                    etl_best = best(etl_best, etl_side().await);
                } else {
                    etl_best = best(etl_best, etl_side().await);
                    base = best(base, raw_side().await);
                }
                let info = js.get_stream(&stream).await.unwrap().consumer_info(&etl_durable).await.unwrap();
                assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "the etl source acknowledged everything");
            }
            let (base, etl_side) = (base.unwrap(), etl_best.unwrap());
            row(&format!("source, {n} records | async-nats pull loop (ack per batch; best of {rounds})"), n, &base, &base);
            row(&format!("source, {n} records | etl nats source → blackhole (best of {rounds})"), n, &etl_side, &base);
        }
    });
}
