//! The crash harness (tests/common/crash.rs) on the NATS source, against a real nats-server
//! (`NATS_URL`; `scripts/test.sh` starts one; a missing server is a failure saying how to
//! start it).
//!
//! A stream of its own holds 3 000 messages `{"n": 0..3000}`, read by a durable consumer with a
//! 2 s `ack_wait` (so that what a killed child held comes back within the test) and a
//! `max_deliver` of 100 (a message in the hands of several killed children is delivered again,
//! not given up). The child (this test binary, re-run) drains it into a file sink: `nats` with
//! `drain_after` (it ends once the consumer holds nothing but what it is processing), batches of
//! 10, `max_in_flight` 2. It is SIGKILLed 5 times at random points while it works, then run
//! again until the consumer's own view is empty.
//!
//! After each kill the parent reads the durable state: the lake and the consumer's info. The
//! messages both in the lake and still held by the consumer (`num_pending + num_ack_pending`)
//! are the kill's *exposure* (committed, not yet acknowledged): what the server will deliver
//! again. Checked: every message in the lake at least once, the consumer empty in the end
//! (nothing pending, nothing unacknowledged), every lake file whole JSON lines, total
//! duplicates ≤ the sum of exposures, and each kill adding at most the in-flight window
//! `max_in_flight × batch_size` = 20 to the exposure the kill before left (a message the kill
//! before left unacknowledged waits for its 2 s `ack_wait`: `crash::assert_exposures`).

mod common;

use common::contract::LONG;
use common::crash::{self, count_files, read_lake, Child, Tally, Watch};
use common::nats::{consumer_info, create_consumer, create_stream, js, nats_url, publish, unique};
use etl::batch::BatchOptions;
use etl::{Json, Pipeline};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MESSAGES: u64 = 3000; // enough that five children killed after a few files cannot finish it (with 600, the third child once read the rest)
const BATCH: usize = 10;
const MAX_IN_FLIGHT: usize = 2;
const KILLS: usize = 5;

async fn child(args: Value) {
    let drain = CancellationToken::new();
    drain.cancel();
    let source = etl::source::nats::<Json>(args["stream"].as_str().unwrap(), args["durable"].as_str().unwrap())
        .url(nats_url())
        .nak_delay(Duration::from_millis(100))
        .drain_after(drain)
        .batch_size(BATCH)
        .batch_timeout(LONG);
    crash::run_child(Pipeline::from(source).to(etl::sink::file(args["lake"].as_str().unwrap())), MAX_IN_FLIGHT).await;
}

struct NatsWatch {
    js: async_nats::jetstream::Context,
    stream: String,
    durable: String,
    lake: PathBuf,
    /// Per kill: messages held by the consumer, distinct messages in the lake, exposure.
    kills: Vec<(u64, usize, usize)>,
}

impl NatsWatch {
    async fn held(&self) -> u64 {
        let info = consumer_info(&self.js, &self.stream, &self.durable).await;
        info.num_pending + info.num_ack_pending as u64
    }
}

impl Watch for NatsWatch {
    fn progress(&self) -> usize {
        count_files(&self.lake)
    }

    async fn killed(&mut self, _kill: usize) {
        let held = self.held().await;
        let lake = read_lake(&self.lake);
        let distinct: BTreeSet<u64> = lake.records().map(|r| r.get("n").and_then(Value::as_u64).unwrap()).collect();
        // In the lake and not acknowledged: distinct − acknowledged, acknowledged = MESSAGES − held.
        let exposure = (distinct.len() + held as usize).saturating_sub(MESSAGES as usize);
        self.kills.push((held, distinct.len(), exposure));
    }

    async fn finished(&mut self) -> bool {
        self.held().await == 0
    }
}

#[tokio::test]
async fn nats_to_file_sink_survives_sigkill() {
    if let Some(args) = crash::child_args() {
        return child(args).await;
    }
    let js = js().await;
    let stream = unique("CRASH");
    let subject = format!("crash.{stream}");
    let s = create_stream(&js, &stream, &subject).await;
    let durable = unique("etl");
    create_consumer(&s, &durable, Duration::from_secs(2), 100).await;
    for n in 0..MESSAGES {
        publish(&js, &subject, json!({"n": n}).to_string()).await;
    }
    assert_eq!(consumer_info(&js, &stream, &durable).await.num_pending, MESSAGES);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let child = Child {
        test: "nats_to_file_sink_survives_sigkill".into(),
        args: json!({"stream": stream, "durable": durable, "lake": lake}),
        log_dir: dir.path().to_owned(),
    };
    let mut watch = NatsWatch { js: js.clone(), stream: stream.clone(), durable: durable.clone(), lake: lake.clone(), kills: Vec::new() };
    let crashes = crash::run(&child, KILLS, &mut watch).await;
    let ctx = format!("NATS → file, {crashes:?}, (held by the consumer, distinct in lake, exposure) per kill {:?}", watch.kills);
    let info = consumer_info(&js, &stream, &durable).await;
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "{ctx}: the consumer ends with nothing pending or unacknowledged");
    let out = read_lake(&lake);
    assert!(out.hidden.is_empty(), "{ctx}: no temporaries left: {:?}", out.hidden);
    let tally = Tally::of(out.records().map(|r| r.get("n").and_then(Value::as_u64).unwrap()));
    assert_eq!(tally.missing(0..MESSAGES), Vec::<u64>::new(), "{ctx}: every message at least once");
    let exposed: usize = watch.kills.iter().map(|(_, _, e)| e).sum();
    assert!(
        tally.duplicates() <= exposed,
        "{ctx}: {} duplicates, more than the messages committed and not acknowledged at the kills ({exposed})",
        tally.duplicates()
    );
    let window = MAX_IN_FLIGHT * BATCH;
    crash::assert_exposures(&ctx, watch.kills.iter().map(|(_, _, exposure)| *exposure), window, "messages committed and not acknowledged");
    eprintln!("{ctx}: {} duplicates", tally.duplicates());
}
