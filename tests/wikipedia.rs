//! The `wikipedia` example end to end: on its embedded defaults, from a file, and through SQS
//! and S3 (moto). Each compares the lake's rows with rows computed from the sample's raw JSON
//! (`example_wikipedia`): every good event in the lake exactly once, each cell as sent.

mod example_wikipedia;
use example_wikipedia as wikipedia;

use serde_json::Value;
use wikipedia::example::{run, Config};
use wikipedia::{expected_rows, is_canary, lake_rows, row, sample};

/// The sample holds what the rules above are about: nulls and absent fields, text with
/// commas, quotes and newlines, canaries. (Otherwise a lake could match by luck.)
#[test]
fn the_sample_exercises_the_rules() {
    let events: Vec<Value> = sample().iter().map(|e| serde_json::from_slice(e).unwrap()).collect();
    let rows: Vec<Vec<String>> = events.iter().map(row).collect();
    let canaries = events.iter().filter(|e| is_canary(e)).count();
    let null_ids = events.iter().filter(|e| e.get("id") == Some(&Value::Null)).count();
    let no_length = events.iter().filter(|e| e.get("length").is_none()).count();
    let awkward = rows.iter().flatten().filter(|c| c.contains(',') || c.contains('"') || c.contains('\n')).count();
    let bots = rows.iter().filter(|r| r[5] == "true").count();
    assert!(
        canaries > 0 && null_ids > 0 && no_length > 0 && awkward > 100 && bots > 0,
        "{canaries} {null_ids} {no_length} {awkward} {bots}"
    );
}

#[tokio::test]
async fn embedded_defaults_put_every_non_canary_event_in_the_lake_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let summary = run(Config { lake: lake.clone(), handle_signals: false, ..Config::default() }).await.unwrap();

    let events = sample();
    let want = expected_rows(&events);
    assert_eq!(events.len(), 3000);
    assert_eq!(want.len(), 2983, "the sample holds 17 canary events");
    let ingest = summary.ingest.expect("two pipelines ran");
    assert_eq!((ingest.records_in, ingest.records_out, ingest.dead_lettered), (3000, 3000, 0));
    assert_eq!((summary.process.records_out, summary.process.filtered(), summary.process.dead_lettered), (2983, 17, 0));
    let (got, files) = lake_rows(&lake);
    assert_eq!(files, 30, "batches of 100 events (canaries included) make 30 files");
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the lake's rows differ from the sample's");
}

#[tokio::test]
async fn from_file_feeds_the_second_pipeline_and_max_records_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let events = sample();
    let mut text = Vec::new();
    for e in &events {
        text.extend_from_slice(e);
        text.push(b'\n');
    }
    std::fs::write(&input, text).unwrap();
    let lake = dir.path().join("lake");
    let config = Config { lake: lake.clone(), from_file: Some(input), max_records: Some(1234), handle_signals: false, ..Config::default() };
    let summary = run(config).await.unwrap();
    assert!(summary.ingest.is_none());
    assert_eq!(summary.process.records_in, 1234);
    let (got, files) = lake_rows(&lake);
    assert_eq!(files, 13);
    assert!(got == expected_rows(&events[..1234]));
}

/// The benchmark's generator of RecentChange-like events.
#[path = "../benches/harness/recentchange.rs"]
mod recentchange;

#[tokio::test]
async fn generated_events_reach_the_lake_cell_for_cell() {
    let mut text = Vec::new();
    recentchange::write_events(&mut text, 5000, 11).unwrap();
    let mut again = Vec::new();
    recentchange::write_events(&mut again, 5000, 11).unwrap();
    assert!(text == again, "the generator is deterministic");
    let events: Vec<bytes::Bytes> = text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(bytes::Bytes::copy_from_slice).collect();
    assert_eq!(events.len(), 5000);
    let decoded: Vec<Value> = events.iter().map(|e| serde_json::from_slice(e).unwrap()).collect();
    let canaries = decoded.iter().filter(|e| is_canary(e)).count();
    assert!((5..60).contains(&canaries), "about 1 event in 200 is a canary: {canaries}");
    assert!(decoded.iter().any(|e| e["id"].is_null()) && decoded.iter().any(|e| e.get("length").is_none()));

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("generated.jsonl");
    std::fs::write(&input, &text).unwrap();
    let lake = dir.path().join("lake");
    let summary = run(Config { lake: lake.clone(), from_file: Some(input), handle_signals: false, ..Config::default() }).await.unwrap();
    let want = expected_rows(&events);
    assert_eq!(summary.process.records_out, want.len() as u64);
    let (got, files) = lake_rows(&lake);
    assert_eq!(files, 50);
    assert!(got == want, "the lake's rows differ from the generated events'");
}

#[cfg(all(feature = "sqs", feature = "s3"))]
mod moto;

#[cfg(all(feature = "sqs", feature = "s3"))]
#[tokio::test]
async fn through_sqs_and_s3_on_moto() {
    use moto::{create_queue, moto_url, queue_depth, s3_client, sqs_client, unique};
    let endpoint = moto_url();
    let sqs = sqs_client().await;
    let s3 = s3_client().await;
    let queue_url = create_queue(&sqs, "wikipedia", &[]).await;
    let bucket = unique("wikipedia");
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");

    // 600 of the sample's events: moto scans its whole queue on every receive, so the full
    // sample takes minutes there (it takes 0.5 s through the in-process queue).
    let config = Config {
        sqs: Some((Some(endpoint.clone()), queue_url.clone())),
        s3: Some((Some(endpoint), bucket.clone())),
        max_records: Some(600),
        handle_signals: false,
        ..Config::default()
    };
    let summary = run(config).await.unwrap();
    let events = sample();
    let want = expected_rows(&events[..600]);
    assert_eq!(summary.ingest.expect("two pipelines ran").records_out, 600);
    assert_eq!((summary.process.records_in, summary.process.records_out), (600, want.len() as u64));
    // The broker's view: every message deleted, none in flight.
    assert_eq!(queue_depth(&sqs, &queue_url).await, (0, 0));

    let mut got = Vec::new();
    let mut continuation = None;
    loop {
        let page = s3.list_objects_v2().bucket(&bucket).set_continuation_token(continuation).send().await.expect("list");
        for object in page.contents() {
            let key = object.key().expect("a key");
            assert!(key.starts_with("recentchange/") && key.ends_with(".csv"), "{key}");
            let body = s3.get_object().bucket(&bucket).key(key).send().await.expect("get").body.collect().await.expect("body");
            let rows = wikipedia::parse_csv(&body.into_bytes(), true);
            assert!(!rows.is_empty() && rows.len() <= 100, "{key}: {} rows", rows.len());
            got.extend(rows);
        }
        continuation = page.next_continuation_token().map(str::to_owned);
        if continuation.is_none() {
            break;
        }
    }
    got.sort();
    assert!(got == want, "the bucket's rows differ from the sample's ({} rows, {} expected)", got.len(), want.len());
}
