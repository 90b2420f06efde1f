//! Fan-out beside a straight pipeline: the same records (typed orders with two strings, in
//! batches of 1 000 from an in-memory source) into one `blackhole`, and into
//! `broadcast { blackhole, blackhole }` and `route { pred => blackhole, _ => blackhole }`, in
//! the same run. Goal (issue 17): the fan-out to two blackholes at ≥ 0.9 of the single
//! blackhole's records/s.
//!
//! `cargo bench --bench fanout`; `ETL_BENCH_RECORDS` (default 1 000 000) records, best of 3.

#[path = "harness/measure.rs"]
mod measure;

use etl::fanout::{branch, when};
use etl::prelude::*;

#[global_allocator]
static ALLOC: measure::Counting<std::alloc::System> = measure::Counting(std::alloc::System);

#[derive(Debug, Clone, Serialize, Deserialize, etl::Record)]
struct Order {
    id: u64,
    customer: String,
    amount_cents: i64,
    status: String,
}

fn orders(n: u64) -> Vec<Order> {
    (0..n)
        .map(|id| Order { id, customer: format!("customer-{}", id % 1000), amount_cents: (id % 5000) as i64, status: "paid".into() })
        .collect()
}

fn source(n: u64) -> etl::source::IterSource<std::vec::IntoIter<Order>> {
    etl::source::iter(orders(n)).batch_size(1000)
}

async fn straight(n: u64) -> u64 {
    let report = Pipeline::from(source(n)).to(etl::sink::blackhole()).handle_signals(false).run().await.expect("the run");
    report.records_out
}

async fn broadcast(n: u64) -> u64 {
    let report = Pipeline::from(source(n))
        .broadcast(|input| {
            vec![branch(Pipeline::from(input.clone()).to(etl::sink::blackhole())), branch(Pipeline::from(input).to(etl::sink::blackhole()))]
        })
        .handle_signals(false)
        .run()
        .await
        .expect("the run");
    report.records_out
}

async fn route(n: u64) -> u64 {
    let report = Pipeline::from(source(n))
        .route(|input| {
            vec![
                when(Pipeline::from(input.clone()).to(etl::sink::blackhole()), |o: &Order| o.amount_cents > 2500),
                branch(Pipeline::from(input).to(etl::sink::blackhole())),
            ]
        })
        .handle_signals(false)
        .run()
        .await
        .expect("the run");
    report.records_out
}

fn best(rt: &tokio::runtime::Runtime, n: u64, run: fn(u64) -> futures::future::BoxFuture<'static, u64>) -> measure::Side {
    let mut best: Option<measure::Side> = None;
    for _ in 0..3 {
        let side = rt.block_on(measure::side(async {
            assert_eq!(run(n).await, n, "every record out");
        }));
        if best.as_ref().is_none_or(|b| side.wall < b.wall) {
            best = Some(side);
        }
    }
    best.expect("three rounds")
}

fn main() {
    let n: u64 = std::env::var("ETL_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let base = best(&rt, n, |n| Box::pin(straight(n)));
    let fan = best(&rt, n, |n| Box::pin(broadcast(n)));
    let routed = best(&rt, n, |n| Box::pin(route(n)));
    println!("| {n} orders, batches of 1 000 | records/s | wall s | CPU s | peak heap | ratio |");
    println!("|---|---|---|---|---|---|");
    measure::row("iter → blackhole (the baseline)", n, &base, &base);
    measure::row("iter → broadcast { blackhole, blackhole }", n, &fan, &base);
    measure::row("iter → route { pred => blackhole, _ => blackhole }", n, &routed, &base);
}
