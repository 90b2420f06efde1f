//! Dead letters: records that failed for good, kept with their raw bytes, the error and where
//! they came from, for inspection, replay and purge.

mod file;
mod memory;
#[cfg(feature = "nats")]
mod nats;
mod replay;

pub use file::FileDeadLetters;
pub use memory::MemoryDeadLetters;
#[cfg(feature = "nats")]
pub use nats::{NatsDeadLetters, NatsRepublish};

use crate::batch::{Failure, FailureKind};
use crate::error::ConnectorError;
use crate::record::Position;
use bytes::Bytes;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One dead-lettered record.
///
/// ```
/// use etl::batch::{Failure, FailureKind};
/// use etl::dead_letter::DeadLetter;
/// let f = Failure::new(bytes::Bytes::from_static(b"\xff\x00"), FailureKind::Decode, "invalid UTF-8", Default::default());
/// let d = DeadLetter::from_failure(f, "file in.jsonl");
/// assert_eq!(&d.payload[..], b"\xff\x00");
/// assert_eq!(d.source, "file in.jsonl");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Unique id of the entry inside its queue (assigned by [`DeadLetter::from_failure`]).
    pub id: String,
    /// The raw bytes, exactly as the source read them.
    pub payload: Bytes,
    /// The error message.
    pub error: String,
    /// What kind of failure.
    pub kind: FailureKind,
    /// The source it came from (`file in.jsonl`, `kafka orders`).
    pub source: String,
    /// Its position in the source.
    pub position: Position,
    /// The pipeline step where it failed (`rename(amount_cents -> amount)`, the source's or the
    /// sink's description), when known.
    pub step: Option<String>,
    /// The message headers, if any.
    pub headers: Vec<(String, Bytes)>,
    /// Attempts made before it was dead-lettered.
    pub attempts: u32,
    /// When it first failed.
    pub first_failed: SystemTime,
    /// When it last failed.
    pub last_failed: SystemTime,
}

impl DeadLetter {
    /// An entry for a failed record from `source`, stamped now. A record that carries its
    /// [`original_source`](crate::record::Extra::original_source) (one read back from a
    /// dead-letter queue) keeps that source instead, so that its entry still names where the
    /// record first came from. One that carries its [`file`](crate::record::Extra::file) (read
    /// from a watched directory) names that file after the source's kind: `file_watch inbox/a.jsonl`.
    ///
    /// ```
    /// use etl::batch::{Failure, FailureKind};
    /// use etl::dead_letter::DeadLetter;
    /// use etl::record::{Extra, Meta};
    /// let meta = Meta::default().with_extra(Extra { original_source: Some("kafka orders".into()), ..Extra::default() });
    /// let f = Failure::new(bytes::Bytes::from_static(b"{"), FailureKind::Decode, "EOF", meta);
    /// assert_eq!(DeadLetter::from_failure(f, "dead_letters dlq.jsonl").source, "kafka orders");
    /// ```
    pub fn from_failure(failure: Failure, source: &str) -> DeadLetter {
        let now = SystemTime::now();
        let (headers, original) = match failure.meta.extra {
            // A record of a watched directory names its file (`file_watch inbox/a.jsonl`).
            Some(extra) => {
                // Moved out when this record was its only holder, copied when it is shared.
                let extra = Arc::unwrap_or_clone(extra);
                let file = extra.file.map(|f| format!("{} {}", source.split(' ').next().unwrap_or(source), f.path.display()));
                (extra.headers, extra.original_source.or(file))
            }
            None => (Vec::new(), None),
        };
        DeadLetter {
            id: next_id(now),
            payload: failure.payload,
            error: failure.error,
            kind: failure.kind,
            source: original.unwrap_or_else(|| source.to_owned()),
            position: failure.meta.position,
            step: None,
            headers,
            attempts: failure.attempts,
            first_failed: now,
            last_failed: now,
        }
    }
}

impl DeadLetter {
    /// The same entry, failed at `step`.
    ///
    /// ```
    /// # use etl::batch::{Failure, FailureKind};
    /// # use etl::dead_letter::DeadLetter;
    /// # let f = Failure::new(bytes::Bytes::from_static(b"{}"), FailureKind::Transform, "no field `x`", Default::default());
    /// let d = DeadLetter::from_failure(f, "iter").at_step(Some("rename(x -> y)".into()));
    /// assert_eq!(d.step.as_deref(), Some("rename(x -> y)"));
    /// ```
    pub fn at_step(mut self, step: Option<String>) -> DeadLetter {
        self.step = step;
        self
    }
}

/// A process-unique, time-ordered id: milliseconds since the epoch, process id, counter.
fn next_id(now: SystemTime) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("{millis:013}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Where a replayed entry is sent back to (its origin).
///
/// Written like [`Sink`](crate::sink::Sink): an `async fn` in the impl, whose future is `Send`
/// (the trait method returns `impl Future + Send`); no `async-trait`. A queue's
/// [`replay`](DeadLetters::replay) takes any implementor as `&mut dyn DynRepublish`, the
/// object-safe form every `Republish` gets for free.
///
/// ```
/// use etl::dead_letter::{DeadLetter, DeadLetters, MemoryDeadLetters, Republish};
/// use etl::batch::{Failure, FailureKind};
///
/// /// Counts what it re-publishes (a real target sends it to the origin's broker).
/// struct Count(usize);
/// impl Republish for Count {
///     async fn republish(&mut self, entry: &DeadLetter) -> Result<(), etl::ConnectorError> {
///         tracing::info!(id = %entry.id, "replayed");
///         self.0 += 1;
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let queue = MemoryDeadLetters::new();
/// let failure = Failure::new(bytes::Bytes::from_static(b"{}"), FailureKind::Decode, "bad", Default::default());
/// queue.write(vec![DeadLetter::from_failure(failure, "file in.jsonl")]).await?;
/// let mut target = Count(0);
/// assert_eq!(queue.replay(&|_| true, &mut target).await?, 1);
/// assert_eq!((target.0, queue.len()), (1, 0));
/// # Ok::<(), etl::ConnectorError>(()) }).unwrap();
/// ```
pub trait Republish: Send {
    /// Send one entry back; it is removed from the queue only if this succeeds.
    fn republish(&mut self, entry: &DeadLetter) -> impl Future<Output = Result<(), ConnectorError>> + Send;
}

/// The future of one [`DynRepublish::republish_boxed`] call.
pub type RepublishFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ConnectorError>> + Send + 'a>>;

/// [`Republish`] in a form usable as `dyn` (a trait whose method returns `impl Future` is
/// not): what [`DeadLetters::replay`] takes. Every `Republish` implements it (a blanket impl
/// that boxes the future); implement `Republish`, not this.
///
/// ```
/// use etl::dead_letter::{DeadLetter, DynRepublish, Republish};
/// struct Ok_;
/// impl Republish for Ok_ {
///     async fn republish(&mut self, _: &DeadLetter) -> Result<(), etl::ConnectorError> { Ok(()) }
/// }
/// let target: &mut dyn DynRepublish = &mut Ok_;
/// ```
pub trait DynRepublish: Send {
    /// [`Republish::republish`], its future boxed.
    fn republish_boxed<'a>(&'a mut self, entry: &'a DeadLetter) -> RepublishFuture<'a>;
}

impl<R: Republish + ?Sized> DynRepublish for R {
    fn republish_boxed<'a>(&'a mut self, entry: &'a DeadLetter) -> RepublishFuture<'a> {
        Box::pin(self.republish(entry))
    }
}

/// A dead-letter queue.
///
/// `write` returns only once the entries are durable: the pipeline acknowledges the source's
/// records right after. `replay` is finite (it works on the entries present when it starts; an
/// empty queue returns 0 at once) and removes exactly what it replayed.
#[async_trait::async_trait]
pub trait DeadLetters: Send + Sync {
    /// A short description for logs (`file dead-letters.jsonl`).
    fn describe(&self) -> String;

    /// Durably append entries.
    async fn write(&self, entries: Vec<DeadLetter>) -> Result<(), ConnectorError>;

    /// Every entry, oldest first.
    async fn list(&self) -> Result<Vec<DeadLetter>, ConnectorError>;

    /// Re-publish the entries matching `filter`, oldest first, and remove each one that was
    /// re-published. Stops at the first failure of `target` (the entries not re-published stay)
    /// and returns its error; otherwise returns how many were replayed.
    async fn replay(
        &self,
        filter: &(dyn for<'a> Fn(&'a DeadLetter) -> bool + Send + Sync),
        target: &mut dyn DynRepublish,
    ) -> Result<usize, ConnectorError>;

    /// Remove entries whose last failure is older than `older_than`; returns how many.
    async fn purge(&self, older_than: Duration) -> Result<usize, ConnectorError>;

    /// The local file the queue is stored in, if it is one. The `dead_letters` source uses it
    /// to refuse reading the queue its own run dead-letters into. Default: `None`.
    ///
    /// ```
    /// use etl::dead_letter::{DeadLetters, FileDeadLetters, MemoryDeadLetters};
    /// assert_eq!(FileDeadLetters::new("dlq/a.jsonl").path(), Some(std::path::Path::new("dlq/a.jsonl")));
    /// assert_eq!(MemoryDeadLetters::new().path(), None);
    /// ```
    fn path(&self) -> Option<&Path> {
        None
    }
}
