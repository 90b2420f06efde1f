//! The connector contract (tests/common/contract.rs) for the AWS connectors against moto on
//! loopback (`MOTO_URL`; `scripts/test.sh` starts it, and a missing moto is a failure saying
//! how to start it): the SQS source, the SQS sink and the S3 sink.
//!
//! The SQS source's store is the queue: `custody` reads `ApproximateNumberOfMessages` (ready)
//! and `ApproximateNumberOfMessagesNotVisible` (held by a consumer); a message is acknowledged
//! once it is deleted. Each test has a queue of its own. The source's visibility timeout is 2 s,
//! so that messages a failed run could not release come back within the test.
//!
//! Sink failures are real HTTP answers injected by `moto::FaultProxy` between the sink and moto:
//! an entry of `SendMessageBatch` reported failed (the SQS sink's own entry retries are off, so
//! the failure reaches the pipeline, which sends the batch again: at-least-once), and `503
//! SlowDown` to S3 `PUT`s (three per failed write: the SDK tries each call three times; the
//! retried batch must land under the same key, one object per batch).

mod common;
mod moto;

use bytes::Bytes;
use common::contract::{Batching, Custody, Hook, Mode, Phase, Promise, SinkHarness, SourceHarness};
use common::crash::parse_jsonl;
use etl::format::Format;
use etl::record::{Extra, Position};
use etl::Json;
use moto::{create_queue, moto_url, queue_depth, s3_client, sqs_client, unique, Fault, FaultProxy};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const VISIBILITY: Duration = Duration::from_secs(2);

struct SqsSourceHarness {
    client: aws_sdk_sqs::Client,
    url: String,
    /// The message id of each payload put, in order.
    ids: Vec<String>,
}

impl SqsSourceHarness {
    async fn new() -> Self {
        let client = sqs_client().await;
        let url = create_queue(&client, "contract", &[]).await;
        SqsSourceHarness { client, url, ids: Vec::new() }
    }
}

impl SourceHarness for SqsSourceHarness {
    type Source = etl::source::SqsSource<Json>;

    fn name(&self) -> String {
        "sqs".into()
    }

    fn source(&mut self, mode: Mode, batching: Batching) -> Self::Source {
        let source = etl::source::sqs::<Json>(&self.url).endpoint_url(moto_url()).wait_time_seconds(1).visibility_timeout(VISIBILITY);
        let source = match mode {
            Mode::Live => source,
            Mode::Drain => {
                let drain = CancellationToken::new();
                drain.cancel();
                source.drain_after(drain)
            }
        };
        batching.apply(source)
    }

    async fn put(&mut self, payloads: &[Bytes]) {
        for p in payloads {
            let body = std::str::from_utf8(p).expect("SQS bodies are text");
            let sent = self.client.send_message().queue_url(&self.url).message_body(body).send().await.expect("send");
            self.ids.push(sent.message_id.expect("a message id"));
        }
    }

    async fn custody(&self) -> Option<Custody> {
        let (visible, in_flight) = queue_depth(&self.client, &self.url).await;
        let held = (visible + in_flight) as usize;
        assert!(held <= self.ids.len(), "the queue holds more messages ({held}) than were put ({})", self.ids.len());
        Some(Custody { acknowledged: self.ids.len() - held, ready: visible as usize })
    }

    fn position(&self, index: usize) -> Position {
        Position::Id(self.ids[index].clone())
    }

    fn check_extra(&self, _index: usize, extra: Option<&Extra>) -> Result<(), String> {
        let extra = extra.ok_or("no extras")?;
        let queue = self.url.rsplit('/').next().unwrap();
        if extra.event_type.as_deref() != Some(queue) {
            return Err(format!("event_type should be the queue's name {queue}"));
        }
        if extra.delivery_count != Some(1) {
            return Err("delivery_count should be 1 (ApproximateReceiveCount)".into());
        }
        if extra.timestamp.is_none() {
            return Err("timestamp should be SentTimestamp".into());
        }
        if extra.key.is_some() || !extra.headers.is_empty() {
            return Err("no key, no headers".into());
        }
        Ok(())
    }

    fn binary_safe(&self) -> bool {
        false
    }
}

common::contract::source_contract!(SqsSourceHarness::new().await);

// ---------------------------------------------------------------------------------------------
// The SQS sink

struct SqsSinkHarness {
    client: aws_sdk_sqs::Client,
    url: String,
    proxy: Option<FaultProxy>,
}

impl SqsSinkHarness {
    async fn new() -> Self {
        let client = sqs_client().await;
        let url = create_queue(&client, "contract-sink", &[]).await;
        SqsSinkHarness { client, url, proxy: None }
    }
}

impl SinkHarness for SqsSinkHarness {
    type Sink = etl::sink::SqsSink;

    fn name(&self) -> String {
        "sqs".into()
    }

    fn promise(&self) -> Promise {
        Promise::AtLeastOnce
    }

    async fn fail(&mut self, phase: Phase, times: usize) -> Option<Hook> {
        match phase {
            Phase::Commit => None, // `write` is durable: no commit phase
            Phase::Write => {
                self.proxy = Some(FaultProxy::start(vec![Fault::FailFirstEntry { action: "SendMessageBatch", times }]).await);
                Some(Box::new(|_, _| {}))
            }
        }
    }

    async fn sink(&mut self) -> Self::Sink {
        let endpoint = self.proxy.as_ref().map_or_else(moto_url, |p| p.url.clone());
        etl::sink::sqs(&self.url).endpoint_url(endpoint).retry(etl::pipeline::RetryPolicy::never())
    }

    async fn read_back(&mut self) -> Vec<Vec<Json>> {
        if let Some(proxy) = &self.proxy {
            assert_eq!(proxy.pending(), 0, "every injected fault was used");
        }
        let mut units = Vec::new();
        loop {
            let out = self.client.receive_message().queue_url(&self.url).max_number_of_messages(10).send().await.expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                assert_eq!(queue_depth(&self.client, &self.url).await, (0, 0), "read back every message");
                return units;
            }
            for m in messages {
                units.push(vec![serde_json::from_str(m.body().expect("a body")).expect("a JSON body")]);
                let handle = m.receipt_handle().expect("a receipt handle");
                self.client.delete_message().queue_url(&self.url).receipt_handle(handle).send().await.expect("delete");
            }
        }
    }
}

mod sqs_sink {
    use super::*;
    common::contract::sink_contract!(SqsSinkHarness::new().await);
}

// ---------------------------------------------------------------------------------------------
// The S3 sink

struct S3SinkHarness {
    client: aws_sdk_s3::Client,
    bucket: String,
    proxy: Option<FaultProxy>,
}

impl S3SinkHarness {
    async fn new() -> Self {
        let client = s3_client().await;
        let bucket = unique("contract").to_lowercase();
        client.create_bucket().bucket(&bucket).send().await.expect("create bucket");
        S3SinkHarness { client, bucket, proxy: None }
    }
}

impl SinkHarness for S3SinkHarness {
    type Sink = etl::sink::S3Sink;

    fn name(&self) -> String {
        "s3".into()
    }

    fn promise(&self) -> Promise {
        Promise::OneUnitPerBatch
    }

    async fn fail(&mut self, phase: Phase, times: usize) -> Option<Hook> {
        match phase {
            Phase::Commit => None, // `PutObject` is durable: no commit phase
            Phase::Write => {
                // The SDK makes three attempts per call: three faults fail one write.
                let fault = Fault::Status { method: "PUT", status: 503, code: "SlowDown", times: 3 * times };
                self.proxy = Some(FaultProxy::start(vec![fault]).await);
                Some(Box::new(|_, _| {}))
            }
        }
    }

    async fn sink(&mut self) -> Self::Sink {
        let endpoint = self.proxy.as_ref().map_or_else(moto_url, |p| p.url.clone());
        etl::sink::s3(&self.bucket).endpoint_url(endpoint).format(Format::Jsonl)
    }

    async fn read_back(&mut self) -> Vec<Vec<Json>> {
        if let Some(proxy) = &self.proxy {
            assert_eq!(proxy.pending(), 0, "every injected fault was used");
        }
        let listed = self.client.list_objects_v2().bucket(&self.bucket).send().await.expect("list");
        let mut units = Vec::new();
        for object in listed.contents() {
            let key = object.key().expect("a key");
            let got = self.client.get_object().bucket(&self.bucket).key(key).send().await.expect("get");
            let bytes = got.body.collect().await.expect("body").into_bytes();
            units.push(parse_jsonl(&bytes).unwrap_or_else(|e| panic!("object {key} is not whole JSON lines: {e}")));
        }
        units
    }
}

mod s3_sink {
    use super::*;
    common::contract::sink_contract!(S3SinkHarness::new().await);
}
