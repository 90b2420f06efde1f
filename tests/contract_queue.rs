//! The connector contract (tests/common/contract.rs) for the in-process work queue:
//! `WorkQueue::source` and `WorkQueue::sink`.
//!
//! The source's store is the queue itself: a message is acknowledged when it left the queue
//! (acked), ready when it can be claimed now. Drain mode closes the queue once everything is
//! put (the consumer ends once it is drained).
//!
//! The sink has no commit (a push is done when it returns) and no retryable failure to inject:
//! a push waits while the queue is full and fails for good only on a closed queue, so its
//! failure properties report that there is nothing to inject.

mod common;

use bytes::Bytes;
use common::contract::{Batching, Custody, Hook, Mode, Phase, Promise, SinkHarness, SourceHarness};
use etl::batch::BatchOptions;
use etl::channel::WorkQueue;
use etl::record::{Extra, Position};
use etl::Json;
use std::time::Duration;

struct QueueSourceHarness {
    queue: WorkQueue,
    put: usize,
}

impl QueueSourceHarness {
    fn new() -> Self {
        QueueSourceHarness { queue: WorkQueue::with_limits(1000, Duration::from_secs(300)), put: 0 }
    }
}

impl SourceHarness for QueueSourceHarness {
    type Source = etl::channel::QueueSource<Json>;

    fn name(&self) -> String {
        "work-queue".into()
    }

    fn source(&mut self, _mode: Mode, batching: Batching) -> Self::Source {
        batching.apply(self.queue.source::<Json>().name("contract"))
    }

    async fn put(&mut self, payloads: &[Bytes]) {
        for p in payloads {
            self.queue.push(p.clone()).await.expect("an open queue");
            self.put += 1;
        }
    }

    async fn seal(&mut self) {
        self.queue.close();
    }

    async fn custody(&self) -> Option<Custody> {
        let held = self.queue.len();
        Some(Custody { acknowledged: self.put - held, ready: held - self.queue.in_flight() })
    }

    fn position(&self, index: usize) -> Position {
        // Message ids count pushes from 0; this harness is the queue's only producer.
        Position::Sequence(index as u64)
    }

    fn check_extra(&self, _index: usize, extra: Option<&Extra>) -> Result<(), String> {
        match extra {
            None => Ok(()),
            Some(_) => Err("a first delivery has no extras (the delivery count appears from the second)".into()),
        }
    }

    fn binary_safe(&self) -> bool {
        true
    }
}

common::contract::source_contract!(QueueSourceHarness::new());

struct QueueSinkHarness {
    queue: WorkQueue,
}

impl SinkHarness for QueueSinkHarness {
    type Sink = etl::channel::QueueSink;

    fn name(&self) -> String {
        "work-queue".into()
    }

    fn promise(&self) -> Promise {
        Promise::AtLeastOnce
    }

    async fn fail(&mut self, _phase: Phase, _times: usize) -> Option<Hook> {
        None
    }

    async fn sink(&mut self) -> Self::Sink {
        self.queue.sink().name("contract")
    }

    async fn read_back(&mut self) -> Vec<Vec<Json>> {
        let mut units = Vec::new();
        while let Some(claim) = self.queue.try_claim() {
            units.push(vec![serde_json::from_slice(&claim.payload).expect("a JSON message")]);
            self.queue.ack(&claim).expect("our lease");
        }
        assert!(self.queue.is_empty(), "read back every message");
        units
    }
}

common::contract::sink_contract!(QueueSinkHarness { queue: WorkQueue::new() });

/// A queue smaller than the output: the sink waits for room (backpressure) and loses nothing
/// while a consumer drains it.
#[tokio::test]
async fn the_sink_waits_for_room_in_a_full_queue() {
    let queue = WorkQueue::with_limits(3, Duration::from_secs(300));
    let consumer = {
        let queue = queue.clone();
        tokio::spawn(async move {
            let never = tokio_util::sync::CancellationToken::new();
            let mut got = Vec::new();
            while let Some(claim) = queue.claim(&never).await {
                got.push(common::contract::number(&serde_json::from_slice(&claim.payload).unwrap()));
                queue.ack(&claim).unwrap();
            }
            got
        })
    };
    let run = etl::Pipeline::from(etl::source::iter(common::contract::sink_records(23)).batch_size(5))
        .to(queue.sink())
        .handle_signals(false)
        .run();
    tokio::time::timeout(common::PATIENCE, run).await.expect("the run ended").unwrap();
    queue.close();
    let got = tokio::time::timeout(common::PATIENCE, consumer).await.expect("the consumer ended").unwrap();
    common::contract::assert_exactly_once("[sink work-queue | backpressure]", got, 23);
}
