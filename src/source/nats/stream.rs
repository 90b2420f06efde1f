//! The I/O of the NATS source: the consumer lookup, the pull loop, the acknowledgements (and
//! the dead letters of last attempts), the progress acks, and the end of the stream that waits
//! for outstanding acknowledgements.

use super::decode::{decode, delivery, nak_delay, AckBody, Delivery, Received, Reply};
use super::NatsSource;
use crate::ack::{settle_at_end, Ack, Leases, Outstanding, OutstandingToken, Status};
use crate::batch::{batched, Failure, FailureKind, Incoming};
use crate::config::{interpolate, ConfigError};
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::error::{ConnectorError, Error};
use crate::nats::{api_error, connect, jetstream};
use crate::record::{Extra, Meta, Position, Record};
use crate::retry::{RetryPolicy, Retrying};
use crate::source::{BatchStream, Lag, SourceContext};
use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use futures::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Consecutive failed pulls tolerated (with backoff) before the run ends with an error.
const PULL_RETRIES: usize = 10;
/// How long a draining source waits for a message before it ends.
const DRAIN_IDLE: Duration = Duration::from_secs(1);
/// How long a pull request stays open on the server (the client gives up 5 s later).
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// Attempts of the request that confirms a batch's acknowledgements.
const CONFIRM_ATTEMPTS: usize = 3;
/// How long one confirmation waits for its answer.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// What the reader, the acknowledgements and the progress task share.
struct Shared {
    client: async_nats::Client,
    /// `stream/durable`, for logs.
    label: String,
    /// The source's description (`nats STREAM/durable`): dead-letter entries' source.
    origin: String,
    nak_delay: Duration,
    /// The consumer's `max_deliver` in effect.
    max_deliver: u32,
    /// Messages delivered and not yet resolved, due for a progress ack at half `ack_wait`.
    leases: Mutex<Leases<Reply>>,
    /// Held by the progress task while it sends progress acks, and taken by a resolution
    /// before it sends its acknowledgements: a `+WPI` cannot follow a nak and undo its delay.
    ordering: tokio::sync::Mutex<()>,
    /// Every acknowledgement call, and a token per emitted batch until its call is done.
    outstanding: Outstanding,
    /// Acknowledgements of resolved batches in progress.
    acknowledging: tokio::sync::watch::Sender<usize>,
    runtime: tokio::runtime::Handle,
    /// Where the messages of an errored batch that are on their last attempt go.
    dead_letters: Option<Arc<dyn DeadLetters>>,
    /// Retries of dead-letter writes and of confirmations.
    retry: RetryPolicy,
}

impl Shared {
    fn component(&self) -> String {
        format!("nats source {}", self.label)
    }

    fn leases(&self) -> MutexGuard<'_, Leases<Reply>> {
        // The table holds no invariant a panic could break half-way.
        self.leases.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A batch's final status is known: acknowledge, nak or dead-letter and terminate its
    /// messages in a task of its own; `owed` keeps the stream's end waiting until then.
    fn resolve(self: &Arc<Self>, deliveries: Vec<Delivery>, status: Status, owed: OutstandingToken) {
        self.leases().remove(deliveries.iter().map(|d| d.reply.as_str()));
        if deliveries.is_empty() {
            return;
        }
        let shared = Arc::clone(self);
        self.acknowledging.send_modify(|n| *n += 1);
        self.outstanding.spawn_on(&self.runtime, async move {
            let bodies = if status.is_done() {
                deliveries.into_iter().map(|d| (d.reply, AckBody::Ack)).collect()
            } else {
                shared.errored(deliveries, true).await
            };
            shared.send(bodies).await;
            shared.acknowledging.send_modify(|n| *n -= 1);
        });
        drop(owed);
    }

    /// Wait until the server has heard about every batch resolved so far.
    async fn acknowledged(&self) {
        let mut calls = self.acknowledging.subscribe();
        // The sender lives in `self`: the wait ends when the count is 0.
        let _ = calls.wait_for(|n| *n == 0).await;
    }

    /// The acknowledgements of an errored batch (or of messages released unprocessed, with
    /// `delayed` false): a nak with a delay growing with the delivery count, or, for a message
    /// on its last attempt (the server would not deliver it again), a dead letter and then
    /// `+TERM`.
    async fn errored(&self, deliveries: Vec<Delivery>, delayed: bool) -> Vec<(Reply, AckBody)> {
        let (last, retry): (Vec<Delivery>, Vec<Delivery>) = deliveries.into_iter().partition(|d| d.last_attempt.is_some());
        let delay = |d: &Delivery| if delayed { nak_delay(self.nak_delay, d.delivered) } else { Duration::ZERO };
        let mut bodies: Vec<(Reply, AckBody)> = retry.into_iter().map(|d| (d.reply.clone(), AckBody::Nak(delay(&d)))).collect();
        if last.is_empty() {
            return bodies;
        }
        match self.dead_letter(&last).await {
            Ok(()) => {
                tracing::warn!(consumer = %self.label, count = last.len(), max_deliver = self.max_deliver, "messages failed on their last delivery attempt: dead-lettered and terminated");
                let reason = format!("dead-lettered after {} deliveries", self.max_deliver);
                bodies.extend(last.into_iter().map(|d| (d.reply, AckBody::Term(reason.clone()))));
            }
            Err(e) => {
                let sequences: Vec<u64> = last.iter().map(|d| d.stream_sequence).collect();
                tracing::error!(consumer = %self.label, error = %e, ?sequences, "messages on their last delivery attempt could not be dead-lettered; nak'ed, the server will not deliver them again (they stay in the stream at these sequences)");
                bodies.extend(last.into_iter().map(|d| (d.reply, AckBody::Nak(Duration::ZERO))));
            }
        }
        bodies
    }

    /// Write the messages on their last attempt to the run's dead-letter queue, with retries.
    async fn dead_letter(&self, last: &[Delivery]) -> Result<(), ConnectorError> {
        let Some(queue) = &self.dead_letters else {
            return Err(ConnectorError::permanent(self.component(), "no dead-letter queue (the source was opened outside a pipeline)"));
        };
        let entries: Vec<DeadLetter> = last
            .iter()
            .filter_map(|d| {
                let attempt = d.last_attempt.as_ref()?;
                let extra = Extra {
                    event_type: Some(attempt.subject.clone()),
                    headers: attempt.headers.clone(),
                    delivery_count: Some(d.delivered),
                    timestamp: attempt.published,
                    ..Extra::default()
                };
                let meta = Meta::at(Position::Sequence(d.stream_sequence)).with_extra(extra);
                let error = format!(
                    "the batch failed on delivery {} of max_deliver = {} (subject {}, stream sequence {})",
                    d.delivered, self.max_deliver, attempt.subject, d.stream_sequence
                );
                let mut failure = Failure::new(attempt.payload.clone(), FailureKind::MaxDeliveries, error, meta);
                failure.attempts = d.delivered;
                Some(DeadLetter::from_failure(failure, &self.origin).at_step(Some(self.origin.clone())))
            })
            .collect();
        let mut retrying = self.retry.start();
        loop {
            match queue.write(entries.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if retrying.pause(&e, "dead-letter write").await => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Send acknowledgements: all but the last as plain publishes, the last as a request whose
    /// answer says the server processed them all (a consumer takes its acknowledgements in
    /// order). A confirmation that does not come is retried, then logged: the server then
    /// redelivers after `ack_wait` (at-least-once).
    async fn send(&self, mut bodies: Vec<(Reply, AckBody)>) {
        let Some((last_reply, last_body)) = bodies.pop() else { return };
        // Progress acks wait while these are handed to the connection (the confirmation below
        // need not hold them back: these messages left the lease table before).
        {
            let _order = self.ordering.lock().await;
            for (reply, body) in bodies {
                if let Err(e) = self.client.publish(reply.0, body.bytes()).await {
                    tracing::warn!(consumer = %self.label, error = %e, "sending an acknowledgement failed; the server will redeliver that message");
                }
            }
        }
        let mut delays = self.retry.delays().take(CONFIRM_ATTEMPTS - 1);
        loop {
            let answer = tokio::time::timeout(CONFIRM_TIMEOUT, self.client.request(last_reply.0.clone(), last_body.bytes())).await;
            let error = match answer {
                Ok(Ok(_)) => return,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer".to_owned(),
            };
            match delays.next() {
                Some(delay) => {
                    tracing::debug!(consumer = %self.label, error, "confirming acknowledgements failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                None => {
                    tracing::warn!(consumer = %self.label, error, "the server did not confirm a batch's acknowledgements; its messages may be delivered again");
                    return;
                }
            }
        }
    }
}

/// Sends progress acks for messages in flight past half their `ack_wait`, until `stop`.
async fn progress(shared: Arc<Shared>, ack_wait: Duration, stop: CancellationToken) {
    let tick = (ack_wait / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        if shared.leases().due(Instant::now()).is_empty() {
            continue;
        }
        let _order = shared.ordering.lock().await;
        // Resolved meanwhile: no progress ack (a resolution waits for this lock).
        let now = Instant::now();
        let due = shared.leases().due(now);
        let mut sent = Vec::with_capacity(due.len());
        for reply in due {
            match shared.client.publish(reply.0.clone(), AckBody::Progress.bytes()).await {
                Ok(()) => sent.push(reply),
                Err(e) => tracing::warn!(consumer = %shared.label, error = %e, "a progress ack failed; trying again at the next tick"),
            }
        }
        let count = sent.len();
        shared.leases().renewed(sent, now);
        tracing::debug!(consumer = %shared.label, count, "progress acks sent");
    }
}

/// A delivered message out of async-nats' types, and the consumer's pending count.
fn received(message: async_nats::jetstream::Message) -> Result<(Received, u64), String> {
    let (stream_sequence, delivered, published_nanos, pending) = {
        let info = message.info().map_err(|e| format!("a message without JetStream metadata: {e}"))?;
        (info.stream_sequence, info.delivered, info.published.unix_timestamp_nanos(), info.pending)
    };
    let message = message.message;
    let reply = Reply(message.reply.ok_or("a message without a reply subject")?);
    let mut headers: Vec<(String, bytes::Bytes)> = Vec::new();
    if let Some(map) = &message.headers {
        for (name, values) in map.iter() {
            for value in values {
                headers.push((name.to_string(), bytes::Bytes::copy_from_slice(value.as_str().as_bytes())));
            }
        }
        headers.sort();
    }
    Ok((
        Received {
            subject: message.subject.to_string(),
            reply,
            payload: message.payload,
            headers,
            stream_sequence,
            delivered: u32::try_from(delivered).unwrap_or(u32::MAX),
            published_nanos: Some(published_nanos),
        },
        pending,
    ))
}

/// What the puller hands the reader: a message (already in the lease table), or the error
/// that ends the run.
type Pulled = Result<Received, Error>;

/// Pulls messages from the consumer in a task of its own, always reading what the server
/// sends: each message goes into the lease table the moment it arrives (so progress acks cover
/// it while it waits for a batch), then into the reader's queue. A new pull request is made
/// only while fewer than `batch` messages are queued, so at most two batches wait.
async fn puller(
    shared: Arc<Shared>,
    consumer: PullConsumer,
    batch: usize,
    queue: tokio::sync::mpsc::UnboundedSender<Pulled>,
    queued: Arc<Queued>,
    lag: Lag,
    stop: CancellationToken,
) {
    let mut failing: Option<Retrying> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = queued.room() => {}
        }
        let ask = batch;
        let error = match consumer.batch().max_messages(ask).expires(PULL_EXPIRES).messages().await {
            Ok(mut messages) => loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(message)) => {
                        failing = None;
                        match received(message) {
                            Ok((received, pending)) => {
                                lag.set(pending);
                                shared.leases().insert(received.reply.clone(), Instant::now());
                                queued.added();
                                if queue.send(Ok(received)).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(consumer = %shared.label, error = e, "skipping a message the consumer cannot acknowledge")
                            }
                        }
                    }
                    Some(Err(e)) => break Some(ConnectorError::retryable(shared.component(), format!("pulling messages: {e}"))),
                    None => break None,
                }
            },
            Err(e) => Some(api_error(&shared.component(), "cannot pull messages", e)),
        };
        let Some(error) = error else { continue };
        if !error.is_retryable() {
            let _ = queue.send(Err(Error::Source(error)));
            return;
        }
        let retrying =
            failing.get_or_insert_with(|| RetryPolicy::default().max_retries(PULL_RETRIES).max_delay(Duration::from_secs(10)).start());
        let paused = tokio::select! {
            () = stop.cancelled() => return,
            paused = retrying.pause(&error, "nats pull") => paused,
        };
        if !paused {
            let message = format!("pulling failed {} times in a row; last error: {error}", retrying.attempts);
            let _ = queue.send(Err(Error::Source(ConnectorError::retryable(shared.component(), message))));
            return;
        }
    }
}

/// How many pulled messages wait in the reader's queue: the puller asks for more only while
/// fewer than `limit` do. An atomic count and a wake-up when it falls below the limit (a
/// channel of the count cost a lock and a broadcast for every message).
struct Queued {
    count: AtomicUsize,
    limit: usize,
    below_limit: tokio::sync::Notify,
}

impl Queued {
    fn new(limit: usize) -> Self {
        Queued { count: AtomicUsize::new(0), limit, below_limit: tokio::sync::Notify::new() }
    }

    /// A message went into the queue.
    fn added(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    /// The reader took a message out of the queue.
    fn taken(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == self.limit {
            self.below_limit.notify_one();
        }
    }

    /// Wait until fewer than `limit` messages are queued. (A wake-up given while nobody waits
    /// is kept by `Notify` for the next wait, which then looks at the count again.)
    async fn room(&self) {
        while self.count.load(Ordering::Acquire) >= self.limit {
            self.below_limit.notified().await;
        }
    }
}

/// The batcher's input: messages from the [`puller`], decoded.
struct Reader {
    shared: Arc<Shared>,
    consumer: PullConsumer,
    queue: tokio::sync::mpsc::UnboundedReceiver<Pulled>,
    queued: Arc<Queued>,
    /// Messages still to read (`max_records`).
    remaining: Option<u64>,
    /// Once cancelled, a second without a message ends the stream if the consumer is empty.
    drain_after: Option<CancellationToken>,
    /// Stops the puller when the reader is dropped.
    _stop: tokio_util::sync::DropGuard,
}

impl Reader {
    /// Whether the consumer holds nothing this source is not processing: no message left to
    /// deliver, and no message delivered and unacknowledged but those in this source's hands
    /// (a nak'ed message, or one whose `ack_wait` will expire, is still to come).
    async fn drained(&mut self) -> bool {
        match self.consumer.info().await {
            Ok(info) => info.num_pending == 0 && info.num_ack_pending <= self.shared.leases().len(),
            Err(e) => {
                tracing::warn!(consumer = %self.shared.label, error = %e, "cannot read the consumer's info while draining");
                false
            }
        }
    }

    async fn next<T: Record>(&mut self) -> Option<crate::Result<Incoming<T, Delivery>>> {
        loop {
            if self.remaining == Some(0) {
                return None;
            }
            let draining = self.drain_after.as_ref().is_some_and(CancellationToken::is_cancelled);
            let next = if draining {
                match tokio::time::timeout(DRAIN_IDLE, self.queue.recv()).await {
                    Ok(next) => next,
                    Err(_) if self.drained().await => {
                        tracing::info!(consumer = %self.shared.label, "the consumer has nothing left for this source: drained; the source stops");
                        return None;
                    }
                    Err(_) => continue,
                }
            } else {
                self.queue.recv().await
            };
            match next? {
                Ok(received) => {
                    self.queued.taken();
                    if let Some(n) = &mut self.remaining {
                        *n -= 1;
                    }
                    return Some(Ok(decode(received, self.shared.max_deliver)));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Drop for Reader {
    /// Messages pulled and never handed to the batcher are nak'ed at once (a message on its
    /// last delivery is dead-lettered and terminated instead: the server would not deliver it
    /// again).
    fn drop(&mut self) {
        self.queue.close();
        let mut released = Vec::new();
        while let Ok(pulled) = self.queue.try_recv() {
            if let Ok(received) = pulled {
                released.push(delivery(received, self.shared.max_deliver));
            }
        }
        if released.is_empty() {
            return;
        }
        self.shared.leases().remove(released.iter().map(|d| d.reply.as_str()));
        tracing::debug!(consumer = %self.shared.label, count = released.len(), "releasing pulled messages");
        let shared = Arc::clone(&self.shared);
        self.shared.outstanding.spawn_on(&self.shared.runtime, async move {
            let bodies = shared.errored(released, false).await;
            shared.send(bodies).await
        });
    }
}

/// The resolved names of a source: URL, stream, durable, subject.
struct Names {
    url: String,
    stream: String,
    durable: String,
    subject: Option<String>,
}

fn names<T>(source: &NatsSource<T>) -> Result<Names, Error> {
    let nonempty = |option: &'static str, text: &str| -> Result<String, Error> {
        let value = interpolate(text)?;
        if value.is_empty() {
            return Err(ConfigError::Invalid { option, message: "must not be empty".into() }.into());
        }
        Ok(value)
    };
    Ok(Names {
        url: source.url.clone(),
        stream: nonempty("stream", &source.stream)?,
        durable: nonempty("durable", &source.durable)?,
        subject: source.subject.as_deref().map(|s| nonempty("subject", s)).transpose()?,
    })
}

/// The consumer `durable` of `stream`: looked up, or created when `create` is set (`config`).
async fn consumer(
    stream: &async_nats::jetstream::stream::Stream,
    names: &Names,
    config: Option<pull::Config>,
    component: &str,
) -> Result<Option<PullConsumer>, ConnectorError> {
    use async_nats::jetstream::context::ConsumerInfoErrorKind;
    use async_nats::jetstream::ErrorCode;
    match stream.consumer_info(&names.durable).await {
        Ok(info) if info.config.deliver_subject.is_some() => Err(ConnectorError::permanent(
            component.to_owned(),
            format!("consumer `{}` on stream `{}` is a push consumer; the nats source needs a pull consumer", names.durable, names.stream),
        )),
        Ok(_) => {
            let consumer = stream
                .get_consumer::<pull::Config>(&names.durable)
                .await
                .map_err(|e| api_error(component, &format!("cannot open consumer `{}`", names.durable), e))?;
            Ok(Some(consumer))
        }
        Err(e)
            if matches!(e.kind(), ConsumerInfoErrorKind::NotFound)
                || matches!(e.kind(), ConsumerInfoErrorKind::JetStream(ref api) if api.error_code() == ErrorCode::CONSUMER_NOT_FOUND) =>
        {
            let Some(config) = config else { return Ok(None) };
            let created = stream
                .create_consumer(config)
                .await
                .map_err(|e| ConnectorError::permanent(component.to_owned(), format!("cannot create consumer `{}`: {e}", names.durable)))?;
            tracing::info!(stream = %names.stream, consumer = %names.durable, "created JetStream consumer");
            Ok(Some(created))
        }
        Err(e) => Err(api_error(component, &format!("cannot look up consumer `{}` on stream `{}`", names.durable, names.stream), e)),
    }
}

fn missing_consumer(names: &Names, component: &str) -> ConnectorError {
    ConnectorError::permanent(
        component.to_owned(),
        format!("consumer `{}` does not exist on stream `{}` (create it, or set `create = true`)", names.durable, names.stream),
    )
}

/// `check`: connect, look the stream and the consumer up; create and consume nothing.
pub(super) async fn check<T>(source: NatsSource<T>) -> crate::Result<()> {
    let names = names(&source)?;
    let component = format!("nats source {}/{}", names.stream, names.durable);
    let client = connect(&names.url, &component).await.map_err(Error::Source)?;
    let js = jetstream(client);
    // With `create`, a missing stream or consumer is what `open` would create: fine.
    let stream = match crate::nats::lookup_stream(&js, &names.stream, &component).await.map_err(Error::Source)? {
        Some(stream) => stream,
        None if source.create => return Ok(()),
        None => return Err(Error::Source(crate::nats::missing_stream(&names.stream, &component))),
    };
    match consumer(&stream, &names, None, &component).await.map_err(Error::Source)? {
        Some(_) => Ok(()),
        None if source.create => Ok(()),
        None => Err(Error::Source(missing_consumer(&names, &component))),
    }
}

/// Connect, find (or create) the stream and the consumer, and return the batched stream.
pub(super) async fn open<T: Record>(source: NatsSource<T>, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
    if source.ack_wait.is_zero() {
        return Err(ConfigError::Invalid { option: "ack_wait", message: "must be longer than 0".into() }.into());
    }
    let names = names(&source)?;
    let label = format!("{}/{}", names.stream, names.durable);
    let component = format!("nats source {label}");
    let client = connect(&names.url, &component).await.map_err(Error::Source)?;
    let js = jetstream(client.clone());
    let subjects = vec![names.subject.clone().unwrap_or_else(|| names.stream.clone())];
    let stream = crate::nats::stream(&js, &names.stream, &subjects, source.create, &component).await.map_err(Error::Source)?;
    let batch_size = source.batching.batch_size.max(1);
    let config = source.create.then(|| pull::Config {
        durable_name: Some(names.durable.clone()),
        filter_subject: names.subject.clone().unwrap_or_default(),
        ack_policy: AckPolicy::Explicit,
        ack_wait: source.ack_wait,
        max_deliver: i64::from(source.max_deliver),
        // Room for a few batches in flight: a limit below the batch size would stall batches.
        max_ack_pending: (4 * batch_size).max(1000) as i64,
        ..Default::default()
    });
    let mut consumer = consumer(&stream, &names, config, &component)
        .await
        .map_err(Error::Source)?
        .ok_or_else(|| Error::Source(missing_consumer(&names, &component)))?;
    let info = consumer.info().await.map_err(|e| Error::Source(api_error(&component, "cannot read the consumer's info", e)))?.clone();
    if info.config.ack_policy != AckPolicy::Explicit {
        return Err(Error::Source(ConnectorError::permanent(
            component,
            format!(
                "consumer `{}` acknowledges with {:?}; the nats source needs explicit acks (AckPolicy::Explicit)",
                names.durable, info.config.ack_policy
            ),
        )));
    }
    let ack_wait = info.config.ack_wait;
    let max_deliver = match u32::try_from(info.config.max_deliver) {
        Ok(n) if n > 0 => n,
        // Unlimited on the server: the source's own limit applies (see `decode`).
        _ => source.max_deliver,
    };
    if max_deliver != source.max_deliver || ack_wait != source.ack_wait {
        tracing::info!(consumer = %label, max_deliver, ?ack_wait, "the consumer's own settings apply");
    }
    let max_ack_pending = usize::try_from(info.config.max_ack_pending).ok().filter(|n| *n > 0);
    let per_request = match max_ack_pending {
        Some(limit) if limit < batch_size => {
            tracing::warn!(consumer = %label, max_ack_pending = limit, batch_size, "the consumer's max_ack_pending is below batch_size: batches close on batch_timeout");
            limit
        }
        _ => batch_size,
    };
    let outstanding = Outstanding::new();
    let origin = crate::nats::origin(&names.stream, &names.durable);
    let shared = Arc::new(Shared {
        client,
        label: label.clone(),
        origin: origin.clone(),
        nak_delay: source.nak_delay,
        max_deliver,
        leases: Mutex::new(Leases::new(ack_wait / 2)),
        ordering: tokio::sync::Mutex::new(()),
        outstanding: outstanding.clone(),
        acknowledging: tokio::sync::watch::channel(0).0,
        runtime: tokio::runtime::Handle::current(),
        dead_letters: ctx.dead_letters.clone(),
        retry: RetryPolicy::default().initial_delay(Duration::from_millis(100)).max_delay(Duration::from_secs(5)),
    });
    tracing::debug!(consumer = %label, ?ack_wait, max_deliver, "nats source opened");
    let stop_progress = CancellationToken::new();
    if source.progress {
        tokio::spawn(progress(Arc::clone(&shared), ack_wait, stop_progress.clone()));
    }
    let (tx, queue) = tokio::sync::mpsc::unbounded_channel();
    let queued = Arc::new(Queued::new(per_request));
    let stop_pulling = CancellationToken::new();
    tokio::spawn(puller(
        Arc::clone(&shared),
        consumer.clone(),
        per_request,
        tx,
        Arc::clone(&queued),
        ctx.lag.clone(),
        stop_pulling.clone(),
    ));
    let reader = Reader {
        shared: Arc::clone(&shared),
        consumer,
        queue,
        queued,
        remaining: source.batching.max_records,
        drain_after: source.drain_after,
        _stop: stop_pulling.drop_guard(),
    };
    // Boxed: the state moves in and out of each item's future, a pointer rather than the reader.
    let input = futures::stream::unfold(Box::new(reader), |mut reader| async move {
        let item = reader.next::<T>().await?;
        Some((item, reader))
    });
    let acks = Arc::clone(&shared);
    let make_ack = move |deliveries: Vec<Delivery>| {
        let owed = acks.outstanding.token();
        let shared = Arc::clone(&acks);
        Ack::new(move |status| shared.resolve(deliveries, status, owed))
    };
    let batches = batched(input, source.batching, ctx.shutdown, Arc::from(origin), make_ack);
    // The next batch is read once the server heard about every batch resolved so far.
    let batches: BatchStream<T> = Box::pin(futures::stream::unfold((batches, shared), |(mut batches, shared)| async move {
        shared.acknowledged().await;
        let item = batches.next().await?;
        Some((item, (batches, shared)))
    }));
    Ok(Box::pin(settle_at_end(batches, outstanding, stop_progress.drop_guard())))
}
