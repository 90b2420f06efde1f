use super::decode::LineDecoder;
use super::stream::{read_csv, read_jsonl};
use super::*;
use crate::batch::FailureKind;
use crate::record::{Meta, Position};
use crate::Json;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn decode_all(input: &[u8], split_every: usize) -> Vec<Incoming<Json, ()>> {
    let mut decoder = LineDecoder::<Json>::new();
    let mut out = Vec::new();
    for piece in input.chunks(split_every.max(1)) {
        decoder.pending.extend_from_slice(piece);
        let mut lines = decoder.take_complete();
        out.extend(std::iter::from_fn(|| decoder.next_line(&mut lines)));
    }
    let mut rest = decoder.take_rest();
    out.extend(std::iter::from_fn(|| decoder.next_line(&mut rest)));
    out.into_iter().map(Result::unwrap).collect()
}

fn summary(items: &[Incoming<Json, ()>]) -> Vec<(u64, Result<Json, Vec<u8>>)> {
    items
        .iter()
        .map(|inc| match &inc.item {
            Ok((r, m)) => (line_of(m), Ok(r.clone())),
            Err(f) => (line_of(&f.meta), Err(f.payload.to_vec())),
        })
        .collect()
}

fn line_of(meta: &Meta) -> u64 {
    match meta.position {
        Position::Line(n) => n,
        _ => panic!("not a line: {:?}", meta.position),
    }
}

fn rec(v: serde_json::Value) -> Json {
    serde_json::from_value(v).unwrap()
}

#[test]
fn lines_blank_crlf_bom_and_last_line() {
    let input = b"\xEF\xBB\xBF{\"a\":1}\r\n\n   \n{\"a\":2}\n{bad\n{\"a\":3}";
    for split in [1, 2, 3, 5, 7, 1000] {
        let items = decode_all(input, split);
        let got = summary(&items);
        assert_eq!(
            got,
            vec![(1, Ok(rec(json!({"a": 1})))), (4, Ok(rec(json!({"a": 2})))), (5, Err(b"{bad".to_vec())), (6, Ok(rec(json!({"a": 3}))))],
            "split {split}"
        );
        let Ok((_, meta)) = &items[0].item else { panic!() };
        assert_eq!(meta.raw.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(items[0].size, 7);
        let Err(f) = &items[2].item else { panic!() };
        assert!(f.error.starts_with("line 5: "), "{}", f.error);
        assert_eq!(f.kind, FailureKind::Decode);
    }
}

#[test]
fn invalid_utf8_and_truncated_last_line_fail() {
    let items = decode_all(b"{\"a\":\"\xff\"}\n{\"a\":", 4);
    let got = summary(&items);
    assert_eq!(got, vec![(1, Err(b"{\"a\":\"\xff\"}".to_vec())), (2, Err(b"{\"a\":".to_vec()))]);
}

#[test]
fn bom_only_or_empty() {
    assert!(decode_all(b"", 1).is_empty());
    assert!(decode_all(b"\xEF\xBB\xBF", 1).is_empty());
    assert!(decode_all(b"\xEF\xBB", 1).len() == 1, "a partial BOM is a bad line");
}

#[test]
fn csv_rows_dynamic_and_failures() {
    let input = "id,name\n1,\"a,b\"\n2\n3,\"multi\nline\"\n";
    let mut got = Vec::new();
    read_csv::<Json, _>(input.as_bytes(), "t.csv", &CancellationToken::new(), |chunk| {
        got.extend(chunk);
        true
    });
    assert_eq!(got.len(), 3);
    let Ok(Incoming { item: Ok((r, m)), .. }) = &got[0] else { panic!() };
    assert_eq!(r, &rec(json!({"id": "1", "name": "a,b"})));
    assert_eq!(m.position, Position::Line(1));
    let Ok(Incoming { item: Err(f), .. }) = &got[1] else { panic!() };
    assert_eq!(&f.payload[..], b"2");
    assert_eq!(f.meta.position, Position::Line(2));
    assert!(f.error.contains("record 2 (line 3)"), "{}", f.error);
    let Ok(Incoming { item: Ok((r, m)), .. }) = &got[2] else { panic!() };
    assert_eq!(r, &rec(json!({"id": "3", "name": "multi\nline"})));
    assert_eq!(m.position, Position::Line(3));
}

proptest::proptest! {
    /// However the bytes are cut into reads, the same records come out at the same lines.
    #[test]
    fn any_chunking_gives_the_same_lines(
        values in proptest::collection::vec(proptest::option::of("[a-z\\\\\"\n é🦀]{0,12}"), 0..30),
        split in 1usize..40,
        crlf in proptest::bool::ANY,
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut input = String::new();
        let mut expected = Vec::new();
        for (i, v) in values.iter().enumerate() {
            match v {
                Some(s) => {
                    let r = rec(json!({ "s": s }));
                    input.push_str(&serde_json::to_string(&r).unwrap());
                    expected.push((i as u64 + 1, Ok(r)));
                }
                None => input.push_str("  "),
            }
            input.push_str(eol);
        }
        let whole = summary(&decode_all(input.as_bytes(), usize::MAX));
        proptest::prop_assert_eq!(&whole, &expected);
        proptest::prop_assert_eq!(summary(&decode_all(input.as_bytes(), split)), expected);
    }
}

/// Hands out `pieces` one read at a time (after an `Interrupted`), then fails with `error`.
struct Pieces {
    pieces: std::collections::VecDeque<&'static [u8]>,
    interrupted: bool,
    error: Option<std::io::ErrorKind>,
}

impl std::io::Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.interrupted = !self.interrupted;
        if self.interrupted {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        match self.pieces.pop_front() {
            Some(piece) => {
                buf[..piece.len()].copy_from_slice(piece);
                Ok(piece.len())
            }
            None => self.error.map_or(Ok(0), |kind| Err(kind.into())),
        }
    }
}

fn read_pieces(pieces: &[&'static [u8]], error: Option<std::io::ErrorKind>) -> Vec<Vec<Item<Json>>> {
    let input = Pieces { pieces: pieces.iter().copied().collect(), interrupted: false, error };
    let mut chunks = Vec::new();
    read_jsonl::<Json, _>(input, "t.jsonl", &CancellationToken::new(), |chunk| {
        chunks.push(chunk);
        true
    });
    chunks
}

#[test]
fn jsonl_reads_retry_interrupted_and_hand_over_each_read_lines() {
    let chunks = read_pieces(&[b"{\"a\":1}\n{\"a\"", b":2}\n", b"\n", b"{\"a\":3}"], None);
    let lines: Vec<Vec<u64>> =
        chunks.iter().map(|c| c.iter().map(|i| line_of(&i.as_ref().unwrap().item.as_ref().unwrap().1)).collect()).collect();
    // The blank line's read hands over nothing; the last line comes at the end of the input.
    assert_eq!(lines, vec![vec![1], vec![2], vec![4]]);
}

#[test]
fn jsonl_read_error_comes_after_the_lines_before_it() {
    let chunks = read_pieces(&[b"{\"a\":1}\n{\"a\":"], Some(std::io::ErrorKind::BrokenPipe));
    assert_eq!(chunks.len(), 2);
    assert!(chunks[0][0].is_ok());
    let Err(Error::Source(e)) = &chunks[1][0] else { panic!("not a source error: {:?}", chunks[1]) };
    assert!(e.to_string().contains("t.jsonl"), "{e}");
}

#[test]
fn jsonl_stops_when_the_stream_is_dropped_or_on_shutdown() {
    let input = Pieces { pieces: [&b"{}\n"[..], b"{}\n", b"{}\n"].into_iter().collect(), interrupted: false, error: None };
    let mut sends = 0;
    read_jsonl::<Json, _>(input, "t.jsonl", &CancellationToken::new(), |_| {
        sends += 1;
        false
    });
    assert_eq!(sends, 1, "a refused chunk ends the reading");
    let token = CancellationToken::new();
    token.cancel();
    let mut got = Vec::new();
    read_jsonl::<Json, _>(&b"{}\n"[..], "t.jsonl", &token, |chunk| {
        got.extend(chunk);
        true
    });
    assert!(got.is_empty());
}

#[test]
fn csv_stops_on_shutdown() {
    let input = "id\n1\n2\n";
    let token = CancellationToken::new();
    token.cancel();
    let mut got = Vec::new();
    read_csv::<Json, _>(input.as_bytes(), "t.csv", &token, |chunk| {
        got.extend(chunk);
        true
    });
    assert!(got.is_empty());
}
