//! Retrying: the policy of sink, dead-letter and broker calls (exponential backoff with
//! jitter), the state of one operation being retried, and the counter of retries that a run
//! reports.
//!
//! A leaf: it depends on nothing of the crate but the error types, so every connector, the
//! stages and the driver can use it without importing each other.

use crate::error::ConnectorError;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

tokio::task_local! {
    /// The retry counter of the run whose operators are being applied.
    static RETRIES: Arc<AtomicU64>;
}

/// Run `work` (a run applying its operators) so that the retries counted inside it with
/// [`count_retry`] reach `counter`.
pub(crate) async fn counting_retries<F: std::future::Future>(counter: &Arc<AtomicU64>, work: F) -> F::Output {
    RETRIES.scope(Arc::clone(counter), work).await
}

/// Count one retry in the report of the run applying this operator (nothing outside a run,
/// as when a test applies an operator by hand).
pub(crate) fn count_retry() {
    let _ = RETRIES.try_with(|retries| retries.fetch_add(1, Ordering::Relaxed));
}

/// How failed writes are retried: exponential backoff (`initial_delay × factor^n`, capped at
/// `max_delay`) with jitter (each delay `d` becomes a random value in `[d, 2d)`, so that
/// workers that failed together spread out), at most `max_retries` times. Permanent errors are not retried.
///
/// ```
/// use std::time::Duration;
/// let p = etl::retry::RetryPolicy::default().max_retries(3).initial_delay(Duration::from_millis(10));
/// assert_eq!(p.delays().count(), 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt. Default 5.
    pub max_retries: usize,
    /// Delay before the first retry. Default 200 ms.
    pub initial_delay: Duration,
    /// Growth factor per retry. Default 2.0.
    pub factor: f32,
    /// Longest delay. Default 30 s.
    pub max_delay: Duration,
    /// Randomise delays so that many workers do not retry in lock-step. Default true.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            initial_delay: Duration::from_millis(200),
            factor: 2.0,
            max_delay: Duration::from_secs(30),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn never() -> RetryPolicy {
        RetryPolicy { max_retries: 0, ..RetryPolicy::default() }
    }

    /// Set `max_retries`.
    pub fn max_retries(mut self, n: usize) -> Self {
        self.max_retries = n;
        self
    }

    /// Set `initial_delay`.
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self
    }

    /// Set `factor` (the `backoff` of `#[stage]`).
    pub fn factor(mut self, f: f32) -> Self {
        self.factor = f;
        self
    }

    /// Set `max_delay`.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// The delays before each retry, in order.
    pub fn delays(&self) -> impl Iterator<Item = Duration> {
        self.backoff()
    }

    fn backoff(&self) -> ExponentialBackoff {
        let builder = ExponentialBuilder::new()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .with_max_times(self.max_retries);
        let builder = if self.jitter { builder.with_jitter() } else { builder };
        builder.build()
    }

    /// Start retrying one operation.
    pub(crate) fn start(&self) -> Retrying {
        Retrying { delays: self.backoff(), attempts: 1 }
    }
}

/// The state of one operation being retried.
pub(crate) struct Retrying {
    delays: ExponentialBackoff,
    pub(crate) attempts: u32,
}

impl Retrying {
    /// After a failure: wait and return true when the operation should be tried again; return
    /// false when the error is permanent or the retries are exhausted.
    pub(crate) async fn pause(&mut self, error: &ConnectorError, what: &str) -> bool {
        if !error.is_retryable() {
            tracing::error!(%error, what, attempts = self.attempts, "permanent failure, not retrying");
            return false;
        }
        let Some(delay) = self.delays.next() else {
            tracing::error!(%error, what, attempts = self.attempts, "retries exhausted");
            return false;
        };
        tracing::warn!(%error, what, attempt = self.attempts, ?delay, "failed, retrying");
        tokio::time::sleep(delay).await;
        self.attempts += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn delays_grow_within_bounds(max_retries in 0usize..10, initial_ms in 1u64..500, factor in 1.0f32..4.0) {
            let p = RetryPolicy { max_retries, initial_delay: Duration::from_millis(initial_ms), factor, max_delay: Duration::from_secs(5), jitter: false };
            let delays: Vec<_> = p.delays().collect();
            prop_assert_eq!(delays.len(), max_retries);
            for pair in delays.windows(2) {
                prop_assert!(pair[0] <= pair[1]);
            }
            for d in &delays {
                prop_assert!(*d >= p.initial_delay.min(p.max_delay) && *d <= p.max_delay);
            }
        }

        /// With jitter, each delay is its un-jittered value plus a random part of it (backon
        /// adds up to one more delay): never below it, never twice it or more; and over a
        /// sample, the delays are spread across that range, not stuck on the un-jittered value.
        #[test]
        fn jitter_is_applied_and_bounded(max_retries in 1usize..8, initial_ms in 1u64..500, factor in 1.0f32..4.0) {
            let plain = RetryPolicy { max_retries, initial_delay: Duration::from_millis(initial_ms), factor, max_delay: Duration::from_secs(5), jitter: false };
            let jittered = RetryPolicy { jitter: true, ..plain.clone() };
            let base: Vec<Duration> = plain.delays().collect();
            let mut ratios = Vec::new();
            for _ in 0..50 {
                let delays: Vec<Duration> = jittered.delays().collect();
                prop_assert_eq!(delays.len(), max_retries);
                for (d, b) in delays.iter().zip(&base) {
                    prop_assert!(d >= b && *d < *b * 2, "{:?} from {:?}", d, b);
                    ratios.push(d.as_secs_f64() / b.as_secs_f64());
                }
            }
            // 50 × max_retries draws of 1 + U[0, 1): the mean is 1.5 (the bounds are over
            // ten standard errors away), and they are not all the same.
            let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
            prop_assert!((1.3..1.7).contains(&mean), "mean jitter ratio {}", mean);
            let distinct: std::collections::BTreeSet<u64> = ratios.iter().map(|r| (r * 1000.0) as u64).collect();
            prop_assert!(distinct.len() > ratios.len() / 4, "{} distinct delays out of {}", distinct.len(), ratios.len());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let mut r = RetryPolicy::default().start();
        assert!(!r.pause(&ConnectorError::permanent("t", "bad request"), "write").await);
        let mut r = RetryPolicy::default().max_retries(1).start();
        let e = ConnectorError::retryable("t", "timeout");
        assert!(r.pause(&e, "write").await);
        assert!(!r.pause(&e, "write").await);
        assert_eq!(r.attempts, 2);
    }
}
