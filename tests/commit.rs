//! Two-phase sinks: `write` may buffer, `commit` makes durable, and the driver acknowledges a
//! batch only after the commit that follows its write; a failed commit writes the uncommitted
//! batches again or leaves them all for redelivery.

use etl::ack::{Ack, Status};
use etl::batch::Batch;
use etl::dead_letter::MemoryDeadLetters;
use etl::prelude::*;
use etl::record::{Meta, Position};
use etl::sink::{SinkContext, Written};
use etl::source::{BatchStream, SourceContext};
use etl::{ConnectorError, Error};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the sink has made durable, and what each acknowledgement found durable when it
/// arrived.
#[derive(Default)]
struct Ledger {
    durable: Vec<i64>,
    buffered: Vec<i64>,
    commits: usize,
    writes: usize,
    /// `(batch, status, all of the batch's records were durable when the ack arrived)`.
    acks: Vec<(usize, Status, bool)>,
    opened_as: Option<String>,
}

type Shared = Arc<Mutex<Ledger>>;

/// Fixed batches whose acknowledgements check the ledger at the moment they resolve.
struct Batches {
    batches: Vec<Vec<i64>>,
    ledger: Shared,
}

impl Source for Batches {
    type Item = i64;
    fn describe(&self) -> String {
        "batches".into()
    }
    async fn open(self, _ctx: SourceContext) -> etl::Result<BatchStream<i64>> {
        let ledger = self.ledger;
        let batches: Vec<_> = self
            .batches
            .into_iter()
            .enumerate()
            .map(|(i, records)| {
                let (l, mine) = (Arc::clone(&ledger), records.clone());
                let ack = Ack::new(move |status| {
                    let mut l = l.lock().unwrap();
                    let durable = mine.iter().all(|r| l.durable.contains(r));
                    l.acks.push((i, status, durable));
                });
                let meta = records.iter().map(|&r| Meta::at(Position::Index(r as u64))).collect();
                Ok(Batch::new(records, meta, vec![], ack, Arc::from("batches")))
            })
            .collect();
        Ok(Box::pin(futures::stream::iter(batches)))
    }
}

/// How one commit answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Commit {
    Ok,
    Retryable,
    Permanent,
}

/// Buffers on write, makes the buffer durable on commit; a failed commit discards the
/// buffer (as a rolled-back transaction does).
struct Buffering {
    ledger: Shared,
    commits: VecDeque<Commit>,
    /// Rejected indices to report on every write (for the out-of-range case).
    reject: Vec<usize>,
}

impl Buffering {
    fn new(ledger: &Shared, commits: impl IntoIterator<Item = Commit>) -> Self {
        Buffering { ledger: Arc::clone(ledger), commits: commits.into_iter().collect(), reject: Vec::new() }
    }
}

impl Sink<i64> for Buffering {
    fn describe(&self) -> String {
        "buffering".into()
    }
    async fn open(&mut self, ctx: SinkContext) -> Result<(), ConnectorError> {
        self.ledger.lock().unwrap().opened_as = Some(ctx.pipeline);
        Ok(())
    }
    async fn write(&mut self, records: &[i64]) -> Result<Written, ConnectorError> {
        let mut l = self.ledger.lock().unwrap();
        l.writes += 1;
        // A refused record is not written.
        l.buffered.extend(records.iter().enumerate().filter(|(i, _)| !self.reject.contains(i)).map(|(_, r)| *r));
        Ok(Written::rejecting(self.reject.iter().map(|&i| (i, "refused".to_owned())).collect()))
    }
    async fn commit(&mut self) -> Result<(), ConnectorError> {
        let mut l = self.ledger.lock().unwrap();
        l.commits += 1;
        match self.commits.pop_front().unwrap_or(Commit::Ok) {
            Commit::Ok => {
                let buffered = std::mem::take(&mut l.buffered);
                l.durable.extend(buffered);
                Ok(())
            }
            answer => {
                l.buffered.clear();
                match answer {
                    Commit::Retryable => Err(ConnectorError::retryable("buffering", "commit timed out")),
                    _ => Err(ConnectorError::permanent("buffering", "transaction aborted")),
                }
            }
        }
    }
}

fn batches(n: usize, size: usize) -> Vec<Vec<i64>> {
    (0..n).map(|b| (0..size).map(|r| (b * size + r) as i64).collect()).collect()
}

fn quick_retries(n: usize) -> RetryPolicy {
    RetryPolicy::default().max_retries(n).initial_delay(Duration::from_millis(1)).max_delay(Duration::from_millis(5))
}

#[tokio::test]
async fn acknowledgements_wait_for_the_commit_and_commits_group_batches() {
    let ledger = Shared::default();
    let report = Pipeline::from(Batches { batches: batches(40, 5), ledger: Arc::clone(&ledger) })
        .to(Buffering::new(&ledger, []))
        .name("grouped")
        .max_in_flight(8)
        .handle_signals(false)
        .run()
        .await
        .unwrap();
    let l = ledger.lock().unwrap();
    assert_eq!(l.opened_as.as_deref(), Some("grouped"), "open gets the pipeline's name");
    assert_eq!(l.durable, (0..200).collect::<Vec<_>>(), "every record durable once, in order");
    assert_eq!(l.acks.len(), 40);
    assert!(l.acks.iter().enumerate().all(|(i, (b, s, durable))| *b == i && *s == Status::Delivered && *durable), "{:?}", l.acks);
    // The source is never idle, so commits come when 8 batches are written and uncommitted.
    assert_eq!(l.commits, 5, "40 batches in groups of 8");
    assert_eq!((report.records_out, report.batches), (200, 40));
}

#[tokio::test]
async fn one_batch_in_flight_commits_each_batch() {
    let ledger = Shared::default();
    Pipeline::from(Batches { batches: batches(6, 3), ledger: Arc::clone(&ledger) })
        .to(Buffering::new(&ledger, []))
        .max_in_flight(1)
        .handle_signals(false)
        .run()
        .await
        .unwrap();
    let l = ledger.lock().unwrap();
    assert_eq!((l.writes, l.commits), (6, 6));
    assert!(l.acks.iter().all(|(_, s, durable)| *s == Status::Delivered && *durable));
}

#[tokio::test]
async fn a_zero_commit_interval_commits_after_every_write() {
    let ledger = Shared::default();
    Pipeline::from(Batches { batches: batches(10, 2), ledger: Arc::clone(&ledger) })
        .to(Buffering::new(&ledger, []))
        .max_in_flight(64)
        .commit_interval(Duration::ZERO)
        .handle_signals(false)
        .run()
        .await
        .unwrap();
    assert_eq!(ledger.lock().unwrap().commits, 10);
}

#[tokio::test]
async fn the_last_partial_group_is_committed_at_the_end() {
    let ledger = Shared::default();
    Pipeline::from(Batches { batches: batches(11, 2), ledger: Arc::clone(&ledger) })
        .to(Buffering::new(&ledger, []))
        .max_in_flight(4)
        .handle_signals(false)
        .run()
        .await
        .unwrap();
    let l = ledger.lock().unwrap();
    assert_eq!(l.commits, 3, "4 + 4 + the last 3");
    assert_eq!(l.durable.len(), 22);
    assert!(l.acks.iter().all(|(_, s, durable)| *s == Status::Delivered && *durable));
}

#[tokio::test]
async fn a_failed_commit_writes_the_uncommitted_batches_again() {
    let ledger = Shared::default();
    let report = Pipeline::from(Batches { batches: batches(8, 3), ledger: Arc::clone(&ledger) })
        .to(Buffering::new(&ledger, [Commit::Ok, Commit::Retryable, Commit::Retryable]))
        .max_in_flight(4)
        .retry(quick_retries(3))
        .handle_signals(false)
        .run()
        .await
        .unwrap();
    let l = ledger.lock().unwrap();
    assert_eq!(l.durable, (0..24).collect::<Vec<_>>(), "nothing lost, nothing twice");
    assert_eq!(l.writes, 8 + 4 + 4, "the second group written three times");
    assert!(l.acks.iter().all(|(_, s, durable)| *s == Status::Delivered && *durable));
    assert_eq!(report.retries, 2);
}

#[tokio::test]
async fn a_commit_that_fails_for_good_redelivers_every_uncommitted_batch() {
    let ledger = Shared::default();
    let err = Pipeline::from(Batches { batches: batches(8, 3), ledger: Arc::clone(&ledger) })
        .to(Buffering::new(&ledger, [Commit::Ok, Commit::Permanent]))
        .max_in_flight(4)
        .handle_signals(false)
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Sink(_)), "{err}");
    let l = ledger.lock().unwrap();
    assert_eq!(l.durable, (0..12).collect::<Vec<_>>());
    let statuses: Vec<Status> = l.acks.iter().map(|(_, s, _)| *s).collect();
    assert_eq!(&statuses[..4], &[Status::Delivered; 4]);
    assert_eq!(&statuses[4..8], &[Status::Errored; 4], "the whole uncommitted group is redelivered");
    assert!(l.acks.iter().all(|(_, s, durable)| *s != Status::Delivered || *durable));
}

#[tokio::test]
async fn retries_of_a_commit_run_out() {
    let ledger = Shared::default();
    let err = Pipeline::from(Batches { batches: batches(2, 2), ledger: Arc::clone(&ledger) })
        .to(Buffering::new(&ledger, [Commit::Retryable; 10]))
        .max_in_flight(2)
        .retry(quick_retries(2))
        .handle_signals(false)
        .run()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("commit timed out"), "{err}");
    let l = ledger.lock().unwrap();
    assert_eq!(l.commits, 3, "one attempt and two retries");
    assert!(l.durable.is_empty());
    assert_eq!(l.acks.iter().map(|(_, s, _)| *s).collect::<Vec<_>>(), vec![Status::Errored; 2]);
}

#[tokio::test]
async fn a_rejected_index_outside_the_batch_is_an_error_of_the_sink() {
    let ledger = Shared::default();
    let mut sink = Buffering::new(&ledger, []);
    sink.reject = vec![7];
    let dead = MemoryDeadLetters::new();
    let err = Pipeline::from(Batches { batches: batches(1, 3), ledger: Arc::clone(&ledger) })
        .to(sink)
        .dead_letters(dead.clone())
        .handle_signals(false)
        .run()
        .await
        .unwrap_err();
    let Error::Sink(e) = &err else { panic!("{err}") };
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("record 7 of a batch of 3"), "{e}");
    let l = ledger.lock().unwrap();
    assert_eq!(l.acks.iter().map(|(_, s, _)| *s).collect::<Vec<_>>(), vec![Status::Errored]);
    assert_eq!(dead.len(), 0, "nothing dead-lettered for a sink's bug");
}

#[tokio::test]
async fn rejected_records_are_dead_lettered_once_and_not_written_again_after_a_failed_commit() {
    let ledger = Shared::default();
    let mut sink = Buffering::new(&ledger, [Commit::Retryable]);
    sink.reject = vec![0];
    let dead = MemoryDeadLetters::new();
    Pipeline::from(Batches { batches: batches(2, 3), ledger: Arc::clone(&ledger) })
        .to(sink)
        .dead_letters(dead.clone())
        .max_in_flight(2)
        .retry(quick_retries(2))
        .handle_signals(false)
        .run()
        .await
        .unwrap();
    let dead_ids: Vec<i64> = etl::dead_letter::DeadLetters::list(&dead)
        .await
        .unwrap()
        .iter()
        .map(|e| String::from_utf8_lossy(&e.payload).parse().unwrap())
        .collect();
    let l = ledger.lock().unwrap();
    // The first write of each batch refuses its record 0; the rewrite after the failed commit
    // refuses index 0 of what is left (1 and 4), which is dead-lettered too: each record ends up
    // durable or dead-lettered exactly once.
    let mut seen: Vec<i64> = l.durable.clone();
    seen.extend(&dead_ids);
    seen.sort_unstable();
    assert_eq!(seen, (0..6).collect::<Vec<_>>(), "durable {:?}, dead {:?}", l.durable, dead_ids);
    assert!(l.acks.iter().all(|(_, s, _)| *s == Status::Rejected));
}
