//! The part of `replay` both queues share: re-publish a snapshot, oldest first, and count what
//! was re-published so that exactly that can be removed.

use super::{DeadLetter, DynRepublish};
use crate::error::ConnectorError;
use std::collections::HashMap;

/// Re-publish `entries` in order, stopping at the first failure of `target`; returns what was
/// re-published and the failure, if any.
pub(super) async fn republish(entries: &[DeadLetter], target: &mut dyn DynRepublish, queue: &str) -> (Replayed, Option<ConnectorError>) {
    let mut replayed = Replayed::default();
    for entry in entries {
        if let Err(e) = target.republish_boxed(entry).await {
            tracing::warn!(queue, id = %entry.id, error = %e, "replay stopped: re-publishing failed");
            return (replayed, Some(e));
        }
        replayed.add(&entry.id);
    }
    (replayed, None)
}

/// The ids of the re-published entries, counted, so that removing them takes out exactly one
/// stored entry per re-publication, oldest first, even if an id is stored twice (a write that was
/// retried, or a target that wrote the entry back during the replay).
#[derive(Debug, Default)]
pub(super) struct Replayed {
    ids: HashMap<String, usize>,
    count: usize,
}

impl Replayed {
    /// Record one successful re-publication of `id`.
    pub(super) fn add(&mut self, id: &str) {
        *self.ids.entry(id.to_owned()).or_default() += 1;
        self.count += 1;
    }

    /// How many re-publications were recorded.
    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// True (and one fewer left to remove) when a stored entry with `id` is to be removed;
    /// call on the stored entries oldest first.
    pub(super) fn take(&mut self, id: &str) -> bool {
        match self.ids.get_mut(id) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_takes_each_id_as_often_as_added() {
        let mut r = Replayed::default();
        r.add("a");
        r.add("a");
        assert_eq!(r.count(), 2);
        assert!(r.take("a"));
        assert!(r.take("a"));
        assert!(!r.take("a"));
        assert!(!r.take("b"));
    }
}
