//! The pipeline driver: pulls batches, runs the operators, writes to the sink with retries,
//! dead-letters failed records, commits the sink and resolves every acknowledgement, in order.
//!
//! Writes and commits are two phases (see [`Sink`]): the writer keeps at most
//! `max_in_flight` batches written and uncommitted, commits when that limit or
//! `commit_interval` is reached, when no batch is ready (an idle source) and at the end, and
//! resolves the acknowledgements of the committed batches in the order they were read. A sink
//! whose commit costs a round trip pays it once per group of batches instead of once per batch.
//!
//! Reading and writing are two futures of the same task joined by a channel: the source reads
//! the next batch while the sink writes, no operator or sink needs to be `'static`, and
//! acknowledgements resolve in the order batches were read. A semaphore of `max_in_flight`
//! permits bounds the batches read and not yet acknowledged (committed): the reader takes a
//! permit before it reads a batch, and the permit is returned once that batch's
//! acknowledgement is resolved.

use super::report::{counting_retries, Counters, DeadLetterSummary};
use super::signals::SignalGuard;
use super::RunOptions;
use crate::ack::{Ack, Status};
use crate::batch::{Batch, BatchParts, Failure, FailureKind};
use crate::dead_letter::{DeadLetter, DeadLetters, FileDeadLetters};
use crate::error::{ConnectorError, Error};
use crate::operator::Operator;
use crate::pipeline::RunReport;
use crate::positions::Positions;
use crate::record::Meta;
use crate::resources::Resources;
use crate::sink::{Sink, SinkContext, Written};
use crate::source::{Lag, Source, SourceContext};
use crate::telemetry::{with_run, RunMetrics};
use futures::StreamExt;
use serde::Serialize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

pub(crate) async fn run<S, O, K>(source: S, ops: O, sink: K, labels: Vec<String>, options: RunOptions) -> crate::Result<RunReport>
where
    S: Source,
    O: Operator<S::Item>,
    O::Out: Serialize,
    K: Sink<O::Out>,
{
    let span = info_span!("pipeline", name = %options.name, source = %source.describe(), sink = %sink.describe());
    run_inner(source, ops, sink, labels, options).instrument(span).await
}

/// The runner's `check`: open the sink and the source (which resolves every `${VAR}` and
/// reaches every server), consume nothing, close.
pub(crate) async fn check<S, K, T>(source: S, mut sink: K, options: RunOptions) -> crate::Result<RunReport>
where
    S: Source,
    K: Sink<T>,
{
    let (source_name, sink_name) = (source.describe(), sink.describe());
    let start = |error| Error::Start { pipeline: options.name.clone(), error: Box::new(error) };
    let stop = options.cancel.child_token();
    let resources = Resources::default();
    sink.open(SinkContext::new(options.name.clone(), stop.clone()).with_resources(resources.clone()))
        .await
        .map_err(|e| start(Error::Sink(e)))?;
    let checked = source.check(SourceContext::new(stop.clone()).with_resources(resources)).await;
    stop.cancel();
    checked.map_err(start)?;
    sink.close().await.map_err(|e| start(Error::Sink(e)))?;
    info!(pipeline = %options.name, source = %source_name, sink = %sink_name, "check passed: the source and the sink opened");
    Ok(RunReport::default())
}

async fn run_inner<S, O, K>(source: S, mut ops: O, mut sink: K, labels: Vec<String>, options: RunOptions) -> crate::Result<RunReport>
where
    S: Source,
    O: Operator<S::Item>,
    O::Out: Serialize,
    K: Sink<O::Out>,
{
    let started = Instant::now();
    let shutdown = options.cancel.clone();
    // A second signal during the graceful stop ends the run at once.
    let forced = CancellationToken::new();
    let _signals = options.handle_signals.then(|| SignalGuard::install(shutdown.clone(), forced.clone()));
    let dead_letters: Arc<dyn DeadLetters> = match &options.dead_letters {
        Some(queue) => Arc::clone(queue),
        None => Arc::new(FileDeadLetters::new(format!("dead-letters/{}.jsonl", options.name))),
    };

    // The sink is checked before anything is consumed.
    let start = |error| Error::Start { pipeline: options.name.clone(), error: Box::new(error) };
    let resources = Resources::default();
    sink.open(SinkContext::new(options.name.clone(), shutdown.clone()).with_resources(resources.clone()))
        .await
        .map_err(|e| start(Error::Sink(e)))?;
    // Cancelled on shutdown, and by the writer when it fails, so the reader stops too.
    let stop = shutdown.child_token();
    let context = SourceContext::new(stop.clone()).with_resources(resources).with_dead_letters(Arc::clone(&dead_letters));
    let lag = context.lag.clone();
    let missed = context.missed.clone();
    let stream = source.open(context).await.map_err(start)?;
    info!("started");

    let sink_step = labels.len().saturating_sub(1);
    let metrics = RunMetrics::new(&options.name, labels);
    let counters = Counters::default();
    let dead = Mutex::new(DeadLetterSummary::default());
    let in_flight = Arc::new(Semaphore::new(options.max_in_flight));
    // The permits bound the channel too: it never holds more than `max_in_flight` batches.
    let (tx, rx) = mpsc::channel::<(Batch<O::Out>, OwnedSemaphorePermit)>(options.max_in_flight);

    let reader = async {
        let mut stream = stream;
        loop {
            let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else { break };
            let Some(next) = stream.next().await else { break };
            let batch = next?;
            Counters::add(&counters.batches_in, 1);
            let read = (batch.len() + batch.failures().len()) as u64;
            Counters::add(&counters.records_in, read);
            metrics.records_in.absolute(counters.records_in.load(std::sync::atomic::Ordering::Relaxed));
            metrics.in_flight.set(counters.unfinished() as f64);
            let batch = with_run(&metrics, counting_retries(&counters, ops.apply(batch))).await;
            if tx.send((batch, permit)).await.is_err() {
                break; // the writer failed; its error is the run's
            }
        }
        drop(tx);
        Ok::<(), Error>(())
    };

    let writer = async {
        let mut rx = rx;
        let mut progress = Progress::new(options.progress_interval);
        let mut writer = Writer {
            sink: &mut sink,
            dead_letters: &*dead_letters,
            options: &options,
            counters: &counters,
            metrics: &metrics,
            dead: &dead,
            sink_step,
            uncommitted: Vec::new(),
            since: None,
            failed: None,
        };
        let result = loop {
            // A batch ready now is written at once; otherwise what is written is committed
            // before waiting (an idle source), or when `commit_interval` has passed.
            let mut next = rx.try_recv();
            if matches!(next, Err(TryRecvError::Empty)) && !writer.uncommitted.is_empty() {
                // Let the reader (same task) run before deciding that the source is idle.
                tokio::task::yield_now().await;
                next = rx.try_recv();
            }
            let next = match next {
                Ok(next) => Some(next),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) => {
                    if let Err(e) = writer.commit().await {
                        break Err(e);
                    }
                    rx.recv().await
                }
            };
            let Some((batch, permit)) = next else { break writer.commit().await };
            if let Err(e) = writer.write(batch, permit).await {
                writer.write_failed().await;
                break Err(e);
            }
            if writer.commit_due() {
                if let Err(e) = writer.commit().await {
                    break Err(e);
                }
            }
            progress.tick(&counters, started, &lag, &metrics);
        };
        if result.is_err() {
            // Every batch written and not committed is redelivered.
            writer.fail_uncommitted();
            stop.cancel();
            in_flight.close();
        }
        result
    };

    let work = futures::future::join(reader, writer);
    let deadline = async {
        shutdown.cancelled().await;
        info!(deadline = ?options.shutdown_timeout, "shutdown requested: flushing the batch in hand");
        let unfinished = || counters.unfinished();
        tokio::select! {
            () = tokio::time::sleep(options.shutdown_timeout) => {
                warn!(unfinished = unfinished(), "shutdown deadline passed; unfinished batches left for redelivery");
                Error::ShutdownTimeout { deadline: options.shutdown_timeout, unfinished: unfinished() }
            }
            () = forced.cancelled() => {
                warn!(unfinished = unfinished(), "second signal: stopping at once; unfinished batches left for redelivery");
                Error::Interrupted { unfinished: unfinished() }
            }
        }
    };
    let (read, write) = tokio::select! {
        results = work => results,
        error = deadline => return Err(error),
    };
    let closed = sink.close().await.map_err(Error::Sink);
    let mut report = counters.report(started.elapsed());
    report.missed = missed.get();
    sync(&metrics, &report, counters.unfinished());
    dead.lock().unwrap_or_else(PoisonError::into_inner).log(&report);
    // The writer's error explains a reader that stopped early; report it first.
    write.and(read).and(closed)?;
    info!(%report, "finished");
    Ok(report)
}

/// A batch written to the sink and not yet committed: what a failed commit writes again, and
/// what its acknowledgement will say once the commit succeeds.
struct Uncommitted<T> {
    /// The records the sink accepted (those it rejected are already dead-lettered).
    records: Vec<T>,
    meta: Vec<Meta>,
    /// The source positions it covers, written again with it.
    positions: Positions,
    /// Delivered, or rejected when some of its records were dead-lettered; errored when the
    /// sink fenced it off.
    status: Status,
    ack: Ack,
    /// Returned once the acknowledgement is resolved: the reader may read one more batch.
    _permit: OwnedSemaphorePermit,
}

/// The writing half: sink, dead letters, commits and acknowledgements.
struct Writer<'a, K, T> {
    sink: &'a mut K,
    dead_letters: &'a dyn DeadLetters,
    options: &'a RunOptions,
    counters: &'a Counters,
    metrics: &'a RunMetrics,
    /// Dead letters by step and error, for the guardrail and the summary at the end.
    dead: &'a Mutex<DeadLetterSummary>,
    /// The sink's step index (what it refuses is dead-lettered under it).
    sink_step: usize,
    /// Written and not committed, in the order they were read.
    uncommitted: Vec<Uncommitted<T>>,
    /// When the oldest uncommitted batch was written.
    since: Option<Instant>,
    /// The batch whose write failed, resolved once the batches before it are.
    failed: Option<(Ack, OwnedSemaphorePermit)>,
}

impl<K, T: Serialize + 'static> Writer<'_, K, T>
where
    K: Sink<T>,
{
    /// Write one batch (with retries) and dead-letter its failed records; it then waits for
    /// the next commit. On error the batch is errored (redelivered).
    async fn write(&mut self, batch: Batch<T>, permit: OwnedSemaphorePermit) -> crate::Result<()> {
        let BatchParts { records, meta, failures, ack, origin, positions } = batch.into_parts();
        let began = Instant::now();
        let written = self.write_and_triage(records, meta, failures, &positions, &origin).await;
        self.metrics.write_seconds.record(began.elapsed().as_secs_f64());
        match written {
            Ok((records, meta, status)) => {
                self.since.get_or_insert_with(Instant::now);
                self.uncommitted.push(Uncommitted { records, meta, positions, status, ack, _permit: permit });
                Ok(())
            }
            Err(e) => {
                self.failed = Some((ack, permit));
                Err(e)
            }
        }
    }

    /// The batch in hand could not be written: commit the batches written before it (they are
    /// good; if that commit fails too they are redelivered), then error the failed batch, in
    /// that order.
    async fn write_failed(&mut self) {
        let failed = self.failed.take();
        if let Err(e) = self.commit().await {
            warn!(error = %e, "commit of the batches written before a failed write failed too; they are redelivered");
        }
        self.fail_uncommitted();
        if let Some((ack, _permit)) = failed {
            ack.resolve(Status::Errored);
        }
    }

    /// Write `records` and dead-letter what failed on the way or was refused by the sink.
    /// Returns the records the sink accepted, and the batch's status once committed.
    ///
    /// A batch with positions is written even when no record is left, so that a sink storing
    /// positions moves past its filtered and dead-lettered records. A batch the sink fenced
    /// off (another writer moved its positions) is dropped: nothing dead-lettered, no record
    /// kept, errored (its source reads it again from the stored positions if it still owns
    /// them).
    async fn write_and_triage(
        &mut self,
        records: Vec<T>,
        meta: Vec<Meta>,
        mut failures: Vec<Failure>,
        positions: &Positions,
        origin: &Arc<str>,
    ) -> crate::Result<(Vec<T>, Vec<Meta>, Status)> {
        let (mut records, mut meta) = (records, meta);
        if !records.is_empty() || !positions.is_empty() {
            let mut written = self.write_with_retries(&records, &meta, positions).await.map_err(Error::Sink)?;
            if written.fenced {
                warn!(
                    records = records.len(),
                    failures = failures.len(),
                    ranges = ?positions.ranges,
                    "batch fenced off: another consumer moved its stored positions; dropped (its source reads again from the stored positions)"
                );
                return Ok((Vec::new(), Vec::new(), Status::Errored));
            }
            for mut failure in std::mem::take(&mut written.failures) {
                failure.step = Some(self.sink_step);
                failures.push(failure);
            }
            if !written.rejected.is_empty() {
                let refused = refused_indices(&written, records.len(), &self.sink.describe()).map_err(Error::Sink)?;
                for (index, reason) in written.rejected {
                    let mut failure = Failure::of_record(&records[index], meta[index].clone(), FailureKind::Sink, reason);
                    failure.step = Some(self.sink_step);
                    failures.push(failure);
                }
                (records, meta) = keep_accepted(records, meta, &refused);
            }
        }
        let status = if failures.is_empty() { Status::Delivered } else { Status::Rejected };
        if !failures.is_empty() {
            let n = failures.len() as u64;
            let steps: Vec<usize> = failures.iter().map(|f| f.step.unwrap_or(0)).collect();
            let entries: Vec<DeadLetter> = failures
                .into_iter()
                .zip(&steps)
                .map(|(f, step)| DeadLetter::from_failure(f, origin).at_step(Some(self.metrics.label(*step))))
                .collect();
            self.dead_letter_with_retries(entries.clone()).await.map_err(Error::DeadLetters)?;
            warn!(count = n, queue = %self.dead_letters.describe(), "records dead-lettered");
            Counters::add(&self.counters.dead_lettered, n);
            let mut dead = self.dead.lock().unwrap_or_else(PoisonError::into_inner);
            for (entry, step) in entries.iter().zip(steps) {
                dead.add(step, entry.step.as_deref().unwrap_or_default(), &entry.error);
                self.metrics.dead_lettered(step).increment(1);
            }
        }
        Ok((records, meta, status))
    }

    /// Whether the uncommitted batches must be committed before reading on: `max_in_flight`
    /// of them (the reader is blocked), or `commit_interval` since the oldest was written.
    fn commit_due(&self) -> bool {
        self.uncommitted.len() >= self.options.max_in_flight
            || self.since.is_some_and(|since| since.elapsed() >= self.options.commit_interval)
    }

    /// Commit what was written and resolve the acknowledgements, in order. A failed commit
    /// writes the uncommitted batches again and commits again, within the retry policy.
    async fn commit(&mut self) -> crate::Result<()> {
        if self.uncommitted.is_empty() {
            return Ok(());
        }
        let mut retrying = self.options.retry.start();
        loop {
            let error = match self.sink.commit().await {
                Ok(()) => break,
                Err(e) => e,
            };
            if !retrying.pause(&error, "sink commit").await {
                return Err(Error::Sink(error));
            }
            Counters::add(&self.counters.retries, 1);
            self.rewrite().await?;
        }
        self.since = None;
        for batch in self.uncommitted.drain(..) {
            Counters::add(&self.counters.records_out, batch.records.len() as u64);
            Counters::add(&self.counters.batches, 1);
            batch.ack.resolve(batch.status);
            // For the batcher's next batches (see `crate::batch::spare`).
            crate::batch::spare::give_back(batch.records);
            crate::batch::spare::give_back(batch.meta);
        }
        let report = self.counters.report(std::time::Duration::ZERO);
        sync(self.metrics, &report, self.counters.unfinished());
        self.dead.lock().unwrap_or_else(PoisonError::into_inner).guard(&report, self.options)
    }

    /// After a failed commit: write every uncommitted batch again.
    async fn rewrite(&mut self) -> crate::Result<()> {
        let pending = std::mem::take(&mut self.uncommitted);
        let mut pending = pending.into_iter();
        while let Some(batch) = pending.next() {
            let Uncommitted { records, meta, positions, status, ack, _permit } = batch;
            if status == Status::Errored {
                // Fenced off: nothing of it is written again.
                self.uncommitted.push(Uncommitted { records, meta, positions, status, ack, _permit });
                continue;
            }
            match self.write_and_triage(records, meta, Vec::new(), &positions, &Arc::from("rewrite")).await {
                Ok((records, meta, again)) => {
                    self.uncommitted.push(Uncommitted { records, meta, positions, status: status.join(again), ack, _permit });
                }
                Err(e) => {
                    // This batch and the rest stay uncommitted, in order: the caller errors them.
                    self.uncommitted.push(Uncommitted {
                        records: Vec::new(),
                        meta: Vec::new(),
                        positions,
                        status: Status::Errored,
                        ack,
                        _permit,
                    });
                    self.uncommitted.extend(pending);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The run stops with an error: every batch written and not committed is redelivered.
    fn fail_uncommitted(&mut self) {
        for batch in self.uncommitted.drain(..) {
            batch.ack.resolve(Status::Errored);
        }
        self.since = None;
    }

    async fn write_with_retries(&mut self, records: &[T], meta: &[Meta], positions: &Positions) -> Result<Written, ConnectorError> {
        let mut retrying = self.options.retry.start();
        loop {
            match self.sink.write_positioned(records, meta, positions).await {
                Ok(written) => return Ok(written),
                Err(e) if retrying.pause(&e, "sink write").await => Counters::add(&self.counters.retries, 1),
                Err(e) => return Err(e),
            }
        }
    }

    async fn dead_letter_with_retries(&self, entries: Vec<DeadLetter>) -> Result<(), ConnectorError> {
        let mut retrying = self.options.retry.start();
        loop {
            match self.dead_letters.write(entries.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if retrying.pause(&e, "dead-letter write").await => Counters::add(&self.counters.retries, 1),
                Err(e) => return Err(e),
            }
        }
    }
}

/// The indices a sink refused, checked: an index outside the batch, or one given twice, is an
/// error of the sink (it would leave a record neither written nor dead-lettered, or
/// dead-letter one twice).
fn refused_indices(written: &Written, len: usize, sink: &str) -> Result<Vec<bool>, ConnectorError> {
    let mut refused = vec![false; len];
    for (index, _) in &written.rejected {
        match refused.get_mut(*index) {
            Some(seen) if !*seen => *seen = true,
            Some(_) => {
                return Err(ConnectorError::permanent(
                    sink.to_owned(),
                    format!("the sink rejected record {index} of the batch twice (a bug of the sink)"),
                ))
            }
            None => {
                return Err(ConnectorError::permanent(
                    sink.to_owned(),
                    format!("the sink rejected record {index} of a batch of {len} (an index outside the batch: a bug of the sink)"),
                ))
            }
        }
    }
    Ok(refused)
}

/// The records (and their metadata) that were not refused.
fn keep_accepted<T>(records: Vec<T>, meta: Vec<Meta>, refused: &[bool]) -> (Vec<T>, Vec<Meta>) {
    records.into_iter().zip(meta).zip(refused).filter(|(_, refused)| !**refused).map(|(pair, _)| pair).unzip()
}

/// Set the run-wide metrics to the report's figures: they are counted once, in the report's
/// counters, so the two agree.
fn sync(metrics: &RunMetrics, report: &RunReport, in_flight: usize) {
    metrics.records_in.absolute(report.records_in);
    metrics.records_out.absolute(report.records_out);
    metrics.retries.absolute(report.retries);
    metrics.batches.absolute(report.batches);
    metrics.in_flight.set(in_flight as f64);
}

/// A progress line every `interval` on long runs.
struct Progress {
    interval: std::time::Duration,
    last: Instant,
    last_in: u64,
    last_out: u64,
}

impl Progress {
    fn new(interval: std::time::Duration) -> Self {
        Progress { interval, last: Instant::now(), last_in: 0, last_out: 0 }
    }

    fn tick(&mut self, counters: &Counters, started: Instant, lag: &Lag, metrics: &RunMetrics) {
        let since = self.last.elapsed();
        if since < self.interval {
            return;
        }
        let report = counters.report(started.elapsed());
        let lag = lag.get();
        if let Some(lag) = lag {
            metrics.lag.set(lag as f64);
        }
        let secs = since.as_secs_f64();
        let rate_in = (report.records_in - self.last_in) as f64 / secs;
        let rate_out = (report.records_out - self.last_out) as f64 / secs;
        info!(
            records_in = report.records_in,
            records_out = report.records_out,
            in_per_second = rate_in.round(),
            out_per_second = rate_out.round(),
            dead_lettered = report.dead_lettered,
            retries = report.retries,
            lag = lag.map(tracing::field::display),
            "progress"
        );
        self.last = Instant::now();
        self.last_in = report.records_in;
        self.last_out = report.records_out;
    }
}
