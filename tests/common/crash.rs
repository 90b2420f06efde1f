//! The crash harness (DESIGN.md §8): run a pipeline in a child process, SIGKILL it at random
//! points while it works, restart it, and let the caller count what reached the sink.
//!
//! The child is this very test binary, run again filtered to one test with the environment
//! variable [`CHILD`] holding its arguments (JSON): the test starts with
//!
//! ```ignore
//! if let Some(args) = crash::child_args() { return my_child(args).await; }
//! ```
//!
//! and the parent calls [`run`] with a [`Child`], the number of kills and a [`Watch`] that says
//! how far the child got (files in the lake), notes the durable state after each kill, and says
//! when the job is done. Each kill waits until the child has made progress since it started
//! (so that it lands in the middle of the work rather than before it began), then a random
//! delay of up to [`MAX_KILL_DELAY`] (the randomisation of the kill point, not a wait for
//! anything), then SIGKILL. A child may also choose its kill point itself (right after a
//! commit of its sink, say): it SIGKILLs itself, which counts as that run's kill. Each child
//! knows its run number ([`run_number`]; the kills are the first runs). After the kills the child is run to its end, again while the
//! watch says the job is not done. The seed is printed and is set with `ETL_CRASH_SEED`.
//!
//! [`read_lake`] and [`Tally`] are the counting side: the final files of a file sink's
//! directory (hidden temporaries apart), parsed strictly (a torn file is an error), and how
//! often each record id arrived.
#![allow(unused_imports)]

use super::{wait_until, PATIENCE};
use etl::dead_letter::MemoryDeadLetters;
use etl::pipeline::Run;
use etl::prelude::{Operator, Serialize, Sink, Source};
use etl::Json;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The environment variable that makes a re-run test binary the child, with its arguments.
pub const CHILD: &str = "ETL_CRASH_CHILD";

/// The environment variable with the child's run number (0 for the first).
pub const RUN: &str = "ETL_CRASH_RUN";

/// In the child: its run number (0 for the first run; the runs of the kills come first).
pub fn run_number() -> usize {
    std::env::var(RUN).ok().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Whether the child ended by a SIGKILL (its own, when the parent did not send one).
fn killed_itself(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

/// The longest random delay between the child's progress and the kill.
pub const MAX_KILL_DELAY: Duration = Duration::from_millis(40);

/// In the child: its arguments. `None` in the parent.
/// The child also logs to its log file (stderr): `ETL_CHILD_LOG` as a `tracing` filter,
/// `info` by default.
pub fn child_args() -> Option<serde_json::Value> {
    let text = std::env::var(CHILD).ok()?;
    let filter = std::env::var("ETL_CHILD_LOG").unwrap_or_else(|_| "info".to_owned());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{CHILD} is not JSON ({e}): {text}")))
}

/// In the child: `run` to its end with `max_in_flight` batches in flight, dead letters in
/// memory and no signal handling (the parent SIGKILLs it), then its report on stderr (the
/// child's log).
pub async fn run_child<S, O, K>(run: Run<S, O, K>, max_in_flight: usize)
where
    S: Source,
    O: Operator<S::Item>,
    O::Out: Serialize,
    K: Sink<O::Out>,
{
    let report =
        run.max_in_flight(max_in_flight).dead_letters(MemoryDeadLetters::new()).handle_signals(false).run().await.expect("the child's run");
    eprintln!("child finished: {report}");
}

/// Each kill's exposure (records in the lake that the broker will deliver again) is at most
/// the exposure after the kill before plus `window`: a killed child leaves at most its
/// in-flight window unacknowledged. Exposure an earlier kill left stays counted until a later
/// child writes those records again and acknowledges them (a NATS message or an SQS message
/// waits for its `ack_wait` or visibility timeout), so a kill can find it still there. `what`
/// says what the exposure is, for the message.
pub fn assert_exposures(ctx: &str, exposures: impl IntoIterator<Item = usize>, window: usize, what: &str) {
    let mut before = 0;
    for (kill, exposure) in exposures.into_iter().enumerate() {
        assert!(
            exposure <= before + window,
            "{ctx}: kill {}: {exposure} {what}, more than the {before} left before it and the in-flight window ({window})",
            kill + 1
        );
        before = exposure;
    }
}

/// The child to run: the test (its full name as libtest prints it) and its arguments; its
/// output goes to `log_dir/child-<n>.log`.
pub struct Child {
    pub test: String,
    pub args: serde_json::Value,
    pub log_dir: PathBuf,
}

impl Child {
    /// Start the child (its `n`th run): the process and its log file.
    pub fn spawn(&self, n: usize) -> (std::process::Child, PathBuf) {
        let log = self.log_dir.join(format!("child-{n}.log"));
        let out = std::fs::File::create(&log).expect("child log");
        let err = out.try_clone().expect("child log");
        let exe = std::env::current_exe().expect("the test binary");
        let child = Command::new(exe)
            .args([self.test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, self.args.to_string())
            .env(RUN, n.to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn the child");
        (child, log)
    }
}

/// Two children of one consumer group (or one queue, or one durable consumer), to show that
/// the survivor of a SIGKILL takes over the dead one's share and finishes the job.
///
/// ```ignore
/// let mut pair = Pair::spawn(&child);
/// wait_until_async(PATIENCE, "both to write", || async { rows().await > 200 }).await;
/// pair.kill_b();
/// pair.wait_for_a(Duration::from_secs(120), "A to commit the whole topic", || async { done().await }).await;
/// pair.stop_a();
/// ```
pub struct Pair {
    a: std::process::Child,
    b: std::process::Child,
    log_a: PathBuf,
    log_b: PathBuf,
}

impl Pair {
    /// Start runs 0 (A) and 1 (B) of `child`; they run until a signal stops them.
    pub fn spawn(child: &Child) -> Pair {
        let (a, log_a) = child.spawn(0);
        let (b, log_b) = child.spawn(1);
        Pair { a, b, log_a, log_b }
    }

    /// SIGKILL B while both run (asserted), and wait for it.
    pub fn kill_b(&mut self) {
        assert!(self.a.try_wait().unwrap().is_none(), "A stopped early; its log:\n{}", tail(&self.log_a));
        assert!(self.b.try_wait().unwrap().is_none(), "B stopped early; its log:\n{}", tail(&self.log_b));
        self.b.kill().expect("SIGKILL B");
        let status = self.b.wait().expect("B exits");
        assert!(!status.success(), "B was killed: {status}");
    }

    /// Wait until `done` holds, with A alive all along, for at most `limit`.
    pub async fn wait_for_a<F, Fut>(&mut self, limit: Duration, what: &str, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = std::time::Instant::now() + limit;
        while !done().await {
            assert!(self.a.try_wait().unwrap().is_none(), "A stopped early; its log:\n{}", tail(&self.log_a));
            assert!(std::time::Instant::now() < deadline, "A did not {what} within {limit:?}; its log:\n{}", tail(&self.log_a));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM A: it flushes, commits and exits 0 (asserted, with both logs on failure).
    /// Returns A's log lines about partitions and commits, for later failure messages.
    pub fn stop_a(mut self) -> String {
        // SAFETY: kill(2) on our own child's pid with a valid signal number.
        assert_eq!(unsafe { libc::kill(self.a.id() as libc::pid_t, libc::SIGTERM) }, 0);
        let status = self.a.wait().expect("A exits");
        assert!(
            status.success(),
            "SIGTERM ends A with exit code 0: {status}; its log:\n{}\nB's log:\n{}",
            tail(&self.log_a),
            tail(&self.log_b)
        );
        let text = std::fs::read_to_string(&self.log_a).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| ["commit", "assigned", "revoked", "rebalance", "WARN", "ERROR"].iter().any(|w| l.contains(w)))
            .collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }
}

/// The end of a log, for failure messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// What the parent watches while the child runs.
pub trait Watch {
    /// A count that grows as the child works (final files in the lake).
    fn progress(&self) -> usize;

    /// The child was just killed (it is dead): note the durable state, e.g. to bound the
    /// duplicates the restart will make.
    fn killed(&mut self, _kill: usize) -> impl Future<Output = ()> {
        async {}
    }

    /// After a clean exit of the child: is the job done? When not, the child is run again
    /// (messages a killed child held come back only after their visibility timeout).
    fn finished(&mut self) -> impl Future<Output = bool> {
        async { true }
    }
}

/// What happened.
#[derive(Debug)]
pub struct Crashes {
    pub seed: u64,
    /// (progress when the child started, progress when it was killed), per kill.
    pub kills: Vec<(usize, usize)>,
    /// Clean runs after the kills, until the job was done.
    pub final_runs: usize,
}

/// A small deterministic generator (xorshift64*), enough to place kills.
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from `ETL_CRASH_SEED` when set, else from the clock; printed so a failure can be
    /// replayed.
    pub fn from_env(what: &str) -> Rng {
        let seed = seed();
        eprintln!("{what}: ETL_CRASH_SEED={seed}");
        Rng(seed)
    }

    /// A random delay of up to [`MAX_KILL_DELAY`]: where between two steps of the work the kill
    /// lands.
    pub fn kill_delay(&mut self) -> Duration {
        Duration::from_millis(self.next() % (MAX_KILL_DELAY.as_millis() as u64 + 1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn seed() -> u64 {
    match std::env::var("ETL_CRASH_SEED") {
        Ok(s) => s.parse().unwrap_or_else(|_| panic!("ETL_CRASH_SEED={s} is not a number")),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1,
    }
}

/// Wait for the child to exit, failing (and killing it) after [`PATIENCE`].
async fn wait_exit(child: &mut std::process::Child, what: &str, log: &Path) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!("{what}: the child did not exit within {PATIENCE:?}; its log:\n{}", tail(log));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Run `child`, SIGKILL it `kills` times mid-work, then run it to the end until
/// [`Watch::finished`]. Panics when the child finishes before a kill (make its input larger),
/// or fails when not killed.
pub async fn run(child: &Child, kills: usize, watch: &mut impl Watch) -> Crashes {
    let seed = seed();
    eprintln!("crash harness: {} kills of `{}`, ETL_CRASH_SEED={seed}", kills, child.test);
    let mut rng = Rng(seed);
    let mut report = Crashes { seed, kills: Vec::new(), final_runs: 0 };
    for kill in 0..kills {
        let what = format!("kill {} of {kills} (ETL_CRASH_SEED={seed})", kill + 1);
        let before = watch.progress();
        // Between 1 and 4 steps of progress, then the random delay.
        let steps = 1 + (rng.next() % 4) as usize;
        let (mut process, log) = child.spawn(kill);
        let mut exited = None;
        wait_until(PATIENCE, &format!("{what}: the child to make {steps} steps of progress"), || {
            exited = exited.or_else(|| process.try_wait().expect("try_wait"));
            exited.is_some() || watch.progress() >= before + steps
        })
        .await;
        if exited.is_none() {
            // The kill point: a random moment after the first progress (not a wait for anything).
            tokio::time::sleep(rng.kill_delay()).await;
            exited = process.try_wait().expect("try_wait");
        }
        match exited {
            Some(status) if killed_itself(&status) => eprintln!("{what}: the child killed itself"),
            Some(status) => {
                panic!("{what}: the child exited ({status}) before it could be killed; give it more input. Its log:\n{}", tail(&log))
            }
            None => {
                process.kill().expect("SIGKILL the child");
                let status = wait_exit(&mut process, &what, &log).await;
                assert!(!status.success(), "{what}: killed, not finished: {status}");
            }
        }
        report.kills.push((before, watch.progress()));
        watch.killed(kill).await;
    }
    for run in 0.. {
        let what = format!("final run {} (ETL_CRASH_SEED={seed})", run + 1);
        assert!(run < 30, "{what}: the job is still not done after 30 clean runs");
        let (mut process, log) = child.spawn(kills + run);
        let status = wait_exit(&mut process, &what, &log).await;
        assert!(status.success(), "{what}: the child failed ({status}); its log:\n{}", tail(&log));
        report.final_runs += 1;
        if watch.finished().await {
            break;
        }
    }
    report
}

/// The files of a file sink's directory.
#[derive(Debug, Default)]
pub struct LakeDir {
    /// Final files (name, records), by name.
    pub files: Vec<(String, Vec<Json>)>,
    /// Hidden files (temporaries, in-progress files).
    pub hidden: Vec<String>,
}

impl LakeDir {
    pub fn records(&self) -> impl Iterator<Item = &Json> {
        self.files.iter().flat_map(|(_, records)| records)
    }
}

/// Read a lake directory; a final file that is not complete JSON lines (torn, partial, a line
/// without its newline) is a failure naming it.
pub fn read_lake(dir: &Path) -> LakeDir {
    let mut lake = LakeDir::default();
    let Ok(entries) = std::fs::read_dir(dir) else { return lake };
    for entry in entries {
        let entry = entry.expect("lake entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            lake.hidden.push(name);
            continue;
        }
        if entry.path().is_dir() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).expect("read a lake file");
        let records = parse_jsonl(&bytes).unwrap_or_else(|e| panic!("lake file {name} is not whole JSON lines: {e}"));
        lake.files.push((name, records));
    }
    lake.files.sort_by(|a, b| a.0.cmp(&b.0));
    lake.hidden.sort();
    lake
}

/// How many final files a lake directory holds (cheap: names only), for [`Watch::progress`].
pub fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).filter(|e| !e.file_name().to_string_lossy().starts_with('.')).count())
        .unwrap_or(0)
}

/// Strict JSON lines: non-empty, every line a JSON object, the last one ended by a newline.
pub fn parse_jsonl(bytes: &[u8]) -> Result<Vec<Json>, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    if bytes.last() != Some(&b'\n') {
        return Err(format!("the last line has no newline ({} bytes)", bytes.len()));
    }
    bytes[..bytes.len() - 1]
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, line)| serde_json::from_slice::<Json>(line).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// How often each record id arrived.
#[derive(Debug, Default)]
pub struct Tally(pub BTreeMap<u64, usize>);

impl Tally {
    pub fn of(ids: impl IntoIterator<Item = u64>) -> Tally {
        let mut tally = Tally::default();
        for id in ids {
            *tally.0.entry(id).or_default() += 1;
        }
        tally
    }

    /// Ids of `expected` that never arrived.
    pub fn missing(&self, expected: impl IntoIterator<Item = u64>) -> Vec<u64> {
        expected.into_iter().filter(|id| !self.0.contains_key(id)).collect()
    }

    /// Arrivals beyond the first.
    pub fn duplicates(&self) -> usize {
        self.0.values().map(|c| c - 1).sum()
    }
}
