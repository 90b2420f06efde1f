//! Unit tests of the stage operator: attempts, classification, timeouts, concurrency, order.

use super::*;
use crate::batch::{Batch, FailureKind};
use crate::operator::Operator;
use crate::record::{Meta, Position};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

#[test]
fn classification() {
    assert_eq!(classify(&Error::permanent("x")), Retry::Permanent);
    assert_eq!(classify(&Error::retryable("x")), Retry::Retryable);
    let config = crate::Error::from(crate::ConfigError::UnsetVariable { name: "X".into() });
    assert_eq!(classify(&config), Retry::Permanent);
    assert_eq!(classify(&crate::Error::Sink(ConnectorError::retryable("s", "down"))), Retry::Retryable);
    assert_eq!(classify(&crate::Error::Sink(ConnectorError::permanent("s", "bad"))), Retry::Permanent);
    let boxed: BoxError = Box::new(ConnectorError::permanent("geo", "404"));
    assert_eq!(classify(&boxed), Retry::Permanent);
    // A permanent stage error keeps its class through `?` into a boxed error, and back.
    let boxed: BoxError = Error::permanent("bad id").into();
    assert_eq!(boxed.to_string(), "bad id");
    assert_eq!(classify(&boxed), Retry::Permanent);
    assert_eq!(Error::from(std::io::Error::other(Permanent("x".into()))).retry(), Retry::Retryable);
    assert!(Error::from(ConnectorError::permanent("c", "x")).is_permanent());
    assert_eq!(classify(&"text"), Retry::Retryable);
    assert_eq!(format!("{:?}", Error::permanent("x")), "Error { retry: Permanent, error: \"x\" }");
}

fn meta_with_raw(i: usize) -> Meta {
    Meta::default().with_raw(bytes::Bytes::from(format!("raw-{i}")))
}

#[tokio::test(start_paused = true)]
async fn retries_then_succeeds_or_dead_letters_with_attempts() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    // Fails twice per record, then succeeds.
    let f = move |n: i64| {
        let k = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if k % 3 < 2 {
                Err(Error::retryable("flaky"))
            } else {
                Ok(n * 10)
            }
        }
    };
    let mut op = Stage::new(f).options(StageOptions::new("flaky").retries(2));
    let batch = Batch::new(vec![1, 2], vec![meta_with_raw(0), meta_with_raw(1)], Vec::new(), crate::ack::Ack::none(), "t".into());
    let out = op.apply(batch).await;
    assert_eq!(out.records(), &[10, 20]);
    assert!(out.failures().is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 6);

    // One retry only: each record fails twice and is dead-lettered, raw bytes kept.
    let mut op = Stage::new(|_: i64| async { Err::<i64, _>(Error::retryable("down")) }).options(StageOptions::new("down").retries(1));
    let batch = Batch::new(vec![1, 2], vec![meta_with_raw(0), Meta::default()], Vec::new(), crate::ack::Ack::none(), "t".into());
    let out = op.apply(batch).await;
    assert!(out.is_empty());
    let f = out.failures();
    assert_eq!((f[0].attempts, f[0].kind, &f[0].payload[..]), (2, FailureKind::Transform, &b"raw-0"[..]));
    assert_eq!(f[0].error, "stage `down` failed after 2 attempts: down");
    assert_eq!(&f[1].payload[..], b"2", "no raw bytes: the record as JSON");
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried_and_timeouts_are() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let mut op = Stage::new(move |n: i64| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move { Err::<i64, _>(Error::permanent(format!("bad {n}"))) }
    })
    .options(StageOptions::new("p").retries(5));
    let out = op.apply(Batch::from_records(vec![7])).await;
    assert_eq!((calls.load(Ordering::SeqCst), out.failures()[0].attempts), (1, 1));
    assert_eq!(out.failures()[0].error, "stage `p` failed: bad 7");
    assert_eq!(&out.failures()[0].payload[..], b"7");

    let mut op = Stage::new(|n: i64| async move {
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        Ok::<i64, String>(n)
    })
    .options(StageOptions::new("slow").retries(2).timeout(std::time::Duration::from_millis(50)));
    let out = op.apply(Batch::from_records(vec![1])).await;
    assert_eq!(out.failures()[0].attempts, 3);
    assert_eq!(out.failures()[0].error, "stage `slow` failed after 3 attempts: timed out after 50ms");
}

#[tokio::test(start_paused = true)]
async fn concurrency_overlaps_and_keeps_order() {
    let in_flight = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let (i, p) = (Arc::clone(&in_flight), Arc::clone(&peak));
    let f = move |n: u64| {
        let (i, p) = (Arc::clone(&i), Arc::clone(&p));
        async move {
            let now = i.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            // Later records finish first: the output must still be in input order.
            tokio::time::sleep(std::time::Duration::from_millis(100 - n)).await;
            i.fetch_sub(1, Ordering::SeqCst);
            Ok::<u64, String>(n)
        }
    };
    let mut op = Stage::new(f).concurrency(8);
    let start = tokio::time::Instant::now();
    let out = op.apply(Batch::from_records((0..16).collect())).await;
    assert_eq!(out.records(), (0..16).collect::<Vec<_>>().as_slice());
    assert_eq!(peak.load(Ordering::SeqCst), 8);
    assert!(start.elapsed() < std::time::Duration::from_millis(250), "{:?}", start.elapsed());
}

/// The waits between a record's attempts follow the documented full jitter: the wait before
/// retry `n` is between 0 and `backoff × factor^n` capped at `max_backoff`, and over many
/// records it is spread over that range (mean about half of it), not fixed nor above the cap.
#[tokio::test(start_paused = true)]
async fn retry_waits_are_full_jitter_within_the_capped_backoff() {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::time::Instant;
    const RECORDS: u64 = 300;
    let attempts: Arc<Mutex<HashMap<u64, Vec<Instant>>>> = Arc::default();
    let seen = Arc::clone(&attempts);
    let f = move |n: u64| {
        seen.lock().unwrap().entry(n).or_default().push(Instant::now());
        async move { Err::<u64, _>(Error::retryable("down")) }
    };
    let options =
        StageOptions::new("jitter").retries(5).backoff(Duration::from_millis(100)).factor(2.0).max_backoff(Duration::from_millis(500));
    let mut op = Stage::new(f).options(options).concurrency(RECORDS as usize);
    let out = op.apply(Batch::from_records((0..RECORDS).collect())).await;
    assert_eq!(out.failures().len(), RECORDS as usize);
    let caps = [100u64, 200, 400, 500, 500].map(Duration::from_millis);
    let attempts = attempts.lock().unwrap();
    let mut ratios = vec![Vec::new(); caps.len()];
    for times in attempts.values() {
        assert_eq!(times.len(), 6, "one attempt and five retries");
        for (n, pair) in times.windows(2).enumerate() {
            let wait = pair[1] - pair[0];
            // The timer's resolution is a millisecond: a wait may end up to 1 ms late.
            assert!(wait <= caps[n] + Duration::from_millis(1), "retry {n} waited {wait:?}, over {:?}", caps[n]);
            ratios[n].push(wait.as_secs_f64() / caps[n].as_secs_f64());
        }
    }
    for (n, r) in ratios.iter().enumerate() {
        // 300 draws of U[0, 1]: mean 0.5, standard error 0.017.
        let mean = r.iter().sum::<f64>() / r.len() as f64;
        assert!((0.4..0.6).contains(&mean), "retry {n}: mean wait {mean} of its bound");
        assert!(r.iter().any(|x| *x < 0.2) && r.iter().any(|x| *x > 0.8), "retry {n}: waits not spread over [0, bound]");
    }
}

/// Five records, each attempt taking 10 ms, at most two attempts at once; record 0 fails twice
/// (retryable, so it waits its backoff) and then succeeds. Returns the output records, their
/// positions, the peak of attempts running at once, and the order in which records completed.
async fn first_record_fails_twice(ordered: bool) -> (Vec<u64>, Vec<Position>, u32, Vec<u64>) {
    use std::sync::Mutex;
    use std::time::Duration;
    let calls = Arc::new(Mutex::new(std::collections::HashMap::<u64, u32>::new()));
    let in_flight = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let completed = Arc::new(Mutex::new(Vec::new()));
    let (c, i, p, done) = (Arc::clone(&calls), Arc::clone(&in_flight), Arc::clone(&peak), Arc::clone(&completed));
    let f = move |n: u64| {
        let call = {
            let mut calls = c.lock().unwrap();
            let k = calls.entry(n).or_default();
            *k += 1;
            *k
        };
        let (i, p, done) = (Arc::clone(&i), Arc::clone(&p), Arc::clone(&done));
        async move {
            let now = i.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            i.fetch_sub(1, Ordering::SeqCst);
            if n == 0 && call <= 2 {
                return Err(Error::retryable("busy"));
            }
            done.lock().unwrap().push(n);
            Ok::<u64, Error>(n * 100)
        }
    };
    let options = StageOptions::new("first").retries(3).backoff(Duration::from_millis(50));
    let mut op = Stage::new(f).options(options).concurrency(2).ordered(ordered);
    let meta = (0..5).map(|i| Meta::at(Position::Index(i)).with_raw(bytes::Bytes::from(format!("raw-{i}")))).collect();
    let batch = Batch::new((0..5).collect(), meta, Vec::new(), crate::ack::Ack::none(), "t".into());
    let out = op.apply(batch).await;
    assert!(out.failures().is_empty());
    let positions = out.meta().iter().map(|m| m.position.clone()).collect();
    let completed = completed.lock().unwrap().clone();
    (out.records().to_vec(), positions, peak.load(Ordering::SeqCst), completed)
}

#[tokio::test(start_paused = true)]
async fn unordered_emits_records_as_they_complete_while_one_waits_for_its_retries() {
    let (records, positions, peak, completed) = first_record_fails_twice(false).await;
    // The others started and finished while record 0 waited for its retries; it comes last.
    assert_eq!(completed, [1, 2, 3, 4, 0]);
    assert_eq!(records, [100, 200, 300, 400, 0]);
    // Each record's metadata stays with it.
    assert_eq!(positions, [1, 2, 3, 4, 0].map(Position::Index));
    // The concurrency limit holds.
    assert_eq!(peak, 2);
}

#[tokio::test(start_paused = true)]
async fn ordered_keeps_input_order_even_when_the_first_record_retries() {
    let (records, positions, peak, completed) = first_record_fails_twice(true).await;
    // In order, record 0 holds back the records after it: only record 1 (in its window of two)
    // could run during record 0's retries.
    assert_eq!(completed, [1, 0, 2, 3, 4]);
    assert_eq!(records, [0, 100, 200, 300, 400]);
    assert_eq!(positions, [0, 1, 2, 3, 4].map(Position::Index));
    assert!(peak <= 2);
}

/// With `concurrency = 1` and `ordered = false`, a record in its backoff does not hold the
/// only slot: the next records run meanwhile.
#[tokio::test(start_paused = true)]
async fn unordered_with_one_slot_runs_others_during_a_backoff() {
    use std::time::Duration;
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let f = move |n: u64| {
        let call = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            // Only the very first call (record 0's first attempt) fails.
            if call == 0 {
                Err(Error::retryable("busy"))
            } else {
                Ok::<u64, Error>(n)
            }
        }
    };
    let mut op = Stage::new(f).options(StageOptions::new("one").retries(1).backoff(Duration::from_secs(3600))).ordered(false);
    let out = op.apply(Batch::from_records((0..4).collect())).await;
    let records = out.records().to_vec();
    // Record 0's wait is random in [0, 1 h]: the others ran during it unless it was shorter
    // than their 3 ms (a chance of one in a million).
    assert_eq!(records.len(), 4);
    assert_eq!(records[..3], [1, 2, 3], "{records:?}");
}
