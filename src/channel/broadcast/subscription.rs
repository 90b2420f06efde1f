//! [`Subscription`]: one subscriber of a [`Broadcast`] as a pipeline source.

use super::log::SubscriberShared;
use super::Broadcast;
use crate::ack::{settle_at_end, Ack, Outstanding};
use crate::batch::{batched, BatchConfig, BatchOptions, Incoming};
use crate::record::{Extra, Meta, Position};
use crate::source::{BatchStream, Source, SourceContext};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The header (in [`Extra::headers`]) of the first record a subscriber receives after entries
/// were dropped before it read them ([`Overflow::DropOldest`](super::Overflow::DropOldest)): how many it missed, in ASCII
/// decimal. Read it with [`missed`].
///
/// ```
/// assert_eq!(etl::channel::MISSED_HEADER, "etl-broadcast-missed");
/// ```
pub const MISSED_HEADER: &str = "etl-broadcast-missed";

/// How many entries were dropped just before this record, for its subscriber (the
/// [`MISSED_HEADER`] of its metadata); `None` when none were.
///
/// ```
/// use etl::record::{Extra, Meta, Position};
/// let meta = Meta::at(Position::Sequence(7))
///     .with_extra(Extra { headers: vec![(etl::channel::MISSED_HEADER.into(), "5".into())], ..Extra::default() });
/// assert_eq!(etl::channel::missed(&meta), Some(5));
/// assert_eq!(etl::channel::missed(&Meta::default()), None);
/// ```
pub fn missed(meta: &Meta) -> Option<u64> {
    let extra = meta.extra.as_ref()?;
    let (_, value) = extra.headers.iter().find(|(name, _)| name == MISSED_HEADER)?;
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// A handle on one subscriber's counters, readable while its pipeline runs. Cheap to clone.
///
/// ```
/// let log = etl::channel::Broadcast::<i64>::new(10, Default::default());
/// let subscription = log.subscribe("dashboard");
/// let handle = subscription.handle();
/// assert_eq!((handle.name(), handle.missed(), handle.acknowledged()), ("dashboard", 0, 0));
/// ```
#[derive(Debug, Clone)]
pub struct Subscriber {
    name: Arc<str>,
    shared: Arc<SubscriberShared>,
}

impl Subscriber {
    pub(super) fn new(name: String, shared: Arc<SubscriberShared>) -> Self {
        Subscriber { name: Arc::from(name), shared }
    }

    /// The subscriber's name.
    ///
    /// ```
    /// let log = etl::channel::Broadcast::<i64>::new(10, Default::default());
    /// assert_eq!(log.subscribe("audit").handle().name(), "audit");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Entries dropped ([`Overflow::DropOldest`](super::Overflow::DropOldest)) before this subscriber read them, in total:
    /// every record of the log is either received or counted here. Counted when the
    /// subscriber reads past the gap (with the record that carries the [`MISSED_HEADER`]).
    ///
    /// ```
    /// use etl::prelude::*;
    /// use etl::channel::{Broadcast, Overflow};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let log = Broadcast::<i64>::new(2, Overflow::DropOldest);
    /// let slow = log.subscribe("slow");
    /// let handle = slow.handle();
    /// log.publish(&[1, 2, 3, 4, 5]).await?;
    /// log.close();
    /// let out = etl::sink::collect();
    /// Pipeline::from(slow).to(out.sink()).handle_signals(false).run().await?;
    /// assert_eq!((out.records(), handle.missed()), (vec![4, 5], 3));
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn missed(&self) -> u64 {
        self.shared.missed.load(Ordering::Relaxed)
    }

    /// The subscriber's cursor: the sequence number of its first record not yet acknowledged.
    ///
    /// ```
    /// use etl::prelude::*;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let log = etl::channel::Broadcast::<i64>::new(10, Default::default());
    /// let subscription = log.subscribe("s");
    /// let handle = subscription.handle();
    /// log.publish(&[1, 2, 3]).await?;
    /// log.close();
    /// Pipeline::from(subscription).to(etl::sink::collect().sink()).handle_signals(false).run().await?;
    /// assert_eq!(handle.acknowledged(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn acknowledged(&self) -> u64 {
        self.shared.acked.load(Ordering::Relaxed)
    }
}

/// One subscriber of a [`Broadcast`] as a pipeline source (see [`Broadcast::subscribe`]).
///
/// Each record's metadata has its sequence number ([`Position::Sequence`]) and, on the first
/// record after a gap, the [`MISSED_HEADER`]. A batch's cursor moves when the batch is
/// acknowledged; an errored batch is read again from its first record. The stream ends when
/// the log is closed and this subscriber has read everything, or on shutdown. Under
/// [`Overflow::Block`](super::Overflow::Block) its `batch_size` is at most the log's capacity
/// (a larger batch could never fill: the producer waits for it). Opening fails
/// ([`SubscribeError`](super::SubscribeError)) when another source reads the same subscriber.
///
/// ```
/// use etl::prelude::*;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let log = etl::channel::Broadcast::<i64>::new(10, Default::default());
/// let dashboard = log.subscribe("dashboard").batch_size(100);
/// log.publish(&[7, 8]).await?;
/// log.close();
/// let out = etl::sink::collect();
/// Pipeline::from(dashboard).to(out.sink()).handle_signals(false).run().await?;
/// assert_eq!(out.records(), vec![7, 8]);
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub struct Subscription<T> {
    log: Broadcast<T>,
    subscriber: Subscriber,
    batching: BatchConfig,
}

impl<T> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("subscriber", &self.subscriber).field("batching", &self.batching).finish_non_exhaustive()
    }
}

impl<T> Subscription<T> {
    pub(super) fn new(log: Broadcast<T>, subscriber: Subscriber) -> Self {
        Subscription { log, subscriber, batching: BatchConfig::default() }
    }

    /// A handle on this subscriber's counters ([`Subscriber::missed`]), to keep before the
    /// subscription is handed to a pipeline.
    ///
    /// ```
    /// let log = etl::channel::Broadcast::<i64>::new(10, Default::default());
    /// assert_eq!(log.subscribe("s").handle().missed(), 0);
    /// ```
    pub fn handle(&self) -> Subscriber {
        self.subscriber.clone()
    }

    /// Entries this subscriber missed so far (see [`Subscriber::missed`]).
    ///
    /// ```
    /// let log = etl::channel::Broadcast::<i64>::new(10, Default::default());
    /// assert_eq!(log.subscribe("s").missed(), 0);
    /// ```
    pub fn missed(&self) -> u64 {
        self.subscriber.missed()
    }
}

impl<T> BatchOptions for Subscription<T> {
    fn batching(&mut self) -> &mut BatchConfig {
        &mut self.batching
    }
}

/// Entries read from the log per lock, at most.
const READ_CHUNK: usize = 256;

/// Gives the subscriber's cursor back when its source's stream is dropped.
struct Release<T: Clone> {
    log: Broadcast<T>,
    name: Arc<str>,
}

impl<T: Clone> Drop for Release<T> {
    fn drop(&mut self) {
        self.log.release(&self.name);
    }
}

impl<T: Clone + Send + Sync + 'static> Source for Subscription<T> {
    type Item = T;

    fn describe(&self) -> String {
        self.log.describe_subscriber(&self.subscriber.name)
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        let origin: Arc<str> = Arc::from(self.describe());
        let Subscription { log, subscriber, batching } = self;
        let shared =
            log.open(&subscriber.name).map_err(|e| crate::Error::Source(crate::ConnectorError::permanent(origin.to_string(), e)))?;
        let release = Release { log: log.clone(), name: Arc::clone(&subscriber.name) };
        let mut batching = batching;
        if log.overflow() == super::Overflow::Block {
            // A batch larger than the log could never fill: the producer waits for this very
            // batch's acknowledgement, which waits for `batch_timeout`.
            batching.batch_size = batching.batch_size.min(log.capacity());
        }
        let chunk = batching.batch_size.clamp(1, READ_CHUNK);
        let run_missed = ctx.missed.clone();
        let missed_total = metrics::counter!(
            "etl_broadcast_missed_total",
            "broadcast" => log.name().to_owned(),
            "subscriber" => subscriber.name.to_string()
        );
        // A buffer of entries read under one lock, handed to the batcher one at a time; stale
        // (dropped) when the cursor was rewound since.
        let reader = Reader { log: log.clone(), name: Arc::clone(&subscriber.name), shared, buffer: Vec::new(), generation: 0 };
        let entries = futures::stream::unfold((reader, ctx.shutdown.clone()), move |(mut reader, shutdown)| {
            let missed_total = missed_total.clone();
            let run_missed = run_missed.clone();
            async move {
                let (seq, record, missed) = reader.next(chunk, &shutdown).await?;
                let mut meta = Meta::at(Position::Sequence(seq));
                if missed > 0 {
                    tracing::warn!(
                        broadcast = %reader.log.name(),
                        subscriber = %reader.name,
                        missed,
                        next = seq,
                        "broadcast subscriber lagged: the oldest entries were dropped before it read them"
                    );
                    missed_total.increment(missed);
                    run_missed.add(missed);
                    let header = (MISSED_HEADER.to_owned(), Bytes::from(missed.to_string()));
                    meta = meta.with_extra(Extra { headers: vec![header], ..Extra::default() });
                }
                let incoming = Incoming::record(record, meta, std::mem::size_of::<T>(), seq);
                Some((Ok(incoming), (reader, shutdown)))
            }
        });
        let outstanding = Outstanding::new();
        let owed = outstanding.clone();
        let make_ack = move |seqs: Vec<u64>| {
            let (log, name, token) = (log.clone(), Arc::clone(&subscriber.name), owed.token());
            Ack::new(move |status| {
                log.settle(&name, &runs(seqs), status.is_done());
                drop(token);
            })
        };
        let batches = batched(entries, batching, ctx.shutdown, origin, make_ack);
        Ok(Box::pin(settle_at_end(batches, outstanding, release)))
    }
}

/// A subscriber's reading side.
struct Reader<T> {
    log: Broadcast<T>,
    name: Arc<str>,
    shared: Arc<SubscriberShared>,
    /// Read and not handed out yet, in reverse order (popped from the back).
    buffer: Vec<(u64, T)>,
    /// The cursor's generation when `buffer` was read.
    generation: u64,
}

impl<T: Clone> Reader<T> {
    /// The next entry: its sequence number, the record, and the entries missed just before it.
    async fn next(&mut self, chunk: usize, shutdown: &tokio_util::sync::CancellationToken) -> Option<(u64, T, u64)> {
        if self.shared.generation.load(Ordering::Acquire) != self.generation {
            self.buffer.clear();
        }
        if let Some((seq, record)) = self.buffer.pop() {
            return Some((seq, record, 0));
        }
        self.generation = self.shared.generation.load(Ordering::Acquire);
        let read = self.log.next(&self.name, chunk, shutdown).await?;
        self.buffer = read.entries;
        self.buffer.reverse();
        let (seq, record) = self.buffer.pop()?;
        Some((seq, record, read.missed))
    }
}

/// Sequence numbers (ascending, as read) as runs `start..end` of consecutive numbers.
fn runs(seqs: Vec<u64>) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for seq in seqs {
        match runs.last_mut() {
            Some((_, end)) if *end == seq => *end += 1,
            _ => runs.push((seq, seq + 1)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_group_into_runs() {
        assert_eq!(runs(vec![3, 4, 5, 9, 10, 2]), [(3, 6), (9, 11), (2, 3)]);
        assert!(runs(Vec::new()).is_empty());
    }

    #[test]
    fn the_missed_header_must_be_a_number() {
        let meta = Meta::default().with_extra(Extra { headers: vec![(MISSED_HEADER.into(), "x".into())], ..Extra::default() });
        assert_eq!(missed(&meta), None);
    }
}
