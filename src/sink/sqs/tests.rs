use super::encode::{bodies, chunks};
use super::*;
use proptest::prelude::*;

#[tokio::test]
async fn a_fifo_queue_is_refused_at_open() {
    let mut sink = sqs("http://127.0.0.1:9/123456789012/orders.fifo");
    let e = Sink::<serde_json::Value>::open(&mut sink, SinkContext::default()).await.expect_err("refused");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("FIFO"), "{e}");
}

#[test]
fn bodies_reject_what_is_too_large() {
    let records = vec![serde_json::json!({"a": 1}), serde_json::json!({"a": "x".repeat(100)})];
    let (ok, rejected) = bodies(&records, 50);
    assert_eq!(ok, vec![(0, "{\"a\":1}".to_string())]);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].0, 1);
    assert!(rejected[0].1.contains("exceeds the queue's maximum message size of 50 bytes"), "{}", rejected[0].1);
}

#[test]
fn chunks_respect_entries_and_bytes() {
    assert_eq!(chunks(&[1; 25], 10, 1000), vec![0..10, 10..20, 20..25]);
    assert_eq!(chunks(&[400, 400, 400], 10, 1000), vec![0..2, 2..3]);
    assert_eq!(chunks(&[2000, 1, 1], 10, 1000), vec![0..1, 1..3]);
    assert!(chunks(&[], 10, 1000).is_empty());
}

proptest! {
    #[test]
    fn chunks_cover_everything_in_order(sizes in prop::collection::vec(1usize..500, 0..60), max in 1usize..1500) {
        let ranges = chunks(&sizes, 10, max);
        let mut next = 0;
        for r in &ranges {
            prop_assert_eq!(r.start, next);
            prop_assert!(!r.is_empty() && r.len() <= 10);
            let bytes: usize = sizes[r.clone()].iter().sum();
            prop_assert!(r.len() == 1 || bytes <= max);
            next = r.end;
        }
        prop_assert_eq!(next, sizes.len());
    }
}
