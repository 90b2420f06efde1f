//! The connector contract (tests/common/contract.rs) for the Kafka source and sink, against
//! `KAFKA_BROKERS` (`scripts/test.sh` starts librdkafka's mock cluster; a missing broker is a
//! failure saying how to start it).
//!
//! The source's store is the group's committed offsets on a one-partition topic of its own
//! (so that the i-th payload put is at offset i): `custody` reads them from the broker through
//! another client, against the topic's end offset. A Kafka source never ends on its own; the
//! [`Mode::Drain`] source is the Kafka source with `max_records` set, when it opens, to what the
//! group has not committed yet.
//!
//! The sink writes to a topic of its own; `read_back` consumes it from the beginning. A commit
//! failure is real: from the first write on, the mock broker refuses every Produce request
//! (`produce-errors` on its control port) until the second commit has failed; each time
//! librdkafka gives up after the sink's `message.timeout.ms` (300 ms here) and `commit` fails,
//! and the pipeline writes the uncommitted batches again. Against a real cluster (no control
//! port) the commit property has nothing to inject.
//! `write` only hands messages to librdkafka: it has no failure of the broker to inject.

mod common;
#[path = "common/kafka.rs"]
mod kafka_broker;

use bytes::Bytes;
use common::contract::{Batching, Custody, Hook, Mode, Phase, Promise, SinkHarness, SourceHarness};
use etl::batch::BatchOptions;
use etl::record::{Extra, Position};
use etl::source::{BatchStream, Source, SourceContext};
use etl::Json;
use kafka_broker::{
    brokers, clear_produce_errors, committed_async, create_topic, end_offsets_async, produce_async, produce_errors, unique, Out,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;
use std::time::Duration;

struct KafkaSourceHarness {
    topic: String,
    group: String,
    put: usize,
}

impl KafkaSourceHarness {
    async fn new() -> Self {
        KafkaSourceHarness { topic: create_topic("contract", 1).await, group: unique("contract"), put: 0 }
    }
}

/// The Kafka source; in [`Mode::Drain`], ending once it read what the group has not committed
/// when it opens.
struct Kafka {
    source: etl::source::KafkaSource<Json>,
    drain: Option<(String, String)>,
}

impl Source for Kafka {
    type Item = Json;

    fn describe(&self) -> String {
        self.source.describe()
    }

    async fn open(self, ctx: SourceContext) -> etl::Result<BatchStream<Json>> {
        let source = match self.drain {
            None => self.source,
            Some((topic, group)) => {
                let end = end_offsets_async(&topic).await[0];
                let committed = committed_async(&group, &topic).await[0].unwrap_or(0);
                self.source.max_records((end - committed) as u64)
            }
        };
        source.open(ctx).await
    }
}

impl SourceHarness for KafkaSourceHarness {
    type Source = Kafka;

    fn name(&self) -> String {
        "kafka".into()
    }

    fn source(&mut self, mode: Mode, batching: Batching) -> Kafka {
        let source = etl::source::kafka::<Json>([&self.topic], &self.group)
            .brokers(brokers())
            .poll_timeout(Duration::from_millis(20))
            .session_timeout(Duration::from_secs(6));
        let drain = (mode == Mode::Drain).then(|| (self.topic.clone(), self.group.clone()));
        Kafka { source: batching.apply(source), drain }
    }

    async fn put(&mut self, payloads: &[Bytes]) {
        let messages = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| Out {
                key: Some(Bytes::from(format!("key-{}", self.put + i))),
                value: p.clone(),
                headers: vec![("index".into(), Bytes::from((self.put + i).to_string()))],
                ..Out::default()
            })
            .collect();
        let positions = produce_async(&self.topic, messages).await;
        for (i, (partition, offset)) in positions.into_iter().enumerate() {
            assert_eq!((partition, offset), (0, (self.put + i) as i64), "the i-th payload is at offset i");
        }
        self.put += payloads.len();
    }

    async fn custody(&self) -> Option<Custody> {
        let end = end_offsets_async(&self.topic).await[0] as usize;
        let committed = committed_async(&self.group, &self.topic).await[0].unwrap_or(0) as usize;
        assert_eq!(end, self.put, "the topic holds what was put");
        Some(Custody { acknowledged: committed, ready: end - committed })
    }

    fn position(&self, index: usize) -> Position {
        Position::Offset { partition: 0, offset: index as i64 }
    }

    fn check_extra(&self, index: usize, extra: Option<&Extra>) -> Result<(), String> {
        let extra = extra.ok_or("no extras")?;
        if extra.event_type.as_deref() != Some(self.topic.as_str()) {
            return Err(format!("event_type should be the topic {}", self.topic));
        }
        if extra.key.as_deref() != Some(format!("key-{index}").as_bytes()) {
            return Err(format!("the key should be key-{index}"));
        }
        if extra.headers != vec![("index".to_string(), Bytes::from(index.to_string()))] {
            return Err("the headers should be [index]".into());
        }
        if extra.timestamp.is_none() {
            return Err("a timestamp".into());
        }
        Ok(())
    }

    fn binary_safe(&self) -> bool {
        true
    }
}

common::contract::source_contract!(KafkaSourceHarness::new().await);

// ---------------------------------------------------------------------------------------------
// The Kafka sink

struct KafkaSinkHarness {
    topic: String,
    timeout_ms: Option<u64>,
}

impl KafkaSinkHarness {
    async fn new() -> Self {
        KafkaSinkHarness { topic: create_topic("contract-sink", 2).await, timeout_ms: None }
    }
}

impl SinkHarness for KafkaSinkHarness {
    type Sink = etl::sink::KafkaSink;

    fn name(&self) -> String {
        "kafka".into()
    }

    fn promise(&self) -> Promise {
        Promise::AtLeastOnce
    }

    async fn fail(&mut self, phase: Phase, times: usize) -> Option<Hook> {
        match phase {
            Phase::Write => None,
            Phase::Commit if std::env::var_os("KAFKA_MOCK_CONTROL").is_none() => None,
            Phase::Commit => {
                // From the first write on, the broker refuses Produce requests: librdkafka gives
                // up after the producer's message timeout and the commit fails; after `times`
                // failed commits the broker takes them again.
                self.timeout_ms = Some(300);
                let (mut injected, mut failed) = (false, 0);
                Some(Box::new(move |phase, outcome| match (phase, outcome) {
                    (Phase::Write, None) if !injected => {
                        injected = true;
                        assert!(produce_errors(100_000, "not_enough_replicas"), "produce errors are injected through the mock");
                    }
                    (Phase::Commit, Some(false)) => {
                        failed += 1;
                        if failed == times {
                            clear_produce_errors();
                        }
                    }
                    _ => {}
                }))
            }
        }
    }

    async fn sink(&mut self) -> Self::Sink {
        let sink = etl::sink::kafka(&self.topic).brokers(brokers());
        match self.timeout_ms {
            Some(ms) => sink.properties([("message.timeout.ms", ms.to_string()), ("retry.backoff.ms", "20".to_string())]),
            None => sink,
        }
    }

    async fn read_back(&mut self) -> Vec<Vec<Json>> {
        clear_produce_errors();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            let ends = kafka_broker::end_offsets(&topic);
            let total: i64 = ends.iter().sum();
            let consumer: BaseConsumer = kafka_broker::config()
                .set("group.id", unique("read-back"))
                .set("auto.offset.reset", "earliest")
                .set("enable.auto.commit", "false")
                .create()
                .expect("consumer");
            consumer.subscribe(&[&topic]).expect("subscribe");
            let mut units = Vec::new();
            let deadline = std::time::Instant::now() + common::PATIENCE;
            while (units.len() as i64) < total {
                assert!(std::time::Instant::now() < deadline, "read back {} of {total} messages", units.len());
                if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                    let m = m.expect("a message");
                    units.push(vec![serde_json::from_slice(m.payload().expect("a value")).expect("JSON")]);
                }
            }
            units
        })
        .await
        .expect("no panic")
    }
}

mod kafka_sink {
    use super::*;
    common::contract::sink_contract!(KafkaSinkHarness::new().await);
}
