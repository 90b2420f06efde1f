//! WebSocket source throughput: N JSON orders (about 130 bytes each) sent as text frames, as
//! fast as the socket takes them, by a loopback server (tests/common/ws_server.rs, on a
//! runtime thread of its own) to each connection, then a close frame. Two sides in the same
//! run, each reading all N over a connection of its own:
//!
//! * **raw loop**: tokio-tungstenite's `connect_async`, then `next()` on the stream and
//!   `serde_json::from_slice` of each text message into the same `Order` type;
//! * **etl**: `etl::source::websocket::<Order>` (batches of 1000, default pings) →
//!   `etl::sink::blackhole()`, 4 batches in flight. The source's connection runs in a task of
//!   its own and the pipeline decodes on its task: on the default runtime (2 worker threads)
//!   the two halves run on two cores; `ETL_BENCH_RUNTIME=current` puts both sides on a
//!   current-thread runtime (one core).
//!
//! WebSocket has no acknowledgement, so neither side acknowledges anything.
//! `cargo bench --features websocket --bench websocket`; `ETL_BENCH_RECORDS` (default
//! `100000,1000000`), `ETL_BENCH_ROUNDS` (default 3; each row is the best round) and
//! `ETL_BENCH_ONLY=loop|etl` (one side, to profile it; no ratio). Prints
//! records/s, wall and CPU seconds (the whole process, the server's included, the same for
//! both sides), the side's peak heap and the ratio etl / loop.

#[path = "harness/measure.rs"]
mod measure;
#[path = "harness/run.rs"]
mod run;
#[allow(dead_code)]
#[path = "../tests/common/ws_server.rs"]
mod ws_server;

use etl::prelude::*;
use futures::{SinkExt, StreamExt};
use measure::{best, row, Side};
use std::alloc::System;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;
use ws_server::{Peer, WsServer};

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

/// Start the server on a runtime thread of its own; every connection gets all `messages`.
fn serve(messages: Arc<Vec<Message>>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let server = WsServer::start(move |mut peer: Peer| {
                let messages = Arc::clone(&messages);
                async move {
                    for (i, m) in messages.iter().enumerate() {
                        if peer.ws.feed(m.clone()).await.is_err() {
                            return;
                        }
                        if i % 256 == 255 && peer.ws.flush().await.is_err() {
                            return;
                        }
                    }
                    let _ = peer.ws.flush().await;
                    peer.close().await;
                }
            })
            .await;
            tx.send(server.url()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

async fn raw_loop(url: &str, n: u64) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut got, mut sum) = (0u64, 0i64);
    while let Some(message) = ws.next().await {
        match message.unwrap() {
            Message::Text(text) => {
                let o: Order = serde_json::from_slice(text.as_bytes()).unwrap();
                sum = sum.wrapping_add(o.amount_cents);
                got += 1;
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    assert_eq!(got, n);
    std::hint::black_box(sum);
}

async fn etl_side(url: &str, n: u64) {
    let source = etl::source::websocket::<Order>(url).reconnect(false).batch_size(1000);
    run::etl(source, etl::sink::blackhole(), n).await;
}

fn main() {
    let sizes: Vec<u64> = std::env::var("ETL_BENCH_RECORDS")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("ETL_BENCH_RECORDS: numbers"))
        .collect();
    let rounds = measure::rounds(3);
    // `ETL_BENCH_RUNTIME=current`: both sides on a current-thread runtime (no hand-off between
    // worker threads: on a loaded machine each one waits for a time slice).
    let current = std::env::var("ETL_BENCH_RUNTIME").is_ok_and(|r| r == "current");
    // `ETL_BENCH_ONLY=loop|etl`: run one side only (to profile it).
    let only = std::env::var("ETL_BENCH_ONLY").ok();
    let only = only.as_deref();
    assert!(matches!(only, None | Some("loop" | "etl")), "ETL_BENCH_ONLY: loop or etl");
    let runtime = if current {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    };
    println!(
        "websocket: loopback server on a thread of its own ({} cores), best of {rounds}\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| what | side | records/s | wall s | CPU s | peak heap | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for &n in &sizes {
        let messages: Arc<Vec<Message>> = Arc::new((0..n).map(|i| Message::text(serde_json::to_string(&order(i)).unwrap())).collect());
        let url = serve(messages);
        runtime.block_on(async {
            let (mut base, mut etl): (Option<Side>, Option<Side>) = (None, None);
            for _ in 0..rounds {
                if only != Some("etl") {
                    let b = measure::side(raw_loop(&url, n)).await;
                    base = best(base.take(), b);
                }
                if only != Some("loop") {
                    let e = measure::side(etl_side(&url, n)).await;
                    etl = best(etl.take(), e);
                }
            }
            if only.is_some() {
                // A profiling run: one side, no ratio.
                let side = base.or(etl).unwrap();
                row(&format!("source, {n} messages | {} only", only.unwrap_or_default()), n, &side, &side);
                return;
            }
            let (base, etl) = (base.unwrap(), etl.unwrap());
            row(&format!("source, {n} messages | raw tokio-tungstenite loop"), n, &base, &base);
            row(&format!("source, {n} messages | etl websocket source → blackhole"), n, &etl, &base);
        });
    }
}
