//! Helpers of the `wikipedia` example's tests: the example itself, and the rows its lake must
//! hold, computed here from the raw JSON of the bundled sample with the tutorial's rules
//! written out, independently of the example's own types (`Change`, `Row`, `is_canary`,
//! `COLUMNS`), so that a mistake there cannot hide in the expected values.
#![allow(dead_code)]

#[path = "../../examples/wikipedia.rs"]
pub mod example;

use serde_json::Value;

/// The tutorial's columns, in order: the lake's CSV header.
pub const HEADER: [&str; 9] = ["id", "type", "wiki", "title", "user", "bot", "timestamp", "comment", "length_new"];

/// The bundled events (`examples/data/recentchange.jsonl.gz`), one JSON document per item,
/// decompressed here rather than by the example.
pub fn sample() -> Vec<bytes::Bytes> {
    use std::io::Read;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/recentchange.jsonl.gz");
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("the bundled sample")).read_to_end(&mut text).expect("gunzip");
    text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(bytes::Bytes::copy_from_slice).collect()
}

/// Wikimedia's canary events: `meta.domain` is `"canary"`.
pub fn is_canary(event: &Value) -> bool {
    event.pointer("/meta/domain") == Some(&Value::String("canary".into()))
}

/// A CSV cell for a JSON value: absent or null is empty, a string as is, a number or a
/// boolean as JSON writes it.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        Some(other) => panic!("the lake has no column for a nested value: {other}"),
    }
}

/// The row of one event: the top-level fields of the header, `length_new` from `length.new`.
pub fn row(event: &Value) -> Vec<String> {
    HEADER
        .iter()
        .map(|&column| match column {
            "length_new" => cell(event.pointer("/length/new")),
            name => cell(event.get(name)),
        })
        .collect()
}

/// The CSV rows (as text cells) the lake must hold for `events`, sorted: canaries dropped,
/// one row per other event.
pub fn expected_rows(events: &[bytes::Bytes]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| serde_json::from_slice::<Value>(e).expect("the sample is JSON"))
        .filter(|e| !is_canary(e))
        .map(|e| row(&e))
        .collect();
    rows.sort();
    rows
}

/// The rows of one CSV file; checks its header when `header` is true.
pub fn parse_csv(bytes: &[u8], header: bool) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(header).from_reader(bytes);
    if header {
        let got: Vec<String> = reader.headers().expect("a header row").iter().map(str::to_owned).collect();
        assert_eq!(got, HEADER);
    }
    reader.records().map(|r| r.expect("valid CSV").iter().map(str::to_owned).collect()).collect()
}

/// Every row of every CSV file in `dir` (each file checked for its header and at most 100
/// rows), sorted.
pub fn lake_rows(dir: &std::path::Path) -> (Vec<Vec<String>>, usize) {
    let mut rows = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(dir).expect("the lake exists") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        assert!(name.ends_with(".csv") && !name.starts_with('.'), "unexpected file in the lake: {name}");
        let file_rows = parse_csv(&std::fs::read(&path).expect("read"), true);
        assert!(!file_rows.is_empty() && file_rows.len() <= 100, "{name}: {} rows", file_rows.len());
        rows.extend(file_rows);
        files += 1;
    }
    rows.sort();
    (rows, files)
}
