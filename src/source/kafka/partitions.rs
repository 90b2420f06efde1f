//! The pure bookkeeping of the Kafka source: per assigned partition, the ordered
//! [`Watermark`] of the batches in flight, the offset the group may commit, a pending seek
//! after a failed batch, and what waits for the next commit. No I/O: the consumer thread,
//! the acknowledgement callbacks and the rebalance callback drive it under one lock.
//!
//! * Every message polled is **admitted** into the slot of its partition's current assignment,
//!   which stamps it with a [`Token`]: the slot (one per assignment of a partition, never
//!   reused), the slot's epoch, and the offset. A message of a partition that is not assigned,
//!   or whose slot waits for a seek, is not admitted (dropped: it will be fetched again).
//! * A batch's tokens are **issued** per slot: one sequence number of the slot's watermark,
//!   with the batch's end offset (its last offset + 1). Tokens of an older epoch or slot are
//!   left out: their records are not this assignment's to commit.
//! * When the batch resolves, a done status moves the watermark (only over the contiguous
//!   prefix) and so the **commit point**; an errored one holds it, forgets what was issued
//!   after the prefix, bumps the epoch (every message fetched before is now stale) and asks
//!   for a **seek** back to the commit point: the first offset not finished.
//! * What an acknowledgement owes (a token of [`crate::ack::Outstanding`]) waits in the slot
//!   until a commit covers its end offset, so that a stream's end waits for the commit.
//! * Each batch's share of a partition is also a **range** ([`OffsetRange`]) for sinks that
//!   store positions (exactly-once): from where the read continued (the previous batch's end,
//!   or where the partition was placed: a stored position, a seek back) to its end offset.
//!   Consecutive ranges of a partition meet, whatever gaps the offsets have.

use crate::ack::{Status, Watermark};
use crate::positions::OffsetRange;
use foldhash::HashMap;
use foldhash::HashMapExt;
use std::sync::Arc;

/// Where a polled message stands: its partition's assignment, the epoch it was fetched in, its
/// offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub slot: u32,
    pub epoch: u32,
    pub offset: i64,
}

/// A batch's share of one partition: its sequence number in the partition's watermark and its
/// end offset (the offset to commit once it and everything before it is done).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Issued {
    pub slot: u32,
    pub seq: u64,
    /// Where this batch's read of the partition continued from (see [`OffsetRange::from`]).
    pub from: i64,
    pub end: i64,
}

/// A partition the consumer must seek: to `offset`, for the slot's `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seek {
    pub slot: u32,
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub epoch: u32,
}

/// An offset to commit (the next offset to read, as Kafka commits it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Commit {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug)]
struct Slot<W> {
    topic: Arc<str>,
    partition: i32,
    watermark: Watermark<i64>,
    epoch: u32,
    /// The first offset not finished: where a seek goes, what a commit stores. `None` until
    /// the first message of the assignment.
    done: Option<i64>,
    /// A seek this slot waits for (messages are not admitted meanwhile).
    seek_to: Option<i64>,
    /// Whether a batch of this assignment completed the prefix (before that, `done` is only
    /// where reading started: nothing to commit).
    moved: bool,
    /// The last offset the group confirmed.
    committed: Option<i64>,
    /// The last offset asked for in an asynchronous commit (whose result librdkafka does not
    /// report: a synchronous commit confirms it later).
    requested: Option<i64>,
    /// (end offset, what is owed) released once a commit reaches the end offset.
    waiting: Vec<(i64, W)>,
    /// Where the next batch's range starts: the last batch's end, or where the partition was
    /// placed. `None` until known (placed at the group's offset: the first offset read).
    next_from: Option<i64>,
}

/// Every assigned partition of one consumer. `W` is what an acknowledgement owes until the
/// commit that covers it.
#[derive(Debug)]
pub(crate) struct Partitions<W> {
    slots: HashMap<u32, Slot<W>>,
    /// The current slot of each assigned partition, by topic.
    current: HashMap<Arc<str>, HashMap<i32, u32>>,
    next_slot: u32,
    /// Bumped whenever tokens may have become stale (a rewind, a revoke): a reader that saw
    /// the same generation when the message was admitted need not check it again.
    generation: u64,
}

impl<W> Default for Partitions<W> {
    fn default() -> Self {
        Partitions { slots: HashMap::new(), current: HashMap::new(), next_slot: 0, generation: 0 }
    }
}

impl<W> Partitions<W> {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// See the field.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// `topic`/`partition` was assigned to this consumer (a new slot unless it already has one).
    #[cfg(test)]
    pub(crate) fn assign(&mut self, topic: &str, partition: i32) -> u32 {
        self.assign_at(topic, partition, None)
    }

    /// `topic`/`partition` was assigned to this consumer, placed at `at` (a stored position)
    /// or, with `None`, at the group's committed offset (or `auto.offset.reset`). A new slot
    /// unless it already has one.
    pub(crate) fn assign_at(&mut self, topic: &str, partition: i32, at: Option<i64>) -> u32 {
        if let Some(slot) = self.slot_of(topic, partition) {
            return slot;
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        let topic: Arc<str> = Arc::from(topic);
        self.current.entry(Arc::clone(&topic)).or_default().insert(partition, slot);
        self.slots.insert(
            slot,
            Slot {
                topic,
                partition,
                watermark: Watermark::new(),
                epoch: 0,
                done: None,
                seek_to: None,
                moved: false,
                committed: None,
                requested: None,
                waiting: Vec::new(),
                next_from: at,
            },
        );
        if let (Some(at), Some(s)) = (at, self.slots.get_mut(&slot)) {
            // A seek back before the first batch is done goes where the partition was placed.
            s.done = Some(at);
        }
        slot
    }

    /// The partition was revoked: forget it; late acknowledgements of its batches change
    /// nothing. Returns what waited for a commit (to drop once the final commit is made).
    pub(crate) fn revoke(&mut self, topic: &str, partition: i32) -> Vec<W> {
        let Some(slot) = self.current.get_mut(topic).and_then(|p| p.remove(&partition)) else { return Vec::new() };
        self.generation += 1;
        self.slots.remove(&slot).map(|s| s.waiting.into_iter().map(|(_, w)| w).collect()).unwrap_or_default()
    }

    /// Batches of the partition emitted and not done yet (0 when it is not assigned).
    pub(crate) fn in_flight(&self, topic: &str, partition: i32) -> u64 {
        self.slot_of(topic, partition).and_then(|s| self.slots.get(&s)).map_or(0, |s| s.watermark.outstanding())
    }

    /// A message was polled: its token, or `None` when it must be dropped (the partition is not
    /// assigned, or waits for a seek).
    #[cfg(test)]
    pub(crate) fn admit(&mut self, topic: &str, partition: i32, offset: i64) -> Option<Token> {
        let slot_id = self.slot_of(topic, partition)?;
        self.admit_to(slot_id, offset)
    }

    /// [`admit`](Self::admit) by slot (the consumer thread caches the slot of a partition).
    pub(crate) fn admit_to(&mut self, slot_id: u32, offset: i64) -> Option<Token> {
        let slot = self.slots.get_mut(&slot_id)?;
        if slot.seek_to.is_some() {
            return None;
        }
        slot.done.get_or_insert(offset);
        Some(Token { slot: slot_id, epoch: slot.epoch, offset })
    }

    /// The current slot of a partition.
    pub(crate) fn slot_of(&self, topic: &str, partition: i32) -> Option<u32> {
        self.current.get(topic).and_then(|p| p.get(&partition)).copied()
    }

    /// Whether a token still belongs to its slot's current epoch.
    pub(crate) fn is_current(&self, token: &Token) -> bool {
        self.slots.get(&token.slot).is_some_and(|s| s.epoch == token.epoch)
    }

    /// A batch with these tokens (in arrival order) is emitted: one sequence number per slot,
    /// stale tokens left out; each share's range continues where the slot's last one ended.
    pub(crate) fn issue(&mut self, tokens: &[Token]) -> Vec<Issued> {
        let mut issued: Vec<Issued> = Vec::new();
        // Where the last token went: a partition's messages arrive in runs (a fetch's message
        // set), so the search of the batch's shares is rarely needed.
        let mut last = 0;
        for token in tokens {
            if !self.is_current(token) {
                continue;
            }
            let share = match issued.get(last) {
                Some(i) if i.slot == token.slot => Some(last),
                _ => issued.iter().position(|i| i.slot == token.slot),
            };
            match share {
                Some(at) => {
                    last = at;
                    if let Some(i) = issued.get_mut(at) {
                        i.from = i.from.min(token.offset);
                        i.end = i.end.max(token.offset + 1);
                    }
                }
                None => {
                    last = issued.len();
                    issued.push(Issued { slot: token.slot, seq: 0, from: token.offset, end: token.offset + 1 });
                }
            }
        }
        for i in &mut issued {
            if let Some(slot) = self.slots.get_mut(&i.slot) {
                i.seq = slot.watermark.issue();
                if let Some(from) = slot.next_from {
                    i.from = from;
                }
                slot.next_from = Some(i.end);
            }
        }
        issued
    }

    /// The range of offsets a batch's share covers, as sinks that store positions see it.
    pub(crate) fn range(&self, issued: &Issued) -> Option<OffsetRange> {
        let slot = self.slots.get(&issued.slot)?;
        Some(OffsetRange { topic: Arc::clone(&slot.topic), partition: slot.partition, from: issued.from, to: issued.end })
    }

    /// A batch's share resolved with `status`; `owed` is kept until a commit covers it (or
    /// returned at once when nothing will be committed for it). Returns what to drop now.
    pub(crate) fn resolve(&mut self, issued: Issued, status: Status, owed: W) -> Vec<W> {
        let Some(slot) = self.slots.get_mut(&issued.slot) else { return vec![owed] };
        if issued.seq < slot.watermark.completed() {
            // Forgotten by a rewind: these records are read again.
            return vec![owed];
        }
        if status.is_done() {
            if let Some(end) = slot.watermark.resolve(issued.seq, issued.end, status) {
                slot.done = Some(end);
                slot.moved = true;
            }
            if slot.committed.is_some_and(|c| c >= issued.end) {
                return vec![owed];
            }
            slot.waiting.push((issued.end, owed));
            return Vec::new();
        }
        slot.watermark.resolve(issued.seq, issued.end, status);
        // Errored: everything after the contiguous prefix is read again from its first offset.
        slot.watermark.rewind();
        slot.epoch = slot.epoch.wrapping_add(1);
        slot.seek_to = slot.done;
        slot.next_from = slot.done;
        self.generation += 1;
        let done = slot.done.unwrap_or(i64::MIN);
        let (keep, drop): (Vec<_>, Vec<_>) = std::mem::take(&mut slot.waiting).into_iter().partition(|(end, _)| *end <= done);
        slot.waiting = keep;
        let mut released: Vec<W> = drop.into_iter().map(|(_, w)| w).collect();
        released.push(owed);
        released
    }

    /// The seeks to make.
    pub(crate) fn seeks(&self) -> Vec<Seek> {
        self.slots
            .iter()
            .filter_map(|(&slot, s)| {
                let offset = s.seek_to?;
                Some(Seek { slot, topic: Arc::clone(&s.topic), partition: s.partition, offset, epoch: s.epoch })
            })
            .collect()
    }

    /// The consumer made `seek`, to `at`: messages of the slot are admitted again (unless
    /// another rewind asked for another seek meanwhile). `at` is the seek's offset, or the
    /// position a store holds for the partition (exactly-once: the stored position is where
    /// reading resumes, and what the group commits next).
    pub(crate) fn seeked(&mut self, seek: &Seek, at: i64) {
        if let Some(slot) = self.slots.get_mut(&seek.slot) {
            if slot.epoch == seek.epoch {
                slot.seek_to = None;
                slot.next_from = Some(at);
                if slot.done != Some(at) {
                    slot.done = Some(at);
                    slot.moved = true;
                }
            }
        }
    }

    /// The offsets to commit asynchronously now: those past the last commit and past the
    /// last request; they are noted as requested.
    pub(crate) fn take_requests(&mut self) -> Vec<Commit> {
        let mut out = Vec::new();
        for s in self.slots.values_mut() {
            let Some(done) = s.done.filter(|_| s.moved) else { continue };
            if s.committed.is_none_or(|c| c < done) && s.requested.is_none_or(|r| r < done) {
                s.requested = Some(done);
                out.push(Commit { topic: Arc::clone(&s.topic), partition: s.partition, offset: done });
            }
        }
        out
    }

    /// An asynchronous commit failed: what it asked for is committed again later.
    pub(crate) fn request_failed(&mut self, topic: &str, partition: i32) {
        if let Some(slot) = self.slot_of(topic, partition).and_then(|s| self.slots.get_mut(&s)) {
            slot.requested = None;
        }
    }

    /// The offsets to commit: every slot whose commit point is past its last commit. `only`
    /// restricts them to some partitions (a revoke).
    pub(crate) fn to_commit(&self, only: Option<&[(String, i32)]>) -> Vec<Commit> {
        let mut out: Vec<Commit> = self
            .slots
            .values()
            .filter(|s| only.is_none_or(|o| o.iter().any(|(t, p)| **t == *s.topic && *p == s.partition)))
            .filter_map(|s| {
                let done = s.done.filter(|_| s.moved)?;
                (s.committed.is_none_or(|c| c < done)).then(|| Commit { topic: Arc::clone(&s.topic), partition: s.partition, offset: done })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    /// The group confirmed `commit`: returns what waited for it.
    pub(crate) fn committed(&mut self, commit: &Commit) -> Vec<W> {
        let Some(slot) = self.slot_of(&commit.topic, commit.partition) else { return Vec::new() };
        let Some(slot) = self.slots.get_mut(&slot) else { return Vec::new() };
        slot.committed = Some(slot.committed.map_or(commit.offset, |c| c.max(commit.offset)));
        let committed = commit.offset;
        let (released, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut slot.waiting).into_iter().partition(|(end, _)| *end <= committed);
        slot.waiting = keep;
        released.into_iter().map(|(_, w)| w).collect()
    }
}
