//! The `dead_letters` source end to end: entries of a dead-letter file read back through
//! `pipeline!`, the bad one dead-lettered again into the run's (other) queue, the file emptied
//! of what was delivered; a failing sink leaves every entry in place; the run's own queue is
//! refused at start-up.

use bytes::Bytes;
use etl::batch::FailureKind;
use etl::dead_letter::{DeadLetter, DeadLetters, FileDeadLetters};
use etl::prelude::*;
use etl::record::{Meta, Position};
use etl::sink::Written;
use etl::ConnectorError;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    amount_cents: i64,
}

/// Now, to the millisecond (what the file keeps).
fn now_ms() -> SystemTime {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn entry(n: usize, payload: &[u8], source: &str, position: Position) -> DeadLetter {
    let then = now_ms() - Duration::from_secs(3600);
    DeadLetter {
        id: format!("entry-{n}"),
        payload: Bytes::copy_from_slice(payload),
        error: "stage `enrich` failed after 4 attempts: 503".into(),
        kind: FailureKind::Transform,
        source: source.into(),
        position,
        step: None,
        headers: vec![("trace".into(), Bytes::from(format!("t{n}")))],
        attempts: 4,
        first_failed: then,
        last_failed: then,
    }
}

/// Four good entries (from two sources) and, third, one whose payload is not an `Order`.
fn entries() -> Vec<DeadLetter> {
    vec![
        entry(0, br#"{"id":1,"amount_cents":100}"#, "file orders.jsonl", Position::Line(3)),
        entry(1, br#"{"id":2,"amount_cents":200}"#, "file orders.jsonl", Position::Line(8)),
        entry(2, b"\xff not an order", "kafka orders", Position::Offset { partition: 2, offset: 41 }),
        entry(3, br#"{"id":3,"amount_cents":300}"#, "kafka orders", Position::Offset { partition: 0, offset: 7 }),
        entry(4, br#"{"id":4,"amount_cents":400}"#, "file orders.jsonl", Position::Line(13)),
    ]
}

fn orders(ids: &[i64]) -> Vec<Order> {
    ids.iter().map(|&id| Order { id, amount_cents: id * 100 }).collect()
}

/// A queue at `path` holding [`entries`]; also returns them as written.
async fn queue_with_entries(path: &Path) -> (FileDeadLetters, Vec<DeadLetter>) {
    let queue = FileDeadLetters::new(path);
    let written = entries();
    queue.write(written.clone()).await.unwrap();
    (queue, written)
}

#[tokio::test]
async fn entries_are_read_back_and_removed_and_the_bad_one_moves_to_the_other_queue() -> etl::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let source_path = dir.path().join("dead-letters/orders.jsonl");
    let (source_queue, _) = queue_with_entries(&source_path).await;
    let other = FileDeadLetters::new(dir.path().join("dead-letters/replay.jsonl"));
    let path = source_path.to_str().unwrap().to_owned();

    let out = etl::sink::collect::<Order>();
    let report = pipeline! { dead_letters(path = path, batch_size = 2) as Order | collect(out) }
        .dead_letters(FileDeadLetters::new(dir.path().join("dead-letters/replay.jsonl")))
        .handle_signals(false)
        .run()
        .await?;

    assert_eq!(out.records(), orders(&[1, 2, 3, 4]));
    assert_eq!((report.records_in, report.records_out, report.dead_lettered), (5, 4, 1));
    // The source file holds nothing any more: every batch was done.
    assert_eq!(source_queue.list().await.unwrap(), []);
    // Only the bad entry was dead-lettered again, with exactly its bytes, its first source and
    // position, and its headers.
    let again = other.list().await.unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    let e = &again[0];
    assert_eq!(&e.payload[..], b"\xff not an order");
    assert_eq!(e.kind, FailureKind::Decode);
    assert_eq!(e.source, "kafka orders");
    assert_eq!(e.position, Position::Offset { partition: 2, offset: 41 });
    assert_eq!(e.headers, [("trace".to_owned(), Bytes::from_static(b"t2"))]);
    assert_eq!(e.attempts, 5);
    assert!(e.error.contains("entry-2"), "{}", e.error);
    assert_ne!(e.id, "entry-2", "a new entry in the other queue");
    Ok(())
}

/// A sink that keeps each record's metadata.
#[derive(Clone, Default)]
struct MetaSink(Arc<Mutex<Vec<(i64, Meta)>>>);

impl Sink<Order> for MetaSink {
    fn describe(&self) -> String {
        "meta".into()
    }
    async fn write(&mut self, records: &[Order]) -> Result<Written, ConnectorError> {
        self.write_batch(records, &[]).await
    }
    async fn write_batch(&mut self, records: &[Order], meta: &[Meta]) -> Result<Written, ConnectorError> {
        self.0.lock().unwrap().extend(records.iter().map(|o| o.id).zip(meta.iter().cloned()));
        Ok(Written::all())
    }
}

#[tokio::test]
async fn each_record_carries_its_entry_s_original_source_position_headers_and_bytes() -> etl::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dlq.jsonl");
    queue_with_entries(&path).await;
    let sink = MetaSink::default();
    Pipeline::from(etl::source::dead_letters::<Order>(path.to_str().unwrap()))
        .to(sink.clone())
        .dead_letters(etl::dead_letter::MemoryDeadLetters::new())
        .handle_signals(false)
        .run()
        .await?;
    let seen = sink.0.lock().unwrap().clone();
    type Seen = (i64, Position, Option<String>, Vec<(String, Bytes)>);
    let summary: Vec<Seen> = seen
        .iter()
        .map(|(id, m)| {
            let extra = m.extra.as_deref().cloned().unwrap_or_default();
            (*id, m.position.clone(), extra.original_source, extra.headers)
        })
        .collect();
    let t = |s: &'static str| vec![("trace".to_owned(), Bytes::from_static(s.as_bytes()))];
    assert_eq!(
        summary,
        [
            (1, Position::Line(3), Some("file orders.jsonl".to_owned()), t("t0")),
            (2, Position::Line(8), Some("file orders.jsonl".to_owned()), t("t1")),
            (3, Position::Offset { partition: 0, offset: 7 }, Some("kafka orders".to_owned()), t("t3")),
            (4, Position::Line(13), Some("file orders.jsonl".to_owned()), t("t4")),
        ]
    );
    assert_eq!(seen[0].1.raw.as_deref(), Some(&br#"{"id":1,"amount_cents":100}"#[..]));
    Ok(())
}

/// A sink that refuses every batch for good.
struct Refuses;

impl Sink<Order> for Refuses {
    fn describe(&self) -> String {
        "refuses".into()
    }
    async fn write(&mut self, _: &[Order]) -> Result<Written, ConnectorError> {
        Err(ConnectorError::permanent("refuses", "table is read-only"))
    }
}

#[tokio::test]
async fn a_failing_sink_leaves_every_entry_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dlq.jsonl");
    let (queue, written) = queue_with_entries(&path).await;
    let before = std::fs::read(&path).unwrap();
    let result = Pipeline::from(etl::source::dead_letters::<Order>(path.to_str().unwrap()).batch_size(2))
        .to(Refuses)
        .dead_letters(FileDeadLetters::new(dir.path().join("other.jsonl")))
        .handle_signals(false)
        .run()
        .await;
    let e = result.expect_err("the sink refuses");
    assert!(e.to_string().contains("table is read-only"), "{e}");
    assert_eq!(queue.list().await.unwrap(), written, "nothing removed");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file is untouched");

    // The next run, with a working sink, delivers them all and empties the file.
    let out = etl::sink::collect::<Order>();
    let path = path.to_str().unwrap().to_owned();
    pipeline! { dead_letters(path = path) as Order | collect(out) }
        .dead_letters(FileDeadLetters::new(dir.path().join("other.jsonl")))
        .handle_signals(false)
        .run()
        .await
        .unwrap();
    assert_eq!(out.records(), orders(&[1, 2, 3, 4]));
    assert_eq!(queue.list().await.unwrap(), []);
}

#[tokio::test]
async fn the_run_s_own_queue_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dlq.jsonl");
    let (queue, written) = queue_with_entries(&path).await;
    let out = etl::sink::collect::<Order>();
    let source = path.to_str().unwrap().to_owned();
    let e = pipeline! { dead_letters(path = source) as Order | collect(out) }
        .dead_letters(FileDeadLetters::new(&path))
        .handle_signals(false)
        .run()
        .await
        .expect_err("refused");
    assert!(matches!(&e, etl::Error::Start { error, .. } if matches!(**error, etl::Error::Config(_))), "{e:?}");
    assert!(e.to_string().contains("also where this run dead-letters records"), "{e}");
    assert!(out.is_empty());
    assert_eq!(queue.list().await.unwrap(), written);

    // The run's default queue, `dead-letters/<name>.jsonl`, is refused too (nothing is
    // created: the check comes before anything is read or written).
    let name = format!("refuse-{}", std::process::id());
    let default = format!("dead-letters/{name}.jsonl");
    let e = Pipeline::from(etl::source::dead_letters::<Order>(default.as_str()))
        .to(etl::sink::blackhole())
        .name(name)
        .handle_signals(false)
        .run()
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("also where this run dead-letters records"), "{e}");
    assert!(!Path::new(&default).exists());
}
