//! Helpers of the Kafka tests: the broker's address, unique names, topic creation (through the
//! mock's control port, or the admin API on a real cluster), producing raw messages, and the
//! broker's own view of a group (committed offsets) and of a topic (end offsets).
//!
//! Included with `#[path = "common/kafka.rs"] mod kafka_broker;` by the Kafka test files.
#![allow(dead_code)]

use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HOW: &str = "run scripts/test.sh (it builds and starts the mock broker, `etl-kafka-mock`), or start it yourself: \
`cargo run --features kafka --bin etl-kafka-mock -- --env-file /tmp/kafka.env & sleep 1; set -a; . /tmp/kafka.env; set +a` \
(or point KAFKA_BROKERS at a real cluster)";

/// The brokers from `KAFKA_BROKERS`; fails (never skips) when it is unset or nothing answers.
pub fn brokers() -> String {
    let brokers = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| panic!("KAFKA_BROKERS is not set: {HOW}"));
    let first = brokers.split(',').next().unwrap_or_default().trim().to_owned();
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&first)
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("KAFKA_BROKERS={brokers} is not host:port[,...]: {HOW}"));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("no Kafka broker answers at {brokers} ({e}): {HOW}"));
    brokers
}

/// A name no other test (in this run or another) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    format!("{prefix}-{}-{millis}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Send one command to the mock's control port; its answer (`ok` or `error ...`).
fn control(command: &str) -> Option<String> {
    let addr = std::env::var("KAFKA_MOCK_CONTROL").ok()?;
    let mut stream = std::net::TcpStream::connect(&addr).unwrap_or_else(|e| panic!("the mock's control port {addr} does not answer: {e}"));
    stream.write_all(format!("{command}\n").as_bytes()).expect("send a control command");
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).expect("read the control answer");
    Some(answer.trim().to_owned())
}

/// A new topic with `partitions` partitions, named after `prefix`.
pub async fn create_topic(prefix: &str, partitions: i32) -> String {
    let topic = unique(prefix);
    match control(&format!("create {topic} {partitions}")) {
        Some(answer) => assert_eq!(answer, "ok", "creating topic {topic} through the mock"),
        None => {
            let admin: AdminClient<DefaultClientContext> = config().create().expect("admin client");
            let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1));
            let results = admin.create_topics([&new], &AdminOptions::new()).await.expect("create topics");
            for r in results {
                r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
            }
        }
    }
    // Wait until the topic's metadata shows every partition.
    let consumer: BaseConsumer = config().create().expect("consumer");
    for _ in 0..100 {
        if let Ok(m) = consumer.fetch_metadata(Some(&topic), Duration::from_secs(5)) {
            if m.topics().first().is_some_and(|t| t.error().is_none() && t.partitions().len() == partitions as usize) {
                return topic;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("topic {topic} never showed {partitions} partitions");
}

/// Make the mock fail the next `count` Produce requests with `error` (see `etl-kafka-mock`);
/// false on a real cluster (no way to inject).
pub fn produce_errors(count: usize, error: &str) -> bool {
    match control(&format!("produce-errors {count} {error}")) {
        Some(answer) => {
            assert_eq!(answer, "ok", "injecting produce errors");
            true
        }
        None => false,
    }
}

/// Forget the Produce errors injected and not used yet.
pub fn clear_produce_errors() {
    if let Some(answer) = control("clear-errors") {
        assert_eq!(answer, "ok", "clearing produce errors");
    }
}

pub fn config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers());
    config
}

/// One message to produce.
#[derive(Debug, Clone, Default)]
pub struct Out {
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<(String, Bytes)>,
}

impl Out {
    pub fn value(value: impl Into<Bytes>) -> Out {
        Out { value: value.into(), ..Out::default() }
    }
}

/// Produce `messages` (acks=all) and wait for every delivery; returns (partition, offset) of
/// each, in order.
pub fn produce(topic: &str, messages: &[Out]) -> Vec<(i32, i64)> {
    use std::sync::{Arc, Mutex};
    struct Ctx(Arc<Mutex<Vec<(usize, i32, i64)>>>);
    impl rdkafka::ClientContext for Ctx {}
    impl rdkafka::producer::ProducerContext for Ctx {
        type DeliveryOpaque = usize;
        fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, index: usize) {
            use rdkafka::Message;
            let m = result.as_ref().unwrap_or_else(|(e, _)| panic!("delivery of message {index} failed: {e}"));
            self.0.lock().unwrap().push((index, m.partition(), m.offset()));
        }
    }
    let done = Arc::new(Mutex::new(Vec::new()));
    let producer: BaseProducer<Ctx> = config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .create_with_context(Ctx(Arc::clone(&done)))
        .expect("producer");
    for (i, m) in messages.iter().enumerate() {
        let mut record: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(topic, i).payload(&m.value[..]);
        if let Some(key) = &m.key {
            record = record.key(&key[..]);
        }
        if let Some(p) = m.partition {
            record = record.partition(p);
        }
        if !m.headers.is_empty() {
            let mut headers = OwnedHeaders::new();
            for (k, v) in &m.headers {
                headers = headers.insert(Header { key: k, value: Some(&v[..]) });
            }
            record = record.headers(headers);
        }
        let mut record = record;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) => {
                    assert_eq!(e.rdkafka_error_code(), Some(rdkafka::types::RDKafkaErrorCode::QueueFull), "produce: {e}");
                    producer.poll(Duration::from_millis(10));
                    record = back;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).expect("every message delivered");
    producer.poll(Duration::ZERO);
    let mut done = done.lock().unwrap().clone();
    assert_eq!(done.len(), messages.len(), "a delivery report per message");
    done.sort();
    done.into_iter().map(|(_, p, o)| (p, o)).collect()
}

/// The end offset of each partition of `topic` (the broker's high watermarks), by partition.
pub fn end_offsets(topic: &str) -> Vec<i64> {
    let consumer: BaseConsumer = config().create().expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len()) as i32;
    (0..partitions).map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks").1).collect()
}

/// The offsets `group` has committed on each partition of `topic`, as the broker reports them
/// to another client (`None`: nothing committed).
pub fn committed(group: &str, topic: &str) -> Vec<Option<i64>> {
    let partitions = end_offsets(topic).len() as i32;
    let consumer: BaseConsumer = config().set("group.id", group).set("enable.auto.commit", "false").create().expect("consumer");
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let got = consumer.committed_offsets(list, Duration::from_secs(10)).expect("committed offsets");
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        })
        .collect()
}

/// [`committed`] off the runtime's threads.
pub async fn committed_async(group: &str, topic: &str) -> Vec<Option<i64>> {
    let (group, topic) = (group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || committed(&group, &topic)).await.expect("no panic")
}

/// [`end_offsets`] off the runtime's threads.
pub async fn end_offsets_async(topic: &str) -> Vec<i64> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || end_offsets(&topic)).await.expect("no panic")
}

/// [`produce`] off the runtime's threads.
pub async fn produce_async(topic: &str, messages: Vec<Out>) -> Vec<(i32, i64)> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || produce(&topic, &messages)).await.expect("no panic")
}
