//! Dead letters: records that failed for good, kept with their raw bytes, the error and where
//! they came from, for inspection, replay and purge.

mod file;
mod memory;
mod replay;

pub use file::FileDeadLetters;
pub use memory::MemoryDeadLetters;

use crate::batch::{Failure, FailureKind};
use crate::error::ConnectorError;
use crate::record::Position;
use bytes::Bytes;
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
    /// An entry for a failed record from `source`, stamped now.
    pub fn from_failure(failure: Failure, source: &str) -> DeadLetter {
        let now = SystemTime::now();
        let headers = failure.meta.extra.map(|e| e.headers).unwrap_or_default();
        DeadLetter {
            id: next_id(now),
            payload: failure.payload,
            error: failure.error,
            kind: failure.kind,
            source: source.to_owned(),
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
/// ```
/// use etl::dead_letter::{DeadLetter, Republish};
/// struct Print;
/// #[async_trait::async_trait]
/// impl Republish for Print {
///     async fn republish(&mut self, entry: &DeadLetter) -> Result<(), etl::ConnectorError> {
///         tracing::info!(id = %entry.id, "replayed");
///         Ok(())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Republish: Send {
    /// Send one entry back; it is removed from the queue only if this succeeds.
    async fn republish(&mut self, entry: &DeadLetter) -> Result<(), ConnectorError>;
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
        target: &mut dyn Republish,
    ) -> Result<usize, ConnectorError>;

    /// Remove entries whose last failure is older than `older_than`; returns how many.
    async fn purge(&self, older_than: Duration) -> Result<usize, ConnectorError>;
}
