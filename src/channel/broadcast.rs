//! [`Broadcast`]: an in-process, sequence-numbered, bounded log that every subscriber reads at
//! its own pace.

mod log;
mod sink;
mod subscription;

pub use sink::BroadcastSink;
pub use subscription::{missed, Subscriber, Subscription, MISSED_HEADER};

use log::{Log, OpenError, Read, SubscriberShared};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;

/// What a [`Broadcast`] does when its log is full because a subscriber lags: chosen at
/// construction, never a silent skip.
///
/// ```
/// use etl::channel::{Broadcast, Overflow};
/// let log = Broadcast::<i64>::new(1000, Overflow::DropOldest);
/// assert_eq!(log.overflow(), Overflow::DropOldest);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// The producer waits until the slowest subscriber acknowledged enough entries to make
    /// room: nothing is lost, every subscriber gets every entry, the slowest sets the pace.
    #[default]
    Block,
    /// The producer never waits: the oldest entries are dropped, and a subscriber that had not
    /// read them is told how many it missed (the [`MISSED_HEADER`] of the next record it
    /// receives, [`Subscriber::missed`], the `etl_broadcast_missed_total` counter and a
    /// warning in the log).
    DropOldest,
}

/// A write into a closed [`Broadcast`].
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let log = etl::channel::Broadcast::<i64>::new(10, etl::channel::Overflow::Block);
/// log.close();
/// assert_eq!(log.publish(&[1]).await, Err(etl::channel::BroadcastClosed));
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the broadcast log is closed")]
pub struct BroadcastClosed;

/// Why a [`Subscription`] could not start reading.
///
/// ```
/// let e = etl::channel::SubscribeError::Busy { name: "dashboard".into() };
/// assert!(e.to_string().contains("dashboard"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// Another source is reading with this subscriber's cursor now.
    #[error("subscriber `{name}` is already being read by another source")]
    Busy {
        /// The subscriber's name.
        name: String,
    },
    /// The subscriber was removed with [`Broadcast::unsubscribe`].
    #[error("subscriber `{name}` was unsubscribed")]
    Unsubscribed {
        /// The subscriber's name.
        name: String,
    },
}

/// An in-process log of records, each numbered by a sequence (0, 1, 2, ...), read by any
/// number of named subscribers, each at its own pace: a fan-out between pipelines.
///
/// * **Writes** ([`publish`](Self::publish), or a pipeline's [`sink`](Self::sink)) only
///   append and wake the subscribers: no subscriber code runs inside a write.
/// * **Subscribers** ([`subscribe`](Self::subscribe), a pipeline source) each keep a cursor
///   by sequence number. Their cursor moves when their batch is acknowledged (delivered or
///   dead-lettered by their pipeline): at-least-once within the process. A batch that errored
///   is read again from its first entry (with the entries after it).
/// * **Bounded**: the log keeps at most `capacity` entries not yet acknowledged by every
///   subscriber. When full, [`Overflow`] decides: the producer waits ([`Overflow::Block`]), or
///   the oldest entries go and the lagging subscribers are told how many they missed
///   ([`Overflow::DropOldest`]).
/// * **Who sees what**: a subscriber created before the first write sees every record; one
///   created later starts at the end of the log (the next record written). Records written
///   while there is no subscriber at all are not kept. A subscriber's cursor lives until
///   [`unsubscribe`](Self::unsubscribe): subscribing again with the same name resumes at its
///   first unacknowledged record (a pipeline restarted after an error loses nothing).
/// * **Close**: after [`close`](Self::close), writes fail and each subscriber's source ends
///   once it has read everything.
///
/// Under [`Overflow::Block`], a subscriber that stops reading (its pipeline ended, or it was
/// never run) holds the producers forever: unsubscribe it.
///
/// ```
/// use etl::prelude::*;
/// use etl::channel::{Broadcast, Overflow};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let processed = Broadcast::<i64>::new(1000, Overflow::Block);
/// let dashboard = processed.subscribe("dashboard"); // before the first write: sees everything
/// let audit = processed.subscribe("audit");
/// Pipeline::from(etl::source::iter(vec![1i64, 2, 3])).to(processed.sink()).handle_signals(false).run().await?;
/// processed.close();
/// for subscriber in [dashboard, audit] {
///     let out = etl::sink::collect();
///     Pipeline::from(subscriber).to(out.sink()).handle_signals(false).run().await?;
///     assert_eq!(out.records(), vec![1, 2, 3]);
/// }
/// # Ok::<(), etl::Error>(()) }).unwrap();
/// ```
pub struct Broadcast<T> {
    shared: Arc<Shared<T>>,
}

struct Shared<T> {
    log: Mutex<Log<T>>,
    /// Woken when entries were appended, a cursor was rewound, or the log closed.
    appended: Notify,
    /// Woken when room was made (entries acknowledged, a subscriber removed) or the log closed.
    room: Notify,
    name: String,
}

impl<T> Clone for Broadcast<T> {
    fn clone(&self) -> Self {
        Broadcast { shared: Arc::clone(&self.shared) }
    }
}

impl<T: Clone> std::fmt::Debug for Broadcast<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let log = self.lock();
        f.debug_struct("Broadcast")
            .field("name", &self.shared.name)
            .field("capacity", &log.capacity())
            .field("overflow", &log.overflow())
            .field("kept", &log.len())
            .field("end", &log.end())
            .field("subscribers", &log.subscribers())
            .field("closed", &log.is_closed())
            .finish()
    }
}

impl<T: Clone> Broadcast<T> {
    /// A log keeping up to `capacity` entries (at least 1), named `broadcast`.
    ///
    /// ```
    /// let log = etl::channel::Broadcast::<String>::new(100, etl::channel::Overflow::Block);
    /// assert_eq!(log.end(), 0);
    /// ```
    pub fn new(capacity: usize, overflow: Overflow) -> Self {
        Broadcast::named("broadcast", capacity, overflow)
    }

    /// A log named `name` (for logs, metrics and the pipelines' descriptions).
    ///
    /// ```
    /// let log = etl::channel::Broadcast::<i64>::named("processed", 100, etl::channel::Overflow::Block);
    /// assert_eq!(log.name(), "processed");
    /// ```
    pub fn named(name: impl Into<String>, capacity: usize, overflow: Overflow) -> Self {
        let shared =
            Shared { log: Mutex::new(Log::new(capacity, overflow)), appended: Notify::new(), room: Notify::new(), name: name.into() };
        Broadcast { shared: Arc::new(shared) }
    }

    fn lock(&self) -> MutexGuard<'_, Log<T>> {
        // Every update of the log is a few infallible collection operations: a panic elsewhere
        // while the lock was held cannot have left it half-updated.
        self.shared.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The log's name.
    ///
    /// ```
    /// assert_eq!(etl::channel::Broadcast::<i64>::new(1, Default::default()).name(), "broadcast");
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The policy for a full log.
    ///
    /// ```
    /// use etl::channel::{Broadcast, Overflow};
    /// assert_eq!(Broadcast::<i64>::new(1, Overflow::Block).overflow(), Overflow::Block);
    /// ```
    pub fn overflow(&self) -> Overflow {
        self.lock().overflow()
    }

    /// How many entries the log keeps at most.
    ///
    /// ```
    /// assert_eq!(etl::channel::Broadcast::<i64>::new(100, Default::default()).capacity(), 100);
    /// ```
    pub fn capacity(&self) -> usize {
        self.lock().capacity()
    }

    /// The sequence number the next record written gets (records written so far).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let log = etl::channel::Broadcast::<i64>::new(10, Default::default());
    /// log.publish(&[1, 2]).await.unwrap();
    /// assert_eq!(log.end(), 2);
    /// # });
    /// ```
    pub fn end(&self) -> u64 {
        self.lock().end()
    }

    /// Entries kept now (not yet acknowledged by every subscriber).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let log = etl::channel::Broadcast::<i64>::new(10, Default::default());
    /// let _s = log.subscribe("s");
    /// log.publish(&[1, 2]).await.unwrap();
    /// assert_eq!(log.len(), 2);
    /// # });
    /// ```
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no entry is kept.
    ///
    /// ```
    /// assert!(etl::channel::Broadcast::<i64>::new(10, Default::default()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries dropped by [`Overflow::DropOldest`] so far.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use etl::channel::{Broadcast, Overflow};
    /// let log = Broadcast::<i64>::new(2, Overflow::DropOldest);
    /// let _slow = log.subscribe("slow");
    /// log.publish(&[1, 2, 3]).await.unwrap();
    /// assert_eq!(log.dropped(), 1);
    /// # });
    /// ```
    pub fn dropped(&self) -> u64 {
        self.lock().dropped()
    }

    /// Append `records`, in order. Under [`Overflow::Block`] this waits while the log is full
    /// (appending what fits as room is made); under [`Overflow::DropOldest`] it never waits.
    /// Subscribers are woken, never run here.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let log = etl::channel::Broadcast::<&str>::new(10, Default::default());
    /// log.publish(&["a", "b"]).await?;
    /// # Ok::<(), etl::channel::BroadcastClosed>(()) }).unwrap();
    /// ```
    pub async fn publish(&self, records: &[T]) -> Result<(), BroadcastClosed> {
        let mut rest = records;
        loop {
            let wake = self.shared.room.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let appended = {
                let mut log = self.lock();
                if log.is_closed() {
                    return Err(BroadcastClosed);
                }
                log.append(rest)
            };
            if appended > 0 {
                self.shared.appended.notify_waiters();
                rest = &rest[appended..];
            }
            if rest.is_empty() {
                return Ok(());
            }
            tracing::trace!(broadcast = %self.shared.name, waiting = rest.len(), "broadcast log full; waiting for the slowest subscriber");
            wake.await;
        }
    }

    /// A subscriber named `name`: a pipeline source of the records from its cursor on. A new
    /// name starts at the end of the log (everything, before the first write); a name that
    /// exists resumes at its first unacknowledged record.
    ///
    /// ```
    /// use etl::prelude::*;
    /// let log = etl::channel::Broadcast::<i64>::named("processed", 10, Default::default());
    /// let dashboard = log.subscribe("dashboard");
    /// assert_eq!(dashboard.describe(), "broadcast processed (dashboard)");
    /// ```
    pub fn subscribe(&self, name: impl Into<String>) -> Subscription<T> {
        let name = name.into();
        let shared = self.lock().subscribe(&name);
        Subscription::new(self.clone(), Subscriber::new(name, shared))
    }

    /// Remove the subscriber `name` and its cursor (the entries only it still needed go; a
    /// source reading it ends).
    /// Returns whether it existed.
    ///
    /// ```
    /// let log = etl::channel::Broadcast::<i64>::new(10, Default::default());
    /// let _s = log.subscribe("s");
    /// assert!(log.unsubscribe("s"));
    /// assert!(!log.unsubscribe("s"));
    /// ```
    pub fn unsubscribe(&self, name: &str) -> bool {
        let removed = self.lock().unsubscribe(name);
        self.shared.room.notify_waiters();
        self.shared.appended.notify_waiters();
        removed
    }

    /// Refuse new records. Each subscriber's source ends once it has read everything.
    ///
    /// ```
    /// let log = etl::channel::Broadcast::<i64>::new(10, Default::default());
    /// log.close();
    /// assert!(log.is_closed());
    /// ```
    pub fn close(&self) {
        self.lock().close();
        self.shared.appended.notify_waiters();
        self.shared.room.notify_waiters();
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// ```
    /// assert!(!etl::channel::Broadcast::<i64>::new(10, Default::default()).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.lock().is_closed()
    }

    // The subscription's side, crate-private.

    pub(crate) fn describe_subscriber(&self, name: &str) -> String {
        format!("broadcast {} ({name})", self.shared.name)
    }

    fn open(&self, name: &str) -> Result<Arc<SubscriberShared>, SubscribeError> {
        self.lock().open(name).map_err(|e| match e {
            OpenError::Busy => SubscribeError::Busy { name: name.to_owned() },
            OpenError::Unknown => SubscribeError::Unsubscribed { name: name.to_owned() },
        })
    }

    fn release(&self, name: &str) {
        self.lock().release(name);
    }

    /// Wait for entries for `name` from its cursor (at most `max`). `None` when the log is
    /// closed and `name` has read everything, when `name` was unsubscribed, or on `cancel`.
    async fn next(&self, name: &str, max: usize, cancel: &tokio_util::sync::CancellationToken) -> Option<Read<T>> {
        loop {
            let wake = self.shared.appended.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            {
                let mut log = self.lock();
                let read = log.read(name, max);
                if !read.entries.is_empty() {
                    return Some(read);
                }
                if !log.has(name) {
                    tracing::warn!(broadcast = %self.shared.name, subscriber = name, "broadcast subscriber removed while it was read; its source ends");
                    return None;
                }
                if log.is_closed() && log.drained(name) {
                    return None;
                }
            }
            tokio::select! {
                _ = wake => {}
                _ = cancel.cancelled() => return None,
            }
        }
    }

    /// `name`'s batch made of the runs `start..end` was acknowledged with `done` true
    /// (delivered or dead-lettered) or false (errored: read again from its first entry).
    fn settle(&self, name: &str, runs: &[(u64, u64)], done: bool) {
        let mut log = self.lock();
        if done {
            let moved = runs.iter().fold(false, |moved, &(start, end)| log.complete(name, start, end) | moved);
            if moved && log.collect() {
                drop(log);
                self.shared.room.notify_waiters();
            }
        } else if let Some(start) = runs.iter().map(|(start, _)| *start).min() {
            log.rewind(name, start);
            drop(log);
            self.shared.appended.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn a_blocked_publish_resumes_when_the_slowest_subscriber_acknowledges() {
        let log = Broadcast::<u32>::new(2, Overflow::Block);
        let _s = log.subscribe("s");
        log.open("s").expect("not open yet");
        let writer = {
            let log = log.clone();
            tokio::spawn(async move { log.publish(&[0, 1, 2, 3]).await })
        };
        let never = CancellationToken::new();
        let first = log.next("s", 10, &never).await.expect("entries");
        assert_eq!(first.entries.len(), 2);
        tokio::task::yield_now().await;
        assert!(!writer.is_finished(), "the log is full until 0..2 is acknowledged");
        log.settle("s", &[(0, 2)], true);
        writer.await.expect("no panic").expect("open log");
        let second = log.next("s", 10, &never).await.expect("entries");
        assert_eq!(second.entries, [(2, 2), (3, 3)]);
        log.close();
        log.settle("s", &[(2, 4)], true);
        assert!(log.next("s", 10, &never).await.is_none(), "closed and drained");
    }

    #[tokio::test]
    async fn a_reader_ends_when_its_subscriber_is_removed() {
        let log = Broadcast::<u32>::new(2, Overflow::Block);
        let _s = log.subscribe("s");
        let reader = {
            let log = log.clone();
            tokio::spawn(async move { log.next("s", 10, &CancellationToken::new()).await.is_none() })
        };
        tokio::task::yield_now().await;
        assert!(log.unsubscribe("s"));
        assert!(reader.await.expect("no panic"), "ended, not waiting forever");
    }
}
