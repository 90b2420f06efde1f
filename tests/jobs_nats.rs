//! Jobs (`pipeline! { extract | transform | load }`) with checkpoints in NATS JetStream
//! key-value ([`NatsKvStore`]), against a real nats-server (`NATS_URL`; `scripts/test.sh`
//! starts one; a missing server is a failure saying how to start it). Each test has a bucket of
//! its own. As in tests/jobs.rs, each stage's side effect is a line appended (and fsynced) to a
//! file of the test's own directory, so every check counts what really happened.
//!
//! * the store keeps the checkpoint-store contract (compare-and-set, deletes, binary values,
//!   claims), its keys are encoded, its leases are renewed while held and taken over once
//!   expired;
//! * a child process SIGKILLs itself after each stage's checkpoint (and once in the middle of
//!   the last stage); each re-run waits out the dead child's lease (`Busy` until then), resumes,
//!   and earlier stages' side effects are not repeated;
//! * a server that is down at the start (or goes down) is an error, and no stage runs;
//! * two runs with one id (one process, or two connections): one wins, the other gets `Busy`
//!   before any stage runs;
//! * a checkpoint naming a stage the job no longer has is an error naming it;
//! * 5 MB of state in chunks under the server's payload limit, and the run resumes from them.

mod common;

use common::crash::{self, Child, Watch};
use common::jobs::*;
use common::nats::{client_at, nats_url, unique, OwnServer};
use etl::checkpoint::{CheckpointError, CheckpointStore, NatsKvStore, Versioned};
use etl::job::JobError;
use etl::prelude::*;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---- The job (as in tests/jobs.rs) ----

fn effects(dir: &Path) -> [usize; 3] {
    [count(dir, "extract"), count(dir, "transform"), count(dir, "load")]
}

/// A store on a bucket of its own (the bucket's name, and the store).
async fn store(lease: Duration) -> (String, NatsKvStore) {
    let bucket = unique("ckpt");
    let store = NatsKvStore::connect(&nats_url(), &bucket).await.unwrap_or_else(|e| panic!("{e}: {}", common::nats::HOW));
    (bucket, store.with_lease(lease))
}

/// The bucket as the server has it (a plain async-nats handle, for the server's own view).
async fn raw_bucket(bucket: &str) -> async_nats::jetstream::kv::Store {
    let js = async_nats::jetstream::new(client_at(&nats_url()).await);
    js.get_key_value(bucket).await.expect("the bucket exists")
}

/// The keys of the bucket whose last operation is a put, sorted.
async fn live_keys(kv: &async_nats::jetstream::kv::Store) -> Vec<String> {
    let mut keys: Vec<String> = kv.keys().await.expect("keys").map(|k| k.expect("key")).collect().await;
    keys.sort();
    keys
}

// ---- The store ----

#[tokio::test]
async fn the_store_keeps_the_contract() {
    let (bucket, store) = store(NatsKvStore::DEFAULT_LEASE).await;
    assert_eq!(store.describe(), format!("nats kv {bucket}"));
    assert!(store.get("a").await.unwrap().is_none());
    let r1 = store.put("a", b"one".to_vec(), None).await.unwrap();
    assert!(matches!(store.put("a", b"x".to_vec(), None).await, Err(CheckpointError::Conflict { found: Some(f), .. }) if f == r1));
    let r2 = store.put("a", b"two".to_vec(), Some(r1)).await.unwrap();
    assert_ne!(r1, r2);
    let stale = store.put("a", b"x".to_vec(), Some(r1)).await.unwrap_err();
    assert!(matches!(stale, CheckpointError::Conflict { expected: Some(e), found: Some(f), .. } if e == r1 && f == r2), "{stale}");
    assert!(stale.to_string().contains("another run with the same id"), "{stale}");
    assert_eq!(store.get("a").await.unwrap(), Some(Versioned { value: b"two".to_vec(), revision: r2 }));
    assert!(matches!(store.delete("a", Some(r1)).await, Err(CheckpointError::Conflict { .. })));
    store.delete("a", Some(r2)).await.unwrap();
    assert!(store.get("a").await.unwrap().is_none());
    store.delete("a", None).await.unwrap();
    store.delete("a", Some(r2)).await.unwrap(); // absent: not an error
    store.delete("never-written", None).await.unwrap();
    // A revision from before a delete never matches again.
    assert!(matches!(store.put("a", b"x".to_vec(), Some(r2)).await, Err(CheckpointError::Conflict { found: None, .. })));
    let r3 = store.put("a", b"three".to_vec(), None).await.unwrap();
    assert!(r3 > r2);
    let claim = store.claim("a").await.unwrap();
    assert_eq!(claim.key(), "a");
    let busy = store.claim("a").await.unwrap_err();
    assert!(matches!(busy, CheckpointError::Busy { .. }), "{busy}");
    assert!(busy.to_string().contains("held by another run"), "{busy}");
    assert!(busy.to_string().contains("lease on it expires in"), "{busy}");
    let other = store.claim("b").await.unwrap();
    drop(claim);
    let _again = store.claim("a").await.unwrap();
    drop(other);
    let _b = store.claim("b").await.unwrap(); // waits for the release of `other`
                                              // Binary values survive.
    let bytes: Vec<u8> = (0..=255u8).chain([b'\n', 0, 0xff]).collect();
    store.put("bin", bytes.clone(), None).await.unwrap();
    assert_eq!(store.get("bin").await.unwrap().unwrap().value, bytes);
    // Keys NATS would refuse are encoded; a run id never names a claim.
    let odd = ".run 1/é..chunk.";
    let r = store.put(odd, b"odd".to_vec(), None).await.unwrap();
    assert_eq!(store.get(odd).await.unwrap().map(|v| v.revision), Some(r));
    store.put("c.a", b"not a claim".to_vec(), None).await.unwrap();
    let _c = store.claim("c.a").await.expect("a run id that looks like a claim key is a run id");
    store.put("", b"empty id".to_vec(), None).await.unwrap();
    assert_eq!(store.get("").await.unwrap().unwrap().value, b"empty id");
    // The server's view: values under `v.`, the held claim under `c.`.
    let kv = raw_bucket(&bucket).await;
    let keys = live_keys(&kv).await;
    assert_eq!(keys, ["c.a", "c.b", "c.c=2Ea", "v", "v.=2Erun=201=2F=C3=A9=2E=2Echunk=2E", "v.a", "v.bin", "v.c=2Ea"], "{keys:?}");
    let lease: serde_json::Value = serde_json::from_slice(&kv.get("c.a").await.unwrap().unwrap()).unwrap();
    assert!(lease["holder"].as_str().is_some_and(|h| !h.is_empty()) && lease["expires_at_ms"].as_u64().is_some(), "{lease}");
    // A value over the limit is refused before it is sent.
    let limit = store.max_value_bytes().unwrap();
    let e = store.put("huge", vec![0; limit + 1], None).await.unwrap_err();
    assert!(matches!(e, CheckpointError::TooLarge { len, limit: l, .. } if len == limit + 1 && l == limit), "{e}");
}

#[tokio::test]
async fn leases_are_renewed_while_held_and_taken_over_once_expired() {
    let lease = Duration::from_millis(900);
    let (bucket, store) = store(lease).await;
    // Another connection, as another host would have.
    let other = NatsKvStore::connect(&nats_url(), &bucket).await.unwrap().with_lease(lease);
    let claim = store.claim("renewed").await.unwrap();
    let kv = raw_bucket(&bucket).await;
    let first = kv.entry("c.renewed").await.unwrap().unwrap();
    // Three lease periods later the claim is still held: renewed on its revision.
    let held_until = std::time::Instant::now() + lease * 3;
    while std::time::Instant::now() < held_until {
        assert!(matches!(other.claim("renewed").await, Err(CheckpointError::Busy { .. })));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let later = kv.entry("c.renewed").await.unwrap().unwrap();
    assert!(later.revision > first.revision, "renewed");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&later.value).unwrap()["holder"],
        serde_json::from_slice::<serde_json::Value>(&first.value).unwrap()["holder"]
    );
    // Released on drop: the other connection claims it at once.
    drop(claim);
    common::wait_until_async(common::PATIENCE, "the claim to be released", || async {
        kv.get("c.renewed").await.map(|v| v.is_none()).unwrap_or(false)
    })
    .await;
    let taken = other.claim("renewed").await.unwrap();
    drop(taken);

    // A holder that died: its lease is not renewed; Busy until it expires, then taken over.
    let dead = serde_json::json!({ "holder": "dead-run", "expires_at_ms": now_ms() + 1500 });
    kv.put("c.orphan", serde_json::to_vec(&dead).unwrap().into()).await.unwrap();
    let e = store.claim("orphan").await.unwrap_err();
    assert!(matches!(e, CheckpointError::Busy { .. }), "{e}");
    assert!(e.to_string().contains("a run that was killed holds the id until then"), "{e}");
    common::wait_until_async(common::PATIENCE, "the dead run's lease to expire", || async { store.claim("orphan").await.is_ok() }).await;
    assert!(now_ms() >= dead["expires_at_ms"].as_u64().unwrap());
    // A claim entry etl did not write is corrupt, not free.
    kv.put("c.foreign", "hello".into()).await.unwrap();
    assert!(matches!(store.claim("foreign").await, Err(CheckpointError::Corrupt { .. })));
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

// ---- A crash after each stage ----

/// The crash children's lease: a killed child blocks the run id this long.
const CRASH_LEASE: Duration = Duration::from_secs(3);

async fn crash_child(args: serde_json::Value) {
    let run = crash::run_number();
    if let Some(point) = args["kills"].as_array().and_then(|k| k.get(run)).and_then(|p| p.as_str()) {
        KILL_AT.set(point.to_owned()).expect("set once");
    }
    let dir = PathBuf::from(args["dir"].as_str().expect("dir"));
    let bucket = args["bucket"].as_str().expect("bucket");
    let store = NatsKvStore::connect(&nats_url(), bucket).await.expect("the child's store").with_lease(CRASH_LEASE);
    let job = pipeline! { extract | transform | load }.checkpoints(store);
    // The previous child was SIGKILLed holding the run id: wait out its lease.
    let deadline = std::time::Instant::now() + CRASH_LEASE * 10;
    let done = loop {
        match job.run_with_report(Request::new(&dir), "batch-2025-03-18").await {
            Err(JobError::Checkpoint(e @ CheckpointError::Busy { .. })) if std::time::Instant::now() < deadline => {
                eprintln!("child: busy: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other.expect("the child's job"),
        }
    };
    eprintln!("child: {}", done.report);
    std::fs::write(dir.join("output.json"), serde_json::to_vec(&done.output).expect("json")).expect("output");
}

struct Effects {
    dir: PathBuf,
    after_kill: Vec<[usize; 3]>,
}

impl Watch for Effects {
    fn progress(&self) -> usize {
        0 // the child chooses its kill points itself
    }

    async fn killed(&mut self, _kill: usize) {
        self.after_kill.push(effects(&self.dir));
    }

    async fn finished(&mut self) -> bool {
        self.dir.join("output.json").exists()
    }
}

#[tokio::test]
async fn a_crash_after_each_stage_resumes_without_repeating_finished_stages() {
    if let Some(args) = crash::child_args() {
        return crash_child(args).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let bucket = unique("ckpt_crash");
    // Run 1 dies after extract's checkpoint, run 2 after transform's, run 3 in the middle of
    // load (its side effect done, its checkpoint not written); run 4 finishes.
    let kills = ["transform-start", "load-start", "load-end"];
    let child = Child {
        test: "a_crash_after_each_stage_resumes_without_repeating_finished_stages".into(),
        args: serde_json::json!({ "dir": dir.path(), "kills": kills, "bucket": bucket }),
        log_dir: dir.path().to_owned(),
    };
    let mut watch = Effects { dir: dir.path().to_owned(), after_kill: Vec::new() };
    let crashes = crash::run(&child, kills.len(), &mut watch).await;
    assert_eq!(crashes.final_runs, 1);
    // [extract, transform, load] side effects after each kill, then at the end.
    assert_eq!(watch.after_kill, [[1, 0, 0], [1, 1, 0], [1, 1, 1]]);
    assert_eq!(effects(dir.path()), [1, 1, 2], "only the stage killed in its middle ran again");
    let output: Loaded = serde_json::from_slice(&std::fs::read(dir.path().join("output.json")).unwrap()).unwrap();
    assert_eq!(output.loaded, 3);
    let logs: Vec<String> = (0..4).map(|n| std::fs::read_to_string(dir.path().join(format!("child-{n}.log"))).unwrap()).collect();
    // A re-run that starts within the killed run's lease waits it out (on a loaded machine a
    // child may start after it: at least one re-run met it).
    let waited: Vec<usize> = (1..4).filter(|n| logs[*n].contains("child: busy:")).collect();
    assert!(!waited.is_empty(), "no re-run met the killed run's lease; logs:\n{}", logs.join("\n"));
    eprintln!("re-runs that waited out a killed run's lease: {waited:?}");
    assert!(logs[waited[0]].contains("lease on it expires in"), "{}", logs[waited[0]]);
    assert!(logs[3].contains("extract resumed, transform resumed, load ran"), "{}", logs[3]);
    let store = NatsKvStore::connect(&nats_url(), &bucket).await.unwrap();
    assert!(store.get("batch-2025-03-18").await.unwrap().is_none(), "the checkpoint is cleared on success");
    assert!(!live_keys(&raw_bucket(&bucket).await).await.iter().any(|k| k.starts_with("v.")), "no value left");
}

// ---- A store that is down ----

#[tokio::test]
async fn a_store_that_is_down_is_an_error_and_no_stage_runs() {
    let dir = tempfile::tempdir().unwrap();
    // Down at the start: nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = NatsKvStore::connect(&format!("nats://127.0.0.1:{port}"), &unique("ckpt_down")).await.unwrap_err();
    assert!(matches!(e, CheckpointError::Unavailable { .. }), "{e}");
    assert!(e.to_string().contains("is the server running?"), "{e}");
    assert!(e.to_string().contains("not \"no checkpoint\""), "{e}");
    assert!(matches!(NatsKvStore::connect("${ETL_TEST_UNSET_NATS_URL}", "b").await, Err(CheckpointError::Unavailable { .. })));

    // Down after the start: the run's claim fails, no stage runs.
    let mut server = OwnServer::start().await;
    let store = NatsKvStore::connect(&server.url(), "ckpt_goes_down").await.unwrap();
    let job = pipeline! { extract | transform | load }.checkpoints(store);
    server.kill();
    let e = job.run(Request::new(dir.path()), "down").await.unwrap_err();
    assert!(matches!(e, JobError::Checkpoint(CheckpointError::Unavailable { .. })), "{e}");
    assert_eq!(e.retry(), etl::Retry::Retryable);
    assert_eq!(effects(dir.path()), [0, 0, 0], "no stage ran");
}

// ---- Two runs with one id ----

#[tokio::test]
async fn two_concurrent_runs_with_one_id_one_wins_the_other_gets_busy() {
    let dir = tempfile::tempdir().unwrap();
    let (bucket, store) = store(Duration::from_secs(5)).await;
    let job = pipeline! { extract | transform | load }.checkpoints(store.clone());
    let go = dir.path().join("go");
    let first = tokio::spawn({
        let job = job.clone();
        let req = Request { hold_until: Some(go.clone()), ..Request::new(dir.path()) };
        async move { job.run_with_report(req, "shared").await }
    });
    common::wait_until(common::PATIENCE, "the first run to be in extract", || count(dir.path(), "extract") == 1).await;
    // The same store, and another connection (another host).
    let elsewhere = NatsKvStore::connect(&nats_url(), &bucket).await.unwrap();
    for job in [job.clone(), pipeline! { extract | transform | load }.checkpoints(elsewhere)] {
        let e = job.run(Request::new(dir.path()), "shared").await.unwrap_err();
        assert!(matches!(e, JobError::Checkpoint(CheckpointError::Busy { .. })), "{e}");
        assert!(e.to_string().contains("held by another run"), "{e}");
    }
    assert_eq!(count(dir.path(), "extract"), 1, "the losers ran no stage");
    std::fs::write(&go, b"").unwrap();
    let done = first.await.unwrap().unwrap();
    assert_eq!(done.report.ran(), ["extract", "transform", "load"]);
    assert_eq!(effects(dir.path()), [1, 1, 1]);
    // Once the winner is done, the id is free again.
    let again = job.run_with_report(Request::new(dir.path()), "shared").await.unwrap();
    assert_eq!(again.report.ran(), ["extract", "transform", "load"]);
}

// ---- A checkpoint that no longer fits the job ----

#[tokio::test]
async fn a_checkpoint_naming_a_stage_the_job_no_longer_has_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_bucket, store) = store(NatsKvStore::DEFAULT_LEASE).await;
    let old = pipeline! { extract | transform | load }.checkpoints(store.clone());
    assert!(old.run(poisoned(dir.path()), "renamed").await.is_err());
    let new = pipeline! { fetch | transform | load }.checkpoints(store.clone());
    let e = new.run(Request::new(dir.path()), "renamed").await.unwrap_err();
    assert!(matches!(&e, JobError::UnknownStage { stage, .. } if stage == "extract"), "{e}");
    assert!(e.to_string().contains("after stage `extract`, which this job does not have (its stages: fetch, transform, load)"), "{e}");
    assert_eq!(count(dir.path(), "fetch"), 0, "not fed to the first stage");
    assert_eq!(count(dir.path(), "transform"), 0);
    assert!(store.get("renamed").await.unwrap().is_some(), "the checkpoint is kept");
}

// ---- Large state ----

#[tokio::test]
async fn five_megabytes_of_state_through_the_kv_store_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (bucket, store) = store(NatsKvStore::DEFAULT_LEASE).await;
    let max_payload = client_at(&nats_url()).await.server_info().max_payload;
    let limit = store.max_value_bytes().expect("a limit");
    assert!(limit < max_payload && limit > max_payload / 2, "{limit} under the server's {max_payload}");
    let job = pipeline! { extract | transform | load }.checkpoints(store.clone());
    let big = Request { records: 5, pad: 1024 * 1024, ..Request::new(dir.path()) };
    // Fails in transform: the 5 MB of extract's output are checkpointed, in chunks.
    poisoned(dir.path());
    let e = job.run(big.clone(), "big").await.unwrap_err();
    assert!(matches!(e, JobError::Stage { stage: "transform", attempts: 1, .. }), "{e}");
    let kv = raw_bucket(&bucket).await;
    let keys: Vec<String> = live_keys(&kv).await.into_iter().filter(|k| k.starts_with("v.")).collect();
    assert!(keys.len() >= 6, "a head and at least 5 chunks: {keys:?}");
    let mut total = 0;
    let mut largest = 0;
    for key in &keys {
        let len = kv.get(key).await.unwrap().unwrap().len();
        total += len;
        largest = largest.max(len);
    }
    assert!(largest <= limit && largest < max_payload, "largest value {largest}, limit {limit}, server {max_payload}");
    assert!(total > 5 * 1024 * 1024, "{total}");
    std::fs::remove_file(dir.path().join("poison")).unwrap();
    let done = job.run_with_report(big, "big").await.unwrap();
    assert_eq!(done.report.resumed(), ["extract"]);
    assert_eq!(done.output.loaded, 5);
    assert!(done.output.bytes > 5 * 1024 * 1024);
    assert_eq!(count(dir.path(), "extract"), 1);
    assert!(store.get("big").await.unwrap().is_none());
    assert!(!live_keys(&kv).await.iter().any(|k| k.starts_with("v.")), "head and chunks deleted");
}
