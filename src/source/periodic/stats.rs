//! The counters of a `periodic` source, readable while it runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a [`PeriodicSource`](super::PeriodicSource) did so far: a handle taken with
/// [`PeriodicSource::stats`](super::PeriodicSource::stats) before the source is handed to a
/// pipeline, and read while it runs or after. Cheap to clone; clones share the counters.
///
/// ```
/// let stats = etl::source::PeriodicStats::default();
/// assert_eq!((stats.polls(), stats.missed_ticks(), stats.failed_polls()), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Default)]
pub struct PeriodicStats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    polls: AtomicU64,
    failed_polls: AtomicU64,
    retries: AtomicU64,
    missed_ticks: AtomicU64,
    records: AtomicU64,
}

impl PeriodicStats {
    /// Ticks whose poll succeeded (on its first attempt or after retries).
    ///
    /// ```
    /// assert_eq!(etl::source::PeriodicStats::default().polls(), 0);
    /// ```
    pub fn polls(&self) -> u64 {
        self.0.polls.load(Ordering::Relaxed)
    }

    /// Ticks whose poll failed on every attempt (the source went on to the next tick).
    ///
    /// ```
    /// assert_eq!(etl::source::PeriodicStats::default().failed_polls(), 0);
    /// ```
    pub fn failed_polls(&self) -> u64 {
        self.0.failed_polls.load(Ordering::Relaxed)
    }

    /// Failed attempts that were retried.
    ///
    /// ```
    /// assert_eq!(etl::source::PeriodicStats::default().retries(), 0);
    /// ```
    pub fn retries(&self) -> u64 {
        self.0.retries.load(Ordering::Relaxed)
    }

    /// Ticks skipped because a poll (with its retries) was still running when they came due.
    ///
    /// ```
    /// assert_eq!(etl::source::PeriodicStats::default().missed_ticks(), 0);
    /// ```
    pub fn missed_ticks(&self) -> u64 {
        self.0.missed_ticks.load(Ordering::Relaxed)
    }

    /// Records the polls returned.
    ///
    /// ```
    /// assert_eq!(etl::source::PeriodicStats::default().records(), 0);
    /// ```
    pub fn records(&self) -> u64 {
        self.0.records.load(Ordering::Relaxed)
    }

    pub(super) fn polled(&self, records: usize) {
        self.0.polls.fetch_add(1, Ordering::Relaxed);
        self.0.records.fetch_add(u64::try_from(records).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(super) fn failed(&self) {
        self.0.failed_polls.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn retried(&self) {
        self.0.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn missed(&self, ticks: u64) {
        self.0.missed_ticks.fetch_add(ticks, Ordering::Relaxed);
    }
}
