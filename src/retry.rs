//! Retrying: the policy of sink, dead-letter and broker calls (exponential backoff with
//! jitter), the state of one operation being retried, and the counter of retries that a run
//! reports.
//!
//! A leaf: it depends on nothing of the crate but the error types, so every connector, the
//! stages and the driver can use it without importing each other.

use crate::error::ConnectorError;
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

/// How a retry delay is randomised, so that workers that failed together do not retry in
/// lock-step. `d` is the delay before jitter: `initial_delay × factor^n`, capped at
/// `max_delay`.
///
/// ```
/// use std::time::Duration;
/// use etl::retry::{Jitter, RetryPolicy};
/// let p = RetryPolicy::default().initial_delay(Duration::from_millis(100)).max_retries(1);
/// let added = p.clone().jitter(Jitter::Added).delays().next().unwrap();
/// assert!(added >= Duration::from_millis(100) && added < Duration::from_millis(200));
/// let full = p.jitter(Jitter::Full).delays().next().unwrap();
/// assert!(full <= Duration::from_millis(100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly `d`.
    None,
    /// Uniform in `[d, 2d)`: never shorter than `d`, so `max_delay` bounds `d`, not the wait
    /// (which stays under `2 × max_delay`). Sink, dead-letter and broker calls.
    Added,
    /// "Full jitter": uniform in `[0, d]`, so no wait exceeds `max_delay`; spreads the retries
    /// of many records failing together the most. Stages (`#[stage]`).
    Full,
}

/// How failed writes are retried: exponential backoff (`initial_delay × factor^n`, capped at
/// `max_delay`) with [`Jitter`] (by default [`Jitter::Added`]: each delay `d` becomes a random
/// value in `[d, 2d)`, so that workers that failed together spread out), at most `max_retries`
/// times. Permanent errors are not retried.
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
    /// Delay before the first retry (before jitter). Default 200 ms.
    pub initial_delay: Duration,
    /// Growth factor per retry. Default 2.0.
    pub factor: f32,
    /// Longest delay before jitter (see [`Jitter`] for the longest wait). Default 30 s.
    pub max_delay: Duration,
    /// How delays are randomised. Default [`Jitter::Added`].
    pub jitter: Jitter,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            initial_delay: Duration::from_millis(200),
            factor: 2.0,
            max_delay: Duration::from_secs(30),
            jitter: Jitter::Added,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    ///
    /// ```
    /// assert_eq!(etl::retry::RetryPolicy::never().delays().count(), 0);
    /// ```
    pub fn never() -> RetryPolicy {
        RetryPolicy { max_retries: 0, ..RetryPolicy::default() }
    }

    /// Set `max_retries`.
    ///
    /// ```
    /// assert_eq!(etl::retry::RetryPolicy::default().max_retries(2).delays().count(), 2);
    /// ```
    pub fn max_retries(mut self, n: usize) -> Self {
        self.max_retries = n;
        self
    }

    /// Set `initial_delay`.
    ///
    /// ```
    /// let p = etl::retry::RetryPolicy::default().initial_delay(std::time::Duration::from_millis(5));
    /// ```
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self
    }

    /// Set `factor` (the `factor` of `#[stage]`).
    ///
    /// ```
    /// let p = etl::retry::RetryPolicy::default().factor(3.0);
    /// ```
    pub fn factor(mut self, f: f32) -> Self {
        self.factor = f;
        self
    }

    /// Set `max_delay`.
    ///
    /// ```
    /// let p = etl::retry::RetryPolicy::default().max_delay(std::time::Duration::from_secs(5));
    /// ```
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// Set `jitter`.
    ///
    /// ```
    /// use etl::retry::{Jitter, RetryPolicy};
    /// let p = RetryPolicy::default().jitter(Jitter::None);
    /// assert_eq!(p.delays().next(), Some(std::time::Duration::from_millis(200)));
    /// ```
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delays before each retry, in order: `max_retries` of them, each drawn afresh.
    ///
    /// ```
    /// use std::time::Duration;
    /// use etl::retry::{Jitter, RetryPolicy};
    /// let p = RetryPolicy::default().initial_delay(Duration::from_secs(1)).max_delay(Duration::from_secs(3)).jitter(Jitter::None);
    /// let secs: Vec<u64> = p.delays().map(|d| d.as_secs()).collect();
    /// assert_eq!(secs, [1, 2, 3, 3, 3]);
    /// ```
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send {
        self.schedule()
    }

    fn schedule(&self) -> Delays {
        Delays {
            next: self.initial_delay,
            left: self.max_retries,
            factor: f64::from(self.factor),
            max: self.max_delay,
            jitter: self.jitter,
            rng: fastrand::Rng::new(),
        }
    }

    /// Start retrying one operation.
    pub(crate) fn start(&self) -> Retrying {
        Retrying { delays: self.schedule(), attempts: 1 }
    }
}

/// The delays of one [`RetryPolicy`]: pure but for its random numbers.
struct Delays {
    /// The next delay before capping and jitter.
    next: Duration,
    left: usize,
    factor: f64,
    max: Duration,
    jitter: Jitter,
    rng: fastrand::Rng,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.left = self.left.checked_sub(1)?;
        let d = self.next.min(self.max);
        if self.next < self.max {
            // Past the cap it stops growing (and cannot overflow); a factor that is not a
            // number, or one that overflows, jumps to the cap.
            self.next = Duration::try_from_secs_f64(self.next.as_secs_f64() * self.factor).unwrap_or(self.max);
        }
        Some(match self.jitter {
            Jitter::None => d,
            Jitter::Added => d.saturating_add(d.mul_f64(self.rng.f64())),
            // `f64()` is in [0, 1): the wait is in [0, d), within the documented [0, d].
            Jitter::Full => d.mul_f64(self.rng.f64()),
        })
    }
}

/// The state of one operation being retried.
pub(crate) struct Retrying {
    delays: Delays,
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
            let p = RetryPolicy { max_retries, initial_delay: Duration::from_millis(initial_ms), factor, max_delay: Duration::from_secs(5), jitter: Jitter::None };
            let delays: Vec<_> = p.delays().collect();
            prop_assert_eq!(delays.len(), max_retries);
            for pair in delays.windows(2) {
                prop_assert!(pair[0] <= pair[1]);
            }
            for d in &delays {
                prop_assert!(*d >= p.initial_delay.min(p.max_delay) && *d <= p.max_delay);
            }
        }

        /// With added jitter, each delay is its un-jittered value plus a random part of it (up
        /// to one more delay): never below it, never twice it or more; and over a sample, the
        /// delays are spread across that range, not stuck on the un-jittered value.
        #[test]
        fn jitter_is_applied_and_bounded(max_retries in 1usize..8, initial_ms in 1u64..500, factor in 1.0f32..4.0) {
            let plain = RetryPolicy { max_retries, initial_delay: Duration::from_millis(initial_ms), factor, max_delay: Duration::from_secs(5), jitter: Jitter::None };
            let jittered = RetryPolicy { jitter: Jitter::Added, ..plain.clone() };
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

    /// Without jitter: `initial × factor^n`, capped; an initial delay above the cap is capped
    /// too; a huge or absurd factor jumps to the cap instead of overflowing.
    #[test]
    fn un_jittered_delays_are_exact() {
        let ms = |p: RetryPolicy| p.jitter(Jitter::None).delays().map(|d| d.as_millis() as u64).collect::<Vec<_>>();
        let p = RetryPolicy::default().max_retries(6).initial_delay(Duration::from_millis(100)).max_delay(Duration::from_millis(1000));
        assert_eq!(ms(p.clone()), [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(ms(p.clone().factor(1.5).max_retries(3)), [100, 150, 225]);
        assert_eq!(ms(p.clone().initial_delay(Duration::from_secs(5)).max_retries(2)), [1000, 1000]);
        assert_eq!(ms(p.clone().factor(f32::MAX).max_retries(3)), [100, 1000, 1000]);
        assert_eq!(ms(p.factor(f32::NAN).max_retries(2)), [100, 1000]);
    }

    /// Full jitter: over many draws each delay is in `[0, d]` with `d` its un-jittered value
    /// (so never above `max_delay`), averages `d / 2`, and is spread over the range.
    #[test]
    fn full_jitter_is_within_zero_and_the_capped_delay() {
        let plain = RetryPolicy::default()
            .max_retries(8)
            .initial_delay(Duration::from_millis(50))
            .factor(3.0)
            .max_delay(Duration::from_secs(2))
            .jitter(Jitter::None);
        let caps: Vec<Duration> = plain.delays().collect();
        assert_eq!(caps.last(), Some(&Duration::from_secs(2)));
        let full = plain.jitter(Jitter::Full);
        let mut ratios = vec![Vec::new(); caps.len()];
        for _ in 0..2000 {
            for (n, (d, cap)) in full.delays().zip(&caps).enumerate() {
                assert!(d <= *cap && d <= full.max_delay, "retry {n}: {d:?} above {cap:?}");
                ratios[n].push(d.as_secs_f64() / cap.as_secs_f64());
            }
        }
        for (n, r) in ratios.iter().enumerate() {
            // 2000 draws of U[0, 1]: mean 0.5 with a standard error of 0.0065.
            let mean = r.iter().sum::<f64>() / r.len() as f64;
            assert!((0.45..0.55).contains(&mean), "retry {n}: mean ratio {mean}");
            let low = r.iter().filter(|x| **x < 0.1).count();
            let high = r.iter().filter(|x| **x > 0.9).count();
            assert!(low > 100 && high > 100, "retry {n}: {low} draws under 10%, {high} over 90% of the cap");
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
