use super::decode::*;
use crate::batch::FailureKind;
use crate::record::Position;
use crate::Json;
use std::time::{Duration, UNIX_EPOCH};

fn message(body: &str, count: Option<u32>) -> Received {
    Received {
        message_id: "m-1".into(),
        handle: "h-1".into(),
        body: body.into(),
        receive_count: count,
        sent_millis: Some(1_700_000_000_000),
    }
}

#[test]
fn a_message_becomes_a_record_with_its_metadata() {
    let inc = decode::<Json>(message(r#"{"id":1}"#, Some(2)), "orders", Some(5));
    assert_eq!(inc.token, Receipt { message_id: "m-1".into(), handle: "h-1".into() });
    let (record, meta) = inc.item.unwrap();
    assert_eq!(record.get("id"), Some(&serde_json::json!(1)));
    assert_eq!(meta.position, Position::Id("m-1".into()));
    assert_eq!(meta.raw.as_deref(), Some(&br#"{"id":1}"#[..]));
    let extra = meta.extra.unwrap();
    assert_eq!(extra.delivery_count, Some(2));
    assert_eq!(extra.event_type.as_deref(), Some("orders"));
    assert_eq!(extra.timestamp, Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_000)));
}

#[test]
fn a_bad_body_is_a_decode_failure_with_its_bytes() {
    let inc = decode::<Json>(message("{oops", Some(1)), "orders", None);
    let failure = inc.item.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Decode);
    assert_eq!(&failure.payload[..], b"{oops");
    assert!(failure.error.contains("m-1"), "{}", failure.error);
    assert_eq!(inc.token.handle, "h-1");
}

#[test]
fn past_max_receives_a_message_is_a_failure_even_if_it_decodes() {
    let inc = decode::<Json>(message(r#"{"id":1}"#, Some(4)), "orders", Some(3));
    let failure = inc.item.unwrap_err();
    assert_eq!(failure.attempts, 4);
    assert_eq!(failure.kind, FailureKind::MaxDeliveries);
    assert!(failure.error.contains("max_receives = 3"), "{}", failure.error);
    assert_eq!(&failure.payload[..], br#"{"id":1}"#);
    // At the limit it is still decoded.
    assert!(decode::<Json>(message(r#"{"id":1}"#, Some(3)), "orders", Some(3)).item.is_ok());
}

#[test]
fn seconds_and_names() {
    assert_eq!(visibility_seconds(Duration::from_millis(1500)), 2);
    assert_eq!(visibility_seconds(Duration::from_secs(30)), 30);
    assert_eq!(visibility_seconds(Duration::from_secs(1 << 20)), 43_200);
    assert_eq!(queue_name("http://127.0.0.1:5000/123456789012/orders"), "orders");
}
