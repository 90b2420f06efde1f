//! Stages end to end, through `pipeline!` and the builder API: retries until success, exhausted
//! retries and permanent errors dead-lettered with the source's raw bytes and the attempt
//! count, per-attempt timeouts, concurrency that overlaps and keeps order, and every record
//! accounted for (in = out + dead-lettered).

use etl::dead_letter::{DeadLetters, MemoryDeadLetters};
use etl::prelude::*;
use etl::stage::{Stage, StageOptions};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    amount_cents: i64,
}

fn orders(n: i64) -> Vec<Order> {
    (1..=n).map(|id| Order { id, amount_cents: id * 100 }).collect()
}

/// Counts the calls per record id, for one stage (each test has its own).
struct Calls(Mutex<Option<HashMap<i64, u32>>>);

impl Calls {
    const fn new() -> Calls {
        Calls(Mutex::new(None))
    }

    /// Count a call for `id`; the number of calls so far, this one included.
    fn call(&self, id: i64) -> u32 {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.get_or_insert_with(HashMap::new).entry(id).or_insert(0);
        *n += 1;
        *n
    }

    fn of(&self, id: i64) -> u32 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|m| m.get(&id).copied()).unwrap_or(0)
    }
}

static FLAKY: Calls = Calls::new();

/// Fails twice per record (a retryable error), then succeeds.
#[stage(retries = 3, backoff = 10ms)]
async fn flaky(mut o: Order) -> Result<Order, etl::stage::Error> {
    if FLAKY.call(o.id) <= 2 {
        return Err(etl::stage::Error::retryable(format!("order {}: 503", o.id)));
    }
    o.amount_cents += 1;
    Ok(o)
}

#[tokio::test(start_paused = true)]
async fn a_stage_failing_twice_then_succeeding_delivers_the_record() -> etl::Result<()> {
    let out = etl::sink::collect();
    let dead = MemoryDeadLetters::new();
    let report = pipeline! {
        iter(orders(5), batch_size = 2) as Order
        | map(flaky)
        | collect(out)
    }
    .dead_letters(dead.clone())
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(out.records().iter().map(|o: &Order| o.amount_cents).collect::<Vec<_>>(), [101, 201, 301, 401, 501]);
    assert_eq!((report.records_in, report.records_out, report.dead_lettered), (5, 5, 0));
    assert_eq!(report.retries, 10, "two retries per record");
    assert!(dead.is_empty());
    for id in 1..=5 {
        assert_eq!(FLAKY.of(id), 3, "order {id}: two failures, then success");
    }
    Ok(())
}

static DOWN: Calls = Calls::new();

/// Always fails (retryable) for odd ids.
#[stage(retries = 2, backoff = 1s, factor = 3.0, max_backoff = 5s)]
async fn down_for_odd_ids(o: Order) -> Result<Order, etl::stage::Error> {
    DOWN.call(o.id);
    if o.id % 2 == 1 {
        return Err(etl::stage::Error::retryable("connection refused"));
    }
    Ok(o)
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_dead_letter_the_record_with_its_raw_bytes() -> etl::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let input = dir.path().join("orders.jsonl");
    // Spaces and key order that re-serialising would not reproduce: the dead letter must hold
    // the bytes as read.
    let lines = ["{ \"amount_cents\": 100, \"id\": 1 }", "{\"id\":2,\"amount_cents\":200}", "{ \"id\" : 3, \"amount_cents\" : 300 }"];
    std::fs::write(&input, lines.join("\n") + "\n").expect("write input");
    let path = input.to_string_lossy().into_owned();
    let out = etl::sink::collect::<Order>();
    let dead = MemoryDeadLetters::new();
    let report = pipeline! {
        file(path = path, batch_size = 10) as Order
        | map(down_for_odd_ids)
        | collect(out)
    }
    .dead_letters(dead.clone())
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(out.records(), [Order { id: 2, amount_cents: 200 }]);
    assert_eq!((report.records_in, report.records_out, report.dead_lettered), (3, 1, 2));
    assert_eq!(report.retries, 4, "two retries for each odd id");
    let entries = dead.list().await.expect("list dead letters");
    assert_eq!(entries.len(), 2);
    for (entry, raw) in entries.iter().zip([lines[0], lines[2]]) {
        assert_eq!(&entry.payload[..], raw.as_bytes());
        assert_eq!(entry.kind, etl::batch::FailureKind::Transform);
        assert_eq!(entry.attempts, 3, "retries + 1");
        assert_eq!(entry.error, "stage `down_for_odd_ids` failed after 3 attempts: connection refused");
    }
    assert_eq!((DOWN.of(1), DOWN.of(2), DOWN.of(3)), (3, 1, 3));
    Ok(())
}

static STRICT: Calls = Calls::new();

/// Rejects negative amounts for good; the DESIGN's signature, with `etl::Error`.
#[stage(retries = 5)]
async fn strict(o: Order) -> Result<Order, etl::Error> {
    STRICT.call(o.id);
    if o.amount_cents < 0 {
        let e = etl::ConnectorError::permanent("pricing service", format!("order {}: negative amount", o.id));
        return Err(etl::Error::Source(e));
    }
    Ok(o)
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_dead_lettered_after_one_attempt() -> etl::Result<()> {
    let out = etl::sink::collect::<Order>();
    let dead = MemoryDeadLetters::new();
    let items = vec![Order { id: 1, amount_cents: 5 }, Order { id: 2, amount_cents: -5 }, Order { id: 3, amount_cents: 7 }];
    let report = pipeline! { iter(items) as Order | map(strict) as Order | collect(out) }
        .dead_letters(dead.clone())
        .handle_signals(false)
        .run()
        .await?;
    assert_eq!(out.records().iter().map(|o| o.id).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(report.dead_lettered, 1);
    let entry = &dead.list().await.expect("list")[0];
    assert_eq!(entry.attempts, 1);
    assert_eq!(STRICT.of(2), 1, "not retried");
    assert!(entry.error.contains("negative amount"), "{}", entry.error);
    // No raw bytes from an `iter` source: the record as JSON.
    assert_eq!(&entry.payload[..], br#"{"id":2,"amount_cents":-5}"#);
    Ok(())
}

static SLOW: AtomicU32 = AtomicU32::new(0);

/// Takes a second; each attempt may take 50 ms.
#[stage(retries = 2, backoff = 10ms, timeout = 50ms)]
async fn too_slow(o: Order) -> Result<Order, String> {
    SLOW.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(o)
}

#[tokio::test(start_paused = true)]
async fn a_timeout_is_retried_then_dead_lettered() -> etl::Result<()> {
    let out = etl::sink::collect::<Order>();
    let dead = MemoryDeadLetters::new();
    let report = pipeline! { iter(orders(1)) as Order | map(too_slow) | collect(out) }
        .dead_letters(dead.clone())
        .handle_signals(false)
        .run()
        .await?;
    assert_eq!((report.records_out, report.dead_lettered), (0, 1));
    assert_eq!(SLOW.load(Ordering::SeqCst), 3);
    let entry = &dead.list().await.expect("list")[0];
    assert_eq!(entry.attempts, 3);
    assert_eq!(entry.error, "stage `too_slow` failed after 3 attempts: timed out after 50ms");
    Ok(())
}

static IN_FLIGHT: AtomicU32 = AtomicU32::new(0);
static PEAK: AtomicU32 = AtomicU32::new(0);

/// An I/O-bound call: 100 ms, whatever the record.
#[stage]
async fn lookup(o: Order) -> Result<Order, String> {
    let now = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
    PEAK.fetch_max(now, Ordering::SeqCst);
    // Later records answer sooner: the output must still come in input order.
    tokio::time::sleep(Duration::from_millis(100 - o.id as u64)).await;
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    Ok(o)
}

#[tokio::test(start_paused = true)]
async fn concurrency_overlaps_the_calls_and_keeps_the_order() -> etl::Result<()> {
    let out = etl::sink::collect::<Order>();
    let start = tokio::time::Instant::now();
    pipeline! { iter(orders(16), batch_size = 16) as Order | map(lookup, concurrency = 8) | collect(out) }
        .handle_signals(false)
        .run()
        .await?;
    let elapsed = start.elapsed();
    assert_eq!(out.records(), orders(16), "input order");
    assert_eq!(PEAK.load(Ordering::SeqCst), 8);
    assert!(elapsed >= Duration::from_millis(180) && elapsed < Duration::from_millis(300), "16 × 100 ms, 8 at once: {elapsed:?}");

    // Without `concurrency`: one at a time.
    PEAK.store(0, Ordering::SeqCst);
    let out = etl::sink::collect::<Order>();
    let start = tokio::time::Instant::now();
    pipeline! { iter(orders(16), batch_size = 16) as Order | map(lookup) | collect(out) }.handle_signals(false).run().await?;
    assert!(start.elapsed() >= Duration::from_millis(1400), "{:?}", start.elapsed());
    assert_eq!(PEAK.load(Ordering::SeqCst), 1);
    assert_eq!(out.len(), 16);
    Ok(())
}

static MIXED: Calls = Calls::new();

/// id % 3: 0 succeeds, 1 fails permanently, 2 fails once then succeeds.
#[stage(retries = 1, backoff = 5ms)]
async fn mixed(o: Order) -> Result<Order, etl::stage::Error> {
    let n = MIXED.call(o.id);
    match o.id % 3 {
        1 => Err(etl::stage::Error::permanent("invalid")),
        2 if n == 1 => Err(std::io::Error::other("reset").into()),
        _ => Ok(o),
    }
}

#[tokio::test(start_paused = true)]
async fn every_record_is_accounted_for() -> etl::Result<()> {
    let out = etl::sink::collect::<i64>();
    let dead = MemoryDeadLetters::new();
    let report = pipeline! {
        iter(orders(100), batch_size = 7) as Order
        | map(mixed, concurrency = 4)
        | map(|o| o.id)
        | collect(out)
    }
    .dead_letters(dead.clone())
    .handle_signals(false)
    .run()
    .await?;
    let want: Vec<i64> = (1..=100).filter(|id| id % 3 != 1).collect();
    assert_eq!(out.records(), want);
    assert_eq!(report.records_in, report.records_out + report.dead_lettered);
    assert_eq!((report.records_in, report.dead_lettered, dead.len() as u64), (100, 34, 34));
    assert!(dead.list().await.expect("list").iter().all(|e| e.attempts == 1));
    Ok(())
}

#[tokio::test]
async fn a_stage_stays_callable_as_itself() {
    // One attempt, as written: no retry, no timeout.
    assert_eq!(strict(Order { id: 9, amount_cents: 1 }).await.map(|o| o.id).ok(), Some(9));
    assert!(strict(Order { id: 10, amount_cents: -1 }).await.is_err());
    assert_eq!(STRICT.of(10), 1);
    let call = strict(Order { id: 11, amount_cents: 1 });
    assert_eq!(call.options().retries, 5);
    assert_eq!(call.options().name, "strict");
    let spawned = tokio::spawn(call.into_inner()).await.expect("join");
    assert!(spawned.is_ok());
}

/// Not a stage: an async function, one attempt per record.
async fn plain(o: Order) -> Result<i64, String> {
    if o.id == 2 {
        return Err("no".into());
    }
    Ok(o.amount_cents)
}

#[tokio::test]
async fn plain_async_functions_and_closures_in_the_macro() -> etl::Result<()> {
    let out = etl::sink::collect::<i64>();
    let dead = MemoryDeadLetters::new();
    let factor = 2;
    let report = pipeline! {
        iter(orders(3)) as Order
        | map(|o| async move { Ok::<_, String>(Order { amount_cents: o.amount_cents * factor, ..o }) })
        | map(plain, concurrency = 2)
        | collect(out)
    }
    .dead_letters(dead.clone())
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(out.records(), [200, 600]);
    assert_eq!(dead.list().await.expect("list")[0].error, "stage `map` failed: no");
    assert_eq!(report.dead_lettered, 1);
    Ok(())
}

/// A quick stage for the builder API.
#[stage(retries = 0)]
async fn add_one(o: Order) -> Result<Order, String> {
    Ok(Order { id: o.id, amount_cents: o.amount_cents + 1 })
}

#[tokio::test(start_paused = true)]
async fn the_builder_api() -> etl::Result<()> {
    let out = etl::sink::collect::<String>();
    let dead = MemoryDeadLetters::new();
    let tries = std::sync::Arc::new(AtomicU32::new(0));
    let counted = std::sync::Arc::clone(&tries);
    let report = Pipeline::from(etl::source::iter(orders(4)))
        .map_step(add_one)
        .map_async(|o: Order| async move { Ok::<_, String>(o.id) }, 3)
        .then(
            Stage::new(move |id: i64| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if id == 4 {
                        Err(etl::stage::Error::retryable("always"))
                    } else {
                        Ok(format!("#{id}"))
                    }
                }
            })
            .concurrency(2)
            .options(StageOptions::new("label").retries(2).backoff(Duration::from_millis(1))),
        )
        .to(out.sink())
        .dead_letters(dead.clone())
        .handle_signals(false)
        .run()
        .await?;
    assert_eq!(out.records(), ["#1", "#2", "#3"]);
    assert_eq!((report.records_out, report.dead_lettered), (3, 1));
    assert_eq!(tries.load(Ordering::SeqCst), 3 + 3);
    let entry = &dead.list().await.expect("list")[0];
    assert_eq!((entry.attempts, &entry.payload[..]), (3, &b"4"[..]));
    Ok(())
}

static FIRST_BUSY: Calls = Calls::new();

/// Order 1 fails twice (retryable) before it succeeds; every attempt takes 10 ms.
#[stage(retries = 3, backoff = 200ms)]
async fn first_busy(o: Order) -> Result<Order, etl::stage::Error> {
    let call = FIRST_BUSY.call(o.id);
    tokio::time::sleep(Duration::from_millis(10)).await;
    if o.id == 1 && call <= 2 {
        return Err(etl::stage::Error::retryable("order 1: 503"));
    }
    Ok(o)
}

/// `ordered = false` in `pipeline!`: the records after the one that is retried are written
/// first, and it follows once its retries succeed; nothing is lost or dead-lettered.
#[tokio::test(start_paused = true)]
async fn unordered_map_writes_records_as_they_complete() -> etl::Result<()> {
    let out = etl::sink::collect::<Order>();
    let dead = MemoryDeadLetters::new();
    let report = pipeline! {
        iter(orders(6), batch_size = 6) as Order
        | map(first_busy, concurrency = 2, ordered = false)
        | collect(out)
    }
    .dead_letters(dead.clone())
    .handle_signals(false)
    .run()
    .await?;
    let ids: Vec<i64> = out.records().iter().map(|o| o.id).collect();
    assert_eq!(ids, [2, 3, 4, 5, 6, 1]);
    assert_eq!(FIRST_BUSY.of(1), 3);
    assert_eq!((report.records_out, report.dead_lettered, dead.len()), (6, 0, 0));
    Ok(())
}
