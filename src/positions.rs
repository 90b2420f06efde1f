//! Source positions stored by a sink, beside the records, in the sink's own transaction: the
//! mechanism of exactly-once delivery (DESIGN.md §4, issue 13).
//!
//! At-least-once delivery commits the source's position (a Kafka offset) *after* the sink's
//! commit, so a crash between the two writes the same records again. A sink that is
//! transactional can close that gap: it writes, in the transaction that holds a batch's rows,
//! the position the source will resume from, and the source, when it starts reading a
//! partition, asks the sink where to resume rather than its broker. Rows and positions commit
//! together or not at all; a record is in the table exactly once.
//!
//! Three pieces, each general:
//!
//! * **The ranges a batch covers** ([`Positions`]): per partition, the offsets the source read
//!   into the batch, `from` (where the read of this batch continued: the end of the previous
//!   batch, or where the partition was placed) to `to` (the next offset after the last one
//!   read). The range is what the source *read*, not what reaches the sink: records filtered
//!   out, dead-lettered on the way or refused by the sink are inside it, so they are not read
//!   again either. It travels with the batch ([`Batch::positions`](crate::batch::Batch::positions))
//!   through every operator (operators change records, never the range) to
//!   [`Sink::write_positioned`](crate::sink::Sink::write_positioned), which the pipeline calls
//!   even when no record is left (a batch of filtered records still moves its positions).
//! * **The store** ([`PositionStore`]): what a sink that stores positions offers the source,
//!   through the run's [`Resources`]: [`SinkContext::offer_positions`](crate::sink::SinkContext::offer_positions)
//!   when the sink opens (the pipeline opens the sink before the source), and
//!   [`SourceContext::positions`](crate::source::SourceContext::positions) when the source
//!   opens. A source that finds a store reads from the stored positions on every assignment
//!   of a partition (start-up and each rebalance), ignoring the broker's own.
//! * **Fencing**: the sink stores a range only if the stored position is still the range's
//!   `from` (a compare-and-set). A consumer that lost a partition to another member in a
//!   rebalance, and still writes a batch it had read, finds the position moved: that batch is
//!   refused ([`Written::fenced`](crate::sink::Written::fenced)) and dropped, and the source
//!   places the partitions it still owns at the stored positions again.
//!
//! Which pairs can use it: any source that can start reading at a stored position, with any
//! sink that can store a position atomically with its records. Built in: the `kafka` source
//! with the `postgres` sink (`exactly_once = true`). The same trait fits a JetStream consumer
//! (stream sequence numbers, started with `DeliverPolicy::ByStartSequence`) or a file source
//! (byte offsets) as sources, and as sinks any store with transactions or conditional writes:
//! another SQL database, a file sink that keeps the positions in the manifest it renames into
//! place with the data, a key-value store with compare-and-set. Queues whose messages have no
//! order or no replayable position (SQS, RabbitMQ, SSE) cannot seek, so they cannot use it.
//!
//! ```
//! use etl::positions::{OffsetRange, Positions};
//! let read = Positions::new("ledger", vec![OffsetRange::new("payments", 0, 100, 150)]);
//! assert_eq!(read.ranges[0].len(), 50);
//! assert!(read.contains("payments", 0, 120));
//! assert!(!read.contains("payments", 1, 120));
//! ```

use crate::error::ConnectorError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The offsets of one partition a source read into one batch: `from` (inclusive) to `to`
/// (exclusive, the next offset to read, as Kafka commits it).
///
/// `from` is where the read of this batch *continued*, not its first record's offset: the
/// end of the previous batch of the partition, or where the partition was placed (a stored
/// position, a seek back). Offsets may have gaps (compacted topics, transaction markers,
/// records deleted by retention); a range that starts where the last one ended is what lets a
/// store check that no batch was skipped or written twice.
///
/// ```
/// let r = etl::positions::OffsetRange::new("payments", 2, 10, 14);
/// assert_eq!((r.partition, r.from, r.to, r.len()), (2, 10, 14, 4));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OffsetRange {
    /// The topic (or stream).
    pub topic: Arc<str>,
    /// The partition (or shard).
    pub partition: i32,
    /// Where this batch's read of the partition continued from.
    pub from: i64,
    /// The next offset after the last one read.
    pub to: i64,
}

impl OffsetRange {
    /// The range `from..to` of `topic`/`partition`.
    ///
    /// ```
    /// let r = etl::positions::OffsetRange::new("payments", 0, 100, 150);
    /// assert_eq!(&*r.topic, "payments");
    /// ```
    pub fn new(topic: impl Into<Arc<str>>, partition: i32, from: i64, to: i64) -> OffsetRange {
        OffsetRange { topic: topic.into(), partition, from, to }
    }

    /// How many offsets it spans (0 when empty or reversed).
    ///
    /// ```
    /// assert_eq!(etl::positions::OffsetRange::new("t", 0, 5, 5).len(), 0);
    /// ```
    pub fn len(&self) -> u64 {
        u64::try_from(self.to.saturating_sub(self.from)).unwrap_or(0)
    }

    /// True when it spans no offset.
    ///
    /// ```
    /// assert!(etl::positions::OffsetRange::new("t", 0, 5, 5).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The source positions a batch covers: the consumer they belong to (a Kafka consumer group)
/// and one [`OffsetRange`] per partition the batch read. Empty for sources that report none.
///
/// ```
/// use etl::positions::{OffsetRange, Positions};
/// assert!(Positions::default().is_empty());
/// let p = Positions::new("ledger", vec![OffsetRange::new("payments", 0, 0, 10)]);
/// assert_eq!(&*p.consumer, "ledger");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    /// Whose positions these are: the consumer group (several pipelines reading the same topic
    /// in different groups store their positions apart).
    pub consumer: Arc<str>,
    /// One range per partition read, in no particular order.
    pub ranges: Vec<OffsetRange>,
}

impl Positions {
    /// The ranges `ranges` read by `consumer`.
    ///
    /// ```
    /// let p = etl::positions::Positions::new("ledger", vec![etl::positions::OffsetRange::new("payments", 0, 0, 5)]);
    /// assert_eq!(p.ranges.len(), 1);
    /// ```
    pub fn new(consumer: impl Into<Arc<str>>, ranges: Vec<OffsetRange>) -> Positions {
        Positions { consumer: consumer.into(), ranges }
    }

    /// True when the batch reports no range.
    ///
    /// ```
    /// assert!(etl::positions::Positions::new("ledger", vec![]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether `offset` of `topic`/`partition` lies in one of the ranges.
    ///
    /// ```
    /// let p = etl::positions::Positions::new("g", vec![etl::positions::OffsetRange::new("t", 0, 3, 5)]);
    /// assert!(p.contains("t", 0, 4) && !p.contains("t", 0, 5));
    /// ```
    pub fn contains(&self, topic: &str, partition: i32, offset: i64) -> bool {
        self.ranges.iter().any(|r| r.partition == partition && &*r.topic == topic && r.from <= offset && offset < r.to)
    }
}

/// A partition of a topic, as a [`PositionStore`] is asked about it.
///
/// ```
/// let p = etl::positions::Partition::new("payments", 1);
/// assert_eq!((&*p.topic, p.partition), ("payments", 1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
}

impl Partition {
    /// `topic`/`partition`.
    ///
    /// ```
    /// assert_eq!(etl::positions::Partition::new("payments", 2).partition, 2);
    /// ```
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Partition {
        Partition { topic: topic.into(), partition }
    }
}

/// The future of one [`PositionStore::stored`] call.
pub type StoredFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<(Partition, i64)>, ConnectorError>> + Send + 'a>>;

/// Where a sink keeps the positions it stored with its records; what a source asks where to
/// resume. See the [module docs](self).
///
/// `stored` answers from committed state only (another session than the sink's open
/// transaction). A store that cannot be read is an error, never "nothing stored": the source
/// would then start from the broker's offsets and write records twice.
///
/// ```
/// use etl::positions::{Partition, PositionStore, StoredFuture};
/// use std::collections::HashMap;
///
/// /// Positions in memory (a test double; a real store is the sink's database).
/// struct Fixed(HashMap<(String, Partition), i64>);
/// impl PositionStore for Fixed {
///     fn describe(&self) -> String { "fixed".into() }
///     fn stored<'a>(&'a self, consumer: &'a str, partitions: &'a [Partition]) -> StoredFuture<'a> {
///         let found = partitions.iter()
///             .filter_map(|p| self.0.get(&(consumer.to_owned(), p.clone())).map(|o| (p.clone(), *o)))
///             .collect();
///         Box::pin(async move { Ok(found) })
///     }
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = Fixed(HashMap::from([(("ledger".to_owned(), Partition::new("payments", 0)), 42)]));
/// let asked = [Partition::new("payments", 0), Partition::new("payments", 1)];
/// assert_eq!(store.stored("ledger", &asked).await?, vec![(Partition::new("payments", 0), 42)]);
/// # Ok::<(), etl::ConnectorError>(()) }).unwrap();
/// ```
pub trait PositionStore: Send + Sync {
    /// A short description for logs: the store and where it keeps the positions.
    fn describe(&self) -> String;

    /// The stored next offset of each of `partitions` read by `consumer` that has one;
    /// partitions without a stored position are left out.
    fn stored<'a>(&'a self, consumer: &'a str, partitions: &'a [Partition]) -> StoredFuture<'a>;
}

/// The key under which a run's [`Resources`](crate::resources::Resources) hold its position
/// store.
pub(crate) const RESOURCE_KEY: &str = "etl position store";

/// A run's position store, as the resources hold it.
pub(crate) type SharedStore = Arc<dyn PositionStore>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_contain_their_offsets_only() {
        let p = Positions::new("g", vec![OffsetRange::new("a", 0, 10, 20), OffsetRange::new("b", 0, 0, 1)]);
        assert!(p.contains("a", 0, 10) && p.contains("a", 0, 19) && !p.contains("a", 0, 20) && !p.contains("a", 0, 9));
        assert!(p.contains("b", 0, 0) && !p.contains("b", 1, 0) && !p.contains("c", 0, 0));
        assert_eq!(OffsetRange::new("a", 0, 20, 10).len(), 0);
    }
}
