//! The connector contract (tests/common/contract.rs) for the NATS JetStream source and sink
//! against a real nats-server on loopback (`NATS_URL`; `scripts/test.sh` starts one, and a
//! missing server is a failure saying how to start it).
//!
//! The source's store is the durable consumer: `custody` reads its info, `num_pending`
//! (not yet delivered) and `num_ack_pending` (delivered, not acknowledged: in a consumer's
//! hands, or nak'ed and waiting for its redelivery); a message is acknowledged once it is in
//! neither. Each test has a stream and a consumer of its own. The source naks with a 100 ms
//! delay, so that what a failed run gives back comes again within the test.
//!
//! The sink's failures are real: a TCP proxy between the sink and the server cuts every
//! connection before a commit (the publish acknowledgements never come; the commit times out),
//! twice, then lets the client reconnect. The sink keys messages by the record's `n`
//! (`Nats-Msg-Id`), so that the batches written again are stored once.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use bytes::Bytes;
use common::contract::{Batching, Custody, Hook, Mode, Phase, Promise, SinkHarness, SourceHarness};
use common::nats::{consumer_info, create_consumer, create_stream, js, nats_url, read_stream, unique};
use etl::batch::BatchOptions;
use etl::record::{Extra, Position};
use etl::Json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct NatsSourceHarness {
    js: async_nats::jetstream::Context,
    stream: String,
    durable: String,
    subject: String,
    /// The stream sequence of each payload put, in order.
    sequences: Vec<u64>,
}

impl NatsSourceHarness {
    async fn new() -> Self {
        let js = js().await;
        let stream = unique("CONTRACT");
        let subject = format!("contract.{stream}");
        let s = create_stream(&js, &stream, &subject).await;
        let durable = unique("etl");
        create_consumer(&s, &durable, Duration::from_secs(30), 20).await;
        NatsSourceHarness { js, stream, durable, subject, sequences: Vec::new() }
    }
}

impl SourceHarness for NatsSourceHarness {
    type Source = etl::source::NatsSource<Json>;

    fn name(&self) -> String {
        "nats".into()
    }

    fn source(&mut self, mode: Mode, batching: Batching) -> Self::Source {
        let source = etl::source::nats::<Json>(&self.stream, &self.durable).url(nats_url()).nak_delay(Duration::from_millis(100));
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
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("index", self.sequences.len().to_string().as_str());
            let ack = self.js.publish_with_headers(self.subject.clone(), headers, p.clone()).await.expect("publish");
            self.sequences.push(ack.await.expect("publish ack").sequence);
        }
    }

    async fn custody(&self) -> Option<Custody> {
        let info = consumer_info(&self.js, &self.stream, &self.durable).await;
        let held = info.num_pending as usize + info.num_ack_pending;
        assert!(held <= self.sequences.len(), "the consumer holds more messages ({held}) than were put ({})", self.sequences.len());
        // Nothing acknowledged is still to come (now, or after its nak delay or ack_wait).
        Some(Custody { acknowledged: self.sequences.len() - held, ready: held })
    }

    fn position(&self, index: usize) -> Position {
        Position::Sequence(self.sequences[index])
    }

    fn check_extra(&self, index: usize, extra: Option<&Extra>) -> Result<(), String> {
        let extra = extra.ok_or("no extras")?;
        if extra.event_type.as_deref() != Some(self.subject.as_str()) {
            return Err(format!("event_type should be the subject {}", self.subject));
        }
        if extra.delivery_count != Some(1) {
            return Err("delivery_count should be 1".into());
        }
        if extra.timestamp.is_none() {
            return Err("timestamp should be the stream's".into());
        }
        let want = vec![("index".to_string(), Bytes::from(index.to_string()))];
        if extra.headers != want {
            return Err(format!("headers should be {want:?}"));
        }
        if extra.key.is_some() {
            return Err("no key".into());
        }
        Ok(())
    }

    fn binary_safe(&self) -> bool {
        true
    }
}

common::contract::source_contract!(NatsSourceHarness::new().await);

// ---------------------------------------------------------------------------------------------
// The NATS sink

struct NatsSinkHarness {
    js: async_nats::jetstream::Context,
    stream: String,
    subject: String,
    proxy: Option<proxy::TcpProxy>,
}

impl NatsSinkHarness {
    async fn new() -> Self {
        let js = js().await;
        let stream = unique("CONTRACT_SINK");
        let subject = format!("sink.{stream}");
        create_stream(&js, &stream, &subject).await;
        NatsSinkHarness { js, stream, subject, proxy: None }
    }
}

impl SinkHarness for NatsSinkHarness {
    type Sink = etl::sink::NatsSink;

    fn name(&self) -> String {
        "nats".into()
    }

    fn promise(&self) -> Promise {
        Promise::AtLeastOnce
    }

    async fn fail(&mut self, phase: Phase, times: usize) -> Option<Hook> {
        match phase {
            // `write` publishes without waiting: a lost connection shows at the commit.
            Phase::Write => None,
            Phase::Commit => {
                let upstream = nats_url().trim_start_matches("nats://").parse().expect("NATS_URL is nats://ip:port");
                let proxy = proxy::TcpProxy::start(upstream).await;
                self.proxy = Some(proxy.clone());
                let mut failed = 0;
                Some(Box::new(move |phase, outcome| match (phase, outcome) {
                    (Phase::Commit, None) if failed < times => proxy.cut(),
                    (Phase::Commit, Some(false)) => {
                        failed += 1;
                        if failed == times {
                            proxy.restore();
                        }
                    }
                    _ => {}
                }))
            }
        }
    }

    async fn sink(&mut self) -> Self::Sink {
        let url = match &self.proxy {
            Some(proxy) => format!("nats://{}", proxy.addr),
            None => nats_url(),
        };
        etl::sink::nats(self.subject.as_str()).url(url).msg_id("n").ack_timeout(Duration::from_secs(1))
    }

    async fn read_back(&mut self) -> Vec<Vec<Json>> {
        read_stream(&self.js, &self.stream).await.iter().map(|p| vec![serde_json::from_slice(p).expect("a JSON message")]).collect()
    }
}

mod nats_sink {
    use super::*;
    common::contract::sink_contract!(NatsSinkHarness::new().await);

    /// The sink keyed by `n` stores each record once even though the commits failed and the
    /// batches were published again (the stream's duplicate window).
    #[tokio::test]
    async fn a_rewritten_batch_is_stored_once() {
        let mut h = NatsSinkHarness::new().await;
        let hook = h.fail(Phase::Commit, 2).await;
        let sink = common::contract::Hooked::new(h.sink().await, hook);
        let records = common::contract::sink_records(10);
        let report = etl::Pipeline::from(etl::source::iter(records).batch_size(5))
            .to(sink)
            .retry(common::quick_retries(6))
            .dead_letters(etl::dead_letter::MemoryDeadLetters::new())
            .handle_signals(false)
            .run()
            .await
            .expect("the run");
        assert_eq!(report.records_out, 10);
        let mut got: Vec<u64> = h.read_back().await.concat().iter().map(common::contract::number).collect();
        got.sort_unstable();
        assert_eq!(got, (0..10).collect::<Vec<_>>(), "each record stored once in the stream");
    }
}
