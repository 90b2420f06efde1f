//! `sqs`: an Amazon SQS source with long polling, batch deletes and a visibility heartbeat.
//!
//! The source calls `ReceiveMessage` (up to [`SqsSource::max_messages_per_poll`] messages,
//! long polling for [`SqsSource::wait_time_seconds`]) and accumulates the messages of several
//! polls into batches of `batch_size` ([`BatchOptions`]); `batch_timeout` runs from the first
//! message of a batch, whatever the polls do.
//!
//! ```no_run
//! use etl::prelude::*;
//! # async fn demo() -> etl::Result<()> {
//! let out = etl::sink::collect::<Json>();
//! let source = etl::source::sqs::<Json>("${QUEUE_URL}")
//!     .endpoint_url("http://127.0.0.1:5000")
//!     .visibility_timeout(std::time::Duration::from_secs(60))
//!     .max_receives(5)
//!     .batch_size(100);
//! let report = Pipeline::from(source).to(out.sink()).run().await?;
//! # Ok(()) }
//! ```
//!
//! # Metadata and decoding
//!
//! Beside each record: [`Meta::position`](crate::record::Meta::position) is
//! [`Position::Id`](crate::record::Position::Id) with the SQS message id,
//! [`Meta::raw`](crate::record::Meta::raw) the body, and in [`Extra`](crate::record::Extra)
//! `delivery_count` (`ApproximateReceiveCount`), `timestamp` (`SentTimestamp`) and `event_type`
//! (the queue's name). The body is JSON decoded into `T`; a body that does not decode becomes a
//! [`FailureKind::Decode`](crate::batch::FailureKind::Decode) failure with the body's bytes: the
//! pipeline dead-letters it, and the message is then deleted.
//!
//! # Acknowledgement
//!
//! When a batch's final status is known (see [`Status`](crate::ack::Status)):
//! * delivered or rejected (its failed records are in the dead-letter queue): its messages are
//!   deleted with `DeleteMessageBatch`. Entries that fail are retried with backoff; what still
//!   fails is logged as an error, and SQS delivers those messages again when their visibility
//!   timeout expires (at-least-once);
//! * errored: `ChangeMessageVisibilityBatch` to 0, so that the messages are delivered again at
//!   once (to this consumer or another one).
//!
//! These calls run in tasks of their own (an acknowledgement can resolve after the stream has
//! ended), and the source reads its next batch only once the calls of the batches resolved so
//! far are done: after a crash, at most the batches in flight (`max_in_flight`) come back. **The stream waits for them**: once the source stops reading (shutdown,
//! `max_records`, `max_batches`), the stream's end waits until every batch it emitted has been
//! resolved and its delete or visibility call has finished, so that `Pipeline::run` returns
//! only after the queue has heard about every batch. If the run ends with an error instead, the
//! stream is dropped without waiting: calls in progress may be cut off when the process exits,
//! and the queue then redelivers those messages after their visibility timeout (nothing is lost;
//! some records may be delivered twice).
//!
//! # Heartbeat
//!
//! A background task extends the visibility of messages received and not yet resolved: once
//! half of the visibility timeout has passed since a message was received (or last extended),
//! its visibility is set to the full timeout again, so that a slow sink does not make the queue
//! hand the message to another consumer. The task stops when the stream ends or is dropped.
//!
//! # Poison messages
//!
//! With [`SqsSource::max_receives`], a message received more times than that (its
//! `ApproximateReceiveCount`) is not decoded again: it becomes a failure with its raw body
//! (kind `max_deliveries`, the receive count in `attempts`), is dead-lettered and then deleted. Without
//! it, use the queue's own redrive policy (a dead-letter queue on the SQS side).
//!
//! # Shutdown
//!
//! Cancellation interrupts a long poll at once: the batch in hand is flushed and the stream
//! ends (after the wait described above). Messages received but not yet put in a batch are made
//! visible again at once; messages the queue handed out in a poll that was cut off come back
//! after their visibility timeout.

mod decode;
mod stream;
#[cfg(test)]
mod tests;

use super::{BatchStream, Source, SourceContext};
use crate::aws::AwsOptions;
use crate::batch::{BatchConfig, BatchOptions};
use crate::record::Record;
use std::marker::PhantomData;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The default of [`SqsSource::wait_time_seconds`]: SQS's longest long poll.
///
/// ```
/// assert_eq!(etl::source::sqs::DEFAULT_WAIT_TIME_SECONDS, 20);
/// ```
pub const DEFAULT_WAIT_TIME_SECONDS: u32 = 20;

/// The default of [`SqsSource::max_messages_per_poll`]: SQS's maximum.
///
/// ```
/// assert_eq!(etl::source::sqs::DEFAULT_MAX_MESSAGES_PER_POLL, 10);
/// ```
pub const DEFAULT_MAX_MESSAGES_PER_POLL: u32 = 10;

/// The default of [`SqsSource::heartbeat`]: extend the visibility of messages in flight.
///
/// ```
/// assert!(etl::source::sqs::DEFAULT_HEARTBEAT);
/// ```
pub const DEFAULT_HEARTBEAT: bool = true;

/// An Amazon SQS source. See [`sqs()`] and the [module docs](self).
#[derive(Debug)]
pub struct SqsSource<T> {
    queue_url: String,
    aws: AwsOptions,
    wait_time_seconds: u32,
    visibility_timeout: Option<Duration>,
    max_receives: Option<u32>,
    max_messages_per_poll: u32,
    heartbeat: bool,
    drain_after: Option<CancellationToken>,
    batching: BatchConfig,
    _record: PhantomData<fn() -> T>,
}

/// Read the SQS queue at `queue_url` (`${VAR}` resolved at start-up, when the source also
/// checks that the queue exists).
///
/// ```
/// use etl::prelude::*;
/// let src = etl::source::sqs::<Json>("https://sqs.us-east-1.amazonaws.com/123456789012/orders")
///     .wait_time_seconds(20)
///     .visibility_timeout(std::time::Duration::from_secs(300))
///     .batch_size(1000);
/// assert_eq!(src.describe(), "sqs https://sqs.us-east-1.amazonaws.com/123456789012/orders");
/// ```
pub fn sqs<T>(queue_url: impl Into<String>) -> SqsSource<T> {
    SqsSource {
        queue_url: queue_url.into(),
        aws: AwsOptions::default(),
        wait_time_seconds: DEFAULT_WAIT_TIME_SECONDS,
        visibility_timeout: None,
        max_receives: None,
        max_messages_per_poll: DEFAULT_MAX_MESSAGES_PER_POLL,
        heartbeat: DEFAULT_HEARTBEAT,
        drain_after: None,
        batching: BatchConfig::default(),
        _record: PhantomData,
    }
}

impl<T> SqsSource<T> {
    /// Send requests to this endpoint instead of AWS's (`http://127.0.0.1:5000` for moto;
    /// `${VAR}` resolved at start-up). Default: AWS, or `AWS_ENDPOINT_URL` when set.
    ///
    /// ```
    /// let src = etl::source::sqs::<etl::Json>("${QUEUE_URL}").endpoint_url("${MOTO_URL}");
    /// ```
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.aws.endpoint_url = Some(url.into());
        self
    }

    /// The AWS region (`${VAR}` resolved at start-up). Default: the standard chain
    /// (`AWS_REGION`, the profile's region).
    ///
    /// ```
    /// let src = etl::source::sqs::<etl::Json>("${QUEUE_URL}").region("eu-west-1");
    /// ```
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.aws.region = Some(region.into());
        self
    }

    /// How long one `ReceiveMessage` waits for messages (long polling), 0 to 20 seconds.
    /// Default [`DEFAULT_WAIT_TIME_SECONDS`] (20); more is an error at start-up.
    ///
    /// ```
    /// let src = etl::source::sqs::<etl::Json>("${QUEUE_URL}").wait_time_seconds(5);
    /// ```
    pub fn wait_time_seconds(mut self, seconds: u32) -> Self {
        self.wait_time_seconds = seconds;
        self
    }

    /// How long a received message stays invisible to other consumers (whole seconds, rounded
    /// up; at most 12 hours). The heartbeat extends it while the message is in flight.
    /// Default: the queue's `VisibilityTimeout` attribute.
    ///
    /// ```
    /// let src = etl::source::sqs::<etl::Json>("${QUEUE_URL}").visibility_timeout(std::time::Duration::from_secs(60));
    /// ```
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = Some(timeout);
        self
    }

    /// Dead-letter (then delete) a message received more than `n` times instead of decoding it
    /// again. Default: no limit (the queue's redrive policy, if any, applies).
    ///
    /// ```
    /// let src = etl::source::sqs::<etl::Json>("${QUEUE_URL}").max_receives(5);
    /// ```
    pub fn max_receives(mut self, n: u32) -> Self {
        self.max_receives = Some(n);
        self
    }

    /// Messages asked for in one `ReceiveMessage`, 1 to 10 (the SQS maximum). Default
    /// [`DEFAULT_MAX_MESSAGES_PER_POLL`] (10).
    ///
    /// ```
    /// let src = etl::source::sqs::<etl::Json>("${QUEUE_URL}").max_messages_per_poll(5);
    /// ```
    pub fn max_messages_per_poll(mut self, n: u32) -> Self {
        self.max_messages_per_poll = n.clamp(1, 10);
        self
    }

    /// Extend the visibility of messages in flight past half their visibility timeout.
    /// Default [`DEFAULT_HEARTBEAT`] (true).
    ///
    /// ```
    /// let src = etl::source::sqs::<etl::Json>("${QUEUE_URL}").heartbeat(false);
    /// ```
    pub fn heartbeat(mut self, yes: bool) -> Self {
        self.heartbeat = yes;
        self
    }

    /// Drain, then stop: once `token` is cancelled, the source ends at the first poll that
    /// returns no message (polls then wait at most 1 s), and the pipeline finishes the batches
    /// in hand. For a job that empties a queue after its producer finished. Messages of this
    /// run's own batches are not waited for: one whose batch fails is received by the next run.
    ///
    /// ```
    /// let producer_done = tokio_util::sync::CancellationToken::new();
    /// let src = etl::source::sqs::<etl::Json>("${QUEUE_URL}").drain_after(producer_done.clone());
    /// ```
    pub fn drain_after(mut self, token: CancellationToken) -> Self {
        self.drain_after = Some(token);
        self
    }
}

impl<T> BatchOptions for SqsSource<T> {
    fn batching(&mut self) -> &mut BatchConfig {
        &mut self.batching
    }
}

impl<T: Record> Source for SqsSource<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("sqs {}", crate::config::display(&self.queue_url))
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        stream::open(self, ctx).await
    }

    fn dead_letter_decoder(&self) -> Option<super::DeadLetterDecoder<T>> {
        Some(super::json_decoder::<T>())
    }
}
