//! Unit and property tests of the pure parts: the JSON splitter (fed in chunks of any size),
//! the ledger's lines, names, formats and the settle rule.

use super::decode::{archive_candidate, count_per_file, settled, wanted, FileFormat, Look};
use super::json::{JsonSplitter, Piece, MAX_ELEMENT_BYTES};
use super::ledger::{parse, Entry, Ledger};
use super::stream::{decode_piece, move_no_clobber, read_json};
use super::WatchFormat;
use crate::batch::Incoming;
use crate::record::Position;
use crate::Json;
use bytes::Bytes;
use proptest::prelude::*;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Split `input` fed in chunks of `chunk` bytes: (element text, line) or (error, line).
fn split(input: &[u8], chunk: usize) -> Vec<(String, u64)> {
    let mut s = JsonSplitter::new();
    let mut out = Vec::new();
    let mut push = |p: Piece| match p {
        Piece::Element { raw, line } => out.push((String::from_utf8_lossy(&raw).into_owned(), line)),
        Piece::Broken { error, line, .. } => out.push((format!("!{error}"), line)),
    };
    for c in input.chunks(chunk.max(1)) {
        s.buf.extend_from_slice(c);
        while let Some(p) = s.next(false) {
            push(p);
        }
    }
    while let Some(p) = s.next(true) {
        push(p);
    }
    out
}

fn texts(v: &[(String, u64)]) -> Vec<&str> {
    v.iter().map(|(t, _)| t.as_str()).collect()
}

#[test]
fn an_array_is_split_into_its_elements_with_their_lines() {
    let input = b"\xEF\xBB\xBF[\n  {\"a\": \"x, ] } \\\" y\"},\n  [1, [2]],\n  \"s\\\"\",\n  12.5e3,\n  null\n]\n";
    let got = split(input, 1000);
    assert_eq!(texts(&got), ["{\"a\": \"x, ] } \\\" y\"}", "[1, [2]]", "\"s\\\"\"", "12.5e3", "null"]);
    assert_eq!(got.iter().map(|(_, l)| *l).collect::<Vec<_>>(), [2, 3, 4, 5, 6]);
}

#[test]
fn top_level_values_one_after_the_other_are_records() {
    let input = b"{\"a\": 1}\n{\n  \"b\": 2\n}\n\n{\"c\": 3}";
    let got = split(input, 1000);
    assert_eq!(texts(&got), ["{\"a\": 1}", "{\n  \"b\": 2\n}", "{\"c\": 3}"]);
    assert_eq!(got.iter().map(|(_, l)| *l).collect::<Vec<_>>(), [1, 2, 6]);
}

#[test]
fn broken_input_never_stops_the_splitter() {
    // A stray bracket, an unclosed array: elements of their own and a report.
    let got = split(b"[{\"a\": 1}, }, {\"b\": 2}", 1000);
    assert_eq!(texts(&got), ["{\"a\": 1}", "}", "{\"b\": 2}", "!line 1: the file ends inside the JSON array (no closing `]`)"]);
    // A truncated element runs to the end of the input.
    let got = split(b"[{\"a\": 1}, {\"b\": ", 1000);
    assert_eq!(texts(&got)[..2], ["{\"a\": 1}", "{\"b\": "]);
    assert!(split(b"", 10).is_empty() && split(b"  \n ", 1).is_empty() && split(b"[]", 1).is_empty());
}

#[test]
fn an_oversized_element_is_reported_and_skipped() {
    let big = format!("[{{\"a\": \"{}\"}}, {{\"b\": 1}}]", "x".repeat(MAX_ELEMENT_BYTES + 10));
    let got = split(big.as_bytes(), 1 << 20);
    assert_eq!(got.len(), 2, "{:?}", got.iter().map(|(t, _)| t.len()).collect::<Vec<_>>());
    assert!(got[0].0.starts_with("!line 1: a JSON element larger than"));
    assert_eq!(got[1].0, "{\"b\": 1}");
}

proptest! {
    /// Whatever the chunk size, the same elements with the same lines; and serde_json agrees
    /// with the split of a generated array.
    #[test]
    fn chunking_changes_nothing(values in proptest::collection::vec(any::<(i32, String, bool)>(), 0..20), chunk in 1usize..64, pretty: bool) {
        let array: Vec<serde_json::Value> = values.iter().map(|(n, s, b)| serde_json::json!({"n": n, "s": s, "b": [b, {"x": s}]})).collect();
        let text = if pretty { serde_json::to_string_pretty(&array).unwrap() } else { serde_json::to_string(&array).unwrap() };
        let whole = split(text.as_bytes(), usize::MAX);
        prop_assert_eq!(&split(text.as_bytes(), chunk), &whole);
        let parsed: Vec<serde_json::Value> = whole.iter().map(|(t, _)| serde_json::from_str(t).unwrap()).collect();
        prop_assert_eq!(parsed, array);
    }
}

#[test]
fn pieces_decode_into_records_or_failures_with_their_bytes() {
    let ok: Incoming<Json, ()> = decode_piece(Piece::Element { raw: Bytes::from_static(b"{\"n\": 1}"), line: 3 });
    let (record, meta) = ok.item.unwrap();
    assert_eq!(record.get("n"), Some(&serde_json::json!(1)));
    assert_eq!((meta.position, meta.raw.as_deref()), (Position::Line(3), Some(&b"{\"n\": 1}"[..])));
    let bad: Incoming<Json, ()> = decode_piece(Piece::Element { raw: Bytes::from_static(b"{\"n\": tru}"), line: 7 });
    let failure = bad.item.unwrap_err();
    assert_eq!((&failure.payload[..], failure.meta.position), (&b"{\"n\": tru}"[..], Position::Line(7)));
    assert!(failure.error.starts_with("line 7: "), "{}", failure.error);
}

#[test]
fn read_json_streams_a_file_in_chunks() {
    let text = format!("[{}]", (0..3000).map(|n| format!("{{\"n\": {n}}}")).collect::<Vec<_>>().join(","));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut chunks = 0;
    let mut count = 0;
    read_json::<Json, _>(text.as_bytes(), 4096, "t.json", &shutdown, |chunk| {
        chunks += 1;
        count += chunk.len();
        true
    });
    assert_eq!(count, 3000);
    assert!(chunks >= 1);
}

#[test]
fn formats_come_from_the_extension_in_auto() {
    let of = |p: &str| WatchFormat::Auto.of(Path::new(p));
    assert_eq!(
        (of("a.jsonl"), of("a.NDJSON"), of("a.csv"), of("a.json"), of("a.txt")),
        (FileFormat::Jsonl, FileFormat::Jsonl, FileFormat::Csv, FileFormat::Json, FileFormat::Json)
    );
    assert_eq!(WatchFormat::Csv.of(Path::new("a.json")), FileFormat::Csv);
    assert!("parquet".parse::<WatchFormat>().unwrap_err().to_string().contains("auto"));
}

#[test]
fn names_hidden_files_and_patterns() {
    let patterns = super::decode::compile_patterns(&["*.json".into(), "orders-??.csv".into()]).unwrap();
    assert!(wanted("a.json", &patterns) && wanted("orders-01.csv", &patterns));
    assert!(!wanted(".a.json", &patterns) && !wanted("a.json.tmp", &patterns) && !wanted("orders-1.csv", &patterns));
    assert!(super::decode::compile_patterns(&[]).is_err());
    assert!(super::decode::compile_patterns(&["[".into()]).is_err());
}

#[test]
fn archive_names_get_a_suffix_before_the_extension() {
    assert_eq!(archive_candidate(Path::new("a/x.json"), 0), Path::new("a/x.json"));
    assert_eq!(archive_candidate(Path::new("a/x.json"), 2), Path::new("a/x.2.json"));
    assert_eq!(archive_candidate(Path::new("notes"), 1), Path::new("notes.1"));
    assert_eq!(archive_candidate(Path::new("x.tar.gz"), 1), Path::new("x.tar.1.gz"));
}

#[test]
fn moving_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("in/a.json"), dir.path().join("in/b.json"));
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::write(&a, b"first").unwrap();
    std::fs::write(&b, b"second").unwrap();
    let to = dir.path().join("out/x.json");
    assert_eq!(move_no_clobber(&a, &to).unwrap(), to);
    assert_eq!(move_no_clobber(&b, &to).unwrap(), dir.path().join("out/x.1.json"));
    assert_eq!(std::fs::read(&to).unwrap(), b"first");
    assert_eq!(std::fs::read(dir.path().join("out/x.1.json")).unwrap(), b"second");
    assert!(!a.exists() && !b.exists());
}

#[test]
fn a_file_is_complete_when_unchanged_at_two_looks_and_old_enough() {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
    let look = Look { size: 10, modified: t0 };
    let settle = Duration::from_millis(500);
    assert!(settled(Some(look), look, t0 + settle, settle));
    assert!(!settled(None, look, t0 + settle, settle), "one look is not enough");
    assert!(!settled(Some(look), look, t0 + settle / 2, settle), "modified too recently");
    assert!(!settled(Some(Look { size: 9, ..look }), look, t0 + settle, settle), "it grew");
    assert!(!settled(Some(look), look, t0 - settle, settle), "a modification time in the future waits");
}

#[test]
fn batches_are_counted_per_file() {
    assert_eq!(count_per_file(&[1, 1, 2, 2, 2, 3]), [(1, 2), (2, 3), (3, 1)]);
    assert_eq!(count_per_file(&[]), []);
    assert_eq!(count_per_file(&[4, 5, 4]), [(4, 2), (5, 1)]);
}

fn entry(size: u64) -> Entry {
    Entry { size, modified_ns: 1_700_000_000_123_456_789, head: "00ff".into(), seen_only: false }
}

#[test]
fn the_ledger_survives_a_reopen_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let (mut ledger, existed) = Ledger::open(&path).unwrap();
    assert!(!existed);
    ledger.record(vec![("a.json".into(), entry(1)), ("sub/b.json".into(), entry(2))]).unwrap();
    ledger.remove(&["a.json".into(), "never.json".into()]).unwrap();
    drop(ledger);
    let (ledger, existed) = Ledger::open(&path).unwrap();
    assert!(existed);
    assert_eq!((ledger.get("a.json"), ledger.get("sub/b.json")), (None, Some(&entry(2))));
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1, "compacted at the open");
}

#[test]
fn a_torn_last_line_is_ignored_and_a_corrupt_one_is_an_error() {
    let p = Path::new("ledger");
    let good = br#"{"path":"a","size":1,"modified_ns":5,"head":"x"}"#;
    let mut torn = good.to_vec();
    torn.extend_from_slice(b"\n{\"path\":\"b\",\"si");
    let (entries, lines) = parse(&torn, p).unwrap();
    assert_eq!((entries.len(), lines), (1, 1));
    let mut corrupt = b"garbage\n".to_vec();
    corrupt.extend_from_slice(good);
    corrupt.push(b'\n');
    assert!(parse(&corrupt, p).unwrap_err().to_string().contains("line 1"));
}
