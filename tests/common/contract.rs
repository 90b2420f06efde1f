//! The connector contract (issue 9, DESIGN.md §8): one set of properties every source and every
//! sink must have, written once and run against each connector through a small harness.
//!
//! # Sources
//!
//! A connector's test implements [`SourceHarness`] (put payloads into the source, build the
//! source, report the source's own view of what it still holds) and expands
//! [`source_contract!`], which writes one `#[tokio::test]` per property so that a failure names
//! the property:
//!
//! 1. [`all_records_arrive_exactly_once`]: N payloads in, each record once in the sink, and the
//!    source's store (queue depth, durable position) says every one is acknowledged;
//! 2. [`a_failing_sink_loses_nothing_and_acknowledges_nothing_early`]: the sink fails its writes
//!    and its commits (retryably) a few times; at every call of the sink the source's store
//!    still holds everything, and in the end every record is in the sink once;
//!    [`a_failed_run_acknowledges_nothing_and_the_next_run_gets_everything`]: the sink fails for
//!    good, the run errors, the store holds everything and offers it again, and a second run
//!    delivers it all;
//! 3. [`shutdown_mid_batch_flushes_and_acknowledges_the_partial_batch`];
//! 4. [`undecodable_payloads_are_dead_lettered_with_their_bytes_and_position`];
//! 5. [`metadata_is_beside_the_record`].
//!
//! Adding a connector (Kafka, say): a struct holding the topic and an admin client, with
//! `put` = produce, `source` = the consumer with the contract's batching, `custody` = the
//! group's committed offsets against the end offsets, `position` = `Position::Offset`, then
//! `source_contract!(KafkaHarness::new().await);` in `tests/contract_kafka.rs`.
//!
//! # Sinks
//!
//! [`SinkHarness`] builds the sink, reads the destination back unit by unit (files, objects,
//! messages) and injects real failures of the destination ([`SinkHarness::fail`]);
//! [`sink_round_trip`] and [`sink_survives_failures`] check what the sink promises
//! ([`Promise`]): each batch in exactly one unit (file, S3), or every record at least once
//! with duplicates only from the failed attempts (SQS, work queue).
//!
//! Every check reads the source's store or the destination itself, never only the run report.
#![allow(unused_macros, unused_imports)]

use super::{quick_retries, wait_until, wait_until_async, PATIENCE};
use bytes::Bytes;
use etl::batch::{BatchOptions, FailureKind};
use etl::dead_letter::{DeadLetters, MemoryDeadLetters};
use etl::record::{Extra, Meta, Position};
use etl::sink::{Sink, SinkContext, Written};
use etl::source::Source;
use etl::{ConnectorError, Json, Pipeline};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A linger no test reaches: batches close when full, at the end of input or on shutdown.
pub const LONG: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------------------------
// Source harness

/// How the source built by [`SourceHarness::source`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// It ends on its own once it has read everything put before [`SourceHarness::seal`] (a
    /// regular file, a stream the server closes, a queue drained or closed).
    Drain,
    /// It keeps reading until the pipeline is cancelled (a FIFO, a held stream, a long poll).
    Live,
}

/// Batching of the source under test.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub size: usize,
    pub timeout: Duration,
}

impl Batching {
    pub fn of(size: usize) -> Batching {
        Batching { size, timeout: LONG }
    }

    /// Apply to a source's batch options.
    pub fn apply<S: BatchOptions>(self, source: S) -> S {
        source.batch_size(self.size).batch_timeout(self.timeout)
    }
}

/// What the source's own store says about the payloads put so far: the broker's queue depth,
/// the durable position (resume file, committed offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Custody {
    /// Payloads the store regards as done (deleted, acked, at or before the durable position).
    pub acknowledged: usize,
    /// Payloads it would hand to a consumer now (visible, ready, after the durable position).
    pub ready: usize,
}

/// What a source connector's test provides to run the contract. See the [module docs](self).
pub trait SourceHarness: Send {
    type Source: Source<Item = Json>;

    /// The connector's name, for failure messages.
    fn name(&self) -> String;

    /// A source reading what is put (before or after this call), ending as `mode` says.
    fn source(&mut self, mode: Mode, batching: Batching) -> Self::Source;

    /// Put these payloads into the source's input, in order; the i-th payload ever put has
    /// index i (for [`position`](SourceHarness::position)).
    fn put(&mut self, payloads: &[Bytes]) -> impl Future<Output = ()> + Send;

    /// Nothing more will be put: a [`Mode::Drain`] source may end once it read everything.
    fn seal(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The source's own store's view (broker, durable position); `None` when the source keeps
    /// nothing (a file read once, without checkpoint).
    fn custody(&self) -> impl Future<Output = Option<Custody>> + Send;

    /// The position the source gives the payload of index `index`.
    fn position(&self, index: usize) -> Position;

    /// Check the extra metadata of the record decoded from the payload of index `index` (its
    /// first delivery).
    fn check_extra(&self, index: usize, extra: Option<&Extra>) -> Result<(), String>;

    /// Whether payloads may be any bytes (not UTF-8): the dead-letter property then sends one.
    fn binary_safe(&self) -> bool;
}

/// Writes one `#[tokio::test]` per source property, each on a fresh harness made by `$make`
/// (an expression, evaluated in an async context: `.await` allowed).
macro_rules! source_contract {
    ($make:expr) => {
        #[tokio::test]
        async fn contract_all_records_arrive_exactly_once() {
            common::contract::all_records_arrive_exactly_once($make).await
        }
        #[tokio::test]
        async fn contract_a_failing_sink_loses_nothing_and_acknowledges_nothing_early() {
            common::contract::a_failing_sink_loses_nothing_and_acknowledges_nothing_early($make).await
        }
        #[tokio::test]
        async fn contract_a_failed_run_acknowledges_nothing_and_the_next_run_gets_everything() {
            common::contract::a_failed_run_acknowledges_nothing_and_the_next_run_gets_everything($make).await
        }
        #[tokio::test]
        async fn contract_shutdown_mid_batch_flushes_and_acknowledges_the_partial_batch() {
            common::contract::shutdown_mid_batch_flushes_and_acknowledges_the_partial_batch($make).await
        }
        #[tokio::test]
        async fn contract_undecodable_payloads_are_dead_lettered_with_their_bytes_and_position() {
            common::contract::undecodable_payloads_are_dead_lettered_with_their_bytes_and_position($make).await
        }
        #[tokio::test]
        async fn contract_metadata_is_beside_the_record() {
            common::contract::metadata_is_beside_the_record($make).await
        }
    };
}
pub(crate) use source_contract;

/// The payload of record `n`: JSON with characters that CSV, JSON and XML bodies escape.
pub fn payload(n: usize) -> Bytes {
    Bytes::from(json!({"n": n, "text": format!("a, \"quoted\" <&> é 🦀 #{n}")}).to_string())
}

/// The `n` field of a record.
pub fn number(record: &Json) -> u64 {
    record.get("n").and_then(Value::as_u64).unwrap_or_else(|| panic!("a record without a numeric `n`: {record:?}"))
}

/// Fails unless `numbers` holds each of `0..n` exactly once.
#[track_caller]
pub fn assert_exactly_once(context: &str, numbers: impl IntoIterator<Item = u64>, n: usize) {
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for k in numbers {
        *counts.entry(k).or_default() += 1;
    }
    let missing: Vec<u64> = (0..n as u64).filter(|k| !counts.contains_key(k)).collect();
    let twice: Vec<(u64, usize)> = counts.iter().filter(|(_, c)| **c > 1).map(|(k, c)| (*k, *c)).collect();
    let unexpected: Vec<u64> = counts.keys().copied().filter(|k| *k >= n as u64).collect();
    assert!(
        missing.is_empty() && twice.is_empty() && unexpected.is_empty(),
        "{context}: every record exactly once: missing {missing:?}, more than once (record, times) {twice:?}, never put {unexpected:?}"
    );
}

fn context<H: SourceHarness>(h: &H, property: &str) -> String {
    format!("[source {} | {property}]", h.name())
}

async fn run_in_time<F: Future>(context: &str, run: F) -> F::Output {
    tokio::time::timeout(PATIENCE, run).await.unwrap_or_else(|_| panic!("{context}: the run did not end within {PATIENCE:?}"))
}

/// 1. Every payload put arrives in the sink exactly once, and the source's store says each is
///    acknowledged once the run has returned (the stream's end waits for its acknowledgements).
pub async fn all_records_arrive_exactly_once<H: SourceHarness>(mut h: H) {
    const N: usize = 23;
    let ctx = context(&h, "all records arrive exactly once");
    let source = h.source(Mode::Drain, Batching::of(5));
    h.put(&(0..N).map(payload).collect::<Vec<_>>()).await;
    h.seal().await;
    let lake = Lake::default();
    let dlq = MemoryDeadLetters::new();
    let run = Pipeline::from(source).to(lake.sink()).dead_letters(dlq.clone()).handle_signals(false).run();
    let report = run_in_time(&ctx, run).await.unwrap_or_else(|e| panic!("{ctx}: the run failed: {e}"));
    assert_exactly_once(&ctx, lake.numbers(), N);
    assert!(dlq.is_empty(), "{ctx}: nothing dead-lettered: {:?}", dlq.list().await.unwrap());
    assert_eq!((report.records_in, report.records_out, report.dead_lettered), (N as u64, N as u64, 0), "{ctx}: {report}");
    if let Some(custody) = h.custody().await {
        assert_eq!(custody.acknowledged, N, "{ctx}: the source's store once `run` returned: {custody:?}");
    }
}

/// 2. The sink fails its first two writes and its first two commits (retryable errors). At
///    each call of the sink, before it answers, the source's store still holds every record
///    (nothing acknowledged early); in the end each record is in the sink once (a failed commit
///    keeps nothing; the rewrite does not duplicate) and the store has let go of everything.
pub async fn a_failing_sink_loses_nothing_and_acknowledges_nothing_early<H: SourceHarness>(mut h: H) {
    const N: usize = 12;
    const FAILURES: usize = 2;
    let ctx = context(&h, "a failing sink loses nothing and acknowledges nothing early");
    // One batch of all N records.
    let source = h.source(Mode::Drain, Batching::of(N));
    h.put(&(0..N).map(payload).collect::<Vec<_>>()).await;
    h.seal().await;
    let lake = Lake::default();
    let (sink, mut puppet) = lake.puppet();
    let run = tokio::spawn(
        Pipeline::from(source).to(sink).retry(quick_retries(10)).dead_letters(MemoryDeadLetters::new()).handle_signals(false).run(),
    );
    let (mut write_failures, mut commit_failures, mut calls) = (0, 0, Vec::new());
    while let Some((call, reply)) = puppet.next(&ctx).await {
        if let Some(custody) = h.custody().await {
            assert_eq!(custody.acknowledged, 0, "{ctx}: acknowledged before the sink committed, at call {call:?} (calls so far {calls:?})");
        }
        let verdict = match &call {
            Call::Write(records) => {
                assert_eq!(records.len(), N, "{ctx}: every write carries the whole batch: {records:?}");
                if write_failures < FAILURES {
                    write_failures += 1;
                    Verdict::Retryable
                } else {
                    Verdict::Ok
                }
            }
            Call::Commit if commit_failures < FAILURES => {
                commit_failures += 1;
                Verdict::Retryable
            }
            Call::Commit => Verdict::Ok,
        };
        calls.push((call, verdict));
        let _ = reply.send(verdict);
    }
    let report = run_in_time(&ctx, run).await.expect("no panic").unwrap_or_else(|e| panic!("{ctx}: the run failed: {e}"));
    assert_eq!((write_failures, commit_failures), (FAILURES, FAILURES), "{ctx}: the failures were injected: {calls:?}");
    assert_exactly_once(&ctx, lake.numbers(), N);
    assert_eq!(report.records_out, N as u64, "{ctx}: {report}");
    if let Some(custody) = h.custody().await {
        assert_eq!(custody.acknowledged, N, "{ctx}: acknowledged once committed and `run` returned: {custody:?}");
    }
}

/// 2b. Writes succeed but the commit fails for good: the run returns an error, nothing is
///     acknowledged, the source's store offers every record again, and the next run delivers
///     every one.
pub async fn a_failed_run_acknowledges_nothing_and_the_next_run_gets_everything<H: SourceHarness>(mut h: H) {
    const N: usize = 8;
    let ctx = context(&h, "a failed run acknowledges nothing and the next run gets everything");
    let first = h.source(Mode::Drain, Batching::of(4));
    h.put(&(0..N).map(payload).collect::<Vec<_>>()).await;
    h.seal().await;
    let broken = Lake::default();
    let (sink, mut puppet) = broken.puppet();
    let run = tokio::spawn(
        Pipeline::from(first).to(sink).retry(quick_retries(3)).dead_letters(MemoryDeadLetters::new()).handle_signals(false).run(),
    );
    let mut commits = 0;
    while let Some((call, reply)) = puppet.next(&ctx).await {
        let verdict = match call {
            Call::Write(_) => Verdict::Ok,
            Call::Commit => {
                commits += 1;
                Verdict::Permanent
            }
        };
        let _ = reply.send(verdict);
    }
    let result = run_in_time(&ctx, run).await.expect("no panic");
    assert!(result.is_err(), "{ctx}: a commit that fails for good fails the run: {result:?}");
    assert_eq!(commits, 1, "{ctx}: a permanent commit error is not retried");
    assert_eq!(broken.len(), 0, "{ctx}: nothing committed");
    if h.custody().await.is_some() {
        let what = format!("{ctx}: every record offered again (the source's store)");
        wait_until_async(PATIENCE, &what, || async {
            let custody = h.custody().await.expect("a store");
            assert_eq!(custody.acknowledged, 0, "{ctx}: nothing acknowledged after the failed run: {custody:?}");
            custody.ready == N
        })
        .await;
    }
    let second = h.source(Mode::Drain, Batching::of(4));
    let lake = Lake::default();
    let run = Pipeline::from(second).to(lake.sink()).dead_letters(MemoryDeadLetters::new()).handle_signals(false).run();
    run_in_time(&ctx, run).await.unwrap_or_else(|e| panic!("{ctx}: the second run failed: {e}"));
    assert_exactly_once(&ctx, lake.numbers(), N);
    if let Some(custody) = h.custody().await {
        assert_eq!(custody.acknowledged, N, "{ctx}: the second run acknowledged everything: {custody:?}");
    }
}

/// 3. A full batch and a partial one are read; the partial one waits for its (hour-long)
///    linger. Cancelling the pipeline flushes it: `run` returns `Ok`, every record is in the
///    sink once, and the source's store says every one is acknowledged as soon as `run` has
///    returned.
pub async fn shutdown_mid_batch_flushes_and_acknowledges_the_partial_batch<H: SourceHarness>(mut h: H) {
    const FULL: usize = 5;
    const PARTIAL: usize = 3;
    let ctx = context(&h, "shutdown mid-batch flushes and acknowledges the partial batch");
    let source = h.source(Mode::Live, Batching::of(FULL));
    // Put before the run: the source reads all of it at once (one read, one poll, one chunk),
    // so the partial batch is in the batcher by the time the full one reaches the sink.
    h.put(&(0..FULL + PARTIAL).map(payload).collect::<Vec<_>>()).await;
    let lake = Lake::default();
    let token = CancellationToken::new();
    let run = tokio::spawn(
        Pipeline::from(source).to(lake.sink()).dead_letters(MemoryDeadLetters::new()).cancel_on(token.clone()).handle_signals(false).run(),
    );
    wait_until(PATIENCE, &format!("{ctx}: the full batch committed"), || lake.len() >= FULL).await;
    assert_eq!(lake.len(), FULL, "{ctx}: the partial batch waits for its linger");
    if let Some(custody) = h.custody().await {
        assert!(custody.acknowledged <= FULL, "{ctx}: the partial batch is not acknowledged before it is written: {custody:?}");
    }
    assert!(!run.is_finished(), "{ctx}: a live source runs until cancelled");
    token.cancel();
    let report = run_in_time(&ctx, run).await.expect("no panic").unwrap_or_else(|e| panic!("{ctx}: the run failed: {e}"));
    assert_exactly_once(&ctx, lake.numbers(), FULL + PARTIAL);
    assert_eq!(report.records_out, (FULL + PARTIAL) as u64, "{ctx}: {report}");
    if let Some(custody) = h.custody().await {
        assert_eq!(custody.acknowledged, FULL + PARTIAL, "{ctx}: every batch acknowledged once `run` returned: {custody:?}");
    }
}

/// 4. Payloads that do not decode are dead-lettered with exactly their bytes, their position
///    and kind `decode`; the others arrive; the batch is done (acknowledged).
pub async fn undecodable_payloads_are_dead_lettered_with_their_bytes_and_position<H: SourceHarness>(mut h: H) {
    let ctx = context(&h, "undecodable payloads are dead-lettered with their bytes and position");
    let mut payloads: Vec<(Bytes, bool)> = vec![
        (payload(0), true),
        (Bytes::from_static(b"{\"n\": 1,"), false),
        (payload(2), true),
        (Bytes::from_static(b"not json at all"), false),
        (payload(4), true),
    ];
    if h.binary_safe() {
        payloads.push((Bytes::from_static(b"{\"n\": \"\xff\xfe invalid UTF-8\"}"), false));
    }
    payloads.push((payload(6), true));
    let source = h.source(Mode::Drain, Batching::of(10));
    h.put(&payloads.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>()).await;
    h.seal().await;
    let lake = Lake::default();
    let dlq = MemoryDeadLetters::new();
    let run = Pipeline::from(source).to(lake.sink()).dead_letters(dlq.clone()).handle_signals(false).run();
    let report = run_in_time(&ctx, run).await.unwrap_or_else(|e| panic!("{ctx}: the run failed: {e}"));
    let mut good: Vec<u64> = lake.numbers();
    good.sort_unstable();
    assert_eq!(good, [0, 2, 4, 6], "{ctx}: the good records arrive");
    let entries = dlq.list().await.unwrap();
    let got: Vec<(Bytes, Position, FailureKind)> = entries.iter().map(|e| (e.payload.clone(), e.position.clone(), e.kind)).collect();
    let want: Vec<(Bytes, Position, FailureKind)> = payloads
        .iter()
        .enumerate()
        .filter(|(_, (_, good))| !good)
        .map(|(i, (p, _))| (p.clone(), h.position(i), FailureKind::Decode))
        .collect();
    assert_eq!(got, want, "{ctx}: each bad payload dead-lettered once, with its exact bytes and position");
    assert!(entries.iter().all(|e| !e.error.is_empty() && !e.source.is_empty()), "{ctx}: an error and a source: {entries:?}");
    assert_eq!(report.dead_lettered, want.len() as u64, "{ctx}: {report}");
    if let Some(custody) = h.custody().await {
        assert_eq!(custody.acknowledged, payloads.len(), "{ctx}: a batch with dead-lettered records is done: {custody:?}");
    }
}

/// 5. Metadata travels beside the record: the record is exactly the payload (fields named like
///    metadata keep the user's values, nothing is added), `Meta::position` is the payload's
///    position, `Meta::raw` its exact bytes, and the extras are the connector's.
pub async fn metadata_is_beside_the_record<H: SourceHarness>(mut h: H) {
    const N: usize = 6;
    let ctx = context(&h, "metadata is beside the record");
    let payloads: Vec<Bytes> = (0..N)
        .map(|n| {
            let record = json!({"n": n, "position": "mine", "_offset": -1, "_event_type": "user", "id": format!("user-{n}"), "meta": null});
            Bytes::from(record.to_string())
        })
        .collect();
    let source = h.source(Mode::Drain, Batching::of(4));
    h.put(&payloads).await;
    h.seal().await;
    let lake = Lake::default();
    let run = Pipeline::from(source).to(lake.sink()).dead_letters(MemoryDeadLetters::new()).handle_signals(false).run();
    run_in_time(&ctx, run).await.unwrap_or_else(|e| panic!("{ctx}: the run failed: {e}"));
    let committed = lake.committed();
    assert_exactly_once(&ctx, committed.iter().map(|(r, _)| number(r)), N);
    for (record, meta) in committed {
        let i = number(&record) as usize;
        let sent: Value = serde_json::from_slice(&payloads[i]).unwrap();
        assert_eq!(serde_json::to_value(&record).unwrap(), sent, "{ctx}: the record is what was sent, nothing added");
        assert_eq!(meta.position, h.position(i), "{ctx}: position of record {i}");
        assert_eq!(meta.raw.as_ref(), Some(&payloads[i]), "{ctx}: raw bytes of record {i}");
        if let Err(e) = h.check_extra(i, meta.extra.as_deref()) {
            panic!("{ctx}: extras of record {i}: {e} (got {:?})", meta.extra);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The recording sink of the source properties

/// An in-memory two-phase sink: writes are buffered, a commit keeps them, a failed commit
/// drops them (as a real two-phase sink must). Optionally a [`Puppet`] decides every answer.
#[derive(Clone, Default)]
pub struct Lake(Arc<Mutex<LakeState>>);

#[derive(Default)]
struct LakeState {
    buffered: Vec<(Json, Meta)>,
    committed: Vec<(Json, Meta)>,
}

/// A call of the sink, as the puppeteer sees it: the `n` of each record written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Write(Vec<u64>),
    Commit,
}

/// The puppeteer's answer to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Retryable,
    Permanent,
}

type Ask = mpsc::UnboundedSender<(Call, oneshot::Sender<Verdict>)>;

/// The test's side of a puppet sink: each call of the sink waits here for a [`Verdict`].
pub struct Puppet(mpsc::UnboundedReceiver<(Call, oneshot::Sender<Verdict>)>);

impl Puppet {
    /// The next call of the sink; `None` once the sink is gone (the run ended).
    pub async fn next(&mut self, context: &str) -> Option<(Call, oneshot::Sender<Verdict>)> {
        tokio::time::timeout(PATIENCE, self.0.recv()).await.unwrap_or_else(|_| panic!("{context}: no call of the sink for {PATIENCE:?}"))
    }
}

impl Lake {
    /// A sink that always succeeds.
    pub fn sink(&self) -> LakeSink {
        LakeSink { lake: self.clone(), ask: None }
    }

    /// A sink whose every call is answered by the returned [`Puppet`].
    pub fn puppet(&self) -> (LakeSink, Puppet) {
        let (tx, rx) = mpsc::unbounded_channel();
        (LakeSink { lake: self.clone(), ask: Some(tx) }, Puppet(rx))
    }

    pub fn committed(&self) -> Vec<(Json, Meta)> {
        self.0.lock().unwrap().committed.clone()
    }

    pub fn numbers(&self) -> Vec<u64> {
        self.0.lock().unwrap().committed.iter().map(|(r, _)| number(r)).collect()
    }

    /// Records committed.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().committed.len()
    }
}

pub struct LakeSink {
    lake: Lake,
    ask: Option<Ask>,
}

impl LakeSink {
    async fn verdict(&self, call: Call) -> Result<(), ConnectorError> {
        let Some(ask) = &self.ask else { return Ok(()) };
        let (tx, rx) = oneshot::channel();
        ask.send((call, tx)).map_err(|_| ConnectorError::permanent("puppet", "the puppeteer is gone"))?;
        match rx.await {
            Ok(Verdict::Ok) => Ok(()),
            Ok(Verdict::Retryable) => Err(ConnectorError::retryable("puppet", "connection reset (injected)")),
            Ok(Verdict::Permanent) | Err(_) => Err(ConnectorError::permanent("puppet", "table does not exist (injected)")),
        }
    }
}

impl Sink<Json> for LakeSink {
    fn describe(&self) -> String {
        "lake".into()
    }

    async fn write(&mut self, records: &[Json]) -> Result<Written, ConnectorError> {
        self.write_batch(records, &vec![Meta::default(); records.len()]).await
    }

    async fn write_batch(&mut self, records: &[Json], meta: &[Meta]) -> Result<Written, ConnectorError> {
        self.verdict(Call::Write(records.iter().map(number).collect())).await?;
        self.lake.0.lock().unwrap().buffered.extend(records.iter().cloned().zip(meta.iter().cloned()));
        Ok(Written::all())
    }

    async fn commit(&mut self) -> Result<(), ConnectorError> {
        let verdict = self.verdict(Call::Commit).await;
        let mut state = self.lake.0.lock().unwrap();
        let buffered = std::mem::take(&mut state.buffered);
        if verdict.is_ok() {
            state.committed.extend(buffered);
        }
        verdict
    }
}

// ---------------------------------------------------------------------------------------------
// Sink harness

/// What a sink promises about its output when writes or commits fail and are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promise {
    /// Each batch ends in exactly one unit (file, object), whole; no record twice.
    OneUnitPerBatch,
    /// Every record at least once; a failed attempt may leave what it sent (duplicates).
    AtLeastOnce,
}

/// The call of a sink a failure is injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Write,
    Commit,
}

/// Run before (`None`) and after (`Some(ok)`) every call of the sink, in the pipeline's task:
/// where a harness breaks and repairs the destination. Its failures must be real ones of the
/// destination (a directory in the way, an HTTP 503), not a wrapper's lie.
pub type Hook = Box<dyn FnMut(Phase, Option<bool>) + Send>;

/// What a sink connector's test provides to run the sink contract.
pub trait SinkHarness: Send {
    type Sink: Sink<Json> + Send + 'static;

    fn name(&self) -> String;

    fn promise(&self) -> Promise;

    /// Make the next `times` calls of `phase` fail for real, retryably. Called before
    /// [`sink`](SinkHarness::sink). `None`: this sink has no such failure (no commit phase, no
    /// retryable failure).
    fn fail(&mut self, phase: Phase, times: usize) -> impl Future<Output = Option<Hook>> + Send;

    /// A sink writing into the destination.
    fn sink(&mut self) -> impl Future<Output = Self::Sink> + Send;

    /// Everything durably in the destination, unit by unit (a file's, an object's records in
    /// order; one unit per message for a queue).
    fn read_back(&mut self) -> impl Future<Output = Vec<Vec<Json>>> + Send;
}

/// Writes one `#[tokio::test]` per sink property on a fresh harness made by `$make`. For a
/// sink that cannot fail in a phase, [`sink_survives_failures`] checks that `fail` says so.
macro_rules! sink_contract {
    ($make:expr) => {
        #[tokio::test]
        async fn sink_contract_round_trip() {
            common::contract::sink_round_trip($make).await
        }
        #[tokio::test]
        async fn sink_contract_survives_write_failures() {
            common::contract::sink_survives_failures($make, common::contract::Phase::Write).await
        }
        #[tokio::test]
        async fn sink_contract_survives_commit_failures() {
            common::contract::sink_survives_failures($make, common::contract::Phase::Commit).await
        }
    };
}
pub(crate) use sink_contract;

/// A sink under test with the harness's hook around each call; counts the failed calls.
pub struct Hooked<S> {
    inner: S,
    hook: Option<Hook>,
    pub failed: Arc<AtomicUsize>,
}

impl<S> Hooked<S> {
    pub fn new(inner: S, hook: Option<Hook>) -> Self {
        Hooked { inner, hook, failed: Arc::default() }
    }

    fn around(&mut self, phase: Phase, ok: Option<bool>) {
        if ok == Some(false) {
            self.failed.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(hook) = &mut self.hook {
            hook(phase, ok);
        }
    }
}

impl<S: Sink<Json> + Send> Sink<Json> for Hooked<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn open(&mut self, ctx: SinkContext) -> Result<(), ConnectorError> {
        self.inner.open(ctx).await
    }

    async fn write(&mut self, records: &[Json]) -> Result<Written, ConnectorError> {
        self.around(Phase::Write, None);
        let result = self.inner.write(records).await;
        self.around(Phase::Write, Some(result.is_ok()));
        result
    }

    async fn write_batch(&mut self, records: &[Json], meta: &[Meta]) -> Result<Written, ConnectorError> {
        self.around(Phase::Write, None);
        let result = self.inner.write_batch(records, meta).await;
        self.around(Phase::Write, Some(result.is_ok()));
        result
    }

    async fn commit(&mut self) -> Result<(), ConnectorError> {
        self.around(Phase::Commit, None);
        let result = self.inner.commit().await;
        self.around(Phase::Commit, Some(result.is_ok()));
        result
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        self.inner.close().await
    }
}

/// The records a sink property writes: `n` and awkward text (commas, quotes, a newline, XML
/// characters, non-ASCII).
pub fn sink_records(n: usize) -> Vec<Json> {
    (0..n)
        .map(|i| {
            let mut record: Json = serde_json::from_slice(&payload(i)).unwrap();
            record.0.insert("multiline".into(), json!(format!("line one, \"{i}\"\nline two")));
            record
        })
        .collect()
}

const SINK_N: usize = 23;
const SINK_BATCH: usize = 5;

fn sink_batches() -> Vec<Vec<Json>> {
    sink_records(SINK_N).chunks(SINK_BATCH).map(<[Json]>::to_vec).collect()
}

/// Check the units read back against the batches written, as the sink promises;
/// `duplicates_allowed` is how many records failed attempts may have left behind
/// (at-least-once sinks).
#[track_caller]
fn check_promise(ctx: &str, promise: Promise, units: &[Vec<Json>], duplicates_allowed: usize) {
    let batches = sink_batches();
    match promise {
        Promise::OneUnitPerBatch => {
            let key = |records: &[Json]| records.iter().map(number).collect::<Vec<_>>();
            let mut got: Vec<Vec<u64>> = units.iter().map(|u| key(u)).collect();
            got.sort();
            let mut want: Vec<Vec<u64>> = batches.iter().map(|b| key(b)).collect();
            want.sort();
            assert_eq!(got, want, "{ctx}: each batch in exactly one unit, whole and in order; nothing else");
            let mut all: Vec<Json> = units.concat();
            all.sort_by_key(number);
            assert_eq!(all, sink_records(SINK_N), "{ctx}: the records read back are the records written");
        }
        Promise::AtLeastOnce => {
            let mut all: Vec<Json> = units.concat();
            all.sort_by_key(number);
            let mut distinct = all.clone();
            distinct.dedup();
            assert_eq!(distinct, sink_records(SINK_N), "{ctx}: every record at least once, content intact");
            let duplicates = all.len() - distinct.len();
            assert!(
                duplicates <= duplicates_allowed,
                "{ctx}: {duplicates} duplicates, more than the failed attempts can explain ({duplicates_allowed})"
            );
        }
    }
}

/// Sink 1: write 23 records in batches of 5, read back exactly what the sink promises.
pub async fn sink_round_trip<H: SinkHarness>(mut h: H) {
    let ctx = format!("[sink {} | round trip]", h.name());
    let sink = h.sink().await;
    let run = Pipeline::from(etl::source::iter(sink_records(SINK_N)).batch_size(SINK_BATCH))
        .to(sink)
        .dead_letters(MemoryDeadLetters::new())
        .handle_signals(false)
        .run();
    let report = run_in_time(&ctx, run).await.unwrap_or_else(|e| panic!("{ctx}: the run failed: {e}"));
    assert_eq!((report.records_out, report.dead_lettered), (SINK_N as u64, 0), "{ctx}: {report}");
    let units = h.read_back().await;
    check_promise(&ctx, h.promise(), &units, 0);
}

/// Sink 2: the destination fails the next two calls of `phase` for real; the pipeline retries
/// (rewriting what a failed commit lost), and the destination holds what the sink promises.
pub async fn sink_survives_failures<H: SinkHarness>(mut h: H, phase: Phase) {
    const TIMES: usize = 2;
    let ctx = format!("[sink {} | survives {phase:?} failures]", h.name());
    let Some(hook) = h.fail(phase, TIMES).await else {
        eprintln!("{ctx}: this sink has no retryable {phase:?} failure to inject; nothing to check");
        return;
    };
    let sink = Hooked::new(h.sink().await, Some(hook));
    let failed = Arc::clone(&sink.failed);
    let run = Pipeline::from(etl::source::iter(sink_records(SINK_N)).batch_size(SINK_BATCH))
        .to(sink)
        .retry(quick_retries(TIMES + 3))
        .max_in_flight(2)
        .dead_letters(MemoryDeadLetters::new())
        .handle_signals(false)
        .run();
    let report = run_in_time(&ctx, run).await.unwrap_or_else(|e| panic!("{ctx}: the run failed: {e}"));
    let failed = failed.load(Ordering::SeqCst);
    assert!(failed >= 1, "{ctx}: the injected failure reached the pipeline ({failed} failed calls)");
    assert_eq!(report.records_out, SINK_N as u64, "{ctx}: {report}");
    let units = h.read_back().await;
    // A failed write may have sent part of its batch; a failed commit makes the pipeline write
    // every uncommitted batch again (at most `max_in_flight` = 2).
    let per_attempt = match phase {
        Phase::Write => SINK_BATCH,
        Phase::Commit => 2 * SINK_BATCH,
    };
    check_promise(&ctx, h.promise(), &units, failed * per_attempt);
}
