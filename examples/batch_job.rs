//! rahcp-etl's checkpointed extract → transform → load job (`seeds/rahcp-etl.txt`), with
//! etl's job form: `pipeline! { extract | transform | load }`, per-stage retries, and a
//! checkpoint after each stage in a local `FileStore` (no service needed).
//!
//! ```sh
//! cargo run --example batch_job -- --fail-at transform   # extract runs and is checkpointed; transform fails
//! cargo run --example batch_job                          # the same run id resumes: extract is not run again
//! cargo run --example batch_job -- --stage-delay 3s      # SIGKILL it (Ctrl-\ or kill -9) mid-way, then run again
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let _ = FAIL_AT.set(args.fail_at);
    let request = Request { source: args.source, out: args.out, stage_delay_ms: args.stage_delay.as_millis() as u64 };
    let job = pipeline! { extract | transform | load }.checkpoints(FileStore::new(&args.checkpoints));
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
