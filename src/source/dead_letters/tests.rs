use super::decode::decode;
use super::*;
use crate::ack::Status;
use crate::batch::{BatchOptions, FailureKind, Incoming};
use crate::dead_letter::{DeadLetter, MemoryDeadLetters};
use crate::record::Position;
use crate::Json;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: i64,
    amount_cents: i64,
}

impl crate::record::Record for Order {
    fn schema() -> &'static crate::record::Schema {
        use crate::record::{Field, Schema};
        static S: Schema = Schema {
            name: "Order",
            fields: &[
                Field { name: "id", rust_name: "id", ty: "i64" },
                Field { name: "amount_cents", rust_name: "amount_cents", ty: "i64" },
            ],
        };
        &S
    }
}

fn entry(id: &str, payload: &[u8], position: Position) -> DeadLetter {
    let now = SystemTime::now();
    DeadLetter {
        id: id.to_owned(),
        payload: Bytes::copy_from_slice(payload),
        error: "stage `enrich` failed: 503".into(),
        kind: FailureKind::Transform,
        source: "file orders.jsonl".into(),
        position,
        step: None,
        headers: vec![("trace".into(), Bytes::from_static(b"\x01\x02"))],
        attempts: 4,
        first_failed: now,
        last_failed: now,
    }
}

#[test]
fn an_entry_decodes_with_its_original_source_position_headers_and_bytes() {
    let payload = br#"{"id":7,"amount_cents":700}"#;
    let incoming: Incoming<Order, String> = decode(entry("e-1", payload, Position::Line(12)));
    assert_eq!(incoming.token, "e-1");
    assert_eq!(incoming.size, payload.len());
    let (order, meta) = incoming.item.unwrap();
    assert_eq!(order, Order { id: 7, amount_cents: 700 });
    assert_eq!(meta.position, Position::Line(12));
    assert_eq!(meta.raw.as_deref(), Some(&payload[..]));
    let extra = meta.extra.unwrap();
    assert_eq!(extra.original_source.as_deref(), Some("file orders.jsonl"));
    assert_eq!(extra.headers, [("trace".to_owned(), Bytes::from_static(b"\x01\x02"))]);
}

#[test]
fn an_entry_that_does_not_decode_is_a_failure_with_exactly_its_bytes() {
    let payload = b"\xff{not json";
    let incoming: Incoming<Order, String> = decode(entry("e-2", payload, Position::Offset { partition: 1, offset: 9 }));
    assert_eq!(incoming.token, "e-2");
    let failure = incoming.item.unwrap_err();
    assert_eq!(&failure.payload[..], payload);
    assert_eq!(failure.kind, FailureKind::Decode);
    assert_eq!(failure.attempts, 5, "one more than when it was dead-lettered");
    assert!(failure.error.starts_with("dead letter e-2 (from file orders.jsonl, partition 1 offset 9): "), "{}", failure.error);
    assert_eq!(failure.meta.position, Position::Offset { partition: 1, offset: 9 });
    // Written again, the entry keeps the source that first failed it.
    let again = DeadLetter::from_failure(failure, "dead_letters dlq.jsonl");
    assert_eq!((again.source.as_str(), &again.payload[..]), ("file orders.jsonl", &payload[..]));
    // A valid JSON value of the wrong shape fails too.
    let incoming: Incoming<Order, String> = decode(entry("e-3", br#"{"id":"x"}"#, Position::None));
    assert!(incoming.item.is_err());
}

#[test]
fn the_run_queue_is_refused_whatever_the_spelling_of_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dlq.jsonl");
    let same = dir.path().join("sub/../dlq.jsonl");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let run = FileDeadLetters::new(&file);
    // Not created yet, then created: refused either way.
    let e = refuse_the_run_queue(&same, &run).unwrap_err().to_string();
    assert!(e.contains("also where this run dead-letters records") && e.contains(".dead_letters("), "{e}");
    std::fs::write(&file, b"").unwrap();
    assert!(refuse_the_run_queue(&same, &run).is_err());
    assert!(refuse_the_run_queue(&dir.path().join("other.jsonl"), &run).is_ok());
    // A queue that is not a file cannot be the same file.
    assert!(refuse_the_run_queue(&file, &MemoryDeadLetters::new()).is_ok());
}

#[tokio::test]
async fn open_refuses_the_run_queue_and_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dlq.jsonl");
    let queue = FileDeadLetters::new(&path);
    queue.write(vec![entry("e-1", b"{}", Position::None)]).await.unwrap();
    let ctx = SourceContext::new(CancellationToken::new()).with_dead_letters(Arc::new(FileDeadLetters::new(&path)));
    let e = dead_letters::<Json>(path.to_str().unwrap()).open(ctx).await.err().expect("refused");
    assert!(matches!(e, Error::Config(ConfigError::Invalid { option: "path", .. })), "{e}");
    assert_eq!(queue.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn open_fails_on_a_corrupt_file_rather_than_reading_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dlq.jsonl");
    std::fs::write(&path, b"not an entry\n{}\n").unwrap();
    let e = dead_letters::<Json>(path.to_str().unwrap()).open(SourceContext::new(CancellationToken::new())).await.err().expect("an error");
    assert!(e.to_string().contains("line 1"), "{e}");
}

/// Delivered and rejected batches remove exactly their entries; an errored one leaves its
/// entries; entries written meanwhile stay; the stream ends only once the file is updated.
#[tokio::test]
async fn acknowledgements_remove_exactly_the_entries_of_done_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dlq.jsonl");
    let queue = FileDeadLetters::new(&path);
    let entries: Vec<DeadLetter> =
        (0..6).map(|i| entry(&format!("e-{i}"), format!(r#"{{"id":{i},"amount_cents":1}}"#).as_bytes(), Position::Line(i))).collect();
    queue.write(entries.clone()).await.unwrap();
    let source = dead_letters::<Order>(path.to_str().unwrap()).batch_size(2);
    let mut stream = source.open(SourceContext::new(CancellationToken::new())).await.unwrap();
    // Written after the source opened: not read, not removed.
    let late = entry("late", b"{}", Position::None);
    queue.write(vec![late.clone()]).await.unwrap();
    let mut statuses = [Status::Delivered, Status::Errored, Status::Rejected].into_iter();
    let mut read = Vec::new();
    while let Some(batch) = stream.next().await {
        let parts = batch.unwrap().into_parts();
        read.extend(parts.records.iter().map(|o| o.id));
        parts.ack.resolve(statuses.next().unwrap());
    }
    assert_eq!(read, [0, 1, 2, 3, 4, 5]);
    let left: Vec<String> = queue.list().await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(left, ["e-2", "e-3", "late"]);
}

#[tokio::test]
async fn a_missing_file_is_an_empty_queue() {
    let dir = tempfile::tempdir().unwrap();
    let source = dead_letters::<Json>(dir.path().join("none.jsonl").to_str().unwrap());
    let stream = source.open(SourceContext::new(CancellationToken::new())).await.unwrap();
    assert_eq!(stream.count().await, 0);
    assert!(!dir.path().join("none.jsonl").exists());
}
