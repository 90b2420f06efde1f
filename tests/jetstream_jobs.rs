//! Jobs driven by a JetStream consumer (`nats(..) as Request | map(job)`), against a real
//! nats-server (`NATS_URL`; `scripts/test.sh` starts one; a missing server is a failure saying
//! how to start it). Each stage's side effect is a line appended (and fsynced) to a file of the
//! test's own directory, one file per stage and message, so every check counts what really ran;
//! the broker's own view (consumer info, the dead-letter stream) is checked too.
//!
//! * a message whose job fails once is delivered again and resumes after its checkpointed
//!   stage (extract ran once); a message that fails on every delivery is dead-lettered after
//!   `max_deliver` with its bytes and subject, terminated, and replayed back to its subject;
//! * a job longer than `ack_wait` is kept by progress acknowledgements: delivered once;
//! * a child process SIGKILLed in the middle of a message's job: the next run gets the message
//!   again (after `ack_wait`) and resumes from the checkpoint.

mod common;

use common::crash::{self, Child, Watch};
use common::nats::{consumer_info, create_consumer, create_stream, js, nats_url, publish, read_stream, unique};
use etl::batch::FailureKind;
use etl::checkpoint::{CheckpointStore, FileStore, NatsKvStore};
use etl::dead_letter::{DeadLetters, NatsDeadLetters, NatsRepublish};
use etl::prelude::*;
use etl::record::Position;
use futures::StreamExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Serialize, Deserialize, etl::Record)]
struct Request {
    id: u32,
    dir: PathBuf,
    /// Failures of `transform` before it succeeds, per message.
    fail_transform: u32,
    /// How long `transform` takes.
    slow_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Raw {
    req: Request,
    text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Clean {
    req: Request,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, etl::Record)]
struct Loaded {
    id: u32,
    text: String,
}

/// A side effect: one line appended to `dir/{stage}-{id}`, fsynced.
fn effect(dir: &Path, stage: &str, id: u32) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{stage}-{id}"))).expect("effect file");
    f.write_all(b"x\n").expect("effect");
    f.sync_all().expect("effect sync");
}

fn count(dir: &Path, stage: &str, id: u32) -> usize {
    std::fs::read_to_string(dir.join(format!("{stage}-{id}"))).map(|s| s.lines().count()).unwrap_or(0)
}

/// `[extract, transform attempts, load]` of message `id`.
fn effects(dir: &Path, id: u32) -> [usize; 3] {
    [count(dir, "extract", id), count(dir, "transform", id), count(dir, "load", id)]
}

#[stage]
async fn extract(req: Request) -> Result<Raw, etl::stage::Error> {
    effect(&req.dir, "extract", req.id);
    Ok(Raw { text: format!("doc {}", req.id), req })
}

/// Fails (retryably, no retry of its own: the broker's redelivery is the retry) until it has
/// been attempted `fail_transform` times, unless `dir/healed` exists. A child process SIGKILLs
/// itself here when `dir/kill-in-transform` exists (and removes it first: once).
#[stage(retries = 0)]
async fn transform(raw: Raw) -> Result<Clean, etl::stage::Error> {
    let dir = &raw.req.dir;
    effect(dir, "transform", raw.req.id);
    let kill = dir.join("kill-in-transform");
    if crash::child_args().is_some() && kill.exists() {
        std::fs::remove_file(&kill).expect("remove the kill marker");
        eprintln!("child: SIGKILL in transform of {}", raw.req.id);
        // SAFETY: kill(2) on our own pid; no memory is touched.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    tokio::time::sleep(Duration::from_millis(raw.req.slow_ms)).await;
    let attempts = count(dir, "transform", raw.req.id) as u32;
    if attempts <= raw.req.fail_transform && !dir.join("healed").exists() {
        return Err(etl::stage::Error::retryable(format!("transform service unavailable (attempt {attempts})")));
    }
    Ok(Clean { text: raw.text.to_uppercase(), req: raw.req })
}

#[stage]
async fn load(clean: Clean) -> Result<Loaded, etl::stage::Error> {
    effect(&clean.req.dir, "load", clean.req.id);
    Ok(Loaded { id: clean.req.id, text: clean.text })
}

/// A stream capturing `<prefix>.<stream>` and a consumer on it; returns (stream, subject, durable).
async fn setup(js: &async_nats::jetstream::Context, prefix: &str, ack_wait: Duration, max_deliver: i64) -> (String, String, String) {
    let stream = unique(&prefix.to_uppercase());
    let subject = format!("{prefix}.{stream}");
    let s = create_stream(js, &stream, &subject).await;
    let durable = unique("etl");
    create_consumer(&s, &durable, ack_wait, max_deliver).await;
    (stream, subject, durable)
}

fn request(dir: &Path, id: u32, fail_transform: u32) -> String {
    serde_json::to_string(&Request { id, dir: dir.to_owned(), fail_transform, slow_ms: 0 }).unwrap()
}

fn drained() -> CancellationToken {
    let token = CancellationToken::new();
    token.cancel();
    token
}

/// Three messages: one that goes through, one whose `transform` fails on its first delivery,
/// one that fails on every delivery (max_deliver = 3). One draining run takes them all through
/// their deliveries; then the poison message is replayed from the dead letters to its subject
/// and, the transform healed, goes through.
#[tokio::test]
async fn a_redelivered_message_resumes_its_job_and_the_last_failed_attempt_is_dead_lettered() {
    let js = js().await;
    let (stream, subject, durable) = setup(&js, "jobs", Duration::from_secs(30), 3).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    publish(&js, &subject, request(d, 1, 0)).await;
    publish(&js, &subject, request(d, 2, 1)).await;
    let poison = request(d, 3, 99);
    let poison_seq = publish(&js, &subject, poison.clone()).await;
    let bucket = unique("JOBS_CKPT");
    let checkpoints = NatsKvStore::connect(&nats_url(), &bucket).await.expect("the checkpoint bucket");
    let dlq = unique("JOBS_DLQ");
    let out = etl::sink::collect::<Loaded>();
    let job = pipeline! { extract | transform | load }.checkpoints(checkpoints.clone());
    let source = etl::source::nats::<Request>(&stream, &durable)
        .url(nats_url())
        .nak_delay(Duration::from_millis(50))
        .drain_after(drained())
        .batch_size(1)
        .batch_timeout(Duration::from_millis(20));
    let report = Pipeline::from(source)
        .then(job.step())
        .to(out.sink())
        .dead_letters(NatsDeadLetters::new(nats_url(), &dlq))
        .handle_signals(false)
        .run()
        .await
        .expect("the run");
    let mut got: Vec<u32> = out.records().iter().map(|l| l.id).collect();
    got.sort_unstable();
    assert_eq!(got, [1, 2], "{report}");
    assert_eq!(effects(d, 1), [1, 1, 1], "message 1: every stage once");
    assert_eq!(effects(d, 2), [1, 2, 1], "message 2: delivered twice, extract not repeated");
    assert_eq!(effects(d, 3), [1, 3, 0], "message 3: three deliveries, extract once, never loaded");
    // The broker's view: nothing pending or unacknowledged; the poison message terminated.
    let info = consumer_info(&js, &stream, &durable).await;
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "{info:?}");
    let entries = NatsDeadLetters::new(nats_url(), &dlq).list().await.expect("list");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(&e.payload[..], poison.as_bytes(), "the message's own bytes");
    assert_eq!((e.kind, e.attempts, e.position.clone()), (FailureKind::MaxDeliveries, 3, Position::Sequence(poison_seq)));
    assert_eq!(e.source, format!("nats {stream}/{durable}"));
    assert_eq!(js.get_stream(&dlq).await.unwrap().get_info().await.unwrap().state.messages, 1, "the dead-letter stream's own view");
    // Checkpoints (the bucket's own keys): the finished messages' are cleared once acknowledged;
    // the poison message's (after extract) stays, for inspection.
    let poison_run = format!("nats {stream}/{durable}#{poison_seq}");
    let kv = js.get_key_value(&bucket).await.expect("the bucket");
    let keys = || async {
        let mut keys: Vec<String> = kv.keys().await.expect("keys").map(|k| k.expect("a key")).collect().await;
        keys.sort();
        keys
    };
    common::wait_until_async(common::PATIENCE, "the finished jobs' checkpoints to be cleared", || async {
        keys().await == [checkpoints.key_of(&poison_run)]
    })
    .await;
    let stuck = checkpoints.get(&poison_run).await.expect("readable");
    assert!(stuck.is_some_and(|v| v.value.starts_with(b"{\"etl_job_checkpoint\":1,\"stage\":\"extract\"")), "{:?}", keys().await);

    // Replay the dead letter to its subject; the healed transform takes it through.
    std::fs::write(d.join("healed"), b"").unwrap();
    let queue = NatsDeadLetters::new(nats_url(), &dlq);
    assert_eq!(queue.replay(&|_| true, &mut NatsRepublish::new(nats_url())).await.unwrap(), 1);
    assert!(queue.list().await.unwrap().is_empty(), "replayed entries are removed");
    let origin = read_stream(&js, &stream).await;
    assert_eq!((origin.len(), &origin[3][..]), (4, poison.as_bytes()), "back on its subject, the same bytes");
    let source = etl::source::nats::<Request>(&stream, &durable).url(nats_url()).drain_after(drained()).batch_size(1);
    let job = pipeline! { extract | transform | load }.checkpoints(checkpoints.clone());
    let report = Pipeline::from(source).then(job.step()).to(out.sink()).handle_signals(false).run().await.expect("the replay run");
    assert_eq!(report.records_out, 1, "{report}");
    assert_eq!(effects(d, 3)[2], 1, "loaded once, after the replay");
    let info = consumer_info(&js, &stream, &durable).await;
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "{info:?}");
}

/// A job that takes 4 s while the consumer's `ack_wait` is 1.5 s: progress acknowledgements
/// keep the message, so it is delivered once and every stage runs once. Written with
/// `pipeline!`: `nats(..) as Request | map(job) | ..`.
#[tokio::test]
async fn a_job_longer_than_ack_wait_is_kept_by_progress_acks() {
    let js = js().await;
    let (stream, subject, durable) = setup(&js, "slowjob", Duration::from_millis(1500), 5).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let req = Request { id: 7, dir: d.to_owned(), fail_transform: 0, slow_ms: 4000 };
    publish(&js, &subject, serde_json::to_string(&req).unwrap()).await;
    let job = pipeline! { extract | transform | load }.checkpoints(FileStore::new(d.join("checkpoints")));
    let out = etl::sink::collect::<Loaded>();
    let sink = out.sink();
    let url = nats_url();
    let report = pipeline! {
        nats(stream = stream.as_str(), durable = durable.as_str(), url = url.as_str(), max_records = 1, batch_size = 1) as Request
        | map(job)
        | sink
    }
    .handle_signals(false)
    .run()
    .await
    .expect("the run");
    assert_eq!(report.records_out, 1, "{report}");
    assert_eq!(out.records(), [Loaded { id: 7, text: "DOC 7".into() }]);
    assert_eq!(effects(d, 7), [1, 1, 1], "every stage once");
    let info = consumer_info(&js, &stream, &durable).await;
    assert_eq!((info.num_pending, info.num_ack_pending, info.num_redelivered), (0, 0, 0), "never redelivered: {info:?}");
}

async fn crash_child(args: serde_json::Value) {
    let dir = PathBuf::from(args["dir"].as_str().expect("dir"));
    let job = pipeline! { extract | transform | load }.checkpoints(FileStore::new(dir.join("checkpoints")));
    let source = etl::source::nats::<Request>(args["stream"].as_str().unwrap(), args["durable"].as_str().unwrap())
        .url(nats_url())
        .max_records(args["messages"].as_u64().unwrap())
        .batch_size(1);
    let out = etl::sink::collect::<Loaded>();
    let report = Pipeline::from(source).then(job.step()).to(out.sink()).handle_signals(false).run().await.expect("the child's run");
    eprintln!("child finished: {report}");
    std::fs::write(dir.join("done"), b"").expect("done marker");
}

struct Done(PathBuf);

impl Watch for Done {
    fn progress(&self) -> usize {
        0 // the child kills itself
    }

    async fn finished(&mut self) -> bool {
        self.0.join("done").exists()
    }
}

/// A child SIGKILLs itself in `transform` of the first message (after extract's checkpoint);
/// the next child gets the message again once `ack_wait` passes and resumes: extract ran once.
#[tokio::test]
async fn a_process_killed_mid_job_resumes_the_message_from_its_checkpoint() {
    if let Some(args) = crash::child_args() {
        return crash_child(args).await;
    }
    let js = js().await;
    let (stream, subject, durable) = setup(&js, "crashjob", Duration::from_secs(2), 5).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for id in 1..=3 {
        publish(&js, &subject, request(d, id, 0)).await;
    }
    std::fs::write(d.join("kill-in-transform"), b"").unwrap();
    let child = Child {
        test: "a_process_killed_mid_job_resumes_the_message_from_its_checkpoint".into(),
        args: serde_json::json!({"dir": d, "stream": stream, "durable": durable, "messages": 3}),
        log_dir: d.to_owned(),
    };
    let mut watch = Done(d.to_owned());
    let crashes = crash::run(&child, 1, &mut watch).await;
    assert!(d.join("done").exists(), "{crashes:?}");
    assert_eq!(effects(d, 1), [1, 2, 1], "message 1: extract once (resumed), transform again after the kill, loaded once");
    assert_eq!(effects(d, 2), [1, 1, 1]);
    assert_eq!(effects(d, 3), [1, 1, 1]);
    let info = consumer_info(&js, &stream, &durable).await;
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "{info:?}");
    let redelivered = info.num_redelivered;
    assert_eq!(redelivered, 0, "nothing waits for redelivery: {info:?}");
}
