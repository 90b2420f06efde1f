//! Fan-out (`broadcast`, `route`) end to end, through the real driver: what each branch's sink
//! durably holds is counted (committed records, per branch), and the source's own view of its
//! acknowledgements is checked.
//!
//! * a branch that fails k times: retried alone (the other branch does not get the batch
//!   twice), nothing lost in either branch, the batch acknowledged once both committed;
//! * a branch that keeps failing: the run stops, the batch is not acknowledged (the source
//!   redelivers it), and the branch that took it did not commit twice;
//! * a branch's own step dead-letters a record under the fan-out step, the other branch has it;
//! * `route`: each record to the first branch whose predicate holds, the rest to `_`;
//! * branches of different record types (a `map` in one does not change the other);
//! * `pipeline!`: `broadcast { .. }` and `route { .. }`.

mod common;

use common::quick_retries;
use etl::ack::{Ack, Status};
use etl::batch::Batch;
use etl::dead_letter::{DeadLetters, MemoryDeadLetters};
use etl::fanout::{branch, when};
use etl::prelude::*;
use etl::sink::Written;
use std::sync::{Arc, Mutex};

/// A sink that buffers on write and makes durable on commit; its write fails (retryably) the
/// first `failures` times.
#[derive(Clone, Default)]
struct Durable {
    committed: Arc<Mutex<Vec<i64>>>,
    buffered: Arc<Mutex<Vec<i64>>>,
    writes: Arc<Mutex<usize>>,
    failures: Arc<Mutex<usize>>,
}

impl Durable {
    fn failing(n: usize) -> Durable {
        let d = Durable::default();
        *d.failures.lock().unwrap() = n;
        d
    }

    fn committed(&self) -> Vec<i64> {
        let mut v = self.committed.lock().unwrap().clone();
        v.sort_unstable();
        v
    }
}

impl Sink<i64> for Durable {
    fn describe(&self) -> String {
        "durable".into()
    }

    async fn write(&mut self, records: &[i64]) -> Result<Written, etl::ConnectorError> {
        *self.writes.lock().unwrap() += 1;
        let mut failures = self.failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return Err(etl::ConnectorError::retryable("durable", "503 (injected)"));
        }
        self.buffered.lock().unwrap().extend_from_slice(records);
        Ok(Written::all())
    }

    async fn commit(&mut self) -> Result<(), etl::ConnectorError> {
        let mut buffered = self.buffered.lock().unwrap();
        self.committed.lock().unwrap().append(&mut buffered);
        Ok(())
    }
}

/// A source of `batches` batches of 10 numbers whose acknowledgements are recorded.
#[derive(Clone, Default)]
struct Acks(Arc<Mutex<Vec<(usize, Status)>>>);

impl Acks {
    fn source(&self, batches: usize) -> AckedSource {
        AckedSource { acks: self.clone(), batches }
    }

    fn statuses(&self) -> Vec<(usize, Status)> {
        let mut v = self.0.lock().unwrap().clone();
        v.sort_unstable_by_key(|(i, _)| *i);
        v
    }
}

struct AckedSource {
    acks: Acks,
    batches: usize,
}

impl etl::Source for AckedSource {
    type Item = i64;

    fn describe(&self) -> String {
        "acked".into()
    }

    async fn open(self, _ctx: etl::source::SourceContext) -> etl::Result<etl::batch::BatchStream<i64>> {
        let batches: Vec<etl::Result<Batch<i64>>> = (0..self.batches)
            .map(|b| {
                let acks = self.acks.clone();
                let ack = Ack::new(move |status| acks.0.lock().unwrap().push((b, status)));
                let records: Vec<i64> = (0..10).map(|n| (b * 10 + n) as i64).collect();
                let meta = vec![etl::record::Meta::default(); records.len()];
                Ok(Batch::new(records, meta, Vec::new(), ack, "acked".into()))
            })
            .collect();
        Ok(Box::pin(futures::stream::iter(batches)))
    }
}

#[tokio::test]
async fn a_branch_failing_k_times_is_retried_alone_and_nothing_is_lost() {
    let (steady, flaky) = (Durable::default(), Durable::failing(3));
    let acks = Acks::default();
    let (s, f) = (steady.clone(), flaky.clone());
    let report = Pipeline::from(acks.source(5))
        .broadcast(|input| vec![branch(Pipeline::from(input.clone()).to(s)), branch(Pipeline::from(input).to(f))])
        .retry(quick_retries(5))
        .handle_signals(false)
        .run()
        .await
        .expect("the run");
    let all: Vec<i64> = (0..50).collect();
    assert_eq!(steady.committed(), all, "the steady branch has every record once");
    assert_eq!(flaky.committed(), all, "the flaky branch has every record once");
    assert_eq!(*steady.writes.lock().unwrap(), 5, "one write per batch: never again for the flaky branch's retries");
    assert_eq!(*flaky.writes.lock().unwrap(), 8, "5 batches and 3 failed writes");
    assert_eq!(acks.statuses(), (0..5).map(|b| (b, Status::Delivered)).collect::<Vec<_>>(), "{report}");
    assert_eq!(report.retries, 3, "{report}");
}

#[tokio::test]
async fn a_branch_that_keeps_failing_stops_the_run_and_the_source_redelivers() {
    let (steady, broken) = (Durable::default(), Durable::failing(usize::MAX));
    let acks = Acks::default();
    let (s, b) = (steady.clone(), broken.clone());
    let result = Pipeline::from(acks.source(3))
        .broadcast(|input| vec![branch(Pipeline::from(input.clone()).to(s)), branch(Pipeline::from(input).to(b))])
        .retry(quick_retries(2))
        .handle_signals(false)
        .run()
        .await;
    assert!(result.is_err(), "the run stops: {result:?}");
    assert!(broken.committed().is_empty());
    let statuses = acks.statuses();
    assert!(!statuses.is_empty() && statuses.iter().all(|(_, s)| *s == Status::Errored), "nothing acknowledged: {statuses:?}");
    assert_eq!(*steady.writes.lock().unwrap(), 1, "the steady branch took the first batch once, through the retries");
}

#[tokio::test]
async fn a_branch_step_dead_letters_under_the_fan_out_and_the_other_branch_has_the_record() {
    let (all, parsed) = (etl::sink::collect::<i64>(), etl::sink::collect::<i64>());
    let (a, p) = (all.sink(), parsed.sink());
    let dead = MemoryDeadLetters::new();
    let report = Pipeline::from(etl::source::iter(vec![1i64, -2, 3]))
        .broadcast(|input| {
            vec![
                branch(Pipeline::from(input.clone()).to(a)),
                branch(Pipeline::from(input).try_map(|n: i64| if n < 0 { Err(format!("negative: {n}")) } else { Ok(n * 100) }).to(p)),
            ]
        })
        .dead_letters(dead.clone())
        .handle_signals(false)
        .run()
        .await
        .expect("the run");
    assert_eq!(all.records(), [1, -2, 3]);
    assert_eq!(parsed.records(), [100, 300]);
    let entries = dead.list().await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(&entries[0].payload[..], b"-2");
    assert!(entries[0].error.contains("negative: -2") && entries[0].error.contains("branch `collect"), "{}", entries[0].error);
    assert_eq!(report.dead_lettered, 1, "{report}");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, etl::Record)]
struct Order {
    id: u32,
    amount: i64,
    status: String,
}

#[tokio::test]
async fn route_sends_each_record_to_the_first_branch_that_takes_it() {
    let orders: Vec<Order> = [(1, 5000, "paid"), (2, 20, "paid"), (3, 1500, "test"), (4, 7, "test")]
        .into_iter()
        .map(|(id, amount, status)| Order { id, amount, status: status.into() })
        .collect();
    let (big, tests, rest) = (etl::sink::collect::<Order>(), etl::sink::collect::<String>(), etl::sink::collect::<Order>());
    let (b, t, r) = (big.sink(), tests.sink(), rest.sink());
    Pipeline::from(etl::source::iter(orders))
        .route(|input| {
            vec![
                when(Pipeline::from(input.clone()).to(b), |o| o.amount > 1000 && o.status != "test"),
                when(Pipeline::from(input.clone()).map(|o: Order| format!("test order {}", o.id)).to(t), |o| o.status == "test"),
                branch(Pipeline::from(input).to(r)),
            ]
        })
        .handle_signals(false)
        .run()
        .await
        .expect("the run");
    assert_eq!(big.records().iter().map(|o| o.id).collect::<Vec<_>>(), [1]);
    assert_eq!(tests.records(), ["test order 3", "test order 4"], "a branch of another record type");
    assert_eq!(rest.records().iter().map(|o| o.id).collect::<Vec<_>>(), [2]);
}

#[tokio::test]
async fn the_pipeline_macro_forks() {
    let orders: Vec<Order> =
        (1..=4).map(|id| Order { id, amount: i64::from(id) * 600, status: if id == 2 { "test" } else { "paid" }.into() }).collect();
    let (all, amounts) = (etl::sink::collect::<Order>(), etl::sink::collect::<i64>());
    let (all_sink, amounts_sink) = (all.sink(), amounts.sink());
    pipeline! {
        iter(orders.clone())
        | filter(|o| o.status != "test")
        | broadcast {
            all_sink,
            map(|o| o.amount) | amounts_sink,
          }
    }
    .handle_signals(false)
    .run()
    .await
    .expect("the broadcast run");
    assert_eq!(all.records().iter().map(|o| o.id).collect::<Vec<_>>(), [1, 3, 4]);
    assert_eq!(amounts.records(), [600, 1800, 2400]);

    let (big, small) = (etl::sink::collect::<Order>(), etl::sink::collect::<Order>());
    let (big_sink, small_sink) = (big.sink(), small.sink());
    pipeline! {
        iter(orders)
        | route {
            |o| o.amount > 1000 => big_sink,
            _ => filter(|o| o.status != "test") | small_sink,
          }
    }
    .handle_signals(false)
    .run()
    .await
    .expect("the route run");
    assert_eq!(big.records().iter().map(|o| o.id).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(small.records().iter().map(|o| o.id).collect::<Vec<_>>(), [1]);
}

/// `merge`: two sources read as one, each batch acknowledged to the source that read it.
#[tokio::test]
async fn merge_reads_two_sources_and_keeps_their_acknowledgements_apart() {
    let (left, right) = (Acks::default(), Acks::default());
    let out = etl::sink::collect::<i64>();
    let sink = out.sink();
    let (l, r) = (left.source(3), right.source(2));
    let report = pipeline! { etl::source::merge(l, r) | map(|n: i64| n + 1000) | sink }.handle_signals(false).run().await.expect("the run");
    let mut got = out.records();
    got.sort_unstable();
    let mut want: Vec<i64> = (0..30).chain(0..20).map(|n| n + 1000).collect();
    want.sort_unstable();
    assert_eq!(got, want, "{report}");
    assert_eq!(left.statuses(), (0..3).map(|b| (b, Status::Delivered)).collect::<Vec<_>>());
    assert_eq!(right.statuses(), (0..2).map(|b| (b, Status::Delivered)).collect::<Vec<_>>());
}

/// A schema step inside a branch works on the fork's typed records and changes that branch's
/// record type only.
#[tokio::test]
async fn a_rename_in_one_branch_leaves_the_other_branch_alone() {
    let orders: Vec<Order> = (1..=2).map(|id| Order { id, amount: i64::from(id) * 100, status: "paid".into() }).collect();
    let (whole, cents) = (etl::sink::collect::<Order>(), etl::sink::collect::<i64>());
    let (whole_sink, cents_sink) = (whole.sink(), cents.sink());
    pipeline! {
        iter(orders) as Order
        | broadcast {
            rename(amount -> cents) | map(|o| o.cents) | cents_sink,
            filter(|o| o.amount > 0) | whole_sink,
          }
    }
    .handle_signals(false)
    .run()
    .await
    .expect("the run");
    assert_eq!(cents.records(), [100, 200]);
    assert_eq!(whole.records().iter().map(|o| o.amount).collect::<Vec<_>>(), [100, 200]);
}

/// `merge(a(..), b(..)) as T` in `pipeline!`: built-in sources, each checked as a first step.
#[tokio::test]
async fn the_pipeline_macro_merges_built_in_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    std::fs::write(&a, "{\"id\":1,\"amount\":10,\"status\":\"paid\"}\n{\"id\":2,\"amount\":20,\"status\":\"paid\"}\n").unwrap();
    std::fs::write(&b, "{\"id\":3,\"amount\":30,\"status\":\"test\"}\n").unwrap();
    let (a, b) = (a.display().to_string(), b.display().to_string());
    let out = etl::sink::collect::<Order>();
    let sink = out.sink();
    let report = pipeline! {
        merge(file(path = a.as_str()), file(path = b.as_str())) as Order
        | filter(|o| o.status == "paid" || o.amount > 25)
        | sink
    }
    .handle_signals(false)
    .run()
    .await
    .expect("the run");
    let mut ids: Vec<u32> = out.records().iter().map(|o| o.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3], "{report}");
    assert_eq!(report.records_in, 3, "{report}");
}

/// A fan-out's run is a `Send` future: it can be spawned like any pipeline.
#[tokio::test]
async fn a_fan_out_run_can_be_spawned() {
    let out = etl::sink::collect::<i64>();
    let sink = out.sink();
    let run = pipeline! { iter(vec![1i64, 2]) | broadcast { sink, blackhole() } }.handle_signals(false).run();
    tokio::spawn(run).await.expect("the task").expect("the run");
    assert_eq!(out.records(), [1, 2]);
}
