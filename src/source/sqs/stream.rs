//! The I/O of the SQS source: the receive loop, the acknowledgement calls, the heartbeat, and
//! the end of the stream that waits for outstanding acknowledgements.

use super::message::{decode, queue_name, visibility_seconds, InFlight, Receipt, Received};
use super::SqsSource;
use crate::ack::{Ack, Status};
use crate::aws;
use crate::batch::{batched, Incoming};
use crate::config::{interpolate, ConfigError};
use crate::error::{ConnectorError, Error};
use crate::record::Record;
use crate::retry::RetryPolicy;
use crate::sink::sqs::{triage, EntryFailure, MAX_BATCH_ENTRIES};
use crate::source::{BatchStream, SourceContext};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use futures::StreamExt;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The visibility timeout SQS gives a queue that does not say.
const DEFAULT_VISIBILITY: Duration = Duration::from_secs(30);

/// What the reader, the acknowledgements and the heartbeat share.
struct Shared {
    client: aws_sdk_sqs::Client,
    /// The resolved URL (requests only: it may hold a resolved variable).
    url: String,
    /// The URL as configured, for logs and errors.
    label: String,
    /// The visibility timeout in effect.
    visibility: Duration,
    in_flight: Mutex<InFlight>,
    /// Held by the heartbeat while it extends visibilities, and taken by a release (visibility
    /// 0) before it starts: an extension cannot land after the release and hide the message
    /// again.
    visibility_lock: tokio::sync::Mutex<()>,
    /// Every acknowledgement call, and a token per emitted batch until its call is done.
    tracker: TaskTracker,
    runtime: tokio::runtime::Handle,
    /// Retries of delete and change-visibility entries.
    retry: RetryPolicy,
}

/// How a batch call ended: entries the queue refused for good, and entries still unsettled
/// after the retries (with the last error).
#[derive(Debug, Default)]
struct Settled {
    refused: Vec<(Receipt, String)>,
    unsettled: Vec<Receipt>,
    error: Option<String>,
}

impl Shared {
    fn component(&self) -> String {
        format!("sqs source {}", self.label)
    }

    fn half(&self) -> Duration {
        self.visibility / 2
    }

    fn in_flight(&self) -> MutexGuard<'_, InFlight> {
        // The table holds no invariant a panic could break half-way.
        self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A batch's final status is known: delete its messages (delivered or rejected) or make
    /// them visible again at once (errored), in a task; `token` keeps the stream's end waiting
    /// until that task is done.
    fn resolve(self: &Arc<Self>, receipts: Vec<Receipt>, status: Status, token: tokio_util::task::task_tracker::TaskTrackerToken) {
        self.in_flight().remove(receipts.iter().map(|r| r.handle.as_str()));
        if receipts.is_empty() {
            return;
        }
        let shared = Arc::clone(self);
        self.runtime.spawn(async move {
            if status.is_done() {
                shared.delete(receipts).await;
            } else {
                shared.release(receipts).await;
            }
            drop(token);
        });
    }

    /// Delete messages that are done, retrying failed entries.
    async fn delete(&self, receipts: Vec<Receipt>) {
        let settled = self
            .settle(&receipts, true, |entries| async move {
                let mut request = self.client.delete_message_batch().queue_url(&self.url);
                for (id, handle) in entries {
                    let entry = DeleteMessageBatchRequestEntry::builder()
                        .id(id)
                        .receipt_handle(handle)
                        .build()
                        .map_err(|e| ConnectorError::permanent(self.component(), e))?;
                    request = request.entries(entry);
                }
                let out = request.send().await.map_err(|e| aws::connector_error(self.component(), "DeleteMessageBatch", &e))?;
                Ok((out.successful().iter().map(|s| s.id().to_owned()).collect(), failures(out.failed())))
            })
            .await;
        for (receipt, reason) in &settled.refused {
            tracing::error!(queue = %self.label, message_id = %receipt.message_id, reason, "delete refused; the queue will deliver the message again (at-least-once)");
        }
        if !settled.unsettled.is_empty() {
            tracing::error!(
                queue = %self.label,
                count = settled.unsettled.len(),
                error = settled.error.as_deref().unwrap_or(""),
                "messages could not be deleted after retries; the queue will deliver them again after their visibility timeout (at-least-once)"
            );
        }
        tracing::debug!(queue = %self.label, count = receipts.len(), "messages deleted");
    }

    /// Make messages visible again at once (their batch errored, or they were never batched).
    async fn release(&self, receipts: Vec<Receipt>) {
        // A barrier, not held through the call and its retries (which would stop the heartbeat
        // of every other message meanwhile): once an extension in progress has finished, the
        // next ones skip these messages, which left `in_flight` before the release.
        drop(self.visibility_lock.lock().await);
        let settled = self.change_visibility(&receipts, 0, true).await;
        if !settled.refused.is_empty() || !settled.unsettled.is_empty() {
            // Harmless: the message comes back when its visibility timeout expires.
            tracing::warn!(
                queue = %self.label,
                refused = settled.refused.len(),
                unsettled = settled.unsettled.len(),
                error = settled.error.as_deref().or(settled.refused.first().map(|(_, r)| r.as_str())).unwrap_or(""),
                "could not make messages visible again at once; they come back after their visibility timeout"
            );
        }
        tracing::debug!(queue = %self.label, count = receipts.len(), "messages made visible again for redelivery");
    }

    async fn change_visibility(&self, receipts: &[Receipt], seconds: i32, retry: bool) -> Settled {
        self.settle(receipts, retry, |entries| async move {
            let mut request = self.client.change_message_visibility_batch().queue_url(&self.url);
            for (id, handle) in entries {
                let entry = ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(handle)
                    .visibility_timeout(seconds)
                    .build()
                    .map_err(|e| ConnectorError::permanent(self.component(), e))?;
                request = request.entries(entry);
            }
            let out = request.send().await.map_err(|e| aws::connector_error(self.component(), "ChangeMessageVisibilityBatch", &e))?;
            Ok((out.successful().iter().map(|s| s.id().to_owned()).collect(), failures(out.failed())))
        })
        .await
    }

    /// Run a batch call over `receipts`, 10 entries per request; failed entries that are not
    /// the sender's fault (and whole requests that failed in a retryable way) are sent again
    /// with backoff when `retry` is true.
    async fn settle<'a, F, Fut>(&'a self, receipts: &[Receipt], retry: bool, call: F) -> Settled
    where
        F: Fn(Vec<(String, String)>) -> Fut,
        Fut: Future<Output = Result<(Vec<String>, Vec<EntryFailure>), ConnectorError>> + 'a,
    {
        let mut settled = Settled::default();
        for chunk in receipts.chunks(MAX_BATCH_ENTRIES) {
            let mut pending: Vec<&Receipt> = chunk.iter().collect();
            let mut delays = self.retry.delays();
            loop {
                let ids: Vec<String> = (0..pending.len()).map(|i| i.to_string()).collect();
                let entries = ids.iter().cloned().zip(pending.iter().map(|r| r.handle.clone())).collect();
                let error = match call(entries).await {
                    Ok((successful, failed)) => {
                        let successful: Vec<&str> = successful.iter().map(String::as_str).collect();
                        let (again, refused) = triage(&ids, &successful, &failed);
                        settled.refused.extend(refused.into_iter().map(|(p, reason)| (pending[p].clone(), reason)));
                        if again.is_empty() {
                            break;
                        }
                        pending = again.into_iter().map(|p| pending[p]).collect();
                        failed
                            .into_iter()
                            .find(|f| !f.sender_fault)
                            .map_or_else(|| "entries missing from the response".into(), |f| f.reason)
                    }
                    Err(e) if !e.is_retryable() => {
                        settled.unsettled.extend(pending.into_iter().cloned());
                        settled.error = Some(e.to_string());
                        break;
                    }
                    Err(e) => e.to_string(),
                };
                match delays.next().filter(|_| retry) {
                    Some(delay) => {
                        tracing::warn!(queue = %self.label, error, remaining = pending.len(), ?delay, "sqs batch call incomplete, retrying");
                        tokio::time::sleep(delay).await;
                    }
                    None => {
                        settled.unsettled.extend(pending.into_iter().cloned());
                        settled.error = Some(error);
                        break;
                    }
                }
            }
        }
        settled
    }

    /// One `ReceiveMessage` long poll.
    async fn receive(&self, max: i32, wait: i32, visibility: Option<i32>) -> Result<Vec<Received>, ConnectorError> {
        let mut request = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp);
        if let Some(seconds) = visibility {
            request = request.visibility_timeout(seconds);
        }
        let out = request.send().await.map_err(|e| aws::connector_error(self.component(), "ReceiveMessage", &e))?;
        Ok(out.messages.unwrap_or_default().into_iter().filter_map(Received::from_sdk).collect())
    }
}

/// The `Failed` list of a batch response.
fn failures(failed: &[aws_sdk_sqs::types::BatchResultErrorEntry]) -> Vec<EntryFailure> {
    failed
        .iter()
        .map(|f| EntryFailure {
            id: f.id().to_owned(),
            sender_fault: f.sender_fault(),
            reason: format!("{}: {}", f.code(), f.message().unwrap_or("")),
        })
        .collect()
}

/// Extends the visibility of messages in flight past half their timeout, until `stop`.
async fn heartbeat(shared: Arc<Shared>, stop: CancellationToken) {
    let tick = (shared.visibility / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let seconds = visibility_seconds(shared.visibility);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        let due = shared.in_flight().due(Instant::now());
        if due.is_empty() {
            continue;
        }
        let _guard = shared.visibility_lock.lock().await;
        // Resolved meanwhile: not extended (a release waits for this lock).
        let due = shared.in_flight().extending(due, Instant::now(), shared.half());
        if due.is_empty() {
            continue;
        }
        let receipts: Vec<Receipt> = due.into_iter().map(|handle| Receipt { message_id: String::new(), handle }).collect();
        let settled = shared.change_visibility(&receipts, seconds, false).await;
        tracing::debug!(queue = %shared.label, count = receipts.len(), seconds, "visibility extended");
        if let Some((_, reason)) = settled.refused.first() {
            // Its visibility already expired (another consumer may have it): nothing more to do.
            tracing::warn!(queue = %shared.label, count = settled.refused.len(), reason, "could not extend the visibility of in-flight messages; they may be delivered twice");
            shared.in_flight().remove(settled.refused.iter().map(|(r, _)| r.handle.as_str()));
        }
        if !settled.unsettled.is_empty() {
            tracing::warn!(queue = %shared.label, count = settled.unsettled.len(), error = settled.error.as_deref().unwrap_or(""), "extending visibility failed; trying again at the next tick");
            let handles = settled.unsettled.into_iter().map(|r| r.handle).collect();
            shared.in_flight().extending(handles, Instant::now(), Duration::ZERO);
        }
    }
}

/// The receive loop, as the batcher's input.
struct Reader {
    shared: Arc<Shared>,
    queue: String,
    /// Received and not yet handed to the batcher.
    buffer: VecDeque<Received>,
    per_poll: i32,
    wait: i32,
    visibility: Option<i32>,
    max_receives: Option<u32>,
    /// Messages still to receive (`max_records`).
    remaining: Option<u64>,
    /// Once cancelled, an empty poll ends the stream.
    drain_after: Option<CancellationToken>,
    /// Backoff of consecutive failed polls.
    failing: Option<Box<dyn Iterator<Item = Duration> + Send>>,
}

impl Reader {
    async fn next<T: Record>(&mut self) -> Option<crate::Result<Incoming<T, Receipt>>> {
        loop {
            if let Some(message) = self.buffer.pop_front() {
                return Some(Ok(decode(message, &self.queue, self.max_receives)));
            }
            let ask = match self.remaining {
                Some(0) => return None,
                Some(n) => n.min(self.per_poll as u64) as i32,
                None => self.per_poll,
            };
            let draining = self.drain_after.as_ref().is_some_and(CancellationToken::is_cancelled);
            let wait = if draining { self.wait.min(1) } else { self.wait };
            match self.shared.receive(ask, wait, self.visibility).await {
                Ok(messages) if messages.is_empty() && draining => {
                    tracing::info!(queue = %self.shared.label, "queue drained; the source stops");
                    return None;
                }
                Ok(messages) => {
                    self.failing = None;
                    if let Some(n) = &mut self.remaining {
                        *n = n.saturating_sub(messages.len() as u64);
                    }
                    let now = Instant::now();
                    let half = self.shared.half();
                    let mut table = self.shared.in_flight();
                    for m in &messages {
                        table.insert(m.handle.clone(), now, half);
                    }
                    drop(table);
                    self.buffer.extend(messages);
                }
                Err(e) if !e.is_retryable() => return Some(Err(Error::Source(e))),
                Err(e) => {
                    let delays = self.failing.get_or_insert_with(|| {
                        let policy = RetryPolicy::default().max_retries(10).max_delay(Duration::from_secs(30));
                        Box::new(policy.delays())
                    });
                    match delays.next() {
                        Some(delay) => {
                            tracing::warn!(queue = %self.shared.label, error = %e, ?delay, "receiving failed, retrying");
                            tokio::time::sleep(delay).await;
                        }
                        None => {
                            let message = format!("receiving failed 11 times in a row; last error: {e}");
                            return Some(Err(Error::Source(ConnectorError::retryable(self.shared.component(), message))));
                        }
                    }
                }
            }
        }
    }
}

impl Drop for Reader {
    /// Messages received but never batched are made visible again at once.
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let receipts: Vec<Receipt> = self.buffer.drain(..).map(|m| Receipt { message_id: m.message_id, handle: m.handle }).collect();
        self.shared.in_flight().remove(receipts.iter().map(|r| r.handle.as_str()));
        let shared = Arc::clone(&self.shared);
        let task = self.shared.tracker.track_future(async move { shared.release(receipts).await });
        self.shared.runtime.spawn(task);
    }
}

/// Check the options and the queue, and return the batched message stream.
pub(super) async fn open<T: Record>(source: SqsSource<T>, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
    if source.wait_time_seconds > 20 {
        return Err(ConfigError::Invalid {
            option: "wait_time_seconds",
            message: format!("{} is more than SQS's maximum of 20 seconds", source.wait_time_seconds),
        }
        .into());
    }
    let label = source.queue_url.clone();
    let component = format!("sqs source {label}");
    let url = interpolate(&source.queue_url)?;
    let loaded = aws::load(&source.aws).await?;
    let client = aws_sdk_sqs::Client::new(&loaded.config);
    // Checks that the queue exists (and that the credentials may read it) before anything is
    // consumed; gives its visibility timeout.
    let attributes = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .map_err(|e| Error::Source(aws::connector_error(component.clone(), "GetQueueAttributes (does the queue exist?)", &e)))?;
    let queue_visibility = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
        .and_then(|v| v.parse::<u64>().ok())
        // SQS's maximum, 12 hours: a larger answer must not overflow the heartbeat's clock.
        .map(|seconds| Duration::from_secs(seconds.min(43_200)));
    let visibility = source.visibility_timeout.map(|v| Duration::from_secs(visibility_seconds(v) as u64));
    let in_effect = visibility.or(queue_visibility).unwrap_or(DEFAULT_VISIBILITY);
    let queue = queue_name(&url).to_owned();
    let shared = Arc::new(Shared {
        client,
        url,
        label: label.clone(),
        visibility: in_effect,
        in_flight: Mutex::new(InFlight::default()),
        visibility_lock: tokio::sync::Mutex::new(()),
        tracker: TaskTracker::new(),
        runtime: tokio::runtime::Handle::current(),
        retry: RetryPolicy::default().initial_delay(Duration::from_millis(100)).max_delay(Duration::from_secs(5)),
    });
    tracing::debug!(queue = %label, visibility = ?in_effect, "sqs source opened");

    let stop_heartbeat = CancellationToken::new();
    if source.heartbeat && !in_effect.is_zero() {
        tokio::spawn(heartbeat(Arc::clone(&shared), stop_heartbeat.clone()));
    }
    let reader = Reader {
        shared: Arc::clone(&shared),
        queue,
        buffer: VecDeque::new(),
        per_poll: source.max_messages_per_poll as i32,
        wait: source.wait_time_seconds as i32,
        visibility: visibility.map(visibility_seconds),
        max_receives: source.max_receives,
        remaining: source.batching.max_records,
        drain_after: source.drain_after,
        failing: None,
    };
    let input = futures::stream::unfold(reader, |mut reader| async move {
        let item = reader.next::<T>().await?;
        Some((item, reader))
    });
    let acks = Arc::clone(&shared);
    let make_ack = move |receipts: Vec<Receipt>| {
        let token = acks.tracker.token();
        let shared = Arc::clone(&acks);
        Ack::new(move |status| shared.resolve(receipts, status, token))
    };
    let origin: Arc<str> = Arc::from(format!("sqs {label}"));
    let batches = batched(input, source.batching, ctx.shutdown, origin, make_ack);

    // The stream's end waits for every emitted batch to be resolved and acknowledged to the
    // queue (see the module docs), then stops the heartbeat.
    struct Running<T> {
        batches: BatchStream<T>,
        shared: Arc<Shared>,
        _heartbeat: tokio_util::sync::DropGuard,
    }
    let running = Running { batches, shared, _heartbeat: stop_heartbeat.drop_guard() };
    Ok(Box::pin(futures::stream::unfold(Some(running), |state| async move {
        let mut running = state?;
        match running.batches.next().await {
            Some(item) => Some((item, Some(running))),
            None => {
                let Running { batches, shared, _heartbeat } = running;
                // Drops the reader: what it received and never batched is released.
                drop(batches);
                shared.tracker.close();
                tracing::debug!(queue = %shared.label, outstanding = shared.tracker.len(), "sqs source stopped reading; waiting for acknowledgements");
                shared.tracker.wait().await;
                tracing::debug!(queue = %shared.label, "sqs source finished");
                None
            }
        }
    })))
}
