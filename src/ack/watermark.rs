//! The ordered watermark: positions that complete out of order, and the position a source may
//! commit, the end of the contiguous completed prefix.
//!
//! A source with ordered positions (Kafka offsets per partition, SSE event ids, the files a
//! watcher processes in order) numbers what it emits with [`Watermark::issue`] and reports each
//! outcome with [`Watermark::resolve`]. The watermark only moves over a prefix of completed
//! sequence numbers: a batch that completes while an earlier one is still in flight waits, and
//! a failed one holds the watermark where it is until the source rewinds (re-reads from the
//! committed position) with [`Watermark::rewind`]. This is the rule whose absence made a Kafka
//! consumer commit past unprocessed records (vector#24215, faust#312).

use super::Status;
use std::collections::BTreeMap;

/// Sequence numbers issued in order and completed in any order; see the [module docs](self).
///
/// ```
/// use etl::ack::{Status, Watermark};
/// let mut w = Watermark::new();
/// let (a, b) = (w.issue(), w.issue());
/// assert_eq!(w.resolve(b, "offset 20", Status::Delivered), None); // `a` is still in flight
/// assert_eq!(w.resolve(a, "offset 10", Status::Delivered), Some("offset 20"));
/// ```
#[derive(Debug)]
pub struct Watermark<P> {
    /// The first sequence number not completed as part of the prefix.
    next: u64,
    /// The next sequence number to issue.
    issued: u64,
    /// Completed after a gap: their positions, waiting for the gap to close.
    ahead: BTreeMap<u64, P>,
    /// The first sequence number that failed: the watermark never passes it until a rewind.
    failed: Option<u64>,
}

impl<P> Default for Watermark<P> {
    fn default() -> Self {
        Watermark { next: 0, issued: 0, ahead: BTreeMap::new(), failed: None }
    }
}

impl<P> Watermark<P> {
    /// An empty watermark: nothing issued.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sequence number of the next thing the source emits.
    pub fn issue(&mut self) -> u64 {
        let seq = self.issued;
        self.issued += 1;
        seq
    }

    /// `seq` (whose last position is `position`) resolved with `status`: the position the
    /// source may now commit, if the watermark moved. Delivered and rejected (dead-lettered)
    /// complete it; errored holds the watermark before it. A sequence number that was never
    /// issued, or resolved twice, or forgotten by a rewind, changes nothing.
    pub fn resolve(&mut self, seq: u64, position: P, status: Status) -> Option<P> {
        if seq < self.next || seq >= self.issued {
            return None;
        }
        if !status.is_done() {
            self.failed = Some(self.failed.map_or(seq, |f| f.min(seq)));
            return None;
        }
        self.ahead.insert(seq, position);
        let mut reached = None;
        while self.failed != Some(self.next) {
            let Some(position) = self.ahead.remove(&self.next) else { break };
            reached = Some(position);
            self.next += 1;
        }
        reached
    }

    /// Whether a failure holds the watermark (the source must re-read from the committed
    /// position, then [`rewind`](Watermark::rewind)).
    ///
    /// ```
    /// use etl::ack::{Status, Watermark};
    /// let mut w = Watermark::new();
    /// let a = w.issue();
    /// w.resolve(a, 1, Status::Errored);
    /// assert!(w.is_held());
    /// ```
    pub fn is_held(&self) -> bool {
        self.failed.is_some()
    }

    /// How many sequence numbers the committed prefix holds (the first one not in it).
    ///
    /// ```
    /// use etl::ack::{Status, Watermark};
    /// let mut w = Watermark::new();
    /// let (a, b) = (w.issue(), w.issue());
    /// w.resolve(b, "b", Status::Delivered);
    /// assert_eq!(w.completed(), 0);
    /// w.resolve(a, "a", Status::Delivered);
    /// assert_eq!(w.completed(), 2);
    /// ```
    pub fn completed(&self) -> u64 {
        self.next
    }

    /// Issued and not yet part of the committed prefix (in flight, completed after a gap, or
    /// failed).
    ///
    /// ```
    /// let mut w = etl::ack::Watermark::<u64>::new();
    /// w.issue();
    /// assert_eq!(w.outstanding(), 1);
    /// ```
    pub fn outstanding(&self) -> u64 {
        self.issued - self.next
    }

    /// The source re-reads from the committed position (a Kafka seek after a failed batch):
    /// forget everything issued after the prefix; what is issued next continues the prefix.
    /// Resolutions of the forgotten sequence numbers that arrive later are ignored.
    ///
    /// ```
    /// use etl::ack::{Status, Watermark};
    /// let mut w = Watermark::new();
    /// let (a, b) = (w.issue(), w.issue());
    /// w.resolve(a, 10, Status::Errored);
    /// w.rewind();
    /// assert_eq!(w.resolve(b, 20, Status::Delivered), None, "b was forgotten");
    /// let again = w.issue();
    /// assert_eq!(w.resolve(again, 10, Status::Delivered), Some(10));
    /// ```
    pub fn rewind(&mut self) {
        self.ahead.clear();
        self.failed = None;
        // Sequence numbers are not reused: late resolutions of forgotten ones fall below `next`.
        self.next = self.issued;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn advances_only_over_contiguous_done_batches() {
        let mut w = Watermark::new();
        let s: Vec<u64> = (0..6).map(|_| w.issue()).collect();
        assert_eq!(w.resolve(s[1], "b", Status::Delivered), None, "batch 0 is still open");
        assert_eq!(w.resolve(s[0], "a", Status::Delivered), Some("b"));
        assert_eq!(w.resolve(s[2], "c", Status::Rejected), Some("c"), "dead-lettered is done");
        assert_eq!(w.resolve(s[4], "e", Status::Delivered), None);
        assert_eq!(w.resolve(s[3], "d", Status::Errored), None, "a failed batch holds the watermark");
        assert_eq!(w.resolve(s[5], "f", Status::Delivered), None);
        assert!(w.is_held());
        assert_eq!(w.outstanding(), 3);
    }

    #[test]
    fn unknown_and_repeated_sequence_numbers_change_nothing() {
        let mut w = Watermark::new();
        let a = w.issue();
        assert_eq!(w.resolve(7, "x", Status::Delivered), None, "never issued");
        assert_eq!(w.resolve(a, "a", Status::Delivered), Some("a"));
        assert_eq!(w.resolve(a, "a", Status::Errored), None, "already committed");
        assert!(!w.is_held());
    }

    proptest! {
        /// Whatever the order of resolutions, the watermark reaches exactly the last position
        /// of the longest prefix of done batches, and never passes a failed one.
        #[test]
        fn reaches_the_end_of_the_done_prefix(outcomes in prop::collection::vec(prop_oneof![4 => Just(Status::Delivered), 1 => Just(Status::Rejected), 1 => Just(Status::Errored)], 1..30), seed in any::<u64>()) {
            let mut w = Watermark::new();
            let seqs: Vec<u64> = outcomes.iter().map(|_| w.issue()).collect();
            let mut order: Vec<usize> = (0..outcomes.len()).collect();
            // A deterministic shuffle from the seed.
            let mut state = seed | 1;
            for i in (1..order.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                order.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let mut last = None;
            for &i in &order {
                if let Some(p) = w.resolve(seqs[i], i, outcomes[i]) {
                    prop_assert!(last.is_none_or(|l| p > l), "moves forward only");
                    last = Some(p);
                }
            }
            let prefix = outcomes.iter().take_while(|s| s.is_done()).count();
            prop_assert_eq!(last, prefix.checked_sub(1));
            prop_assert_eq!(w.outstanding() as usize, outcomes.len() - prefix);
        }
    }
}
