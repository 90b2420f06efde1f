//! Run blocking file I/O where it costs least: inline when it has been quick, on tokio's
//! blocking pool when it has been slow.
//!
//! Handing work to the blocking pool costs two thread wake-ups (the pool thread, then the
//! task): measured here at 20–50 µs each way on a 2-core VM, more than a 100-row CSV file
//! takes to create, write, fsync and rename on tmpfs or a write-back cache, and more than a
//! 256 KiB read from the page cache. On a real disk an fsync takes milliseconds, and
//! blocking an async thread that long starves its other tasks. No crate decides this (tokio's
//! `block_in_place` still hands the worker's core to another thread on every call), so
//! [`Offload`] keeps a running estimate of how long the operation takes and runs it inline
//! only while that estimate stays under [`INLINE_BELOW`], the upper end of tokio's guidance
//! for the time between two `.await`s.

use std::time::{Duration, Instant};

/// Operations estimated to take less than this run inline on the async thread.
const INLINE_BELOW: Duration = Duration::from_micros(100);

/// Where a stream of similar blocking operations (one sink's writes) runs, from how long they
/// took so far.
///
/// It starts on the blocking pool, since nothing is known yet, and each operation moves the
/// estimate an eighth of the way to how long it took: on a disk whose fsync takes milliseconds
/// the stream stays on the pool; where file I/O takes tens of microseconds it moves inline
/// after a few operations, and an occasional slow one (p99 of a tmpfs write: 0.3 ms) sends
/// only the next few back to the pool.
#[derive(Debug, Clone)]
pub(crate) struct Offload {
    /// Expected duration of the next operation.
    estimate: Duration,
}

/// A blocking operation that did not return: it panicked, or the runtime is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("blocking file operation failed: {0}")]
pub(crate) struct Failed(String);

impl Default for Offload {
    fn default() -> Self {
        Offload { estimate: INLINE_BELOW * 2 }
    }
}

impl Offload {
    /// Whether the next operation would run inline.
    fn inline(&self) -> bool {
        self.estimate < INLINE_BELOW
    }

    /// Run `f`, inline or on the blocking pool, and learn from how long it took.
    ///
    /// A panic in `f` is an error either way, as the pool reports it.
    pub(crate) async fn run<R: Send + 'static>(&mut self, f: impl FnOnce() -> R + Send + 'static) -> Result<R, Failed> {
        let timed = move || timed(f);
        let (result, took) = if self.inline() {
            // The closure owns what it touches; a panic leaves nothing of ours half-updated.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(timed)).map_err(|_| Failed("the operation panicked".into()))?
        } else {
            tokio::task::spawn_blocking(timed).await.map_err(|e| Failed(e.to_string()))?
        };
        self.learn(took);
        Ok(result)
    }

    /// Account for an operation that took `took`.
    fn learn(&mut self, took: Duration) {
        // A moving average with weight 1/8, as TCP smooths round-trip times (RFC 6298): one
        // outlier moves it by an eighth of its excess, a lasting change takes over in a few
        // dozen operations.
        self.estimate = self.estimate - self.estimate / 8 + took / 8;
    }
}

/// Run `f` and measure how long it took.
fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let started = Instant::now();
    let result = f();
    (result, started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_the_pool_and_moves_inline_after_quick_operations() {
        let mut offload = Offload::default();
        assert!(!offload.inline());
        for _ in 0..10 {
            offload.learn(Duration::from_micros(10));
        }
        assert!(offload.inline(), "estimate after 10 quick operations: {:?}", offload.estimate);
    }

    #[test]
    fn slow_operations_stay_on_the_pool() {
        let mut offload = Offload::default();
        for _ in 0..100 {
            offload.learn(Duration::from_millis(2));
            assert!(!offload.inline(), "estimate: {:?}", offload.estimate);
        }
    }

    #[test]
    fn an_outlier_sends_only_the_next_few_to_the_pool() {
        let mut offload = Offload { estimate: Duration::from_micros(50) };
        offload.learn(Duration::from_micros(300));
        assert!(offload.inline(), "a 0.3 ms outlier: {:?}", offload.estimate);
        offload.learn(Duration::from_millis(5));
        assert!(!offload.inline(), "a 5 ms fsync: {:?}", offload.estimate);
        let back = (1..100).find(|_| {
            offload.learn(Duration::from_micros(50));
            offload.inline()
        });
        assert!(back.is_some_and(|n| (10..=30).contains(&n)), "inline again after {back:?} quick operations");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runs_the_operation_either_way() {
        let mut offload = Offload::default();
        assert_eq!(offload.run(|| 1 + 1).await.ok(), Some(2));
        let mut quick = Offload { estimate: Duration::ZERO };
        assert_eq!(quick.run(|| "inline").await.ok(), Some("inline"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panic_on_the_pool_is_an_error() {
        let mut offload = Offload::default();
        let outcome = offload.run(|| -> u8 { panic!("boom") }).await;
        assert!(outcome.is_err());
        let mut quick = Offload { estimate: Duration::ZERO };
        let outcome = quick.run(|| -> u8 { panic!("boom") }).await;
        assert!(outcome.is_err_and(|e| e.to_string().contains("panicked")));
    }
}
