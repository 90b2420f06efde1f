//! Sources: where records come from. Each yields a stream of [`Batch`]es with
//! acknowledgement handles.

pub mod dead_letters;
pub mod file;
#[cfg(feature = "file-watch")]
pub mod file_watch;
mod iter;
#[cfg(feature = "kafka")]
pub mod kafka;
mod merge;
#[cfg(feature = "nats")]
pub mod nats;
pub mod periodic;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(any(feature = "sse", feature = "websocket"))]
pub(crate) mod reconnect;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "sse")]
pub mod sse;
#[cfg(feature = "websocket")]
pub mod websocket;

pub use dead_letters::{dead_letters, DeadLettersSource};
pub use file::{file, FileSource};
#[cfg(feature = "file-watch")]
pub use file_watch::{file_watch, FileWatchSource};
pub use iter::{iter, IterSource};
#[cfg(feature = "kafka")]
pub use kafka::{kafka, KafkaSource};
pub use merge::{merge, Merge};
#[cfg(feature = "nats")]
pub use nats::{nats, NatsSource};
pub use periodic::{periodic, PeriodicSource, PeriodicStats, PollFn};
#[cfg(feature = "rabbitmq")]
pub use rabbitmq::{rabbitmq, RabbitmqSource};
#[cfg(feature = "sqs")]
pub use sqs::{sqs, SqsSource};
#[cfg(feature = "sse")]
pub use sse::{sse, SseSource};
#[cfg(feature = "websocket")]
pub use websocket::{websocket, WebSocketSource};

pub use crate::batch::BatchStream;

/// How the payload of a streaming source's message (an SSE event's `data`, a WebSocket
/// message) becomes a record: see the `sse` and `websocket` modules' "Decoding" sections.
///
/// ```
/// assert_eq!(etl::source::DataFormat::default(), etl::source::DataFormat::Json);
/// ```
#[cfg(any(feature = "sse", feature = "websocket"))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataFormat {
    /// The payload is a JSON document decoded into the record type.
    #[default]
    Json,
    /// The payload is text, decoded into the record type as `{"data": "<text>"}`.
    Text,
}
use crate::dead_letter::DeadLetters;
use crate::positions::{PositionStore, SharedStore, RESOURCE_KEY};
use crate::resources::Resources;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a source receives when the pipeline opens it.
///
/// ```
/// let ctx = etl::source::SourceContext::new(tokio_util::sync::CancellationToken::new());
/// assert!(!ctx.shutdown.is_cancelled());
/// assert!(ctx.dead_letters.is_none());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct SourceContext {
    /// Cancelled when the pipeline stops: stop reading, flush the partial batch, end the stream.
    pub shutdown: CancellationToken,
    /// What the run's connectors share (the sink's context holds the same).
    pub resources: Resources,
    /// Where a source that knows how far behind it is (records not yet read) says so, for
    /// the progress line and the `etl_source_lag` metric.
    pub lag: Lag,
    /// The run's dead-letter queue (set by the pipeline; `None` for a source opened by hand).
    /// A source reading a dead-letter queue checks that it is not this one.
    pub dead_letters: Option<Arc<dyn DeadLetters>>,
    /// Where a source counts the records it will never deliver by policy (see [`Missed`]).
    pub missed: Missed,
}

impl std::fmt::Debug for SourceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceContext")
            .field("shutdown", &self.shutdown)
            .field("resources", &self.resources)
            .field("lag", &self.lag)
            .field("dead_letters", &self.dead_letters.as_ref().map(|q| q.describe()))
            .finish()
    }
}

/// How many records a source has not read yet, when it knows (a Kafka consumer group's lag).
/// Cheap to clone; clones share the value.
///
/// ```
/// let lag = etl::source::Lag::default();
/// assert_eq!(lag.get(), None);
/// lag.set(42);
/// assert_eq!(lag.clone().get(), Some(42));
/// ```
#[derive(Debug, Clone)]
pub struct Lag(Arc<AtomicI64>);

/// Records a source knows it will never deliver, by an explicit policy (a
/// [`Broadcast`](crate::channel::Broadcast) subscriber under `Overflow::DropOldest` whose oldest
/// entries were dropped before it read them): counted here, in the run's report
/// ([`RunReport::missed`](crate::RunReport::missed)). Never a silent skip.
///
/// ```
/// let missed = etl::source::Missed::default();
/// missed.add(3);
/// assert_eq!(missed.clone().get(), 3);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Missed(Arc<std::sync::atomic::AtomicU64>);

impl Missed {
    /// Count `n` more records missed.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The records missed so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Lag {
    fn default() -> Self {
        Lag(Arc::new(AtomicI64::new(-1)))
    }
}

impl Lag {
    /// Say how many records are left to read.
    pub fn set(&self, records: u64) {
        self.0.store(i64::try_from(records).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// The last value set, if any.
    pub fn get(&self) -> Option<u64> {
        u64::try_from(self.0.load(Ordering::Relaxed)).ok()
    }
}

impl SourceContext {
    /// A context with the given shutdown token and resources of its own.
    pub fn new(shutdown: CancellationToken) -> Self {
        SourceContext { shutdown, resources: Resources::default(), lag: Lag::default(), dead_letters: None, missed: Missed::default() }
    }

    /// Tell the source where its run dead-letters records.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let queue = Arc::new(etl::dead_letter::MemoryDeadLetters::new());
    /// let ctx = etl::source::SourceContext::new(tokio_util::sync::CancellationToken::new()).with_dead_letters(queue);
    /// assert_eq!(ctx.dead_letters.map(|q| q.describe()).as_deref(), Some("memory"));
    /// ```
    pub fn with_dead_letters(mut self, queue: Arc<dyn DeadLetters>) -> Self {
        self.dead_letters = Some(queue);
        self
    }

    /// Share `resources` with the other connectors of the run.
    ///
    /// ```
    /// let resources = etl::resources::Resources::default();
    /// let ctx = etl::source::SourceContext::new(tokio_util::sync::CancellationToken::new()).with_resources(resources.clone());
    /// ```
    pub fn with_resources(mut self, resources: Resources) -> Self {
        self.resources = resources;
        self
    }

    /// The position store the run's sink offered
    /// ([`SinkContext::offer_positions`](crate::sink::SinkContext::offer_positions)), if it
    /// offered one: a source that can seek reads from the stored positions rather than its
    /// broker's, and reports the ranges each batch read ([`crate::positions`]).
    ///
    /// ```
    /// let ctx = etl::source::SourceContext::new(tokio_util::sync::CancellationToken::new());
    /// assert!(ctx.positions().is_none());
    /// ```
    pub fn positions(&self) -> Option<Arc<dyn PositionStore>> {
        self.resources.get::<SharedStore>(RESOURCE_KEY)
    }
}

/// A source of records.
///
/// `open` connects and checks what can be checked before anything is consumed (the file
/// exists, the broker answers), then returns the stream of batches. Implementing one for an
/// in-memory vector:
///
/// ```
/// use etl::prelude::*;
/// use etl::source::{BatchStream, SourceContext};
///
/// struct Numbers(Vec<i64>);
/// impl Source for Numbers {
///     type Item = i64;
///     fn describe(&self) -> String { "numbers".into() }
///     async fn open(self, _ctx: SourceContext) -> etl::Result<BatchStream<i64>> {
///         Ok(Box::pin(futures::stream::iter([Ok(Batch::from_records(self.0))])))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an etl source",
    note = "a pipeline starts with a built-in source (`iter`, `file`, ...) or a value implementing `etl::Source`"
)]
pub trait Source: Send + 'static {
    /// The record type of the batches.
    type Item: Send + 'static;

    /// A short description for logs and dead-letter entries: the connector and its target.
    fn describe(&self) -> String;

    /// Connect and start reading.
    fn open(self, ctx: SourceContext) -> impl Future<Output = crate::Result<BatchStream<Self::Item>>> + Send;

    /// How to turn a dead letter's payload (bytes this source read) back into a record, for
    /// the runner's `dead-letters replay`, which runs the pipeline's operators and sink on
    /// them. `None` (the default): this source's dead letters are replayed with a pipeline
    /// that starts at `dead_letters(path = ..) as Type` instead.
    ///
    /// ```
    /// # use etl::prelude::*;
    /// let decode = etl::source::file::<Json>("in.jsonl").dead_letter_decoder().unwrap();
    /// assert!(decode(br#"{"id": 1}"#).is_ok());
    /// assert!(decode(b"{oops").is_err());
    /// ```
    fn dead_letter_decoder(&self) -> Option<DeadLetterDecoder<Self::Item>> {
        None
    }

    /// The runner's `check`: what [`open`](Self::open) checks (options resolved, servers
    /// reached), consuming nothing. The default opens the source and drops its stream unread;
    /// a source whose opening has effects on others (a Kafka consumer joining its group makes
    /// the group rebalance) checks without them.
    fn check(self, ctx: SourceContext) -> impl Future<Output = crate::Result<()>> + Send
    where
        Self: Sized,
    {
        async move {
            let shutdown = ctx.shutdown.clone();
            let stream = self.open(ctx).await;
            shutdown.cancel();
            drop(stream?);
            Ok(())
        }
    }
}

/// Decodes a dead letter's payload into a record (see [`Source::dead_letter_decoder`]); the
/// error says why it cannot.
pub type DeadLetterDecoder<T> = std::sync::Arc<dyn Fn(&[u8]) -> Result<T, String> + Send + Sync>;

/// The decoder of a source whose records are JSON documents of `T`.
///
/// ```
/// let decode = etl::source::json_decoder::<etl::Json>();
/// assert!(decode(br#"{"a": 1}"#).is_ok());
/// ```
pub fn json_decoder<T: serde::de::DeserializeOwned + 'static>() -> DeadLetterDecoder<T> {
    std::sync::Arc::new(|bytes| serde_json::from_slice(bytes).map_err(|e| e.to_string()))
}
