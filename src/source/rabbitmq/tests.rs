use super::decode::*;
use super::effective_prefetch;
use crate::batch::FailureKind;
use crate::record::Position;
use crate::Json;
use bytes::Bytes;
use proptest::prelude::*;
use std::time::{Duration, UNIX_EPOCH};

fn message(body: &str, redelivered: bool) -> Received {
    Received {
        delivery_tag: 7,
        exchange: "events".into(),
        routing_key: "order.created".into(),
        redelivered,
        message_id: Some("m-1".into()),
        headers: vec![("source".into(), Bytes::from_static(b"shop"))],
        x_delivery_count: None,
        timestamp: Some(1_700_000_000),
        body: Bytes::from(body.to_owned()),
    }
}

fn tag() -> Tag {
    Tag { epoch: 1, delivery_tag: 7, count_key: None }
}

#[test]
fn a_delivery_becomes_a_record_with_its_metadata_beside_it() {
    let inc = decode::<Json>(message(r#"{"id":1}"#, false), "orders", 0, Some(5), tag());
    assert_eq!(inc.token, tag());
    let (record, meta) = inc.item.unwrap();
    assert_eq!(record.get("id"), Some(&serde_json::json!(1)));
    assert_eq!(meta.position, Position::Id("m-1".into()));
    assert_eq!(meta.raw.as_deref(), Some(&br#"{"id":1}"#[..]));
    let extra = meta.extra.unwrap();
    assert_eq!(extra.key.as_deref(), Some(&b"order.created"[..]));
    assert_eq!(extra.exchange.as_deref(), Some("events"));
    assert_eq!(extra.message_id.as_deref(), Some("m-1"));
    assert_eq!(extra.redelivered, Some(false));
    assert_eq!(extra.delivery_tag, Some(7));
    assert_eq!(extra.delivery_count, Some(1));
    assert_eq!(extra.event_type.as_deref(), Some("orders"));
    assert_eq!(extra.headers, vec![("source".to_string(), Bytes::from_static(b"shop"))]);
    assert_eq!(extra.timestamp, Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
}

#[test]
fn without_a_message_id_the_position_is_the_delivery_tag() {
    let mut m = message(r#"{"id":1}"#, false);
    m.message_id = None;
    let inc = decode::<Json>(m, "orders", 0, None, tag());
    assert_eq!(inc.item.unwrap().1.position, Position::Id("delivery tag 7".into()));
}

#[test]
fn a_bad_body_is_a_decode_failure_with_its_exact_bytes() {
    let mut m = message("", false);
    m.body = Bytes::from_static(b"{\"n\": \"\xff\xfe\"}");
    let inc = decode::<Json>(m, "orders", 0, Some(5), tag());
    let failure = inc.item.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Decode);
    assert_eq!(&failure.payload[..], b"{\"n\": \"\xff\xfe\"}");
    assert!(failure.error.contains("m-1"), "{}", failure.error);
}

#[test]
fn past_max_redeliveries_a_message_is_a_failure_even_if_it_decodes() {
    let inc = decode::<Json>(message(r#"{"id":1}"#, true), "orders", 4, Some(3), tag());
    let failure = inc.item.unwrap_err();
    assert_eq!(failure.kind, FailureKind::MaxDeliveries);
    assert_eq!(failure.attempts, 5);
    assert!(failure.error.contains("max_redeliveries = 3"), "{}", failure.error);
    assert_eq!(&failure.payload[..], br#"{"id":1}"#);
    // At the limit it is still decoded.
    assert!(decode::<Json>(message(r#"{"id":1}"#, true), "orders", 3, Some(3), tag()).item.is_ok());
}

#[test]
fn redeliveries_are_counted_by_key_from_the_redelivered_flag_and_forgotten_when_done() {
    let mut counts = Redeliveries::default();
    assert_eq!(counts.observe("id:a", false), 0, "a first delivery counts nothing");
    assert_eq!(counts.observe("id:a", true), 1);
    assert_eq!(counts.observe("id:a", true), 2);
    assert_eq!(counts.observe("id:b", true), 1, "a redelivery first seen here (the consumer restarted)");
    counts.forget("id:a");
    assert_eq!(counts.len(), 1);
    assert_eq!(counts.observe("id:a", true), 1);
}

#[test]
fn the_count_key_is_the_message_id_or_a_fingerprint_of_the_content() {
    let with_id = message("x", false);
    assert_eq!(with_id.count_key(), "id:m-1");
    let mut a = message("x", false);
    a.message_id = None;
    let mut b = message("y", false);
    b.message_id = None;
    assert_ne!(a.count_key(), b.count_key());
    assert_eq!(a.count_key(), a.clone().count_key());
}

#[test]
fn a_batch_is_settled_with_multiple_only_when_its_tags_are_all_the_unsettled_ones_below() {
    let mut u = Unsettled::default();
    for t in 1..=9 {
        u.insert(t);
    }
    // Batch B (4..=6) completes before batch A (1..=3): one call per tag, A untouched.
    assert_eq!(u.settle(&[4, 5, 6]), Plan::Each(vec![4, 5, 6]));
    assert_eq!(u.settle(&[1, 2, 3]), Plan::Multiple(3));
    // 7..=9 are the lowest now; 9 not yet batched: 7..=8 with multiple.
    assert_eq!(u.settle(&[8, 7]), Plan::Multiple(8));
    assert_eq!(u.settle(&[9]), Plan::Each(vec![9]));
    assert_eq!(u.len(), 0);
    assert_eq!(u.settle(&[9]), Plan::Each(vec![]), "settled already: nothing to send");
}

proptest! {
    /// Whatever the order batches complete in, each tag is settled exactly once, and a
    /// `multiple` call never covers a tag of another batch or one not yet settled by its own.
    #[test]
    fn multiple_never_settles_another_batchs_tags(sizes in prop::collection::vec(1usize..5, 1..8), seed in any::<u64>()) {
        let mut u = Unsettled::default();
        let mut batches = Vec::new();
        let mut next = 1u64;
        for size in &sizes {
            let tags: Vec<u64> = (next..next + *size as u64).collect();
            next += *size as u64;
            for t in &tags { u.insert(*t); }
            batches.push(tags);
        }
        let mut order: Vec<usize> = (0..batches.len()).collect();
        let mut state = seed | 1;
        for i in (1..order.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut settled = std::collections::BTreeSet::new();
        for &b in &order {
            let covered: Vec<u64> = match u.settle(&batches[b]) {
                Plan::Multiple(max) => (1..=max).filter(|t| !settled.contains(t)).collect(),
                Plan::Each(tags) => tags,
            };
            let mut mine = batches[b].clone();
            mine.sort_unstable();
            prop_assert_eq!(&covered, &mine, "a call settles exactly its batch");
            settled.extend(covered);
        }
        prop_assert_eq!(u.len(), 0);
    }
}

#[test]
fn prefetch_is_raised_to_the_batch_size() {
    assert_eq!(effective_prefetch(100, 1000, "q"), 1000);
    assert_eq!(effective_prefetch(2000, 1000, "q"), 2000);
    assert_eq!(effective_prefetch(10, 100_000, "q"), 0, "no limit past AMQP's maximum");
}
