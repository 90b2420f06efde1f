//! The `periodic` source on tokio's paused clock: its schedule does not drift with the polls'
//! durations, a poll slower than the period skips ticks and counts them, failed polls are
//! retried with backoff (then the next tick, or the end of the run after too many failed ticks
//! in a row), records are batched and numbered, and a shutdown does not wait for the next tick.

use etl::prelude::*;
use etl::record::Position;
use etl::retry::{Jitter, RetryPolicy};
use etl::source::SourceContext;
use futures::StreamExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// When each poll started, from the test's start, in whole seconds.
#[derive(Clone)]
struct Starts {
    origin: Instant,
    seen: Arc<Mutex<Vec<Duration>>>,
}

impl Starts {
    fn new() -> Starts {
        Starts { origin: Instant::now(), seen: Arc::default() }
    }

    fn record(&self) {
        self.seen.lock().unwrap().push(self.origin.elapsed());
    }

    fn secs(&self) -> Vec<u64> {
        self.seen.lock().unwrap().iter().map(Duration::as_secs).collect()
    }
}

/// A poll that takes `takes` and returns `per_poll` numbers.
fn slow_poll(
    starts: &Starts,
    takes: Duration,
    per_poll: i64,
) -> impl FnMut() -> futures::future::BoxFuture<'static, Result<Vec<i64>, String>> + Send + 'static {
    let starts = starts.clone();
    move || {
        starts.record();
        Box::pin(async move {
            tokio::time::sleep(takes).await;
            Ok((0..per_poll).collect())
        })
    }
}

fn no_jitter(retries: usize, first: Duration) -> RetryPolicy {
    RetryPolicy::default().max_retries(retries).initial_delay(first).factor(2.0).jitter(Jitter::None)
}

#[tokio::test(start_paused = true)]
async fn the_schedule_does_not_drift_when_a_poll_takes_40_percent_of_the_period() -> etl::Result<()> {
    let starts = Starts::new();
    let source = etl::source::periodic(secs(10), slow_poll(&starts, secs(4), 2)).max_polls(5);
    let stats = source.stats();
    let out = etl::sink::collect();
    let report = Pipeline::from(source).to(out.sink()).handle_signals(false).run().await?;
    // Sleeping after each poll would give 0, 14, 28, 42, 56.
    assert_eq!(starts.secs(), [0, 10, 20, 30, 40]);
    assert_eq!(starts.seen.lock().unwrap()[4], secs(40), "exactly on the grid");
    assert_eq!((stats.polls(), stats.missed_ticks(), stats.records()), (5, 0, 10));
    assert_eq!((report.records_in, out.len()), (10, 10));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_poll_slower_than_the_period_skips_ticks_and_counts_them() -> etl::Result<()> {
    let starts = Starts::new();
    let source = etl::source::periodic(secs(10), slow_poll(&starts, secs(25), 1)).max_polls(3);
    let stats = source.stats();
    let out = etl::sink::collect();
    Pipeline::from(source).to(out.sink()).handle_signals(false).run().await?;
    // Tick 10 s fires late at 25 s (20 s skipped); tick 30 s fires at 50 s (40 s and 50 s
    // skipped). Polls never overlap, and skipped ticks are not made up for.
    assert_eq!(starts.secs(), [0, 25, 50]);
    assert_eq!(stats.missed_ticks(), 3);
    assert_eq!((stats.polls(), out.len()), (3, 3));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn failed_polls_are_retried_with_backoff_then_recover() -> etl::Result<()> {
    let starts = Starts::new();
    let attempts = Arc::new(AtomicU32::new(0));
    let poll = {
        let (starts, attempts) = (starts.clone(), Arc::clone(&attempts));
        move || {
            starts.record();
            let n = attempts.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(format!("503 on attempt {}", n + 1))
                } else {
                    Ok(vec![7i64])
                }
            }
        }
    };
    let source = etl::source::periodic(secs(60), poll).retry(no_jitter(3, secs(1))).max_polls(2);
    let stats = source.stats();
    let out = etl::sink::collect();
    Pipeline::from(source).to(out.sink()).handle_signals(false).run().await?;
    // Attempts at 0 s, 1 s (backoff 1 s) and 3 s (backoff 2 s); the next tick on its grid.
    assert_eq!(starts.secs(), [0, 1, 3, 60]);
    assert_eq!((stats.retries(), stats.failed_polls(), stats.polls()), (2, 0, 2));
    assert_eq!(out.records(), [7, 7]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_tick_whose_retries_ran_out_is_logged_and_the_source_keeps_ticking() -> etl::Result<()> {
    let starts = Starts::new();
    let poll = {
        let starts = starts.clone();
        move || {
            starts.record();
            let failing = starts.origin.elapsed() < secs(10);
            async move {
                if failing {
                    Err(std::io::Error::other("connection refused"))
                } else {
                    Ok(vec!["up".to_owned()])
                }
            }
        }
    };
    let source = etl::source::periodic(secs(10), poll).retry(no_jitter(1, secs(2))).max_polls(3);
    let stats = source.stats();
    let out = etl::sink::collect();
    Pipeline::from(source).to(out.sink()).handle_signals(false).run().await?;
    assert_eq!(starts.secs(), [0, 2, 10, 20]);
    assert_eq!((stats.failed_polls(), stats.polls(), stats.retries()), (1, 2, 1));
    assert_eq!(out.len(), 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn too_many_failed_ticks_in_a_row_end_the_run_with_the_error() {
    let poll = || async { Err::<Vec<i64>, _>("401 unauthorized") };
    let source = etl::source::periodic(secs(10), poll).retries(0).max_consecutive_failures(3);
    let started = Instant::now();
    let out = etl::sink::collect();
    let error = Pipeline::from(source).to(out.sink()).handle_signals(false).run().await.unwrap_err();
    assert!(matches!(error, etl::Error::Source(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("3 ticks in a row failed") && message.contains("401 unauthorized"), "{message}");
    assert_eq!(started.elapsed().as_secs(), 20);
}

#[tokio::test(start_paused = true)]
async fn records_are_batched_and_numbered_across_polls() -> etl::Result<()> {
    let starts = Starts::new();
    let source = etl::source::periodic(secs(10), slow_poll(&starts, Duration::ZERO, 5))
        .max_polls(2)
        .batch_size(4)
        .batch_timeout(Duration::from_millis(100));
    let mut batches = source.open(SourceContext::new(CancellationToken::new())).await?;
    let mut seen = Vec::new();
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        let positions: Vec<Position> = batch.meta().iter().map(|m| m.position.clone()).collect();
        seen.push((starts.origin.elapsed().as_millis(), batch.records().to_vec(), positions));
    }
    let index = |r: std::ops::Range<u64>| r.map(Position::Index).collect::<Vec<_>>();
    assert_eq!(
        seen,
        [
            (0, vec![0, 1, 2, 3], index(0..4)),
            (100, vec![4], index(4..5)), // the rest of the poll, at the batch timeout
            (10_000, vec![0, 1, 2, 3], index(5..9)),
            (10_000, vec![4], index(9..10)), // the stream ended: flushed
        ]
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn max_records_ends_the_source_mid_poll() -> etl::Result<()> {
    let starts = Starts::new();
    let source = etl::source::periodic(secs(1), slow_poll(&starts, Duration::ZERO, 5)).max_records(7);
    let out = etl::sink::collect();
    Pipeline::from(source).to(out.sink()).handle_signals(false).run().await?;
    assert_eq!(out.records(), [0, 1, 2, 3, 4, 0, 1]);
    assert_eq!(starts.secs(), [0, 1]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn shutdown_does_not_wait_for_the_next_tick() -> etl::Result<()> {
    let starts = Starts::new();
    let source = etl::source::periodic(Duration::from_secs(3600), slow_poll(&starts, Duration::ZERO, 3));
    let stop = CancellationToken::new();
    let out = etl::sink::collect();
    let run = Pipeline::from(source).to(out.sink()).handle_signals(false).cancel_on(stop.clone()).run();
    let started = Instant::now();
    let stopper = async {
        tokio::time::sleep(secs(5)).await;
        stop.cancel();
    };
    let (report, ()) = tokio::join!(run, stopper);
    let report = report?;
    assert!(started.elapsed() < secs(6), "stopped after {:?}, not at the next tick", started.elapsed());
    assert_eq!((report.records_in, out.len()), (3, 3), "the first tick's records were delivered");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn shutdown_drops_a_poll_in_flight() -> etl::Result<()> {
    let starts = Starts::new();
    let source = etl::source::periodic(secs(10), slow_poll(&starts, Duration::from_secs(3600), 1));
    let stop = CancellationToken::new();
    let out = etl::sink::collect();
    let run = Pipeline::from(source).to(out.sink()).handle_signals(false).cancel_on(stop.clone()).run();
    let started = Instant::now();
    let stopper = async {
        tokio::time::sleep(secs(5)).await;
        stop.cancel();
    };
    let (report, ()) = tokio::join!(run, stopper);
    assert!(started.elapsed() < secs(6), "stopped after {:?}", started.elapsed());
    assert_eq!(report?.records_in, 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_zero_period_is_refused_at_start() {
    let source = etl::source::periodic(Duration::ZERO, || async { Ok::<_, String>(vec![1i64]) });
    let error = Pipeline::from(source).to(etl::sink::blackhole()).handle_signals(false).run().await.unwrap_err();
    assert!(error.to_string().contains("every"), "{error}");
}

#[derive(Debug, Clone, PartialEq, Record, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

async fn fetch_readings() -> Result<Vec<Reading>, std::io::Error> {
    Ok(vec![Reading { sensor: "s1".into(), celsius: 21.5 }, Reading { sensor: "s2".into(), celsius: 22.0 }])
}

#[tokio::test(start_paused = true)]
async fn the_pipeline_macro_step() -> etl::Result<()> {
    let out = etl::sink::collect();
    let report = pipeline! {
        periodic(every = 10s, poll = fetch_readings, retries = 2, backoff = 500ms, max_polls = 3, batch_size = 100) as Reading
        | filter(|r| r.celsius > 21.0)
        | map(|r| r.sensor.clone()) as String
        | collect(out)
    }
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(report.records_in, 6);
    assert_eq!(out.records(), ["s1", "s2", "s1", "s2", "s1", "s2"]);

    // Without `as`: the record type is the poll's.
    let numbers = etl::sink::collect();
    pipeline! {
        periodic(every = 1s, poll = || async { Ok::<_, String>(vec![1i64, 2]) }, max_polls = 2)
        | map(|n| n * 10)
        | collect(numbers)
    }
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(numbers.records(), [10, 20, 10, 20]);
    Ok(())
}
