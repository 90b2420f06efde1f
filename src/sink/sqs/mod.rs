//! `sqs`: send each record as a JSON message to an Amazon SQS queue.
//!
//! Records are encoded as JSON message bodies and sent with `SendMessageBatch`, in requests of
//! at most 10 entries whose bodies add up to at most the queue's maximum message size (its
//! `MaximumMessageSize` attribute, read at open: 256 KiB by default on older queues, 1 MiB on
//! newer ones; [`SqsSink::max_message_bytes`] overrides it).
//!
//! # What happens to each record
//!
//! * A record that cannot be encoded, or whose body is larger than the maximum message size,
//!   is rejected before sending: it is dead-lettered and the others are sent.
//! * An entry the queue refuses for a reason of its own (`SenderFault` = true in the response's
//!   `Failed` list: invalid characters, too large) is rejected the same way.
//! * A request the queue refuses as a whole because of one entry's content
//!   (`InvalidParameterValue`, `InvalidMessageContents`, `BatchRequestTooLong`) is sent again
//!   one entry per request, so that only the offending entries are rejected.
//! * Entries that failed on the queue's side (`SenderFault` = false: throttling, internal
//!   errors), and requests that failed in transit or with a 5xx, are sent again with
//!   exponential backoff and jitter ([`SqsSink::retry`]).
//!
//! `write` returns `Ok` only once every entry was accepted by the queue or rejected. When the
//! retries run out it returns a retryable error and the pipeline retries the whole batch: the
//! entries that had been accepted are then sent a second time (at-least-once delivery;
//! consumers that cannot tolerate duplicates deduplicate on content).
//!
//! FIFO queues (`.fifo`) are not supported yet: the sink sets no `MessageGroupId`, and refuses
//! such a queue URL when it opens.
//!
//! ```no_run
//! use etl::prelude::*;
//! # async fn demo() -> etl::Result<()> {
//! let sink = etl::sink::sqs("${QUEUE_URL}").endpoint_url("http://127.0.0.1:5000");
//! Pipeline::from(etl::source::iter(vec![serde_json::json!({"id": 1})])).to(sink).run().await?;
//! # Ok(()) }
//! ```

mod encode;
#[cfg(test)]
mod tests;
mod write;

use super::{Sink, SinkContext, Written};
use crate::aws::sqs::{open_queue, Queue};
use crate::aws::AwsOptions;
use crate::error::ConnectorError;
use crate::resources::Resources;
use crate::retry::RetryPolicy;
use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;
use std::time::Duration;

/// The maximum message size assumed when the queue does not say (the historical SQS limit).
///
/// ```
/// assert_eq!(etl::sink::sqs::DEFAULT_MAX_MESSAGE_BYTES, 256 * 1024);
/// ```
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The default [`SqsSink::retry`] of entries that failed on the queue's side: 5 retries from
/// 100 ms, doubling, at most 5 s apart, with jitter.
///
/// ```
/// assert_eq!(etl::sink::sqs::default_retry().max_retries, 5);
/// ```
pub fn default_retry() -> RetryPolicy {
    RetryPolicy::default().initial_delay(Duration::from_millis(100)).max_delay(Duration::from_secs(5))
}

/// Sends records as JSON messages to an SQS queue. See [`sqs()`] and the [module docs](self).
#[derive(Debug)]
pub struct SqsSink {
    queue_url: String,
    aws: AwsOptions,
    max_message_bytes: Option<usize>,
    retry: RetryPolicy,
    open: Option<Open>,
}

#[derive(Debug)]
struct Open {
    queue: Queue,
    max_message_bytes: usize,
}

/// Send to the SQS queue at `queue_url` (`${VAR}` resolved at open, when the sink also checks
/// that the queue exists).
///
/// ```
/// use etl::Sink;
/// let sink = etl::sink::sqs("https://sqs.us-east-1.amazonaws.com/123456789012/orders").region("us-east-1");
/// assert_eq!(Sink::<etl::Json>::describe(&sink), "sqs sink https://sqs.us-east-1.amazonaws.com/123456789012/orders");
/// ```
pub fn sqs(queue_url: impl Into<String>) -> SqsSink {
    SqsSink { queue_url: queue_url.into(), aws: AwsOptions::default(), max_message_bytes: None, retry: default_retry(), open: None }
}

impl SqsSink {
    /// Send requests to this endpoint instead of AWS's (`http://127.0.0.1:5000` for moto;
    /// `${VAR}` resolved at open). Default: AWS, or `AWS_ENDPOINT_URL` when set.
    ///
    /// ```
    /// let sink = etl::sink::sqs("${QUEUE_URL}").endpoint_url("${MOTO_URL}");
    /// ```
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.aws.endpoint_url = Some(url.into());
        self
    }

    /// The AWS region (`${VAR}` resolved at open). Default: the standard chain (`AWS_REGION`,
    /// the profile's region).
    ///
    /// ```
    /// let sink = etl::sink::sqs("${QUEUE_URL}").region("eu-west-1");
    /// ```
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.aws.region = Some(region.into());
        self
    }

    /// The largest message body, in bytes, and the largest sum of bodies in one request.
    /// Default: the queue's `MaximumMessageSize` attribute.
    ///
    /// ```
    /// let sink = etl::sink::sqs("${QUEUE_URL}").max_message_bytes(256 * 1024);
    /// ```
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = Some(bytes.max(1));
        self
    }

    /// How entries that failed on the queue's side are retried inside one write. Default: 5
    /// retries from 100 ms, doubling, at most 5 s apart, with jitter.
    ///
    /// ```
    /// let sink = etl::sink::sqs("${QUEUE_URL}").retry(etl::pipeline::RetryPolicy::default().max_retries(3));
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    fn component(&self) -> String {
        format!("sqs sink {}", crate::config::display(&self.queue_url))
    }

    async fn ensure_open(&mut self, resources: &Resources) -> Result<&Open, ConnectorError> {
        if self.open.is_none() {
            let component = self.component();
            if crate::config::interpolate(&self.queue_url).is_ok_and(|url| url.ends_with(".fifo")) {
                // Without a `MessageGroupId` the queue would refuse every entry.
                return Err(ConnectorError::permanent(component, "FIFO queues (`.fifo`) are not supported yet by the sqs sink"));
            }
            let queue = open_queue(&self.aws, &self.queue_url, &[QueueAttributeName::MaximumMessageSize], &component, resources).await?;
            let from_queue = queue.attributes.get(&QueueAttributeName::MaximumMessageSize).and_then(|v| v.parse::<usize>().ok());
            let max_message_bytes = self.max_message_bytes.or(from_queue).unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
            tracing::debug!(queue = %self.queue_url, max_message_bytes, "sqs sink opened");
            self.open = Some(Open { queue, max_message_bytes });
        }
        match &self.open {
            Some(open) => Ok(open),
            None => Err(ConnectorError::permanent(self.component(), "not open (bug)")),
        }
    }
}

impl<T: Serialize + Sync> Sink<T> for SqsSink {
    fn describe(&self) -> String {
        self.component()
    }

    async fn open(&mut self, ctx: SinkContext) -> Result<(), ConnectorError> {
        self.ensure_open(&ctx.resources).await.map(|_| ())
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        let component = self.component();
        let policy = self.retry.clone();
        // Opened by the pipeline; a sink used on its own opens with resources of its own.
        let open = self.ensure_open(&Resources::default()).await?;
        let (bodies, mut rejected) = encode::bodies(records, open.max_message_bytes);
        if !bodies.is_empty() {
            rejected.extend(write::send_all(&open.queue, open.max_message_bytes, &component, &policy, bodies).await?);
            rejected.sort_by_key(|(i, _)| *i);
        }
        Ok(Written::rejecting(rejected))
    }
}
