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

use super::{Sink, Written};
use crate::aws::{self, AwsOptions};
use crate::config::interpolate;
use crate::error::{ConnectorError, Retry};
use crate::retry::RetryPolicy;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use serde::Serialize;
use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;

/// Most entries `SendMessageBatch` takes in one request.
pub(crate) const MAX_BATCH_ENTRIES: usize = 10;
/// The maximum message size assumed when the queue does not say (the historical SQS limit).
const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Error codes with which SQS refuses a whole batch request because of one entry's content.
const ENTRY_CONTENT_CODES: &[&str] = &[
    "InvalidParameterValue",
    "InvalidMessageContents",
    "BatchRequestTooLong",
    "AWS.SimpleQueueService.BatchRequestTooLong",
    "MessageTooLong",
];

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
    client: aws_sdk_sqs::Client,
    /// The resolved URL (requests only: it may hold a resolved variable).
    url: String,
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
    SqsSink {
        queue_url: queue_url.into(),
        aws: AwsOptions::default(),
        max_message_bytes: None,
        retry: RetryPolicy::default().initial_delay(Duration::from_millis(100)).max_delay(Duration::from_secs(5)),
        open: None,
    }
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
        format!("sqs sink {}", self.queue_url)
    }

    async fn ensure_open(&mut self) -> Result<&Open, ConnectorError> {
        if self.open.is_none() {
            let component = self.component();
            let url = interpolate(&self.queue_url).map_err(|e| ConnectorError::permanent(component.clone(), e))?;
            if url.ends_with(".fifo") {
                // Without a `MessageGroupId` the queue would refuse every entry.
                return Err(ConnectorError::permanent(component, "FIFO queues (`.fifo`) are not supported yet by the sqs sink"));
            }
            let loaded = aws::load(&self.aws).await.map_err(|e| ConnectorError::permanent(component.clone(), e))?;
            let client = aws_sdk_sqs::Client::new(&loaded.config);
            let attributes = client
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::MaximumMessageSize)
                .send()
                .await
                .map_err(|e| aws::connector_error(component.clone(), "GetQueueAttributes (does the queue exist?)", &e))?;
            let from_queue =
                attributes.attributes().and_then(|a| a.get(&QueueAttributeName::MaximumMessageSize)).and_then(|v| v.parse::<usize>().ok());
            let max_message_bytes = self.max_message_bytes.or(from_queue).unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
            tracing::debug!(queue = %self.queue_url, max_message_bytes, "sqs sink opened");
            self.open = Some(Open { client, url, max_message_bytes });
        }
        match &self.open {
            Some(open) => Ok(open),
            None => Err(ConnectorError::permanent(self.component(), "not open (bug)")),
        }
    }
}

/// Split entries of the given body sizes, in order, into requests of at most `max_entries`
/// entries whose sizes add up to at most `max_bytes` (an entry larger than `max_bytes` alone
/// goes in a request of its own).
pub(crate) fn chunks(sizes: &[usize], max_entries: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let count = i - start;
        if count > 0 && (count >= max_entries || bytes + size > max_bytes) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// One entry of a batch request that failed, as the `Failed` list of a response gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryFailure {
    /// The entry's id in the request.
    pub id: String,
    /// The caller's fault: retrying the same entry cannot help.
    pub sender_fault: bool,
    /// The error code and message.
    pub reason: String,
}

/// What to do after a batch request answered: the entries (by position in `pending`) to send
/// again, and those refused for good with the reason. An entry neither in `successful` nor in
/// `failed` is sent again: nothing says it was accepted.
pub(crate) fn triage(pending: &[String], successful: &[&str], failed: &[EntryFailure]) -> (Vec<usize>, Vec<(usize, String)>) {
    let mut again = Vec::new();
    let mut refused = Vec::new();
    for (position, id) in pending.iter().enumerate() {
        if let Some(f) = failed.iter().find(|f| &f.id == id) {
            if f.sender_fault {
                refused.push((position, f.reason.clone()));
            } else {
                again.push(position);
            }
        } else if !successful.contains(&id.as_str()) {
            again.push(position);
        }
    }
    (again, refused)
}

/// Send `bodies` (record index, JSON body) to the queue; returns the rejected records.
async fn send_all(
    open: &Open,
    component: &str,
    policy: &RetryPolicy,
    bodies: Vec<(usize, String)>,
) -> Result<Vec<(usize, String)>, ConnectorError> {
    let sizes: Vec<usize> = bodies.iter().map(|(_, b)| b.len()).collect();
    let mut work: VecDeque<Vec<(usize, String)>> = VecDeque::new();
    let mut bodies = bodies.into_iter();
    for range in chunks(&sizes, MAX_BATCH_ENTRIES, open.max_message_bytes) {
        work.push_back(bodies.by_ref().take(range.len()).collect());
    }
    let mut rejected = Vec::new();
    while let Some(mut pending) = work.pop_front() {
        // A retry budget per request: a few throttled requests must not fail a large write
        // (whose accepted entries the pipeline would then send again).
        let mut delays = policy.delays();
        loop {
            let ids: Vec<String> = pending.iter().map(|(i, _)| i.to_string()).collect();
            let mut request = open.client.send_message_batch().queue_url(&open.url);
            for ((_, body), id) in pending.iter().zip(&ids) {
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(id)
                    .message_body(body)
                    .build()
                    .map_err(|e| ConnectorError::permanent(component.to_owned(), e))?;
                request = request.entries(entry);
            }
            let last_error = match request.send().await {
                Ok(out) => {
                    let successful: Vec<&str> = out.successful().iter().map(|s| s.id()).collect();
                    let failed: Vec<EntryFailure> = out
                        .failed()
                        .iter()
                        .map(|f| EntryFailure {
                            id: f.id().to_owned(),
                            sender_fault: f.sender_fault(),
                            reason: format!("SQS refused the message: {}: {}", f.code(), f.message().unwrap_or("")),
                        })
                        .collect();
                    let (again, refused) = triage(&ids, &successful, &failed);
                    for (position, reason) in refused {
                        rejected.push((pending[position].0, reason));
                    }
                    if again.is_empty() {
                        break;
                    }
                    let first = failed.iter().find(|f| !f.sender_fault).map(|f| f.reason.clone());
                    pending = again.into_iter().map(|p| std::mem::take(&mut pending[p])).collect();
                    first.unwrap_or_else(|| "entries missing from the response".into())
                }
                Err(e) => {
                    let code = aws::error_code(&e).unwrap_or("");
                    match aws::classify(&e) {
                        Retry::Permanent if ENTRY_CONTENT_CODES.contains(&code) => {
                            let error = aws::connector_error(component.to_owned(), "SendMessageBatch", &e);
                            if pending.len() > 1 {
                                // Which entry? Send each on its own.
                                tracing::debug!(error = %error, "batch refused for an entry's content; sending one by one");
                                for entry in pending.drain(..).rev() {
                                    work.push_front(vec![entry]);
                                }
                            } else if let Some((index, _)) = pending.first() {
                                rejected.push((*index, error.to_string()));
                            }
                            break;
                        }
                        Retry::Permanent => return Err(aws::connector_error(component.to_owned(), "SendMessageBatch", &e)),
                        Retry::Retryable => aws::connector_error(component.to_owned(), "SendMessageBatch", &e).to_string(),
                    }
                }
            };
            match delays.next() {
                Some(delay) => {
                    tracing::warn!(queue = component, error = %last_error, remaining = pending.len(), ?delay, "sqs send incomplete, retrying");
                    tokio::time::sleep(delay).await;
                }
                None => {
                    let message = format!("{} message(s) still not accepted after retries: {last_error}", pending.len());
                    return Err(ConnectorError::retryable(component.to_owned(), message));
                }
            }
        }
    }
    Ok(rejected)
}

impl<T: Serialize + Sync> Sink<T> for SqsSink {
    fn describe(&self) -> String {
        self.component()
    }

    async fn open(&mut self, _ctx: super::SinkContext) -> Result<(), ConnectorError> {
        self.ensure_open().await.map(|_| ())
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        let component = self.component();
        let policy = self.retry.clone();
        let open = self.ensure_open().await?;
        let max = open.max_message_bytes;
        let mut rejected = Vec::new();
        let mut bodies = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            match serde_json::to_string(record) {
                Ok(body) if body.len() > max => {
                    rejected.push((i, format!("message of {} bytes exceeds the queue's maximum message size of {max} bytes", body.len())))
                }
                Ok(body) => bodies.push((i, body)),
                Err(e) => rejected.push((i, format!("cannot encode as JSON: {e}"))),
            }
        }
        if !bodies.is_empty() {
            rejected.extend(send_all(open, &component, &policy, bodies).await?);
            rejected.sort_by_key(|(i, _)| *i);
        }
        Ok(Written { rejected })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test]
    async fn a_fifo_queue_is_refused_at_open() {
        let mut sink = sqs("http://127.0.0.1:9/123456789012/orders.fifo");
        let e = Sink::<serde_json::Value>::open(&mut sink, crate::sink::SinkContext::default()).await.expect_err("refused");
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("FIFO"), "{e}");
    }

    #[test]
    fn chunks_respect_entries_and_bytes() {
        assert_eq!(chunks(&[1; 25], 10, 1000), vec![0..10, 10..20, 20..25]);
        assert_eq!(chunks(&[400, 400, 400], 10, 1000), vec![0..2, 2..3]);
        assert_eq!(chunks(&[2000, 1, 1], 10, 1000), vec![0..1, 1..3]);
        assert!(chunks(&[], 10, 1000).is_empty());
    }

    proptest! {
        #[test]
        fn chunks_cover_everything_in_order(sizes in prop::collection::vec(1usize..500, 0..60), max in 1usize..1500) {
            let ranges = chunks(&sizes, 10, max);
            let mut next = 0;
            for r in &ranges {
                prop_assert_eq!(r.start, next);
                prop_assert!(!r.is_empty() && r.len() <= 10);
                let bytes: usize = sizes[r.clone()].iter().sum();
                prop_assert!(r.len() == 1 || bytes <= max);
                next = r.end;
            }
            prop_assert_eq!(next, sizes.len());
        }
    }

    #[test]
    fn triage_retries_service_faults_and_refuses_sender_faults() {
        let pending: Vec<String> = ["0", "1", "2", "3"].map(String::from).to_vec();
        let failed = vec![
            EntryFailure { id: "1".into(), sender_fault: true, reason: "too big".into() },
            EntryFailure { id: "2".into(), sender_fault: false, reason: "internal".into() },
        ];
        // "3" is in neither list: not known to be accepted, so sent again.
        let (again, refused) = triage(&pending, &["0"], &failed);
        assert_eq!(again, vec![2, 3]);
        assert_eq!(refused, vec![(1, "too big".to_string())]);
    }
}
