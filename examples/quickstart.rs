//! The main example, on embedded defaults: no service needed.
//!
//! Reads the bundled `examples/data/orders.jsonl` (200 orders and two malformed lines), keeps
//! paid orders with a positive amount, selects three columns and writes CSV files of 50 rows
//! into `./lake/orders/` (temporary name, fsync, rename). The malformed lines go to
//! `./dead-letters/quickstart.jsonl` with their raw bytes. Prints the run report.
//!
//! It runs under etl's runner (`#[etl::main]`), so it also has the runner's subcommands:
//!
//! ```sh
//! cargo run --example quickstart                          # from the repository root
//! cargo run --example quickstart -- check                 # open the file and the lake, read nothing
//! cargo run --example quickstart -- graph                 # the pipeline as a Mermaid chart
//! cargo run --example quickstart -- dead-letters list     # the two malformed lines
//! cargo run --example quickstart -- --log-format json --metrics-addr 127.0.0.1:9898
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

#[etl::main]
async fn main() -> etl::Result<()> {
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
