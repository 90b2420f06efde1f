//! The I/O of the SQS source: the receive loop, the acknowledgement calls, the heartbeat, and
//! the end of the stream that waits for outstanding acknowledgements.

use super::decode::{decode, queue_name, visibility_seconds, Receipt, Received};
use super::SqsSource;
use crate::ack::{settle_at_end, Ack, Leases, Outstanding, OutstandingToken, Status};
use crate::aws::connector_error;
use crate::aws::sqs::{entry_failures, open_queue, settle, Answer, Queue, RequestFailed, MAX_BATCH_ENTRIES};
use crate::batch::{batched, Incoming};
use crate::config::ConfigError;
use crate::error::{ConnectorError, Error};
use crate::record::Record;
use crate::retry::{RetryPolicy, Retrying};
use crate::source::{BatchStream, SourceContext};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The visibility timeout SQS gives a queue that does not say.
const DEFAULT_VISIBILITY: Duration = Duration::from_secs(30);
/// Consecutive failed receives tolerated (with backoff) before the run ends with an error.
const RECEIVE_RETRIES: usize = 10;

/// What the reader, the acknowledgements and the heartbeat share.
struct Shared {
    queue: Queue,
    /// The URL as configured, for logs and errors.
    label: String,
    /// The visibility timeout in effect.
    visibility: Duration,
    /// Messages received and not yet resolved, due for a visibility extension at half their
    /// visibility timeout.
    leases: Mutex<Leases<String>>,
    /// Held by the heartbeat while it extends visibilities, and taken by a release (visibility
    /// 0) before it starts: an extension cannot land after the release and hide the message
    /// again.
    visibility_lock: tokio::sync::Mutex<()>,
    /// Every acknowledgement call, and a token per emitted batch until its call is done.
    outstanding: Outstanding,
    /// Delete and release calls of resolved batches in progress.
    acknowledging: tokio::sync::watch::Sender<usize>,
    runtime: tokio::runtime::Handle,
    /// Retries of delete and change-visibility entries.
    retry: RetryPolicy,
}

/// How an acknowledgement call over some receipts ended.
struct Outcome {
    refused: Vec<(Receipt, String)>,
    unsettled: Vec<Receipt>,
    error: Option<String>,
}

impl Shared {
    fn component(&self) -> String {
        format!("sqs source {}", self.label)
    }

    fn leases(&self) -> MutexGuard<'_, Leases<String>> {
        // The table holds no invariant a panic could break half-way.
        self.leases.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A batch's final status is known: delete its messages (delivered or rejected) or make
    /// them visible again at once (errored), in a call of its own; `owed` keeps the stream's
    /// end waiting until the call is made (it is then owed as a call).
    fn resolve(self: &Arc<Self>, receipts: Vec<Receipt>, status: Status, owed: OutstandingToken) {
        self.leases().remove(receipts.iter().map(|r| r.handle.as_str()));
        if receipts.is_empty() {
            return;
        }
        let shared = Arc::clone(self);
        self.acknowledging.send_modify(|n| *n += 1);
        self.outstanding.spawn_on(&self.runtime, async move {
            if status.is_done() {
                shared.delete(receipts).await;
            } else {
                shared.release(receipts).await;
            }
            shared.acknowledging.send_modify(|n| *n -= 1);
        });
        drop(owed);
    }

    /// Wait until the queue has heard about every batch resolved so far (their delete or
    /// release calls finished, or gave up). The source waits for this before it reads its next
    /// batch, so that after a crash at most the batches in flight come back.
    async fn acknowledged(&self) {
        let mut calls = self.acknowledging.subscribe();
        // The sender lives in `self`: the wait ends when the count is 0.
        let _ = calls.wait_for(|n| *n == 0).await;
    }

    /// Delete messages that are done, retrying failed entries.
    async fn delete(&self, receipts: Vec<Receipt>) {
        let count = receipts.len();
        let outcome = self
            .call(receipts, true, |entries| async move {
                let mut request = self.queue.client.delete_message_batch().queue_url(&self.queue.url);
                for (id, receipt) in entries {
                    let entry = DeleteMessageBatchRequestEntry::builder().id(id).receipt_handle(receipt.handle).build();
                    request = request.entries(entry.map_err(|e| self.request_failed(ConnectorError::permanent(self.component(), e)))?);
                }
                let out =
                    request.send().await.map_err(|e| self.request_failed(connector_error(self.component(), "DeleteMessageBatch", &e)))?;
                Ok((out.successful().iter().map(|s| s.id().to_owned()).collect(), entry_failures(out.failed(), "delete refused")))
            })
            .await;
        for (receipt, reason) in &outcome.refused {
            tracing::error!(queue = %self.label, message_id = %receipt.message_id, reason, "delete refused; the queue will deliver the message again (at-least-once)");
        }
        if !outcome.unsettled.is_empty() {
            tracing::error!(
                queue = %self.label,
                count = outcome.unsettled.len(),
                error = outcome.error.as_deref().unwrap_or(""),
                "messages could not be deleted after retries; the queue will deliver them again after their visibility timeout (at-least-once)"
            );
        }
        tracing::debug!(queue = %self.label, count, "messages deleted");
    }

    /// Make messages visible again at once (their batch errored, or they were never batched).
    async fn release(&self, receipts: Vec<Receipt>) {
        // A barrier, not held through the call and its retries (which would stop the heartbeat
        // of every other message meanwhile): once an extension in progress has finished, the
        // next ones skip these messages, which left the leases before the release.
        drop(self.visibility_lock.lock().await);
        let count = receipts.len();
        let outcome = self.change_visibility(receipts, 0, true).await;
        if !outcome.refused.is_empty() || !outcome.unsettled.is_empty() {
            // Harmless: the message comes back when its visibility timeout expires.
            tracing::warn!(
                queue = %self.label,
                refused = outcome.refused.len(),
                unsettled = outcome.unsettled.len(),
                error = outcome.error.as_deref().or(outcome.refused.first().map(|(_, r)| r.as_str())).unwrap_or(""),
                "could not make messages visible again at once; they come back after their visibility timeout"
            );
        }
        tracing::debug!(queue = %self.label, count, "messages made visible again for redelivery");
    }

    async fn change_visibility(&self, receipts: Vec<Receipt>, seconds: i32, retry: bool) -> Outcome {
        self.call(receipts, retry, |entries| async move {
            let mut request = self.queue.client.change_message_visibility_batch().queue_url(&self.queue.url);
            for (id, receipt) in entries {
                let entry = ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(receipt.handle)
                    .visibility_timeout(seconds)
                    .build();
                request = request.entries(entry.map_err(|e| self.request_failed(ConnectorError::permanent(self.component(), e)))?);
            }
            let out = request
                .send()
                .await
                .map_err(|e| self.request_failed(connector_error(self.component(), "ChangeMessageVisibilityBatch", &e)))?;
            Ok((out.successful().iter().map(|s| s.id().to_owned()).collect(), entry_failures(out.failed(), "change of visibility refused")))
        })
        .await
    }

    fn request_failed(&self, error: ConnectorError) -> RequestFailed {
        RequestFailed { error, code: None }
    }

    /// Run a batch call over `receipts`, [`MAX_BATCH_ENTRIES`] per request, with the shared
    /// triage of [`settle`]; failed entries and requests are sent again with backoff when
    /// `retry` is true.
    async fn call<'a, F, Fut>(&'a self, receipts: Vec<Receipt>, retry: bool, call: F) -> Outcome
    where
        F: Fn(Vec<(String, Receipt)>) -> Fut + 'a,
        Fut: std::future::Future<Output = Result<Answer, RequestFailed>> + 'a,
    {
        let mut outcome = Outcome { refused: Vec::new(), unsettled: Vec::new(), error: None };
        let mut receipts = receipts.into_iter();
        loop {
            let chunk: Vec<Receipt> = receipts.by_ref().take(MAX_BATCH_ENTRIES).collect();
            if chunk.is_empty() {
                return outcome;
            }
            let delays = self.retry.delays().take(if retry { usize::MAX } else { 0 });
            let settled = settle(chunk, delays, &self.label, &call).await;
            outcome.refused.extend(settled.refused);
            outcome.unsettled.extend(settled.unsettled);
            if let Some(failure) = settled.failure {
                outcome.error = Some(failure.error.to_string());
            }
        }
    }

    /// One `ReceiveMessage` long poll.
    async fn receive(&self, max: i32, wait: i32, visibility: Option<i32>) -> Result<Vec<Received>, ConnectorError> {
        let mut request = self
            .queue
            .client
            .receive_message()
            .queue_url(&self.queue.url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp);
        if let Some(seconds) = visibility {
            request = request.visibility_timeout(seconds);
        }
        let out = request.send().await.map_err(|e| connector_error(self.component(), "ReceiveMessage", &e))?;
        Ok(out.messages.unwrap_or_default().into_iter().filter_map(Received::from_sdk).collect())
    }
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
        let due = shared.leases().due(Instant::now());
        if due.is_empty() {
            continue;
        }
        let _guard = shared.visibility_lock.lock().await;
        // Resolved meanwhile: not extended (a release waits for this lock).
        let due = shared.leases().renewed(due, Instant::now());
        if due.is_empty() {
            continue;
        }
        let count = due.len();
        let receipts: Vec<Receipt> = due.into_iter().map(|handle| Receipt { message_id: String::new(), handle }).collect();
        let outcome = shared.change_visibility(receipts, seconds, false).await;
        tracing::debug!(queue = %shared.label, count, seconds, "visibility extended");
        if let Some((_, reason)) = outcome.refused.first() {
            // Its visibility already expired (another consumer may have it): nothing more to do.
            tracing::warn!(queue = %shared.label, count = outcome.refused.len(), reason, "could not extend the visibility of in-flight messages; they may be delivered twice");
            shared.leases().remove(outcome.refused.iter().map(|(r, _)| r.handle.as_str()));
        }
        if !outcome.unsettled.is_empty() {
            tracing::warn!(queue = %shared.label, count = outcome.unsettled.len(), error = outcome.error.as_deref().unwrap_or(""), "extending visibility failed; trying again at the next tick");
            let handles = outcome.unsettled.into_iter().map(|r| r.handle).collect();
            shared.leases().due_at(handles, Instant::now());
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
    failing: Option<Retrying>,
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
                    let mut leases = self.shared.leases();
                    for m in &messages {
                        leases.insert(m.handle.clone(), now);
                    }
                    drop(leases);
                    self.buffer.extend(messages);
                }
                Err(e) if !e.is_retryable() => return Some(Err(Error::Source(e))),
                Err(e) => {
                    let retrying = self.failing.get_or_insert_with(|| {
                        RetryPolicy::default().max_retries(RECEIVE_RETRIES).max_delay(Duration::from_secs(30)).start()
                    });
                    if !retrying.pause(&e, "sqs receive").await {
                        let message = format!("receiving failed {} times in a row; last error: {e}", retrying.attempts);
                        return Some(Err(Error::Source(ConnectorError::retryable(self.shared.component(), message))));
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
        self.shared.leases().remove(receipts.iter().map(|r| r.handle.as_str()));
        let shared = Arc::clone(&self.shared);
        self.shared.outstanding.spawn_on(&self.shared.runtime, async move { shared.release(receipts).await });
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
    // Checks that the queue exists (and that the credentials may read it) before anything is
    // consumed; gives its visibility timeout.
    let queue = open_queue(&source.aws, &source.queue_url, &[QueueAttributeName::VisibilityTimeout], &component, &ctx.resources)
        .await
        .map_err(Error::Source)?;
    let queue_visibility = queue
        .attributes
        .get(&QueueAttributeName::VisibilityTimeout)
        .and_then(|v| v.parse::<u64>().ok())
        // SQS's maximum, 12 hours: a larger answer must not overflow the heartbeat's clock.
        .map(|seconds| Duration::from_secs(seconds.min(43_200)));
    let visibility = source.visibility_timeout.map(|v| Duration::from_secs(visibility_seconds(v) as u64));
    let in_effect = visibility.or(queue_visibility).unwrap_or(DEFAULT_VISIBILITY);
    let name = queue_name(&queue.url).to_owned();
    let outstanding = Outstanding::new();
    let shared = Arc::new(Shared {
        queue,
        label: label.clone(),
        visibility: in_effect,
        leases: Mutex::new(Leases::new(in_effect / 2)),
        visibility_lock: tokio::sync::Mutex::new(()),
        outstanding: outstanding.clone(),
        acknowledging: tokio::sync::watch::channel(0).0,
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
        queue: name,
        buffer: VecDeque::new(),
        per_poll: source.max_messages_per_poll as i32,
        wait: source.wait_time_seconds as i32,
        visibility: visibility.map(visibility_seconds),
        max_receives: source.max_receives,
        remaining: source.batching.max_records,
        drain_after: source.drain_after,
        failing: None,
    };
    // Boxed: the state moves in and out of each item's future, a pointer rather than the reader.
    let input = futures::stream::unfold(Box::new(reader), |mut reader| async move {
        let item = reader.next::<T>().await?;
        Some((item, reader))
    });
    let acks = Arc::clone(&shared);
    let make_ack = move |receipts: Vec<Receipt>| {
        let owed = acks.outstanding.token();
        let shared = Arc::clone(&acks);
        Ack::new(move |status| shared.resolve(receipts, status, owed))
    };
    let origin: Arc<str> = Arc::from(format!("sqs {label}"));
    let batches = batched(input, source.batching, ctx.shutdown, origin, make_ack);
    // The next batch is read once the queue heard about every batch resolved so far.
    let batches: BatchStream<T> = Box::pin(futures::stream::unfold((batches, shared), |(mut batches, shared)| async move {
        shared.acknowledged().await;
        let item = futures::StreamExt::next(&mut batches).await?;
        Some((item, (batches, shared)))
    }));
    // The stream's end waits for every emitted batch to be resolved and acknowledged to the
    // queue (see the module docs), then stops the heartbeat.
    Ok(Box::pin(settle_at_end(batches, outstanding, stop_heartbeat.drop_guard())))
}
