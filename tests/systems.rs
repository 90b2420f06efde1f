//! `etl::system`: systems step at their rate on a fixed schedule, a failing step is counted and
//! backed off without stopping the others, a failing setup is reported and that system does not
//! run, a panic stops only its system, a stop (token or signal) lets the step in flight finish
//! (within the shutdown timeout), and a pipeline runs as a system.

use etl::prelude::*;
use etl::retry::{Jitter, RetryPolicy};
use etl::system::{System, SystemOutcome, Systems};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// When each step started (ms since `origin`).
type Log = Arc<Mutex<Vec<u64>>>;

/// A system that steps every `rate`, taking `takes`, failing when `fails` says so.
struct Probe {
    name: &'static str,
    rate: Duration,
    takes: Duration,
    origin: Instant,
    log: Log,
    fails: fn(usize) -> bool,
    setup_fails: bool,
}

impl Probe {
    fn new(name: &'static str, rate: Duration, origin: Instant) -> Probe {
        Probe { name, rate, takes: Duration::ZERO, origin, log: Log::default(), fails: |_| false, setup_fails: false }
    }
}

impl System for Probe {
    fn name(&self) -> String {
        self.name.to_owned()
    }

    fn tick_rate(&self) -> Duration {
        self.rate
    }

    async fn setup(&mut self) -> etl::Result<()> {
        if self.setup_fails {
            return Err(etl::Error::system("database unreachable"));
        }
        Ok(())
    }

    async fn step(&mut self) -> etl::Result<()> {
        let n = {
            let mut log = self.log.lock().unwrap();
            log.push(self.origin.elapsed().as_millis() as u64);
            log.len() - 1
        };
        tokio::time::sleep(self.takes).await;
        if (self.fails)(n) {
            return Err(etl::Error::system(format!("step {n} failed")));
        }
        Ok(())
    }
}

/// Run `systems`, cancelling them after `after`.
async fn run_for(systems: Systems, after: Duration) -> etl::system::SystemsReport {
    let stop = CancellationToken::new();
    let stopper = async {
        tokio::time::sleep(after).await;
        stop.cancel();
    };
    let (report, ()) = tokio::join!(systems.handle_signals(false).cancel_on(stop.clone()).run(), stopper);
    report
}

fn no_jitter(first: Duration) -> RetryPolicy {
    RetryPolicy::default().initial_delay(first).factor(2.0).jitter(Jitter::None)
}

#[tokio::test(start_paused = true)]
async fn systems_tick_at_their_rate_without_drift() {
    let origin = Instant::now();
    let mut fast = Probe::new("fast", ms(100), origin);
    fast.takes = ms(40); // 40% of its period: the schedule must not slip by it
    let slow = Probe::new("slow", ms(250), origin);
    let (fast_log, slow_log) = (Arc::clone(&fast.log), Arc::clone(&slow.log));
    let report = run_for(Systems::new().add(fast).add(slow), ms(1050)).await;
    assert_eq!(*fast_log.lock().unwrap(), (0..=10).map(|i| i * 100).collect::<Vec<_>>());
    assert_eq!(*slow_log.lock().unwrap(), [0, 250, 500, 750, 1000]);
    assert_eq!(report.get("fast").map(|s| (s.steps, s.failures)), Some((11, 0)));
    assert_eq!(report.get("slow").map(|s| s.steps), Some(5));
    assert!(report.is_ok(), "{report}");
    assert!(report.systems.iter().all(|s| s.outcome == SystemOutcome::Stopped));
}

#[tokio::test(start_paused = true)]
async fn a_failing_step_is_counted_and_backed_off_without_stopping_the_others() {
    let origin = Instant::now();
    let mut failing = Probe::new("failing", ms(100), origin);
    failing.fails = |_| true;
    let healthy = Probe::new("healthy", ms(100), origin);
    let (failing_log, healthy_log) = (Arc::clone(&failing.log), Arc::clone(&healthy.log));
    let report = run_for(Systems::new().add(failing).add(healthy).backoff(no_jitter(ms(500))), ms(2050)).await;
    // Backoffs of 500 ms, 1 s, then 2 s (stopped during it): the failing system steps less
    // often, and keeps stepping.
    assert_eq!(*failing_log.lock().unwrap(), [0, 500, 1500]);
    let failing = report.get("failing").unwrap();
    assert_eq!((failing.steps, failing.failures), (3, 3));
    assert_eq!(failing.last_error.as_deref(), Some("step 2 failed"));
    assert_eq!(failing.outcome, SystemOutcome::Stopped);
    assert_eq!(healthy_log.lock().unwrap().len(), 21, "the healthy system stepped every 100 ms");
    assert_eq!(report.get("healthy").map(|s| s.failures), Some(0));
    assert_eq!(report.failures(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_backoff() {
    let origin = Instant::now();
    let mut flaky = Probe::new("flaky", ms(100), origin);
    flaky.fails = |n| n % 2 == 0; // fail, succeed, fail, ...
    let log = Arc::clone(&flaky.log);
    let report = run_for(Systems::new().add(flaky).backoff(no_jitter(ms(300))), ms(1000)).await;
    // Each failure waits 300 ms (never 600: the success in between reset it), then the next
    // tick on the grid.
    assert_eq!(*log.lock().unwrap(), [0, 300, 400, 700, 800]);
    assert_eq!(report.systems[0].failures, 3);
}

#[tokio::test(start_paused = true)]
async fn a_failing_setup_is_reported_and_that_system_does_not_run() {
    let origin = Instant::now();
    let mut broken = Probe::new("broken", ms(100), origin);
    broken.setup_fails = true;
    let working = Probe::new("working", ms(100), origin);
    let (broken_log, working_log) = (Arc::clone(&broken.log), Arc::clone(&working.log));
    let report = run_for(Systems::new().add(broken).add(working), ms(350)).await;
    assert!(broken_log.lock().unwrap().is_empty());
    assert_eq!(report.get("broken").map(|s| &s.outcome), Some(&SystemOutcome::SetupFailed("database unreachable".into())));
    assert_eq!(working_log.lock().unwrap().len(), 4);
    assert!(!report.is_ok());
    assert!(report.to_string().contains("broken: setup failed: database unreachable"), "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_step_stops_only_its_system() {
    struct Panics;
    impl System for Panics {
        fn name(&self) -> String {
            "panics".into()
        }
        fn tick_rate(&self) -> Duration {
            ms(100)
        }
        async fn step(&mut self) -> etl::Result<()> {
            panic!("index out of bounds");
        }
    }
    let working = Probe::new("working", ms(100), Instant::now());
    let log = Arc::clone(&working.log);
    let report = run_for(Systems::new().add(Panics).add(working), ms(350)).await;
    assert_eq!(report.get("panics").map(|s| &s.outcome), Some(&SystemOutcome::Panicked("index out of bounds".into())));
    assert_eq!(log.lock().unwrap().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_stop_lets_the_step_in_flight_finish() {
    let origin = Instant::now();
    let mut slow = Probe::new("slow", ms(1000), origin);
    slow.takes = ms(300);
    let log = Arc::clone(&slow.log);
    let stop = CancellationToken::new();
    let run = Systems::new().add(slow).handle_signals(false).cancel_on(stop.clone()).run();
    let stopper = async {
        tokio::time::sleep(ms(100)).await;
        stop.cancel();
    };
    let (report, ()) = tokio::join!(run, stopper);
    // Stopped mid-step at 100 ms: the step finished (300 ms), no other started.
    assert_eq!(origin.elapsed(), ms(300));
    assert_eq!(*log.lock().unwrap(), [0]);
    assert_eq!((report.systems[0].steps, &report.systems[0].outcome), (1, &SystemOutcome::Stopped));
}

#[tokio::test(start_paused = true)]
async fn a_step_still_running_after_the_shutdown_timeout_is_abandoned() {
    let origin = Instant::now();
    let mut stuck = Probe::new("stuck", ms(1000), origin);
    stuck.takes = Duration::from_secs(3600);
    let quick = Probe::new("quick", ms(10), origin);
    let stop = CancellationToken::new();
    let run = Systems::new().add(stuck).add(quick).handle_signals(false).cancel_on(stop.clone()).shutdown_timeout(ms(500)).run();
    let stopper = async {
        tokio::time::sleep(ms(100)).await;
        stop.cancel();
    };
    let (report, ()) = tokio::join!(run, stopper);
    assert_eq!(origin.elapsed(), ms(600));
    assert_eq!(report.get("stuck").map(|s| &s.outcome), Some(&SystemOutcome::Abandoned));
    assert_eq!(report.get("quick").map(|s| &s.outcome), Some(&SystemOutcome::Stopped));
}

#[tokio::test(start_paused = true)]
async fn systems_that_finish_end_the_run() {
    struct Countdown(u32);
    impl System for Countdown {
        fn name(&self) -> String {
            "countdown".into()
        }
        fn tick_rate(&self) -> Duration {
            ms(10)
        }
        async fn step(&mut self) -> etl::Result<()> {
            self.0 -= 1;
            Ok(())
        }
        fn finished(&self) -> bool {
            self.0 == 0
        }
    }
    let origin = Instant::now();
    let report = Systems::new().add(Countdown(5)).handle_signals(false).run().await;
    assert_eq!(origin.elapsed(), ms(40));
    assert_eq!((report.systems[0].steps, &report.systems[0].outcome), (5, &SystemOutcome::Finished));
}

#[tokio::test(start_paused = true)]
async fn a_pipeline_runs_as_a_system_once() {
    let out = etl::sink::collect();
    let pipeline = Pipeline::from(etl::source::iter(1..=4)).map(|n: i64| n * 10).to(out.sink()).name("tens");
    let worker = Probe::new("worker", ms(100), Instant::now());
    let stop = CancellationToken::new();
    // The worker goes on after the pipeline finished; both end at the stop.
    let report = run_for(Systems::new().add(pipeline.into_system()).add(worker).cancel_on(stop), ms(250)).await;
    assert_eq!(out.records(), [10, 20, 30, 40]);
    let tens = report.get("tens").unwrap();
    assert_eq!((tens.steps, tens.failures, &tens.outcome), (1, 0, &SystemOutcome::Finished));
    assert_eq!(report.get("worker").map(|s| s.steps), Some(3));
}

#[tokio::test(start_paused = true)]
async fn an_endless_pipeline_system_stops_gracefully_with_the_systems() {
    let out = etl::sink::collect();
    let source = etl::source::periodic(ms(100), || async { Ok::<_, String>(vec![1i64]) });
    let pipeline = Pipeline::from(source).to(out.sink()).name("poller");
    let started = Instant::now();
    let report = run_for(Systems::new().add(pipeline.into_system()), ms(450)).await;
    assert!(started.elapsed() < ms(600), "{:?}", started.elapsed());
    assert_eq!(out.len(), 5, "the polls at 0..=400 ms were delivered, flushed at the stop");
    assert_eq!(report.get("poller").map(|s| (s.failures, &s.outcome)), Some((0, &SystemOutcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_failing_pipeline_is_its_systems_error() {
    let poll = || async { Err::<Vec<i64>, _>("403 forbidden") };
    let source = etl::source::periodic(ms(100), poll).retries(0).max_consecutive_failures(1);
    let pipeline = Pipeline::from(source).to(etl::sink::blackhole()).name("forbidden");
    let report = Systems::new().add(pipeline.into_system()).handle_signals(false).run().await;
    let system = report.get("forbidden").unwrap();
    assert_eq!((system.steps, system.failures, &system.outcome), (1, 1, &SystemOutcome::Finished));
    assert!(system.last_error.as_deref().is_some_and(|e| e.contains("403 forbidden")), "{system}");
}

/// A real SIGTERM to this process: the systems stop gracefully. Real time (a paused clock
/// would race ahead while the signal is on its way).
#[cfg(unix)]
#[tokio::test]
async fn sigterm_stops_the_systems() {
    let worker = Probe::new("worker", ms(10), Instant::now());
    let run = Systems::new().add(worker).handle_signals(true).run();
    let signal = async {
        tokio::time::sleep(ms(100)).await;
        // SAFETY: sending a signal to this very process, whose handler `run` installed.
        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    };
    let (report, ()) =
        tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(run, signal) }).await.expect("stopped by SIGTERM");
    let worker = report.get("worker").unwrap();
    assert_eq!(worker.outcome, SystemOutcome::Stopped);
    assert!(worker.steps > 0);
}
