//! One system's life: `setup`, then `step` on its schedule, with a backoff after a failure,
//! until it is finished or stopped. Its counters live in a shared entry, so that the runtime
//! still has them when the task panics or is dropped mid-step.

use super::report::{SystemOutcome, SystemReport};
use super::System;
use crate::retry::RetryPolicy;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// A system's report while it runs, and whether its task ended.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    report: Arc<Mutex<SystemReport>>,
    ended: Arc<AtomicBool>,
}

impl Entry {
    pub(super) fn new(name: String) -> Entry {
        let report = SystemReport { name, steps: 0, failures: 0, last_error: None, outcome: SystemOutcome::Stopped };
        Entry { report: Arc::new(Mutex::new(report)), ended: Arc::default() }
    }

    /// Change the report (a poisoned lock still holds the counters: a panic never happens
    /// while it is held).
    pub(super) fn update<R>(&self, f: impl FnOnce(&mut SystemReport) -> R) -> R {
        f(&mut self.report.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Say the system's task ended (rather than being dropped mid-step).
    pub(super) fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }

    pub(super) fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    pub(super) fn snapshot(&self) -> SystemReport {
        self.update(|r| r.clone())
    }
}

/// The schedule of the steps: every `tick_rate` on a fixed grid (late ticks skipped, not
/// stacked), or back to back with a yield in between when it is zero.
struct Ticks(Option<Interval>);

impl Ticks {
    fn new(period: Duration) -> Ticks {
        Ticks((!period.is_zero()).then(|| {
            let mut interval = interval_at(Instant::now(), period);
            interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
            interval
        }))
    }

    async fn next(&mut self) {
        match &mut self.0 {
            Some(interval) => {
                interval.tick().await;
            }
            None => tokio::task::yield_now().await,
        }
    }
}

/// Run `system` until it is finished or `stop` is cancelled; its counters go to `entry`.
pub(super) async fn run<S: System>(mut system: S, stop: CancellationToken, backoff: RetryPolicy, entry: Entry) {
    let name = system.name();
    system.shutdown_on(stop.clone());
    let setup = tokio::select! {
        biased;
        () = stop.cancelled() => return,
        setup = system.setup() => setup,
    };
    if let Err(e) = setup {
        error!(system = %name, error = %e, "system setup failed: it will not run");
        entry.update(|r| r.outcome = SystemOutcome::SetupFailed(e.to_string()));
        return;
    }
    let period = system.tick_rate();
    info!(system = %name, ?period, "system started");
    // Unlimited retries: a failing system keeps stepping, its backoff capped at `max_delay`.
    let backoff = backoff.max_retries(usize::MAX);
    let mut delays: Option<Box<dyn Iterator<Item = Duration> + Send>> = None;
    let mut ticks = Ticks::new(period);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = ticks.next() => {}
        }
        // Not raced with `stop`: a step in flight finishes (the runtime bounds the wait).
        let result = system.step().await;
        let failures = entry.update(|r| {
            r.steps += 1;
            if let Err(e) = &result {
                r.failures += 1;
                r.last_error = Some(e.to_string());
            }
            r.failures
        });
        if let Err(e) = &result {
            warn!(system = %name, error = %e, failures, "system step failed");
        }
        if stop.is_cancelled() {
            break;
        }
        if system.finished() {
            info!(system = %name, "system finished");
            entry.update(|r| r.outcome = SystemOutcome::Finished);
            return;
        }
        match result {
            Ok(()) => delays = None,
            Err(_) => {
                let delay = delays.get_or_insert_with(|| Box::new(backoff.delays())).next().unwrap_or(backoff.max_delay);
                debug!(system = %name, ?delay, "backing off before the next step");
                tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    info!(system = %name, "system stopped");
}
