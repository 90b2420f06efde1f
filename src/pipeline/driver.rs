//! The pipeline driver: pulls batches, runs the operators, writes to the sink with retries,
//! dead-letters failed records and resolves every acknowledgement, in order.
//!
//! Reading and writing are two futures of the same task joined by a channel: the source reads
//! the next batch while the sink writes, no operator or sink needs to be `'static`, and
//! acknowledgements resolve in the order batches were read. A semaphore of `max_in_flight`
//! permits bounds the batches read and not yet acknowledged: the reader takes a permit before
//! it reads a batch, and the permit is returned once that batch's acknowledgement is resolved.

use super::report::{counting_retries, Counters};
use super::RunOptions;
use crate::ack::Status;
use crate::batch::{Batch, BatchParts, Failure, FailureKind};
use crate::dead_letter::{DeadLetter, DeadLetters, FileDeadLetters};
use crate::error::{ConnectorError, Error};
use crate::operator::Operator;
use crate::pipeline::RunReport;
use crate::record::Meta;
use crate::sink::{Sink, Written};
use crate::source::{Source, SourceContext};
use futures::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

pub(crate) async fn run<S, O, K>(source: S, ops: O, sink: K, options: RunOptions) -> crate::Result<RunReport>
where
    S: Source,
    O: Operator<S::Item>,
    O::Out: Serialize,
    K: Sink<O::Out>,
{
    let span = info_span!("pipeline", name = %options.name, source = %source.describe(), sink = %sink.describe());
    run_inner(source, ops, sink, options).instrument(span).await
}

async fn run_inner<S, O, K>(source: S, mut ops: O, mut sink: K, options: RunOptions) -> crate::Result<RunReport>
where
    S: Source,
    O: Operator<S::Item>,
    O::Out: Serialize,
    K: Sink<O::Out>,
{
    let started = Instant::now();
    let shutdown = options.cancel.clone();
    let _signals = options.handle_signals.then(|| SignalGuard::install(shutdown.clone()));
    let dead_letters: Arc<dyn DeadLetters> = match &options.dead_letters {
        Some(queue) => Arc::clone(queue),
        None => Arc::new(FileDeadLetters::new(format!("dead-letters/{}.jsonl", options.name))),
    };

    // The sink is checked before anything is consumed.
    sink.open().await.map_err(Error::Sink)?;
    // Cancelled on shutdown, and by the writer when it fails, so the reader stops too.
    let stop = shutdown.child_token();
    let stream = source.open(SourceContext::new(stop.clone())).await?;
    info!("started");

    let counters = Counters::default();
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
            Counters::add(&counters.records_in, (batch.len() + batch.failures().len()) as u64);
            let batch = counting_retries(&counters, ops.apply(batch)).await;
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
        let mut writer = Writer { sink: &mut sink, dead_letters: &*dead_letters, options: &options, counters: &counters };
        while let Some((batch, permit)) = rx.recv().await {
            let delivered = writer.deliver(batch).await;
            drop(permit); // the batch's acknowledgement is resolved either way
            if let Err(e) = delivered {
                stop.cancel();
                in_flight.close();
                return Err(e);
            }
            progress.tick(&counters, started);
        }
        Ok(())
    };

    let work = futures::future::join(reader, writer);
    let deadline = async {
        shutdown.cancelled().await;
        info!(deadline = ?options.shutdown_timeout, "shutdown requested: flushing the batch in hand");
        tokio::time::sleep(options.shutdown_timeout).await;
    };
    let (read, write) = tokio::select! {
        results = work => results,
        () = deadline => {
            let unfinished = counters.unfinished();
            warn!(unfinished, "shutdown deadline passed; unfinished batches left for redelivery");
            return Err(Error::ShutdownTimeout { deadline: options.shutdown_timeout, unfinished });
        }
    };
    let closed = sink.close().await.map_err(Error::Sink);
    let report = counters.report(started.elapsed());
    // The writer's error explains a reader that stopped early; report it first.
    write.and(read).and(closed)?;
    info!(%report, "finished");
    Ok(report)
}

/// The writing half: sink, dead letters and acknowledgements.
struct Writer<'a, K> {
    sink: &'a mut K,
    dead_letters: &'a dyn DeadLetters,
    options: &'a RunOptions,
    counters: &'a Counters,
}

impl<K> Writer<'_, K> {
    /// Write one batch and resolve its acknowledgement: delivered when every record is
    /// written, rejected when some were dead-lettered (they are done, not to be redelivered),
    /// errored (redeliver) when the sink or the dead-letter queue failed.
    async fn deliver<T: Serialize>(&mut self, batch: Batch<T>) -> crate::Result<()>
    where
        K: Sink<T>,
    {
        let BatchParts { records, meta, mut failures, ack, origin } = batch.into_parts();
        if !records.is_empty() {
            let written = match self.write_with_retries(&records, &meta).await {
                Ok(written) => written,
                Err(e) => {
                    ack.resolve(Status::Errored);
                    return Err(Error::Sink(e));
                }
            };
            let rejected = written.rejected.len() as u64;
            for (index, reason) in written.rejected {
                let (Some(record), Some(m)) = (records.get(index), meta.get(index)) else {
                    warn!(index, "sink rejected a record index outside the batch; ignored");
                    continue;
                };
                failures.push(Failure::of_record(record, m.clone(), FailureKind::Sink, reason));
            }
            Counters::add(&self.counters.records_out, records.len() as u64 - rejected);
        }
        let status = if failures.is_empty() { Status::Delivered } else { Status::Rejected };
        if !failures.is_empty() {
            let n = failures.len() as u64;
            let entries: Vec<DeadLetter> = failures.into_iter().map(|f| DeadLetter::from_failure(f, &origin)).collect();
            if let Err(e) = self.dead_letter_with_retries(entries).await {
                ack.resolve(Status::Errored);
                return Err(Error::DeadLetters(e));
            }
            warn!(count = n, queue = %self.dead_letters.describe(), "records dead-lettered");
            Counters::add(&self.counters.dead_lettered, n);
        }
        ack.resolve(status);
        Counters::add(&self.counters.batches, 1);
        Ok(())
    }

    async fn write_with_retries<T>(&mut self, records: &[T], meta: &[Meta]) -> Result<Written, ConnectorError>
    where
        K: Sink<T>,
    {
        let mut retrying = self.options.retry.start();
        loop {
            match self.sink.write_batch(records, meta).await {
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

/// A progress line every `interval` on long runs.
struct Progress {
    interval: std::time::Duration,
    last: Instant,
    last_in: u64,
}

impl Progress {
    fn new(interval: std::time::Duration) -> Self {
        Progress { interval, last: Instant::now(), last_in: 0 }
    }

    fn tick(&mut self, counters: &Counters, started: Instant) {
        let since = self.last.elapsed();
        if since < self.interval {
            return;
        }
        let report = counters.report(started.elapsed());
        let rate = (report.records_in - self.last_in) as f64 / since.as_secs_f64();
        info!(
            records_in = report.records_in,
            records_out = report.records_out,
            dead_lettered = report.dead_lettered,
            records_per_second = rate.round(),
            "progress"
        );
        self.last = Instant::now();
        self.last_in = report.records_in;
    }
}

/// Cancels the token on SIGINT or SIGTERM while alive.
struct SignalGuard(tokio::task::JoinHandle<()>);

impl SignalGuard {
    fn install(token: CancellationToken) -> SignalGuard {
        SignalGuard(tokio::spawn(async move {
            wait_for_signal().await;
            info!("signal received: stopping gracefully");
            token.cancel();
        }))
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            warn!(error = %e, "cannot listen for signals; stop the pipeline with its cancellation token");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        warn!(error = %e, "cannot listen for Ctrl-C; stop the pipeline with its cancellation token");
        std::future::pending::<()>().await;
    }
}
