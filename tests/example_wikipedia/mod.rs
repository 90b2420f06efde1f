//! Helpers of the `wikipedia` example's tests: the example itself, and the rows its lake must
//! hold, computed from the bundled sample independently of the pipeline.
#![allow(dead_code)]

#[path = "../../examples/wikipedia.rs"]
pub mod example;

use example::{Change, Row};

/// The bundled events, decoded (one JSON document per item).
pub fn sample() -> Vec<bytes::Bytes> {
    example::sample_stream::bundled().expect("the bundled sample decompresses")
}

/// The CSV rows (as text cells) the lake must hold for `events`: canaries dropped, the
/// tutorial's columns, `length_new` from `length.new`.
pub fn expected_rows(events: &[bytes::Bytes]) -> Vec<Vec<String>> {
    let rows: Vec<Row> = events
        .iter()
        .map(|e| serde_json::from_slice::<Change>(e).expect("the sample decodes"))
        .filter(|c| !c.is_canary())
        .map(Row::from)
        .collect();
    let mut csv = csv::Writer::from_writer(Vec::new());
    for row in &rows {
        csv.serialize(row).expect("encode");
    }
    let bytes = csv.into_inner().expect("flush");
    let mut rows = parse_csv(&bytes, true);
    rows.sort();
    rows
}

/// The rows of one CSV file; checks its header when `header` is true.
pub fn parse_csv(bytes: &[u8], header: bool) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(header).from_reader(bytes);
    if header {
        let got: Vec<String> = reader.headers().expect("a header row").iter().map(str::to_owned).collect();
        assert_eq!(got.join(","), example::COLUMNS);
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
