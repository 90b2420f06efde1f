//! The crash harness (tests/common/crash.rs) on the connectors without a service: the pipeline
//! runs in a child process (this test binary, re-run filtered to one test), is SIGKILLed at
//! random points while it works, restarted, and finally run to its end; then the lake is
//! counted. `crash_sqs.rs` has the SQS case.
//!
//! What each case checks, and the bound on duplicates:
//!
//! * **file → file**: the file source has no checkpoint, so every restart reads the file again
//!   from the start: duplicates are not bounded by the in-flight window (a downstream dedup by
//!   content is the user's remedy); checked: every line reaches the lake at least once, and the
//!   file sink's own promise, after every kill and at the end: each final file is exactly one
//!   whole batch (lines `25k+1 ..= 25k+25`), never torn or partial; the temporaries a kill
//!   leaves are removed by the next start.
//! * **SSE with `last_event_id_file` → file**: a loopback server (in this, the parent process)
//!   that resumes after `Last-Event-ID`. Every event id reaches the lake at least once. After
//!   each kill the parent reads the durable state: the stored id and the lake; the events in
//!   the lake after the stored id are the kill's *exposure*, what the restart sends again.
//!   Checked: each restart sent `Last-Event-ID` = the stored id; total duplicates ≤ the sum of
//!   exposures (nothing is sent again that the resume file says was delivered); each final
//!   file is one whole batch of 10 consecutive ids; each exposure is within the in-flight
//!   window (`max_in_flight × batch_size`): the source reads its next batch only once the
//!   resume file covers every acknowledged batch. (Before that rule, kills found the lake 60
//!   events past the stored id with a window of 20.)
//!   `sse_resume_file_lags_the_lake_by_at_most_the_in_flight_window` samples the same bound
//!   while a run goes on.
//! * **SSE → `broadcast { file, file }`**: the same server and resume file, the pipeline ending
//!   in two file sinks; checked: both lakes hold every event at least once in whole batches,
//!   duplicates per lake within 4 kills × the in-flight window.
//! * **WorkQueue**: the in-process queue lives in the process's memory and does not survive a
//!   kill, by design (SQS or JetStream are the durable choices). Its case runs in-process
//!   instead: the consumer pipeline's task is aborted (dropped) mid-batch several times and a
//!   new consumer on the same queue finishes. Messages of the dropped batches are nacked by
//!   their dropped acknowledgements; messages the dropped batcher held come back when their
//!   lease expires (`claim_timeout` 2 s). Checked: every message in the lake at least once, the
//!   queue empty, duplicates ≤ aborts × `max_in_flight × batch_size` (a commit that landed while
//!   its acknowledgement was dropped).

mod common;

use common::contract::LONG;
use common::crash::{self, count_files, read_lake, Child, LakeDir, Rng, Tally, Watch};
use common::sse_server::SseServer;
use common::{wait_until, PATIENCE};
use etl::batch::BatchOptions;
use etl::channel::WorkQueue;
use etl::dead_letter::MemoryDeadLetters;
use etl::{Json, Pipeline};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MAX_IN_FLIGHT: usize = 2;

fn arg(args: &Value, name: &str) -> String {
    args[name].as_str().unwrap_or_else(|| panic!("child argument {name} missing: {args}")).to_owned()
}

/// The `n` of every record in the lake.
fn numbers(lake: &LakeDir) -> impl Iterator<Item = u64> + '_ {
    lake.records().map(|r| r.get("n").and_then(Value::as_u64).unwrap_or_else(|| panic!("a record without `n`: {r:?}")))
}

/// Each final file is one whole batch: `batch` consecutive numbers starting at `first + k ×
/// batch`, or the last, shorter batch ending at `last`.
#[track_caller]
fn assert_whole_batches(context: &str, lake: &LakeDir, first: u64, last: u64, batch: u64) {
    for (name, records) in &lake.files {
        let ns: Vec<u64> = records.iter().map(|r| r.get("n").and_then(Value::as_u64).unwrap()).collect();
        let start = ns[0];
        let whole = (start - first) % batch == 0
            && ns.iter().zip(start..).all(|(n, want)| *n == want)
            && (ns.len() as u64 == batch || start + ns.len() as u64 - 1 == last);
        assert!(whole, "{context}: {name} is not one whole batch of {batch}: {ns:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// file → file

const FILE_LINES: u64 = 10_000;
const FILE_BATCH: usize = 25;

async fn file_child(args: Value) {
    crash::run_child(
        Pipeline::from(etl::source::file::<Json>(arg(&args, "input")).batch_size(FILE_BATCH).batch_timeout(LONG))
            .to(etl::sink::file(arg(&args, "lake"))),
        MAX_IN_FLIGHT,
    )
    .await;
}

struct FileWatch {
    lake: PathBuf,
    temporaries_at_kills: usize,
}

impl Watch for FileWatch {
    fn progress(&self) -> usize {
        count_files(&self.lake)
    }

    async fn killed(&mut self, kill: usize) {
        let lake = read_lake(&self.lake);
        assert_whole_batches(&format!("after kill {}", kill + 1), &lake, 0, FILE_LINES - 1, FILE_BATCH as u64);
        self.temporaries_at_kills += lake.hidden.len();
    }
}

#[tokio::test]
async fn file_source_to_file_sink_survives_sigkill() {
    if let Some(args) = crash::child_args() {
        return file_child(args).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    let lines: String = (0..FILE_LINES).map(|n| format!("{}\n", json!({"n": n, "pad": "x".repeat(40)}))).collect();
    std::fs::write(&input, lines).unwrap();
    let lake = dir.path().join("lake");
    let child = Child {
        test: "file_source_to_file_sink_survives_sigkill".into(),
        args: json!({"input": input, "lake": lake}),
        log_dir: dir.path().to_owned(),
    };
    let mut watch = FileWatch { lake: lake.clone(), temporaries_at_kills: 0 };
    let crashes = crash::run(&child, 4, &mut watch).await;
    let ctx = format!("file → file, {crashes:?}");
    let out = read_lake(&lake);
    assert!(out.hidden.is_empty(), "{ctx}: the last start removed the temporaries the kills left: {:?}", out.hidden);
    assert_whole_batches(&ctx, &out, 0, FILE_LINES - 1, FILE_BATCH as u64);
    let tally = Tally::of(numbers(&out));
    assert_eq!(tally.missing(0..FILE_LINES), Vec::<u64>::new(), "{ctx}: every line at least once");
    eprintln!(
        "{ctx}: {} duplicates (the file is read again from the start after each kill), {} temporaries seen at kills",
        tally.duplicates(),
        watch.temporaries_at_kills
    );
}

// ---------------------------------------------------------------------------------------------
// SSE → file

const SSE_EVENTS: u64 = 5000;
const SSE_BATCH: usize = 10;

async fn sse_child(args: Value) {
    let source = etl::source::sse::<Json>(arg(&args, "url"))
        .last_event_id_file(arg(&args, "resume"))
        .reconnect(false)
        .batch_size(SSE_BATCH)
        .batch_timeout(LONG);
    crash::run_child(Pipeline::from(source).to(etl::sink::file(arg(&args, "lake"))), MAX_IN_FLIGHT).await;
}

struct SseWatch {
    lake: PathBuf,
    resume: PathBuf,
    /// Per kill: (stored id, events in the lake after it).
    exposures: Vec<(u64, usize)>,
}

fn stored_id(path: &Path) -> u64 {
    match std::fs::read_to_string(path) {
        Ok(id) => id.trim().parse().unwrap_or_else(|_| panic!("the resume file holds {id:?}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => panic!("cannot read the resume file: {e}"),
    }
}

impl Watch for SseWatch {
    fn progress(&self) -> usize {
        count_files(&self.lake)
    }

    async fn killed(&mut self, kill: usize) {
        let lake = read_lake(&self.lake);
        assert_whole_batches(&format!("after kill {}", kill + 1), &lake, 1, SSE_EVENTS, SSE_BATCH as u64);
        let stored = stored_id(&self.resume);
        let exposure = numbers(&lake).filter(|n| *n > stored).count();
        self.exposures.push((stored, exposure));
    }
}

#[tokio::test]
async fn sse_with_a_resume_file_to_file_sink_survives_sigkill() {
    if let Some(args) = crash::child_args() {
        return sse_child(args).await;
    }
    let server = SseServer::start().await;
    for n in 1..=SSE_EVENTS {
        server.push(&n.to_string(), json!({"n": n}).to_string().as_bytes());
    }
    server.hold(false);
    let dir = tempfile::tempdir().unwrap();
    let (lake, resume) = (dir.path().join("lake"), dir.path().join("last-event-id"));
    let child = Child {
        test: "sse_with_a_resume_file_to_file_sink_survives_sigkill".into(),
        args: json!({"url": server.url(), "lake": lake, "resume": resume}),
        log_dir: dir.path().to_owned(),
    };
    let mut watch = SseWatch { lake: lake.clone(), resume: resume.clone(), exposures: Vec::new() };
    let crashes = crash::run(&child, 4, &mut watch).await;
    let ctx = format!(
        "SSE → file, {crashes:?}, (stored id, exposure) per kill {:?}, Last-Event-ID per connection {:?}",
        watch.exposures,
        server.requests()
    );
    let out = read_lake(&lake);
    assert!(out.hidden.is_empty(), "{ctx}: no temporaries left: {:?}", out.hidden);
    assert_whole_batches(&ctx, &out, 1, SSE_EVENTS, SSE_BATCH as u64);
    let tally = Tally::of(numbers(&out));
    assert_eq!(tally.missing(1..=SSE_EVENTS), Vec::<u64>::new(), "{ctx}: every event at least once");
    assert_eq!(stored_id(&resume), SSE_EVENTS, "{ctx}: the resume file holds the last event");
    // Each connection resumed where the previous run's file said.
    let requests = server.requests();
    assert_eq!(requests.len(), 4 + crashes.final_runs, "{ctx}: one connection per run");
    for (run, (stored, _)) in watch.exposures.iter().enumerate() {
        let sent = requests[run + 1].as_deref().map_or(0, |id| id.parse::<u64>().unwrap());
        assert_eq!(sent, *stored, "{ctx}: run {} resumed after the id stored when run {} was killed", run + 2, run + 1);
    }
    let exposed: usize = watch.exposures.iter().map(|(_, e)| e).sum();
    assert!(
        tally.duplicates() <= exposed,
        "{ctx}: {} duplicates, more than the events past the stored ids ({exposed})",
        tally.duplicates()
    );
    let window = MAX_IN_FLIGHT * SSE_BATCH;
    let over: Vec<usize> = watch.exposures.iter().map(|(_, e)| *e).filter(|e| *e > window).collect();
    assert!(over.is_empty(), "{ctx}: kills found the lake past the stored id by more than the in-flight window ({window}): {over:?}");
    eprintln!("{ctx}: {} duplicates", tally.duplicates());
}

/// The duplicates a crash of an SSE pipeline makes are the events committed to the sink past
/// the id in `last_event_id_file`. DESIGN.md §8 bounds duplicates by the in-flight window
/// (`max_in_flight × batch_size`). This samples, while a run goes on, how far the sink is past
/// the stored id (the sink's count read before the file, so the lag is never overestimated).
///
/// It holds because the source reads its next batch only once the resume file covers every
/// acknowledged batch (`src/source/sse/resume.rs`, `Resume::caught_up`); without that rule the
/// sink got hundreds of events ahead here (it commits in memory while the id's fsync'ed write
/// is in progress).
#[tokio::test]
async fn sse_resume_file_lags_the_lake_by_at_most_the_in_flight_window() {
    let server = SseServer::start().await;
    for n in 1..=SSE_EVENTS {
        server.push(&n.to_string(), json!({"n": n}).to_string().as_bytes());
    }
    server.hold(false);
    let dir = tempfile::tempdir().unwrap();
    let resume = dir.path().join("last-event-id");
    let lake = common::contract::Lake::default();
    let source =
        etl::source::sse::<Json>(server.url()).last_event_id_file(&resume).reconnect(false).batch_size(SSE_BATCH).batch_timeout(LONG);
    let run = tokio::spawn(
        Pipeline::from(source)
            .to(lake.sink())
            .max_in_flight(MAX_IN_FLIGHT)
            .dead_letters(MemoryDeadLetters::new())
            .handle_signals(false)
            .run(),
    );
    let mut worst = 0;
    while !run.is_finished() {
        let committed = lake.len() as u64;
        let stored = stored_id(&resume);
        worst = worst.max(committed.saturating_sub(stored));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    run.await.unwrap().expect("the run");
    assert_eq!(stored_id(&resume), SSE_EVENTS);
    let window = (MAX_IN_FLIGHT * SSE_BATCH) as u64;
    assert!(worst <= window, "the sink was {worst} events past the stored id, more than the in-flight window ({window})");
}

// ---------------------------------------------------------------------------------------------
// WorkQueue, in-process

const QUEUE_MESSAGES: u64 = 5000;
const QUEUE_BATCH: usize = 10;
/// Longer than a batch spends in the pipeline, even on a loaded machine (the work queue
/// source does not extend its leases).
const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);
const ABORTS: usize = 4;

fn consumer(queue: &WorkQueue, lake: &Path, cancel: CancellationToken) -> tokio::task::JoinHandle<etl::Result<etl::RunReport>> {
    // A short linger: the last, partial batch is flushed without a shutdown.
    let source = queue.source::<Json>().name("crash").batch_size(QUEUE_BATCH).batch_timeout(Duration::from_millis(100));
    let run = Pipeline::from(source)
        .to(etl::sink::file(lake.to_str().unwrap()))
        .max_in_flight(MAX_IN_FLIGHT)
        .dead_letters(MemoryDeadLetters::new())
        .cancel_on(cancel)
        .handle_signals(false)
        .run();
    tokio::spawn(run)
}

// Two threads: the test's waits run beside the consumer, so that the drop lands mid-work
// rather than after the queue is drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_consumer_dropped_mid_batch_then_a_new_consumer_finishes() {
    let queue = WorkQueue::with_limits(10_000, CLAIM_TIMEOUT);
    for n in 0..QUEUE_MESSAGES {
        queue.push(json!({"n": n}).to_string().into()).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    // A lake directory per consumer: a dropped consumer's file I/O on the blocking pool runs on
    // after the drop (a killed process's would not), and must not meet the next consumer's.
    let lake = |k: usize| dir.path().join(format!("consumer-{k}"));
    let mut rng = Rng::from_env("work queue aborts");
    for abort in 0..ABORTS {
        let running = consumer(&queue, &lake(abort), CancellationToken::new());
        let steps = 1 + (rng.next() % 4) as usize;
        let what = format!("abort {}: the consumer to write {steps} files", abort + 1);
        wait_until(PATIENCE, &what, || count_files(&lake(abort)) >= steps || running.is_finished()).await;
        tokio::time::sleep(rng.kill_delay()).await;
        if running.is_finished() {
            panic!("abort {}: the consumer ended before it could be dropped ({:?}); give it more messages", abort + 1, running.await);
        }
        running.abort();
        assert!(running.await.unwrap_err().is_cancelled());
    }
    let stop = CancellationToken::new();
    let last = consumer(&queue, &lake(ABORTS), stop.clone());
    // Messages the dropped consumers held come back when their leases expire.
    wait_until(PATIENCE, "the last consumer to empty the queue", || queue.is_empty()).await;
    stop.cancel();
    tokio::time::timeout(PATIENCE, last).await.expect("the last consumer stopped").unwrap().expect("its run succeeded");
    let ctx = format!("work queue, {ABORTS} aborts");
    let lakes: Vec<LakeDir> = (0..=ABORTS).map(|k| read_lake(&lake(k))).collect();
    let tally = Tally::of(lakes.iter().flat_map(numbers));
    assert_eq!(tally.missing(0..QUEUE_MESSAGES), Vec::<u64>::new(), "{ctx}: every message at least once");
    let bound = ABORTS * MAX_IN_FLIGHT * QUEUE_BATCH;
    assert!(
        tally.duplicates() <= bound,
        "{ctx}: {} duplicates, more than {ABORTS} aborts × the in-flight window ({bound})",
        tally.duplicates()
    );
    assert!(queue.is_empty() && queue.in_flight() == 0, "{ctx}: the queue ends empty");
    eprintln!("{ctx}: {} duplicates", tally.duplicates());
}

/// The lease path on its own: a consumer dropped while its batcher holds a partial batch (the
/// queue has fewer messages than a batch, the linger is an hour) leaves them leased; nobody
/// acks or nacks them, and they come back to the next consumer when the lease expires.
#[tokio::test]
async fn work_queue_claims_of_a_dropped_partial_batch_come_back_after_their_lease() {
    let queue = WorkQueue::with_limits(100, Duration::from_millis(500));
    for n in 0..5u64 {
        queue.push(json!({"n": n}).to_string().into()).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let held = Pipeline::from(queue.source::<Json>().batch_size(QUEUE_BATCH).batch_timeout(LONG))
        .to(etl::sink::file(lake.to_str().unwrap()))
        .dead_letters(MemoryDeadLetters::new())
        .handle_signals(false)
        .run();
    let held = tokio::spawn(held);
    wait_until(PATIENCE, "the partial batch claimed", || queue.in_flight() == 5).await;
    held.abort();
    assert!(held.await.unwrap_err().is_cancelled());
    assert_eq!((queue.len(), queue.in_flight()), (5, 5), "still leased: nothing acked or nacked them");
    let stop = CancellationToken::new();
    let next = consumer(&queue, &lake, stop.clone());
    wait_until(PATIENCE, "the leases to expire and the next consumer to finish", || queue.is_empty()).await;
    stop.cancel();
    tokio::time::timeout(PATIENCE, next).await.expect("stopped").unwrap().expect("its run succeeded");
    let tally = Tally::of(numbers(&read_lake(&lake)));
    assert_eq!((tally.missing(0..5), tally.duplicates()), (vec![], 0), "each message once");
}

// ---------------------------------------------------------------------------------------------
// SSE → broadcast { file, file }

async fn fanout_child(args: Value) {
    let source = etl::source::sse::<Json>(arg(&args, "url"))
        .last_event_id_file(arg(&args, "resume"))
        .reconnect(false)
        .batch_size(SSE_BATCH)
        .batch_timeout(LONG);
    let (a, b) = (etl::sink::file(arg(&args, "lake_a")), etl::sink::file(arg(&args, "lake_b")));
    crash::run_child(
        Pipeline::from(source).broadcast(|input| {
            vec![etl::fanout::branch(Pipeline::from(input.clone()).to(a)), etl::fanout::branch(Pipeline::from(input).to(b))]
        }),
        MAX_IN_FLIGHT,
    )
    .await;
}

/// Progress: the files of the slower lake.
struct FanoutWatch {
    lakes: [PathBuf; 2],
}

impl Watch for FanoutWatch {
    fn progress(&self) -> usize {
        self.lakes.iter().map(|l| count_files(l)).min().unwrap_or(0)
    }
}

/// A fan-out SIGKILLed mid-batch (4 times) and restarted: both branches' lakes hold every event
/// at least once (the resume id is stored only once both branches committed a batch), in whole
/// batches, and the restarts resend at most the in-flight window per kill to each branch.
#[tokio::test]
async fn a_fan_out_killed_mid_batch_delivers_at_least_once_in_both_branches() {
    if let Some(args) = crash::child_args() {
        return fanout_child(args).await;
    }
    let server = SseServer::start().await;
    for n in 1..=SSE_EVENTS {
        server.push(&n.to_string(), json!({"n": n}).to_string().as_bytes());
    }
    server.hold(false);
    let dir = tempfile::tempdir().unwrap();
    let (lake_a, lake_b, resume) = (dir.path().join("lake_a"), dir.path().join("lake_b"), dir.path().join("last-event-id"));
    let child = Child {
        test: "a_fan_out_killed_mid_batch_delivers_at_least_once_in_both_branches".into(),
        args: json!({"url": server.url(), "lake_a": lake_a, "lake_b": lake_b, "resume": resume}),
        log_dir: dir.path().to_owned(),
    };
    let mut watch = FanoutWatch { lakes: [lake_a.clone(), lake_b.clone()] };
    let crashes = crash::run(&child, 4, &mut watch).await;
    for lake in [&lake_a, &lake_b] {
        let ctx = format!("SSE → broadcast, lake {}, {crashes:?}", lake.display());
        let out = read_lake(lake);
        assert!(out.hidden.is_empty(), "{ctx}: no temporaries left: {:?}", out.hidden);
        assert_whole_batches(&ctx, &out, 1, SSE_EVENTS, SSE_BATCH as u64);
        let tally = Tally::of(numbers(&out));
        assert_eq!(tally.missing(1..=SSE_EVENTS), Vec::<u64>::new(), "{ctx}: every event at least once");
        let bound = 4 * MAX_IN_FLIGHT * SSE_BATCH;
        assert!(
            tally.duplicates() <= bound,
            "{ctx}: {} duplicates, more than 4 kills × the in-flight window ({bound})",
            tally.duplicates()
        );
        eprintln!("{ctx}: {} duplicates", tally.duplicates());
    }
    assert_eq!(stored_id(&resume), SSE_EVENTS, "the resume file holds the last event");
}
