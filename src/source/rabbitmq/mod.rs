//! `rabbitmq`: a RabbitMQ queue consumer with manual acknowledgements, a prefetch window,
//! reconnection with backoff and a redelivery limit.
//!
//! The source connects with [lapin](https://docs.rs/lapin), sets the channel's prefetch
//! (`basic.qos`), checks (or, with [`RabbitmqSource::declare`], declares) the queue, and
//! consumes from it; deliveries are batched by `batch_size` and `batch_timeout`
//! ([`BatchOptions`]), the timeout running from the first delivery of a batch.
//!
//! ```no_run
//! use etl::prelude::*;
//! # async fn demo() -> etl::Result<()> {
//! let out = etl::sink::collect::<Json>();
//! let source = etl::source::rabbitmq::<Json>("orders")
//!     .url("amqp://guest:guest@127.0.0.1:5672/%2f")
//!     .prefetch_count(500)
//!     .max_redeliveries(5)
//!     .batch_size(100);
//! let report = Pipeline::from(source).to(out.sink()).run().await?;
//! # Ok(()) }
//! ```
//!
//! # Metadata and decoding
//!
//! Beside each record: [`Meta::position`](crate::record::Meta::position) is
//! [`Position::Id`](crate::record::Position::Id) with the message's `message_id` property
//! (`delivery tag N` for a message without one), [`Meta::raw`](crate::record::Meta::raw) the
//! body, and in [`Extra`](crate::record::Extra): `key` (the routing key), `exchange`,
//! `headers` (string values as their text, others as JSON), `message_id`, `redelivered`,
//! `delivery_tag`, `delivery_count` (1 for a first delivery), `timestamp` (the `timestamp`
//! property) and `event_type` (the queue's name). The body is JSON decoded into `T`; a body
//! that does not decode becomes a [`FailureKind::Decode`](crate::batch::FailureKind::Decode)
//! failure with its exact bytes (any bytes: AMQP bodies are binary): the pipeline
//! dead-letters it, and the message is then acknowledged.
//!
//! # Acknowledgement
//!
//! When a batch's final status is known (see [`Status`](crate::ack::Status)):
//! * delivered or rejected (its failed records are in the dead-letter queue): its deliveries
//!   are acknowledged (`basic.ack`);
//! * errored: they are rejected with requeue (`basic.nack`, `requeue = true`): the broker
//!   delivers them again, to this consumer or another one.
//!
//! The calls are awaited (in tasks of their own: an acknowledgement can resolve after the
//! stream has ended), and the source reads its next batch only once the calls of the batches
//! resolved so far are made. A batch is settled with one call, `multiple = true` up to its
//! last delivery tag, only when its tags are exactly the channel's unsettled tags up to that
//! one; otherwise (an earlier batch still in flight, out-of-order completion, deliveries not
//! yet batched below it) with one call per delivery, so that a call never settles another
//! batch's messages. **The stream waits for them**: once the source stops reading (shutdown,
//! `max_records`, [`RabbitmqSource::drain_after`]), the stream's end waits until every batch
//! it emitted has been resolved and settled, then closes the connection (the broker requeues
//! at once what no batch took). If the run ends with an error instead, the connection is
//! dropped and the broker requeues every unacknowledged delivery.
//!
//! # Prefetch
//!
//! The broker hands the consumer at most `prefetch_count` unacknowledged deliveries. A batch
//! needs `batch_size` of them to fill, so a smaller prefetch is raised to `batch_size` with a
//! warning (a batch could otherwise only close on its timeout). To let the pipeline write one
//! batch while the next fills, keep it at a few times `batch_size` (the default,
//! [`DEFAULT_PREFETCH_COUNT`], is twice the default batch size). AMQP's prefetch is at most
//! 65 535; a larger `batch_size` consumes without a limit.
//!
//! # Reconnection
//!
//! When the connection drops or the broker restarts, the source connects again with
//! exponential backoff and jitter (from 100 ms to 5 s apart; after 30 failed attempts in a row
//! the run ends with a retryable error) and consumes again. Delivery tags belong to their
//! channel: batches read before the drop are written by the sink as usual, but their
//! acknowledgements are not sent on the new channel (they would settle other messages); the
//! broker requeued their messages when the old channel died and delivers them again
//! (at-least-once: they are written twice, none is lost).
//!
//! # Poison messages
//!
//! A message redelivered more than [`RabbitmqSource::max_redeliveries`] times (default
//! [`DEFAULT_MAX_REDELIVERIES`]) is not decoded again: it becomes a failure with its raw body
//! (kind `max_deliveries`, its deliveries in `attempts`), is dead-lettered and then
//! acknowledged, never around the loop forever. The count is the `x-delivery-count` header
//! of quorum queues; on other queues it is kept by this consumer, by message id (by a
//! fingerprint of the routing key and body for a message without one), from the
//! `redelivered` flag: it starts again when the consumer restarts, and each consumer of a
//! shared queue counts what it sees. RabbitMQ 3.x counts every return of a quorum queue's
//! message, including those of the deliveries a consumer had prefetched when its connection
//! closed: when runs keep failing on one message (a crash loop), the messages prefetched
//! behind it are counted too, and may reach the limit; a small `prefetch_count` keeps those
//! few (they are dead-lettered with their bytes, never lost).
//!
//! # Shutdown
//!
//! Cancellation stops reading at once: the batch in hand is flushed and the stream ends
//! (after the wait described above).

mod decode;
mod stream;
#[cfg(test)]
mod tests;

use super::{BatchStream, Source, SourceContext};
use crate::batch::{BatchConfig, BatchOptions};
pub use crate::rabbitmq::{DEFAULT_EXCHANGE_TYPE, DEFAULT_URL};
use crate::record::Record;
use lapin::types::{AMQPValue, FieldTable};
use std::marker::PhantomData;
use tokio_util::sync::CancellationToken;

/// The default of [`RabbitmqSource::prefetch_count`]: twice the default `batch_size`.
///
/// ```
/// assert_eq!(etl::source::rabbitmq::DEFAULT_PREFETCH_COUNT as usize, 2 * etl::batch::DEFAULT_BATCH_SIZE);
/// ```
pub const DEFAULT_PREFETCH_COUNT: u16 = 2000;

/// The default of [`RabbitmqSource::max_redeliveries`].
///
/// ```
/// assert_eq!(etl::source::rabbitmq::DEFAULT_MAX_REDELIVERIES, 5);
/// ```
pub const DEFAULT_MAX_REDELIVERIES: u32 = 5;

/// The default of [`RabbitmqSource::declare`]: check that the queue exists, declare nothing.
///
/// ```
/// assert!(!etl::source::rabbitmq::DEFAULT_DECLARE);
/// ```
pub const DEFAULT_DECLARE: bool = false;

/// A RabbitMQ source. See [`rabbitmq()`] and the [module docs](self).
#[derive(Debug)]
pub struct RabbitmqSource<T> {
    url: String,
    queue: String,
    declare: bool,
    queue_type: Option<String>,
    exchange: Option<String>,
    exchange_type: Option<String>,
    routing_key: Option<String>,
    prefetch_count: u16,
    max_redeliveries: Option<u32>,
    drain_after: Option<CancellationToken>,
    batching: BatchConfig,
    _record: PhantomData<fn() -> T>,
}

/// Consume the queue `queue` (`${VAR}` resolved at start-up, when the source also checks that
/// the queue exists, or declares it).
///
/// ```
/// use etl::prelude::*;
/// let src = etl::source::rabbitmq::<Json>("orders").prefetch_count(200).batch_size(100);
/// assert_eq!(src.describe(), "rabbitmq orders");
/// ```
pub fn rabbitmq<T>(queue: impl Into<String>) -> RabbitmqSource<T> {
    RabbitmqSource {
        url: DEFAULT_URL.to_owned(),
        queue: queue.into(),
        declare: DEFAULT_DECLARE,
        queue_type: None,
        exchange: None,
        exchange_type: None,
        routing_key: None,
        prefetch_count: DEFAULT_PREFETCH_COUNT,
        max_redeliveries: Some(DEFAULT_MAX_REDELIVERIES),
        drain_after: None,
        batching: BatchConfig::default(),
        _record: PhantomData,
    }
}

impl<T> RabbitmqSource<T> {
    /// The broker's URL, `amqp://user:password@host:port/vhost` (`${VAR}` resolved at start-up;
    /// the password is never logged). Default [`DEFAULT_URL`]: `RABBITMQ_URL`, else
    /// `amqp://guest:guest@127.0.0.1:5672/%2f`.
    ///
    /// ```
    /// let src = etl::source::rabbitmq::<etl::Json>("orders").url("${RABBITMQ_URL}");
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Declare the queue (durable) and, when [`exchange`](Self::exchange) is set, the
    /// exchange (durable, of [`exchange_type`](Self::exchange_type)) and the queue's binding
    /// to it with [`routing_key`](Self::routing_key). Default [`DEFAULT_DECLARE`] (false): the
    /// queue (and the exchange, if named) must exist; a missing one is a start-up error.
    ///
    /// ```
    /// let src = etl::source::rabbitmq::<etl::Json>("orders").declare(true).exchange("events").routing_key("order.*");
    /// ```
    pub fn declare(mut self, yes: bool) -> Self {
        self.declare = yes;
        self
    }

    /// The type of the queue [`declare`](Self::declare) creates: `classic`, `quorum`
    /// (`x-queue-type`). Default: the broker's (classic).
    ///
    /// ```
    /// let src = etl::source::rabbitmq::<etl::Json>("orders").declare(true).queue_type("quorum");
    /// ```
    pub fn queue_type(mut self, kind: impl Into<String>) -> Self {
        self.queue_type = Some(kind.into());
        self
    }

    /// The exchange the queue is bound to (`${VAR}` resolved at start-up): declared and bound
    /// with [`declare`](Self::declare), else only checked. Default: none.
    ///
    /// ```
    /// let src = etl::source::rabbitmq::<etl::Json>("orders").exchange("events");
    /// ```
    pub fn exchange(mut self, exchange: impl Into<String>) -> Self {
        self.exchange = Some(exchange.into());
        self
    }

    /// The type of the exchange [`declare`](Self::declare) creates: `direct`, `fanout`,
    /// `topic`, `headers`. Default [`DEFAULT_EXCHANGE_TYPE`] (`direct`).
    ///
    /// ```
    /// let src = etl::source::rabbitmq::<etl::Json>("orders").declare(true).exchange("events").exchange_type("topic");
    /// ```
    pub fn exchange_type(mut self, kind: impl Into<String>) -> Self {
        self.exchange_type = Some(kind.into());
        self
    }

    /// The binding key of the queue to the [`exchange`](Self::exchange) (`${VAR}` resolved at
    /// start-up). Default: empty.
    ///
    /// ```
    /// let src = etl::source::rabbitmq::<etl::Json>("orders").declare(true).exchange("events").routing_key("order.created");
    /// ```
    pub fn routing_key(mut self, key: impl Into<String>) -> Self {
        self.routing_key = Some(key.into());
        self
    }

    /// Unacknowledged deliveries the broker hands this consumer at most (`basic.qos`); raised
    /// to `batch_size` with a warning when lower. Default [`DEFAULT_PREFETCH_COUNT`] (2000).
    ///
    /// ```
    /// let src = etl::source::rabbitmq::<etl::Json>("orders").prefetch_count(500);
    /// ```
    pub fn prefetch_count(mut self, count: u16) -> Self {
        self.prefetch_count = count;
        self
    }

    /// Dead-letter (then acknowledge) a message redelivered more than `n` times instead of
    /// decoding it again. Default [`DEFAULT_MAX_REDELIVERIES`] (5).
    ///
    /// ```
    /// let src = etl::source::rabbitmq::<etl::Json>("orders").max_redeliveries(3);
    /// ```
    pub fn max_redeliveries(mut self, n: u32) -> Self {
        self.max_redeliveries = Some(n);
        self
    }

    /// Drain, then stop: once `token` is cancelled, the source ends as soon as no delivery has
    /// arrived for a moment (300 ms) and the queue has no message ready, and the pipeline
    /// finishes the batches in hand. For a job that empties a queue after its producer
    /// finished. Messages of this run's own batches that fail are requeued for the next run.
    ///
    /// ```
    /// let producer_done = tokio_util::sync::CancellationToken::new();
    /// let src = etl::source::rabbitmq::<etl::Json>("orders").drain_after(producer_done.clone());
    /// ```
    pub fn drain_after(mut self, token: CancellationToken) -> Self {
        self.drain_after = Some(token);
        self
    }

    fn queue_arguments(&self) -> FieldTable {
        let mut arguments = FieldTable::default();
        if let Some(kind) = &self.queue_type {
            arguments.insert("x-queue-type".into(), AMQPValue::LongString(kind.as_str().into()));
        }
        arguments
    }
}

/// The prefetch to ask for: `prefetch`, raised to `batch_size` (with a warning) when lower;
/// 0 (no limit) when `batch_size` is more than AMQP's maximum.
pub(crate) fn effective_prefetch(prefetch: u16, batch_size: usize, queue: &str) -> u16 {
    if batch_size > usize::from(u16::MAX) {
        tracing::warn!(queue, batch_size, "batch_size is more than AMQP's largest prefetch (65535): consuming without a prefetch limit");
        return 0;
    }
    if usize::from(prefetch) < batch_size {
        tracing::warn!(
            queue,
            prefetch_count = prefetch,
            batch_size,
            "prefetch_count is below batch_size: a batch could never fill; raising prefetch_count to batch_size"
        );
        return batch_size as u16;
    }
    prefetch
}

impl<T> BatchOptions for RabbitmqSource<T> {
    fn batching(&mut self) -> &mut BatchConfig {
        &mut self.batching
    }
}

impl<T: Record> Source for RabbitmqSource<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("rabbitmq {}", crate::config::display(&self.queue))
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        stream::open(self, ctx).await
    }

    fn dead_letter_decoder(&self) -> Option<super::DeadLetterDecoder<T>> {
        Some(super::json_decoder::<T>())
    }
}
