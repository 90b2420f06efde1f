//! The main example, on embedded defaults: no service needed.
//!
//! Reads the bundled `examples/data/orders.jsonl` (200 orders and two malformed lines), keeps
//! paid orders with a positive amount, selects three columns and writes CSV files of 50 rows
//! into `./lake/orders/` (temporary name, fsync, rename). The malformed lines go to
//! `./dead-letters/quickstart.jsonl` with their raw bytes. Prints the run report.
//!
//! ```sh
//! cargo run --example quickstart
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
    let input = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/orders.jsonl");

    let report = Pipeline::from(etl::source::file::<Order>(input).batch_size(50))
        .filter(|o: &Order| o.status == "paid" && o.amount_cents > 0)
        .map(|o: Order| Paid { id: o.id, customer: o.customer, amount_cents: o.amount_cents })
        .to(etl::sink::file("${ETL_LAKE:-lake}/orders").format(Format::Csv).prefix("paid"))
        .name("quickstart")
        .run()
        .await?;

    println!("{report}");
    Ok(())
}
