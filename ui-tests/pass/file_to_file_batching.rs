use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    status: String,
}

async fn run() -> etl::Result<RunReport> {
    pipeline! {
        file(path = "orders.csv", format = "csv", batch_size = 500, batch_timeout = 2s, max_bytes = 1048576, max_records = 10000, max_batches = 20) as Order
        | filter(|o| o.status == "paid")
        | file(dir = "lake/orders", format = "csv", prefix = "orders")
    }
    .run()
    .await?;
    pipeline! { iter(0..10i64, batch_timeout = 500ms) | blackhole() }.run().await?;
    pipeline! { iter(0..10i64, batch_timeout = 1.5s) | blackhole() }.run().await?;
    pipeline! { iter(0..10i64, batch_timeout = 1m) | stdout() }.run().await?;
    pipeline! { iter(0..10i64, batch_timeout = 1h) | stdout() }.run().await?;
    pipeline! { iter(0..10i64, batch_timeout = 3) | stdout() }.run().await
}

fn main() {
    let _ = run;
}
