//! The file source and the file sink against real files.

use etl::batch::{Batch, BatchOptions, FailureKind};
use etl::format::Format;
use etl::record::{Field, Meta, Position, Record, Schema};
use etl::sink::{Rolling, Sink};
use etl::source::{Source, SourceContext};
use etl::Json;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// Write a batch and commit it, as the pipeline does when the source is idle.
async fn write_committed<T: Record + Sync>(sink: &mut etl::sink::FileSink, records: &[T]) -> etl::sink::Written {
    let written = Sink::<T>::write(sink, records).await.unwrap();
    Sink::<T>::commit(sink).await.unwrap();
    written
}

/// A typed record, with `Record` implemented by hand (the derive does not exist yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: i64,
    name: String,
    note: Option<String>,
    amount: Option<i64>,
}

impl Record for Order {
    fn schema() -> &'static Schema {
        static S: Schema = Schema {
            name: "Order",
            fields: &[
                Field { name: "id", rust_name: "id", ty: "i64" },
                Field { name: "name", rust_name: "name", ty: "String" },
                Field { name: "note", rust_name: "note", ty: "Option<String>" },
                Field { name: "amount", rust_name: "amount", ty: "Option<i64>" },
            ],
        };
        &S
    }
}

fn rec(v: serde_json::Value) -> Json {
    serde_json::from_value(v).unwrap()
}

fn awkward_orders() -> Vec<Order> {
    vec![
        Order { id: 1, name: "plain".into(), note: None, amount: Some(1_000_000_000_000) },
        Order { id: 2, name: "comma, inside".into(), note: Some("\"quoted\" and \"\"double\"\"".into()), amount: None },
        Order {
            id: 3, name: "line\nbreak\r\nand crlf".into(), note: Some("emoji 🦀🚀 and RTL שלום עולם مرحبا".into()), amount: Some(-5)
        },
        Order { id: 4, name: " leading and trailing spaces ".into(), note: Some(",\n\"".into()), amount: Some(0) },
    ]
}

/// Every batch of a source, run to the end.
async fn read_all<S: Source>(source: S) -> Vec<Batch<S::Item>> {
    let stream = source.open(SourceContext::new(CancellationToken::new())).await.unwrap();
    stream.map(|b| b.unwrap()).collect().await
}

async fn read_records<S: Source>(source: S) -> Vec<S::Item> {
    read_all(source).await.into_iter().flat_map(|b| b.into_parts().records).collect()
}

/// Sorted file names of a directory.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

fn data_files(dir: &Path) -> Vec<PathBuf> {
    names(dir).into_iter().filter(|n| !n.starts_with('.')).map(|n| dir.join(n)).collect()
}

fn line_of(meta: &Meta) -> u64 {
    match meta.position {
        Position::Line(n) => n,
        ref other => panic!("not a line position: {other:?}"),
    }
}

#[tokio::test]
async fn jsonl_bad_lines_become_failures_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    let mut content = Vec::new();
    content.extend_from_slice(b"\xEF\xBB\xBF{\"id\":1,\"name\":\"a\",\"note\":null,\"amount\":null}\r\n"); // 1 BOM + CRLF
    content.extend_from_slice(b"\n"); // 2 blank
    content.extend_from_slice(b"{\"id\":2,\"name\":\"b\"\n"); // 3 bad JSON
    content.extend_from_slice(b"{\"id\":3,\"name\":\"\xff\xfe\",\"note\":null,\"amount\":null}\n"); // 4 invalid UTF-8
    content.extend_from_slice(b"   \r\n"); // 5 blank with CR
    content.extend_from_slice(b"{\"id\":\"four\",\"name\":\"d\",\"note\":null,\"amount\":null}\n"); // 6 wrong type
    content.extend_from_slice(b"{\"id\":5,\"name\":\"e\",\"note\":\"x\",\"amount\":7}\n"); // 7 good
    content.extend_from_slice(b"{\"id\":6,\"name\":\"f\",\"note\":null,\"amount\":9}"); // 8 good, no newline
    std::fs::write(&path, &content).unwrap();

    let batches = read_all(etl::source::file::<Order>(path.to_str().unwrap()).batch_size(2)).await;
    assert!(batches.iter().all(|b| b.origin().as_ref() == format!("file {}", path.display())));
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for batch in batches {
        for (r, m) in batch.iter_with_meta() {
            good.push((line_of(m), r.id, m.raw.clone().unwrap()));
        }
        for f in batch.failures() {
            assert_eq!(f.kind, FailureKind::Decode);
            assert!(f.error.starts_with(&format!("line {}: ", line_of(&f.meta))), "{}", f.error);
            bad.push((line_of(&f.meta), f.payload.to_vec()));
        }
    }
    assert_eq!(good.iter().map(|g| (g.0, g.1)).collect::<Vec<_>>(), [(1, 1), (7, 5), (8, 6)]);
    assert_eq!(&good[0].2[..], b"{\"id\":1,\"name\":\"a\",\"note\":null,\"amount\":null}", "no BOM, no CR in raw bytes");
    assert_eq!(&good[2].2[..], b"{\"id\":6,\"name\":\"f\",\"note\":null,\"amount\":9}");
    assert_eq!(
        bad,
        vec![
            (3, b"{\"id\":2,\"name\":\"b\"".to_vec()),
            (4, b"{\"id\":3,\"name\":\"\xff\xfe\",\"note\":null,\"amount\":null}".to_vec()),
            (6, b"{\"id\":\"four\",\"name\":\"d\",\"note\":null,\"amount\":null}".to_vec()),
        ]
    );
}

#[tokio::test]
async fn jsonl_large_file_with_lines_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.ndjson");
    let mut content = String::new();
    let mut expected = Vec::new();
    for i in 0..20_000u64 {
        // Varying lengths, so lines land across the 256 KiB chunk boundaries at many offsets,
        // plus a few lines longer than a whole chunk.
        let pad = if i % 5000 == 17 { "y".repeat(300 * 1024) } else { "x".repeat((i % 97) as usize) };
        let line = format!("{{\"id\":{i},\"pad\":\"{pad}\"}}\n");
        expected.push((i, line.len() as u64 - 1));
        content.push_str(&line);
    }
    assert!(content.len() > 4 * 256 * 1024);
    std::fs::write(&path, &content).unwrap();

    let batches = read_all(etl::source::file::<Json>(path.to_str().unwrap()).batch_size(1000)).await;
    let mut got = Vec::new();
    for batch in &batches {
        assert!(batch.failures().is_empty());
        for (r, m) in batch.iter_with_meta() {
            assert_eq!(line_of(m), r.get("id").unwrap().as_u64().unwrap() + 1);
            got.push((r.get("id").unwrap().as_u64().unwrap(), m.raw.as_ref().unwrap().len() as u64));
        }
    }
    assert_eq!(got, expected);
}

#[tokio::test]
async fn csv_round_trip_of_awkward_strings_typed() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let orders = awkward_orders();
    let mut sink = etl::sink::file(lake.to_str().unwrap()).format(Format::Csv).prefix("orders");
    Sink::<Order>::open(&mut sink, etl::sink::SinkContext::default()).await.unwrap();
    let written = write_committed(&mut sink, &orders).await;
    assert!(written.rejected.is_empty());
    Sink::<Order>::close(&mut sink).await.unwrap();

    let files = data_files(&lake);
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.starts_with("id,name,note,amount\n1,plain,,1000000000000\n"), "{text}");
    let back = read_records(etl::source::file::<Order>(files[0].to_str().unwrap())).await;
    assert_eq!(back, orders);

    // The same through JSONL.
    let mut sink = etl::sink::file(lake.to_str().unwrap()).prefix("jsonl");
    write_committed(&mut sink, &orders).await;
    let file = data_files(&lake).into_iter().find(|p| p.extension().unwrap() == "jsonl").unwrap();
    assert_eq!(read_records(etl::source::file::<Order>(file.to_str().unwrap())).await, orders);
}

#[tokio::test]
async fn csv_round_trip_of_awkward_strings_dynamic() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<Json> = awkward_orders()
        .into_iter()
        .map(|o| rec(json!({"id": o.id.to_string(), "name": o.name, "note": o.note.unwrap_or_default()})))
        .collect();
    let mut sink = etl::sink::file(dir.path().to_str().unwrap()).format(Format::Csv);
    write_committed(&mut sink, &records).await;
    let files = data_files(dir.path());
    let back = read_records(etl::source::file::<Json>(files[0].to_str().unwrap())).await;
    assert_eq!(back, records);
}

#[tokio::test]
async fn csv_source_failures_and_positions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.data");
    std::fs::write(&path, "id,name,note,amount\n1,a,,\nx,b,,\n3,\"multi\nline\",n,4\n4,too,many,cells,here\n5,e,,6").unwrap();
    let batches = read_all(etl::source::file::<Order>(path.to_str().unwrap()).format(Format::Csv)).await;
    let good: Vec<(u64, i64)> = batches.iter().flat_map(|b| b.iter_with_meta().map(|(r, m)| (line_of(m), r.id))).collect();
    assert_eq!(good, [(1, 1), (3, 3), (5, 5)]);
    let bad: Vec<(u64, Vec<u8>)> =
        batches.iter().flat_map(|b| b.failures().iter().map(|f| (line_of(&f.meta), f.payload.to_vec()))).collect();
    assert_eq!(bad, [(2, b"x,b,,".to_vec()), (4, b"4,too,many,cells,here".to_vec())]);
}

#[tokio::test]
async fn integer_ids_stay_integers_next_to_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let records = vec![
        rec(json!({"id": 1_000_000_000u64, "v": null})),
        rec(json!({"id": 2, "v": 2.5})),
        rec(json!({"id": 9_007_199_254_740_993u64, "v": 1})),
    ];
    let mut jsonl = etl::sink::file(dir.path().to_str().unwrap()).prefix("j");
    write_committed(&mut jsonl, &records).await;
    let mut csv = etl::sink::file(dir.path().to_str().unwrap()).prefix("c").format(Format::Csv);
    write_committed(&mut csv, &records).await;
    let typed = [
        Order { id: 1_000_000_000, name: "a".into(), note: None, amount: None },
        Order { id: 2, name: "b".into(), note: None, amount: Some(3_000_000_000) },
    ];
    let mut typed_sink = etl::sink::file(dir.path().to_str().unwrap()).prefix("t").format(Format::Csv);
    write_committed(&mut typed_sink, &typed).await;

    let files = data_files(dir.path());
    let text = |prefix: &str| {
        std::fs::read_to_string(files.iter().find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix)).unwrap()).unwrap()
    };
    assert_eq!(text("c-"), "id,v\n1000000000,\n2,2.5\n9007199254740993,1\n");
    assert_eq!(text("j-"), "{\"id\":1000000000,\"v\":null}\n{\"id\":2,\"v\":2.5}\n{\"id\":9007199254740993,\"v\":1}\n");
    assert_eq!(text("t-"), "id,name,note,amount\n1000000000,a,,\n2,b,,3000000000\n");
    let jsonl_file = files.iter().find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("j-")).unwrap();
    assert_eq!(read_records(etl::source::file::<Json>(jsonl_file.to_str().unwrap())).await, records);
}

#[tokio::test]
async fn per_batch_files_appear_only_under_final_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = etl::sink::file(dir.path().to_str().unwrap()).format(Format::Csv).prefix("orders");
    Sink::<Order>::open(&mut sink, etl::sink::SinkContext::default()).await.unwrap();
    let orders = awkward_orders();
    let batches = [&orders[..1], &orders[1..3], &orders[3..]];
    for batch in batches {
        write_committed(&mut sink, batch).await;
    }
    Sink::<Order>::close(&mut sink).await.unwrap();
    let all = names(dir.path());
    assert_eq!(all.len(), 3, "{all:?}");
    for (i, name) in all.iter().enumerate() {
        assert!(!name.starts_with('.') && !name.ends_with(".tmp"), "{name}");
        assert!(name.starts_with("orders-") && name.ends_with(&format!("-{i:06}.csv")), "{name}");
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(text.matches("id,name,note,amount\n").count(), 1, "every file has its header");
        let back = read_records(etl::source::file::<Order>(dir.path().join(name).to_str().unwrap())).await;
        assert_eq!(back, batches[i]);
    }
    // A second sink on the same directory never reuses a name.
    let mut again = etl::sink::file(dir.path().to_str().unwrap()).format(Format::Csv).prefix("orders");
    Sink::<Order>::open(&mut again, etl::sink::SinkContext::default()).await.unwrap();
    write_committed(&mut again, &orders[..1]).await;
    assert_eq!(names(dir.path()).len(), 4);
}

#[tokio::test]
async fn size_rolling_respects_the_limit_with_one_header_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let max = 300u64;
    let mut sink = etl::sink::file(dir.path().to_str().unwrap()).format(Format::Csv).prefix("roll").rolling(Rolling::Size(max));
    Sink::<Order>::open(&mut sink, etl::sink::SinkContext::default()).await.unwrap();
    let mut all = Vec::new();
    for i in 0..40i64 {
        let batch: Vec<Order> =
            (0..(i % 3 + 1)).map(|j| Order { id: i * 10 + j, name: format!("name {i},{j}"), note: None, amount: Some(j) }).collect();
        write_committed(&mut sink, &batch).await;
        all.extend(batch);
    }
    // One batch larger than the limit on its own.
    let big: Vec<Order> = (0..20).map(|j| Order { id: 1000 + j, name: "big".repeat(10), note: Some("n".into()), amount: None }).collect();
    write_committed(&mut sink, &big).await;
    all.extend(big);
    write_committed(&mut sink, &all[..1]).await;
    all.push(all[0].clone());
    Sink::<Order>::close(&mut sink).await.unwrap();

    let files = data_files(dir.path());
    assert_eq!(names(dir.path()).len(), files.len(), "no hidden file left after close");
    assert!(files.len() > 3, "{files:?}");
    let mut oversized = 0;
    let mut back = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.starts_with("id,name,note,amount\n"));
        assert_eq!(text.matches("id,name,note,amount").count(), 1, "header once per file");
        if text.len() as u64 > max {
            oversized += 1;
            assert!(text.contains("bigbig"));
        }
        back.extend(read_records(etl::source::file::<Order>(file.to_str().unwrap())).await);
    }
    assert_eq!(oversized, 1);
    assert_eq!(back, all, "every record exactly once, in order");
}

#[tokio::test]
async fn size_rolling_recovers_after_a_crash() {
    for format in [Format::Csv, Format::Jsonl] {
        let dir = tempfile::tempdir().unwrap();
        let orders = awkward_orders();
        let mut sink = etl::sink::file(dir.path().to_str().unwrap()).format(format).prefix("crash").rolling(Rolling::Size(1 << 20));
        Sink::<Order>::open(&mut sink, etl::sink::SinkContext::default()).await.unwrap();
        write_committed(&mut sink, &orders[..2]).await;
        write_committed(&mut sink, &orders[2..]).await;
        drop(sink); // crash: no close

        let hidden: Vec<String> = names(dir.path()).into_iter().filter(|n| n.ends_with(".inprogress")).collect();
        assert_eq!(hidden.len(), 1, "{:?}", names(dir.path()));
        assert!(data_files(dir.path()).is_empty());
        // A third write that was cut off: bytes after the committed length, never acknowledged.
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(dir.path().join(&hidden[0])).unwrap();
            f.write_all(b"99,\"partial\nrow with a quote\" and more\n5,xx").unwrap();
        }
        // Leftover temporary file of a per-batch write, and a file of another prefix.
        std::fs::write(dir.path().join(".crash-0-1-000000.csv.tmp"), b"junk").unwrap();
        std::fs::write(dir.path().join(".other-0-1-000000.csv.10.inprogress"), b"untouched").unwrap();

        let mut next = etl::sink::file(dir.path().to_str().unwrap()).format(format).prefix("crash").rolling(Rolling::Size(1 << 20));
        Sink::<Order>::open(&mut next, etl::sink::SinkContext::default()).await.unwrap();
        assert_eq!(names(dir.path()).iter().filter(|n| n.starts_with(".crash")).count(), 0, "{:?}", names(dir.path()));
        assert!(dir.path().join(".other-0-1-000000.csv.10.inprogress").exists());
        let files = data_files(dir.path());
        assert_eq!(files.len(), 1);
        assert_eq!(read_records(etl::source::file::<Order>(files[0].to_str().unwrap())).await, orders, "{format:?}");
        // The new sink carries on in a file of its own.
        write_committed(&mut next, &orders[..1]).await;
        Sink::<Order>::close(&mut next).await.unwrap();
        assert_eq!(data_files(dir.path()).len(), 2);
    }
}

#[tokio::test]
async fn open_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jsonl");
    let e = etl::source::file::<Json>(missing.to_str().unwrap()).open(SourceContext::new(CancellationToken::new())).await.err().unwrap();
    assert!(matches!(&e, etl::Error::Source(c) if !c.is_retryable()), "{e:?}");
    assert!(e.to_string().contains("missing.jsonl"), "{e}");

    let unknown = dir.path().join("data.parquet");
    std::fs::write(&unknown, b"").unwrap();
    let e = etl::source::file::<Json>(unknown.to_str().unwrap()).open(SourceContext::new(CancellationToken::new())).await.err().unwrap();
    assert!(matches!(e, etl::Error::Config(_)), "{e:?}");
    assert!(e.to_string().contains("data.parquet"), "{e}");

    let e = etl::source::file::<Json>("${ETL_TEST_SURELY_UNSET_VAR}.jsonl")
        .open(SourceContext::new(CancellationToken::new()))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, etl::Error::Config(_)), "{e:?}");
}

#[tokio::test]
async fn source_path_is_interpolated() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.jsonl"), "{\"a\":1}\n").unwrap();
    let path = format!("{}/${{ETL_TEST_SURELY_UNSET_VAR:-x}}.jsonl", dir.path().display());
    assert_eq!(read_records(etl::source::file::<Json>(path)).await, [rec(json!({"a": 1}))]);
}

#[tokio::test]
async fn shutdown_stops_reading() {
    for ext in ["jsonl", "csv"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("many.{ext}"));
        let content: String = match ext {
            "csv" => std::iter::once("a\n".to_string()).chain((0..200_000).map(|i| format!("{i}\n"))).collect(),
            _ => (0..200_000).map(|i| format!("{{\"a\":{i}}}\n")).collect(),
        };
        std::fs::write(&path, content).unwrap();
        let token = CancellationToken::new();
        let mut stream =
            etl::source::file::<Json>(path.to_str().unwrap()).batch_size(100).open(SourceContext::new(token.clone())).await.unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.len(), 100);
        token.cancel();
        let mut rest = 0;
        while let Some(batch) = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next()).await.unwrap() {
            rest += batch.unwrap().len();
        }
        assert!(rest < 200_000 - 100, "{ext}: read {rest} more records after shutdown");
    }
}

#[tokio::test]
async fn pipeline_from_file_to_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let content: String = (0..2500).map(|i| format!("{{\"id\":{i},\"name\":\"n{i}\",\"note\":null,\"amount\":{i}}}\n")).collect();
    std::fs::write(&input, content).unwrap();
    let out = dir.path().join("out");
    let report = etl::Pipeline::from(etl::source::file::<Order>(input.to_str().unwrap()).batch_size(1000))
        .to(etl::sink::file(out.to_str().unwrap()).format(Format::Csv).rolling(Rolling::Size(1 << 20)))
        .handle_signals(false)
        .run()
        .await
        .unwrap();
    assert_eq!(report.filtered(), 0);
    let files = data_files(&out);
    assert_eq!(files.len(), 1);
    let back = read_records(etl::source::file::<Order>(files[0].to_str().unwrap())).await;
    assert_eq!(back.len(), 2500);
    assert!(back.iter().enumerate().all(|(i, o)| o.id == i as i64 && o.amount == Some(i as i64) && o.note.is_none()));
}

/// A pipeline from file to file can run on another task: its future is `Send` (a sink's
/// reused CSV buffer once made it `!Sync`, and the whole run `!Send`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_pipeline_can_be_spawned() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"id\":1}\n{\"id\":2}\n").unwrap();
    let lake = dir.path().join("lake");
    let run = etl::Pipeline::from(etl::source::file::<Json>(input.to_string_lossy()))
        .to(etl::sink::file(lake.to_string_lossy()).format(Format::Csv))
        .handle_signals(false)
        .run();
    let report = tokio::spawn(run).await.unwrap().unwrap();
    assert_eq!(report.records_out, 2);
    let files: Vec<_> = std::fs::read_dir(&lake).unwrap().collect();
    assert_eq!(files.len(), 1);
}

/// `UTC date/hour` of now, as the partitions name them (`2024-06-10/13`), computed apart from
/// the library: civil-from-days on the Unix clock.
fn utc_partition(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let z = (secs / 86_400) as i64 + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}/{:02}", (secs % 86_400) / 3600)
}

/// `pipeline!` with `file(dir = ".../{date}/{hour}", max_file_bytes = 1KB)`: the files land in
/// the partition of the write (UTC), each at most 1 000 bytes (batches of about 300, each
/// committed before the next is written: `max_in_flight(1)`, else a file may also take the
/// batches of the commit that fills it), every record once and in order, no hidden file left.
#[tokio::test]
async fn pipeline_writes_hourly_partitions_rolled_by_size() -> etl::Result<()> {
    use etl::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let lake = format!("{}/lake/{{date}}/{{hour}}", dir.path().display());
    let records: Vec<Json> = (0..100).map(|i| rec(json!({"id": i, "pad": "xxxxxxxxxxxx"}))).collect();
    let before = utc_partition(std::time::SystemTime::now());
    pipeline! {
        iter(records, batch_size = 10)
        | file(dir = lake, prefix = "orders", max_file_bytes = 1KB)
    }
    .max_in_flight(1)
    .handle_signals(false)
    .run()
    .await?;
    let after = utc_partition(std::time::SystemTime::now());

    let mut partitions = Vec::new();
    for date in std::fs::read_dir(dir.path().join("lake")).unwrap() {
        for hour in std::fs::read_dir(date.unwrap().path()).unwrap() {
            partitions.push(hour.unwrap().path());
        }
    }
    partitions.sort();
    let relative: Vec<String> =
        partitions.iter().map(|p| p.strip_prefix(dir.path().join("lake")).unwrap().to_str().unwrap().to_owned()).collect();
    assert!(relative.iter().all(|p| *p == before || *p == after), "{relative:?} (now {before} .. {after})");
    let mut ids = Vec::new();
    let mut files = 0;
    for partition in &partitions {
        assert!(names(partition).iter().all(|n| n.starts_with("orders-") && n.ends_with(".jsonl")), "{:?}", names(partition));
        for file in data_files(partition) {
            files += 1;
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(text.len() <= 1000, "{} is {} bytes", file.display(), text.len());
            ids.extend(text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_i64().unwrap()));
        }
    }
    assert!(files >= 4, "rolled by size: {files} files");
    assert_eq!(ids, (0..100).collect::<Vec<i64>>());
    Ok(())
}
