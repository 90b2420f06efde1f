//! `kafka`: an Apache Kafka consumer-group source with at-least-once delivery: an offset is
//! committed only once every record before it was durably written by the sink or
//! dead-lettered.
//!
//! ```no_run
//! use etl::prelude::*;
//! # async fn demo() -> etl::Result<()> {
//! let source = etl::source::kafka::<Json>(["orders"], "etl-orders")
//!     .brokers("${KAFKA_BROKERS}")
//!     .auto_offset_reset("earliest")
//!     .batch_size(500)
//!     .batch_timeout(std::time::Duration::from_secs(2));
//! let report = Pipeline::from(source).to(etl::sink::stdout()).run().await?;
//! # Ok(()) }
//! ```
//!
//! The source joins the consumer group `group` on `topics` (librdkafka's `BaseConsumer`) and
//! accumulates messages into batches of `batch_size` ([`BatchOptions`]); `batch_timeout`
//! runs from the first message of a batch. More processes with the same group share the
//! partitions (DESIGN.md: scale out on the brokers).
//!
//! # Metadata and decoding
//!
//! Beside each record: [`Meta::position`](crate::record::Meta::position) is
//! [`Position::Offset`](crate::record::Position::Offset) (partition and offset),
//! [`Meta::raw`](crate::record::Meta::raw) the message's value, and in
//! [`Extra`](crate::record::Extra) the `key`, the `headers` (in order), the `timestamp` and
//! the topic (as `event_type`). The value is JSON decoded into `T`; a value that does not
//! decode (or a tombstone, a message without a value) becomes a
//! [`FailureKind::Decode`](crate::batch::FailureKind::Decode) failure with the raw bytes and
//! the position: the pipeline dead-letters it and the batch goes on.
//!
//! # Acknowledgement
//!
//! Offsets are committed by the source itself (`enable.auto.commit = false`): per partition,
//! the offset after the **contiguous** prefix of batches that were delivered or rejected
//! (their failed records dead-lettered), tracked by the ordered
//! [`Watermark`](crate::ack::Watermark). A batch that completes while an earlier one is still
//! in flight waits for it: the group's committed offset never passes an unfinished record
//! (the bug of vector#24215 and faust#312). The offset committed is the next offset to read, as
//! Kafka stores it (offset + 1 of the last record done), given as is to the commit call.
//! The acknowledgement that moves the watermark commits at once, asynchronously (the group's
//! offset trails the sink by a round trip: a crash repeats at most the batches in flight).
//! librdkafka does not report the result of such a commit, so the consumer's thread also
//! commits what the watermarks reached synchronously every 100 ms; that confirmation is what
//! the end of the stream waits for, and a commit that failed is made again by it.
//!
//! An **errored** batch (the pipeline could not write it) holds the watermark of each of its
//! partitions: the source seeks those partitions back to their first unfinished offset, and
//! drops everything it had fetched past it (messages in librdkafka's queue, in the hand-over
//! to the pipeline, and the acknowledgements of later batches of those partitions). The
//! records come again and nothing after them is committed before they are done. Records of
//! those partitions already in the batch being filled still reach the pipeline once more
//! (at-least-once), but never count for a commit.
//!
//! # Rebalance
//!
//! When the group takes partitions away from this consumer (another member joined, or left),
//! the rebalance callback waits up to 10 s for the batches of those partitions that are in
//! flight, commits the offsets they reached, and lets the partitions go; batches still in
//! flight after that are abandoned without committing (their records are read again by the
//! partitions' next owner: duplicates, never a loss). The consumer's thread (below) is the one
//! that waits, so the pipeline goes on writing and committing meanwhile.
//!
//! # Exactly once
//!
//! When the run's sink stores positions (`postgres(.., exactly_once = true)`: it offers a
//! [`PositionStore`](crate::positions::PositionStore), see [`crate::positions`]), the source
//! reports with each batch the range of offsets it read per partition (from where the
//! previous batch of the partition ended, or where the partition was placed, to the offset
//! after its last message: filtered and dead-lettered records included), and places every
//! partition it is assigned, at start-up and at each rebalance, at the offset the store
//! holds, ignoring the group's committed offset (a partition without a stored offset starts
//! at the group's, as without exactly-once). The store is read on the consumer's thread, in
//! the rebalance callback (the offsets of the assignment list, so the first fetch is already
//! there), waiting on the runtime. A batch that fails (the sink fenced it off: another member
//! wrote those offsets) seeks its partitions to the stored offsets, not to the first
//! unfinished one. Messages fetched before such a seek that the batch being filled still
//! holds are not written (a batch carries each offset of its ranges once). The source keeps
//! committing the group's offsets after each transaction, for monitoring. A store that cannot
//! be read (after 3 attempts) stops the source with the error: it is never taken for "nothing
//! stored".
//!
//! # Shutdown
//!
//! Cancellation flushes the batch in hand; the stream then **waits for every batch it emitted
//! to be acknowledged and for the commit of the offsets they reached** (see
//! [`settle_at_end`](crate::ack::settle_at_end)), and then closes the consumer, which leaves
//! the group at once (the other members need not wait for a session timeout). If the run ends
//! with an error instead, what was not committed is read again by the next consumer of the
//! group.
//!
//! # Threads
//!
//! The consumer runs on a thread of its own (`BaseConsumer`, rather than `StreamConsumer` in
//! the pipeline's task): librdkafka runs the rebalance callback in the thread that polls, and
//! that callback must be able to wait for the pipeline to finish the batches of revoked
//! partitions without stopping the pipeline itself. The thread polls, decodes the JSON and
//! hands the messages over in chunks through a bounded channel; while the pipeline is behind,
//! it pauses the partitions and keeps polling (so rebalances and commits go on).
//!
//! # Security
//!
//! [`security_protocol`](KafkaSource::security_protocol), the SASL options and
//! [`ssl_ca_location`](KafkaSource::ssl_ca_location) are librdkafka's. etl builds librdkafka
//! without TLS; a pipeline that needs `ssl` or `sasl_ssl` adds
//! `rdkafka = { version = "0.39", features = ["ssl"] }` to its own dependencies.

mod decode;
mod partitions;
mod placement;
mod read;
mod stream;
#[cfg(test)]
mod tests;

use super::{BatchStream, Source, SourceContext};
use crate::batch::{BatchConfig, BatchOptions};
use crate::kafka::ClientOptions;
use crate::record::Record;
use std::marker::PhantomData;
use std::time::Duration;

pub use crate::kafka::{IntoSecret, DEFAULT_BROKERS};

/// The default of [`KafkaSource::auto_offset_reset`]: a group without a committed offset
/// starts at the beginning of each partition.
///
/// ```
/// assert_eq!(etl::source::kafka::DEFAULT_AUTO_OFFSET_RESET, "earliest");
/// ```
pub const DEFAULT_AUTO_OFFSET_RESET: &str = "earliest";

/// The default of [`KafkaSource::poll_timeout`]: how long one poll of the consumer waits.
///
/// ```
/// assert_eq!(etl::source::kafka::DEFAULT_POLL_TIMEOUT, std::time::Duration::from_millis(100));
/// ```
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// The default of [`KafkaSource::session_timeout`] (librdkafka's `session.timeout.ms`).
///
/// ```
/// assert_eq!(etl::source::kafka::DEFAULT_SESSION_TIMEOUT, std::time::Duration::from_secs(45));
/// ```
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(45);

/// A Kafka consumer-group source. See [`kafka()`] and the [module docs](self).
#[derive(Debug)]
pub struct KafkaSource<T> {
    topics: Vec<String>,
    group: String,
    client: ClientOptions,
    auto_offset_reset: String,
    poll_timeout: Duration,
    session_timeout: Duration,
    batching: BatchConfig,
    _record: PhantomData<fn() -> T>,
}

/// Consume `topics` in the consumer group `group` (`${VAR}` resolved at start-up, when the
/// source also checks that the brokers answer and that every topic exists).
///
/// ```
/// use etl::prelude::*;
/// let src = etl::source::kafka::<Json>(["orders", "refunds"], "etl-orders").batch_size(500);
/// assert_eq!(src.describe(), "kafka source orders,refunds");
/// ```
pub fn kafka<T>(topics: impl IntoIterator<Item = impl Into<String>>, group: impl Into<String>) -> KafkaSource<T> {
    KafkaSource {
        topics: topics.into_iter().map(Into::into).collect(),
        group: group.into(),
        client: ClientOptions::default(),
        auto_offset_reset: DEFAULT_AUTO_OFFSET_RESET.to_owned(),
        poll_timeout: DEFAULT_POLL_TIMEOUT,
        session_timeout: DEFAULT_SESSION_TIMEOUT,
        batching: BatchConfig::default(),
        _record: PhantomData,
    }
}

impl<T> KafkaSource<T> {
    crate::kafka::client_option_methods!("etl::source::kafka::<etl::Json>([\"orders\"], \"etl\")");

    /// Where a group without a committed offset starts: `"earliest"` or `"latest"`
    /// (librdkafka's `auto.offset.reset`). Default [`DEFAULT_AUTO_OFFSET_RESET`].
    ///
    /// ```
    /// let src = etl::source::kafka::<etl::Json>(["orders"], "etl").auto_offset_reset("latest");
    /// ```
    pub fn auto_offset_reset(mut self, reset: impl Into<String>) -> Self {
        self.auto_offset_reset = reset.into();
        self
    }

    /// How long one poll of the consumer waits for a message; also how late a commit or a
    /// seek can be after the acknowledgement that asks for it. Default
    /// [`DEFAULT_POLL_TIMEOUT`] (100 ms).
    ///
    /// ```
    /// let src = etl::source::kafka::<etl::Json>(["orders"], "etl").poll_timeout(std::time::Duration::from_millis(50));
    /// ```
    pub fn poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long the group waits for a silent member before giving its partitions to another
    /// (librdkafka's `session.timeout.ms`). Default [`DEFAULT_SESSION_TIMEOUT`] (45 s).
    ///
    /// ```
    /// let src = etl::source::kafka::<etl::Json>(["orders"], "etl").session_timeout(std::time::Duration::from_secs(10));
    /// ```
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Any other librdkafka consumer properties (`fetch.min.bytes`, `client.id`, ...; values'
    /// `${VAR}` resolved at start-up), set after the source's own. Values of keys that look
    /// secret (`password`, `secret`, `token`, `*.key`) are not shown by `Debug`. Overriding
    /// `enable.auto.commit` breaks the delivery guarantee. Of librdkafka's defaults, the source
    /// changes `fetch.queue.backoff.ms` to 10 (librdkafka: 1 000: a partition whose prefetched
    /// messages fill the local queue is not fetched for a second). Default: none.
    ///
    /// ```
    /// let src = etl::source::kafka::<etl::Json>(["orders"], "etl").properties([("fetch.min.bytes", "65536")]);
    /// ```
    pub fn properties<K: Into<String>, V: Into<String>>(mut self, properties: impl IntoIterator<Item = (K, V)>) -> Self {
        self.client.properties.extend(properties.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }
}

impl<T> BatchOptions for KafkaSource<T> {
    fn batching(&mut self) -> &mut BatchConfig {
        &mut self.batching
    }
}

impl<T: Record> Source for KafkaSource<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("kafka source {}", crate::config::display(&self.topics.join(",")))
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        stream::open(self, ctx).await
    }

    fn dead_letter_decoder(&self) -> Option<super::DeadLetterDecoder<T>> {
        Some(super::json_decoder::<T>())
    }

    async fn check(self, _ctx: SourceContext) -> crate::Result<()> {
        stream::check(self).await
    }
}
