//! Sources: where records come from. Each yields a stream of [`Batch`]es with
//! acknowledgement handles.

pub mod dead_letters;
pub mod file;
mod iter;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "sse")]
pub mod sse;

pub use dead_letters::{dead_letters, DeadLettersSource};
pub use file::{file, FileSource};
pub use iter::{iter, IterSource};
#[cfg(feature = "kafka")]
pub use kafka::{kafka, KafkaSource};
#[cfg(feature = "sqs")]
pub use sqs::{sqs, SqsSource};
#[cfg(feature = "sse")]
pub use sse::{sse, DataFormat, SseSource};

pub use crate::batch::BatchStream;
use crate::dead_letter::DeadLetters;
use crate::resources::Resources;
use std::future::Future;
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
    /// The run's dead-letter queue (set by the pipeline; `None` for a source opened by hand).
    /// A source reading a dead-letter queue checks that it is not this one.
    pub dead_letters: Option<Arc<dyn DeadLetters>>,
}

impl std::fmt::Debug for SourceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceContext")
            .field("shutdown", &self.shutdown)
            .field("resources", &self.resources)
            .field("dead_letters", &self.dead_letters.as_ref().map(|q| q.describe()))
            .finish()
    }
}

impl SourceContext {
    /// A context with the given shutdown token and resources of its own.
    pub fn new(shutdown: CancellationToken) -> Self {
        SourceContext { shutdown, resources: Resources::default(), dead_letters: None }
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
}
