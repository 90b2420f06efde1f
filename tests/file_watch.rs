//! The `file_watch` source on a real directory (the file system's own view: the watched
//! directory, the archive, the ledger file, the lake the pipeline writes), with the failures of
//! LESSONS.md: a file written slowly, a file caught mid-write, bad records, 10 000 small files,
//! a restart in the middle of a directory, `process_existing = false` across restarts, files of
//! one name in sub-folders, a large file read with flat memory (in a child process, its heap
//! measured by a counting allocator), and SIGKILLs (the crash harness): between delivery and
//! the archive move (nothing read twice), and at random points (nothing lost; duplicates only
//! from files whose delivery was not yet in the ledger).
//!
//! Records are `{"n": id, ...}`; every check counts ids in the lake (a `file` sink directory).

mod common;

#[path = "../benches/harness/measure.rs"]
mod measure;

#[global_allocator]
static ALLOC: measure::Counting<std::alloc::System> = measure::Counting(std::alloc::System);

use common::contract::LONG;
use common::crash::{self, count_files, read_lake, Child, Tally, Watch};
use common::{wait_until, PATIENCE};
use etl::batch::{BatchOptions, FailureKind};
use etl::dead_letter::{DeadLetters, MemoryDeadLetters};
use etl::record::Position;
use etl::source::file_watch::WatchFormat;
use etl::{Json, Pipeline};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SETTLE: Duration = Duration::from_millis(50);

/// A test's directories: the watched one, the archive, the lake.
struct Dirs {
    _root: tempfile::TempDir,
    inbox: PathBuf,
    archive: PathBuf,
    lake: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let inbox = root.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    Dirs { inbox, archive: root.path().join("archive"), lake: root.path().join("lake"), _root: root }
}

/// Write `bytes` to `path` as a careful writer does: a hidden temporary renamed into place.
fn put(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_file_name(format!(".{}.tmp", path.file_name().unwrap().to_string_lossy()));
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(bytes).unwrap();
    drop(f);
    std::fs::rename(&tmp, path).unwrap();
}

/// JSON lines of records `ids`.
fn jsonl(ids: impl IntoIterator<Item = u64>) -> Vec<u8> {
    let mut out = Vec::new();
    for n in ids {
        out.extend_from_slice(json!({"n": n, "text": format!("record, \"{n}\" é")}).to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

fn ids_of(lake: &Path) -> Vec<u64> {
    read_lake(lake).records().map(|r| r.get("n").and_then(Value::as_u64).expect("n")).collect()
}

fn drained() -> CancellationToken {
    let t = CancellationToken::new();
    t.cancel();
    t
}

fn source(d: &Dirs) -> etl::source::FileWatchSource<Json> {
    etl::source::file_watch::<Json>(d.inbox.to_str().unwrap()).move_after_process(d.archive.to_str().unwrap()).settle(SETTLE)
}

/// Run `source` into the lake to its end; the report and the dead letters.
async fn run(source: etl::source::FileWatchSource<Json>, lake: &Path) -> (etl::RunReport, Vec<etl::dead_letter::DeadLetter>) {
    let dlq = MemoryDeadLetters::new();
    let run = Pipeline::from(source).to(etl::sink::file(lake.to_str().unwrap())).dead_letters(dlq.clone()).handle_signals(false).run();
    let report = tokio::time::timeout(PATIENCE, run).await.expect("the run ends").expect("the run succeeds");
    (report, dlq.list().await.unwrap())
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// The ledger's live entries (relative path → its line), as the file says.
fn ledger_of(path: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let v: Value = serde_json::from_str(line).expect("a ledger line is JSON");
        let p = v["path"].as_str().unwrap().to_owned();
        if v.get("removed").and_then(Value::as_bool) == Some(true) {
            out.remove(&p);
        } else {
            out.insert(p, v);
        }
    }
    out
}

#[tokio::test]
async fn a_file_written_slowly_in_chunks_is_read_once_whole() {
    let d = dirs();
    let settle = Duration::from_millis(400);
    let token = CancellationToken::new();
    let dlq = MemoryDeadLetters::new();
    let src = source(&d).settle(settle).batch_size(1000).batch_timeout(Duration::from_millis(100));
    let run = tokio::spawn(
        Pipeline::from(src)
            .to(etl::sink::file(d.lake.to_str().unwrap()))
            .dead_letters(dlq.clone())
            .cancel_on(token.clone())
            .handle_signals(false)
            .run(),
    );
    // 200 records written in place (no rename) in 12 pieces cut mid-line, 100 ms apart: never
    // unchanged for `settle` until the end.
    let bytes = jsonl(0..200);
    let path = d.inbox.join("slow.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    for piece in bytes.chunks(bytes.len() / 12 + 1) {
        f.write_all(piece).unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(f);
    wait_until(PATIENCE, "the file archived", || d.archive.join("slow.jsonl").exists()).await;
    token.cancel();
    let report = run.await.unwrap().unwrap();
    let tally = Tally::of(ids_of(&d.lake));
    assert_eq!(tally.missing(0..200), Vec::<u64>::new(), "every record");
    assert_eq!(tally.duplicates(), 0, "read once");
    assert!(dlq.is_empty(), "no partial line dead-lettered: {:?}", dlq.list().await.unwrap());
    assert_eq!(report.records_out, 200, "{report}");
    assert_eq!(std::fs::read(d.archive.join("slow.jsonl")).unwrap(), bytes, "archived whole");
    assert_eq!(tree(&d.inbox), vec![".etl-file-watch.ledger".to_string()], "only the ledger left");
}

#[tokio::test]
async fn a_file_caught_mid_write_is_read_on_once_it_changes() {
    // A writer that stops for longer than `settle` in the middle of a line: the source reads
    // the file, stops at the torn line, sees the file change, and reads on; nothing is
    // dead-lettered and nothing is read twice.
    let d = dirs();
    let settle = Duration::from_secs(2);
    let token = CancellationToken::new();
    let dlq = MemoryDeadLetters::new();
    let src = source(&d).settle(settle).batch_size(2).batch_timeout(LONG);
    let run = tokio::spawn(
        Pipeline::from(src)
            .to(etl::sink::file(d.lake.to_str().unwrap()))
            .dead_letters(dlq.clone())
            .cancel_on(token.clone())
            .handle_signals(false)
            .run(),
    );
    let bytes = jsonl(0..4);
    let cut = bytes.len() - 10; // inside the last line
    let path = d.inbox.join("torn.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&bytes[..cut]).unwrap();
    f.flush().unwrap();
    // The first full batch (records 0 and 1) is in the lake: the reader reached the torn line.
    wait_until(PATIENCE, "the first batch", || ids_of(&d.lake).len() >= 2).await;
    f.write_all(&bytes[cut..]).unwrap();
    drop(f);
    wait_until(PATIENCE, "the file archived", || d.archive.join("torn.jsonl").exists()).await;
    token.cancel();
    run.await.unwrap().unwrap();
    let tally = Tally::of(ids_of(&d.lake));
    assert_eq!((tally.missing(0..4), tally.duplicates()), (vec![], 0), "every record once: {tally:?}");
    assert!(dlq.is_empty(), "the torn line was not dead-lettered: {:?}", dlq.list().await.unwrap());
}

#[tokio::test]
async fn bad_records_are_dead_lettered_with_the_file_path_and_line_in_every_format() {
    let d = dirs();
    // JSON Lines: line 2 is bad.
    put(&d.inbox.join("a.jsonl"), b"{\"n\": 0}\n{\"n\": oops\n{\"n\": 1}\n");
    // A JSON array, pretty-printed: the element on line 4 is bad, the others are records.
    put(&d.inbox.join("b.json"), b"[\n  {\"n\": 2},\n  {\"n\": 3,\n   \"x\": [1, 2]},\n  {\"n\": tru},\n  {\"n\": 4}\n]\n");
    // CSV: record 2 has a cell too many.
    put(&d.inbox.join("c.csv"), b"n,text\n5,hello\n6,too,many\n7,\"quoted, cell\"\n");
    let (report, dead) = run(source(&d).drain_after(drained()).batch_size(10), &d.lake).await;
    let mut lake = read_lake(&d.lake).records().cloned().collect::<Vec<Json>>();
    lake.sort_by_key(|r| r.get("n").map(|v| v.to_string()));
    let ns: BTreeSet<String> = lake.iter().map(|r| r.get("n").unwrap().to_string().trim_matches('"').to_owned()).collect();
    assert_eq!(ns, ["0", "1", "2", "3", "4", "5", "7"].into_iter().map(String::from).collect(), "good records of every format arrive");
    assert_eq!(report.dead_lettered, 3, "{report}");
    let mut got: Vec<(String, Position, Vec<u8>)> =
        dead.iter().map(|e| (e.source.clone(), e.position.clone(), e.payload.to_vec())).collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let name = |f: &str| format!("file_watch {}", d.inbox.join(f).display());
    assert_eq!(
        got,
        vec![
            (name("a.jsonl"), Position::Line(2), b"{\"n\": oops".to_vec()),
            (name("b.json"), Position::Line(5), b"{\"n\": tru}".to_vec()),
            (name("c.csv"), Position::Line(2), b"6,too,many".to_vec()),
        ],
        "each bad record with its file, line and bytes"
    );
    assert!(dead.iter().all(|e| e.kind == FailureKind::Decode && e.error.contains(d.inbox.to_str().unwrap())), "{dead:?}");
    assert_eq!(tree(&d.archive), ["a.jsonl", "b.json", "c.csv"], "files with dead letters are done and archived");
}

#[tokio::test]
async fn ten_thousand_small_files_each_read_once_and_archived() {
    const FILES: u64 = 10_000;
    let d = dirs();
    for i in 0..FILES {
        std::fs::write(d.inbox.join(format!("f{i:05}.jsonl")), jsonl([i])).unwrap();
    }
    let (report, dead) = run(source(&d).drain_after(drained()).batch_size(500), &d.lake).await;
    assert!(dead.is_empty());
    let tally = Tally::of(ids_of(&d.lake));
    assert_eq!((tally.missing(0..FILES).len(), tally.duplicates()), (0, 0), "every record once");
    assert_eq!(report.records_out, FILES, "{report}");
    assert_eq!(tree(&d.archive).len(), FILES as usize, "every file archived, none twice (no suffixed names)");
    assert!(tree(&d.archive).iter().all(|n| n.len() == "f00000.jsonl".len()), "no suffix");
    assert_eq!(tree(&d.inbox), [".etl-file-watch.ledger"], "the inbox is empty");
    assert!(ledger_of(&d.inbox.join(".etl-file-watch.ledger")).is_empty(), "archived files leave the ledger");
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_directory_reads_no_recorded_file_again() {
    // Without an archive: the ledger alone says what was read.
    const FILES: u64 = 300;
    const PER_FILE: u64 = 3;
    let d = dirs();
    for f in 0..FILES {
        std::fs::write(d.inbox.join(format!("f{f:03}.jsonl")), jsonl(f * PER_FILE..(f + 1) * PER_FILE)).unwrap();
    }
    let plain = || etl::source::file_watch::<Json>(d.inbox.to_str().unwrap()).settle(SETTLE).batch_size(6).batch_timeout(LONG);
    let first_lake = d.lake.join("first");
    let token = CancellationToken::new();
    let run1 = tokio::spawn(
        Pipeline::from(plain())
            .to(etl::sink::file(first_lake.to_str().unwrap()))
            .dead_letters(MemoryDeadLetters::new())
            .cancel_on(token.clone())
            .handle_signals(false)
            .run(),
    );
    wait_until(PATIENCE, "some files delivered", || ids_of(&first_lake).len() >= 60).await;
    token.cancel();
    run1.await.unwrap().unwrap();
    let ledger = d.inbox.join(".etl-file-watch.ledger");
    let recorded: BTreeSet<String> = ledger_of(&ledger).into_keys().collect();
    assert!(!recorded.is_empty() && recorded.len() < FILES as usize, "stopped in the middle: {} files recorded", recorded.len());
    let second_lake = d.lake.join("second");
    let (_, dead) = run(plain().drain_after(drained()), &second_lake).await;
    assert!(dead.is_empty());
    let second = Tally::of(ids_of(&second_lake));
    for name in &recorded {
        let f: u64 = name[1..4].parse().unwrap();
        for n in f * PER_FILE..(f + 1) * PER_FILE {
            assert!(!second.0.contains_key(&n), "{name} was recorded by the first run and read again by the second");
        }
    }
    let all = Tally::of(ids_of(&first_lake).into_iter().chain(ids_of(&second_lake)));
    assert_eq!(all.missing(0..FILES * PER_FILE), Vec::<u64>::new(), "nothing skipped");
    // Duplicates only from the files read when the first run stopped (not recorded).
    assert!(all.duplicates() <= (PER_FILE * 2) as usize, "{} duplicates", all.duplicates());
    assert_eq!(ledger_of(&ledger).len(), FILES as usize, "every file recorded in the end");
    // A third start reads nothing.
    let (report, _) = run(plain().drain_after(drained()), &d.lake.join("third")).await;
    assert_eq!(report.records_in, 0, "{report}");
}

#[tokio::test]
async fn process_existing_false_skips_only_the_files_of_the_first_start() {
    let d = dirs();
    put(&d.inbox.join("old.jsonl"), &jsonl([0]));
    let src = || source(&d).process_existing(false).drain_after(drained());
    let (report, _) = run(src(), &d.lake).await;
    assert_eq!(report.records_in, 0, "the file present at the first start is not read: {report}");
    // Stopped; a file arrives meanwhile.
    put(&d.inbox.join("new.jsonl"), &jsonl([1]));
    let (report, _) = run(src(), &d.lake).await;
    assert_eq!(report.records_in, 1, "{report}");
    assert_eq!(ids_of(&d.lake), [1], "the file that arrived while stopped is read, the old one is not");
    assert_eq!(tree(&d.archive), ["new.jsonl"]);
    assert!(d.inbox.join("old.jsonl").exists(), "the old file stays where it was");
}

#[tokio::test]
async fn files_of_one_name_in_sub_folders_are_archived_without_collisions() {
    let d = dirs();
    put(&d.inbox.join("a/x.jsonl"), &jsonl([0]));
    put(&d.inbox.join("b/x.jsonl"), &jsonl([1]));
    put(&d.inbox.join("x.jsonl"), &jsonl([2]));
    let src = || source(&d).recursive(true).drain_after(drained());
    run(src(), &d.lake).await;
    assert_eq!(tree(&d.archive), ["a/x.jsonl", "b/x.jsonl", "x.jsonl"]);
    // Another `a/x.jsonl` arrives: archived beside the first under a suffix, never over it.
    put(&d.inbox.join("a/x.jsonl"), &jsonl([3]));
    run(src(), &d.lake).await;
    assert_eq!(tree(&d.archive), ["a/x.1.jsonl", "a/x.jsonl", "b/x.jsonl", "x.jsonl"]);
    assert_eq!(std::fs::read(d.archive.join("a/x.jsonl")).unwrap(), jsonl([0]), "the first one intact");
    assert_eq!(std::fs::read(d.archive.join("a/x.1.jsonl")).unwrap(), jsonl([3]));
    let mut ids = ids_of(&d.lake);
    ids.sort();
    assert_eq!(ids, [0, 1, 2, 3]);
}

#[tokio::test]
async fn a_json_array_file_is_streamed_element_by_element() {
    let d = dirs();
    let elements: Vec<String> = (0..5000).map(|n| json!({"n": n, "pad": "x".repeat(200)}).to_string()).collect();
    let bytes = format!("[\n{}\n]\n", elements.join(",\n"));
    put(&d.inbox.join("big.json"), bytes.as_bytes());
    let (report, dead) = run(source(&d).format(WatchFormat::Json).drain_after(drained()).batch_size(100), &d.lake).await;
    assert!(dead.is_empty(), "{dead:?}");
    let tally = Tally::of(ids_of(&d.lake));
    assert_eq!((tally.missing(0..5000).len(), tally.duplicates()), (0, 0));
    assert_eq!(report.records_out, 5000);
}

// ---------------------------------------------------------------------------------------------
// A large file with flat memory: a child process of its own (this binary re-run), so that the
// counting allocator's peak is that of the pipeline alone.

const LARGE_MB: usize = 100;

async fn large_file_child(args: Value) {
    let path = PathBuf::from(args["dir"].as_str().unwrap());
    let src = etl::source::file_watch::<Json>(path.join("inbox").to_str().unwrap()).settle(SETTLE).drain_after(drained()).batch_size(1000);
    measure::reset_peak();
    let report =
        Pipeline::from(src).to(etl::sink::blackhole()).dead_letters(MemoryDeadLetters::new()).handle_signals(false).run().await.unwrap();
    println!("RECORDS={} PEAK_HEAP_BYTES={}", report.records_out, measure::peak());
}

#[tokio::test]
async fn a_large_file_is_read_with_flat_memory() {
    if let Some(args) = crash::child_args() {
        return large_file_child(args).await;
    }
    let d = dirs();
    let line = |n: u64| format!("{{\"n\":{n},\"text\":\"{}\"}}\n", "y".repeat(180));
    let mut f = std::io::BufWriter::new(std::fs::File::create(d.inbox.join(".large.tmp")).unwrap());
    let (mut n, mut size) = (0u64, 0usize);
    while size < LARGE_MB << 20 {
        let l = line(n);
        size += l.len();
        f.write_all(l.as_bytes()).unwrap();
        n += 1;
    }
    drop(f);
    std::fs::rename(d.inbox.join(".large.tmp"), d.inbox.join("large.jsonl")).unwrap();
    let root = d.inbox.parent().unwrap().to_owned();
    let child = Child { test: "a_large_file_is_read_with_flat_memory".into(), args: json!({"dir": root}), log_dir: root.clone() };
    let (mut process, log) = child.spawn(0);
    let status = tokio::task::spawn_blocking(move || process.wait().unwrap()).await.unwrap();
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "the child failed: {}", crash::tail(&log));
    let field = |name: &str| -> u64 {
        let at = out.find(name).unwrap_or_else(|| panic!("no {name} in the child's output:\n{out}"));
        out[at + name.len()..].split_whitespace().next().unwrap().parse().unwrap()
    };
    assert_eq!(field("RECORDS="), n, "every record of the {LARGE_MB} MB file");
    let peak = field("PEAK_HEAP_BYTES=");
    // Bounded by the chunks in flight and batch_size × max_in_flight (1000 records of 230 B,
    // raw bytes kept): a few MiB, whatever the file size.
    assert!(peak < 32 << 20, "peak heap {:.1} MiB for a {LARGE_MB} MB file", peak as f64 / (1 << 20) as f64);
    eprintln!("{LARGE_MB} MB file, {n} records: peak heap {:.1} MiB", peak as f64 / (1 << 20) as f64);
}

// ---------------------------------------------------------------------------------------------
// SIGKILL between delivery and the archive move: the child delivers every file and records it
// in the ledger, but the archive move of the files of sub-folder `s` fails (a regular file
// stands where the archive's sub-directory must go), so they stay in the inbox, recorded. The
// child then kills itself (SIGKILL). The parent removes the obstacle; the restart must move
// those files without reading them again: every record exactly once in the lake.

async fn archive_crash_child(args: Value) {
    let root = PathBuf::from(args["root"].as_str().unwrap());
    let src = etl::source::file_watch::<Json>(root.join("inbox").to_str().unwrap())
        .recursive(true)
        .move_after_process(root.join("archive").to_str().unwrap())
        .settle(SETTLE)
        .drain_after(drained())
        .batch_size(4)
        .batch_timeout(LONG);
    let ledger = root.join("inbox/.etl-file-watch.ledger");
    if crash::run_number() == 0 {
        // The kill point: once the ledger records every file of `s` (delivered, not archived)
        // and the other files are archived (nothing else in flight).
        let inbox = root.join("inbox");
        tokio::spawn(async move {
            loop {
                let recorded = ledger_of(&ledger).keys().filter(|p| p.starts_with("s/")).count();
                let others = tree(&inbox).iter().filter(|p| p.starts_with('t')).count();
                if recorded == 5 && others == 0 {
                    // SAFETY: sending a signal to this very process.
                    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let token = CancellationToken::new();
        let _ = Pipeline::from(src.drain_after(token)) // never drains: killed first
            .to(etl::sink::file(root.join("lake").to_str().unwrap()))
            .dead_letters(MemoryDeadLetters::new())
            .handle_signals(false)
            .run()
            .await;
        return;
    }
    let report = Pipeline::from(src)
        .to(etl::sink::file(root.join("lake").to_str().unwrap()))
        .dead_letters(MemoryDeadLetters::new())
        .handle_signals(false)
        .run()
        .await
        .expect("the restart");
    eprintln!("restart: {report}");
}

struct ArchiveWatch {
    root: PathBuf,
    at_kill: Option<(Vec<String>, usize)>,
}

impl Watch for ArchiveWatch {
    /// No progress to see: the child chooses its kill point itself (the harness waits for it).
    fn progress(&self) -> usize {
        0
    }

    async fn killed(&mut self, _kill: usize) {
        self.at_kill = Some((tree(&self.root.join("inbox")), ids_of(&self.root.join("lake")).len()));
        std::fs::remove_file(self.root.join("archive/s")).unwrap();
    }

    async fn finished(&mut self) -> bool {
        tree(&self.root.join("inbox")) == [".etl-file-watch.ledger"]
    }
}

#[tokio::test]
async fn a_sigkill_between_delivery_and_archive_reads_nothing_twice() {
    if let Some(args) = crash::child_args() {
        return archive_crash_child(args).await;
    }
    let d = dirs();
    let root = d.inbox.parent().unwrap().to_owned();
    for f in 0..5u64 {
        put(&d.inbox.join(format!("s/f{f}.jsonl")), &jsonl(f * 4..f * 4 + 4));
        put(&d.inbox.join(format!("t{f}.jsonl")), &jsonl(100 + f * 4..100 + f * 4 + 4));
    }
    std::fs::create_dir_all(&d.archive).unwrap();
    std::fs::write(d.archive.join("s"), b"in the way").unwrap();
    let child = Child {
        test: "a_sigkill_between_delivery_and_archive_reads_nothing_twice".into(),
        args: json!({"root": root}),
        log_dir: root.clone(),
    };
    let mut watch = ArchiveWatch { root: root.clone(), at_kill: None };
    let crashes = crash::run(&child, 1, &mut watch).await;
    let (inbox_at_kill, delivered_at_kill) = watch.at_kill.clone().unwrap();
    let ctx = format!("{crashes:?}, inbox at the kill {inbox_at_kill:?}");
    assert_eq!(
        inbox_at_kill.iter().filter(|p| p.starts_with("s/")).count(),
        5,
        "{ctx}: killed with the files of s delivered, not archived"
    );
    assert_eq!(delivered_at_kill, 40, "{ctx}: every record delivered before the kill");
    let tally = Tally::of(ids_of(&d.lake));
    let expected: Vec<u64> = (0..20).chain(100..120).collect();
    assert_eq!(tally.missing(expected.iter().copied()), Vec::<u64>::new(), "{ctx}: nothing lost");
    assert_eq!(tally.duplicates(), 0, "{ctx}: nothing read twice: {tally:?}");
    let archived = tree(&d.archive);
    assert_eq!(archived.len(), 10, "{ctx}: every file archived once: {archived:?}");
    let ledger = std::fs::read_to_string(d.inbox.join(".etl-file-watch.ledger")).unwrap();
    assert!(
        ledger_of(&d.inbox.join(".etl-file-watch.ledger")).is_empty(),
        "{ctx}: the ledger is empty once all is archived: {ledger}\n{}",
        crash::tail(&root.join("child-1.log"))
    );
}

// ---------------------------------------------------------------------------------------------
// SIGKILLs at random points while the child works through 300 files (crash harness): nothing
// lost; a record arrives twice only when its file was delivered and not yet in the ledger at a
// kill (exposure, read from the lake, the ledger and the inbox after each kill).

const CRASH_FILES: u64 = 300;
const CRASH_PER_FILE: u64 = 4;

async fn random_crash_child(args: Value) {
    let root = PathBuf::from(args["root"].as_str().unwrap());
    let src = etl::source::file_watch::<Json>(root.join("inbox").to_str().unwrap())
        .move_after_process(root.join("archive").to_str().unwrap())
        .settle(SETTLE)
        .drain_after(drained())
        .batch_size(8)
        .batch_timeout(LONG);
    let report = Pipeline::from(src)
        .to(etl::sink::file(root.join("lake").to_str().unwrap()))
        .max_in_flight(2)
        .dead_letters(MemoryDeadLetters::new())
        .handle_signals(false)
        .run()
        .await
        .expect("the child's run");
    eprintln!("child finished: {report}");
}

struct RandomWatch {
    root: PathBuf,
    exposures: Vec<usize>,
}

impl Watch for RandomWatch {
    fn progress(&self) -> usize {
        count_files(&self.root.join("lake"))
    }

    async fn killed(&mut self, _kill: usize) {
        let ledger = ledger_of(&self.root.join("inbox/.etl-file-watch.ledger"));
        let inbox: BTreeSet<String> = tree(&self.root.join("inbox")).into_iter().collect();
        // Delivered records whose file is still in the inbox and not in the ledger: read again.
        let exposed = ids_of(&self.root.join("lake"))
            .into_iter()
            .map(|n| format!("f{:03}.jsonl", n / CRASH_PER_FILE))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|f| inbox.contains(f) && !ledger.contains_key(f))
            .count();
        self.exposures.push(exposed * CRASH_PER_FILE as usize);
    }

    async fn finished(&mut self) -> bool {
        tree(&self.root.join("inbox")) == [".etl-file-watch.ledger"]
    }
}

#[tokio::test]
async fn sigkills_mid_directory_lose_nothing() {
    if let Some(args) = crash::child_args() {
        return random_crash_child(args).await;
    }
    let d = dirs();
    let root = d.inbox.parent().unwrap().to_owned();
    for f in 0..CRASH_FILES {
        std::fs::write(d.inbox.join(format!("f{f:03}.jsonl")), jsonl(f * CRASH_PER_FILE..(f + 1) * CRASH_PER_FILE)).unwrap();
    }
    let child = Child { test: "sigkills_mid_directory_lose_nothing".into(), args: json!({"root": root}), log_dir: root.clone() };
    let mut watch = RandomWatch { root: root.clone(), exposures: Vec::new() };
    let crashes = crash::run(&child, 3, &mut watch).await;
    let ctx = format!("{crashes:?}, exposure per kill {:?}", watch.exposures);
    let lake = read_lake(&d.lake);
    assert!(lake.hidden.is_empty(), "{ctx}: no temporaries left in the lake: {:?}", lake.hidden);
    let tally = Tally::of(ids_of(&d.lake));
    assert_eq!(tally.missing(0..CRASH_FILES * CRASH_PER_FILE), Vec::<u64>::new(), "{ctx}: nothing lost");
    let exposed: usize = watch.exposures.iter().sum();
    assert!(
        tally.duplicates() <= exposed,
        "{ctx}: {} duplicates, more than the records exposed at the kills ({exposed})",
        tally.duplicates()
    );
    let archived = tree(&d.archive);
    assert_eq!(archived.len(), CRASH_FILES as usize, "{ctx}: every file archived once (no suffixed copies)");
    eprintln!("{ctx}: {} duplicates", tally.duplicates());
}

// ---------------------------------------------------------------------------------------------
// The DSL step, and its documented defaults (tests/operator_defaults.rs checks every step's,
// but needs every connector's feature; this checks this step's with `file-watch` alone).

#[tokio::test]
async fn the_pipeline_macro_step_reads_a_directory() {
    let d = dirs();
    put(&d.inbox.join("a.json"), b"[{\"n\": 0}, {\"n\": 1}]");
    put(&d.inbox.join("b.csv"), b"n\n2\n");
    let (inbox, archive, lake) =
        (d.inbox.to_str().unwrap().to_owned(), d.archive.to_str().unwrap().to_owned(), d.lake.to_str().unwrap().to_owned());
    let token = CancellationToken::new();
    let run = tokio::spawn({
        let token = token.clone();
        async move {
            etl::pipeline! {
                file_watch(dir = inbox, patterns = ["*.json", "*.csv"], recursive = false, process_existing = true,
                           move_after_process = archive, format = "auto", settle = 50ms, batch_size = 10, batch_timeout = 100ms)
                | file(dir = lake)
            }
            .cancel_on(token)
            .handle_signals(false)
            .run()
            .await
        }
    });
    wait_until(PATIENCE, "both files archived", || tree(&d.archive).len() == 2).await;
    token.cancel();
    run.await.unwrap().unwrap();
    let mut ns: Vec<String> = read_lake(&d.lake).records().map(|r| r.get("n").unwrap().to_string().trim_matches('"').to_owned()).collect();
    ns.sort();
    assert_eq!(ns, ["0", "1", "2"]);
}

#[test]
fn the_documented_defaults_are_the_runtime_consts() {
    use etl::source::file_watch as fw;
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operators.md")).unwrap();
    let section = text.split("#### `file_watch`").nth(1).expect("file_watch is documented");
    let section = section.split("#### ").next().unwrap();
    let default = |arg: &str| -> String {
        let row = section.lines().find(|l| l.starts_with(&format!("| `{arg}` |"))).unwrap_or_else(|| panic!("no row for {arg}"));
        row.split('|').map(str::trim).nth(4).unwrap().to_owned()
    };
    assert_eq!(default("recursive"), fw::DEFAULT_RECURSIVE.to_string());
    assert_eq!(default("process_existing"), fw::DEFAULT_PROCESS_EXISTING.to_string());
    assert_eq!(default("format"), format!("\"{}\"", fw::DEFAULT_FORMAT.name()));
    assert_eq!(default("settle"), format!("{}ms", fw::DEFAULT_SETTLE.as_millis()));
    let patterns = fw::DEFAULT_PATTERNS.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
    assert_eq!(default("patterns"), format!("`[{patterns}]`"));
    assert_eq!(default("ledger"), format!("`<dir>/{}`", fw::DEFAULT_LEDGER_NAME));
    assert!(default("poll_interval").contains(&format!("{}s", fw::DEFAULT_POLL_INTERVAL.as_secs())));
}
