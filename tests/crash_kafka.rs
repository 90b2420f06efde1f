//! The crash harness (tests/common/crash.rs) on the Kafka source, against `KAFKA_BROKERS`
//! (`scripts/test.sh` starts librdkafka's mock cluster in a process of its own, which survives
//! the kills; a missing broker is a failure saying how to start it).
//!
//! A topic of its own with 3 partitions holds 6000 messages `{"n": 0..6000}`. The child (this
//! test binary, re-run) consumes it in the group of the test into a file sink: batches of 20,
//! `max_in_flight` 2, and `max_records` set to what the group has not committed when it starts
//! (so that a clean run ends once it has read everything). It is SIGKILLed 5 times at random
//! points while it works, then run again until the group's committed offsets reach the end
//! offsets.
//!
//! After each kill the parent reads the durable state: the lake, and the group's committed
//! offsets as the broker reports them. The records both in the lake and at or after the
//! committed offset of their partition are the kill's *exposure* (written, not committed): what
//! the next run reads again. Checked: every message in the lake at least once, every lake file
//! whole JSON lines, the committed offsets at the end offsets, total duplicates ≤ the sum of
//! exposures, and each kill adding at most the in-flight window `max_in_flight × batch_size` = 40
//! to the exposure the kill before left (`crash::assert_exposures`).

mod common;
#[path = "common/kafka.rs"]
mod kafka_broker;

use bytes::Bytes;
use common::crash::{self, count_files, read_lake, Child, Tally, Watch};
use etl::batch::BatchOptions;
use etl::{Json, Pipeline};
use kafka_broker::{brokers, committed, committed_async, create_topic, end_offsets, end_offsets_async, produce_async, unique, Out};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

const MESSAGES: u64 = 6000;
const BATCH: usize = 20;
const MAX_IN_FLIGHT: usize = 2;
const KILLS: usize = 5;

async fn child(args: Value) {
    let topic = args["topic"].as_str().unwrap().to_owned();
    let group = args["group"].as_str().unwrap().to_owned();
    let (t, g) = (topic.clone(), group.clone());
    let ready: i64 = tokio::task::spawn_blocking(move || {
        let ends = end_offsets(&t);
        let done = committed(&g, &t);
        ends.iter().zip(done).map(|(e, c)| e - c.unwrap_or(0)).sum()
    })
    .await
    .unwrap();
    let source = etl::source::kafka::<Json>([topic], group)
        .brokers(brokers())
        .poll_timeout(Duration::from_millis(20))
        // A killed child never leaves the group: the next one waits for its session to expire
        // (6 s, the shortest the mock broker's group coordinator took here).
        .session_timeout(Duration::from_secs(6))
        .batch_size(BATCH)
        .batch_timeout(Duration::from_millis(200))
        .max_records(ready as u64);
    crash::run_child(Pipeline::from(source).to(etl::sink::file(args["lake"].as_str().unwrap())), MAX_IN_FLIGHT).await;
}

struct KafkaWatch {
    topic: String,
    group: String,
    lake: PathBuf,
    /// (partition, offset) of each n.
    positions: Vec<(i32, i64)>,
    /// Per kill: committed offsets, distinct records in the lake, exposure.
    kills: Vec<(Vec<Option<i64>>, usize, usize)>,
}

impl Watch for KafkaWatch {
    fn progress(&self) -> usize {
        count_files(&self.lake)
    }

    async fn killed(&mut self, _kill: usize) {
        let committed = committed_async(&self.group, &self.topic).await;
        let lake = read_lake(&self.lake);
        let distinct: BTreeSet<u64> = lake.records().map(|r| r.get("n").and_then(Value::as_u64).unwrap()).collect();
        let exposure = distinct
            .iter()
            .filter(|n| {
                let (p, o) = self.positions[**n as usize];
                committed[p as usize].is_none_or(|c| o >= c)
            })
            .count();
        self.kills.push((committed, distinct.len(), exposure));
    }

    async fn finished(&mut self) -> bool {
        let ends: Vec<Option<i64>> = end_offsets_async(&self.topic).await.into_iter().map(Some).collect();
        committed_async(&self.group, &self.topic).await == ends
    }
}

#[tokio::test]
async fn kafka_to_file_sink_survives_sigkill() {
    if let Some(args) = crash::child_args() {
        return child(args).await;
    }
    let topic = create_topic("crash", 3).await;
    let group = unique("crash");
    let messages: Vec<Out> = (0..MESSAGES)
        .map(|n| Out { key: Some(Bytes::from(n.to_string())), value: Bytes::from(json!({"n": n}).to_string()), ..Out::default() })
        .collect();
    let positions = produce_async(&topic, messages).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let child = Child {
        test: "kafka_to_file_sink_survives_sigkill".into(),
        args: json!({"topic": topic, "group": group, "lake": lake}),
        log_dir: dir.path().to_owned(),
    };
    let mut watch = KafkaWatch { topic: topic.clone(), group: group.clone(), lake: lake.clone(), positions, kills: Vec::new() };
    let crashes = crash::run(&child, KILLS, &mut watch).await;
    let ctx = format!(
        "Kafka → file, {crashes:?}, (committed offsets, distinct in lake, exposure) per kill {:?}",
        watch.kills.iter().map(|(c, d, e)| (c, *d, *e)).collect::<Vec<_>>()
    );
    let ends: Vec<Option<i64>> = end_offsets_async(&topic).await.into_iter().map(Some).collect();
    assert_eq!(committed_async(&group, &topic).await, ends, "{ctx}: the group's offsets end at the end");
    let out = read_lake(&lake);
    assert!(out.hidden.is_empty(), "{ctx}: no temporaries left: {:?}", out.hidden);
    let tally = Tally::of(out.records().map(|r| r.get("n").and_then(Value::as_u64).unwrap()));
    assert_eq!(tally.missing(0..MESSAGES), Vec::<u64>::new(), "{ctx}: every message at least once");
    let exposed: usize = watch.kills.iter().map(|(_, _, e)| e).sum();
    assert!(
        tally.duplicates() <= exposed,
        "{ctx}: {} duplicates, more than the records written and not committed at the kills ({exposed})",
        tally.duplicates()
    );
    let window = MAX_IN_FLIGHT * BATCH;
    crash::assert_exposures(&ctx, watch.kills.iter().map(|(_, _, exposure)| *exposure), window, "records written and not committed");
    let by_partition: BTreeMap<i32, usize> = watch.positions.iter().fold(BTreeMap::new(), |mut m, (p, _)| {
        *m.entry(*p).or_default() += 1;
        m
    });
    eprintln!("{ctx}: {} duplicates; messages per partition {by_partition:?}", tally.duplicates());
}
