use super::decode::*;
use crate::batch::FailureKind;
use crate::record::Position;
use crate::Json;
use bytes::Bytes;
use std::time::{Duration, UNIX_EPOCH};

fn message(payload: &'static [u8], delivered: u32) -> Received {
    Received {
        subject: "orders.created".into(),
        reply: "$JS.ACK.ORDERS.etl.1.7.7.1700000000000000000.0".into(),
        payload: Bytes::from_static(payload),
        headers: vec![("trace".into(), Bytes::from_static(b"abc"))],
        stream_sequence: 7,
        delivered,
        published_nanos: Some(1_700_000_000_000_000_000),
    }
}

#[test]
fn a_message_becomes_a_record_with_its_metadata_beside_it() {
    let inc = decode::<Json>(message(br#"{"id":1}"#, 1), 5);
    assert_eq!(inc.token.stream_sequence, 7);
    assert!(inc.token.last_attempt.is_none());
    let (record, meta) = inc.item.unwrap();
    assert_eq!(record.get("id"), Some(&serde_json::json!(1)));
    assert_eq!(meta.position, Position::Sequence(7));
    assert_eq!(meta.raw.as_deref(), Some(&br#"{"id":1}"#[..]));
    let extra = meta.extra.unwrap();
    assert_eq!(extra.event_type.as_deref(), Some("orders.created"));
    assert_eq!(extra.delivery_count, Some(1));
    assert_eq!(extra.headers, vec![("trace".to_string(), Bytes::from_static(b"abc"))]);
    assert_eq!(extra.timestamp, Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
}

#[test]
fn a_bad_payload_is_a_decode_failure_with_its_exact_bytes() {
    let inc = decode::<Json>(message(b"\xff{oops", 2), 5);
    let failure = inc.item.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Decode);
    assert_eq!(&failure.payload[..], b"\xff{oops");
    assert!(failure.error.contains("sequence 7"), "{}", failure.error);
    assert_eq!(failure.meta.position, Position::Sequence(7));
}

#[test]
fn the_last_attempt_keeps_what_a_dead_letter_needs_and_past_it_the_message_is_a_failure() {
    let at_limit = decode::<Json>(message(br#"{"id":1}"#, 3), 3);
    assert!(at_limit.item.is_ok(), "the last attempt is still processed");
    let last = at_limit.token.last_attempt.expect("on its last attempt");
    assert_eq!((&last.payload[..], last.subject.as_str()), (&br#"{"id":1}"#[..], "orders.created"));
    let past = decode::<Json>(message(br#"{"id":1}"#, 4), 3);
    let failure = past.item.unwrap_err();
    assert_eq!((failure.kind, failure.attempts), (FailureKind::MaxDeliveries, 4));
    assert!(failure.error.contains("max_deliver = 3"), "{}", failure.error);
}

#[test]
fn nak_delays_grow_with_the_delivery_count_up_to_a_ceiling() {
    let base = Duration::from_millis(500);
    assert_eq!(nak_delay(base, 1), base);
    assert_eq!(nak_delay(base, 2), base * 2);
    assert_eq!(nak_delay(base, 4), base * 8);
    assert_eq!(nak_delay(base, 40), MAX_NAK_DELAY);
    assert_eq!(nak_delay(Duration::from_secs(600), 3), Duration::from_secs(600), "never below the configured delay");
    assert_eq!(nak_delay(Duration::ZERO, 3), Duration::ZERO);
}

#[test]
fn acknowledgement_bodies_are_jetstreams() {
    assert_eq!(&AckBody::Ack.bytes()[..], b"+ACK");
    assert_eq!(&AckBody::Progress.bytes()[..], b"+WPI");
    assert_eq!(&AckBody::Nak(Duration::ZERO).bytes()[..], b"-NAK");
    assert_eq!(&AckBody::Nak(Duration::from_millis(1500)).bytes()[..], br#"-NAK {"delay":1500000000}"#);
    assert_eq!(&AckBody::Term("dead\nlettered".into()).bytes()[..], b"+TERM dead lettered");
}
