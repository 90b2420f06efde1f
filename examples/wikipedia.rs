//! The tutorial pipeline: Wikimedia's RecentChange stream (Server-Sent Events) → a queue →
//! batches of 100 → CSV files in a data lake. It is two `pipeline!` blocks:
//!
//! 1. **ingest**: the SSE stream's `message` events, as JSON, into the queue (malformed events
//!    are dead-lettered with their raw text);
//! 2. **process**: the queue, decoded into [`Change`], canary events dropped, projected onto
//!    the columns `id,type,wiki,title,user,bot,timestamp,comment,length_new`, in batches of
//!    100, one CSV object (with a header row) per batch.
//!
//! With no arguments it runs on embedded defaults: it serves a bundled sample of 3 000 events
//! (`examples/data/recentchange.jsonl.gz`, made with `gen_recentchange.py 3000`) on a local
//! SSE endpoint, uses the in-process [`WorkQueue`] in place of SQS, writes into `./lake`, and
//! prints both run reports.
//!
//! ```sh
//! cargo run --example wikipedia
//! cargo run --example wikipedia -- --sse-url https://stream.wikimedia.org/v2/stream/recentchange --lake /tmp/lake
//! cargo run --example wikipedia --features sqs,s3 -- \
//!     --sqs-endpoint http://127.0.0.1:5000 --queue-url http://127.0.0.1:5000/123456789012/changes \
//!     --s3-endpoint http://127.0.0.1:5000 --bucket lake
//! cargo run --release --example wikipedia -- --from-file events.jsonl --lake /tmp/lake
//! ```
//!
//! Flags: `--sse-url URL`, `--lake DIR`, `--sqs-endpoint URL --queue-url URL` (SQS in place of
//! the in-process queue), `--s3-endpoint URL --bucket NAME` (S3 in place of the local lake),
//! `--from-file FILE.jsonl` (feed the second pipeline straight from a file of events, for
//! benchmarks), `--max-records N` (stop after N events). Against a live stream it runs until
//! SIGINT/SIGTERM: then the partial batch is flushed and written, and it exits 0.
//!
//! It runs under etl's runner (`#[etl::main]`): `wikipedia check` opens both pipelines' sources
//! and sinks and reads nothing, `wikipedia graph` prints both pipelines, `wikipedia
//! dead-letters list` their dead letters; `--log-format json` and `--metrics-addr ADDR` work
//! with any subcommand.

use etl::channel::WorkQueue;
use etl::prelude::*;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The fields of a RecentChange event the lake keeps (serde ignores the others). Every field
/// is optional: a live stream sends what it sends, and an absent value is an empty cell.
#[derive(Debug, Clone, Record, Serialize, Deserialize)]
pub struct Change {
    pub id: Option<i64>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub wiki: Option<String>,
    pub title: Option<String>,
    pub user: Option<String>,
    pub bot: Option<bool>,
    pub timestamp: Option<i64>,
    pub comment: Option<String>,
    #[serde(default)]
    pub length: Option<Length>,
    #[serde(default)]
    pub meta: Option<EventMeta>,
}

/// `length` of an edit: the page's size before and after.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Length {
    pub new: Option<i64>,
}

/// The part of the event's `meta` the pipeline reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventMeta {
    pub domain: Option<String>,
}

impl Change {
    /// Wikimedia's canary events (`meta.domain == "canary"`) check the stream's health; consumers drop them.
    pub fn is_canary(&self) -> bool {
        self.meta.as_ref().and_then(|m| m.domain.as_deref()) == Some("canary")
    }
}

/// One row of the lake: the tutorial's columns, `length_new` flattened from `length.new`.
#[derive(Debug, Clone, PartialEq, Record, Serialize, Deserialize)]
pub struct Row {
    pub id: Option<i64>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub wiki: Option<String>,
    pub title: Option<String>,
    pub user: Option<String>,
    pub bot: Option<bool>,
    pub timestamp: Option<i64>,
    pub comment: Option<String>,
    pub length_new: Option<i64>,
}

impl From<Change> for Row {
    fn from(c: Change) -> Row {
        Row {
            id: c.id,
            kind: c.kind,
            wiki: c.wiki,
            title: c.title,
            user: c.user,
            bot: c.bot,
            timestamp: c.timestamp,
            comment: c.comment,
            length_new: c.length.and_then(|l| l.new),
        }
    }
}

/// The CSV header of the lake's files.
pub const COLUMNS: &str = "id,type,wiki,title,user,bot,timestamp,comment,length_new";

/// Records per CSV object.
const BATCH: usize = 100;
/// Longest wait for a batch of 100 on a slow stream before writing a smaller one.
const LINGER: Duration = Duration::from_secs(30);
/// Batches written to the lake and not yet committed, at most: the file sink syncs a group of
/// files and their directory once per commit, so a busy stream pays one directory sync per 8
/// files instead of one per file. (Memory: 8 batches of 100 events.)
const IN_FLIGHT: usize = 8;

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SSE stream; `None`: serve the bundled sample locally.
    pub sse_url: Option<String>,
    /// The local data lake (when no bucket is given).
    pub lake: PathBuf,
    /// SQS in place of the in-process queue: `(endpoint, queue URL)`.
    pub sqs: Option<(Option<String>, String)>,
    /// S3 in place of the local lake: `(endpoint, bucket)`.
    pub s3: Option<(Option<String>, String)>,
    /// Feed the second pipeline from this JSONL file of events (the first does not run).
    pub from_file: Option<PathBuf>,
    /// Stop after this many events.
    pub max_records: Option<u64>,
    /// Stop gracefully on SIGINT/SIGTERM (tests turn it off unless they test it).
    pub handle_signals: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { sse_url: None, lake: PathBuf::from("lake"), sqs: None, s3: None, from_file: None, max_records: None, handle_signals: true }
    }
}

/// The run reports: `ingest` is `None` with `--from-file`.
#[derive(Debug)]
pub struct Summary {
    pub ingest: Option<RunReport>,
    pub process: RunReport,
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The first pipeline: SSE `message` events into the queue, as they came.
async fn ingest<K: Sink<Json>>(url: &str, queue: K, config: &Config, stop: CancellationToken) -> etl::Result<RunReport> {
    let max_records = config.max_records.unwrap_or(u64::MAX);
    pipeline! {
        sse(url = url, event_filter = "message", batch_size = 500, batch_timeout = 1s, max_records = max_records) as Json
        | queue
    }
    .name("wikipedia-ingest")
    .handle_signals(config.handle_signals)
    .cancel_on(stop)
    .run()
    .await
}

/// The second pipeline: events from the queue (or a file) to CSV objects of 100 rows.
async fn process<S, K>(events: S, lake: K, handle_signals: bool) -> etl::Result<RunReport>
where
    S: Source<Item = Change>,
    K: Sink<Row>,
{
    pipeline! {
        events
        | filter(|c| !c.is_canary())
        | map(Row::from)
        | lake
    }
    .name("wikipedia-process")
    .max_in_flight(IN_FLIGHT)
    .handle_signals(handle_signals)
    .run()
    .await
}

const NO_SQS: &str = "this build has no SQS support: run with `--features sqs,s3`";
const NO_S3: &str = "this build has no S3 support: run with `--features sqs,s3`";

/// Run the pipelines `config` asks for.
pub async fn run(config: Config) -> Result<Summary, BoxError> {
    // Before anything starts: an SSE stream read into a pipeline that then cannot write would
    // lose the events it had taken.
    if config.sqs.is_some() && !cfg!(feature = "sqs") {
        return Err(NO_SQS.into());
    }
    if config.s3.is_some() && !cfg!(feature = "s3") {
        return Err(NO_S3.into());
    }
    if let Some(path) = &config.from_file {
        let events = etl::source::file::<Change>(path.to_string_lossy()).batch_size(BATCH).batch_timeout(LINGER);
        let events = match config.max_records {
            Some(n) => events.max_records(n),
            None => events,
        };
        let process = to_lake(events, &config, config.handle_signals).await?;
        return Ok(Summary { ingest: None, process });
    }
    let (url, _server) = match &config.sse_url {
        Some(url) => (url.clone(), None),
        None => {
            let server = sample_stream::serve(sample_stream::bundled()?).await?;
            tracing::info!(url = %server.url, "serving the bundled sample of RecentChange events");
            (server.url.clone(), Some(server))
        }
    };
    match &config.sqs {
        None => through_work_queue(&url, &config).await,
        Some((endpoint, queue_url)) => through_sqs(&url, endpoint.as_deref(), queue_url, &config).await,
    }
}

/// Both pipelines at once, joined by the in-process queue. On a signal the first one stops,
/// the queue closes, and the second one drains it (it does not stop on the signal itself: the
/// queue lives in this process only) before it writes its last, partial batch.
async fn through_work_queue(url: &str, config: &Config) -> Result<Summary, BoxError> {
    let queue = WorkQueue::new();
    let stop_ingest = CancellationToken::new();
    let ingest = async {
        let report = ingest(url, queue.sink().name("changes"), config, stop_ingest.clone()).await;
        queue.close();
        report
    };
    let process = async {
        let events = queue.source::<Change>().name("changes").batch_size(BATCH).batch_timeout(LINGER);
        let report = to_lake(events, config, false).await;
        // Nothing consumes the queue any more: stop the producer, and close the queue so that
        // a push waiting for room fails at once instead of holding the producer up.
        stop_ingest.cancel();
        queue.close();
        report
    };
    let (ingest, process) = tokio::join!(ingest, process);
    // The consumer's error first: it explains a producer stopped by the closed queue.
    let process = process?;
    Ok(Summary { ingest: Some(ingest?), process })
}

#[cfg(feature = "sqs")]
async fn through_sqs(url: &str, endpoint: Option<&str>, queue_url: &str, config: &Config) -> Result<Summary, BoxError> {
    let mut sink = etl::sink::sqs(queue_url);
    let mut source = etl::source::sqs::<Change>(queue_url).batch_size(BATCH).batch_timeout(LINGER);
    if let Some(endpoint) = endpoint {
        sink = sink.endpoint_url(endpoint);
        source = source.endpoint_url(endpoint);
    }
    let ingest_done = CancellationToken::new();
    let stop_ingest = CancellationToken::new();
    let ingest = async {
        let report = ingest(url, sink, config, stop_ingest.clone()).await;
        ingest_done.cancel();
        report
    };
    let process = async {
        // SQS keeps what is not consumed: on a signal both pipelines stop; once the first one
        // is done, the second drains the queue and stops.
        let report = to_lake(source.drain_after(ingest_done.clone()), config, config.handle_signals).await;
        stop_ingest.cancel();
        report
    };
    let (ingest, process) = tokio::join!(ingest, process);
    let process = process?;
    Ok(Summary { ingest: Some(ingest?), process })
}

#[cfg(not(feature = "sqs"))]
async fn through_sqs(_: &str, _: Option<&str>, _: &str, _: &Config) -> Result<Summary, BoxError> {
    Err(NO_SQS.into())
}

/// The second pipeline into the local lake or into S3.
async fn to_lake<S: Source<Item = Change>>(events: S, config: &Config, handle_signals: bool) -> Result<RunReport, BoxError> {
    match &config.s3 {
        None => {
            let lake = etl::sink::file(config.lake.to_string_lossy()).format(Format::Csv).prefix("recentchange");
            Ok(process(events, lake, handle_signals).await?)
        }
        Some((endpoint, bucket)) => to_s3(events, endpoint.as_deref(), bucket, handle_signals).await,
    }
}

#[cfg(feature = "s3")]
async fn to_s3<S: Source<Item = Change>>(
    events: S,
    endpoint: Option<&str>,
    bucket: &str,
    handle_signals: bool,
) -> Result<RunReport, BoxError> {
    let mut lake = etl::sink::s3(bucket).format(Format::Csv).key("recentchange/{date}/batch-{run}-{seq}.csv");
    if let Some(endpoint) = endpoint {
        lake = lake.endpoint_url(endpoint);
    }
    Ok(process(events, lake, handle_signals).await?)
}

#[cfg(not(feature = "s3"))]
async fn to_s3<S: Source<Item = Change>>(_: S, _: Option<&str>, _: &str, _: bool) -> Result<RunReport, BoxError> {
    Err(NO_S3.into())
}

/// A local SSE endpoint serving a fixed list of events, as Wikimedia's would: `event:
/// message`, an `id:` per event, `Last-Event-ID` honoured on reconnect, and a 204 (the SSE
/// way to say "no more") once everything was sent.
///
/// Hand-written over a TCP listener rather than with an HTTP server crate: it answers one
/// fixed kind of GET on loopback, and the example should not add a server stack to the build.
pub mod sample_stream {
    use super::BoxError;
    use bytes::Bytes;
    use std::io::Read;
    use std::sync::Arc;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};

    /// The bundled sample, one event's JSON per item.
    pub fn bundled() -> Result<Vec<Bytes>, BoxError> {
        static SAMPLE: &[u8] = include_bytes!("data/recentchange.jsonl.gz");
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(SAMPLE).read_to_end(&mut text)?;
        let text = Bytes::from(text);
        Ok(text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| text.slice_ref(l)).collect())
    }

    /// A running endpoint; it stops when dropped.
    #[derive(Debug)]
    pub struct Server {
        /// `http://127.0.0.1:PORT/v2/stream/recentchange`.
        pub url: String,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// Serve `events` on a free loopback port.
    pub async fn serve(events: Vec<Bytes>) -> std::io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/v2/stream/recentchange", listener.local_addr()?);
        let events = Arc::new(events);
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((socket, _)) => {
                        let events = Arc::clone(&events);
                        tokio::spawn(async move {
                            if let Err(e) = answer(socket, &events).await {
                                tracing::debug!(error = %e, "sample stream connection ended");
                            }
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "sample stream: accept failed"),
                }
            }
        });
        Ok(Server { url, task })
    }

    async fn answer(socket: TcpStream, events: &[Bytes]) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut request = BufReader::new(read);
        let mut last_event_id = None;
        let mut line = String::new();
        loop {
            line.clear();
            if request.read_line(&mut line).await? == 0 || line.trim_end().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("last-event-id") {
                    last_event_id = value.trim().parse::<usize>().ok();
                }
            }
        }
        let start = last_event_id.map_or(0, |id| id + 1);
        if start >= events.len() {
            return write.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        }
        let mut body = Vec::with_capacity(64 << 10);
        body.extend_from_slice(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        );
        // Reconnect quickly after the end of the sample (to hear the 204).
        body.extend_from_slice(b":ok\nretry: 100\n");
        for (id, data) in events.iter().enumerate().skip(start) {
            body.extend_from_slice(format!("event: message\nid: {id}\ndata: ").as_bytes());
            body.extend_from_slice(data);
            body.extend_from_slice(b"\n\n");
            if body.len() >= 64 << 10 {
                write.write_all(&body).await?;
                body.clear();
            }
        }
        write.write_all(&body).await?;
        write.shutdown().await
    }
}

/// The command line (the runner adds its own flags and subcommands: `wikipedia check`,
/// `wikipedia graph`, `wikipedia dead-letters list`, `--log-format json`, `--metrics-addr`).
#[derive(Debug, Clone, etl::cli::clap::Args)]
pub struct Flags {
    /// The SSE stream (default: serve the bundled sample locally).
    #[arg(long)]
    sse_url: Option<String>,
    /// The local data lake (when no bucket is given).
    #[arg(long, default_value = "lake")]
    lake: PathBuf,
    /// SQS endpoint (with --queue-url).
    #[arg(long, requires = "queue_url")]
    sqs_endpoint: Option<String>,
    /// SQS in place of the in-process queue.
    #[arg(long)]
    queue_url: Option<String>,
    /// S3 endpoint (with --bucket).
    #[arg(long, requires = "bucket")]
    s3_endpoint: Option<String>,
    /// S3 in place of the local lake.
    #[arg(long)]
    bucket: Option<String>,
    /// Feed the second pipeline from this JSONL file of events (the first does not run).
    #[arg(long)]
    from_file: Option<PathBuf>,
    /// Stop after this many events.
    #[arg(long)]
    max_records: Option<u64>,
}

impl From<Flags> for Config {
    fn from(f: Flags) -> Config {
        Config {
            sse_url: f.sse_url,
            lake: f.lake,
            sqs: f.queue_url.map(|url| (f.sqs_endpoint, url)),
            s3: f.bucket.map(|bucket| (f.s3_endpoint, bucket)),
            from_file: f.from_file,
            max_records: f.max_records,
            handle_signals: true,
        }
    }
}

#[allow(dead_code)] // Tests include this file as a module and call `run`.
#[etl::main]
async fn main(flags: Flags) -> Result<(), etl::BoxError> {
    let config = Config::from(flags);
    let summary = run(config.clone()).await?;
    if let Some(ingest) = &summary.ingest {
        println!("ingest:  {ingest}");
    }
    println!("process: {}", summary.process);
    match &config.s3 {
        Some((_, bucket)) => println!("lake:    s3://{bucket}/recentchange/"),
        None => println!("lake:    {}", config.lake.display()),
    }
    Ok(())
}
