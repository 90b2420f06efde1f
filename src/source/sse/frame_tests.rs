//! Unit and property tests of the event-stream parser ([`super::frame`]).

use super::frame::{Event, Frame, Parser, TooLarge};
use bytes::Bytes;
use proptest::prelude::*;
use std::time::Duration;

/// Feed `chunks` to a fresh parser (limit `max`); the frames and the last event id.
fn parse_with(max: usize, chunks: &[&[u8]]) -> (Vec<Frame>, String) {
    let mut parser = Parser::new(max);
    let mut frames = Vec::new();
    for chunk in chunks {
        parser.push(Bytes::copy_from_slice(chunk));
        while let Some(frame) = parser.next_frame() {
            frames.push(frame);
        }
    }
    (frames, parser.last_event_id().to_owned())
}

fn parse(input: &[u8]) -> Vec<Frame> {
    parse_with(1 << 20, &[input]).0
}

fn ev(event_type: &str, id: &str, data: &[u8]) -> Frame {
    Frame::Event(Event { event_type: event_type.into(), id: id.into(), data: Bytes::copy_from_slice(data), too_large: None })
}

fn msg(data: &str) -> Frame {
    ev("message", "", data.as_bytes())
}

fn retry(ms: u64) -> Frame {
    Frame::Retry(Duration::from_millis(ms))
}

#[test]
fn table_of_cases() {
    let cases: &[(&str, &[u8], Vec<Frame>)] = &[
        ("lf", b"data: a\n\n", vec![msg("a")]),
        ("crlf", b"data: a\r\n\r\n", vec![msg("a")]),
        ("cr", b"data: a\r\r", vec![msg("a")]),
        ("mixed line ends", b"data: a\rdata: b\r\ndata: c\n\r\n", vec![msg("a\nb\nc")]),
        ("multi-line data", b"data: a\ndata: b\n\n", vec![msg("a\nb")]),
        ("comment", b": hi\n:\ndata: a\n: inside\n\n", vec![msg("a")]),
        ("leading bom", b"\xEF\xBB\xBFdata: a\n\n", vec![msg("a")]),
        // Only the first BOM is skipped: a second one makes an unknown field name.
        ("second bom", b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n", vec![msg("b")]),
        ("field without colon", b"data\n\n", vec![msg("")]),
        ("two empty data lines", b"data\ndata\n\n", vec![msg("\n")]),
        ("one space stripped", b"data:  two\ndata:none\n\n", vec![msg(" two\nnone")]),
        ("colon in value", b"data: a: b\n\n", vec![msg("a: b")]),
        ("event type", b"event: trade\ndata: a\n\ndata: b\n\n", vec![ev("trade", "", b"a"), msg("b")]),
        ("empty event type", b"event:\ndata: a\n\n", vec![msg("a")]),
        ("id persists", b"id: 1\ndata: a\n\ndata: b\n\n", vec![ev("message", "1", b"a"), ev("message", "1", b"b")]),
        ("empty id resets", b"id: 1\ndata: a\n\nid\ndata: b\n\n", vec![ev("message", "1", b"a"), msg("b")]),
        ("id with nul ignored", b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", vec![ev("message", "1", b"a"), ev("message", "1", b"b")]),
        ("id without data", b"id: 5\n\ndata: a\n\n", vec![ev("message", "5", b"a")]),
        ("no data, no event", b"event: x\nid: 1\n\n", vec![]),
        ("retry alone", b"retry: 1500\n\n", vec![retry(1500)]),
        ("retry before data", b"retry: 20\ndata: a\n\n", vec![retry(20), msg("a")]),
        ("retry not digits", b"retry: 12a\nretry: -1\nretry:\nretry: 1.5\nretry:  7\n\n", vec![]),
        ("retry overflow ignored", b"retry: 99999999999999999999999\n\n", vec![]),
        ("unknown fields", b"foo: bar\nDATA: x\ndata : y\ndata: a\n\n", vec![msg("a")]),
        ("incomplete event dropped", b"data: a\n\ndata: b\n", vec![msg("a")]),
        ("incomplete line dropped", b"data: a\n\ndata: b", vec![msg("a")]),
        ("blank lines", b"\n\n\r\n\rdata: a\n\n\n", vec![msg("a")]),
        ("invalid utf-8 data kept raw", b"data: \xFF\xC3(\n\n", vec![ev("message", "", b"\xFF\xC3(")]),
        ("invalid utf-8 event type lossy", b"event: a\xFF\ndata: x\n\n", vec![ev("a\u{FFFD}", "", b"x")]),
        ("utf-8 text", "id: é\ndata: 😀\n\n".as_bytes(), vec![ev("message", "é", "😀".as_bytes())]),
    ];
    for (name, input, expected) in cases {
        assert_eq!(&parse(input), expected, "case {name}");
    }
}

#[test]
fn cr_at_the_end_of_a_chunk_and_lf_at_the_start_of_the_next_are_one_line_end() {
    let (frames, _) = parse_with(64, &[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
    assert_eq!(frames, [msg("a\nb")]);
    // A CR then something else: the CR alone ended the line.
    let (frames, _) = parse_with(64, &[b"data: a\r", b"data: b\r", b"\r"]);
    assert_eq!(frames, [msg("a\nb")]);
}

#[test]
fn the_last_event_id_is_set_at_the_blank_line_and_survives_a_restart() {
    let mut p = Parser::new(64).with_last_event_id("0");
    p.push(Bytes::from_static(b"data: a\n\nid: 1\n\nid: 2\ndata: cut"));
    assert_eq!(p.next_frame(), Some(ev("message", "0", b"a")));
    assert_eq!(p.next_frame(), None);
    assert_eq!(p.last_event_id(), "1");
    // The connection drops: the id of the cut event never took effect.
    p.restart();
    assert_eq!(p.last_event_id(), "1");
    p.push(Bytes::from_static(b"\xEF\xBB\xBFdata: b\n\n"));
    assert_eq!(p.next_frame(), Some(ev("message", "1", b"b")), "a BOM is skipped again after a restart");
}

#[test]
fn restart_forgets_a_pending_cr() {
    let mut p = Parser::new(64);
    p.push(Bytes::from_static(b"data: a\r"));
    assert_eq!(p.next_frame(), None);
    p.restart();
    p.push(Bytes::from_static(b"\ndata: b\n\n"));
    // The LF is a blank line of the new stream (nothing to dispatch), then `b`.
    assert_eq!(p.next_frame(), Some(msg("b")));
}

#[test]
fn single_line_data_is_a_slice_of_the_input() {
    let input = Bytes::from_static(b"id: 1\ndata: {\"a\":1}\n\n");
    let range = input.as_ptr() as usize..input.as_ptr() as usize + input.len();
    let mut p = Parser::new(64);
    p.push(input.clone());
    let Some(Frame::Event(e)) = p.next_frame() else { panic!() };
    assert!(range.contains(&(e.data.as_ptr() as usize)), "data was copied");
}

#[test]
fn data_over_the_limit_is_truncated_and_flagged_whatever_the_chunking() {
    let mut input = b"id: 7\ndata: ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 100));
    input.extend_from_slice(b"\ndata: yy\n\ndata: next\n\n");
    let expected = vec![
        Frame::Event(Event {
            event_type: "message".into(),
            id: "7".into(),
            data: Bytes::from(vec![b'x'; 10]),
            too_large: Some(TooLarge { field: "data", bytes: 103 }),
        }),
        ev("message", "7", b"next"),
    ];
    assert_eq!(parse_with(10, &[&input]).0, expected);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(parse_with(10, &bytes).0, expected);
    let sevens: Vec<&[u8]> = input.chunks(7).collect();
    assert_eq!(parse_with(10, &sevens).0, expected);
    // Several lines that each fit but together do not.
    let (frames, _) = parse_with(10, &[b"data: 123456\ndata: 789012\n\n"]);
    let Frame::Event(e) = &frames[0] else { panic!() };
    assert_eq!((&e.data[..], e.too_large), (&b"123456\n789"[..], Some(TooLarge { field: "data", bytes: 13 })));
    // Exactly at the limit is fine.
    assert_eq!(parse_with(10, &[b"data: 0123456789\n\n"]).0, [msg("0123456789")]);
}

#[test]
fn event_and_id_over_the_limit_flag_the_event_and_are_not_applied() {
    let long = "e".repeat(50);
    let input = format!("id: 1\ndata: a\n\nevent: {long}\ndata: b\n\nid: {long}\ndata: c\n\ncomment-free: {long}\n: {long}\ndata: d\n\n");
    for size in [input.len(), 1, 3, 16] {
        let chunks: Vec<&[u8]> = input.as_bytes().chunks(size).collect();
        let (frames, last_id) = parse_with(10, &chunks);
        let flagged = |data: &[u8], field: &'static str| {
            Frame::Event(Event {
                event_type: "message".into(),
                id: "1".into(),
                data: Bytes::copy_from_slice(data),
                too_large: Some(TooLarge { field, bytes: 50 }),
            })
        };
        assert_eq!(
            frames,
            [ev("message", "1", b"a"), flagged(b"b", "event"), flagged(b"c", "id"), ev("message", "1", b"d")],
            "chunks of {size}"
        );
        assert_eq!(last_id, "1");
    }
}

#[test]
fn a_huge_line_never_grows_the_buffers_past_the_limit() {
    let max = 1024;
    let mut p = Parser::new(max);
    p.push(Bytes::from_static(b"data: "));
    let chunk = Bytes::from(vec![b'z'; 4096]);
    for _ in 0..2048 {
        // 8 MiB in all.
        p.push(chunk.clone());
        assert_eq!(p.next_frame(), None);
        assert!(p.buffered() <= 4 * max, "buffered {}", p.buffered());
    }
    p.push(Bytes::from_static(b"\n\n"));
    let Some(Frame::Event(e)) = p.next_frame() else { panic!() };
    assert_eq!(e.data.len(), max);
    assert_eq!(e.too_large, Some(TooLarge { field: "data", bytes: 8 << 20 }));
    // The same for a comment line: nothing kept.
    p.push(Bytes::from_static(b":"));
    for _ in 0..256 {
        p.push(chunk.clone());
        assert_eq!(p.next_frame(), None);
        assert!(p.buffered() <= 4 * max);
    }
    p.push(Bytes::from_static(b"\ndata: ok\n\n"));
    assert_eq!(p.next_frame(), Some(msg("ok")));
}

/// A stream with every feature: BOM, all line ends, comments, multi-line data, ids, types,
/// retry, a field without colon, invalid UTF-8, an event over the limit (16 bytes), a cut end.
const SAMPLE: &[u8] = b"\xEF\xBB\xBF: hi\r\nretry: 300\r\nid: 1\r\nevent: trade\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n\
data\r\rid: 2\rdata: \xFF\xFEraw\r\r: keep-alive\n\nevent: big\ndata: 0123456789abcdefXYZ\n\nid\ndata: last\n\ndata: cut";

fn whole(max: usize, input: &[u8]) -> (Vec<Frame>, String) {
    parse_with(max, &[input])
}

#[test]
fn the_sample_parses_as_expected() {
    let (frames, last_id) = whole(16, SAMPLE);
    assert_eq!(
        frames,
        [
            retry(300),
            ev("trade", "1", b"{\"a\":\n1}"),
            ev("message", "1", b""),
            ev("message", "2", b"\xFF\xFEraw"),
            Frame::Event(Event {
                event_type: "big".into(),
                id: "2".into(),
                data: Bytes::from_static(b"0123456789abcdef"),
                too_large: Some(TooLarge { field: "data", bytes: 19 }),
            }),
            ev("message", "", b"last"),
        ]
    );
    assert_eq!(last_id, "");
}

#[test]
fn the_sample_parses_the_same_split_at_any_one_or_two_positions() {
    let expected = whole(16, SAMPLE);
    for i in 0..=SAMPLE.len() {
        assert_eq!(parse_with(16, &[&SAMPLE[..i], &SAMPLE[i..]]), expected, "split at {i}");
        for j in i..=SAMPLE.len() {
            assert_eq!(parse_with(16, &[&SAMPLE[..i], &SAMPLE[i..j], &SAMPLE[j..]]), expected, "split at {i} and {j}");
        }
    }
}

/// Pieces of event streams, glued at random, plus arbitrary bytes.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"data".to_vec()),
        Just(b"event: t".to_vec()),
        Just(b"id: 9".to_vec()),
        Just(b"id".to_vec()),
        Just(b"retry: 12".to_vec()),
        Just(b": c".to_vec()),
        Just(b"\xFF".to_vec()),
        Just(b"0123456789abcdefghij".to_vec()),
        prop::collection::vec(any::<u8>(), 0..8),
    ]
}

fn chunks_at(input: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for c in cuts.into_iter().chain([input.len()]) {
        out.push(input[prev..c].to_vec());
        prev = c;
    }
    out
}

proptest! {
    /// However the input is cut into chunks, the parser reports the same frames and ends with
    /// the same last event id as when it gets the input whole.
    #[test]
    fn chunking_never_changes_the_result(
        pieces in prop::collection::vec(piece(), 0..40),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        max in prop_oneof![Just(4usize), Just(16), Just(1 << 20)],
    ) {
        let input: Vec<u8> = pieces.concat();
        let chunks = chunks_at(&input, &cuts);
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(parse_with(max, &refs), whole(max, &input));
    }

    /// Arbitrary bytes never panic, and no event's data is over the limit.
    #[test]
    fn arbitrary_bytes_are_parsed_within_the_limit(input in prop::collection::vec(any::<u8>(), 0..300), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        let chunks = chunks_at(&input, &cuts);
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let (frames, _) = parse_with(8, &refs);
        for frame in frames {
            if let Frame::Event(e) = frame {
                prop_assert!(e.data.len() <= 8);
            }
        }
    }
}
