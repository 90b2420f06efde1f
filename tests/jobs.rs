//! Jobs (`pipeline! { extract | transform | load }`) with checkpoints, end to end: each stage's
//! side effect is a line appended (and fsynced) to a file of the test's own directory, so every
//! check counts what really happened, not what the job reports.
//!
//! * a child process SIGKILLs itself after each stage's checkpoint (and once in the middle of
//!   the last stage); each re-run resumes, and earlier stages' side effects are not repeated;
//! * a checkpoint store that cannot be read (a torn file, a directory that is a file) is an
//!   error, and no stage runs;
//! * two runs with one id: the second gets the claim's error before any stage runs (in one
//!   process, and against a child process, whose claim its SIGKILL releases); a stale writer
//!   loses the compare-and-set;
//! * a checkpoint naming a stage the job no longer has, or state that no longer fits the
//!   stage's type, is an error naming the stage;
//! * 5 MB of state through the file store, and through a store with a 1 MiB value limit
//!   (chunks);
//! * retries per stage (attempts counted in the report and in the files), a per-attempt
//!   timeout, a permanent error not retried and its checkpoint kept for the re-run.

mod common;

use common::crash::{self, Child, Watch};
use common::jobs::*;
use etl::checkpoint::{CheckpointError, CheckpointStore, FileStore, MemoryStore};
use etl::job::{Job, JobError, StageStatus};
use etl::prelude::*;
use etl::stage::StageOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---- A crash after each stage ----

async fn crash_child(args: serde_json::Value) {
    let run = crash::run_number();
    if let Some(point) = args["kills"].as_array().and_then(|k| k.get(run)).and_then(|p| p.as_str()) {
        KILL_AT.set(point.to_owned()).expect("set once");
    }
    let dir = PathBuf::from(args["dir"].as_str().expect("dir"));
    let job = pipeline! { extract | transform | load }.checkpoints(FileStore::new(dir.join("checkpoints")));
    let done = job.run_with_report(Request::new(&dir), "batch-2025-03-18").await.expect("the child's job");
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
    // Run 1 dies after extract's checkpoint, run 2 after transform's, run 3 in the middle of
    // load (its side effect done, its checkpoint not written); run 4 finishes.
    let kills = ["transform-start", "load-start", "load-end"];
    let child = Child {
        test: "a_crash_after_each_stage_resumes_without_repeating_finished_stages".into(),
        args: serde_json::json!({ "dir": dir.path(), "kills": kills }),
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
    let store = FileStore::new(dir.path().join("checkpoints"));
    assert!(store.get("batch-2025-03-18").await.unwrap().is_none(), "the checkpoint is cleared on success");
    assert!(!store.path_of("batch-2025-03-18").exists());
    let last_log = std::fs::read_to_string(dir.path().join("child-3.log")).unwrap();
    assert!(last_log.contains("extract resumed, transform resumed, load ran"), "{last_log}");
}

// ---- A store that cannot be read ----

#[tokio::test]
async fn a_store_that_cannot_be_read_is_an_error_and_no_stage_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("checkpoints"));
    let job = pipeline! { extract | transform | load }.checkpoints(store.clone());
    // A checkpoint after extract, then the file torn.
    let fails = poisoned(dir.path());
    assert!(matches!(job.run(fails, "torn").await, Err(JobError::Stage { stage: "transform", .. })));
    let path = store.path_of("torn");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    let before = effects(dir.path());
    let e = job.run(Request::new(dir.path()), "torn").await.unwrap_err();
    assert!(matches!(e, JobError::Checkpoint(CheckpointError::Corrupt { .. })), "{e}");
    assert!(e.to_string().contains("is corrupt"), "{e}");
    assert_eq!(effects(dir.path()), before, "no stage ran again");
    assert_eq!(std::fs::read(&path).unwrap().len(), bytes.len() - 5, "the checkpoint is left for inspection");

    // A store whose directory is a file.
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let job = pipeline! { extract | transform | load }.checkpoints(FileStore::new(&file));
    let e = job.run(Request::new(dir.path()), "down").await.unwrap_err();
    assert!(matches!(e, JobError::Checkpoint(CheckpointError::Unavailable { .. })), "{e}");
    assert_eq!(e.retry(), etl::Retry::Retryable);
    assert_eq!(effects(dir.path()), before, "no stage ran");
}

// ---- Two runs with one id ----

#[tokio::test]
async fn two_concurrent_runs_with_one_id_one_wins_the_other_gets_the_claim_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("checkpoints"));
    let job = pipeline! { extract | transform | load }.checkpoints(store.clone());
    let go = dir.path().join("go");
    let first = tokio::spawn({
        let job = job.clone();
        let req = Request { hold_until: Some(go.clone()), ..Request::new(dir.path()) };
        async move { job.run_with_report(req, "shared").await }
    });
    common::wait_until(common::PATIENCE, "the first run to be in extract", || count(dir.path(), "extract") == 1).await;
    let e = job.run(Request::new(dir.path()), "shared").await.unwrap_err();
    assert!(matches!(e, JobError::Checkpoint(CheckpointError::Busy { .. })), "{e}");
    assert!(e.to_string().contains("held by another run"), "{e}");
    assert_eq!(count(dir.path(), "extract"), 1, "the loser ran no stage");
    std::fs::write(&go, b"").unwrap();
    let done = first.await.unwrap().unwrap();
    assert_eq!(done.report.ran(), ["extract", "transform", "load"]);
    assert_eq!(effects(dir.path()), [1, 1, 1]);
}

async fn holding_child(args: serde_json::Value) {
    let dir = PathBuf::from(args["dir"].as_str().expect("dir"));
    let job = pipeline! { extract | transform | load }.checkpoints(FileStore::new(dir.join("checkpoints")));
    let req = Request { hold_until: Some(dir.join("never")), ..Request::new(&dir) };
    let _ = job.run(req, "across-processes").await;
}

#[tokio::test]
async fn a_run_in_another_process_holds_the_id_until_it_dies() {
    if let Some(args) = crash::child_args() {
        return holding_child(args).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let child = Child {
        test: "a_run_in_another_process_holds_the_id_until_it_dies".into(),
        args: serde_json::json!({ "dir": dir.path() }),
        log_dir: dir.path().to_owned(),
    };
    let (mut process, _log) = child.spawn(0);
    common::wait_until(common::PATIENCE, "the child to be in extract", || count(dir.path(), "extract") == 1).await;
    let job = pipeline! { extract | transform | load }.checkpoints(FileStore::new(dir.path().join("checkpoints")));
    let e = job.run(Request::new(dir.path()), "across-processes").await.unwrap_err();
    assert!(matches!(e, JobError::Checkpoint(CheckpointError::Busy { .. })), "{e}");
    process.kill().unwrap();
    process.wait().unwrap();
    let done = job.run_with_report(Request::new(dir.path()), "across-processes").await.unwrap();
    assert_eq!(done.report.ran(), ["extract", "transform", "load"], "SIGKILL released the claim");
}

#[tokio::test]
async fn a_stale_writer_loses_the_compare_and_set() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let seen = store.put("run", b"after extract".to_vec(), None).await.unwrap();
    store.put("run", b"after transform (another run)".to_vec(), Some(seen)).await.unwrap();
    let e = store.put("run", b"after transform (stale)".to_vec(), Some(seen)).await.unwrap_err();
    assert!(matches!(e, CheckpointError::Conflict { .. }), "{e}");
    assert!(e.to_string().contains("another run with the same id"), "{e}");
    assert_eq!(store.get("run").await.unwrap().unwrap().value, b"after transform (another run)");
}

// ---- Checkpoints that no longer fit the job ----

#[tokio::test]
async fn a_checkpoint_naming_a_stage_the_job_no_longer_has_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let old = pipeline! { extract | transform | load }.checkpoints(store.clone());
    let fails = poisoned(dir.path());
    assert!(old.run(fails, "renamed").await.is_err());
    let new = pipeline! { fetch | transform | load }.checkpoints(store.clone());
    let e = new.run(Request::new(dir.path()), "renamed").await.unwrap_err();
    assert!(matches!(&e, JobError::UnknownStage { stage, .. } if stage == "extract"), "{e}");
    assert!(e.to_string().contains("after stage `extract`, which this job does not have (its stages: fetch, transform, load)"), "{e}");
    assert_eq!(count(dir.path(), "fetch"), 0, "not fed to the first stage");
    assert_eq!(count(dir.path(), "transform"), 0);
    assert_eq!(store.keys(), ["renamed"], "the checkpoint is kept");
}

#[tokio::test]
async fn state_that_no_longer_fits_the_stage_type_is_an_error_not_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let old = pipeline! { extract | transform | load }.checkpoints(store.clone());
    let fails = poisoned(dir.path());
    assert!(old.run(fails, "changed").await.is_err());
    // `extract` now outputs a number.
    let new = Job::new_with(|req: Request| async move { Ok::<_, String>(req.records as u64) }, StageOptions::new("extract"))
        .stage_with(|n: u64| async move { Ok::<_, String>(n + 1) }, StageOptions::new("transform"))
        .checkpoints(store.clone());
    let e = new.run(Request::new(dir.path()), "changed").await.unwrap_err();
    assert!(matches!(&e, JobError::State { stage, .. } if stage == "extract"), "{e}");
    assert!(e.to_string().contains("no longer fits that stage's output type"), "{e}");
    assert_eq!(count(dir.path(), "extract"), 1, "nothing ran again");
}

// ---- Large state ----

async fn five_megabytes(store: impl CheckpointStore + Clone + 'static, dir: &Path) {
    let job = pipeline! { extract | transform | load }.checkpoints(store.clone());
    let big = Request { records: 5, pad: 1024 * 1024, ..Request::new(dir) };
    // Fails in transform: the 5 MB of extract's output are checkpointed.
    poisoned(dir);
    let e = job.run(big.clone(), "big").await.unwrap_err();
    assert!(matches!(e, JobError::Stage { stage: "transform", attempts: 1, .. }), "{e}");
    std::fs::remove_file(dir.join("poison")).unwrap();
    let done = job.run_with_report(big, "big").await.unwrap();
    assert_eq!(done.report.resumed(), ["extract"]);
    assert_eq!(done.output.loaded, 5);
    assert!(done.output.bytes > 5 * 1024 * 1024);
    assert_eq!(count(dir, "extract"), 1);
    assert!(store.get("big").await.unwrap().is_none());
}

#[tokio::test]
async fn five_megabytes_of_state_through_the_file_store() {
    let dir = tempfile::tempdir().unwrap();
    five_megabytes(FileStore::new(dir.path().join("checkpoints")), dir.path()).await;
}

#[tokio::test]
async fn five_megabytes_of_state_through_a_store_with_a_one_mebibyte_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new().with_max_value_bytes(1024 * 1024);
    let job = pipeline! { extract | transform | load }.checkpoints(store.clone());
    let failing = Request { records: 5, pad: 1024 * 1024, ..poisoned(dir.path()) };
    assert!(job.run(failing, "chunked").await.is_err());
    assert!(store.keys().len() >= 6, "a head and at least 5 chunks: {:?}", store.keys());
    assert!(store.largest_value() <= 1024 * 1024);
    let other = tempfile::tempdir().unwrap();
    five_megabytes(MemoryStore::new().with_max_value_bytes(1024 * 1024), other.path()).await;
}

// ---- Retries ----

#[tokio::test]
async fn each_stage_retries_as_its_options_say() {
    let dir = tempfile::tempdir().unwrap();
    let job = pipeline! { extract | transform | load };
    let req = Request { transform_failures: 2, ..Request::new(dir.path()) };
    let done = job.run_with_report(req, "retried").await.unwrap();
    assert_eq!(done.report.retried(), [("transform", 3)]);
    assert_eq!(done.report.to_string(), "job retried: extract ran, transform ran (3 attempts), load ran");
    assert_eq!(count(dir.path(), "transform-attempts"), 3);
    assert_eq!(effects(dir.path()), [1, 1, 1]);

    // Retries run out: 1 + 3 attempts, the error says so.
    let dir = tempfile::tempdir().unwrap();
    let req = Request { transform_failures: 10, ..Request::new(dir.path()) };
    let e = job.run(req, "exhausted").await.unwrap_err();
    assert!(e.to_string().starts_with("stage `transform` failed after 4 attempts: 503 from the transform service"), "{e}");
    assert_eq!(count(dir.path(), "transform-attempts"), 4);
    assert_eq!(e.retry(), etl::Retry::Retryable);
    let report = e.report().unwrap();
    assert_eq!(report.stages.iter().map(|s| s.status).collect::<Vec<_>>(), [StageStatus::Ran, StageStatus::Failed, StageStatus::NotRun]);
}

#[stage(retries = 2, backoff = 1ms, timeout = 50ms)]
async fn slow_first(dir: PathBuf) -> Result<usize, etl::stage::Error> {
    effect(&dir, "slow");
    if count(&dir, "slow") == 1 {
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    Ok(count(&dir, "slow"))
}

#[tokio::test]
async fn an_attempt_past_its_timeout_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let done = Job::new(slow_first).run_with_report(dir.path().to_owned(), "slow").await.unwrap();
    assert_eq!(done.output, 2);
    assert_eq!(done.report.retried(), [("slow_first", 2)]);
}

#[tokio::test]
async fn a_permanent_error_is_not_retried_and_the_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let job = pipeline! { extract | transform | load }.checkpoints(store.clone());
    let e = job.run(poisoned(dir.path()), "permanent").await.unwrap_err();
    assert!(matches!(e, JobError::Stage { stage: "transform", attempts: 1, .. }), "{e}");
    assert_eq!(e.retry(), etl::Retry::Permanent);
    assert!(e.to_string().starts_with("stage `transform` failed: record r0 is not valid"), "{e}");
    assert_eq!(count(dir.path(), "transform-attempts"), 1, "not retried");
    assert_eq!(store.keys(), ["permanent"], "extract's checkpoint is kept");
    // The cause fixed, the same run id resumes after extract.
    std::fs::remove_file(dir.path().join("poison")).unwrap();
    let done = job.run_with_report(Request::new(dir.path()), "permanent").await.unwrap();
    assert_eq!(done.report.to_string(), "job permanent: extract resumed, transform ran, load ran");
    assert_eq!(effects(dir.path()), [1, 1, 1], "extract did not run again");
    assert!(store.keys().is_empty());
}

#[tokio::test]
async fn a_job_without_a_store_runs_every_stage_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let job = pipeline! { extract | transform | load };
    let out: Loaded = job.run(Request::new(dir.path()), "plain").await.unwrap();
    assert_eq!(out.loaded, 3);
    let again = job.run(Request::new(dir.path()), "plain").await.unwrap();
    assert_eq!(again, out);
    assert_eq!(effects(dir.path()), [2, 2, 2], "no checkpoint: every stage runs each time");
    // The job converts into etl::Error for `?` in `main`.
    let e: etl::Error = job.run(poisoned(dir.path()), "plain").await.unwrap_err().into();
    assert!(e.to_string().contains("record r0 is not valid"), "{e}");
}

/// A job step on a source that never delivers again (`iter`: no acknowledgement): a record
/// whose job fails retryably is dead-lettered with the error, never dropped; the others go on,
/// and nothing is checkpointed (a checkpoint could never be resumed).
#[tokio::test]
async fn a_job_step_on_a_source_without_acknowledgement_dead_letters_what_fails() {
    let (good, bad) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let failing = Request { transform_failures: 99, ..Request::new(bad.path()) };
    let store = MemoryStore::new();
    let job = pipeline! { extract | transform | load }.checkpoints(store.clone());
    let out = etl::sink::collect::<Loaded>();
    let dead = etl::dead_letter::MemoryDeadLetters::new();
    let sink = out.sink();
    let report = pipeline! { iter(vec![Request::new(good.path()), failing]) | map(job) | sink }
        .dead_letters(dead.clone())
        .handle_signals(false)
        .run()
        .await
        .expect("the run");
    assert_eq!(out.records().len(), 1, "{report}");
    let entries = etl::dead_letter::DeadLetters::list(&dead).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].error.contains("503 from the transform service"), "{}", entries[0].error);
    assert_eq!(entries[0].attempts, 4, "transform's own retries (3) were spent");
    assert!(store.keys().is_empty(), "no checkpoint for a source that cannot deliver again: {:?}", store.keys());
}
