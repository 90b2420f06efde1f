//! Two-phase sinks: what grouping commits buys when making a batch durable costs a round trip.
//!
//! The sink simulates a remote store whose durability costs one round trip of `ETL_BENCH_RTT_MS`
//! (default 1 ms, slept on tokio's timer, whose granularity is 1 ms): a PostgreSQL COMMIT, a
//! Kafka producer's flush. Three ways to drive it, same records, same run:
//!
//! * **today's contract** (durable in `write`): the round trip is paid in every `write`, and
//!   `commit` does nothing. This is what every sink did before two-phase commits.
//! * **two-phase, 1 in flight**: `write` buffers, `commit` pays the round trip; the driver
//!   commits after every batch.
//! * **two-phase, 8 in flight**: the driver groups up to 8 written batches per commit.
//!
//! `cargo bench --bench commit`; `ETL_BENCH_BATCHES` (default 2000) batches of
//! `ETL_BENCH_ROWS` (default 100) records. Prints batches/s, records/s and CPU seconds per
//! side, and each side's ratio to today's contract.

#[path = "harness/measure.rs"]
mod measure;

use etl::prelude::*;
use etl::sink::Written;
use std::time::{Duration, Instant};

/// A sink whose durability costs one round trip, paid in `write` or in `commit`.
struct RoundTrip {
    rtt: Duration,
    durable_in_write: bool,
    buffered: usize,
    durable: usize,
    commits: usize,
}

impl Sink<i64> for RoundTrip {
    fn describe(&self) -> String {
        "round-trip".into()
    }
    async fn write(&mut self, records: &[i64]) -> Result<Written, etl::ConnectorError> {
        if self.durable_in_write {
            tokio::time::sleep(self.rtt).await;
            self.durable += records.len();
        } else {
            self.buffered += records.len();
        }
        Ok(Written::all())
    }
    async fn commit(&mut self) -> Result<(), etl::ConnectorError> {
        if self.buffered > 0 {
            tokio::time::sleep(self.rtt).await;
            self.durable += std::mem::take(&mut self.buffered);
            self.commits += 1;
        }
        Ok(())
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Outcome {
    wall: Duration,
    cpu: f64,
    durable: usize,
    commits: usize,
}

async fn run(records: i64, rows: usize, rtt: Duration, durable_in_write: bool, in_flight: usize) -> Outcome {
    let sink = RoundTrip { rtt, durable_in_write, buffered: 0, durable: 0, commits: 0 };
    // The sink is moved into the run; count through a channel of one value at the end.
    let (tx, rx) = std::sync::mpsc::channel();
    struct Report<S>(S, std::sync::mpsc::Sender<(usize, usize)>);
    impl Sink<i64> for Report<RoundTrip> {
        fn describe(&self) -> String {
            self.0.describe()
        }
        async fn write(&mut self, records: &[i64]) -> Result<Written, etl::ConnectorError> {
            self.0.write(records).await
        }
        async fn commit(&mut self) -> Result<(), etl::ConnectorError> {
            self.0.commit().await
        }
        async fn close(&mut self) -> Result<(), etl::ConnectorError> {
            let _ = self.1.send((self.0.durable, self.0.commits));
            Ok(())
        }
    }
    let cpu = measure::cpu_seconds();
    let started = Instant::now();
    let source = etl::source::iter(0..records).batch_size(rows);
    let report = Pipeline::from(source)
        .to(Report(sink, tx))
        .max_in_flight(in_flight)
        .handle_signals(false)
        .run()
        .await
        .expect("the bench pipeline runs");
    let wall = started.elapsed();
    let cpu = measure::cpu_seconds() - cpu;
    let (durable, commits) = rx.recv().expect("the sink reports at close");
    assert_eq!(report.records_out as usize, durable, "every record durable");
    Outcome { wall, cpu, durable, commits }
}

fn main() {
    let batches = env("ETL_BENCH_BATCHES", 2000);
    let rows = env("ETL_BENCH_ROWS", 100) as usize;
    let rtt = Duration::from_millis(env("ETL_BENCH_RTT_MS", 1));
    let records = (batches * rows as u64) as i64;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    println!(
        "commit: {batches} batches of {rows} records, durability costs {rtt:?} per round trip (one process, current-thread runtime)\n"
    );
    println!("| driver and sink | in flight | batches/s | records/s | commits | CPU s | wall s | ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut baseline = None;
    for (label, durable_in_write, in_flight) in
        [("today's contract (durable in write)", true, 2), ("two-phase", false, 1), ("two-phase", false, 8)]
    {
        let o = runtime.block_on(run(records, rows, rtt, durable_in_write, in_flight));
        assert_eq!(o.durable as i64, records);
        let per_second = batches as f64 / o.wall.as_secs_f64();
        let base = *baseline.get_or_insert(per_second);
        println!(
            "| {label} | {in_flight} | {per_second:.0} | {:.0} | {} | {:.2} | {:.2} | **{:.2}** |",
            records as f64 / o.wall.as_secs_f64(),
            o.commits,
            o.cpu,
            o.wall.as_secs_f64(),
            per_second / base
        );
    }
}
