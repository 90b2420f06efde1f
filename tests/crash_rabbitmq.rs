//! The crash harness (tests/common/crash.rs) on the RabbitMQ source, against the broker at
//! `RABBITMQ_URL` (a missing broker is a failure saying how to start it).
//!
//! A queue of its own holds 400 messages `{"n": 0..400}`. The child (this test binary, re-run)
//! drains it into a file sink: `rabbitmq` with `drain_after` (it ends once the queue is empty
//! and quiet), batches of 10, `max_in_flight` 2. It is SIGKILLed 5 times at random points
//! while it works, then run again until the broker's own view of the queue is empty (nothing
//! ready, nothing unacknowledged).
//!
//! After each kill the parent reads the durable state: the lake and the queue's depth
//! (`rabbitmqctl`). The messages both in the lake and still in the queue are the kill's
//! *exposure* (committed, not yet acknowledged): what the broker will deliver again. Checked:
//! every message in the lake at least once, the queue empty, every lake file whole JSON lines,
//! total duplicates ≤ the sum of exposures, and each kill adding at most the in-flight window
//! `max_in_flight × batch_size` = 20 (the bound of DESIGN.md §8) to the exposure the kill
//! before left (`crash::assert_exposures`).

mod common;
#[path = "common/rabbitmq.rs"]
mod rabbit;

use common::contract::LONG;
use common::crash::{self, count_files, read_lake, Child, Tally, Watch};
use etl::batch::BatchOptions;
use etl::{Json, Pipeline};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

// Enough that the 5th kill still lands mid-work (with 400, a fast run drained the queue by the
// 3rd kill, and the harness refused a child that finished before it could be killed).
const MESSAGES: u64 = 2000;
const BATCH: usize = 10;
const MAX_IN_FLIGHT: usize = 2;
const KILLS: usize = 5;

async fn child(args: Value) {
    let drain = CancellationToken::new();
    drain.cancel();
    let source = etl::source::rabbitmq::<Json>(args["queue"].as_str().unwrap())
        .url(rabbit::url())
        .prefetch_count(30)
        .drain_after(drain)
        .batch_size(BATCH)
        .batch_timeout(LONG);
    crash::run_child(Pipeline::from(source).to(etl::sink::file(args["lake"].as_str().unwrap())), MAX_IN_FLIGHT).await;
}

struct RabbitWatch {
    queue: String,
    lake: PathBuf,
    /// Per kill: messages in the queue, distinct messages in the lake, exposure.
    kills: Vec<(u64, usize, usize)>,
}

impl Watch for RabbitWatch {
    fn progress(&self) -> usize {
        count_files(&self.lake)
    }

    async fn killed(&mut self, _kill: usize) {
        // The killed child's connection is gone: its unacknowledged deliveries are ready again
        // (the broker may take a moment to notice the closed socket).
        let mut held;
        loop {
            let (ready, unacked) = rabbit::depth(&self.queue).await;
            held = ready + unacked;
            if unacked == 0 {
                break;
            }
        }
        let lake = read_lake(&self.lake);
        let distinct: BTreeSet<u64> = lake.records().map(|r| r.get("n").and_then(Value::as_u64).unwrap()).collect();
        // In the lake and not acknowledged: distinct − acknowledged, acknowledged = MESSAGES − held.
        let exposure = (distinct.len() + held as usize).saturating_sub(MESSAGES as usize);
        self.kills.push((held, distinct.len(), exposure));
    }

    async fn finished(&mut self) -> bool {
        rabbit::depth(&self.queue).await == (0, 0)
    }
}

#[tokio::test]
async fn rabbitmq_to_file_sink_survives_sigkill() {
    if let Some(args) = crash::child_args() {
        return child(args).await;
    }
    let (_connection, channel) = rabbit::admin().await;
    let queue = rabbit::queue(&channel, "crash", false).await;
    let messages: Vec<(String, bytes::Bytes)> =
        (0..MESSAGES).map(|n| (format!("m-{n}"), bytes::Bytes::from(json!({"n": n}).to_string()))).collect();
    rabbit::publish(&channel, &queue, &messages).await;
    assert_eq!(rabbit::depth(&queue).await, (MESSAGES, 0));
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let child = Child {
        test: "rabbitmq_to_file_sink_survives_sigkill".into(),
        args: json!({"queue": queue, "lake": lake}),
        log_dir: dir.path().to_owned(),
    };
    let mut watch = RabbitWatch { queue: queue.clone(), lake: lake.clone(), kills: Vec::new() };
    let crashes = crash::run(&child, KILLS, &mut watch).await;
    let ctx = format!("RabbitMQ → file, {crashes:?}, (in queue, distinct in lake, exposure) per kill {:?}", watch.kills);
    assert_eq!(rabbit::depth(&queue).await, (0, 0), "{ctx}: the queue ends empty");
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
    rabbit::delete(&channel, &queue).await;
    eprintln!("{ctx}: {} duplicates", tally.duplicates());
}
