//! The design card's own pipeline: JSON orders from a Kafka topic → drop the test orders →
//! `rename(amount_cents -> amount)` → upsert into a PostgreSQL table keyed by `id`.
//!
//! ```sh
//! cargo run --example orders --features kafka,postgres -- \
//!     --brokers 127.0.0.1:9092 --topic orders --group etl-orders \
//!     --database-url postgres://postgres@127.0.0.1/test --table orders
//! ```
//!
//! Flags (each with an environment default): `--brokers` (`KAFKA_BROKERS`), `--topic`
//! (`orders`), `--group` (`etl-orders`), `--database-url` (`DATABASE_URL`), `--table`
//! (`orders`, created from the record's schema if missing), `--max-records N` (stop after N
//! orders), `--property KEY=VALUE` (any librdkafka consumer property, repeatable: e.g.
//! `session.timeout.ms=6000` for a group that notices a dead member sooner), `--exactly-once`
//! (below). It runs until
//! SIGINT/SIGTERM: then the batch in hand is flushed, written, committed
//! to PostgreSQL, its offsets committed to Kafka, and it exits 0. A second signal stops at once.
//!
//! Delivery: offsets are committed only after PostgreSQL committed the rows (at least once);
//! with `upsert(id)` a redelivered order overwrites itself, so after any crash and restart the
//! table holds every order exactly once. More processes with the same `--group` share the
//! topic's partitions; when one dies, the others take its partitions over from its last
//! committed offsets.
//!
//! With `--exactly-once` the table is append-only (insert mode, created without a key: every
//! version of an order is a row) and still every message is a row exactly once: each batch's
//! next offsets per partition commit with its rows (in the table `etl_offsets`), and the
//! source resumes from them after a crash or a rebalance (see `etl::positions`).

use etl::prelude::*;

/// An order as the topic carries it.
#[derive(Debug, Clone, Record, Serialize, Deserialize)]
pub struct Order {
    pub id: i64,
    pub customer: String,
    pub amount_cents: i64,
    pub status: String,
}

/// What to run, from the command line (the runner's own flags and subcommands come with
/// `#[etl::main]`: `orders check`, `orders graph`, `orders dead-letters list`, `--metrics-addr`).
#[derive(Debug, Clone, etl::cli::clap::Args)]
pub struct Config {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "${KAFKA_BROKERS:-localhost:9092}")]
    pub brokers: String,
    /// The topic of orders.
    #[arg(long, default_value = "orders")]
    pub topic: String,
    /// The consumer group (processes with the same group share the partitions).
    #[arg(long, default_value = "etl-orders")]
    pub group: String,
    /// The PostgreSQL URL.
    #[arg(long, default_value = "${DATABASE_URL}")]
    pub database_url: String,
    /// The table (created from the record's schema if missing).
    #[arg(long, default_value = "orders")]
    pub table: String,
    /// Stop after this many orders.
    #[arg(long)]
    pub max_records: Option<u64>,
    /// Extra librdkafka consumer properties, KEY=VALUE, repeatable (`session.timeout.ms=6000`).
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = property)]
    pub properties: Vec<(String, String)>,
    /// Append every order (insert mode, a table without a key) exactly once: the offsets
    /// commit with the rows, and the source resumes from them.
    #[arg(long)]
    pub exactly_once: bool,
    /// Stop gracefully on SIGINT/SIGTERM (tests that stop it otherwise turn it off).
    #[arg(skip = true)]
    pub handle_signals: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            brokers: "${KAFKA_BROKERS:-localhost:9092}".into(),
            topic: "orders".into(),
            group: "etl-orders".into(),
            database_url: "${DATABASE_URL}".into(),
            table: "orders".into(),
            max_records: None,
            properties: Vec::new(),
            exactly_once: false,
            handle_signals: true,
        }
    }
}

/// `KEY=VALUE` into a pair.
fn property(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
        None => Err(format!("--property takes KEY=VALUE, not `{pair}`")),
    }
}

/// Run the pipeline until the topic's source stops (a signal, or `max_records`).
pub async fn run(config: Config) -> etl::Result<RunReport> {
    let Config { brokers, topic, group, database_url, table, max_records, properties, exactly_once, handle_signals } = config;
    let max_records = max_records.unwrap_or(u64::MAX);
    if exactly_once {
        return pipeline! {
            kafka(topics = [topic.as_str()], brokers = brokers, group = group, max_records = max_records,
                  properties = properties, batch_size = 500, batch_timeout = 1s) as Order
            | filter(|o| o.status != "test")
            | rename(amount_cents -> amount)
            | postgres(url = database_url, table = table, mode = insert, create = true, exactly_once = true)
        }
        .name("orders")
        .max_in_flight(4)
        .handle_signals(handle_signals)
        .run()
        .await;
    }
    pipeline! {
        kafka(topics = [topic.as_str()], brokers = brokers, group = group, max_records = max_records,
              properties = properties, batch_size = 500, batch_timeout = 1s) as Order
        | filter(|o| o.status != "test")
        | rename(amount_cents -> amount)
        | postgres(url = database_url, table = table, mode = upsert(id), create = true)
    }
    .name("orders")
    .max_in_flight(4)
    .handle_signals(handle_signals)
    .run()
    .await
}

#[allow(dead_code)] // Tests include this file as a module and call `run`.
#[etl::main]
async fn main(config: Config) -> etl::Result<()> {
    let report = run(config).await?;
    println!("orders: {report}");
    Ok(())
}
