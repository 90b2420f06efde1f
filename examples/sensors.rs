//! sssn's data pipeline (`seeds/sssn-data-pipeline.txt`) as four small `pipeline!`s: a periodic
//! ingestor → a work queue → 3 workers → a broadcast log → a dashboard and an archiver, each
//! subscriber at its own pace.
//!
//! ```sh
//! cargo run --example sensors                      # one process, embedded channels, 5 ticks of 1 s
//! cargo run --example sensors -- --ticks 0         # until Ctrl-C (the ingestor stops, the rest drains)
//! ```
//!
//! Across processes (feature `nats`): the work queue becomes a JetStream stream whose one durable
//! consumer `workers` is shared by every worker process, the broadcast a JetStream stream with
//! one durable consumer per subscriber (`dashboard`, `archiver`; the streams are created by
//! whichever role starts first). Each role runs until Ctrl-C (the ingestor: `--ticks`):
//!
//! ```sh
//! cargo run --example sensors --features nats -- --nats nats://127.0.0.1:4222 --role work   # as many as you like
//! cargo run --example sensors --features nats -- --nats nats://127.0.0.1:4222 --role dashboard
//! cargo run --example sensors --features nats -- --nats nats://127.0.0.1:4222 --role archive
//! cargo run --example sensors --features nats -- --nats nats://127.0.0.1:4222 --role ingest
//! ```

use etl::channel::{Broadcast, Overflow, WorkQueue};
use etl::cli::clap::{self, Parser};
use etl::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A reading as the (simulated) API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, Record)]
struct Raw {
    id: String,
    sensor: String,
    value: f64,
}

/// A reading after a worker transformed it.
#[derive(Debug, Clone, Serialize, Deserialize, Record)]
struct Reading {
    record_id: String,
    sensor: String,
    celsius: f64,
    fahrenheit: f64,
}

static POLLS: AtomicU64 = AtomicU64::new(0);

/// The ingestor's poll: five readings from a (simulated) sensor API.
async fn fetch() -> Result<Vec<Raw>, std::convert::Infallible> {
    let tick = POLLS.fetch_add(1, Ordering::Relaxed);
    let readings: Vec<Raw> =
        (0..5).map(|i| Raw { id: format!("{tick}-{i}"), sensor: format!("s{}", i % 2 + 1), value: 22.1 + i as f64 * 0.3 }).collect();
    println!("[ingestor] queued {} readings", readings.len());
    Ok(readings)
}

/// A worker's transform.
fn transform(raw: Raw) -> Reading {
    Reading { record_id: raw.id, sensor: raw.sensor, celsius: raw.value, fahrenheit: raw.value * 9.0 / 5.0 + 32.0 }
}

fn show(r: &Reading) {
    let status = if r.celsius > 23.0 { "HIGH" } else { "ok  " };
    println!("[dashboard] {status} | {} | {:.1} °C | {:.1} °F", r.sensor, r.celsius, r.fahrenheit);
}

#[derive(Debug, Parser)]
#[command(name = "sensors", about = "periodic ingestor → work queue → 3 workers → broadcast → dashboard and archiver")]
struct Args {
    /// Ticks of the ingestor (1 s apart); 0: until Ctrl-C.
    #[arg(long, default_value_t = 5)]
    ticks: u64,
    /// Where the archiver writes.
    #[arg(long, default_value = "lake/sensors")]
    archive: PathBuf,
    /// Run across processes through this NATS server (feature `nats`).
    #[arg(long)]
    nats: Option<String>,
    /// With `--nats`: which part this process runs.
    #[arg(long, value_parser = ["ingest", "work", "dashboard", "archive"], requires = "nats")]
    role: Option<String>,
}

#[tokio::main]
async fn main() -> etl::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match &args.nats {
        None => in_process(&args).await,
        #[cfg(feature = "nats")]
        Some(url) => across_processes(&args, url).await,
        #[cfg(not(feature = "nats"))]
        Some(_) => Err(etl::Error::Config(etl::config::ConfigError::Invalid {
            option: "--nats",
            message: "needs the `nats` feature: cargo run --example sensors --features nats -- ..".into(),
        })),
    }
}

/// Everything in one process, on the embedded channels. The ingestor stops after `--ticks` (or
/// on Ctrl-C); then each stage drains and closes the channel after it.
async fn in_process(args: &Args) -> etl::Result<()> {
    let raw = WorkQueue::new();
    let processed = Broadcast::<Reading>::named("processed", 1_000, Overflow::Block);
    // Subscribed before the first write: they see every reading.
    let dashboard = processed.subscribe("dashboard");
    let archiver = processed.subscribe("archiver");
    let (raw_sink, processed_sink) = (raw.sink(), processed.sink());
    let workers = raw.source::<Raw>().workers(3);
    let ticks = if args.ticks == 0 { u64::MAX } else { args.ticks };
    let archive = args.archive.to_string_lossy().into_owned();

    let ingest =
        pipeline! { periodic(every = 1s, poll = fetch, max_polls = ticks, batch_size = 5, batch_timeout = 100ms) as Raw | raw_sink };
    let work = pipeline! { workers | map(transform) as Reading | processed_sink };
    let show = pipeline! { dashboard | inspect(show) | blackhole() };
    let keep = pipeline! { archiver | file(dir = archive.as_str(), format = "jsonl") };

    let ingest = async {
        let report = ingest.name("ingest").run().await;
        raw.close(); // the workers drain the queue, then end
        report
    };
    let work = async {
        let report = work.name("work").handle_signals(false).run().await;
        processed.close(); // the subscribers read what is left, then end
        report
    };
    let (ingest, work, show, keep) =
        tokio::join!(ingest, work, show.name("dashboard").handle_signals(false).run(), keep.name("archive").handle_signals(false).run());
    for (name, report) in [("ingest", ingest?), ("work", work?), ("dashboard", show?), ("archive", keep?)] {
        println!("{name}: {report}");
    }
    Ok(())
}

/// The two streams, created when missing, whichever role starts first (a role's sink needs the
/// stream after it to exist).
#[cfg(feature = "nats")]
async fn ensure_streams(url: &str) -> etl::Result<()> {
    use async_nats::jetstream::stream::Config;
    let failed = |e: String| etl::Error::Source(etl::ConnectorError::retryable("nats", e));
    let client = async_nats::connect(url).await.map_err(|e| failed(format!("cannot connect to {url}: {e}")))?;
    let js = async_nats::jetstream::new(client);
    for (name, subject) in [("SENSORS_RAW", "sensors.raw"), ("SENSORS_PROCESSED", "sensors.processed")] {
        js.get_or_create_stream(Config { name: name.into(), subjects: vec![subject.into()], ..Default::default() })
            .await
            .map_err(|e| failed(format!("cannot create stream {name}: {e}")))?;
    }
    Ok(())
}

/// One role per process, through JetStream: the same pipelines with NATS in place of the
/// channels (each role until Ctrl-C).
#[cfg(feature = "nats")]
async fn across_processes(args: &Args, url: &str) -> etl::Result<()> {
    let role = args.role.as_deref().unwrap_or("ingest");
    ensure_streams(url).await?;
    let ticks = if args.ticks == 0 { u64::MAX } else { args.ticks };
    let archive = args.archive.to_string_lossy().into_owned();
    let report = match role {
        "ingest" => {
            pipeline! {
                periodic(every = 1s, poll = fetch, max_polls = ticks, batch_size = 5, batch_timeout = 100ms) as Raw
                | nats(url = url, subject = "sensors.raw", msg_id = "id")
            }
            .name("ingest")
            .run()
            .await?
        }
        "work" => {
            pipeline! {
                nats(url = url, stream = "SENSORS_RAW", subject = "sensors.raw", durable = "workers", create = true) as Raw
                | map(transform) as Reading
                | nats(url = url, subject = "sensors.processed", msg_id = "record_id")
            }
            .name("work")
            .run()
            .await?
        }
        "dashboard" => pipeline! {
            nats(url = url, stream = "SENSORS_PROCESSED", subject = "sensors.processed", durable = "dashboard", create = true) as Reading
            | inspect(show)
            | blackhole()
        }
        .name("dashboard")
        .run()
        .await?,
        _ => {
            pipeline! {
                nats(url = url, stream = "SENSORS_PROCESSED", subject = "sensors.processed", durable = "archiver", create = true) as Reading
                | file(dir = archive.as_str(), format = "jsonl")
            }
            .name("archive")
            .run()
            .await?
        }
    };
    println!("{role}: {report}");
    Ok(())
}
