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

/// The contract's own failure: a source that acknowledges what it reads before the sink has it
/// (the "acks never wait" bug of LESSONS.md) fails the failing-sink property.
#[tokio::test]
async fn the_contract_catches_a_source_that_acknowledges_on_read() {
    use etl::ack::Ack;
    use etl::batch::{batched, BatchConfig, Incoming};
    use etl::record::Meta;
    use etl::source::{BatchStream, Source, SourceContext};

    struct Eager {
        queue: WorkQueue,
        batching: BatchConfig,
    }
    impl Source for Eager {
        type Item = Json;
        fn describe(&self) -> String {
            "eager".into()
        }
        async fn open(self, ctx: SourceContext) -> etl::Result<BatchStream<Json>> {
            let shutdown = ctx.shutdown.clone();
            let claims = futures::stream::unfold(self.queue, move |queue| {
                let shutdown = shutdown.clone();
                async move {
                    let claim = queue.claim(&shutdown).await?;
                    queue.ack(&claim).unwrap(); // the bug: acknowledged on read
                    let record: Json = serde_json::from_slice(&claim.payload).unwrap();
                    let meta = Meta::at(Position::Sequence(claim.id)).with_raw(claim.payload.clone());
                    Some((Ok(Incoming::record(record, meta, claim.payload.len(), ())), queue))
                }
            });
            Ok(batched(claims, self.batching, ctx.shutdown, "eager".into(), |_| Ack::none()))
        }
    }
    struct EagerHarness(QueueSourceHarness);
    impl SourceHarness for EagerHarness {
        type Source = Eager;
        fn name(&self) -> String {
            "eager".into()
        }
        fn source(&mut self, _mode: Mode, batching: Batching) -> Eager {
            Eager {
                queue: self.0.queue.clone(),
                batching: BatchConfig::default().batch_size(batching.size).batch_timeout(batching.timeout),
            }
        }
        async fn put(&mut self, payloads: &[Bytes]) {
            self.0.put(payloads).await
        }
        async fn seal(&mut self) {
            self.0.seal().await
        }
        async fn custody(&self) -> Option<Custody> {
            self.0.custody().await
        }
        fn position(&self, index: usize) -> Position {
            self.0.position(index)
        }
        fn check_extra(&self, index: usize, extra: Option<&Extra>) -> Result<(), String> {
            self.0.check_extra(index, extra)
        }
        fn binary_safe(&self) -> bool {
            true
        }
    }
    let property = common::contract::a_failing_sink_loses_nothing_and_acknowledges_nothing_early(EagerHarness(QueueSourceHarness::new()));
    let panic = tokio::spawn(property).await.expect_err("the property must fail");
    let message = panic.into_panic().downcast::<String>().map(|s| *s).unwrap_or_default();
    assert!(message.contains("acknowledged before the sink committed"), "{message}");
}
