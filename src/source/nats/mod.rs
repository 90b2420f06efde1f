//! `nats`: a NATS JetStream source, a durable pull consumer with explicit acknowledgements.
//!
//! The source pulls messages from the durable consumer `durable` of the stream `stream`
//! (continuous pull requests of up to `batch_size` messages) and accumulates them into batches
//! of `batch_size` ([`BatchOptions`]); `batch_timeout` runs from the first message of a batch.
//! Several processes with the same `durable` share the messages (the server hands each one to
//! one of them).
//!
//! ```no_run
//! use etl::prelude::*;
//! # async fn demo() -> etl::Result<()> {
//! let out = etl::sink::collect::<Json>();
//! let source = etl::source::nats::<Json>("ORDERS", "etl-orders")
//!     .url("${NATS_URL}")
//!     .subject("orders.>")
//!     .create(true)
//!     .max_deliver(5)
//!     .ack_wait(std::time::Duration::from_secs(30))
//!     .batch_size(500);
//! let report = Pipeline::from(source).to(out.sink()).run().await?;
//! # Ok(()) }
//! ```
//!
//! # Metadata and decoding
//!
//! Beside each record: [`Meta::position`](crate::record::Meta::position) is
//! [`Position::Sequence`](crate::record::Position::Sequence) with the stream sequence,
//! [`Meta::raw`](crate::record::Meta::raw) the payload, and in [`Extra`](crate::record::Extra)
//! `event_type` (the message's subject), `headers` (sorted by name), `delivery_count` (the
//! consumer's delivery count, 1 the first time) and `timestamp` (when the stream stored it).
//! The payload is JSON decoded into `T`; a payload that does not decode becomes a
//! [`FailureKind::Decode`](crate::batch::FailureKind::Decode) failure with its bytes: the
//! pipeline dead-letters it, and the message is then acknowledged.
//!
//! # Acknowledgement
//!
//! When a batch's final status is known (see [`Status`](crate::ack::Status)):
//! * delivered or rejected (its failed records are in the dead-letter queue): every message is
//!   acknowledged (`+ACK`); the last one with a request whose answer confirms that the server
//!   processed the batch's acknowledgements (they reach the consumer in order);
//! * errored: every message is nak'ed **with a delay**, `nak_delay` doubled for each delivery
//!   after the first (at most 5 minutes), so a failing batch does not burn its attempts in
//!   milliseconds. A message on its last attempt (its delivery count has reached the
//!   consumer's `max_deliver`, after which the server would never deliver it again) is
//!   written to the run's dead-letter queue instead (kind `max_deliveries`, its bytes, subject,
//!   headers and sequence), and once that write is durable it is terminated (`+TERM`): never
//!   around the loop forever, never dropped without a dead letter. If the dead-letter queue
//!   cannot take it, it is nak'ed and an error is logged (the server keeps it in the stream).
//!
//! The source reads its next batch only once the acknowledgements of the batches resolved so
//! far have been sent and confirmed, so that after a crash at most the batches in flight
//! (`max_in_flight`) come back. Once the source stops reading (shutdown, `max_records`), the
//! stream's end waits until every batch it emitted has been resolved and acknowledged;
//! messages the client had prefetched and the pipeline never saw are nak'ed without delay.
//!
//! # Progress acknowledgements
//!
//! A background task sends `+WPI` for every message still in flight once half of `ack_wait`
//! has passed since it was delivered (or since its last progress ack), so that a slow batch is
//! not redelivered to another consumer meanwhile (the shared [`Leases`](crate::ack::Leases)
//! table).
//!
//! # Start-up
//!
//! With `create = false` (the default), a missing stream or consumer is a start-up error
//! naming it. With `create = true` the stream is created capturing `subject` (or the stream's
//! name when no subject is given) and the consumer with explicit acks, `ack_wait`,
//! `max_deliver` and `subject` as its filter. An existing consumer keeps its own settings:
//! its `ack_wait` and `max_deliver` are the ones the source uses (a difference is logged).
//!
//! # Server restarts
//!
//! async-nats reconnects on its own; the pull requests resume once the server is back, and
//! the consumer (stored by the server) redelivers what was not acknowledged.

mod decode;
mod stream;
#[cfg(test)]
mod tests;

pub use crate::nats::DEFAULT_URL;

use super::{BatchStream, Source, SourceContext};
use crate::batch::{BatchConfig, BatchOptions};
use crate::record::Record;
use std::marker::PhantomData;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The default of [`NatsSource::create`]: a missing stream or consumer is an error.
///
/// ```
/// assert!(!etl::source::nats::DEFAULT_CREATE);
/// ```
pub const DEFAULT_CREATE: bool = false;

/// The default of [`NatsSource::max_deliver`]: deliveries of a message before it is
/// dead-lettered.
///
/// ```
/// assert_eq!(etl::source::nats::DEFAULT_MAX_DELIVER, 5);
/// ```
pub const DEFAULT_MAX_DELIVER: u32 = 5;

/// The default of [`NatsSource::ack_wait`]: JetStream's own.
///
/// ```
/// assert_eq!(etl::source::nats::DEFAULT_ACK_WAIT, std::time::Duration::from_secs(30));
/// ```
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// The default of [`NatsSource::nak_delay`]: the delay of the first nak (doubled for each
/// later delivery).
///
/// ```
/// assert_eq!(etl::source::nats::DEFAULT_NAK_DELAY, std::time::Duration::from_secs(1));
/// ```
pub const DEFAULT_NAK_DELAY: Duration = Duration::from_secs(1);

/// The default of [`NatsSource::progress`]: progress acks for messages in flight.
///
/// ```
/// assert!(etl::source::nats::DEFAULT_PROGRESS);
/// ```
pub const DEFAULT_PROGRESS: bool = true;

/// A NATS JetStream source. See [`nats()`] and the [module docs](self).
#[derive(Debug)]
pub struct NatsSource<T> {
    url: String,
    stream: String,
    durable: String,
    subject: Option<String>,
    create: bool,
    max_deliver: u32,
    ack_wait: Duration,
    nak_delay: Duration,
    progress: bool,
    drain_after: Option<CancellationToken>,
    batching: BatchConfig,
    _record: PhantomData<fn() -> T>,
}

/// Read the stream `stream` through its durable pull consumer `durable` (both `${VAR}`
/// resolved at start-up, when the source also checks that they exist).
///
/// ```
/// use etl::prelude::*;
/// let src = etl::source::nats::<Json>("ORDERS", "etl-orders").subject("orders.created").batch_size(100);
/// assert_eq!(src.describe(), "nats ORDERS/etl-orders");
/// ```
pub fn nats<T>(stream: impl Into<String>, durable: impl Into<String>) -> NatsSource<T> {
    NatsSource {
        url: DEFAULT_URL.to_owned(),
        stream: stream.into(),
        durable: durable.into(),
        subject: None,
        create: DEFAULT_CREATE,
        max_deliver: DEFAULT_MAX_DELIVER,
        ack_wait: DEFAULT_ACK_WAIT,
        nak_delay: DEFAULT_NAK_DELAY,
        progress: DEFAULT_PROGRESS,
        drain_after: None,
        batching: BatchConfig::default(),
        _record: PhantomData,
    }
}

impl<T> NatsSource<T> {
    /// The server's URL (`nats://host:4222`, several comma-separated; `${VAR}` resolved at
    /// start-up). Default [`DEFAULT_URL`]: `NATS_URL`, else `nats://127.0.0.1:4222`.
    ///
    /// ```
    /// let src = etl::source::nats::<etl::Json>("ORDERS", "etl").url("nats://nats-1:4222");
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// The subject the consumer reads (its filter; wildcards allowed), and what a stream made
    /// by `create = true` captures. Default: every subject of the stream (the stream's name
    /// when it is created).
    ///
    /// ```
    /// let src = etl::source::nats::<etl::Json>("ORDERS", "etl").subject("orders.*");
    /// ```
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Create the stream and the consumer when they do not exist. Default
    /// [`DEFAULT_CREATE`] (false: a missing one is a start-up error naming it).
    ///
    /// ```
    /// let src = etl::source::nats::<etl::Json>("ORDERS", "etl").create(true);
    /// ```
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// Deliveries of a message before it is dead-lettered and terminated (at least 1; the
    /// consumer's setting when it is created). Default [`DEFAULT_MAX_DELIVER`] (5).
    ///
    /// ```
    /// let src = etl::source::nats::<etl::Json>("ORDERS", "etl").max_deliver(3);
    /// ```
    pub fn max_deliver(mut self, n: u32) -> Self {
        self.max_deliver = n.max(1);
        self
    }

    /// How long the server waits for an acknowledgement before it redelivers (the consumer's
    /// setting when it is created); progress acks extend it while a batch is in flight.
    /// Default [`DEFAULT_ACK_WAIT`] (30 s).
    ///
    /// ```
    /// let src = etl::source::nats::<etl::Json>("ORDERS", "etl").ack_wait(std::time::Duration::from_secs(60));
    /// ```
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// The delay of the nak after a message's first failed delivery, doubled for each later
    /// one (at most 5 minutes). Default [`DEFAULT_NAK_DELAY`] (1 s).
    ///
    /// ```
    /// let src = etl::source::nats::<etl::Json>("ORDERS", "etl").nak_delay(std::time::Duration::from_millis(200));
    /// ```
    pub fn nak_delay(mut self, delay: Duration) -> Self {
        self.nak_delay = delay;
        self
    }

    /// Send progress acks (`+WPI`) for messages in flight past half of `ack_wait`. Default
    /// [`DEFAULT_PROGRESS`] (true).
    ///
    /// ```
    /// let src = etl::source::nats::<etl::Json>("ORDERS", "etl").progress(false);
    /// ```
    pub fn progress(mut self, yes: bool) -> Self {
        self.progress = yes;
        self
    }

    /// Drain, then stop: once `token` is cancelled, the source ends when no message arrived
    /// for a second and the consumer holds nothing but what this source is processing (no
    /// message left to deliver; every delivered one acknowledged, or in this source's hands:
    /// a message nak'ed with a delay, or held by a consumer that died, is waited for). For a
    /// job that empties a stream after its producer finished.
    ///
    /// ```
    /// let producer_done = tokio_util::sync::CancellationToken::new();
    /// let src = etl::source::nats::<etl::Json>("ORDERS", "etl").drain_after(producer_done.clone());
    /// ```
    pub fn drain_after(mut self, token: CancellationToken) -> Self {
        self.drain_after = Some(token);
        self
    }
}

impl<T> BatchOptions for NatsSource<T> {
    fn batching(&mut self) -> &mut BatchConfig {
        &mut self.batching
    }
}

impl<T: Record> Source for NatsSource<T> {
    type Item = T;

    fn describe(&self) -> String {
        crate::nats::origin(&crate::config::display(&self.stream), &crate::config::display(&self.durable))
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        stream::open(self, ctx).await
    }

    fn dead_letter_decoder(&self) -> Option<super::DeadLetterDecoder<T>> {
        Some(super::json_decoder::<T>())
    }

    /// Connects and looks the stream and the consumer up (a missing one is an error unless
    /// `create = true`), creating nothing and consuming nothing.
    async fn check(self, _ctx: SourceContext) -> crate::Result<()> {
        stream::check(self).await
    }
}
