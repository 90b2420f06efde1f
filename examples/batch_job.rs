//! rahcp-etl's checkpointed extract → transform → load job (`seeds/rahcp-etl.txt`), with
//! etl's job form: `pipeline! { extract | transform | load }`, per-stage retries, and a
//! checkpoint after each stage: in a local `FileStore` (no service needed), or in a NATS
//! key-value bucket with `--nats URL` (feature `nats`).
//!
//! ```sh
//! cargo run --example batch_job -- --fail-at transform   # extract runs and is checkpointed; transform fails
//! cargo run --example batch_job                          # the same run id resumes: extract is not run again
//! cargo run --example batch_job -- --stage-delay 3s      # SIGKILL it (Ctrl-\ or kill -9) mid-way, then run again
//! cargo run --example batch_job --features nats -- --nats nats://127.0.0.1:4222 --fail-at load
//! ```
//!
//! The event-driven variant, `--consume SUBJECT` (feature `nats`): a JetStream consumer runs the
//! job once per message (`nats(..) as Request | map(job) | stdout()`), the message's stream
//! sequence as its run id, dead letters in the `BATCH_JOB_DLQ` stream after `max_deliver`:
//!
//! ```sh
//! cargo run --example batch_job --features nats -- --nats nats://127.0.0.1:4222 --consume jobs.requests
//! nats pub jobs.requests '{"source":"s3://bucket/a","out":"a.json","stage_delay_ms":0}'
//! ```
//!
//! A plain `#[tokio::main]` rather than `#[etl::main]`: the runner's subcommands (`check`,
//! `graph`, `dead-letters`) act on stream pipelines' runs, and a job would run for real under
//! `check`; the flags are still clap's (`etl::cli::clap`).

use etl::checkpoint::FileStore;
use etl::cli::clap::{self, Parser};
use etl::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The job's input.
#[derive(Debug, Clone, Serialize, Deserialize, Record)]
struct Request {
    source: String,
    out: PathBuf,
    /// A pause at the start of each stage, to leave time for a SIGKILL.
    stage_delay_ms: u64,
}

/// What `extract` downloaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Extracted {
    records: Vec<String>,
    request: Request,
}

/// What `transform` made of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Transformed {
    transformed: Vec<String>,
    request: Request,
}

/// What `load` wrote.
#[derive(Debug, Clone, Serialize, Deserialize, Record)]
struct Loaded {
    loaded: usize,
    path: PathBuf,
}

/// The stage's pause, and its failure when `--fail-at` names it (read from the command line
/// of this run, not from the checkpointed state, so a re-run without the flag succeeds).
async fn begin(stage: &str, request: &Request) -> Result<(), etl::stage::Error> {
    tracing::info!(stage, "stage starting");
    tokio::time::sleep(Duration::from_millis(request.stage_delay_ms)).await;
    if FAIL_AT.get().and_then(|f| f.as_deref()) == Some(stage) {
        return Err(etl::stage::Error::permanent(format!("--fail-at {stage}: failing on purpose; run again without it to resume")));
    }
    Ok(())
}

static FAIL_AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Download the source data (here: three records named after it).
#[stage(retries = 3, backoff = 2s)]
async fn extract(request: Request) -> Result<Extracted, etl::stage::Error> {
    begin("extract", &request).await?;
    let records = ["a", "b", "c"].iter().map(|r| format!("{}#{r}", request.source)).collect();
    Ok(Extracted { records, request })
}

/// Process the records.
#[stage(retries = 3)]
async fn transform(input: Extracted) -> Result<Transformed, etl::stage::Error> {
    begin("transform", &input.request).await?;
    Ok(Transformed { transformed: input.records.iter().map(|r| r.to_uppercase()).collect(), request: input.request })
}

/// Write the results (a JSON file, written atomically).
#[stage(retries = 3)]
async fn load(input: Transformed) -> Result<Loaded, etl::stage::Error> {
    begin("load", &input.request).await?;
    let path = input.request.out.clone();
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, serde_json::to_vec_pretty(&input.transformed)?).await?;
    tokio::fs::rename(&tmp, &path).await?;
    Ok(Loaded { loaded: input.transformed.len(), path })
}

/// The job's flags.
#[derive(Debug, Parser)]
#[command(name = "batch_job", about = "extract → transform → load, checkpointed after each stage")]
struct Args {
    /// The source to extract.
    #[arg(long, default_value = "s3://bucket/input")]
    source: String,
    /// The run id: a re-run with the same id resumes after its last checkpointed stage.
    #[arg(long, default_value = "batch-2025-03-18")]
    run_id: String,
    /// The checkpoint directory.
    #[arg(long, default_value = "checkpoints")]
    checkpoints: PathBuf,
    /// Where `load` writes.
    #[arg(long, default_value = "loaded.json")]
    out: PathBuf,
    /// Make this stage fail (extract, transform or load).
    #[arg(long, value_parser = ["extract", "transform", "load"])]
    fail_at: Option<String>,
    /// Pause at the start of each stage (e.g. `3s`), to kill the job in the middle.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    stage_delay: Duration,
    /// Keep the checkpoints in the NATS key-value bucket `--bucket` of this server (feature
    /// `nats`) instead of `--checkpoints`.
    #[arg(long)]
    nats: Option<String>,
    /// The NATS key-value bucket of the checkpoints (created when missing).
    #[arg(long, default_value = "batch_job_checkpoints")]
    bucket: String,
    /// Run the job once per message of this subject (a JetStream stream `BATCH_JOB` and durable
    /// consumer `batch_job` are created for it), until SIGINT; needs `--nats`.
    #[arg(long, requires = "nats")]
    consume: Option<String>,
}

/// The job's stages, checkpointed where the flags say.
async fn job(args: &Args) -> etl::Result<etl::job::Job<Request, Loaded>> {
    let job = pipeline! { extract | transform | load };
    match &args.nats {
        None => Ok(job.checkpoints(FileStore::new(&args.checkpoints))),
        #[cfg(feature = "nats")]
        Some(url) => {
            let store = etl::checkpoint::NatsKvStore::connect(url, &args.bucket).await.map_err(etl::job::JobError::from)?;
            Ok(job.checkpoints(store))
        }
        #[cfg(not(feature = "nats"))]
        Some(_) => Err(etl::Error::Config(etl::config::ConfigError::Invalid {
            option: "--nats",
            message: "needs the `nats` feature: cargo run --example batch_job --features nats -- ..".into(),
        })),
    }
}

/// `--consume`: one job per message, until a signal.
#[cfg(feature = "nats")]
async fn consume(args: &Args, subject: &str) -> etl::Result<()> {
    let url = args.nats.clone().unwrap_or_default();
    let job = job(args).await?;
    let report = pipeline! {
        nats(url = url.as_str(), stream = "BATCH_JOB", subject = subject, durable = "batch_job", create = true,
             max_deliver = 5, ack_wait = 30s, batch_size = 1) as Request
        | map(job)
        | stdout()
    }
    .dead_letters(etl::dead_letter::NatsDeadLetters::new(url.as_str(), "BATCH_JOB_DLQ"))
    .run()
    .await?;
    println!("{report}");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let _ = FAIL_AT.set(args.fail_at.clone());
    let request = Request { source: args.source.clone(), out: args.out.clone(), stage_delay_ms: args.stage_delay.as_millis() as u64 };
    if let Some(subject) = args.consume.clone() {
        #[cfg(feature = "nats")]
        let result = consume(&args, &subject).await;
        #[cfg(not(feature = "nats"))]
        let result: etl::Result<()> = Err(etl::Error::Config(etl::config::ConfigError::Invalid {
            option: "--consume",
            message: format!("`{subject}`: needs the `nats` feature: cargo run --example batch_job --features nats -- .."),
        }));
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:?}");
                ExitCode::FAILURE
            }
        };
    }
    let job = match job(&args).await {
        Ok(job) => job,
        Err(e) => {
            eprintln!("error: {e:?}");
            return ExitCode::FAILURE;
        }
    };
    match job.run_with_report(request, &args.run_id).await {
        Ok(done) => {
            println!("{}", done.report);
            println!("loaded {} records into {}", done.output.loaded, done.output.path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            if let Some(report) = e.report() {
                eprintln!("{report}");
            }
            eprintln!("error: {:?}", etl::Error::from(e));
            ExitCode::FAILURE
        }
    }
}
