//! The I/O of the RabbitMQ source: the connection and its consumer, reconnection with
//! backoff, the acknowledgement calls, and the end of the stream that waits for them.

use super::decode::{decode, Plan, Received, Redeliveries, Tag, Unsettled};
use super::RabbitmqSource;
use crate::ack::{settle_at_end, Ack, Outstanding, OutstandingToken, Status};
use crate::batch::{batched, Incoming};
use crate::error::{ConnectorError, Error};
use crate::rabbitmq::{connect, connector_error, declare, Topology};
use crate::record::Record;
use crate::retry::{RetryPolicy, Retrying};
use crate::source::{BatchStream, SourceContext};
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Consecutive failed reconnections tolerated (with backoff, at most [`MAX_RECONNECT_DELAY`]
/// apart) before the run ends with an error.
pub(super) const RECONNECT_RETRIES: usize = 30;
/// The longest wait between two reconnections.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// While draining: how long without a delivery before the queue is asked whether it is empty.
const DRAIN_IDLE: Duration = Duration::from_millis(300);

/// The connection of the moment and the deliveries of its channel.
#[derive(Default)]
struct State {
    /// Incremented at each new connection: a delivery tag is only meaningful on the channel
    /// (the epoch) that delivered it.
    epoch: u64,
    connection: Option<Connection>,
    channel: Option<Channel>,
    /// Delivery tags of the current channel not yet acknowledged nor rejected.
    unsettled: Unsettled,
    /// Redelivery counts of a queue without `x-delivery-count`.
    counts: Redeliveries,
}

/// What the reader and the acknowledgements share.
struct Shared {
    queue: String,
    component: String,
    state: Mutex<State>,
    /// Every acknowledgement call, and a token per emitted batch until its call is made.
    outstanding: Outstanding,
    /// Acknowledgement calls of resolved batches in progress.
    acknowledging: tokio::sync::watch::Sender<usize>,
    runtime: tokio::runtime::Handle,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state holds no invariant a panic could break half-way.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A batch's final status is known: acknowledge its deliveries (delivered or rejected) or
    /// reject them with requeue (errored), in a call of its own. Deliveries of a channel that
    /// has died since are left alone: the broker requeued them when the channel closed, and
    /// their tags mean nothing (or another message) on the new channel.
    fn resolve(self: &Arc<Self>, tags: Vec<Tag>, status: Status, owed: OutstandingToken) {
        let done = status.is_done();
        let mut state = self.state();
        let epoch = state.epoch;
        let live = state.channel.is_some();
        let (current, stale): (Vec<Tag>, Vec<Tag>) = tags.into_iter().partition(|t| live && t.epoch == epoch);
        if done {
            for key in current.iter().filter_map(|t| t.count_key.as_deref()) {
                state.counts.forget(key);
            }
        }
        let numbers: Vec<u64> = current.iter().map(|t| t.delivery_tag).collect();
        let plan = state.unsettled.settle(&numbers);
        let channel = state.channel.clone();
        drop(state);
        if !stale.is_empty() {
            tracing::warn!(
                queue = %self.queue,
                count = stale.len(),
                delivered = done,
                "deliveries of a closed channel: not acknowledged there; the broker delivers them again (at-least-once)"
            );
        }
        let Some(channel) = channel.filter(|_| plan != Plan::Each(Vec::new())) else { return };
        let shared = Arc::clone(self);
        self.acknowledging.send_modify(|n| *n += 1);
        self.outstanding.spawn_on(&self.runtime, async move {
            shared.settle(&channel, plan, done).await;
            shared.acknowledging.send_modify(|n| *n -= 1);
        });
        drop(owed);
    }

    /// `basic.ack` (done) or `basic.nack` with requeue (errored) of the plan's tags, awaited.
    async fn settle(&self, channel: &Channel, plan: Plan, done: bool) {
        let (tags, multiple) = match plan {
            Plan::Multiple(tag) => (vec![tag], true),
            Plan::Each(tags) => (tags, false),
        };
        let mut failed = None;
        for &tag in &tags {
            let result = if done {
                channel.basic_ack(tag, BasicAckOptions { multiple }).await
            } else {
                channel.basic_nack(tag, BasicNackOptions { multiple, requeue: true }).await
            };
            if let Err(e) = result {
                failed = Some(e);
                break;
            }
        }
        match failed {
            None if done => tracing::debug!(queue = %self.queue, tags = tags.len(), multiple, "deliveries acknowledged"),
            None => tracing::debug!(queue = %self.queue, tags = tags.len(), multiple, "deliveries rejected with requeue for redelivery"),
            Some(e) => tracing::warn!(
                queue = %self.queue,
                error = %e,
                delivered = done,
                "could not settle deliveries; the broker delivers them again once the channel is closed (at-least-once)"
            ),
        }
    }

    /// Wait until the broker has been told about every batch resolved so far.
    async fn acknowledged(&self) {
        let mut calls = self.acknowledging.subscribe();
        // The sender lives in `self`: the wait ends when the count is 0.
        let _ = calls.wait_for(|n| *n == 0).await;
    }

    /// The connection is gone (or must be dropped): a new epoch starts without a channel.
    fn lost(&self) {
        let mut state = self.state();
        state.epoch += 1;
        state.channel = None;
        let unsettled = std::mem::take(&mut state.unsettled).len();
        let connection = state.connection.take();
        drop(state);
        tracing::info!(queue = %self.queue, unsettled, "channel gone; its unacknowledged deliveries are the broker's to deliver again");
        drop(connection);
    }

    /// Close the connection at the end of the stream (everything was settled): the broker
    /// requeues at once the deliveries no batch took.
    async fn close(&self) {
        let connection = {
            let mut state = self.state();
            state.channel = None;
            state.connection.take()
        };
        if let Some(connection) = connection {
            if let Err(e) = connection.close(200, "etl source finished".into()).await {
                tracing::debug!(queue = %self.queue, error = %e, "closing the connection");
            }
        }
    }
}

/// What a (re)connection needs.
struct Target {
    url: String,
    topology: Topology,
    prefetch: u16,
}

/// Connect, open a channel, set the prefetch, declare or check the queue and consume from it.
async fn subscribe(shared: &Shared, target: &Target) -> Result<Consumer, ConnectorError> {
    let component = shared.component.as_str();
    let queue = shared.queue.as_str();
    let connection = connect(&target.url, component).await?;
    let channel = connection.create_channel().await.map_err(|e| connector_error(component, "cannot open a channel", &e))?;
    channel
        .basic_qos(target.prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| connector_error(component, "cannot set the prefetch count", &e))?;
    let ready = declare(&channel, queue, &target.topology, component).await?;
    let consumer = channel
        .basic_consume(
            crate::rabbitmq::short(queue, "queue name", component)?,
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| connector_error(component, &format!("cannot consume from queue `{queue}`"), &e))?;
    let mut state = shared.state();
    state.epoch += 1;
    state.unsettled = Unsettled::default();
    state.channel = Some(channel);
    state.connection = Some(connection);
    tracing::info!(queue, ready, prefetch = target.prefetch, epoch = state.epoch, "rabbitmq source consuming");
    Ok(consumer)
}

/// The consumer loop, as the batcher's input.
struct Reader {
    shared: Arc<Shared>,
    target: Target,
    consumer: Option<Consumer>,
    max_redeliveries: Option<u32>,
    /// Deliveries still to take (`max_records`).
    remaining: Option<u64>,
    /// Once cancelled, a queue found empty after a quiet moment ends the stream.
    drain_after: Option<CancellationToken>,
    /// Backoff of consecutive failed reconnections.
    failing: Option<Retrying>,
}

impl Reader {
    async fn next<T: Record>(&mut self) -> Option<crate::Result<Incoming<T, Tag>>> {
        loop {
            if self.remaining == Some(0) {
                return None;
            }
            let Some(consumer) = self.consumer.as_mut() else {
                match subscribe(&self.shared, &self.target).await {
                    Ok(consumer) => {
                        self.consumer = Some(consumer);
                        self.failing = None;
                    }
                    Err(e) if !e.is_retryable() => return Some(Err(Error::Source(e))),
                    Err(e) => {
                        let retrying = self.failing.get_or_insert_with(|| {
                            RetryPolicy::default()
                                .max_retries(RECONNECT_RETRIES)
                                .initial_delay(Duration::from_millis(100))
                                .max_delay(MAX_RECONNECT_DELAY)
                                .start()
                        });
                        if !retrying.pause(&e, "rabbitmq reconnect").await {
                            let message = format!("reconnecting failed {} times in a row; last error: {e}", retrying.attempts);
                            return Some(Err(Error::Source(ConnectorError::retryable(self.shared.component.clone(), message))));
                        }
                    }
                }
                continue;
            };
            let draining = self.drain_after.as_ref().is_some_and(CancellationToken::is_cancelled);
            let next = if draining {
                match tokio::time::timeout(DRAIN_IDLE, consumer.next()).await {
                    Ok(next) => next,
                    Err(_quiet) => {
                        if self.queue_is_empty().await {
                            tracing::info!(queue = %self.shared.queue, "queue drained; the source stops");
                            return None;
                        }
                        continue;
                    }
                }
            } else {
                consumer.next().await
            };
            match next {
                Some(Ok(delivery)) => {
                    if let Some(n) = &mut self.remaining {
                        *n -= 1;
                    }
                    return Some(Ok(self.take(Received::from_lapin(delivery))));
                }
                Some(Err(e)) => {
                    tracing::warn!(queue = %self.shared.queue, error = %e, "connection to RabbitMQ lost; reconnecting (unacknowledged deliveries come back)");
                    self.consumer = None;
                    self.shared.lost();
                }
                None => {
                    tracing::warn!(queue = %self.shared.queue, "the broker cancelled the consumer or closed the channel; reconnecting");
                    self.consumer = None;
                    self.shared.lost();
                }
            }
        }
    }

    /// A delivery: tracked as unsettled on its channel, counted, decoded.
    fn take<T: Record>(&mut self, message: Received) -> Incoming<T, Tag> {
        let mut state = self.shared.state();
        state.unsettled.insert(message.delivery_tag);
        // A first delivery has nothing to count (and no key to compute); a quorum queue counts
        // for itself.
        let (redeliveries, count_key) = match message.x_delivery_count {
            Some(n) => (u32::try_from(n).unwrap_or(u32::MAX), None),
            None if !message.redelivered => (0, None),
            None => {
                let key = message.count_key();
                (state.counts.observe(&key, true), Some(key))
            }
        };
        let tag = Tag { epoch: state.epoch, delivery_tag: message.delivery_tag, count_key };
        drop(state);
        decode(message, &self.shared.queue, redeliveries, self.max_redeliveries, tag)
    }

    /// Whether the queue has no message ready (a passive declaration on the channel).
    async fn queue_is_empty(&mut self) -> bool {
        let channel = self.shared.state().channel.clone();
        let Some(channel) = channel else { return false };
        let Ok(name) = lapin::types::ShortString::try_new(self.shared.queue.as_str()) else { return false };
        match channel.queue_declare(name, QueueDeclareOptions::default().passive(), FieldTable::default()).await {
            Ok(queue) => queue.message_count() == 0,
            Err(e) => {
                tracing::warn!(queue = %self.shared.queue, error = %e, "could not ask the queue's depth; reconnecting");
                self.consumer = None;
                self.shared.lost();
                false
            }
        }
    }
}

/// Check the options, connect, and return the batched delivery stream.
pub(super) async fn open<T: Record>(source: RabbitmqSource<T>, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
    let queue = crate::config::interpolate(&source.queue).map_err(Error::Config)?;
    let component = format!("rabbitmq source {queue}");
    let prefetch = super::effective_prefetch(source.prefetch_count, source.batching.batch_size, &queue);
    let topology = Topology {
        declare: source.declare,
        exchange: source.exchange.as_deref().map(crate::config::interpolate).transpose().map_err(Error::Config)?,
        exchange_type: source.exchange_type.clone(),
        routing_key: source.routing_key.as_deref().map(crate::config::interpolate).transpose().map_err(Error::Config)?,
        queue_arguments: source.queue_arguments(),
    };
    let outstanding = Outstanding::new();
    let shared = Arc::new(Shared {
        queue: queue.clone(),
        component,
        state: Mutex::new(State::default()),
        outstanding: outstanding.clone(),
        acknowledging: tokio::sync::watch::channel(0).0,
        runtime: tokio::runtime::Handle::current(),
    });
    let target = Target { url: source.url.clone(), topology, prefetch };
    // The first connection is part of opening: a broker that cannot be reached, refused
    // credentials or a missing queue fail the start-up, before anything is consumed.
    let consumer = subscribe(&shared, &target).await.map_err(Error::Source)?;
    let reader = Reader {
        shared: Arc::clone(&shared),
        target,
        consumer: Some(consumer),
        max_redeliveries: source.max_redeliveries,
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
    let make_ack = move |tags: Vec<Tag>| {
        let owed = acks.outstanding.token();
        let shared = Arc::clone(&acks);
        Ack::new(move |status| shared.resolve(tags, status, owed))
    };
    let origin: Arc<str> = Arc::from(format!("rabbitmq {queue}"));
    let batches = batched(input, source.batching, ctx.shutdown, origin, make_ack);
    // The next batch is read once the broker heard about every batch resolved so far: after
    // a crash, at most the batches in flight come back.
    let batches: BatchStream<T> = Box::pin(futures::stream::unfold((batches, Arc::clone(&shared)), |(mut batches, shared)| async move {
        shared.acknowledged().await;
        let item = batches.next().await?;
        Some((item, (batches, shared)))
    }));
    // The stream's end waits for every emitted batch to be resolved and settled with the
    // broker, then closes the connection.
    let settled = settle_at_end(batches, outstanding, ());
    let closing = futures::stream::once(async move {
        shared.close().await;
        None
    })
    .filter_map(std::future::ready);
    Ok(Box::pin(settled.chain(closing)))
}
