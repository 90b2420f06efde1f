//! The S3 sink against moto on loopback (`MOTO_URL`; `scripts/test.sh` starts it), and a
//! `pipeline!` from an SQS queue to S3. Every check reads the objects back from the store.

mod moto;

use etl::batch::BatchOptions;
use etl::dead_letter::MemoryDeadLetters;
use etl::format::Format;
use etl::record::{Meta, Position};
use etl::sink::Sink;
use etl::{Json, Pipeline};
use moto::{create_queue, moto_url, queue_depth, s3_client, send_raw, sqs_client, unique, Fault, FaultProxy};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, etl::Record)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: Option<i64>,
}

async fn create_bucket(client: &aws_sdk_s3::Client, prefix: &str) -> String {
    let bucket = unique(prefix).to_lowercase();
    client.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    bucket
}

async fn keys(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = client.list_objects_v2().bucket(bucket).send().await.expect("list");
    let mut keys: Vec<String> = out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
    keys.sort();
    keys
}

async fn object(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> (String, Option<String>) {
    let out = client.get_object().bucket(bucket).key(key).send().await.unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    let content_type = out.content_type().map(str::to_owned);
    let bytes = out.body.collect().await.expect("body").into_bytes();
    (String::from_utf8(bytes.to_vec()).expect("utf-8"), content_type)
}

fn today() -> String {
    let out = std::process::Command::new("date").args(["-u", "+%Y-%m-%d"]).output().expect("date");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn sink(bucket: &str) -> etl::sink::S3Sink {
    etl::sink::s3(bucket).endpoint_url(moto_url())
}

#[tokio::test]
async fn each_batch_is_one_csv_object_with_exact_quoting() {
    let client = s3_client().await;
    let bucket = create_bucket(&client, "csv").await;
    let orders = vec![
        Order { id: 1_000_000_123, customer: "Smith, \"Jo\"\nline two".into(), amount_cents: None },
        Order { id: 2, customer: "plain".into(), amount_cents: Some(3_000_000_000) },
        Order { id: 3, customer: "é 🦀".into(), amount_cents: Some(0) },
    ];
    let report = Pipeline::from(etl::source::iter(orders).batch_size(2))
        .to(sink(&bucket).format(Format::Csv).key("orders/{seq}.{ext}"))
        .handle_signals(false)
        .dead_letters(MemoryDeadLetters::new())
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_out, 3);
    assert_eq!(keys(&client, &bucket).await, ["orders/000000.csv", "orders/000001.csv"]);
    let (first, content_type) = object(&client, &bucket, "orders/000000.csv").await;
    assert_eq!(first, "id,customer,amount_cents\n1000000123,\"Smith, \"\"Jo\"\"\nline two\",\n2,plain,3000000000\n");
    assert_eq!(content_type.as_deref(), Some("text/csv; charset=utf-8"));
    let (second, _) = object(&client, &bucket, "orders/000001.csv").await;
    assert_eq!(second, "id,customer,amount_cents\n3,é 🦀,0\n");
}

#[tokio::test]
async fn jsonl_objects_with_a_date_and_first_position_key() {
    let client = s3_client().await;
    let bucket = create_bucket(&client, "jsonl").await;
    let records: Vec<Json> = (0..5).map(|i| serde_json::from_value(json!({"id": i, "tag": format!("t{i}")})).unwrap()).collect();
    Pipeline::from(etl::source::iter(records).batch_size(2))
        .to(sink(&bucket).key("events/{date}/{first_position}-{seq}.{ext}"))
        .handle_signals(false)
        .dead_letters(MemoryDeadLetters::new())
        .run()
        .await
        .unwrap();
    let date = today();
    let want: Vec<String> = ["0-000000", "2-000001", "4-000002"].iter().map(|k| format!("events/{date}/{k}.jsonl")).collect();
    assert_eq!(keys(&client, &bucket).await, want);
    let (body, content_type) = object(&client, &bucket, &want[1]).await;
    assert_eq!(body, "{\"id\":2,\"tag\":\"t2\"}\n{\"id\":3,\"tag\":\"t3\"}\n");
    assert_eq!(content_type.as_deref(), Some("application/x-ndjson"));
}

#[tokio::test]
async fn a_retried_put_keeps_its_key() {
    let client = s3_client().await;
    let bucket = create_bucket(&client, "retry").await;
    let mut sink = sink(&bucket).key("{run}/{hour}/{first_position}-{seq}.{ext}");
    Sink::<Json>::open(&mut sink, etl::sink::SinkContext::default()).await.unwrap();
    // The bucket disappears after the check: the first put fails.
    client.delete_bucket().bucket(&bucket).send().await.unwrap();
    let records: Vec<Json> = vec![serde_json::from_value(json!({"id": 1})).unwrap()];
    let meta = vec![Meta::at(Position::Id("msg/1+a".into()))];
    let e = sink.write_batch(&records, &meta).await.unwrap_err();
    assert!(!e.is_retryable(), "a missing bucket is permanent: {e}");
    assert!(e.to_string().contains("NoSuchBucket"), "{e}");
    let failed_key = e.component.split(" key ").nth(1).expect("the key in the error").to_owned();
    assert!(failed_key.ends_with("/msg_1_a-000000.jsonl"), "{failed_key}");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    sink.write_batch(&records, &meta).await.unwrap();
    assert_eq!(keys(&client, &bucket).await, [failed_key]);
    // The next batch gets the next number.
    sink.write_batch(&records, &[Meta::at(Position::Id("m2".into()))]).await.unwrap();
    assert_eq!(keys(&client, &bucket).await.len(), 2);
}

#[tokio::test]
async fn a_throttled_put_is_retried_by_the_pipeline_under_the_same_key() {
    let client = s3_client().await;
    let bucket = create_bucket(&client, "throttled").await;
    // Three 503 SlowDown answers: the SDK's own three attempts fail, the pipeline retries.
    let proxy = FaultProxy::start(vec![Fault::Status { method: "PUT", status: 503, code: "SlowDown", times: 3 }]).await;
    let records: Vec<Json> = (0..3).map(|i| serde_json::from_value(json!({"id": i})).unwrap()).collect();
    let report = Pipeline::from(etl::source::iter(records).batch_size(3))
        .to(etl::sink::s3(&bucket).endpoint_url(&proxy.url).key("{run}/{hour}/{seq}.{ext}"))
        .retry(etl::pipeline::RetryPolicy::default().initial_delay(std::time::Duration::from_millis(10)))
        .handle_signals(false)
        .dead_letters(MemoryDeadLetters::new())
        .run()
        .await
        .unwrap();
    assert_eq!(proxy.pending(), 0);
    assert_eq!(report.retries, 1);
    let keys = keys(&client, &bucket).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with("/000000.jsonl"), "{keys:?}");
}

#[tokio::test]
async fn a_missing_bucket_or_a_bad_template_fails_at_start_up() {
    let missing = unique("missing").to_lowercase();
    let out = Pipeline::from(etl::source::iter(vec![Json::default()]))
        .to(etl::sink::s3(&missing).endpoint_url(moto_url()))
        .handle_signals(false)
        .run()
        .await
        .unwrap_err()
        .to_string();
    assert!(out.contains(&missing) && out.contains("HeadBucket"), "{out}");
    let out = Pipeline::from(etl::source::iter(vec![Json::default()]))
        .to(etl::sink::s3("any").endpoint_url(moto_url()).key("{date}/{batch}.csv"))
        .handle_signals(false)
        .run()
        .await
        .unwrap_err()
        .to_string();
    assert!(out.contains("unknown placeholder `{batch}`"), "{out}");
}

/// `pipeline!` with the `sqs` source, the `sqs` sink and the `s3` sink. The queues and the
/// bucket are Rust expressions; the endpoint is `${MOTO_URL}`, resolved at start-up from the
/// environment the test runs in (nothing here sets a variable: the tests of this binary share
/// one environment and run in parallel), and the bucket carries a `${..:-}` with an empty
/// default: a start-up that did not resolve them could not reach moto nor the bucket.
#[tokio::test]
async fn pipeline_macro_moves_messages_from_sqs_to_sqs_to_s3() {
    moto_url(); // fails, saying how to start moto, when it does not answer
    let sqs = sqs_client().await;
    let s3 = s3_client().await;
    let input = create_queue(&sqs, "macro-in", &[]).await;
    let output = create_queue(&sqs, "macro-out", &[]).await;
    let bucket = create_bucket(&s3, "macro").await;
    let bodies: Vec<String> =
        (0..10).map(|id| serde_json::to_string(&Order { id, customer: format!("c{id}"), amount_cents: Some(id * 100) }).unwrap()).collect();
    send_raw(&sqs, &input, &bodies.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let bucket_option = format!("{bucket}${{ETL_TEST_SURELY_UNSET_BUCKET_SUFFIX:-}}");

    let report = etl::pipeline! {
        sqs(queue_url = input.clone(), endpoint_url = "${MOTO_URL}", wait_time_seconds = 1,
            visibility_timeout = 30s, max_receives = 3, batch_size = 10, batch_timeout = 2s, max_records = 10) as Order
        | sqs(queue_url = output.clone(), endpoint_url = "${MOTO_URL}")
    }
    .handle_signals(false)
    .dead_letters(MemoryDeadLetters::new())
    .run()
    .await
    .unwrap();
    assert_eq!(report.records_out, 10);
    assert_eq!(queue_depth(&sqs, &input).await, (0, 0));
    assert_eq!(queue_depth(&sqs, &output).await, (10, 0));

    let report = etl::pipeline! {
        sqs(queue_url = output.clone(), endpoint_url = "${MOTO_URL}", wait_time_seconds = 1,
            batch_size = 10, batch_timeout = 2s, max_records = 10) as Order
        | s3(bucket = bucket_option, endpoint_url = "${MOTO_URL}", format = "csv",
             key = "orders/{date}/batch-{first_position}-{seq}.{ext}")
    }
    .handle_signals(false)
    .dead_letters(MemoryDeadLetters::new())
    .run()
    .await
    .unwrap();
    assert_eq!(report.records_out, 10);
    assert_eq!(queue_depth(&sqs, &output).await, (0, 0));
    let keys = keys(&s3, &bucket).await;
    assert!(!keys.is_empty() && keys.len() <= 10, "{keys:?}");
    let mut ids = Vec::new();
    for key in &keys {
        assert!(key.starts_with(&format!("orders/{}/batch-", today())) && key.ends_with(".csv"), "{key}");
        let (body, _) = object(&s3, &bucket, key).await;
        let mut reader = csv::Reader::from_reader(body.as_bytes());
        for row in reader.deserialize::<Order>() {
            ids.push(row.unwrap().id);
        }
    }
    ids.sort();
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
}
