//! The I/O of the SQS sink: `SendMessageBatch` requests, with the shared batch-call loop of
//! [`settle`](crate::aws::sqs::settle).

use super::encode::chunks;
use crate::aws::sqs::{entry_failures, settle, Queue, RequestFailed, MAX_BATCH_ENTRIES};
use crate::aws::{connector_error, error_code};
use crate::error::{ConnectorError, Retry};
use crate::retry::RetryPolicy;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use std::collections::VecDeque;

/// Error codes with which SQS refuses a whole batch request because of one entry's content.
const ENTRY_CONTENT_CODES: &[&str] = &[
    "InvalidParameterValue",
    "InvalidMessageContents",
    "BatchRequestTooLong",
    "AWS.SimpleQueueService.BatchRequestTooLong",
    "MessageTooLong",
];

/// One `SendMessageBatch` request.
async fn send(
    queue: &Queue,
    component: &str,
    entries: Vec<(String, (usize, String))>,
) -> Result<(Vec<String>, Vec<crate::aws::sqs::EntryFailure>), RequestFailed> {
    let mut request = queue.client.send_message_batch().queue_url(&queue.url);
    for (id, (_, body)) in entries {
        let entry = SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(body)
            .build()
            .map_err(|e| RequestFailed { error: ConnectorError::permanent(component.to_owned(), e), code: None })?;
        request = request.entries(entry);
    }
    match request.send().await {
        Ok(out) => {
            Ok((out.successful().iter().map(|s| s.id().to_owned()).collect(), entry_failures(out.failed(), "SQS refused the message")))
        }
        Err(e) => {
            let code = error_code(&e).map(str::to_owned);
            let error = connector_error(component.to_owned(), "SendMessageBatch", &e);
            Err(RequestFailed { error, code })
        }
    }
}

/// Send `bodies` (record index, JSON body) to the queue; returns the rejected records.
pub(super) async fn send_all(
    queue: &Queue,
    max_message_bytes: usize,
    component: &str,
    policy: &RetryPolicy,
    bodies: Vec<(usize, String)>,
) -> Result<Vec<(usize, String)>, ConnectorError> {
    let sizes: Vec<usize> = bodies.iter().map(|(_, b)| b.len()).collect();
    let mut work: VecDeque<Vec<(usize, String)>> = VecDeque::new();
    let mut bodies = bodies.into_iter();
    for range in chunks(&sizes, MAX_BATCH_ENTRIES, max_message_bytes) {
        work.push_back(bodies.by_ref().take(range.len()).collect());
    }
    let mut rejected = Vec::new();
    while let Some(request) = work.pop_front() {
        // A retry budget per request: a few throttled requests must not fail a large write
        // (whose accepted entries the pipeline would then send again).
        let settled = settle(request, policy.delays(), component, |entries| send(queue, component, entries)).await;
        rejected.extend(settled.refused.into_iter().map(|((index, _), reason)| (index, reason)));
        let Some(failure) = settled.failure else { continue };
        let mut pending = settled.unsettled;
        match failure.error.retry {
            Retry::Permanent if failure.code.as_deref().is_some_and(|c| ENTRY_CONTENT_CODES.contains(&c)) => {
                if pending.len() > 1 {
                    // Which entry? Send each on its own.
                    tracing::debug!(error = %failure.error, "batch refused for an entry's content; sending one by one");
                    for entry in pending.drain(..).rev() {
                        work.push_front(vec![entry]);
                    }
                } else if let Some((index, _)) = pending.first() {
                    rejected.push((*index, failure.error.to_string()));
                }
            }
            Retry::Permanent => return Err(failure.error),
            Retry::Retryable => {
                let message = format!("{} message(s) still not accepted after retries: {}", pending.len(), failure.error);
                return Err(ConnectorError::retryable(component.to_owned(), message));
            }
        }
    }
    Ok(rejected)
}
