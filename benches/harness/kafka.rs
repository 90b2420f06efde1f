//! What the Kafka benchmarks share: the broker's address, unique names, topics with enough
//! partitions, and the raw producer loop that fills a topic (the sink benchmark's baseline).
//! Included with `#[path = "harness/kafka.rs"] mod kafka_bench;`.

#![allow(dead_code)] // each benchmark uses what it needs

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

/// `KAFKA_BROKERS` (the mock broker `scripts/services.sh` starts, or a real cluster).
pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").expect("KAFKA_BROKERS is not set: `source scripts/services.sh && ensure_kafka`")
}

/// A client configuration for the brokers.
pub fn config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers());
    config
}

/// `prefix-<pid>-<nanos>`: a name no other run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Partitions for a topic of `n` records of about 100 bytes: at least 3, and enough that
/// librdkafka's mock broker keeps them all (it trims each partition's log past 5 MiB).
/// Records without a key go through the producer's sticky partitioner, which fills one
/// partition at a time, unevenly: 10 000 records (about 1 MB) a partition on average leaves
/// room for five times that. A real cluster keeps them anyway.
pub fn partitions_for(n: u64) -> i32 {
    i32::try_from(n / 10_000 + 1).unwrap_or(i32::MAX).max(3)
}

/// A new topic of `partitions`: through the mock broker's control port when there is one
/// (`KAFKA_MOCK_CONTROL`; the mock has no CreateTopics), else with the admin API.
pub async fn create_topic(prefix: &str, partitions: i32) -> String {
    let topic = unique(prefix);
    if let Ok(addr) = std::env::var("KAFKA_MOCK_CONTROL") {
        let mut stream = std::net::TcpStream::connect(addr).expect("the mock's control port");
        stream.write_all(format!("create {topic} {partitions}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).unwrap();
        assert_eq!(answer.trim(), "ok");
    } else {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> = config().create().unwrap();
        admin.create_topics([&NewTopic::new(&topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    }
    topic
}

/// The raw producer loop: send `n` payloads (`payload(i)`, keyed by `i` when `keyed`) with
/// an idempotent `acks=all` producer, then await every delivery.
pub async fn produce(topic: &str, n: u64, keyed: bool, payload: impl Fn(u64) -> Vec<u8>) {
    let producer: FutureProducer = config().set("enable.idempotence", "true").set("acks", "all").create().unwrap();
    let mut pending = Vec::with_capacity(n as usize);
    for i in 0..n {
        let payload = payload(i);
        let key = i.to_string();
        loop {
            let record = FutureRecord::to(topic).payload(&payload);
            let record = if keyed { record.key(&key) } else { record };
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((e, _)) => {
                    assert_eq!(e.rdkafka_error_code(), Some(rdkafka::types::RDKafkaErrorCode::QueueFull), "{e}");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    for delivery in pending {
        delivery.await.unwrap().unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}
