//! The main example, on embedded defaults: no service needed.
//!
//! Reads the bundled `examples/data/orders.jsonl` (200 orders and two malformed lines), keeps
//! paid orders with a positive amount, selects three columns and writes CSV files of 50 rows
//! into `./lake/orders/` (temporary name, fsync, rename). The malformed lines go to
//! `./dead-letters/quickstart.jsonl` with their raw bytes. Prints the run report.
//!
//! ```sh
//! cargo run --example quickstart    # from the repository root
//! ```

use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
    status: String,
    note: Option<String>,
}

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Paid {
    id: i64,
    customer: String,
    amount_cents: i64,
}

#[tokio::main]
async fn main() -> etl::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let report = pipeline! {
        file(path = "${ETL_QUICKSTART_INPUT:-examples/data/orders.jsonl}", batch_size = 50) as Order
        | filter(|o| o.status == "paid" && o.amount_cents > 0)
        | map(|o| Paid { id: o.id, customer: o.customer, amount_cents: o.amount_cents }) as Paid
        | file(dir = "${ETL_LAKE:-lake}/orders", format = "csv", prefix = "paid")
    }
    .name("quickstart")
    .run()
    .await?;

    println!("{report}");
    Ok(())
}
