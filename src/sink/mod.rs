//! Sinks: where records go. A sink writes batches (possibly buffered) and commits them
//! (durably); the pipeline acknowledges a batch to its source only after its commit. See [`Sink`].

mod blackhole;
mod collect;
pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "sqs")]
pub mod sqs;
mod stdout;
mod utc;

pub use crate::format::Encoded;
pub use blackhole::{blackhole, Blackhole};
pub use collect::{collect, Collect, Collected};
pub use file::{file, FileSink, Rolling};
#[cfg(feature = "kafka")]
pub use kafka::{kafka, KafkaSink};
#[cfg(feature = "nats")]
pub use nats::{nats, NatsSink};
#[cfg(feature = "postgres")]
pub use postgres::{postgres, PostgresSink};
#[cfg(feature = "rabbitmq")]
pub use rabbitmq::{rabbitmq, RabbitmqSink};
#[cfg(feature = "s3")]
pub use s3::{s3, S3Sink};
#[cfg(feature = "sqs")]
pub use sqs::{sqs, SqsSink};
pub use stdout::{stdout, Stdout};

use crate::error::ConnectorError;
use crate::positions::{PositionStore, Positions, SharedStore, RESOURCE_KEY};
use crate::record::Meta;
use crate::resources::Resources;
use std::future::Future;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a sink receives when the pipeline opens it.
///
/// ```
/// let ctx = etl::sink::SinkContext::new("orders", tokio_util::sync::CancellationToken::new());
/// assert_eq!(ctx.pipeline, "orders");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SinkContext {
    /// The pipeline's name (`Run::name`), for logs, transactional ids and file names.
    pub pipeline: String,
    /// Cancelled when the pipeline is asked to stop. The driver still writes and commits the
    /// batches in hand after it fires; a sink may use it to cut a long wait short (a broker
    /// that does not answer) and return a retryable error.
    pub shutdown: CancellationToken,
    /// What the run's connectors share (the source's context holds the same).
    pub resources: Resources,
}

impl Default for SinkContext {
    /// The context of a pipeline named `pipeline` (the default name) that is never cancelled:
    /// for a sink opened by hand, outside a run.
    ///
    /// ```
    /// assert_eq!(etl::sink::SinkContext::default().pipeline, "pipeline");
    /// ```
    fn default() -> Self {
        SinkContext::new("pipeline", CancellationToken::new())
    }
}

impl SinkContext {
    /// A context for the pipeline `pipeline` with the given shutdown token.
    pub fn new(pipeline: impl Into<String>, shutdown: CancellationToken) -> Self {
        SinkContext { pipeline: pipeline.into(), shutdown, resources: Resources::default() }
    }

    /// Share `resources` with the other connectors of the run.
    ///
    /// ```
    /// let resources = etl::resources::Resources::default();
    /// let ctx = etl::sink::SinkContext::default().with_resources(resources.clone());
    /// ```
    pub fn with_resources(mut self, resources: Resources) -> Self {
        self.resources = resources;
        self
    }

    /// Offer the run's source the positions this sink stores with its records (exactly-once:
    /// see [`positions`](crate::positions)). Called from [`Sink::open`], which the pipeline
    /// runs before it opens the source; the source finds the store with
    /// [`SourceContext::positions`](crate::source::SourceContext::positions). False when
    /// another sink of the run offered one already (the run has one store; the first stays).
    ///
    /// ```
    /// use etl::positions::{Partition, PositionStore, StoredFuture};
    /// struct Nothing;
    /// impl PositionStore for Nothing {
    ///     fn describe(&self) -> String { "nothing".into() }
    ///     fn stored<'a>(&'a self, _: &'a str, _: &'a [Partition]) -> StoredFuture<'a> { Box::pin(async { Ok(Vec::new()) }) }
    /// }
    /// let resources = etl::resources::Resources::default();
    /// let ctx = etl::sink::SinkContext::default().with_resources(resources.clone());
    /// assert!(ctx.offer_positions(std::sync::Arc::new(Nothing)));
    /// let source = etl::source::SourceContext::new(ctx.shutdown.clone()).with_resources(resources);
    /// assert_eq!(source.positions().map(|s| s.describe()).as_deref(), Some("nothing"));
    /// ```
    pub fn offer_positions(&self, store: Arc<dyn PositionStore>) -> bool {
        self.resources.offer::<SharedStore>(RESOURCE_KEY, store)
    }
}

/// What a sink reports about a batch it wrote: the records it refused permanently (they are
/// dead-lettered; everything else was written), or that the batch was fenced off.
///
/// ```
/// let w = etl::sink::Written::all();
/// assert!(w.rejected.is_empty() && !w.fenced);
/// ```
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// `(index in the batch, reason)` of each record the sink could not write and never will.
    /// An index outside the batch is an error of the sink: the run stops with it and the batch
    /// is redelivered.
    pub rejected: Vec<(usize, String)>,
    /// Nothing of the batch was written, and nothing of it may be: the positions the sink
    /// stores (see [`Sink::write_positioned`]) were moved by another writer since the source
    /// read the batch (a consumer that took its partitions over in a rebalance). The pipeline
    /// drops the batch without dead-lettering anything and resolves it as errored: its source
    /// reads those partitions again from the stored positions, if it still owns them.
    pub fenced: bool,
    /// Records that failed inside the sink's own steps, with their bytes and errors (the
    /// operators of a [fan-out](crate::fanout)'s branches): dead-lettered by the pipeline like
    /// the batch's own failures; the rest of the batch was written.
    pub failures: Vec<crate::batch::Failure>,
}

impl Written {
    /// Every record was written.
    pub fn all() -> Written {
        Written::default()
    }

    /// Every record was written but those of `rejected` (`(index in the batch, reason)`).
    ///
    /// ```
    /// let w = etl::sink::Written::rejecting(vec![(1, "no such column".into())]);
    /// assert_eq!(w.rejected.len(), 1);
    /// ```
    pub fn rejecting(rejected: Vec<(usize, String)>) -> Written {
        Written { rejected, ..Written::default() }
    }

    /// Nothing was written: the batch's positions were moved by another writer (see
    /// [`fenced`](Written::fenced)).
    ///
    /// ```
    /// assert!(etl::sink::Written::fenced().fenced);
    /// ```
    pub fn fenced() -> Written {
        Written { fenced: true, ..Written::default() }
    }
}

/// A destination for records, written in two phases.
///
/// * [`write`](Sink::write) (or [`write_batch`](Sink::write_batch)) hands a batch to the sink.
///   It **may buffer**: produce without awaiting the broker's confirmation, COPY inside an open
///   transaction, write a file without syncing it.
/// * [`commit`](Sink::commit) makes everything written since the last commit durable (await
///   the confirmations, commit the transaction, fsync the files). The pipeline acknowledges a
///   batch to its source only after the commit that follows its write has returned `Ok`.
///
/// The driver keeps at most `max_in_flight` batches written and uncommitted, and commits when
/// that limit is reached, when `commit_interval` has passed since the first uncommitted write,
/// when the source has no batch ready, and at the end of the run. A sink whose `write` is
/// already durable keeps the default `commit`, which does nothing.
///
/// Errors: a retryable error of `write` makes the pipeline write the same records again with
/// backoff; a permanent one stops the run with nothing acknowledged. A failed `commit` must
/// leave nothing of the uncommitted batches visible as committed (roll back, abort, delete the
/// unsynced files); the pipeline then writes every uncommitted batch again and commits again
/// (retryable error, within the retry policy), or stops the run and leaves them all for
/// redelivery. Implementing one:
///
/// ```
/// use etl::prelude::*;
/// use etl::sink::Written;
/// struct Count { buffered: usize, durable: usize }
/// impl Sink<i64> for Count {
///     fn describe(&self) -> String { "count".into() }
///     async fn write(&mut self, records: &[i64]) -> Result<Written, etl::ConnectorError> {
///         self.buffered += records.len(); // not durable yet
///         Ok(Written::all())
///     }
///     async fn commit(&mut self) -> Result<(), etl::ConnectorError> {
///         self.durable += std::mem::take(&mut self.buffered);
///         Ok(())
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot write records of type `{T}`",
    note = "the sink must accept the record type produced by the last step; add `as Type` or a `map` before it"
)]
pub trait Sink<T>: Send {
    /// A short description for logs: the connector and its target.
    fn describe(&self) -> String;

    /// Connect and check the destination (table exists, directory writable) before the source
    /// is opened. Default: nothing to check.
    fn open(&mut self, ctx: SinkContext) -> impl Future<Output = Result<(), ConnectorError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Write `records` (durably, or into a buffer that [`commit`](Sink::commit) makes durable).
    fn write(&mut self, records: &[T]) -> impl Future<Output = Result<Written, ConnectorError>> + Send;

    /// Write `records`, with the metadata of each (`meta[i]` belongs to `records[i]`).
    /// The pipeline calls it through [`write_positioned`](Sink::write_positioned); the
    /// default ignores the metadata and calls
    /// [`write`](Sink::write). Sinks that name their output after the batch's position (an
    /// object key with the first offset) or store source positions with the rows override it.
    /// A retry of the same batch passes the same records and metadata again.
    ///
    /// ```
    /// use etl::prelude::*;
    /// use etl::record::Meta;
    /// use etl::sink::Written;
    /// struct FirstPosition(Vec<String>);
    /// impl Sink<i64> for FirstPosition {
    ///     fn describe(&self) -> String { "first-position".into() }
    ///     async fn write(&mut self, records: &[i64]) -> Result<Written, etl::ConnectorError> {
    ///         self.write_batch(records, &[]).await
    ///     }
    ///     async fn write_batch(&mut self, _: &[i64], meta: &[Meta]) -> Result<Written, etl::ConnectorError> {
    ///         self.0.push(meta.first().map(|m| m.position.to_string()).unwrap_or_default());
    ///         Ok(Written::all())
    ///     }
    /// }
    /// ```
    fn write_batch(&mut self, records: &[T], meta: &[Meta]) -> impl Future<Output = Result<Written, ConnectorError>> + Send {
        let _ = meta;
        self.write(records)
    }

    /// Write `records` with their metadata and the source positions the batch covers
    /// ([`Positions`]: per partition, the offsets its source read into it, records filtered
    /// out or dead-lettered on the way included). The pipeline calls this one, for every batch
    /// whose source reports positions even when no record is left, so that a sink that stores
    /// positions with its records (exactly-once, see [`crate::positions`]) moves them past
    /// records that never reach it. The default ignores the positions: it calls
    /// [`write_batch`](Sink::write_batch) when there are records and does nothing otherwise.
    ///
    /// A sink that stores positions writes them in the same transaction as the records, only
    /// if the stored position of each partition is still the range's `from`
    /// (compare-and-set); otherwise it writes nothing of the batch and returns
    /// [`Written::fenced`]. A retry of the same batch passes the same positions again. A sink
    /// that wraps another forwards this method (the default would call the inner sink's
    /// `write_batch`, and its positions would be lost).
    ///
    /// ```
    /// use etl::prelude::*;
    /// use etl::positions::Positions;
    /// use etl::record::Meta;
    /// use etl::sink::Written;
    /// /// Remembers where each partition's next batch must start (a real sink stores it with
    /// /// its rows, in one transaction).
    /// struct Ledger(std::collections::HashMap<(String, i32), i64>);
    /// impl Sink<i64> for Ledger {
    ///     fn describe(&self) -> String { "ledger".into() }
    ///     async fn write(&mut self, _: &[i64]) -> Result<Written, etl::ConnectorError> { Ok(Written::all()) }
    ///     async fn write_positioned(&mut self, _: &[i64], _: &[Meta], positions: &Positions) -> Result<Written, etl::ConnectorError> {
    ///         let moved = positions.ranges.iter().any(|r| {
    ///             self.0.get(&(r.topic.to_string(), r.partition)).is_some_and(|stored| *stored != r.from)
    ///         });
    ///         if moved {
    ///             return Ok(Written::fenced());
    ///         }
    ///         for r in &positions.ranges {
    ///             self.0.insert((r.topic.to_string(), r.partition), r.to);
    ///         }
    ///         Ok(Written::all())
    ///     }
    /// }
    /// ```
    fn write_positioned(
        &mut self,
        records: &[T],
        meta: &[Meta],
        positions: &Positions,
    ) -> impl Future<Output = Result<Written, ConnectorError>> + Send {
        let _ = positions;
        if records.is_empty() {
            futures::future::Either::Left(std::future::ready(Ok(Written::all())))
        } else {
            futures::future::Either::Right(self.write_batch(records, meta))
        }
    }

    /// Make everything written since the last commit durable. On error, nothing written since
    /// the last commit may count as committed (see the trait docs). Default: nothing to do
    /// (`write` is durable).
    fn commit(&mut self) -> impl Future<Output = Result<(), ConnectorError>> + Send {
        async { Ok(()) }
    }

    /// Release resources at the end of the run, after the last commit. Default: nothing to do.
    fn close(&mut self) -> impl Future<Output = Result<(), ConnectorError>> + Send {
        async { Ok(()) }
    }
}
