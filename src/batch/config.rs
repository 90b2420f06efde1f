//! Batching limits shared by every source.

use std::time::Duration;

/// The default [`BatchConfig::batch_size`].
///
/// ```
/// assert_eq!(etl::batch::DEFAULT_BATCH_SIZE, 1000);
/// ```
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// The default [`BatchConfig::max_bytes`]: 16 MiB.
///
/// ```
/// assert_eq!(etl::batch::DEFAULT_MAX_BYTES, 16 << 20);
/// ```
pub const DEFAULT_MAX_BYTES: usize = 16 << 20;

/// The default [`BatchConfig::batch_timeout`]: 1 s.
///
/// ```
/// assert_eq!(etl::batch::DEFAULT_BATCH_TIMEOUT, std::time::Duration::from_secs(1));
/// ```
pub const DEFAULT_BATCH_TIMEOUT: Duration = Duration::from_secs(1);

/// How a source groups records into batches, and when it stops.
///
/// A batch is emitted when it holds `batch_size` records, when it holds `max_bytes` bytes, or
/// `batch_timeout` after its **first** record arrived (a timer, not the next arrival), whichever
/// comes first. `max_records` and `max_batches` end the source.
///
/// ```
/// use std::time::Duration;
/// use etl::batch::{BatchConfig, BatchOptions};
/// let c = BatchConfig::default().batch_size(100).batch_timeout(Duration::from_millis(500));
/// assert_eq!(c.batch_size, 100);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// Maximum records per batch. Default 1000.
    pub batch_size: usize,
    /// Maximum payload bytes per batch. Default 16 MiB.
    pub max_bytes: usize,
    /// Longest wait from a batch's first record to its emission. Default 1 s.
    pub batch_timeout: Duration,
    /// Stop after this many records in total. Default: no limit.
    pub max_records: Option<u64>,
    /// Stop after this many batches. Default: no limit.
    pub max_batches: Option<u64>,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            batch_size: DEFAULT_BATCH_SIZE,
            max_bytes: DEFAULT_MAX_BYTES,
            batch_timeout: DEFAULT_BATCH_TIMEOUT,
            max_records: None,
            max_batches: None,
        }
    }
}

impl BatchOptions for BatchConfig {
    fn batching(&mut self) -> &mut BatchConfig {
        self
    }
}

/// The batching options every source takes (`batch_size`, `batch_timeout`, `max_bytes`,
/// `max_records`, `max_batches`), as builder methods.
///
/// ```
/// use etl::prelude::*;
/// let src = etl::source::iter(0..100).batch_size(10).max_records(50);
/// ```
pub trait BatchOptions: Sized {
    /// The source's batching limits.
    fn batching(&mut self) -> &mut BatchConfig;

    /// Maximum records per batch.
    fn batch_size(mut self, n: usize) -> Self {
        self.batching().batch_size = n.max(1);
        self
    }

    /// Longest wait from a batch's first record to its emission.
    fn batch_timeout(mut self, d: Duration) -> Self {
        self.batching().batch_timeout = d;
        self
    }

    /// Maximum payload bytes per batch.
    fn max_bytes(mut self, n: usize) -> Self {
        self.batching().max_bytes = n.max(1);
        self
    }

    /// Stop after this many records.
    fn max_records(mut self, n: u64) -> Self {
        self.batching().max_records = Some(n);
        self
    }

    /// Stop after this many batches.
    fn max_batches(mut self, n: u64) -> Self {
        self.batching().max_batches = Some(n);
        self
    }
}
