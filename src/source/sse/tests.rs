//! Unit tests of the SSE source's pure parts.

use super::decode::{classify, decode, wanted, BomStripper, StatusClass};
use super::frame::{Event, TooLarge};
use super::DataFormat;
use crate::batch::{FailureKind, Incoming};
use crate::record::Position;
use crate::source::reconnect::{Next, Reconnect, ReconnectPolicy};
use crate::Json;
use bytes::Bytes;
use proptest::prelude::*;
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn policy(max_reconnects: u32) -> ReconnectPolicy {
    ReconnectPolicy {
        enabled: true,
        initial_delay: ms(100),
        max_delay: ms(1000),
        max_reconnects,
        stable_after: Duration::from_secs(60),
        jitter: false,
    }
}

fn strip(chunks: &[&[u8]]) -> Vec<u8> {
    let mut s = BomStripper::default();
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(&s.push(Bytes::copy_from_slice(c)));
    }
    out.extend_from_slice(&s.finish());
    out
}

#[test]
fn bom_is_stripped_whole_or_split() {
    assert_eq!(strip(&[b"\xEF\xBB\xBFdata: a\n\n"]), b"data: a\n\n");
    assert_eq!(strip(&[b"\xEF", b"\xBB", b"\xBFdata: a\n\n"]), b"data: a\n\n");
    assert_eq!(strip(&[b"\xEF\xBB", b"\xBF", b"x"]), b"x");
    assert_eq!(strip(&[b"data: a\n\n"]), b"data: a\n\n");
    assert_eq!(strip(&[b"d", b"ata"]), b"data");
    // Only the first BOM goes; a prefix of a BOM at the end of a short stream stays.
    assert_eq!(strip(&[b"\xEF\xBB\xBF\xEF\xBB\xBF"]), b"\xEF\xBB\xBF");
    assert_eq!(strip(&[b"\xEF\xBB"]), b"\xEF\xBB");
    assert_eq!(strip(&[b"", b"\xEF\xBB\xBF", b""]), b"");
}

proptest! {
    /// Whatever the chunking, the output is the input minus one leading BOM.
    #[test]
    fn bom_stripping_ignores_chunking(body in prop::collection::vec(any::<u8>(), 0..40), bom in any::<bool>(), cuts in prop::collection::vec(0usize..50, 0..6)) {
        let mut input = if bom { b"\xEF\xBB\xBF".to_vec() } else { Vec::new() };
        input.extend_from_slice(&body);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for c in cuts.into_iter().chain([input.len()]) {
            chunks.push(&input[prev..c]);
            prev = c;
        }
        let expected: &[u8] = input.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(&input);
        prop_assert_eq!(strip(&chunks), expected);
    }
}

#[test]
fn statuses_are_classified() {
    assert_eq!(classify(200), StatusClass::Stream);
    assert_eq!(classify(204), StatusClass::Stop);
    for s in [500, 502, 503, 599, 408, 429] {
        assert_eq!(classify(s), StatusClass::Retry, "{s}");
    }
    for s in [301, 400, 401, 403, 404, 410] {
        assert_eq!(classify(s), StatusClass::Fatal, "{s}");
    }
}

fn event(kind: &str, id: &str, data: &str) -> Event {
    raw_event(kind, id, data.as_bytes())
}

fn raw_event(kind: &str, id: &str, data: &[u8]) -> Event {
    // Events come from the parser; build one through it.
    let mut text = format!("event: {kind}\n");
    if !id.is_empty() {
        text.push_str(&format!("id: {id}\n"));
    }
    let mut bytes = text.into_bytes();
    for line in data.split(|b| *b == b'\n') {
        bytes.extend_from_slice(b"data: ");
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    bytes.push(b'\n');
    let mut parser = super::frame::Parser::new(1 << 20);
    parser.push(Bytes::from(bytes));
    match parser.next_frame() {
        Some(super::frame::Frame::Event(e)) => e,
        other => panic!("{other:?}"),
    }
}

fn decode_json(event: Event) -> Incoming<Json, ()> {
    decode::<Json, ()>(event, DataFormat::Json, 1 << 20, ())
}

#[test]
fn json_events_decode_with_metadata_beside_the_record() {
    let inc = decode_json(event("trade", "42", r#"{"p":1,"s":"😀 \"q\""}"#));
    let (record, meta) = inc.item.unwrap();
    assert_eq!(serde_json::to_string(&record).unwrap(), r#"{"p":1,"s":"😀 \"q\""}"#);
    assert_eq!(meta.position, Position::Id("42".into()));
    assert_eq!(meta.raw.as_deref(), Some(r#"{"p":1,"s":"😀 \"q\""}"#.as_bytes()));
    assert_eq!(meta.extra.unwrap().event_type.as_deref(), Some("trade"));
}

#[test]
fn malformed_data_is_a_decode_failure_with_the_raw_text() {
    let inc = decode_json(event("message", "7", "{not json"));
    let failure = inc.item.unwrap_err();
    assert_eq!(&failure.payload[..], b"{not json");
    assert_eq!(failure.kind, FailureKind::Decode);
    assert!(failure.error.contains("id 7"), "{}", failure.error);
    assert_eq!(inc.size, 9);
    // A JSON value that is not an object is the wrong type for `Json`.
    assert!(decode_json(event("message", "", "[1,2]")).item.is_err());
}

#[test]
fn text_events_wrap_the_data() {
    let inc = decode::<Json, ()>(event("message", "", "line 1\nline \"2\""), DataFormat::Text, 1 << 20, ());
    let (record, meta) = inc.item.unwrap();
    assert_eq!(serde_json::to_value(&record).unwrap(), serde_json::json!({"data": "line 1\nline \"2\""}));
    assert_eq!(meta.position, Position::None);
}

#[test]
fn filter_matches_the_event_type() {
    assert!(wanted(&event("message", "", "x"), None));
    assert!(wanted(&event("message", "", "x"), Some("message")));
    assert!(!wanted(&event("heartbeat", "", "x"), Some("message")));
}

#[test]
fn invalid_utf8_data_is_a_decode_failure_with_the_exact_bytes() {
    let bytes: &[u8] = b"{\"a\": \"\xFF\xFE\"}";
    for format in [DataFormat::Json, DataFormat::Text] {
        let inc = decode::<Json, ()>(raw_event("message", "9", bytes), format, 1 << 20, ());
        let failure = inc.item.unwrap_err();
        assert_eq!(&failure.payload[..], bytes);
        assert_eq!(failure.kind, FailureKind::Decode);
        assert!(failure.error.contains("id 9") && failure.error.contains("UTF-8"), "{}", failure.error);
        assert_eq!(failure.meta.raw.as_deref(), Some(bytes));
    }
}

#[test]
fn an_event_over_the_limit_is_a_decode_failure_with_the_truncated_data() {
    let mut parser = super::frame::Parser::new(8);
    parser.push(Bytes::from_static(b"id: 3\ndata: {\"a\": \"0123456789\"}\n\n"));
    let Some(super::frame::Frame::Event(e)) = parser.next_frame() else { panic!() };
    assert_eq!(e.too_large, Some(TooLarge { field: "data", bytes: 19 }));
    let failure = decode::<Json, ()>(e, DataFormat::Json, 8, ()).item.unwrap_err();
    assert_eq!(&failure.payload[..], b"{\"a\": \"0");
    assert_eq!(failure.kind, FailureKind::Decode);
    assert!(failure.error.contains("19 bytes") && failure.error.contains("max_event_bytes (8)"), "{}", failure.error);
}

/// `next` with its delay rounded to whole milliseconds (backon computes in `f32`).
fn rounded(next: Next) -> Next {
    match next {
        Next::Retry { delay, attempt } => Next::Retry { delay: ms((delay.as_secs_f64() * 1000.0).round() as u64), attempt },
        give_up => give_up,
    }
}

#[test]
fn delays_double_from_the_base_and_cap() {
    let mut r = Reconnect::new(policy(100));
    let delays: Vec<_> = (0..6)
        .map(|_| match rounded(r.failed()) {
            Next::Retry { delay, .. } => delay,
            Next::GiveUp { .. } => panic!("gave up"),
        })
        .collect();
    assert_eq!(delays, [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
}

#[test]
fn success_resets_the_count_and_the_backoff() {
    let mut r = Reconnect::new(policy(2));
    assert_eq!(rounded(r.failed()), Next::Retry { delay: ms(100), attempt: 1 });
    assert_eq!(rounded(r.failed()), Next::Retry { delay: ms(200), attempt: 2 });
    r.succeeded();
    assert_eq!(r.failures(), 0);
    assert_eq!(rounded(r.failed()), Next::Retry { delay: ms(100), attempt: 1 });
    assert_eq!(rounded(r.failed()), Next::Retry { delay: ms(200), attempt: 2 });
    assert_eq!(r.failed(), Next::GiveUp { failures: 3 });
}

#[test]
fn the_end_of_a_healthy_connection_is_not_a_failure() {
    let mut r = Reconnect::new(policy(1));
    r.failed();
    // Delivered events: the count resets and the reconnect is not counted.
    assert_eq!(rounded(r.ended(true, ms(5))), Next::Retry { delay: ms(100), attempt: 0 });
    assert_eq!(r.failures(), 0);
    // A long quiet connection is healthy too.
    assert_eq!(rounded(r.ended(false, Duration::from_secs(61))), Next::Retry { delay: ms(100), attempt: 0 });
    // A short one that delivered nothing is a failure (the backoff goes on growing).
    assert_eq!(rounded(r.ended(false, ms(5))), Next::Retry { delay: ms(200), attempt: 1 });
    assert_eq!(r.ended(false, ms(5)), Next::GiveUp { failures: 2 });
}

#[test]
fn server_retry_replaces_the_base_delay() {
    let mut r = Reconnect::new(policy(5));
    r.server_retry(ms(50));
    assert_eq!(r.base_delay(), ms(50));
    assert_eq!(rounded(r.failed()), Next::Retry { delay: ms(50), attempt: 1 });
    assert_eq!(rounded(r.failed()), Next::Retry { delay: ms(100), attempt: 2 });
    // The same value again does not restart the backoff; a success does.
    r.server_retry(ms(50));
    assert_eq!(rounded(r.failed()), Next::Retry { delay: ms(200), attempt: 3 });
    r.succeeded();
    assert_eq!(rounded(r.failed()), Next::Retry { delay: ms(50), attempt: 1 });
    // A retry longer than the cap is honoured as is.
    r.server_retry(ms(5000));
    assert_eq!(rounded(r.failed()), Next::Retry { delay: ms(5000), attempt: 2 });
}

#[test]
fn reconnect_off_gives_up_at_once() {
    let mut r = Reconnect::new(ReconnectPolicy { enabled: false, ..policy(10) });
    assert_eq!(r.failed(), Next::GiveUp { failures: 1 });
}

proptest! {
    /// The consecutive failure count never passes `max_reconnects` while retrying, gives up
    /// exactly on the failure after it, resets on success, and delays stay within bounds.
    #[test]
    fn counter_never_exceeds_max_and_resets(max in 0u32..8, ops in prop::collection::vec(0u8..4, 0..60), jitter in any::<bool>()) {
        let mut r = Reconnect::new(ReconnectPolicy { jitter, ..policy(max) });
        let mut expected = 0u32;
        for op in ops {
            let next = match op {
                // An event arrived.
                0 => {
                    r.succeeded();
                    expected = 0;
                    prop_assert_eq!(r.failures(), 0);
                    continue;
                }
                // A healthy connection ended: not a failure.
                1 => {
                    expected = 0;
                    let next = r.ended(true, ms(1));
                    prop_assert_eq!(r.failures(), 0);
                    let not_counted = matches!(next, Next::Retry { attempt: 0, .. });
                    prop_assert!(not_counted);
                    continue;
                }
                // A short connection without events ended, or an attempt failed.
                2 => { expected += 1; r.ended(false, ms(1)) }
                _ => { expected += 1; r.failed() }
            };
            match next {
                Next::Retry { delay, attempt } => {
                    prop_assert_eq!(attempt, expected);
                    prop_assert!(attempt <= max);
                    prop_assert!(delay >= ms(100) && delay <= ms(2000));
                }
                Next::GiveUp { failures } => {
                    prop_assert_eq!(failures, max + 1);
                    prop_assert_eq!(expected, max + 1);
                    break;
                }
            }
        }
    }
}
