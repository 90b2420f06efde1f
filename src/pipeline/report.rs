//! The run report and the live counters behind it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a pipeline run did.
///
/// ```
/// let r = etl::RunReport { records_in: 10, records_out: 8, dead_lettered: 1, batches: 2, retries: 0, elapsed: std::time::Duration::from_secs(1) };
/// assert_eq!(r.filtered(), 1);
/// assert!(r.to_string().contains("10 in, 8 out"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunReport {
    /// Messages read from the source (records and undecodable messages).
    pub records_in: u64,
    /// Records durably written by the sink.
    pub records_out: u64,
    /// Records written to the dead-letter queue.
    pub dead_lettered: u64,
    /// Batches delivered and acknowledged.
    pub batches: u64,
    /// Attempts that failed and were retried: sink and dead-letter writes, and the records'
    /// attempts in stages (`map(stage)`).
    pub retries: u64,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
}

impl RunReport {
    /// Records that were neither written nor dead-lettered: filtered out (or fanned in).
    pub fn filtered(&self) -> u64 {
        self.records_in.saturating_sub(self.records_out + self.dead_lettered)
    }

    /// Source records per second over the run.
    pub fn records_per_second(&self) -> f64 {
        per_second(self.records_in, self.elapsed)
    }
}

fn per_second(n: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

impl std::fmt::Display for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} in, {} out, {} filtered, {} dead-lettered, {} batches, {} retries in {:.2?} ({:.0} records/s)",
            self.records_in,
            self.records_out,
            self.filtered(),
            self.dead_lettered,
            self.batches,
            self.retries,
            self.elapsed,
            self.records_per_second()
        )
    }
}

/// Live counters of a run, shared by its reading and writing halves.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) records_in: AtomicU64,
    pub(crate) records_out: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) batches_in: AtomicU64,
    pub(crate) batches: AtomicU64,
    /// Shared with the operators, which count their retries through
    /// [`count_retry`](crate::retry::count_retry).
    pub(crate) retries: Arc<AtomicU64>,
}

/// Apply operators (`apply`) so that the retries they count reach `counters`.
pub(crate) async fn counting_retries<F: std::future::Future>(counters: &Counters, apply: F) -> F::Output {
    crate::retry::counting_retries(&counters.retries, apply).await
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn report(&self, elapsed: Duration) -> RunReport {
        RunReport {
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            elapsed,
        }
    }

    /// Batches read but not yet acknowledged.
    pub(crate) fn unfinished(&self) -> usize {
        let read = self.batches_in.load(Ordering::Relaxed);
        let done = self.batches.load(Ordering::Relaxed);
        usize::try_from(read.saturating_sub(done)).unwrap_or(usize::MAX)
    }
}
