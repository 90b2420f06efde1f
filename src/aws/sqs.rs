//! What the SQS source and sink share: opening a queue (resolve the URL, load the SDK
//! configuration, check that the queue exists and read its attributes) and running a batch
//! call (`SendMessageBatch`, `DeleteMessageBatch`, `ChangeMessageVisibilityBatch`) whose
//! entries can fail one by one: triage each answer, send again what failed on the queue's
//! side, keep what the queue refused for good.

use super::AwsOptions;
use crate::config::interpolate;
use crate::error::ConnectorError;
use crate::resources::Resources;
use aws_sdk_sqs::types::{BatchResultErrorEntry, QueueAttributeName};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

/// Most entries an SQS batch request takes.
pub(crate) const MAX_BATCH_ENTRIES: usize = 10;

/// An opened queue.
#[derive(Debug, Clone)]
pub(crate) struct Queue {
    pub client: aws_sdk_sqs::Client,
    /// The resolved URL (requests only: it may hold a resolved variable).
    pub url: String,
    /// The queue's attributes asked for at open.
    pub attributes: HashMap<QueueAttributeName, String>,
}

/// Resolve `queue_url`, load the SDK configuration (shared by the run's connectors), and read
/// the queue's `attributes`, which also checks that the queue exists and that the credentials
/// may use it, before anything is consumed or sent. Errors are `component`'s.
pub(crate) async fn open_queue(
    options: &AwsOptions,
    queue_url: &str,
    attributes: &[QueueAttributeName],
    component: &str,
    resources: &Resources,
) -> Result<Queue, ConnectorError> {
    let permanent = |e: crate::config::ConfigError| ConnectorError::permanent(component.to_owned(), e);
    let url = interpolate(queue_url).map_err(permanent)?;
    let loaded = super::load(options, resources).await.map_err(permanent)?;
    let client = aws_sdk_sqs::Client::new(&loaded.config);
    let mut request = client.get_queue_attributes().queue_url(&url);
    for name in attributes {
        request = request.attribute_names(name.clone());
    }
    let answer =
        request.send().await.map_err(|e| super::connector_error(component.to_owned(), "GetQueueAttributes (does the queue exist?)", &e))?;
    let attributes = answer.attributes().cloned().unwrap_or_default();
    Ok(Queue { client, url, attributes })
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

/// The `Failed` list of a batch response, each reason prefixed with `what` (`SQS refused the
/// message`).
pub(crate) fn entry_failures(failed: &[BatchResultErrorEntry], what: &str) -> Vec<EntryFailure> {
    failed
        .iter()
        .map(|f| EntryFailure {
            id: f.id().to_owned(),
            sender_fault: f.sender_fault(),
            reason: format!("{what}: {}: {}", f.code(), f.message().unwrap_or("")),
        })
        .collect()
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

/// The answer to one batch request: the ids of the entries it accepted and those it failed.
pub(crate) type Answer = (Vec<String>, Vec<EntryFailure>);

/// A whole request that failed, with the service's error code if it gave one.
#[derive(Debug)]
pub(crate) struct RequestFailed {
    pub error: ConnectorError,
    pub code: Option<String>,
}

/// How a batch call over some entries ended.
#[derive(Debug)]
pub(crate) struct Settled<E> {
    /// Entries the queue refused for good, with the reason.
    pub refused: Vec<(E, String)>,
    /// Entries neither accepted nor refused when the call gave up (retries ran out, or a
    /// whole request failed permanently).
    pub unsettled: Vec<E>,
    /// Why the call gave up, if it did.
    pub failure: Option<RequestFailed>,
}

/// Send `entries` (at most [`MAX_BATCH_ENTRIES`]) with `call`, whose entry ids are their
/// positions (`"0"`, `"1"`, ...); send again, after each of `delays`, the entries that failed
/// on the queue's side or whose request failed in a retryable way. `label` names the queue in
/// logs.
pub(crate) async fn settle<E, F, Fut>(entries: Vec<E>, mut delays: impl Iterator<Item = Duration>, label: &str, mut call: F) -> Settled<E>
where
    E: Clone,
    F: FnMut(Vec<(String, E)>) -> Fut,
    Fut: Future<Output = Result<Answer, RequestFailed>>,
{
    let mut settled = Settled { refused: Vec::new(), unsettled: Vec::new(), failure: None };
    let mut pending = entries;
    loop {
        let ids: Vec<String> = (0..pending.len()).map(|i| i.to_string()).collect();
        // Each request gets its own copy of the entries (the SDK's builders take them owned).
        let failure = match call(ids.iter().cloned().zip(pending.iter().cloned()).collect()).await {
            Ok((successful, failed)) => {
                let successful: Vec<&str> = successful.iter().map(String::as_str).collect();
                let (again, refused) = triage(&ids, &successful, &failed);
                let reason = failed.iter().find(|f| !f.sender_fault).map(|f| f.reason.clone());
                let mut slots: Vec<Option<E>> = pending.into_iter().map(Some).collect();
                settled.refused.extend(refused.into_iter().filter_map(|(p, why)| slots[p].take().map(|e| (e, why))));
                pending = again.into_iter().filter_map(|p| slots[p].take()).collect();
                if pending.is_empty() {
                    return settled;
                }
                let reason = reason.unwrap_or_else(|| "entries missing from the response".into());
                RequestFailed { error: ConnectorError::retryable(label.to_owned(), reason), code: None }
            }
            Err(failed) if !failed.error.is_retryable() => {
                settled.unsettled = pending;
                settled.failure = Some(failed);
                return settled;
            }
            Err(failed) => failed,
        };
        match delays.next() {
            Some(delay) => {
                tracing::warn!(queue = label, error = %failure.error, remaining = pending.len(), ?delay, "sqs batch call incomplete, retrying");
                tokio::time::sleep(delay).await;
            }
            None => {
                settled.unsettled = pending;
                settled.failure = Some(failure);
                return settled;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn failure(id: &str, sender_fault: bool) -> EntryFailure {
        EntryFailure { id: id.into(), sender_fault, reason: if sender_fault { "too big".into() } else { "internal".into() } }
    }

    #[test]
    fn triage_retries_service_faults_and_refuses_sender_faults() {
        let pending: Vec<String> = ["0", "1", "2", "3"].map(String::from).to_vec();
        let failed = vec![failure("1", true), failure("2", false)];
        // "3" is in neither list: not known to be accepted, so sent again.
        let (again, refused) = triage(&pending, &["0"], &failed);
        assert_eq!(again, vec![2, 3]);
        assert_eq!(refused, vec![(1, "too big".to_string())]);
    }

    #[tokio::test(start_paused = true)]
    async fn settle_sends_again_what_failed_on_the_queues_side_and_keeps_what_was_refused() {
        let requests = Mutex::new(Vec::new());
        let settled = settle(vec!["a", "b", "c"], std::iter::repeat_n(Duration::from_millis(10), 3), "q", |entries| {
            let sent: Vec<&str> = entries.iter().map(|(_, e)| *e).collect();
            let first = requests.lock().unwrap().is_empty();
            requests.lock().unwrap().push(sent);
            async move {
                if first {
                    // "a" accepted, "b" refused, "c" failed on the queue's side.
                    Ok((vec!["0".to_string()], vec![failure("1", true), failure("2", false)]))
                } else {
                    Ok((vec!["0".to_string()], vec![]))
                }
            }
        })
        .await;
        assert_eq!(*requests.lock().unwrap(), vec![vec!["a", "b", "c"], vec!["c"]]);
        assert_eq!(settled.refused, vec![("b", "too big".to_string())]);
        assert!(settled.unsettled.is_empty() && settled.failure.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn settle_gives_up_after_its_delays_or_at_once_on_a_permanent_failure() {
        let retryable = || async { Err::<Answer, _>(RequestFailed { error: ConnectorError::retryable("q", "timeout"), code: None }) };
        let settled = settle(vec![1, 2], std::iter::repeat_n(Duration::from_millis(10), 2), "q", |_| retryable()).await;
        assert_eq!(settled.unsettled, vec![1, 2]);
        assert!(settled.failure.unwrap().error.is_retryable());
        let mut calls = 0;
        let settled = settle(vec![1], std::iter::repeat(Duration::from_millis(10)), "q", |_| {
            calls += 1;
            async { Err::<Answer, _>(RequestFailed { error: ConnectorError::permanent("q", "denied"), code: Some("AccessDenied".into()) }) }
        })
        .await;
        assert_eq!(calls, 1);
        assert_eq!(settled.failure.unwrap().code.as_deref(), Some("AccessDenied"));
    }
}
