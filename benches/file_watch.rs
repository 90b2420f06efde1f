//! The `file_watch` source beside the `file` source and a hand-written loop doing the same job
//! with the same crates, in the same run, on RecentChange-like events from the repository's
//! own deterministic generator (`harness/recentchange.rs`, about 800 bytes each), decoded into
//! the same typed record on every side:
//!
//! * **10 000 small files** (10 events each) in a watched directory: `file_watch` (drains the
//!   directory: each file read, decoded, delivered to `blackhole`, recorded in the ledger with
//!   one fsync per group, moved to the archive, the directories synced) beside a loop that
//!   lists the directory and for each file reads and decodes its lines, moves it to the archive
//!   (hard link + unlink), appends its ledger line, and fsyncs the ledger once per 1 000
//!   records (a batch) and the directories at the end. The `file` source reads the same
//!   records from one file, for reference (no per-file work).
//! * **one large JSONL file** (`ETL_BENCH_LARGE_MB`, default 1024): `file_watch`, the `file`
//!   source, and a loop that reads and decodes its lines, then archives it and records it.
//!
//! `cargo bench --features file-watch --bench file_watch`. Environment: `ETL_BENCH_FILES`
//! (default 10000), `ETL_BENCH_PER_FILE` (default 10), `ETL_BENCH_LARGE_MB` (default 1024, 0
//! skips), `ETL_BENCH_ROUNDS` (default 3, best taken), `ETL_BENCH_DIR` (default the system's
//! temp dir). Each side reads fresh hard links of the same generated files.

#[path = "harness/measure.rs"]
mod measure;
#[path = "harness/recentchange.rs"]
mod recentchange;

#[global_allocator]
static ALLOC: measure::Counting<std::alloc::System> = measure::Counting(std::alloc::System);

use etl::prelude::*;
use measure::best;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// The fields every side decodes (the others are skipped by serde on every side alike).
#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Change {
    id: Option<i64>,
    #[serde(rename = "type")]
    kind: String,
    namespace: i64,
    title: String,
    wiki: String,
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name}: a number")))
}

/// Hard-link every file of `from` into a fresh `to` (the sides move what they read).
fn link_all(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::hard_link(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The hand-written loop: every file of `inbox` (sorted) read and decoded line by line, moved
/// to `archive`, recorded in a ledger synced once per `batch` records; returns the records.
fn hand_written(inbox: &Path, archive: &Path, batch: u64) -> u64 {
    std::fs::create_dir_all(archive).unwrap();
    let mut ledger = std::fs::OpenOptions::new().create(true).append(true).open(inbox.join(".ledger")).unwrap();
    let mut names: Vec<PathBuf> =
        std::fs::read_dir(inbox).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "jsonl")).collect();
    names.sort();
    let (mut records, mut since_sync) = (0u64, 0u64);
    let mut line = Vec::with_capacity(4096);
    for path in names {
        let meta = std::fs::metadata(&path).unwrap();
        let mut input = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(&path).unwrap());
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line).unwrap() == 0 {
                break;
            }
            let change: Change = serde_json::from_slice(&line).unwrap();
            std::hint::black_box(change);
            records += 1;
            since_sync += 1;
        }
        let to = archive.join(path.file_name().unwrap());
        std::fs::hard_link(&path, &to).unwrap();
        std::fs::remove_file(&path).unwrap();
        writeln!(ledger, "{{\"path\":{:?},\"size\":{},\"removed\":true}}", path.file_name().unwrap(), meta.len()).unwrap();
        if since_sync >= batch {
            ledger.sync_data().unwrap();
            since_sync = 0;
        }
    }
    ledger.sync_data().unwrap();
    std::fs::File::open(archive).unwrap().sync_all().unwrap();
    std::fs::File::open(inbox).unwrap().sync_all().unwrap();
    records
}

async fn watch_side(inbox: &Path, archive: &Path) -> u64 {
    let done = tokio_util::sync::CancellationToken::new();
    done.cancel();
    let source = etl::source::file_watch::<Change>(inbox.to_str().unwrap())
        .move_after_process(archive.to_str().unwrap())
        .drain_after(done)
        .batch_size(1000);
    Pipeline::from(source).to(etl::sink::blackhole()).handle_signals(false).run().await.unwrap().records_out
}

async fn file_side(path: &Path) -> u64 {
    let source = etl::source::file::<Change>(path.to_str().unwrap()).batch_size(1000);
    Pipeline::from(source).to(etl::sink::blackhole()).handle_signals(false).run().await.unwrap().records_out
}

fn main() {
    let files = env("ETL_BENCH_FILES", 10_000);
    let per_file = env("ETL_BENCH_PER_FILE", 10);
    let large_mb = env("ETL_BENCH_LARGE_MB", 1024);
    let rounds = env("ETL_BENCH_ROUNDS", 3);
    let base = std::env::var("ETL_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
    let work = tempfile::tempdir_in(&base).unwrap();
    let root = work.path();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!("file_watch: {} ({} cores), best of {rounds}\n", base.display(), std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("| job | side | records/s | wall s | CPU s | peak heap | ratio |");
    println!("|---|---|---|---|---|---|---|");

    // 10 000 small files, and the same records in one file for the `file` source.
    if files > 0 {
        let all = root.join("all.jsonl");
        recentchange::write_events(std::fs::File::create(&all).unwrap(), files * per_file, 7).unwrap();
        let pristine = root.join("small");
        std::fs::create_dir_all(&pristine).unwrap();
        let text = std::fs::read(&all).unwrap();
        let mut lines = text.split_inclusive(|b| *b == b'\n');
        for f in 0..files {
            let mut out = std::fs::File::create(pristine.join(format!("f{f:06}.jsonl"))).unwrap();
            for _ in 0..per_file {
                out.write_all(lines.next().unwrap()).unwrap();
            }
        }
        drop(text);
        let n = files * per_file;
        let (mut loop_best, mut watch_best, mut file_best) = (None, None, None);
        for round in 0..rounds {
            let (inbox, archive) = (root.join(format!("in-loop-{round}")), root.join(format!("ar-loop-{round}")));
            link_all(&pristine, &inbox);
            let side = runtime.block_on(measure::side(async {
                let (i, a) = (inbox.clone(), archive.clone());
                assert_eq!(tokio::task::spawn_blocking(move || hand_written(&i, &a, 1000)).await.unwrap(), n);
            }));
            loop_best = best(loop_best, side);
            let (inbox, archive) = (root.join(format!("in-watch-{round}")), root.join(format!("ar-watch-{round}")));
            link_all(&pristine, &inbox);
            let side = runtime.block_on(measure::side(async { assert_eq!(watch_side(&inbox, &archive).await, n) }));
            assert_eq!(std::fs::read_dir(&archive).unwrap().count() as u64, files, "every file archived");
            watch_best = best(watch_best, side);
            let side = runtime.block_on(measure::side(async { assert_eq!(file_side(&all).await, n) }));
            file_best = best(file_best, side);
        }
        let (l, w, f) = (loop_best.unwrap(), watch_best.unwrap(), file_best.unwrap());
        let job = format!("{files} files × {per_file} events");
        measure::row(&format!("{job} | hand-written loop (read, decode, archive, ledger fsync per 1 000)"), n, &l, &l);
        measure::row(&format!("{job} | etl `file_watch` → blackhole (archive)"), n, &w, &l);
        measure::row(&format!("{job} | etl `file` source, the same records in one file (no per-file work)"), n, &f, &l);
    }

    if large_mb > 0 {
        let pristine = root.join("large");
        std::fs::create_dir_all(&pristine).unwrap();
        let path = pristine.join("large.jsonl");
        let count = (large_mb << 20) / 800;
        let bytes = recentchange::write_events(std::fs::File::create(&path).unwrap(), count, 11).unwrap();
        let (mut loop_best, mut watch_best, mut file_best) = (None, None, None);
        for round in 0..rounds {
            let (inbox, archive) = (root.join(format!("lin-loop-{round}")), root.join(format!("lar-loop-{round}")));
            link_all(&pristine, &inbox);
            let side = runtime.block_on(measure::side(async {
                let (i, a) = (inbox.clone(), archive.clone());
                assert_eq!(tokio::task::spawn_blocking(move || hand_written(&i, &a, 1000)).await.unwrap(), count);
            }));
            loop_best = best(loop_best, side);
            let (inbox, archive) = (root.join(format!("lin-watch-{round}")), root.join(format!("lar-watch-{round}")));
            link_all(&pristine, &inbox);
            let side = runtime.block_on(measure::side(async { assert_eq!(watch_side(&inbox, &archive).await, count) }));
            watch_best = best(watch_best, side);
            let side = runtime.block_on(measure::side(async { assert_eq!(file_side(&path).await, count) }));
            file_best = best(file_best, side);
            for d in [&root.join(format!("lar-loop-{round}")), &root.join(format!("lar-watch-{round}"))] {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        let (l, w, f) = (loop_best.unwrap(), watch_best.unwrap(), file_best.unwrap());
        let job = format!("one JSONL file of {} MB ({count} events)", bytes >> 20);
        measure::row(&format!("{job} | hand-written loop (read, decode, archive, ledger fsync)"), count, &l, &l);
        measure::row(&format!("{job} | etl `file_watch` → blackhole"), count, &w, &l);
        measure::row(&format!("{job} | etl `file` source → blackhole"), count, &f, &l);
    }
}
