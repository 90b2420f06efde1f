//! Unit tests of the pure parts of the WebSocket source: decoding, patterns, status classes,
//! subscribe messages.

use super::decode::{classify, resolve, Decoding, FrameKind, Pattern, Received, StatusClass};
use super::{DataFormat, SubscribeMessage};
use crate::batch::{FailureKind, Incoming};
use crate::record::Position;
use crate::Json;
use bytes::Bytes;
use proptest::prelude::*;
use serde_json::json;
use std::collections::VecDeque;
use std::time::SystemTime;

fn decoding(format: DataFormat, split_arrays: bool, max: usize) -> Decoding {
    Decoding { format, split_arrays, max_message_bytes: max, url: Bytes::from_static(b"ws://x/feed") }
}

fn received(payload: &[u8], kind: FrameKind) -> Received {
    let d = decoding(DataFormat::Json, false, 1024);
    Received {
        payload: Bytes::copy_from_slice(payload),
        kind,
        sequence: 7,
        connection: 2,
        extra: d.extra(kind, &Bytes::from_static(b"2"), SystemTime::UNIX_EPOCH),
    }
}

/// (record as JSON, raw) for records, (error, payload) for failures.
fn outcome(items: Vec<Incoming<Json, ()>>) -> Vec<Result<(serde_json::Value, Bytes), (String, Bytes)>> {
    items
        .into_iter()
        .map(|incoming| match incoming.item {
            Ok((record, meta)) => Ok((serde_json::to_value(record).unwrap(), meta.raw.unwrap())),
            Err(failure) => {
                assert_eq!(failure.kind, FailureKind::Decode);
                assert_eq!(failure.meta.position, Position::Sequence(7));
                Err((failure.error, failure.payload))
            }
        })
        .collect()
}

/// Every record (or failure) of one message.
fn decode_all(d: &Decoding, m: Received) -> Vec<Incoming<Json, ()>> {
    let mut split = VecDeque::new();
    let one = d.decode::<Json>(m, &mut split);
    one.into_iter().chain(split).collect()
}

fn decode(d: &Decoding, payload: &[u8], kind: FrameKind) -> Vec<Result<(serde_json::Value, Bytes), (String, Bytes)>> {
    outcome(decode_all(d, received(payload, kind)))
}

#[test]
fn a_json_message_is_one_record_with_its_metadata() {
    let d = decoding(DataFormat::Json, false, 1024);
    let incoming = decode_all(&d, received(br#"{"a": 1}"#, FrameKind::Binary)).into_iter().next().expect("an item");
    assert_eq!(incoming.size, 8);
    let Ok((_, meta)) = incoming.item else { panic!("a record") };
    assert_eq!(meta.position, Position::Sequence(7));
    let extra = meta.extra.unwrap();
    assert_eq!(extra.event_type.as_deref(), Some("binary"));
    assert_eq!(extra.timestamp, Some(SystemTime::UNIX_EPOCH));
    assert_eq!(
        extra.headers,
        [("url".to_owned(), Bytes::from_static(b"ws://x/feed")), ("connection".to_owned(), Bytes::from_static(b"2"))]
    );
}

#[test]
fn bad_json_and_oversized_messages_are_failures_with_their_bytes() {
    let d = decoding(DataFormat::Json, false, 10);
    let got = decode(&d, b"{oops", FrameKind::Text);
    assert!(matches!(&got[..], [Err((e, p))] if e.contains("message 7") && &p[..] == b"{oops"), "{got:?}");
    let got = decode(&d, br#"{"a": "0123456789"}"#, FrameKind::Text);
    assert!(matches!(&got[..], [Err((e, p))] if e.contains("19 bytes") && &p[..] == br#"{"a": "012"#), "{got:?}");
}

#[test]
fn split_arrays_slices_each_element() {
    let d = decoding(DataFormat::Json, true, 1024);
    let got = decode(&d, br#" [ {"a": 1} , 2, {"b": [3]} ]"#, FrameKind::Text);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].as_ref().unwrap(), &(json!({"a": 1}), Bytes::from_static(br#"{"a": 1}"#)));
    assert!(matches!(&got[1], Err((e, p)) if e.contains("array element 1") && &p[..] == b"2"));
    assert_eq!(got[2].as_ref().unwrap(), &(json!({"b": [3]}), Bytes::from_static(br#"{"b": [3]}"#)));
    assert!(decode(&d, b"[]", FrameKind::Text).is_empty(), "an empty array is no record");
    // Without split_arrays an array is one value (here not an object: a failure for Json).
    let whole = decoding(DataFormat::Json, false, 1024);
    assert!(matches!(&decode(&whole, b"[1]", FrameKind::Text)[..], [Err(_)]));
}

#[test]
fn text_format_wraps_the_message() {
    let d = decoding(DataFormat::Text, true, 1024);
    let got = decode(&d, b"[not json", FrameKind::Text);
    assert_eq!(got[0].as_ref().unwrap().0, json!({"data": "[not json"}));
    let got = decode(&d, b"\xff", FrameKind::Binary);
    assert!(matches!(&got[..], [Err((e, p))] if e.contains("not UTF-8") && &p[..] == b"\xff"));
}

#[test]
fn patterns_match_json_subsets_or_text() {
    let ack = Pattern::parse(r#"{"T": "success", "msg": "authenticated"}"#);
    assert!(ack.matches(br#"{"T": "success", "msg": "authenticated", "extra": 1}"#));
    assert!(ack.matches(br#"[{"T": "success", "msg": "connected"}, {"T": "success", "msg": "authenticated"}]"#));
    assert!(!ack.matches(br#"{"T": "success", "msg": "connected"}"#));
    assert!(!ack.matches(b"not json authenticated"));
    let nested = Pattern::parse(r#"{"result": {"status": "ok"}}"#);
    assert!(nested.matches(br#"{"id": 1, "result": {"status": "ok", "x": 2}}"#));
    let text = Pattern::parse("auth failed");
    assert!(text.matches(b"error: auth failed (bad key)"));
    assert!(!text.matches(b"authenticated"));
    assert_eq!(Pattern::parse("\"quoted\""), Pattern::Text("\"quoted\"".into()), "only an object is a JSON pattern");
}

#[test]
fn handshake_statuses() {
    assert_eq!(classify(503), StatusClass::Retry);
    assert_eq!(classify(429), StatusClass::Retry);
    assert_eq!(classify(401), StatusClass::Fatal);
    assert_eq!(classify(404), StatusClass::Fatal);
}

#[test]
fn subscribe_messages_resolve_variables_in_every_string() {
    let lookup = |name: &str| (name == "KEY").then(|| "k\"1".to_owned());
    let json = SubscribeMessage::from(json!({"auth": "${KEY}", "list": ["a", "${KEY}"], "n": 1}));
    assert_eq!(resolve(&json, &lookup).unwrap(), r#"{"auth":"k\"1","list":["a","k\"1"],"n":1}"#, "JSON stays valid");
    assert_eq!(resolve(&SubscribeMessage::from("AUTH ${KEY}"), &lookup).unwrap(), "AUTH k\"1");
    assert!(resolve(&SubscribeMessage::from("${MISSING}"), &lookup).unwrap_err().to_string().contains("MISSING"));
    assert_eq!(format!("{json:?}"), "Json(***)", "never printed");
}

proptest! {
    /// Any bytes, any limit: decoding never panics, yields at least one item for a non-array
    /// message, and a failure's payload is a prefix of the message no longer than the limit.
    #[test]
    fn decoding_any_bytes_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..200), max in 1usize..64, split in any::<bool>()) {
        let d = decoding(DataFormat::Json, split, max);
        let got = decode(&d, &payload, FrameKind::Binary);
        if !split || !payload.contains(&b'[') {
            prop_assert_eq!(got.len(), 1);
        }
        for item in got {
            if let Err((_, p)) = item {
                prop_assert!(p.len() <= max.max(payload.len()));
            }
        }
    }
}
