//! The crash harness (tests/common/crash.rs) on the SQS source, against moto (`MOTO_URL`;
//! `scripts/test.sh` starts it; a missing moto is a failure saying how to start it).
//!
//! A queue of its own holds 300 messages `{"n": 0..300}`. The child (this test binary, re-run)
//! drains it into a file sink: `sqs` with a 2 s visibility timeout (so that what a killed child
//! held comes back within the test), `drain_after` (it ends at the first empty poll), batches of
//! 10, `max_in_flight` 2. It is SIGKILLed 3 times at random points while it works, then run
//! again until the queue's own view is empty (messages a killed child held are invisible until
//! their visibility timeout: a run may end before they are back).
//!
//! After each kill the parent reads the durable state: the lake and the queue's depth. The
//! messages both in the lake and still in the queue are the kill's *exposure* (committed, not
//! yet deleted): what the queue will deliver again. Checked: every message in the lake at least
//! once, the queue empty (`ApproximateNumberOfMessages` and `...NotVisible` both 0), every lake
//! file whole JSON lines after every kill, total duplicates ≤ the sum of exposures, and each
//! kill adding at most the in-flight window `max_in_flight × batch_size` = 20 (the bound of
//! DESIGN.md §8) to the exposure the kill before left (`crash::assert_exposures`).

mod common;
mod moto;

use common::contract::LONG;
use common::crash::{self, count_files, read_lake, Child, Tally, Watch};
use etl::batch::BatchOptions;
use etl::{Json, Pipeline};
use moto::{create_queue, moto_url, queue_depth, sqs_client};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MESSAGES: u64 = 300;
const BATCH: usize = 10;
const MAX_IN_FLIGHT: usize = 2;
const KILLS: usize = 3;

async fn child(args: Value) {
    let drain = CancellationToken::new();
    drain.cancel();
    let source = etl::source::sqs::<Json>(args["url"].as_str().unwrap())
        .endpoint_url(moto_url())
        .wait_time_seconds(1)
        .visibility_timeout(Duration::from_secs(2))
        .drain_after(drain)
        .batch_size(BATCH)
        .batch_timeout(LONG);
    crash::run_child(Pipeline::from(source).to(etl::sink::file(args["lake"].as_str().unwrap())), MAX_IN_FLIGHT).await;
}

struct SqsWatch {
    client: aws_sdk_sqs::Client,
    url: String,
    lake: PathBuf,
    /// Per kill: messages in the queue, distinct messages in the lake, exposure.
    kills: Vec<(u64, usize, usize)>,
}

impl Watch for SqsWatch {
    fn progress(&self) -> usize {
        count_files(&self.lake)
    }

    async fn killed(&mut self, _kill: usize) {
        let (visible, in_flight) = queue_depth(&self.client, &self.url).await;
        let held = visible + in_flight;
        let lake = read_lake(&self.lake);
        let distinct: BTreeSet<u64> = lake.records().map(|r| r.get("n").and_then(Value::as_u64).unwrap()).collect();
        // In the lake and not deleted: distinct − deleted, deleted = MESSAGES − held.
        let exposure = (distinct.len() + held as usize).saturating_sub(MESSAGES as usize);
        self.kills.push((held, distinct.len(), exposure));
    }

    async fn finished(&mut self) -> bool {
        queue_depth(&self.client, &self.url).await == (0, 0)
    }
}

#[tokio::test]
async fn sqs_to_file_sink_survives_sigkill() {
    if let Some(args) = crash::child_args() {
        return child(args).await;
    }
    let client = sqs_client().await;
    let url = create_queue(&client, "crash", &[]).await;
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(10) {
        let mut request = client.send_message_batch().queue_url(&url);
        for n in chunk {
            let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .message_body(json!({"n": n}).to_string())
                .build();
            request = request.entries(entry.unwrap());
        }
        let sent = request.send().await.expect("send");
        assert!(sent.failed().is_empty(), "every message sent: {:?}", sent.failed());
    }
    assert_eq!(queue_depth(&client, &url).await, (MESSAGES, 0));
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let child =
        Child { test: "sqs_to_file_sink_survives_sigkill".into(), args: json!({"url": url, "lake": lake}), log_dir: dir.path().to_owned() };
    let mut watch = SqsWatch { client: client.clone(), url: url.clone(), lake: lake.clone(), kills: Vec::new() };
    let crashes = crash::run(&child, KILLS, &mut watch).await;
    let ctx = format!("SQS → file, {crashes:?}, (in queue, distinct in lake, exposure) per kill {:?}", watch.kills);
    assert_eq!(queue_depth(&client, &url).await, (0, 0), "{ctx}: the queue ends empty");
    let out = read_lake(&lake);
    assert!(out.hidden.is_empty(), "{ctx}: no temporaries left: {:?}", out.hidden);
    let tally = Tally::of(out.records().map(|r| r.get("n").and_then(Value::as_u64).unwrap()));
    assert_eq!(tally.missing(0..MESSAGES), Vec::<u64>::new(), "{ctx}: every message at least once");
    let exposed: usize = watch.kills.iter().map(|(_, _, e)| e).sum();
    assert!(
        tally.duplicates() <= exposed,
        "{ctx}: {} duplicates, more than the messages committed and not deleted at the kills ({exposed})",
        tally.duplicates()
    );
    let window = MAX_IN_FLIGHT * BATCH;
    crash::assert_exposures(&ctx, watch.kills.iter().map(|(_, _, exposure)| *exposure), window, "messages committed and not deleted");
    eprintln!("{ctx}: {} duplicates", tally.duplicates());
}
