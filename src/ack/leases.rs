//! The unordered in-flight table: messages a broker handed out on a lease (SQS's visibility
//! timeout, JetStream's `ack_wait`, a work queue's claim timeout), acknowledged one by one in
//! any order, and the ones whose lease must be renewed now (visibility extension, progress
//! ack, heartbeat) so that a slow batch is not redelivered to another consumer meanwhile.
//!
//! Pure: the clock is passed in (`tokio::time::Instant`, so tests can pause time); the
//! connector's heartbeat task asks [`Leases::due`], renews those on the broker, then marks them
//! with [`Leases::renewed`], which skips any that were resolved during the call.

use foldhash::HashMap;
use foldhash::HashMapExt;
use std::hash::Hash;
use std::time::Duration;
use tokio::time::Instant;

/// Tokens of messages in flight, each due for renewal `renew_after` after it was received or
/// last renewed.
///
/// ```
/// use etl::ack::Leases;
/// use std::time::Duration;
/// use tokio::time::Instant;
/// let start = Instant::now();
/// let mut leases = Leases::new(Duration::from_secs(15)); // half a 30 s visibility timeout
/// leases.insert("receipt-1", start);
/// assert!(leases.due(start).is_empty());
/// assert_eq!(leases.due(start + Duration::from_secs(15)), vec!["receipt-1"]);
/// ```
#[derive(Debug)]
pub struct Leases<K> {
    due: HashMap<K, Instant>,
    renew_after: Duration,
}

impl<K: Eq + Hash + Clone> Leases<K> {
    /// An empty table whose leases fall due `renew_after` after each receive or renewal
    /// (typically half the lease: renewing at half-time leaves the other half for the call).
    pub fn new(renew_after: Duration) -> Self {
        Leases { due: HashMap::new(), renew_after }
    }

    /// How long after a receive or renewal a lease falls due.
    pub fn renew_after(&self) -> Duration {
        self.renew_after
    }

    /// Track a message received at `now`.
    pub fn insert(&mut self, token: K, now: Instant) {
        self.due.insert(token, now + self.renew_after);
    }

    /// Stop tracking messages (acknowledged, rejected or released).
    pub fn remove<'a, Q>(&mut self, tokens: impl IntoIterator<Item = &'a Q>)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized + 'a,
    {
        for token in tokens {
            self.due.remove(token);
        }
    }

    /// The messages whose lease must be renewed now.
    pub fn due(&self, now: Instant) -> Vec<K> {
        self.due.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect()
    }

    /// When the next lease falls due, if any is tracked (the heartbeat sleeps until then).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let start = tokio::time::Instant::now();
    /// let mut leases = etl::ack::Leases::new(Duration::from_secs(1));
    /// assert_eq!(leases.next_due(), None);
    /// leases.insert(7u64, start);
    /// assert_eq!(leases.next_due(), Some(start + Duration::from_secs(1)));
    /// ```
    pub fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// Of `tokens` (renewed on the broker at `now`), those still tracked, marked as renewed;
    /// the others were resolved while the renewal was in flight and stay gone.
    pub fn renewed(&mut self, tokens: Vec<K>, now: Instant) -> Vec<K> {
        self.due_at(tokens, now + self.renew_after)
    }

    /// Of `tokens`, those still tracked, made due at `at` (a renewal that failed is due again
    /// at once).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let start = tokio::time::Instant::now();
    /// let mut leases = etl::ack::Leases::new(Duration::from_secs(10));
    /// leases.insert("m", start);
    /// assert_eq!(leases.due_at(vec!["m", "gone"], start), vec!["m"]);
    /// assert_eq!(leases.due(start), vec!["m"]);
    /// ```
    pub fn due_at(&mut self, tokens: Vec<K>, next: Instant) -> Vec<K> {
        tokens
            .into_iter()
            .filter(|k| match self.due.get_mut(k) {
                Some(at) => {
                    *at = next;
                    true
                }
                None => false,
            })
            .collect()
    }

    /// How many messages are tracked.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// Whether no message is tracked.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn leases_fall_due_after_the_renewal_interval_and_resolved_ones_are_skipped() {
        let start = Instant::now();
        let half = Duration::from_secs(1);
        let mut table = Leases::new(half);
        table.insert("a".to_string(), start);
        table.insert("b".to_string(), start + Duration::from_millis(500));
        assert!(table.due(start).is_empty());
        assert_eq!(table.due(start + half), vec!["a".to_string()]);
        // "a" is resolved while the heartbeat is about to renew both.
        let due = vec!["a".to_string(), "b".to_string()];
        table.remove(["a"]);
        assert_eq!(table.renewed(due, start + half * 2), vec!["b".to_string()]);
        assert!(table.due(start + half * 2).is_empty());
        assert_eq!(table.len(), 1);
        assert_eq!(table.next_due(), Some(start + half * 3));
    }

    proptest! {
        /// A lease is due exactly when its renewal interval has passed since it was inserted or
        /// last renewed, and never once removed.
        #[test]
        fn due_is_exactly_the_expired_and_tracked(inserted in prop::collection::vec(0u64..100, 1..20), removed in prop::collection::vec(any::<bool>(), 20), at in 0u64..200) {
            let start = Instant::now();
            let interval = Duration::from_millis(50);
            let mut table = Leases::new(interval);
            for (k, ms) in inserted.iter().enumerate() {
                table.insert(k, start + Duration::from_millis(*ms));
            }
            let gone: Vec<usize> = (0..inserted.len()).filter(|k| removed[*k]).collect();
            table.remove(gone.iter());
            let now = start + Duration::from_millis(at);
            let mut due = table.due(now);
            due.sort_unstable();
            let want: Vec<usize> = (0..inserted.len()).filter(|k| !removed[*k] && inserted[*k] + 50 <= at).collect();
            prop_assert_eq!(due, want);
        }
    }
}
