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
//! `session.timeout.ms=6000` for a group that notices a dead member sooner). It runs until
//! SIGINT/SIGTERM: then the batch in hand is flushed, written, committed
//! to PostgreSQL, its offsets committed to Kafka, and it exits 0. A second signal stops at once.
//!
//! Delivery: offsets are committed only after PostgreSQL committed the rows (at least once);
//! with `upsert(id)` a redelivered order overwrites itself, so after any crash and restart the
//! table holds every order exactly once. More processes with the same `--group` share the
//! topic's partitions; when one dies, the others take its partitions over from its last
//! committed offsets.

use etl::prelude::*;

/// An order as the topic carries it.
#[derive(Debug, Clone, Record, Serialize, Deserialize)]
pub struct Order {
    pub id: i64,
    pub customer: String,
    pub amount_cents: i64,
    pub status: String,
}

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    pub database_url: String,
    pub table: String,
    pub max_records: Option<u64>,
    /// Extra librdkafka consumer properties (`--property session.timeout.ms=6000`).
    pub properties: Vec<(String, String)>,
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
            handle_signals: true,
        }
    }
}

/// Run the pipeline until the topic's source stops (a signal, or `max_records`).
pub async fn run(config: Config) -> etl::Result<RunReport> {
    let Config { brokers, topic, group, database_url, table, max_records, properties, handle_signals } = config;
    let max_records = max_records.unwrap_or(u64::MAX);
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

/// `--flag value` arguments into a [`Config`].
fn parse_args() -> Result<Config, lexopt::Error> {
    use lexopt::prelude::*;
    let mut config = Config::default();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("brokers") => config.brokers = parser.value()?.string()?,
            Long("topic") => config.topic = parser.value()?.string()?,
            Long("group") => config.group = parser.value()?.string()?,
            Long("database-url") => config.database_url = parser.value()?.string()?,
            Long("table") => config.table = parser.value()?.string()?,
            Long("max-records") => config.max_records = Some(parser.value()?.parse()?),
            Long("property") => {
                let pair = parser.value()?.string()?;
                let Some((key, value)) = pair.split_once('=') else {
                    return Err(format!("--property takes KEY=VALUE, not `{pair}`").into());
                };
                config.properties.push((key.to_owned(), value.to_owned()));
            }
            Long("help") | Short('h') => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(config)
}

const USAGE: &str = "usage: orders [--brokers HOST:PORT,..] [--topic NAME] [--group NAME] [--database-url URL] [--table NAME] \
[--max-records N] [--property KEY=VALUE]..";

#[allow(dead_code)] // Tests include this file as a module and call `run`.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = match parse_args() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(config).await {
        Ok(report) => {
            println!("orders: {report}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
