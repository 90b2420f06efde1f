//! The `wikipedia` example's second pipeline fed `--from-file` (RecentChange events, JSONL →
//! decode → drop canaries → project onto the tutorial's columns → CSV files of 100 rows, each
//! written to a temporary name, fsynced and renamed), beside a hand-written loop doing the same
//! job with the same crates (serde_json, csv, std::fs), in the same run.
//!
//! `cargo bench --bench wikipedia` prints events/s, wall and CPU seconds (and their ratio: the
//! cores a side kept busy), peak RSS of each side and the ratio of speeds. Each side runs in a
//! child process of its own (this binary, re-invoked), so that CPU time and peak memory are the
//! kernel's figures for that side alone. After every round the two lakes are compared by
//! content: every CSV row of both, sorted and hashed, must be the same. Environment:
//! * `ETL_BENCH_EVENTS` — events to generate (default 200 000) with the deterministic generator
//!   of `harness/recentchange.rs`;
//! * `ETL_BENCH_ROUNDS` — rounds, best taken (default 5; the side going first alternates);
//! * `ETL_BENCH_DIR` — where input and output go (default: the system temp dir; `/dev/shm`
//!   measures the CPU path without the file system's noise).

#[path = "../examples/wikipedia.rs"]
#[allow(dead_code)]
mod wikipedia;

#[path = "harness/recentchange.rs"]
mod recentchange;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wikipedia::{Change, Row};

const ROWS_PER_FILE: usize = 100;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    if let Ok(side) = std::env::var("ETL_WIKI_SIDE") {
        return child(&side);
    }
    // `cargo test --benches` runs bench targets without `--bench`; only run on `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let events: u64 = env_or("ETL_BENCH_EVENTS", 200_000);
    let rounds: usize = env_or("ETL_BENCH_ROUNDS", 5);
    let base = std::env::var_os("ETL_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("etl-bench-wikipedia-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let input = dir.join("events.jsonl");
    let file = std::fs::File::create(&input).expect("create the input");
    let bytes = recentchange::write_events(file, events, 7).expect("write the input");
    println!(
        "wikipedia --from-file: {events} events ({:.0} MiB) in {}, {rounds} rounds, best of each",
        bytes as f64 / 1048576.0,
        dir.display()
    );

    let mut best: [Option<Figures>; 2] = [None, None];
    for round in 0..rounds {
        let mut lakes = [None, None];
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let name = SIDES[side];
            let out = dir.join(format!("{name}-{round}"));
            let mut figures = spawn_side(name, &input, &out);
            figures.lake = Some(lake_digest(&out));
            assert_eq!(figures.lake.map(|l| l.0), Some(figures.rows), "{name}: the rows in its lake are the rows it reported");
            std::fs::remove_dir_all(&out).ok();
            lakes[side] = figures.lake;
            if best[side].as_ref().is_none_or(|b| figures.wall < b.wall) {
                best[side] = Some(figures);
            }
        }
        assert_eq!(lakes[0], lakes[1], "round {round}: the two lakes hold different rows (count, hash of the sorted rows)");
    }
    std::fs::remove_dir_all(&dir).ok();
    let (Some(base), Some(etl)) = (&best[0], &best[1]) else { return };
    let (rows, hash) = base.lake.expect("digested");
    println!("both lakes: {rows} rows, the same content (hash {hash:016x} of the sorted rows)");
    println!("| | events/s | wall | CPU seconds | CPU/wall | peak RSS | rows | ratio |\n|---|---|---|---|---|---|---|---|");
    for (name, f) in [("hand-written loop", base), ("etl (the example's pipeline!)", etl)] {
        println!(
            "| {name} | {:.0} k | {:.2} s | {:.2} s | {:.2} | {:.1} MiB | {} | {:.2} |",
            events as f64 / f.wall.as_secs_f64() / 1000.0,
            f.wall.as_secs_f64(),
            f.cpu.as_secs_f64(),
            f.cpu.as_secs_f64() / f.wall.as_secs_f64(),
            f.max_rss_kib as f64 / 1024.0,
            f.rows,
            base.wall.as_secs_f64() / f.wall.as_secs_f64(),
        );
    }
    println!("CPU/wall above 1: that side kept more than one core busy (etl's file source decodes on a thread of its own).");
}

const SIDES: [&str; 2] = ["baseline", "etl"];

/// What one side's child process measured, and what its lake holds.
struct Figures {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: i64,
    rows: u64,
    /// (rows, hash of the sorted rows) of its lake.
    lake: Option<(u64, u64)>,
}

/// Every CSV row of every file of a lake (each file's header checked), sorted, and hashed:
/// (rows, hash). Two lakes with the same rows in any files, in any order, digest alike.
fn lake_digest(dir: &Path) -> (u64, u64) {
    use std::hash::{Hash, Hasher};
    let mut rows: Vec<Vec<String>> = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the lake") {
        let path = entry.expect("a lake entry").path();
        let mut reader = csv::Reader::from_path(&path).expect("a CSV file");
        let header: Vec<String> = reader.headers().expect("a header").iter().map(str::to_owned).collect();
        assert_eq!(header.join(","), wikipedia::COLUMNS, "{}", path.display());
        rows.extend(reader.records().map(|r| r.expect("a CSV row").iter().map(str::to_owned).collect()));
    }
    rows.sort_unstable();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    rows.hash(&mut hasher);
    (rows.len() as u64, hasher.finish())
}

// The child is reaped by `wait4` below (which also gives its rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn spawn_side(side: &str, input: &Path, out: &Path) -> Figures {
    let child = Command::new(std::env::current_exe().expect("own path"))
        .env("ETL_WIKI_SIDE", side)
        .env("ETL_WIKI_INPUT", input)
        .env("ETL_WIKI_OUT", out)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn a side");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("piped stdout");
    let mut report = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut report).expect("read the side's report");
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child with valid pointers.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert!(waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{side} failed: {report}");
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    let mut fields = report.split_whitespace();
    let wall = fields.next().and_then(|s| s.parse().ok()).map(Duration::from_secs_f64).expect("wall seconds");
    let rows = fields.next().and_then(|s| s.parse().ok()).expect("rows");
    // The child's own high-water mark: wait4's ru_maxrss also counts the parent's memory that
    // the child shared between fork and exec.
    let max_rss_kib = fields.next().and_then(|s| s.parse().ok()).expect("peak RSS");
    Figures { wall, cpu: tv(usage.ru_utime) + tv(usage.ru_stime), max_rss_kib, rows, lake: None }
}

/// This process's peak resident set since it was exec'ed (`VmHWM`), in KiB.
fn peak_rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmHWM in KiB")
}

/// In the child: run one side, print "wall-seconds rows peak-RSS-KiB".
fn child(side: &str) {
    let input = PathBuf::from(std::env::var_os("ETL_WIKI_INPUT").expect("ETL_WIKI_INPUT"));
    let out = PathBuf::from(std::env::var_os("ETL_WIKI_OUT").expect("ETL_WIKI_OUT"));
    let started = Instant::now();
    let rows = match side {
        "baseline" => baseline(&input, &out).expect("the hand-written loop"),
        _ => {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime");
            let config = wikipedia::Config { from_file: Some(input), lake: out, handle_signals: false, ..wikipedia::Config::default() };
            let summary = runtime.block_on(wikipedia::run(config)).expect("the pipeline");
            summary.process.records_out
        }
    };
    println!("{} {rows} {}", started.elapsed().as_secs_f64(), peak_rss_kib());
}

/// The hand-written loop: the same decode, filter, projection, CSV and durability (temporary
/// name, fsync, rename, directory fsync) per file of 100 events.
fn baseline(input: &Path, out: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(out)?;
    let dir = std::fs::File::open(out)?;
    let mut reader = std::io::BufReader::with_capacity(256 << 10, std::fs::File::open(input)?);
    let mut line = Vec::with_capacity(4096);
    let mut rows: Vec<Row> = Vec::with_capacity(ROWS_PER_FILE);
    let (mut read, mut written, mut seq) = (0usize, 0u64, 0u64);
    let mut csv_bytes = Vec::with_capacity(256 << 10);
    let mut flush = |rows: &mut Vec<Row>, seq: &mut u64| -> std::io::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        csv_bytes.clear();
        let mut w = csv::Writer::from_writer(&mut csv_bytes);
        for r in rows.iter() {
            w.serialize(r).map_err(std::io::Error::other)?;
        }
        w.flush()?;
        drop(w);
        let name = format!("recentchange-{seq:06}.csv");
        let tmp = out.join(format!(".{name}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&csv_bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, out.join(name))?;
        dir.sync_all()?;
        *seq += 1;
        rows.clear();
        Ok(())
    };
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        read += 1;
        match serde_json::from_slice::<Change>(&line) {
            Ok(change) if !change.is_canary() => {
                rows.push(Row::from(change));
                written += 1;
            }
            Ok(_) => {}
            Err(e) => eprintln!("line {read}: {e}"),
        }
        // Files of 100 events, canaries included, as the pipeline's batches.
        if read % ROWS_PER_FILE == 0 {
            flush(&mut rows, &mut seq)?;
        }
    }
    flush(&mut rows, &mut seq)?;
    Ok(written)
}
