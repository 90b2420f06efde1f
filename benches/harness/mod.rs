//! Throughput and memory: JSONL file → typed decode → select → CSV files of 100 rows, through
//! etl's builder API and through `pipeline!` (whose typed `select` generates the output record
//! type), beside a hand-written loop doing the same job with the same crates (serde_json, csv,
//! std::fs) in the same run.
//!
//! `cargo bench --bench throughput` (glibc malloc) and `cargo bench --bench throughput_mimalloc`
//! print a table each; both sides of a table run under the same allocator. Environment:
//! * `ETL_BENCH_RECORDS` — comma-separated record counts (default `1000000,10000000`);
//! * `ETL_BENCH_SYNC_RECORDS` — records for the fsync-per-file run (default `100000`, 0 skips);
//! * `ETL_BENCH_ROUNDS` — rounds per size, best taken (default 3);
//! * `ETL_BENCH_ROWS` — rows per CSV file, i.e. the batch size (default 100);
//! * `ETL_BENCH_ONLY` — `etl`, `macro` or `baseline`: run one side only (for profiling);
//! * `ETL_BENCH_DIR` — where input and output files go (default: the system temp dir; point it
//!   at a tmpfs such as `/dev/shm` to measure CPU cost without the file system's noise).
//!
//! Each run writes into a directory of its own, removed after all rounds of a size; the side
//! that goes first alternates between rounds. Deleting many files just before a run makes
//! ext4's inode allocation slower for that run (seen: 3× on the hand-written side).
//!
//! Peak memory is the peak of live heap bytes, measured by a counting global allocator reset
//! before each run, so that the two sides are measured alike in one process. Wall and CPU
//! seconds are printed side by side, with their ratio: above 1, a side kept more than one core
//! busy (etl's file source decodes on a thread of its own; the loop runs on one).
//!
//! After every round the outputs are compared by content: every CSV row of each side, sorted
//! and hashed, must be the same on all sides (not only as many).

use etl::prelude::*;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod measure;

pub use measure::Counting;
use measure::{peak, reset_peak};

/// The input record.
#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
    status: String,
    note: Option<String>,
    created_at: String,
}

/// The selected output record.
#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Selected {
    id: i64,
    customer: String,
    amount_cents: i64,
}

fn select(o: Order) -> Selected {
    Selected { id: o.id, customer: o.customer, amount_cents: o.amount_cents }
}

/// Rows per CSV file (one batch each); `ETL_BENCH_ROWS` overrides the default 100.
fn rows_per_file() -> usize {
    std::env::var("ETL_BENCH_ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(100)
}

fn write_input(path: &Path, n: u64) -> std::io::Result<u64> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let customers = ["Ada Lovelace", "O'Brien, Pat", "Zoë \"Z\" Ünïcödé", "東京 商事", "Smith & Sons"];
    for i in 0..n {
        let o = Order {
            id: 1_000_000_000 + i as i64,
            customer: customers[(i % 5) as usize].to_string(),
            amount_cents: (i as i64 * 7919) % 100_000,
            status: if i % 10 == 0 { "test".into() } else { "paid".into() },
            note: (i % 3 == 0).then(|| "gift, wrap\nplease".to_string()),
            created_at: format!("2026-11-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, i % 60),
        };
        serde_json::to_writer(&mut out, &o)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// The hand-written loop: same crates, same files, same durability choice.
#[inline(never)]
fn baseline(input: &Path, out_dir: &Path, sync: bool) -> std::io::Result<u64> {
    let rows_per_file = rows_per_file();
    let reader = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(input)?);
    let mut rows: Vec<Selected> = Vec::with_capacity(rows_per_file);
    let mut seq = 0u64;
    let mut n = 0u64;
    let mut buf = Vec::with_capacity(64 * 1024);
    // With fsync, the directory is fsynced after each rename, as etl's file sink does: a batch
    // is durable (under its final name) before the next one is read.
    let dir = std::fs::File::open(out_dir)?;
    let mut flush = |rows: &mut Vec<Selected>, seq: &mut u64| -> std::io::Result<()> {
        buf.clear();
        let mut w = csv::Writer::from_writer(&mut buf);
        for r in rows.iter() {
            w.serialize(r).map_err(std::io::Error::other)?;
        }
        w.flush()?;
        drop(w);
        let name = out_dir.join(format!("part-{seq:06}.csv"));
        let tmp = out_dir.join(format!(".part-{seq:06}.csv.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&buf)?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &name)?;
        if sync {
            dir.sync_all()?;
        }
        *seq += 1;
        rows.clear();
        Ok(())
    };
    for line in reader.split(b'\n') {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let order: Order = serde_json::from_slice(&line).map_err(std::io::Error::other)?;
        n += 1;
        rows.push(select(order));
        if rows.len() == rows_per_file {
            flush(&mut rows, &mut seq)?;
        }
    }
    if !rows.is_empty() {
        flush(&mut rows, &mut seq)?;
    }
    Ok(n)
}

#[inline(never)]
fn run_etl(rt: &tokio::runtime::Runtime, input: &Path, out_dir: &Path, sync: bool) -> etl::Result<u64> {
    rt.block_on(with_etl(input, out_dir, sync))
}

#[inline(never)]
fn run_macro(rt: &tokio::runtime::Runtime, input: &Path, out_dir: &Path, sync: bool) -> etl::Result<u64> {
    rt.block_on(with_macro(input, out_dir, sync))
}

/// The same job as [`with_etl`], written with `pipeline!`: `select` generates the output type.
async fn with_macro(input: &Path, out_dir: &Path, sync: bool) -> etl::Result<u64> {
    let input = input.display().to_string();
    let out_dir = out_dir.display().to_string();
    let report = pipeline! {
        file(path = input, batch_size = rows_per_file()) as Order
        | select(id, customer, amount_cents)
        | file(dir = out_dir, format = "csv", sync = sync)
    }
    .handle_signals(false)
    .dead_letters(etl::dead_letter::MemoryDeadLetters::new())
    .run()
    .await?;
    Ok(report.records_out)
}

async fn with_etl(input: &Path, out_dir: &Path, sync: bool) -> etl::Result<u64> {
    let report = Pipeline::from(etl::source::file::<Order>(input.display().to_string()).batch_size(rows_per_file()))
        .map(select)
        .to(etl::sink::file(out_dir.display().to_string()).format(Format::Csv).sync(sync))
        .handle_signals(false)
        .dead_letters(etl::dead_letter::MemoryDeadLetters::new())
        .run()
        .await?;
    Ok(report.records_out)
}

struct Row {
    name: String,
    records: u64,
    wall: Duration,
    cpu: Duration,
    peak_heap: usize,
}

/// User + system CPU time of the whole process (both threads of the runtime included).
fn cpu_time() -> Duration {
    Duration::from_secs_f64(measure::cpu_seconds())
}

fn measure(name: &str, run: impl FnOnce() -> u64) -> Row {
    let base = reset_peak();
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let records = run();
    let wall = t0.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    let peak_heap = peak().saturating_sub(base);
    Row { name: name.to_string(), records, wall, cpu, peak_heap }
}

fn fresh_dir(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("bench output dir");
    d
}

/// Every CSV row in `dir` (each file's header checked), sorted and hashed: (rows, hash). Two
/// outputs with the same rows, in any files and any order, digest alike.
fn digest(dir: &Path) -> (u64, u64) {
    use std::hash::{Hash, Hasher};
    let mut rows: Vec<Vec<u8>> = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read output dir") {
        let path = entry.expect("an output entry").path();
        assert!(path.extension().is_some_and(|e| e == "csv"), "unexpected file {}", path.display());
        let mut reader = csv::Reader::from_path(&path).expect("open output");
        let header: Vec<&str> = reader.headers().expect("a header").iter().collect();
        assert_eq!(header, ["id", "customer", "amount_cents"], "{}", path.display());
        for record in reader.byte_records() {
            let record = record.expect("a CSV row");
            // Cells joined by a byte that CSV text cannot hold unquoted: \x1f.
            rows.push(record.iter().collect::<Vec<_>>().join(&0x1f));
        }
    }
    rows.sort_unstable();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    rows.hash(&mut hasher);
    (rows.len() as u64, hasher.finish())
}

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name).unwrap_or_else(|_| default.into()).split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

/// Run the benchmark; `allocator` names the global allocator in the table's title.
pub fn main(allocator: &str) {
    // `cargo test --benches` runs bench targets with `--bench`-less args; only run on `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rounds = env_list("ETL_BENCH_ROUNDS", "3").first().copied().unwrap_or(3).max(1);
    let only = std::env::var("ETL_BENCH_ONLY").ok();
    let only = only.as_deref();
    let tmp = match std::env::var_os("ETL_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut plan: Vec<(u64, bool)> = env_list("ETL_BENCH_RECORDS", "1000000,10000000").into_iter().map(|n| (n, false)).collect();
    plan.extend(env_list("ETL_BENCH_SYNC_RECORDS", "100000").into_iter().filter(|&n| n > 0).map(|n| (n, true)));

    println!("JSONL -> typed decode -> select -> CSV files of {} rows, {allocator} (best of {rounds} rounds)", rows_per_file());
    println!(
        "{:<26} {:>10} {:>9} {:>9} {:>9} {:>12} {:>12} {:>7}",
        "run", "records", "wall s", "cpu s", "cpu/wall", "records/s", "peak heap", "ratio"
    );
    for (n, sync) in plan {
        let input = tmp.path().join(format!("orders-{n}.jsonl"));
        let bytes = write_input(&input, n).expect("write input");
        let mut best: [Option<Row>; 3] = [None, None, None];
        let mut outputs = Vec::new();
        for round in 0..rounds {
            let base_dir = fresh_dir(tmp.path(), &format!("baseline-{round}"));
            let etl_dir = fresh_dir(tmp.path(), &format!("etl-{round}"));
            let macro_dir = fresh_dir(tmp.path(), &format!("macro-{round}"));
            // Rotate which side goes first, so that none always pays for what another left
            // behind (page cache, directory growth).
            let mut sides = ["baseline", "etl", "macro"];
            sides.rotate_left((round % 3) as usize);
            for side in sides {
                if only.is_some_and(|o| o != side) {
                    continue;
                }
                if side == "baseline" {
                    let row = measure("hand-written loop", || baseline(&input, &base_dir, sync).expect("baseline run"));
                    keep_best(&mut best[0], row);
                } else if side == "etl" {
                    let row = measure("etl builder API", || run_etl(&rt, &input, &etl_dir, sync).expect("etl run"));
                    keep_best(&mut best[1], row);
                } else {
                    let row = measure("etl pipeline! macro", || run_macro(&rt, &input, &macro_dir, sync).expect("macro run"));
                    keep_best(&mut best[2], row);
                }
            }
            let mut digests = Vec::new();
            for (dir, side) in [(&base_dir, "baseline"), (&etl_dir, "etl"), (&macro_dir, "macro")] {
                if only.is_none_or(|o| o == side) {
                    let (rows, hash) = digest(dir);
                    assert_eq!(rows, n, "{side} wrote every row");
                    digests.push((side, hash));
                }
            }
            assert!(digests.windows(2).all(|w| w[0].1 == w[1].1), "the sides wrote different rows: {digests:?}");
            outputs.extend([base_dir, etl_dir, macro_dir]);
        }
        // Removed only after every round: deleting many files just before a run slows down
        // ext4's inode allocation for that run.
        for dir in outputs {
            std::fs::remove_dir_all(dir).expect("remove bench output");
        }
        let label = if sync { " (fsync)" } else { "" };
        println!("-- {n} records, {:.0} MiB input{label}", bytes as f64 / (1 << 20) as f64);
        let base_rate = best[0].as_ref().map(|b| b.records as f64 / b.wall.as_secs_f64());
        for row in best.iter().flatten() {
            let rate = row.records as f64 / row.wall.as_secs_f64();
            let ratio = base_rate.map_or(f64::NAN, |b| rate / b);
            println!(
                "{:<26} {:>10} {:>9.2} {:>9.2} {:>9.2} {:>12.0} {:>8.1} MiB {:>7.2}",
                row.name,
                row.records,
                row.wall.as_secs_f64(),
                row.cpu.as_secs_f64(),
                row.cpu.as_secs_f64() / row.wall.as_secs_f64(),
                rate,
                row.peak_heap as f64 / (1 << 20) as f64,
                ratio
            );
        }
        let _ = std::fs::remove_file(&input);
    }
}

fn keep_best(slot: &mut Option<Row>, row: Row) {
    if slot.as_ref().is_none_or(|b| row.wall < b.wall) {
        *slot = Some(row);
    }
}
