//! The pure part of a [`Broadcast`](super::Broadcast): a bounded log of sequence-numbered
//! entries and one cursor per named subscriber. No locks, no clock, no waking: the handle in
//! `broadcast.rs` wraps it in a mutex and wakes producers and subscribers after each call.

use super::Overflow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a subscriber's handles share with its cursor (read without the log's lock).
#[derive(Debug, Default)]
pub(super) struct SubscriberShared {
    /// Entries dropped before this subscriber read them, in total.
    pub(super) missed: AtomicU64,
    /// Bumped on every rewind: entries a reader buffered under an older generation are stale.
    pub(super) generation: AtomicU64,
    /// The first sequence number not yet acknowledged (a copy of the cursor's, for handles).
    pub(super) acked: AtomicU64,
}

/// One subscriber's place in the log, by sequence number (never by list position: entries
/// dropped at the front do not move it).
#[derive(Debug)]
struct Cursor {
    /// Every entry below this sequence number is acknowledged (or was dropped).
    acked: u64,
    /// The next sequence number to hand out (`>= acked`; the entries between are in flight).
    read: u64,
    /// Ranges `start..end` acknowledged ahead of `acked` (a later batch finished first).
    done: BTreeMap<u64, u64>,
    /// Whether a source is reading with this cursor now.
    open: bool,
    shared: Arc<SubscriberShared>,
}

impl Cursor {
    /// Move `acked` over every acknowledged range it now touches.
    fn fold(&mut self) {
        while let Some((&start, &end)) = self.done.first_key_value() {
            if start > self.acked {
                break;
            }
            self.acked = self.acked.max(end);
            self.done.remove(&start);
        }
        self.read = self.read.max(self.acked);
        self.shared.acked.store(self.acked, Ordering::Relaxed);
    }
}

/// Entries read by one subscriber: each with its sequence number, and how many entries were
/// dropped before it could read them (counted once, here).
#[derive(Debug)]
pub(super) struct Read<T> {
    pub(super) entries: Vec<(u64, T)>,
    pub(super) missed: u64,
}

/// Why a cursor could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OpenError {
    Busy,
    Unknown,
}

/// The log and its cursors.
#[derive(Debug)]
pub(super) struct Log<T> {
    entries: VecDeque<T>,
    /// The sequence number of `entries[0]` (of the next entry when the log is empty).
    first: u64,
    capacity: usize,
    overflow: Overflow,
    cursors: HashMap<String, Cursor>,
    closed: bool,
    /// Entries dropped by [`Overflow::DropOldest`], in total.
    dropped: u64,
}

impl<T: Clone> Log<T> {
    pub(super) fn new(capacity: usize, overflow: Overflow) -> Self {
        Log { entries: VecDeque::new(), first: 0, capacity: capacity.max(1), overflow, cursors: HashMap::new(), closed: false, dropped: 0 }
    }

    /// The sequence number the next entry gets.
    pub(super) fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(super) fn overflow(&self) -> Overflow {
        self.overflow
    }

    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    pub(super) fn close(&mut self) {
        self.closed = true;
    }

    pub(super) fn subscribers(&self) -> usize {
        self.cursors.len()
    }

    /// The cursor of `name`, created at the current end if it does not exist yet. Returns its
    /// shared counters.
    pub(super) fn subscribe(&mut self, name: &str) -> Arc<SubscriberShared> {
        let end = self.end();
        let cursor = self.cursors.entry(name.to_owned()).or_insert_with(|| {
            let shared = Arc::new(SubscriberShared::default());
            shared.acked.store(end, Ordering::Relaxed);
            Cursor { acked: end, read: end, done: BTreeMap::new(), open: false, shared }
        });
        Arc::clone(&cursor.shared)
    }

    /// Remove the cursor of `name`; whether there was one.
    pub(super) fn unsubscribe(&mut self, name: &str) -> bool {
        let removed = self.cursors.remove(name).is_some();
        self.collect();
        removed
    }

    /// Start reading with `name`'s cursor: from its first unacknowledged entry.
    pub(super) fn open(&mut self, name: &str) -> Result<Arc<SubscriberShared>, OpenError> {
        let cursor = self.cursors.get_mut(name).ok_or(OpenError::Unknown)?;
        if cursor.open {
            return Err(OpenError::Busy);
        }
        cursor.open = true;
        cursor.read = cursor.acked;
        cursor.shared.generation.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::clone(&cursor.shared))
    }

    /// The source reading with `name`'s cursor stopped.
    pub(super) fn release(&mut self, name: &str) {
        if let Some(cursor) = self.cursors.get_mut(name) {
            cursor.open = false;
        }
    }

    /// The lowest acknowledged cursor: entries below it are needed by nobody. With no
    /// subscriber, the end (nothing is kept).
    fn floor(&self) -> u64 {
        self.cursors.values().map(|c| c.acked).min().unwrap_or_else(|| self.end())
    }

    /// Drop the entries every subscriber acknowledged. Returns whether any were dropped.
    pub(super) fn collect(&mut self) -> bool {
        let floor = self.floor().min(self.end());
        let n = floor.saturating_sub(self.first);
        if n == 0 {
            return false;
        }
        self.entries.drain(..n as usize);
        self.first = floor;
        true
    }

    /// How many entries an append can take now without dropping any (`usize::MAX` under
    /// [`Overflow::DropOldest`], which never waits).
    pub(super) fn room(&self) -> usize {
        match self.overflow {
            Overflow::Block => self.capacity.saturating_sub(self.entries.len()),
            Overflow::DropOldest => usize::MAX,
        }
    }

    /// Append up to [`room`](Self::room) entries from `items`; returns how many. Under
    /// [`Overflow::DropOldest`] a full log drops its oldest entry for each new one.
    pub(super) fn append(&mut self, items: &[T]) -> usize {
        self.collect();
        if self.cursors.is_empty() {
            // Nobody to deliver to: a subscriber created later starts at the end anyway.
            self.first += items.len() as u64;
            return items.len();
        }
        let n = items.len().min(self.room());
        for item in &items[..n] {
            if self.entries.len() >= self.capacity {
                self.entries.pop_front();
                self.first += 1;
                self.dropped += 1;
            }
            self.entries.push_back(item.clone());
        }
        n
    }

    /// Up to `max` entries for `name` from its read position. Entries dropped before it read
    /// them are counted as missed (here, once) and skipped over, explicitly.
    pub(super) fn read(&mut self, name: &str, max: usize) -> Read<T> {
        let first = self.first;
        let end = self.end();
        let Some(cursor) = self.cursors.get_mut(name) else {
            return Read { entries: Vec::new(), missed: 0 };
        };
        let mut missed = 0;
        if cursor.read < first {
            missed = first - cursor.read;
            cursor.read = first;
            cursor.shared.missed.fetch_add(missed, Ordering::Relaxed);
            if cursor.acked < first {
                cursor.acked = first;
                cursor.done.retain(|_, e| *e > first);
                cursor.fold();
            }
        }
        let from = (cursor.read - first) as usize;
        let n = max.min((end - cursor.read) as usize);
        let entries = self.entries.range(from..from + n).enumerate().map(|(i, e)| (cursor.read + i as u64, e.clone())).collect();
        cursor.read += n as u64;
        Read { entries, missed }
    }

    /// Whether `name` has a cursor.
    pub(super) fn has(&self, name: &str) -> bool {
        self.cursors.contains_key(name)
    }

    /// Whether `name` has read everything (nothing more will come once the log is closed).
    pub(super) fn drained(&self, name: &str) -> bool {
        self.cursors.get(name).is_none_or(|c| c.read >= self.end())
    }

    /// `name` acknowledged `start..end`. Returns whether its cursor moved.
    pub(super) fn complete(&mut self, name: &str, start: u64, end: u64) -> bool {
        let Some(cursor) = self.cursors.get_mut(name) else { return false };
        if end <= cursor.acked {
            return false;
        }
        let before = cursor.acked;
        let slot = cursor.done.entry(start).or_insert(end);
        *slot = (*slot).max(end);
        cursor.fold();
        cursor.acked != before
    }

    /// `name`'s batch starting at `start` failed: read again from there.
    pub(super) fn rewind(&mut self, name: &str, start: u64) {
        let Some(cursor) = self.cursors.get_mut(name) else { return };
        let start = start.max(cursor.acked);
        if start < cursor.read {
            cursor.read = start;
            cursor.shared.generation.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(read: &Read<char>) -> Vec<u64> {
        read.entries.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn entries_are_kept_until_every_cursor_acknowledged_them() {
        let mut log = Log::new(4, Overflow::Block);
        log.subscribe("a");
        log.subscribe("b");
        assert_eq!(log.append(&['x', 'y', 'z']), 3);
        assert_eq!(log.room(), 1);
        let a = log.read("a", 10);
        assert_eq!(seqs(&a), [0, 1, 2]);
        assert!(log.complete("a", 0, 3));
        log.collect();
        assert_eq!(log.len(), 3, "b has not read them");
        let b = log.read("b", 2);
        assert_eq!(seqs(&b), [0, 1]);
        log.complete("b", 0, 2);
        log.collect();
        assert_eq!((log.len(), log.room()), (1, 3));
    }

    #[test]
    fn without_subscribers_nothing_is_kept_and_a_late_subscriber_starts_at_the_end() {
        let mut log = Log::new(2, Overflow::Block);
        assert_eq!(log.append(&['x', 'y', 'z']), 3);
        assert_eq!((log.len(), log.end()), (0, 3));
        log.subscribe("late");
        log.append(&['w']);
        assert_eq!(seqs(&log.read("late", 10)), [3]);
    }

    #[test]
    fn drop_oldest_counts_what_a_lagging_cursor_missed_once() {
        let mut log = Log::new(3, Overflow::DropOldest);
        let slow = log.subscribe("slow");
        log.append(&['a', 'b', 'c', 'd', 'e']);
        assert_eq!(log.dropped(), 2);
        let read = log.read("slow", 10);
        assert_eq!((seqs(&read), read.missed), (vec![2, 3, 4], 2));
        assert_eq!(slow.missed.load(Ordering::Relaxed), 2);
        assert_eq!(log.read("slow", 10).missed, 0);
    }

    #[test]
    fn an_errored_batch_is_read_again_and_out_of_order_acks_wait_for_the_gap() {
        let mut log = Log::new(10, Overflow::Block);
        log.subscribe("s");
        log.append(&['a', 'b', 'c', 'd']);
        let first = log.read("s", 2);
        let second = log.read("s", 2);
        assert_eq!((seqs(&first), seqs(&second)), (vec![0, 1], vec![2, 3]));
        assert!(!log.complete("s", 2, 4), "0..2 still in flight");
        log.rewind("s", 0);
        assert_eq!(seqs(&log.read("s", 10)), [0, 1, 2, 3], "redelivered from the cursor");
        assert!(log.complete("s", 0, 2));
        log.collect();
        assert_eq!(log.len(), 0, "0..2 then the 2..4 acknowledged earlier");
    }

    #[test]
    fn an_open_cursor_cannot_be_opened_twice_and_reopens_at_its_acknowledged_entry() {
        let mut log = Log::new(10, Overflow::Block);
        log.subscribe("s");
        log.append(&['a', 'b']);
        log.open("s").expect("closed cursor");
        assert_eq!(log.open("s").err(), Some(OpenError::Busy));
        assert_eq!(log.open("nobody").err(), Some(OpenError::Unknown));
        assert_eq!(log.read("s", 10).entries.len(), 2);
        log.release("s");
        log.open("s").expect("released");
        assert_eq!(seqs(&log.read("s", 10)), [0, 1], "nothing was acknowledged");
    }
}
