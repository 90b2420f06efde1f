//! The I/O of the Kafka source: the consumer's thread (poll, decode, hand over, seek, commit),
//! the rebalance callback, the acknowledgements, and the end of the stream that waits for the
//! last commit and the consumer's close.

use super::decode::{decode, Received};
use super::partitions::{Commit, Issued, Partitions, Token};
use super::placement::Placement;
use super::read::read_once;
use super::KafkaSource;
use crate::ack::{settle_at_end, Ack, Outstanding, OutstandingToken, Status};
use crate::batch::{batched, Incoming, Stamp};
use crate::config::{interpolate, ConfigError};
use crate::error::{ConnectorError, Error};
use crate::kafka::connector_error;
use crate::positions::{OffsetRange, Partition, Positions};
use crate::record::Record;
use crate::source::{BatchStream, SourceContext};
use bytes::Bytes;
use futures::StreamExt;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long the rebalance callback waits for the in-flight batches of revoked partitions.
const REVOKE_WAIT: Duration = Duration::from_secs(10);
/// The shortest time between two commits while the watermark moves.
const COMMIT_INTERVAL: Duration = Duration::from_millis(100);
/// librdkafka's `fetch.queue.backoff.ms` for the source (see where it is set).
const FETCH_QUEUE_BACKOFF_MS: u32 = 10;
/// Messages per hand-over to the pipeline.
const CHUNK: usize = 256;
/// Chunks waiting in the hand-over.
const CHUNKS_IN_HAND_OVER: usize = 8;
/// How long opening waits for the brokers' metadata.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Messages of one hand-over, with the generation of the partition table when the first was
/// admitted (the reader checks each message again only when it changed since).
type Chunk<T> = (u64, Vec<Incoming<T, Token>>);

/// What the consumer's thread, the reader, the acknowledgements and the rebalance callback
/// share.
struct Shared {
    partitions: Mutex<Partitions<OutstandingToken>>,
    /// Notified whenever an acknowledgement resolved (the revoke wait).
    resolved: Condvar,
    /// [`Partitions::generation`], readable without the lock.
    generation: AtomicU64,
    /// Topics, for logs and errors.
    label: String,
    /// Every emitted batch until the commit of what it reached (or until it is dropped).
    outstanding: Outstanding,
    /// The stream has ended and settled: commit what is left, close the consumer, exit.
    stop: AtomicBool,
    /// The consumer's thread, to wake it (a commit or a seek to make, room in the hand-over).
    thread: OnceLock<std::thread::Thread>,
    /// The group's lag on the assigned partitions, from librdkafka's statistics.
    lag: crate::source::Lag,
    /// Exactly-once: the run's position store, which places every assigned partition and
    /// every seek back (see [`crate::positions`]). `None`: the group's offsets do.
    placement: Option<Placement>,
    /// An error the consumer's thread ends the stream with (the stored positions could not be
    /// read when partitions were assigned).
    fatal: Mutex<Option<ConnectorError>>,
    /// Whether `fatal` was set (read every turn of the consumer's loop, without the lock).
    failed: AtomicBool,
    /// The consumer, for the acknowledgements' asynchronous commits (the thread owns it).
    consumer: OnceLock<Weak<BaseConsumer<Context>>>,
}

impl Shared {
    fn component(&self) -> String {
        format!("kafka source {}", self.label)
    }

    fn partitions(&self) -> MutexGuard<'_, Partitions<OutstandingToken>> {
        // The table's updates are each complete under the lock: a panic cannot leave it torn.
        self.partitions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }

    fn fail(&self, error: ConnectorError) {
        self.fatal.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(error);
        self.failed.store(true, Ordering::Release);
        self.wake();
    }

    /// The error the stream ends with, if any (the lock is taken only once one was set).
    fn take_fatal(&self) -> Option<ConnectorError> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.fatal.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// A batch's final status: move (or hold and rewind) the watermark of each partition.
    fn resolve(&self, owed: Vec<(Issued, OutstandingToken)>, status: Status) {
        let mut released = Vec::new();
        let commits = {
            let mut partitions = self.partitions();
            for (issued, token) in owed {
                released.extend(partitions.resolve(issued, status, token));
            }
            self.generation.store(partitions.generation(), Ordering::Release);
            partitions.take_requests()
        };
        drop(released);
        self.resolved.notify_all();
        self.wake();
        // Commit at once, asynchronously, so that the group's offset trails the sink by a round
        // trip (a crash repeats at most the batches in flight). librdkafka does not report the
        // result of an asynchronous manual commit (rust-rdkafka sets no `offset_commit_cb`, and
        // its `commit_callback` sees only automatic commits): the consumer's thread confirms
        // the offsets with a synchronous commit every COMMIT_INTERVAL, which releases what the
        // acknowledgements owe. (Committing only from the thread, every 100 ms, let a child of
        // the crash test write 2 200 records past the group's offset before a SIGKILL.)
        if !commits.is_empty() {
            if let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) {
                self.commit_async(&consumer, &commits);
            }
        }
    }

    fn commit_async(&self, consumer: &BaseConsumer<Context>, commits: &[Commit]) {
        let mut list = TopicPartitionList::with_capacity(commits.len());
        for c in commits {
            if list.add_partition_offset(&c.topic, c.partition, Offset::Offset(c.offset)).is_err() {
                self.partitions().request_failed(&c.topic, c.partition);
            }
        }
        if let Err(e) = consumer.commit(&list, CommitMode::Async) {
            tracing::warn!(error = %e, topics = %self.label, "asynchronous commit refused; the next synchronous one makes it");
            let mut partitions = self.partitions();
            for c in commits {
                partitions.request_failed(&c.topic, c.partition);
            }
        }
    }

    /// Commit `commits` synchronously; on success, release what waited for them.
    fn commit(&self, consumer: &BaseConsumer<Context>, commits: &[Commit]) -> bool {
        if commits.is_empty() {
            return true;
        }
        let mut list = TopicPartitionList::with_capacity(commits.len());
        for c in commits {
            if let Err(e) = list.add_partition_offset(&c.topic, c.partition, Offset::Offset(c.offset)) {
                tracing::warn!(error = %e, topic = %c.topic, partition = c.partition, "cannot build the commit; retrying");
                return false;
            }
        }
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                let released: Vec<OutstandingToken> = {
                    let mut partitions = self.partitions();
                    commits.iter().flat_map(|c| partitions.committed(c)).collect()
                };
                for c in commits {
                    tracing::debug!(topic = %c.topic, partition = c.partition, offset = c.offset, "offset committed");
                }
                drop(released);
                true
            }
            Err(e) => {
                for c in commits {
                    tracing::warn!(error = %e, topic = %c.topic, partition = c.partition, offset = c.offset, "commit failed, retrying");
                }
                false
            }
        }
    }
}

/// The consumer's context: librdkafka's logs to `tracing`, and the rebalance callback.
struct Context {
    shared: Arc<Shared>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::kafka::log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, topics = %self.shared.label, "kafka consumer error");
    }

    /// The lag: the sum of `consumer_lag` over the partitions this consumer fetches (librdkafka
    /// reports -1 for the others).
    fn stats(&self, statistics: rdkafka::Statistics) {
        let lag: i64 = statistics.topics.values().flat_map(|t| t.partitions.values()).map(|p| p.consumer_lag.max(0)).sum();
        self.shared.lag.set(u64::try_from(lag).unwrap_or(0));
    }
}

/// Every topic exists and has partitions, as the brokers say (a blocking call).
fn check_topics<C: ConsumerContext>(consumer: &BaseConsumer<C>, topics: &[String], comp: &str) -> Result<(), ConnectorError> {
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), OPEN_TIMEOUT)
            .map_err(|e| connector_error(comp, &format!("the brokers did not answer for topic `{topic}`"), &e))?;
        match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {}
            Some(t) => {
                let error =
                    t.error().map(|e| format!("{:?}", rdkafka::error::RDKafkaErrorCode::from(e))).unwrap_or_else(|| "no partitions".into());
                return Err(ConnectorError::permanent(
                    comp.to_owned(),
                    format!("topic `{topic}` cannot be read: {error} (does it exist?)"),
                ));
            }
            None => return Err(ConnectorError::permanent(comp.to_owned(), format!("topic `{topic}` does not exist"))),
        }
    }
    Ok(())
}

/// The runner's `check`: resolve the options, reach the brokers, and check that every topic
/// exists, without joining the group (a check beside running consumers must not make them
/// rebalance).
pub(super) async fn check<T: Record>(source: KafkaSource<T>) -> crate::Result<()> {
    let component = format!("kafka source {}", source.topics.join(","));
    let topics = source.topics.iter().map(|t| resolve("topics", t)).collect::<Result<Vec<_>, _>>()?;
    let group = resolve("group", &source.group)?;
    let config = source.client.config(&[("group.id", group)])?;
    let comp = component.clone();
    tokio::task::spawn_blocking(move || -> Result<(), ConnectorError> {
        let consumer: BaseConsumer = config.create().map_err(|e| connector_error(&comp, "cannot create the consumer", &e))?;
        check_topics(&consumer, &topics, &comp)
    })
    .await
    .map_err(|e| Error::Source(ConnectorError::permanent(component, format!("checking panicked: {e}"))))?
    .map_err(Error::Source)
}

/// How often librdkafka reports its statistics (the lag), in milliseconds.
const STATISTICS_INTERVAL_MS: u64 = 5_000;

impl ConsumerContext for Context {
    /// librdkafka's rebalance callback, on the consumer's thread. The same as rust-rdkafka's
    /// default (the protocol's assign or unassign), with the partitions placed before they are
    /// assigned: at their stored positions under exactly-once (the list's offsets, which
    /// `assign` starts fetching from, so no seek races the first fetch), else at the group's.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assign(tpl);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<(String, i32)> = tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
                self.revoke(consumer, &revoked);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                let error = KafkaError::Rebalance(other.into());
                tracing::warn!(error = %error, topics = %self.shared.label, "rebalance failed");
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, topics = %self.shared.label, "rebalance: librdkafka refused the (un)assignment");
        }
    }
}

impl Context {
    /// Partitions are given to this consumer: under exactly-once, read their stored positions
    /// and place each partition that has one there (the list's offset); register them all.
    /// When the store cannot be read, nothing is registered (no message of these partitions
    /// is admitted) and the stream ends with the error.
    fn assign(&self, tpl: &mut TopicPartitionList) {
        let assigned: Vec<Partition> = tpl.elements().iter().map(|e| Partition::new(e.topic(), e.partition())).collect();
        let stored = match &self.shared.placement {
            None => HashMap::new(),
            Some(placement) => match placement.stored(&assigned) {
                Ok(stored) => stored,
                Err(e) => {
                    tracing::error!(error = %e, topics = %self.shared.label, "cannot place the assigned partitions; the source stops");
                    self.shared.fail(e);
                    return;
                }
            },
        };
        for p in &assigned {
            let at = stored.get(p).copied();
            if let Some(offset) = at {
                if let Err(e) = tpl.set_partition_offset(&p.topic, p.partition, Offset::Offset(offset)) {
                    tracing::error!(error = %e, topic = %p.topic, partition = p.partition, "cannot place the partition; the source stops");
                    self.shared
                        .fail(ConnectorError::permanent(self.shared.component(), format!("placing {}/{}: {e}", p.topic, p.partition)));
                    return;
                }
            }
        }
        let mut partitions = self.shared.partitions();
        for p in &assigned {
            let at = stored.get(p).copied();
            partitions.assign_at(&p.topic, p.partition, at);
            match at {
                Some(offset) => {
                    tracing::info!(topic = %p.topic, partition = p.partition, offset, "partition assigned, at its stored position")
                }
                None if self.shared.placement.is_some() => {
                    tracing::info!(topic = %p.topic, partition = p.partition, "partition assigned, no stored position: at the group's offset")
                }
                None => tracing::info!(topic = %p.topic, partition = p.partition, "partition assigned"),
            }
        }
    }

    /// Partitions are taken away: wait (bounded) for their batches in flight, commit what they
    /// reached, forget them.
    fn revoke(&self, consumer: &BaseConsumer<Self>, revoked: &[(String, i32)]) {
        let shared = &self.shared;
        let deadline = Instant::now() + REVOKE_WAIT;
        let mut partitions = shared.partitions();
        loop {
            let in_flight: u64 = revoked.iter().map(|(t, p)| partitions.in_flight(t, *p)).sum();
            if in_flight == 0 {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    in_flight,
                    topics = %shared.label,
                    "revoked partitions still have batches in flight; abandoned without committing (their next owner reads them again)"
                );
                break;
            }
            partitions = shared.resolved.wait_timeout(partitions, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        let commits = partitions.to_commit(Some(revoked));
        drop(partitions);
        shared.commit(consumer, &commits);
        let released: Vec<OutstandingToken> = {
            let mut partitions = shared.partitions();
            let released = revoked.iter().flat_map(|(t, p)| partitions.revoke(t, *p)).collect();
            shared.generation.store(partitions.generation(), Ordering::Release);
            released
        };
        drop(released);
        for (topic, partition) in revoked {
            tracing::info!(topic, partition, "partition revoked");
        }
    }
}

/// A polled message copied out of librdkafka's buffer.
fn received(m: &BorrowedMessage<'_>) -> Received {
    let headers = m
        .headers()
        .map(|h| {
            (0..h.count())
                .filter_map(|i| h.try_get(i))
                .map(|h| (h.key.to_owned(), h.value.map(Bytes::copy_from_slice).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    Received {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(Bytes::copy_from_slice),
        payload: m.payload().map(Bytes::copy_from_slice),
        headers,
        timestamp_millis: m.timestamp().to_millis(),
    }
}

/// A polled message: admitted (stamped with its token) and decoded, or `None` when it is
/// dropped (its partition is not assigned any more, or waits for a seek back: it is fetched
/// again later). The first message of a chunk notes the table's generation.
fn admit<T: Record>(shared: &Shared, message: &BorrowedMessage<'_>, first: bool, generation: &mut u64) -> Option<Incoming<T, Token>> {
    let token = {
        let mut partitions = shared.partitions();
        let token =
            partitions.slot_of(message.topic(), message.partition()).and_then(|slot| partitions.admit_to(slot, message.offset()))?;
        if first {
            *generation = partitions.generation();
        }
        token
    };
    Some(decode::<T>(received(message), token))
}

/// The consumer's thread.
struct Worker<T> {
    consumer: Arc<BaseConsumer<Context>>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Result<Chunk<T>, ConnectorError>>,
    poll_timeout: Duration,
    chunk: Vec<Incoming<T, Token>>,
    chunk_generation: u64,
    /// The table's generation when [`Worker::seek`] last read it.
    seen_generation: u64,
    /// A seek failed and is retried at the next turn.
    seek_pending: bool,
    /// Turns of the loop (one a message polled).
    turns: u64,
    /// Whether the last turn polled a message.
    busy: bool,
    last_commit: Instant,
    /// The partitions paused while the pipeline is behind.
    paused: Option<TopicPartitionList>,
    /// When the hand-over was first found full (pause after one poll timeout of that).
    full_since: Option<Instant>,
}

impl<T: Record> Worker<T> {
    fn run(mut self, closed: tokio::sync::oneshot::Sender<()>) {
        let _ = self.shared.thread.set(std::thread::current());
        loop {
            if self.shared.stop.load(Ordering::Acquire) {
                break;
            }
            if let Some(error) = self.shared.take_fatal() {
                let _ = self.tx.blocking_send(Err(error));
                break;
            }
            self.seek();
            // While messages stream in, the clock is read for the commit interval every 64
            // turns, not every message; on any other turn (idle, waiting for room), every time.
            self.turns = self.turns.wrapping_add(1);
            if !self.busy || self.turns % 64 == 0 || self.tx.is_closed() {
                self.commit(false);
            }
            self.busy = false;
            if self.tx.is_closed() {
                // The stream has ended: only the commits of the last acknowledgements are left
                // (polling serves their results; a message polled now is not handed over).
                let _ = self.consumer.poll(self.poll_timeout);
                continue;
            }
            // A chunk is handed over when full, or when the consumer has nothing more at once
            // (below); with room left in it, keep polling. (Handing over every message cost an
            // allocation and a channel send a message.)
            let room = if self.chunk.is_empty() || self.chunk.len() >= CHUNK { self.hand_over() } else { true };
            if !room {
                // The pipeline is behind: keep polling (rebalances, commits) with the
                // partitions paused, or wait for room.
                if self.paused.is_none() && self.full_since.is_some_and(|t| t.elapsed() >= self.poll_timeout) {
                    self.pause();
                }
                if self.paused.is_none() {
                    std::thread::park_timeout(self.poll_timeout / 4);
                    continue;
                }
            } else if self.paused.is_some() {
                self.resume();
            }
            let timeout = if self.chunk.is_empty() { self.poll_timeout } else { Duration::ZERO };
            match self.consumer.poll(timeout) {
                None => {
                    if !self.chunk.is_empty() {
                        self.hand_over();
                    }
                }
                Some(Ok(message)) => {
                    self.busy = true;
                    if let Some(incoming) = admit::<T>(&self.shared, &message, self.chunk.is_empty(), &mut self.chunk_generation) {
                        self.chunk.push(incoming);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                    tracing::error!(error = %e, topics = %self.shared.label, "fatal consumer error; the source stops");
                    let error = connector_error(&self.shared.component(), "consume", &e);
                    let _ = self.tx.blocking_send(Err(error));
                    break;
                }
                Some(Err(e)) => tracing::warn!(error = %e, topics = %self.shared.label, "consumer error; librdkafka retries"),
            }
            if self.chunk.len() >= CHUNK {
                self.hand_over();
            }
        }
        // Every batch was acknowledged (or the stream was dropped): commit what is done, then
        // close the consumer (it leaves the group; the revoke callback finds nothing in flight).
        self.commit(true);
        let Worker { consumer, .. } = self;
        // The last reference: closing runs here (an acknowledgement holds it only for a call).
        drop(consumer);
        tracing::debug!("kafka consumer closed");
        let _ = closed.send(());
    }

    /// Hand the chunk in hand over to the pipeline; false when the hand-over is full.
    fn hand_over(&mut self) -> bool {
        if self.chunk.is_empty() {
            return self.tx.capacity() > 0;
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        match self.tx.try_send(Ok((self.chunk_generation, chunk))) {
            Ok(()) => {
                self.full_since = None;
                true
            }
            Err(mpsc::error::TrySendError::Full(Ok((_, chunk)))) => {
                self.chunk = chunk;
                self.full_since.get_or_insert_with(Instant::now);
                false
            }
            // Closed (the stream ended): the messages are not committed, nothing to do.
            Err(_) => true,
        }
    }

    fn pause(&mut self) {
        match self.consumer.assignment() {
            Ok(assignment) => match self.consumer.pause(&assignment) {
                Ok(()) => {
                    tracing::debug!(topics = %self.shared.label, "pipeline behind: partitions paused");
                    self.paused = Some(assignment);
                }
                Err(e) => tracing::warn!(error = %e, topics = %self.shared.label, "cannot pause the partitions"),
            },
            Err(e) => tracing::warn!(error = %e, topics = %self.shared.label, "cannot read the assignment to pause it"),
        }
    }

    fn resume(&mut self) {
        let Some(paused) = self.paused.take() else { return };
        // Partitions revoked meanwhile are not ours to resume.
        let mut list = TopicPartitionList::new();
        if let Ok(assignment) = self.consumer.assignment() {
            for e in paused.elements() {
                if assignment.find_partition(e.topic(), e.partition()).is_some() {
                    list.add_partition(e.topic(), e.partition());
                }
            }
        }
        if let Err(e) = self.consumer.resume(&list) {
            tracing::warn!(error = %e, topics = %self.shared.label, "cannot resume the partitions; trying again");
            self.paused = Some(paused);
        } else {
            tracing::debug!(topics = %self.shared.label, "partitions resumed");
        }
    }

    /// Seek back the partitions whose batch failed: to the first unfinished offset, or under
    /// exactly-once to the stored position (a batch fenced off because another member wrote
    /// those offsets: reading resumes after what it wrote). A rewind that asks for a seek moves
    /// the table's generation, so the table is read (under its lock) only when the generation
    /// moved or a seek is still to be retried, not for every message.
    fn seek(&mut self) {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation == self.seen_generation && !self.seek_pending {
            return;
        }
        self.seen_generation = generation;
        self.seek_pending = false;
        let seeks = self.shared.partitions().seeks();
        if seeks.is_empty() {
            return;
        }
        let stored = match &self.shared.placement {
            None => HashMap::new(),
            Some(placement) => {
                let asked: Vec<Partition> = seeks.iter().map(|s| Partition::new(Arc::clone(&s.topic), s.partition)).collect();
                match placement.stored(&asked) {
                    Ok(stored) => stored,
                    Err(e) => {
                        tracing::error!(error = %e, topics = %self.shared.label, "cannot read the stored positions to seek; the source stops");
                        self.shared.fail(e);
                        return;
                    }
                }
            }
        };
        for seek in seeks {
            let at = stored.get(&Partition::new(Arc::clone(&seek.topic), seek.partition)).copied().unwrap_or(seek.offset);
            match self.consumer.seek(&seek.topic, seek.partition, Offset::Offset(at), Duration::from_secs(10)) {
                Ok(()) => {
                    tracing::info!(topic = %seek.topic, partition = seek.partition, offset = at, unfinished = seek.offset, "batch failed: seeked back");
                    self.shared.partitions().seeked(&seek, at);
                }
                Err(e) => {
                    self.seek_pending = true;
                    tracing::warn!(error = %e, topic = %seek.topic, partition = seek.partition, offset = seek.offset, "seek failed, retrying")
                }
            }
        }
        // Messages of those partitions fetched before the seek may be in the chunk in hand.
        if !self.chunk.is_empty() {
            let partitions = self.shared.partitions();
            if partitions.generation() != self.chunk_generation {
                self.chunk.retain(|m| partitions.is_current(&m.token));
            }
        }
    }

    /// Confirm what the watermarks reached with a synchronous commit, at most every
    /// [`COMMIT_INTERVAL`] unless `now`: librdkafka reports the result of an asynchronous
    /// manual commit only to a native `offset_commit_cb`, which rust-rdkafka does not set, and
    /// what an acknowledgement owes is released only once the group confirmed the offset
    /// that covers it.
    fn commit(&mut self, now: bool) {
        if !now && self.last_commit.elapsed() < COMMIT_INTERVAL && !self.tx.is_closed() {
            return;
        }
        let commits = self.shared.partitions().to_commit(None);
        if commits.is_empty() {
            return;
        }
        self.last_commit = Instant::now();
        self.shared.commit(&self.consumer, &commits);
    }
}

/// Asks the consumer's thread to finish when dropped (kept by the stream until it settled).
struct Stop(Arc<Shared>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
        self.0.wake();
    }
}

/// The hand-over, as the batcher's input: chunks in, messages out; stale ones dropped.
struct Reader<T> {
    rx: mpsc::Receiver<Result<Chunk<T>, ConnectorError>>,
    chunk: std::vec::IntoIter<Incoming<T, Token>>,
    generation: u64,
    shared: Arc<Shared>,
}

impl<T> Reader<T> {
    async fn next(&mut self) -> Option<crate::Result<Incoming<T, Token>>> {
        loop {
            if let Some(incoming) = self.chunk.next() {
                if self.generation == self.shared.generation.load(Ordering::Acquire) || self.shared.partitions().is_current(&incoming.token)
                {
                    return Some(Ok(incoming));
                }
                // Fetched before a seek back or a revoke: dropped (it comes again).
                continue;
            }
            match self.rx.recv().await? {
                Ok((generation, chunk)) => {
                    self.shared.wake();
                    self.generation = generation;
                    self.chunk = chunk.into_iter();
                }
                Err(e) => return Some(Err(Error::Source(e))),
            }
        }
    }
}

fn resolve(option: &'static str, value: &str) -> Result<String, ConfigError> {
    let resolved = interpolate(value)?;
    if resolved.is_empty() {
        return Err(ConfigError::Invalid { option, message: "must not be empty".into() });
    }
    Ok(resolved)
}

/// Create the consumer, check the brokers and the topics, subscribe, start the thread, and
/// return the batched stream.
pub(super) async fn open<T: Record>(source: KafkaSource<T>, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
    let label = source.topics.join(",");
    let component = format!("kafka source {label}");
    if source.topics.is_empty() {
        return Err(ConfigError::Invalid { option: "topics", message: "name at least one topic".into() }.into());
    }
    let topics = source.topics.iter().map(|t| resolve("topics", t)).collect::<Result<Vec<_>, _>>()?;
    let group = resolve("group", &source.group)?;
    let reset = source.auto_offset_reset.to_ascii_lowercase();
    if !["earliest", "latest"].contains(&reset.as_str()) {
        let message = format!("`{}`: use \"earliest\" or \"latest\"", source.auto_offset_reset);
        return Err(ConfigError::Invalid { option: "auto_offset_reset", message }.into());
    }
    let config = source.client.config(&[
        ("group.id", group.clone()),
        ("enable.auto.commit", "false".into()),
        ("enable.auto.offset.store", "false".into()),
        ("enable.partition.eof", "false".into()),
        ("auto.offset.reset", reset),
        ("session.timeout.ms", source.session_timeout.as_millis().to_string()),
        // Statistics (the consumer lag, for the progress line and the metrics) every 5 s.
        ("statistics.interval.ms", STATISTICS_INTERVAL_MS.to_string()),
        // When the local queue of prefetched messages is over its limits, librdkafka stops
        // fetching a partition for this long (default 1 s): a consumer whose pipeline lags for
        // a moment then idles for a second. Measured: 1M messages over 101 partitions, 114 k/s
        // with the default, 166 k/s with 10 ms (benches/kafka.rs). A user's
        // `properties` still win.
        ("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string()),
    ])?;
    let outstanding = Outstanding::new();
    let shared = Arc::new(Shared {
        partitions: Mutex::new(Partitions::new()),
        resolved: Condvar::new(),
        generation: AtomicU64::new(0),
        label: label.clone(),
        outstanding: outstanding.clone(),
        stop: AtomicBool::new(false),
        thread: OnceLock::new(),
        lag: ctx.lag.clone(),
        placement: ctx.positions().map(|store| Placement {
            store,
            group: Arc::from(group.as_str()),
            runtime: tokio::runtime::Handle::current(),
            component: component.clone(),
        }),
        fatal: Mutex::new(None),
        failed: AtomicBool::new(false),
        consumer: OnceLock::new(),
    });
    if let Some(placement) = &shared.placement {
        tracing::info!(topics = %label, group = %group, store = %placement.store.describe(), "exactly-once: partitions start at the positions the sink stored");
    }

    // Blocking calls (metadata, subscribe) off the runtime's threads.
    let context = Context { shared: Arc::clone(&shared) };
    let comp = component.clone();
    let subscribe = topics.clone();
    let consumer = tokio::task::spawn_blocking(move || -> Result<BaseConsumer<Context>, ConnectorError> {
        let consumer: BaseConsumer<Context> =
            config.create_with_context(context).map_err(|e| connector_error(&comp, "cannot create the consumer", &e))?;
        check_topics(&consumer, &subscribe, &comp)?;
        let names: Vec<&str> = subscribe.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(|e| connector_error(&comp, "cannot subscribe", &e))?;
        Ok(consumer)
    })
    .await
    .map_err(|e| Error::Source(ConnectorError::permanent(component.clone(), format!("opening panicked: {e}"))))?
    .map_err(Error::Source)?;
    tracing::info!(topics = %label, group = %group, "kafka source subscribed");

    let consumer = Arc::new(consumer);
    let _ = shared.consumer.set(Arc::downgrade(&consumer));
    let (tx, rx) = mpsc::channel(CHUNKS_IN_HAND_OVER);
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let worker = Worker {
        consumer,
        shared: Arc::clone(&shared),
        tx,
        poll_timeout: source.poll_timeout,
        chunk: Vec::with_capacity(CHUNK),
        chunk_generation: 0,
        seen_generation: u64::MAX,
        seek_pending: false,
        turns: 0,
        busy: false,
        last_commit: Instant::now(),
        paused: None,
        full_since: None,
    };
    std::thread::Builder::new()
        .name("etl-kafka-consumer".into())
        .spawn(move || worker.run(closed_tx))
        .map_err(|e| Error::Source(ConnectorError::permanent(component.clone(), format!("cannot start the consumer thread: {e}"))))?;

    let reader = Reader { rx, chunk: Vec::new().into_iter(), generation: 0, shared: Arc::clone(&shared) };
    // Boxed: the state moves in and out of each item's future, a pointer rather than the reader.
    let input = futures::stream::unfold(Box::new(reader), |mut reader| async move {
        let item = reader.next().await?;
        Some((item, reader))
    });
    let acks = Arc::clone(&shared);
    let consumer_group: Arc<str> = Arc::from(group.as_str());
    let make_ack = move |tokens: Vec<Token>| {
        let (issued, ranges) = {
            let mut partitions = acks.partitions();
            let issued = partitions.issue(&tokens);
            let ranges: Vec<OffsetRange> = issued.iter().filter_map(|i| partitions.range(i)).collect();
            (issued, ranges)
        };
        let owed: Vec<(Issued, OutstandingToken)> = issued.into_iter().map(|i| (i, acks.outstanding.token())).collect();
        let shared = Arc::clone(&acks);
        Stamp::new(Ack::new(move |status| shared.resolve(owed, status)), Positions::new(Arc::clone(&consumer_group), ranges))
    };
    let origin: Arc<str> = Arc::from(format!("kafka {label}"));
    let mut batches = batched(input, source.batching, ctx.shutdown, origin, make_ack);
    if shared.placement.is_some() {
        // A sink that stores positions writes what the ranges cover, each offset once: not
        // the copies fetched before a seek back that the batch being filled still held.
        batches = Box::pin(batches.map(|batch| {
            batch.map(|mut batch| {
                let records = read_once(batch.positions(), batch.meta().iter());
                let failures = read_once(batch.positions(), batch.failures().iter().map(|f| &f.meta));
                batch.retain(&records, &failures);
                batch
            })
        }));
    }
    // The stream's end waits for every emitted batch to be acknowledged and its offsets
    // committed, then stops the thread, and waits for the consumer to close (leave the group).
    let settled = settle_at_end(batches, outstanding, Stop(shared));
    let closed = futures::stream::once(async move {
        let _ = closed_rx.await;
    })
    .filter_map(|()| async { None });
    Ok(Box::pin(settled.chain(closed)))
}
