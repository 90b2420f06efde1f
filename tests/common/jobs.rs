//! The extract → transform → load job of the job tests (`tests/jobs.rs`, `tests/jobs_nats.rs`):
//! each stage's side effect is a line appended (and fsynced) to a file of the test's own
//! directory, so a test counts what really ran; a crash child SIGKILLs itself at `KILL_AT`.

use etl::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub dir: PathBuf,
    pub records: usize,
    /// Bytes of padding per record (large state).
    pub pad: usize,
    /// Retryable failures of `transform` before it succeeds.
    pub transform_failures: u32,
    /// `extract` waits until this file exists (concurrent runs).
    pub hold_until: Option<PathBuf>,
}

impl Request {
    pub fn new(dir: &Path) -> Request {
        Request { dir: dir.to_owned(), records: 3, pad: 0, transform_failures: 0, hold_until: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Raw {
    pub dir: PathBuf,
    pub records: Vec<String>,
    pub transform_failures: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clean {
    pub dir: PathBuf,
    pub transformed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loaded {
    pub loaded: usize,
    pub bytes: usize,
}

/// In a crash child: where it SIGKILLs itself (`transform-start`, `load-start`, `load-end`).
pub static KILL_AT: OnceLock<String> = OnceLock::new();

pub fn maybe_kill(point: &str) {
    if KILL_AT.get().map(String::as_str) == Some(point) {
        eprintln!("child: SIGKILL at {point}");
        // SAFETY: kill(2) on our own pid; no memory is touched.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

/// A side effect: one line appended to `dir/name`, fsynced.
pub fn effect(dir: &Path, name: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(name)).expect("effect file");
    f.write_all(b"x\n").expect("effect");
    f.sync_all().expect("effect sync");
}

pub fn count(dir: &Path, name: &str) -> usize {
    std::fs::read_to_string(dir.join(name)).map(|s| s.lines().count()).unwrap_or(0)
}

#[stage(retries = 3, backoff = 1ms)]
pub async fn extract(req: Request) -> Result<Raw, etl::stage::Error> {
    effect(&req.dir, "extract");
    if let Some(hold) = &req.hold_until {
        while !hold.exists() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let records = (0..req.records).map(|n| format!("r{n}-{}", "p".repeat(req.pad))).collect();
    Ok(Raw { dir: req.dir, records, transform_failures: req.transform_failures })
}

#[stage(retries = 3, backoff = 1ms, max_backoff = 5ms)]
pub async fn transform(raw: Raw) -> Result<Clean, etl::stage::Error> {
    maybe_kill("transform-start");
    effect(&raw.dir, "transform-attempts");
    if raw.dir.join("poison").exists() {
        return Err(etl::stage::Error::permanent("record r0 is not valid"));
    }
    if count(&raw.dir, "transform-attempts") as u32 <= raw.transform_failures {
        return Err(etl::stage::Error::retryable("503 from the transform service"));
    }
    effect(&raw.dir, "transform");
    Ok(Clean { dir: raw.dir, transformed: raw.records.iter().map(|r| r.to_uppercase()).collect() })
}

#[stage(retries = 1, backoff = 1ms)]
pub async fn load(clean: Clean) -> Result<Loaded, etl::stage::Error> {
    maybe_kill("load-start");
    effect(&clean.dir, "load");
    maybe_kill("load-end");
    Ok(Loaded { loaded: clean.transformed.len(), bytes: clean.transformed.iter().map(String::len).sum() })
}

/// A request whose `transform` fails permanently while `dir/poison` exists (created here).
pub fn poisoned(dir: &Path) -> Request {
    std::fs::write(dir.join("poison"), b"").unwrap();
    Request::new(dir)
}

pub fn effects(dir: &Path) -> [usize; 3] {
    [count(dir, "extract"), count(dir, "transform"), count(dir, "load")]
}

#[stage]
pub async fn fetch(req: Request) -> Result<Raw, etl::stage::Error> {
    effect(&req.dir, "fetch");
    Ok(Raw { dir: req.dir, records: vec![], transform_failures: 0 })
}
