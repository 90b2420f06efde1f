//! Behaviour of the dead-letter queues: the same scenarios run against the memory and the file
//! queue, then file-specific ones (durability, corrupt and torn files, atomic rewrites).

use bytes::Bytes;
use etl::batch::FailureKind;
use etl::dead_letter::{DeadLetter, DeadLetters, DynRepublish, FileDeadLetters, MemoryDeadLetters, Republish};
use etl::record::Position;
use etl::ConnectorError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Now, to the millisecond (what the file keeps), so that entries compare equal after a round trip.
fn now_ms() -> SystemTime {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn entry(source: &str, payload: &[u8]) -> DeadLetter {
    static N: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    DeadLetter {
        id: format!("test-{}", N.fetch_add(1, Ordering::Relaxed)),
        payload: Bytes::copy_from_slice(payload),
        error: "expected value".into(),
        kind: FailureKind::Decode,
        source: source.into(),
        position: Position::Line(1),
        step: None,
        headers: Vec::new(),
        attempts: 1,
        first_failed: now,
        last_failed: now,
    }
}

fn ids(entries: &[DeadLetter]) -> Vec<String> {
    entries.iter().map(|e| e.id.clone()).collect()
}

/// Records what it re-published; fails on the call numbered `fail_at` (0-based), if any.
#[derive(Default)]
struct Recorder {
    seen: Vec<String>,
    fail_at: Option<usize>,
    calls: usize,
}

impl Republish for Recorder {
    async fn republish(&mut self, entry: &DeadLetter) -> Result<(), ConnectorError> {
        let n = self.calls;
        self.calls += 1;
        if Some(n) == self.fail_at {
            return Err(ConnectorError::retryable("test target", "connection refused"));
        }
        self.seen.push(entry.id.clone());
        Ok(())
    }
}

/// A target that must not be called.
struct Never;

impl Republish for Never {
    async fn republish(&mut self, _: &DeadLetter) -> Result<(), ConnectorError> {
        panic!("the target must not be called")
    }
}

/// A target that writes to the queue it is replaying from: a fresh entry, and the replayed one
/// back again (same id), yielding in between so that other tasks interleave.
struct WritesBack<'a> {
    queue: &'a dyn DeadLetters,
    written: Vec<String>,
}

impl Republish for WritesBack<'_> {
    async fn republish(&mut self, e: &DeadLetter) -> Result<(), ConnectorError> {
        let fresh = entry("written during replay", b"new");
        self.written.push(fresh.id.clone());
        self.queue.write(vec![fresh]).await?;
        tokio::task::yield_now().await;
        self.queue.write(vec![e.clone()]).await
    }
}

/// Runs a generic scenario against both queues.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name(&etl::dead_letter::MemoryDeadLetters::new()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn file() {
                let dir = tempfile::tempdir().unwrap();
                super::$name(&etl::dead_letter::FileDeadLetters::new(dir.path().join("nested/dir/q.jsonl"))).await;
            }
        }
    )*};
}

both!(
    binary_payloads_round_trip,
    headers_positions_and_fields_round_trip,
    empty_queue_replays_nothing,
    list_is_oldest_first_across_writes,
    replay_removes_exactly_what_it_replayed,
    replay_stops_at_first_error,
    replay_of_a_large_queue_is_finite_and_fast,
    writes_during_replay_are_kept,
    concurrent_writer_during_replay_loses_nothing,
    purge_removes_old_entries,
    replay_takes_a_boxed_dyn_target_borrowing_its_state,
);

// ---------------------------------------------------------------------------------------------
// Scenarios for both queues

async fn binary_payloads_round_trip(q: &dyn DeadLetters) {
    let all: Vec<u8> = (0..=255u8).collect();
    let entries = vec![entry("bin", &all), entry("bin", b""), entry("bin", b"\xff\x00"), entry("bin", b"\n\r\"\\")];
    q.write(entries.clone()).await.unwrap();
    assert_eq!(q.list().await.unwrap(), entries);
}

async fn headers_positions_and_fields_round_trip(q: &dyn DeadLetters) {
    let positions = vec![
        Position::None,
        Position::Index(0),
        Position::Line(u64::MAX),
        Position::Offset { partition: -1, offset: i64::MIN },
        Position::Sequence(42),
        Position::Id("msg-\u{e9}\n\"x\"".into()),
    ];
    let kinds = [FailureKind::Decode, FailureKind::Transform, FailureKind::Sink];
    let mut entries = Vec::new();
    for (i, position) in positions.into_iter().enumerate() {
        let mut e = entry("kafka orders", b"{}");
        e.position = position;
        e.kind = kinds[i % 3];
        e.attempts = i as u32 * 1000;
        e.error = format!("error {i}: \u{1F4A5} \"quoted\"\nsecond line");
        e.headers = vec![
            ("trace-id".into(), Bytes::from_static(b"abc")),
            ("bin".into(), Bytes::from_static(b"\x00\xff\x80")),
            ("empty".into(), Bytes::new()),
        ];
        e.first_failed = UNIX_EPOCH + Duration::from_millis(1_000 * i as u64);
        e.last_failed = UNIX_EPOCH + Duration::from_millis(1_718_000_000_123 + i as u64);
        entries.push(e);
    }
    q.write(entries.clone()).await.unwrap();
    assert_eq!(q.list().await.unwrap(), entries);
}

async fn empty_queue_replays_nothing(q: &dyn DeadLetters) {
    assert!(q.list().await.unwrap().is_empty());
    assert_eq!(q.replay(&|_| true, &mut Never).await.unwrap(), 0);
    assert_eq!(q.purge(Duration::ZERO).await.unwrap(), 0);
    q.write(Vec::new()).await.unwrap();
    assert!(q.list().await.unwrap().is_empty());
    // Emptied by a replay: still nothing to replay.
    q.write(vec![entry("a", b"1")]).await.unwrap();
    assert_eq!(q.replay(&|_| true, &mut Recorder::default()).await.unwrap(), 1);
    assert_eq!(q.replay(&|_| true, &mut Never).await.unwrap(), 0);
    assert!(q.list().await.unwrap().is_empty());
}

async fn list_is_oldest_first_across_writes(q: &dyn DeadLetters) {
    let first: Vec<_> = (0..3).map(|i| entry("a", &[i])).collect();
    let second: Vec<_> = (3..5).map(|i| entry("a", &[i])).collect();
    q.write(first.clone()).await.unwrap();
    q.write(second.clone()).await.unwrap();
    assert_eq!(q.list().await.unwrap(), [first, second].concat());
}

async fn replay_removes_exactly_what_it_replayed(q: &dyn DeadLetters) {
    let entries: Vec<_> = (0..10u8).map(|i| entry(if i % 2 == 0 { "even" } else { "odd" }, &[i])).collect();
    q.write(entries.clone()).await.unwrap();
    let mut target = Recorder::default();
    assert_eq!(q.replay(&|e| e.source == "even", &mut target).await.unwrap(), 5);
    let even: Vec<_> = entries.iter().filter(|e| e.source == "even").cloned().collect();
    let odd: Vec<_> = entries.iter().filter(|e| e.source == "odd").cloned().collect();
    assert_eq!(target.seen, ids(&even), "replayed oldest first");
    assert_eq!(q.list().await.unwrap(), odd, "the non-matching ones stay, in order");
    // Idempotent: nothing left to replay for that filter.
    assert_eq!(q.replay(&|e| e.source == "even", &mut Never).await.unwrap(), 0);
    assert_eq!(q.list().await.unwrap(), odd);
}

async fn replay_stops_at_first_error(q: &dyn DeadLetters) {
    let entries: Vec<_> = (0..6u8).map(|i| entry("s", &[i])).collect();
    q.write(entries.clone()).await.unwrap();
    let mut target = Recorder { fail_at: Some(2), ..Recorder::default() };
    let err = q.replay(&|_| true, &mut target).await.unwrap_err();
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert_eq!(target.calls, 3, "no call after the failure");
    assert_eq!(target.seen, ids(&entries[..2]));
    assert_eq!(q.list().await.unwrap(), entries[2..].to_vec(), "the failed entry and the rest stay");
    // Once the target works again, the rest goes.
    assert_eq!(q.replay(&|_| true, &mut Recorder::default()).await.unwrap(), 4);
    assert!(q.list().await.unwrap().is_empty());
}

async fn replay_of_a_large_queue_is_finite_and_fast(q: &dyn DeadLetters) {
    let entries: Vec<_> = (0..10_000u32).map(|i| entry("bulk", &i.to_le_bytes())).collect();
    q.write(entries.clone()).await.unwrap();
    let mut target = Recorder::default();
    // A deadline only a hang or a quadratic replay reaches (a rewrite of the file per entry
    // is 10 000 rewrites and fsyncs); it takes a fraction of a second.
    let replayed = tokio::time::timeout(Duration::from_secs(60), q.replay(&|_| true, &mut target)).await.expect("replay ended");
    assert_eq!(replayed.unwrap(), 10_000);
    assert_eq!(target.seen, ids(&entries));
    assert!(q.list().await.unwrap().is_empty());
}

async fn writes_during_replay_are_kept(q: &dyn DeadLetters) {
    let entries: Vec<_> = (0..20u8).map(|i| entry("s", &[i])).collect();
    q.write(entries.clone()).await.unwrap();
    let mut target = WritesBack { queue: q, written: Vec::new() };
    // Finite although every re-publication writes two entries that match the filter.
    assert_eq!(q.replay(&|_| true, &mut target).await.unwrap(), 20);
    let left = q.list().await.unwrap();
    assert_eq!(left.len(), 40, "the fresh entries and the written-back ones stay");
    let fresh: Vec<_> = left.iter().filter(|e| e.source == "written during replay").map(|e| e.id.clone()).collect();
    assert_eq!(fresh, target.written);
    let back: Vec<_> = left.iter().filter(|e| e.source == "s").cloned().collect();
    assert_eq!(back, entries, "a replayed entry written back with the same id is kept once");
}

async fn concurrent_writer_during_replay_loses_nothing(q: &dyn DeadLetters) {
    let entries: Vec<_> = (0..200u8).map(|i| entry("old", &[i])).collect();
    q.write(entries).await.unwrap();
    struct Slow;
    impl Republish for Slow {
        async fn republish(&mut self, _: &DeadLetter) -> Result<(), ConnectorError> {
            tokio::task::yield_now().await;
            Ok(())
        }
    }
    let writer = async {
        let mut written = Vec::new();
        for i in 0..100u8 {
            let batch = vec![entry("new", &[i]), entry("new", &[i, i])];
            written.extend(batch.clone());
            q.write(batch).await.unwrap();
            tokio::task::yield_now().await;
        }
        written
    };
    let mut target = Slow;
    let (replayed, written) = tokio::join!(q.replay(&|e| e.source == "old", &mut target), writer);
    assert_eq!(replayed.unwrap(), 200);
    assert_eq!(q.list().await.unwrap(), written);
}

async fn purge_removes_old_entries(q: &dyn DeadLetters) {
    let day = Duration::from_secs(86_400);
    let mut old = entry("s", b"old");
    old.first_failed = now_ms() - 10 * day;
    old.last_failed = now_ms() - 3 * day;
    let mut retried_recently = entry("s", b"recent last failure");
    retried_recently.first_failed = now_ms() - 10 * day;
    let fresh = entry("s", b"fresh");
    let mut ancient = entry("s", b"ancient");
    ancient.first_failed = UNIX_EPOCH;
    ancient.last_failed = UNIX_EPOCH;
    q.write(vec![old, retried_recently.clone(), fresh.clone(), ancient]).await.unwrap();
    assert_eq!(q.purge(Duration::from_secs(1_000_000_000_000)).await.unwrap(), 0, "nothing is that old");
    assert_eq!(q.purge(day).await.unwrap(), 2);
    assert_eq!(q.list().await.unwrap(), vec![retried_recently, fresh]);
    assert_eq!(q.purge(day).await.unwrap(), 0);
}

/// `Republish` is written with a plain `async fn` (no `async-trait`); a target chosen at run
/// time travels as `Box<dyn DynRepublish>`, and one that borrows its state works too.
async fn replay_takes_a_boxed_dyn_target_borrowing_its_state(q: &dyn DeadLetters) {
    let entries: Vec<_> = (0..4u8).map(|i| entry("s", &[i])).collect();
    q.write(entries.clone()).await.unwrap();
    struct Into<'a>(&'a mut Vec<Bytes>);
    impl Republish for Into<'_> {
        async fn republish(&mut self, e: &DeadLetter) -> Result<(), ConnectorError> {
            tokio::task::yield_now().await; // a real await point: the future must be `Send`
            self.0.push(e.payload.clone());
            Ok(())
        }
    }
    let mut sent = Vec::new();
    {
        let mut target: Box<dyn DynRepublish + '_> = Box::new(Into(&mut sent));
        assert_eq!(q.replay(&|e| e.payload[0] % 2 == 0, &mut *target).await.unwrap(), 2);
    }
    assert_eq!(sent, [Bytes::from_static(&[0]), Bytes::from_static(&[2])]);
    assert_eq!(q.list().await.unwrap(), [entries[1].clone(), entries[3].clone()]);
    // Failing: the error comes back and nothing is removed.
    let mut never: Box<dyn DynRepublish> = Box::new(Recorder { fail_at: Some(0), ..Recorder::default() });
    assert!(q.replay(&|_| true, &mut *never).await.unwrap_err().is_retryable());
    assert_eq!(q.list().await.unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Memory queue only

#[tokio::test]
async fn memory_clones_share_storage() {
    let q = MemoryDeadLetters::new();
    let other = q.clone();
    other.write(vec![entry("a", b"1")]).await.unwrap();
    assert_eq!(q.len(), 1);
    assert!(!q.is_empty());
    assert_eq!(q.describe(), "memory");
}

// ---------------------------------------------------------------------------------------------
// File queue only

#[tokio::test]
async fn file_is_created_only_on_first_write_and_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/q.jsonl");
    let q = FileDeadLetters::new(&path);
    assert_eq!(q.describe(), format!("file {}", path.display()));
    assert!(q.list().await.unwrap().is_empty());
    assert_eq!(q.replay(&|_| true, &mut Never).await.unwrap(), 0);
    assert_eq!(q.purge(Duration::ZERO).await.unwrap(), 0);
    q.write(Vec::new()).await.unwrap();
    assert!(!path.exists() && !dir.path().join("a").exists(), "nothing created before the first entry");

    let entries = vec![entry("s", b"\xff\x00"), entry("s", b"")];
    q.write(entries.clone()).await.unwrap();
    assert!(path.exists());
    drop(q);
    assert_eq!(FileDeadLetters::new(&path).list().await.unwrap(), entries);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.ends_with('\n'));
}

#[tokio::test]
async fn file_line_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.jsonl");
    let mut e = entry("file in.jsonl", b"\xff\x00");
    e.headers = vec![("h".into(), Bytes::from_static(b"\x01\x02"))];
    e.last_failed = UNIX_EPOCH + Duration::from_millis(1_718_000_000_123);
    FileDeadLetters::new(&path).write(vec![e.clone()]).await.unwrap();
    let line: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim_end()).unwrap();
    assert_eq!(line["id"], e.id.as_str());
    assert_eq!(line["payload"], "/wA=");
    assert_eq!(line["kind"], "decode");
    assert_eq!(line["source"], "file in.jsonl");
    assert_eq!(line["position"], serde_json::json!({"line": 1}));
    assert_eq!(line["headers"], serde_json::json!([{"name": "h", "value": "AQI="}]));
    assert_eq!(line["attempts"], 1);
    assert_eq!(line["last_failed"], 1_718_000_000_123i64);
}

#[tokio::test]
async fn file_times_round_trip_to_the_millisecond() {
    let dir = tempfile::tempdir().unwrap();
    let q = FileDeadLetters::new(dir.path().join("q.jsonl"));
    let mut e = entry("s", b"x");
    e.first_failed = UNIX_EPOCH + Duration::from_nanos(1_718_000_000_123_999_999);
    q.write(vec![e]).await.unwrap();
    let back = q.list().await.unwrap().remove(0);
    assert_eq!(back.first_failed, UNIX_EPOCH + Duration::from_millis(1_718_000_000_123));
}

#[tokio::test]
async fn file_corrupt_middle_line_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.jsonl");
    let q = FileDeadLetters::new(&path);
    q.write(vec![entry("s", b"1"), entry("s", b"2")]).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(1, "{\"id\": \"half");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let err = q.list().await.unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert!(!err.is_retryable());
    // Replay and purge refuse too, and leave the file as it was.
    assert!(q.replay(&|_| true, &mut Never).await.is_err());
    assert!(q.purge(Duration::ZERO).await.is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), lines.join("\n") + "\n");
}

#[tokio::test]
async fn file_bad_base64_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.jsonl");
    let q = FileDeadLetters::new(&path);
    q.write(vec![entry("s", b"1")]).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let bad = text.replace("\"payload\":\"MQ==\"", "\"payload\":\"%%%\"");
    assert_ne!(bad, text);
    std::fs::write(&path, bad).unwrap();
    let err = q.list().await.unwrap_err();
    assert!(err.to_string().contains("line 1") && err.to_string().contains("payload"), "{err}");
}

#[tokio::test]
async fn file_unreadable_is_an_error_not_an_empty_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.jsonl");
    std::fs::create_dir(&path).unwrap(); // exists, but cannot be read as a file
    let q = FileDeadLetters::new(&path);
    let err = q.list().await.unwrap_err();
    assert!(err.is_retryable());
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert!(q.replay(&|_| true, &mut Never).await.is_err());
    assert!(q.write(vec![entry("s", b"1")]).await.is_err());
}

#[tokio::test]
async fn file_torn_last_line_is_ignored_then_repaired_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.jsonl");
    let q = FileDeadLetters::new(&path);
    let first = vec![entry("s", b"1"), entry("s", b"2")];
    q.write(first.clone()).await.unwrap();
    // A crash in the middle of appending a third entry.
    let torn = {
        let dir2 = tempfile::tempdir().unwrap();
        let other = FileDeadLetters::new(dir2.path().join("x.jsonl"));
        other.write(vec![entry("s", b"3")]).await.unwrap();
        let line = std::fs::read(dir2.path().join("x.jsonl")).unwrap();
        line[..line.len() / 2].to_vec()
    };
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&torn);
    std::fs::write(&path, &bytes).unwrap();

    assert_eq!(q.list().await.unwrap(), first, "the torn line is ignored");
    let next = entry("s", b"4");
    q.write(vec![next.clone()]).await.unwrap();
    assert_eq!(q.list().await.unwrap(), [first, vec![next]].concat());
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3, "the torn bytes were cut off: {text}");
}

#[tokio::test]
async fn file_complete_last_line_without_newline_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.jsonl");
    let q = FileDeadLetters::new(&path);
    let first = entry("s", b"1");
    q.write(vec![first.clone()]).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.trim_end()).unwrap(); // e.g. edited by hand
    assert_eq!(q.list().await.unwrap(), vec![first.clone()]);
    let second = entry("s", b"2");
    q.write(vec![second.clone()]).await.unwrap();
    assert_eq!(q.list().await.unwrap(), vec![first, second]);
}

#[tokio::test]
async fn file_rewrite_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.jsonl");
    let q = FileDeadLetters::new(&path);
    q.write(vec![entry("a", b"1"), entry("b", b"2")]).await.unwrap();
    assert_eq!(q.replay(&|e| e.source == "a", &mut Recorder::default()).await.unwrap(), 1);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("q.jsonl")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_queues_on_the_same_path_do_not_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.jsonl");
    let (a, b) = (FileDeadLetters::new(&path), FileDeadLetters::new(dir.path().join(".").join("q.jsonl")));
    let big = vec![0xabu8; 256 * 1024];
    async fn write_many(q: &FileDeadLetters, big: &[u8]) {
        for _ in 0..10 {
            q.write(vec![entry("s", big), entry("s", b"small")]).await.unwrap();
        }
    }
    tokio::join!(write_many(&a, &big), write_many(&b, &big));
    let all = a.list().await.unwrap();
    assert_eq!(all.len(), 40);
    assert!(all.iter().all(|e| e.payload.len() == big.len() || &e.payload[..] == b"small"));
}
