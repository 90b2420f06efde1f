use super::*;
use crate::Json;
use serde_json::json;
use std::time::SystemTime;

fn rec(v: serde_json::Value) -> Json {
    serde_json::from_value(v).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

async fn open(sink: &mut FileSink) {
    Sink::<Json>::open(sink, SinkContext::default()).await.unwrap();
}

async fn commit(sink: &mut FileSink) -> Result<(), ConnectorError> {
    Sink::<Json>::commit(sink).await
}

/// A non-empty directory where a file must go: creating or renaming onto it fails.
fn block(path: &Path) {
    std::fs::create_dir(path).unwrap();
    std::fs::write(path.join("x"), b"x").unwrap();
}

#[tokio::test]
async fn per_batch_files_and_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lake");
    let mut sink = file(dir.to_str().unwrap()).prefix("p");
    open(&mut sink).await;
    sink.write(&[rec(json!({"a": 1}))]).await.unwrap();
    sink.write(&[rec(json!({"a": 2})), rec(json!({"a": 3}))]).await.unwrap();
    Sink::<Json>::write(&mut sink, &[]).await.unwrap();
    commit(&mut sink).await.unwrap();
    Sink::<Json>::close(&mut sink).await.unwrap();
    let files = names(&dir);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].ends_with("-000000.jsonl") && files[1].ends_with("-000001.jsonl"), "{files:?}");
    assert_eq!(std::fs::read_to_string(dir.join(&files[1])).unwrap(), "{\"a\":2}\n{\"a\":3}\n");
}

#[tokio::test]
async fn per_batch_files_get_their_final_names_at_the_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = file(tmp.path().to_str().unwrap()).prefix("g");
    open(&mut sink).await;
    for i in 0..3 {
        sink.write(&[rec(json!({"a": i}))]).await.unwrap();
    }
    let before = names(tmp.path());
    assert_eq!(before.len(), 3);
    assert!(before.iter().all(|n| n.starts_with(".g-") && n.ends_with(".tmp")), "only temporary files before the commit: {before:?}");
    commit(&mut sink).await.unwrap();
    let after = names(tmp.path());
    assert_eq!(after, (0..3).map(|i| format!("g-{}-{i:06}.jsonl", sink.run)).collect::<Vec<_>>());
    assert_eq!(std::fs::read_to_string(tmp.path().join(&after[2])).unwrap(), "{\"a\":2}\n");
}

#[tokio::test]
async fn per_batch_retry_after_a_failed_write_leaves_one_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = file(tmp.path().to_str().unwrap()).prefix("p");
    open(&mut sink).await;
    // Block the temporary name so that the write fails.
    let blocker = tmp.path().join(format!(".p-{}-000000.jsonl.tmp", sink.run));
    block(&blocker);
    let batch = [rec(json!({"a": 1})), rec(json!({"a": 2}))];
    let e = sink.write(&batch).await.unwrap_err();
    assert!(e.is_retryable());
    assert!(e.to_string().contains(".tmp"), "{e}");
    assert!(names(tmp.path()).iter().all(|n| n.starts_with('.')), "nothing under a final name: {:?}", names(tmp.path()));
    std::fs::remove_dir_all(&blocker).unwrap();
    sink.write(&batch).await.unwrap();
    commit(&mut sink).await.unwrap();
    let files = names(tmp.path());
    assert_eq!(files, [format!("p-{}-000000.jsonl", sink.run)]);
    assert_eq!(std::fs::read_to_string(tmp.path().join(&files[0])).unwrap(), "{\"a\":1}\n{\"a\":2}\n");
}

#[tokio::test]
async fn a_failed_commit_removes_the_group_and_the_rewrite_reuses_its_names() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = file(tmp.path().to_str().unwrap()).prefix("f");
    open(&mut sink).await;
    sink.write(&[rec(json!({"a": 0}))]).await.unwrap();
    commit(&mut sink).await.unwrap();
    for i in 1..4 {
        sink.write(&[rec(json!({"a": i}))]).await.unwrap();
    }
    // The second file of the group cannot be renamed into place: the first one already was.
    let blocker = tmp.path().join(format!("f-{}-000002.jsonl", sink.run));
    block(&blocker);
    let e = commit(&mut sink).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    std::fs::remove_dir_all(&blocker).unwrap();
    assert_eq!(names(tmp.path()), [format!("f-{}-000000.jsonl", sink.run)], "the group's files are gone, the committed one stays");
    // The pipeline writes the group again.
    for i in 1..4 {
        sink.write(&[rec(json!({"a": i}))]).await.unwrap();
    }
    commit(&mut sink).await.unwrap();
    let files = names(tmp.path());
    assert_eq!(files, (0..4).map(|i| format!("f-{}-{i:06}.jsonl", sink.run)).collect::<Vec<_>>());
    for (i, name) in files.iter().enumerate() {
        assert_eq!(std::fs::read_to_string(tmp.path().join(name)).unwrap(), format!("{{\"a\":{i}}}\n"));
    }
}

#[tokio::test]
async fn close_removes_what_was_never_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = file(tmp.path().to_str().unwrap()).prefix("c");
    open(&mut sink).await;
    sink.write(&[rec(json!({"a": 1}))]).await.unwrap();
    commit(&mut sink).await.unwrap();
    sink.write(&[rec(json!({"a": 2}))]).await.unwrap();
    Sink::<Json>::close(&mut sink).await.unwrap();
    assert_eq!(names(tmp.path()), [format!("c-{}-000000.jsonl", sink.run)]);
}

#[tokio::test]
async fn size_retry_after_a_failed_commit_writes_the_batch_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = file(tmp.path().to_str().unwrap()).prefix("s").rolling(Rolling::Size(1 << 20));
    let first = [rec(json!({"a": 1}))];
    let second = [rec(json!({"a": 2})), rec(json!({"a": 3}))];
    sink.write(&first).await.unwrap();
    commit(&mut sink).await.unwrap();
    let committed = Encoded::new(&first, Format::Jsonl, false).bytes.len();
    let len = committed + Encoded::new(&second, Format::Jsonl, false).bytes.len();
    // Block the rename that commits the second batch (after its bytes were written).
    let name = format!("s-{}-000000.jsonl", sink.run);
    let blocker = tmp.path().join(format!(".{name}.{len}.inprogress"));
    block(&blocker);
    sink.write(&second).await.unwrap();
    let e = commit(&mut sink).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    std::fs::remove_dir_all(&blocker).unwrap();
    sink.write(&second).await.unwrap();
    commit(&mut sink).await.unwrap();
    Sink::<Json>::close(&mut sink).await.unwrap();
    assert_eq!(names(tmp.path()), std::slice::from_ref(&name));
    assert_eq!(std::fs::read_to_string(tmp.path().join(&name)).unwrap(), "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
}

#[tokio::test]
async fn size_close_cuts_off_what_was_never_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = file(tmp.path().to_str().unwrap()).prefix("t").rolling(Rolling::Size(1 << 20));
    sink.write(&[rec(json!({"a": 1}))]).await.unwrap();
    commit(&mut sink).await.unwrap();
    sink.write(&[rec(json!({"a": 2}))]).await.unwrap();
    Sink::<Json>::close(&mut sink).await.unwrap();
    let files = names(tmp.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read_to_string(tmp.path().join(&files[0])).unwrap(), "{\"a\":1}\n");
}

#[tokio::test]
async fn size_rolls_before_exceeding_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    // Each record is 8 bytes: `{"a":1}\n`.
    let mut sink = file(tmp.path().to_str().unwrap()).rolling(Rolling::Size(20));
    for i in 0..5 {
        sink.write(&[rec(json!({"a": i}))]).await.unwrap();
        commit(&mut sink).await.unwrap();
    }
    Sink::<Json>::close(&mut sink).await.unwrap();
    let sizes: Vec<u64> = names(tmp.path()).iter().map(|n| std::fs::metadata(tmp.path().join(n)).unwrap().len()).collect();
    assert_eq!(sizes, [16, 16, 8]);
}

#[tokio::test]
async fn size_within_a_commit_group_rolls_at_the_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = file(tmp.path().to_str().unwrap()).rolling(Rolling::Size(20));
    // Three batches of 8 bytes before one commit: the file reaches 24 bytes, then rolls.
    for i in 0..3 {
        sink.write(&[rec(json!({"a": i}))]).await.unwrap();
    }
    commit(&mut sink).await.unwrap();
    assert_eq!(names(tmp.path()).iter().filter(|n| !n.starts_with('.')).count(), 1, "finalised at the commit");
    sink.write(&[rec(json!({"a": 3}))]).await.unwrap();
    commit(&mut sink).await.unwrap();
    Sink::<Json>::close(&mut sink).await.unwrap();
    let sizes: Vec<u64> = names(tmp.path()).iter().map(|n| std::fs::metadata(tmp.path().join(n)).unwrap().len()).collect();
    assert_eq!(sizes, [24, 8]);
}

#[tokio::test]
async fn interpolates_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = file(format!("{}/${{ETL_FILE_SINK_TEST_UNSET:-sub}}", tmp.path().display()));
    open(&mut sink).await;
    assert!(tmp.path().join("sub").is_dir());
    assert_eq!(Sink::<Json>::describe(&sink), format!("file {}/sub", tmp.path().display()));
    let mut bad = file("${ETL_FILE_SINK_TEST_UNSET}");
    let e = Sink::<Json>::open(&mut bad, SinkContext::default()).await.unwrap_err();
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn unwritable_directory_is_permanent() {
    let tmp = tempfile::tempdir().unwrap();
    let not_a_dir = tmp.path().join("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let mut sink = file(not_a_dir.join("sub").to_str().unwrap());
    let e = Sink::<Json>::open(&mut sink, SinkContext::default()).await.unwrap_err();
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("sub"), "{e}");
}

/// 2024-02-29 13:59:59 UTC, one second before the next hour's partition.
const BEFORE_THE_HOUR: u64 = 1_709_215_199;

fn at(secs: u64) -> SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

/// `(directory relative to root, file name)` of every file below `root`, hidden ones included.
fn tree(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = dir.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
                out.push((rel, path.file_name().unwrap().to_str().unwrap().to_owned()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn per_batch_files_go_to_the_partition_of_their_write() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NOW: AtomicU64 = AtomicU64::new(BEFORE_THE_HOUR);
    fn now() -> SystemTime {
        at(NOW.load(Ordering::SeqCst))
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = file(tmp.path().join("lake/{date}/h={hour}").to_str().unwrap()).prefix("p");
    sink.clock = now;
    open(&mut sink).await;
    sink.write(&[rec(json!({"a": 1}))]).await.unwrap();
    NOW.store(BEFORE_THE_HOUR + 1, Ordering::SeqCst);
    sink.write(&[rec(json!({"a": 2}))]).await.unwrap();
    // One commit for both: each file is renamed in its own partition.
    commit(&mut sink).await.unwrap();
    Sink::<Json>::close(&mut sink).await.unwrap();
    let run = sink.run.clone();
    assert_eq!(
        tree(tmp.path()),
        [
            ("lake/2024-02-29/h=13".to_owned(), format!("p-{run}-000000.jsonl")),
            ("lake/2024-02-29/h=14".to_owned(), format!("p-{run}-000001.jsonl")),
        ]
    );
    let second = tmp.path().join(format!("lake/2024-02-29/h=14/p-{run}-000001.jsonl"));
    assert_eq!(std::fs::read_to_string(second).unwrap(), "{\"a\":2}\n");
    assert_eq!(Sink::<Json>::describe(&sink), format!("file {}/lake/{{date}}/h={{hour}}", tmp.path().display()));
}

/// Size rolling in a partitioned directory: a new file when the size limit is reached, and
/// one in each new partition; a file holding uncommitted batches when the hour turns takes
/// them until its commit, then the next file starts in the new partition.
#[tokio::test]
async fn size_rolling_rolls_by_size_and_by_partition() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NOW: AtomicU64 = AtomicU64::new(BEFORE_THE_HOUR - 10);
    fn now() -> SystemTime {
        at(NOW.load(Ordering::SeqCst))
    }
    let tmp = tempfile::tempdir().unwrap();
    // Each record is 8 bytes (`{"a":1}\n`): two per file.
    let mut sink = file(tmp.path().join("{date}/{hour}").to_str().unwrap()).prefix("r").max_file_bytes(20);
    sink.clock = now;
    for i in 0..3 {
        sink.write(&[rec(json!({"a": i}))]).await.unwrap();
        commit(&mut sink).await.unwrap();
    }
    // Written at 13:59:59, not committed yet when the hour turns: it stays in hour 13's file,
    // which is finalised at the commit.
    NOW.store(BEFORE_THE_HOUR, Ordering::SeqCst);
    sink.write(&[rec(json!({"a": 3}))]).await.unwrap();
    NOW.store(BEFORE_THE_HOUR + 1, Ordering::SeqCst);
    sink.write(&[rec(json!({"a": 4}))]).await.unwrap();
    commit(&mut sink).await.unwrap();
    for i in 5..8 {
        sink.write(&[rec(json!({"a": i}))]).await.unwrap();
        commit(&mut sink).await.unwrap();
    }
    Sink::<Json>::close(&mut sink).await.unwrap();
    let files = tree(tmp.path());
    let run = sink.run.clone();
    let name = |seq: u64| format!("r-{run}-{seq:06}.jsonl");
    assert_eq!(
        files,
        [
            ("2024-02-29/13".to_owned(), name(0)),
            ("2024-02-29/13".to_owned(), name(1)),
            ("2024-02-29/14".to_owned(), name(2)),
            ("2024-02-29/14".to_owned(), name(3)),
        ],
        "no hidden file left"
    );
    let read = |dir: &str, seq: u64| std::fs::read_to_string(tmp.path().join(dir).join(name(seq))).unwrap();
    assert_eq!(read("2024-02-29/13", 0), "{\"a\":0}\n{\"a\":1}\n");
    assert_eq!(read("2024-02-29/13", 1), "{\"a\":2}\n{\"a\":3}\n{\"a\":4}\n", "hour 13's file took the batch of its commit");
    assert_eq!(read("2024-02-29/14", 2), "{\"a\":5}\n{\"a\":6}\n");
    assert_eq!(read("2024-02-29/14", 3), "{\"a\":7}\n");
}

/// A crash leaves in-progress files in several partitions: the next open finalises each, cut
/// to its committed length, whichever hour it is now.
#[tokio::test]
async fn open_recovers_every_partition() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NOW: AtomicU64 = AtomicU64::new(BEFORE_THE_HOUR);
    fn now() -> SystemTime {
        at(NOW.load(Ordering::SeqCst))
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lake/{date}/{hour}");
    let mut crashed = file(dir.to_str().unwrap()).prefix("c").max_file_bytes(1 << 20);
    crashed.clock = now;
    crashed.write(&[rec(json!({"a": 1}))]).await.unwrap();
    commit(&mut crashed).await.unwrap();
    crashed.write(&[rec(json!({"a": 2}))]).await.unwrap(); // never committed
    NOW.store(BEFORE_THE_HOUR + 1, Ordering::SeqCst);
    crashed.write(&[rec(json!({"a": 3}))]).await.unwrap(); // still hour 13's file (uncommitted)
    drop(crashed);
    // Another file of the same prefix in a directory that is not a partition: left alone.
    std::fs::create_dir_all(tmp.path().join("lake/not-a-date/13")).unwrap();
    std::fs::write(tmp.path().join("lake/not-a-date/13/.c-x.jsonl.5.inprogress"), b"{}\n").unwrap();
    let hidden = tree(tmp.path()).into_iter().filter(|(d, _)| d == "lake/2024-02-29/13").count();
    assert_eq!(hidden, 1);

    NOW.store(BEFORE_THE_HOUR + 7200, Ordering::SeqCst);
    let mut next = file(dir.to_str().unwrap()).prefix("c").max_file_bytes(1 << 20);
    next.clock = now;
    open(&mut next).await;
    let files = tree(tmp.path());
    let recovered: Vec<&(String, String)> = files.iter().filter(|(d, _)| d == "lake/2024-02-29/13").collect();
    assert_eq!(recovered.len(), 1, "{files:?}");
    assert!(!recovered[0].1.starts_with('.'), "finalised: {files:?}");
    let text = std::fs::read_to_string(tmp.path().join(&recovered[0].0).join(&recovered[0].1)).unwrap();
    assert_eq!(text, "{\"a\":1}\n", "cut to its committed length");
    assert!(files.contains(&("lake/not-a-date/13".to_owned(), ".c-x.jsonl.5.inprogress".to_owned())));
}

#[tokio::test]
async fn an_unknown_placeholder_is_a_permanent_error_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = file(tmp.path().join("lake/{day}").to_str().unwrap());
    let e = Sink::<Json>::open(&mut sink, SinkContext::default()).await.unwrap_err();
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("unknown placeholder `{day}`"), "{e}");
    assert!(!tmp.path().join("lake").exists());
}
