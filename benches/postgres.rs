//! The PostgreSQL sink alone against `psql`'s `\copy` of the same rows, in the same run.
//!
//! * **baseline**: the rows written beforehand to a CSV file (not timed), then
//!   `psql -c "\copy t (...) from 'file' with (format csv)"`: one COPY of the whole file in one
//!   transaction, PostgreSQL's own client doing the least work possible;
//! * **etl insert**: an `iter` source of typed records → the postgres sink (binary COPY, a
//!   transaction per commit of `ETL_BENCH_IN_FLIGHT` batches of `ETL_BENCH_BATCH` rows);
//! * **etl upsert**: the same into a table with a primary key, `mode = upsert(id)` (COPY into
//!   the staging table, then `INSERT ... ON CONFLICT`).
//!
//! * **baseline upsert**: psql in one transaction: `\copy` into a temporary table, then
//!   `INSERT INTO t SELECT * FROM tmp ON CONFLICT (id) DO UPDATE SET ...`; the etl upsert's
//!   ratio is to this one.
//!
//! Each side writes into a fresh table; rows are about 100 bytes. Prints rows/s, wall and CPU
//! seconds (CPU of the client side: this process for etl, the `psql` child for the baseline;
//! the server's CPU is the same work for both and counted for neither), the peak heap of the
//! etl side (a counting global allocator, reset before each run) and the ratio of speeds to
//! `\copy`. Best of `ETL_BENCH_ROUNDS` (default 3) per side and size.
//!
//! `cargo bench --bench postgres --features postgres`; `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), `ETL_BENCH_PG_ROWS` (comma-separated, default
//! `100000,1000000`), `ETL_BENCH_BATCH` (default 10000), `ETL_BENCH_IN_FLIGHT` (default 4),
//! `ETL_BENCH_DIR` (where the CSV goes; default `/dev/shm` when it exists).

#[path = "harness/measure.rs"]
mod measure;

use etl::prelude::*;
use etl::sink::postgres::Mode;
use std::alloc::System;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: measure::Counting<System> = measure::Counting(System);

/// About 100 bytes per row in CSV.
#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
    status: String,
    note: Option<String>,
    created_at: String,
}

const COLUMNS: &str = "id bigint NOT NULL, customer text NOT NULL, amount_cents bigint NOT NULL, status text NOT NULL, \
                       note text, created_at timestamptz NOT NULL";
const NAMES: &str = "id, customer, amount_cents, status, note, created_at";

fn order(i: u64) -> Order {
    let customers = ["Ada Lovelace", "O'Brien, Pat", "Zoë \"Z\" Ünïcödé", "東京 商事", "Smith & Sons"];
    Order {
        id: 1_000_000_000 + i as i64,
        customer: customers[(i % 5) as usize].to_string(),
        amount_cents: (i as i64 * 7919) % 100_000,
        status: if i % 10 == 0 { "refunded".into() } else { "paid".into() },
        note: (i % 3 == 0).then(|| "gift, wrap please".to_string()),
        created_at: format!("2026-11-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, i % 60),
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn psql(sql: &str) {
    psql_session(&[sql]);
}

/// One psql session running `commands` in order (SQL or backslash commands).
fn psql_session(commands: &[&str]) {
    let mut command = std::process::Command::new("psql");
    command.args([&database_url(), "-v", "ON_ERROR_STOP=1", "-q"]).env("PGOPTIONS", "-c client_min_messages=warning");
    for c in commands {
        command.args(["-c", c]);
    }
    let status = command.status().expect("psql runs (apt-get install postgresql-client)");
    assert!(status.success(), "psql {commands:?} failed");
}

fn count(table: &str) -> u64 {
    let out = std::process::Command::new("psql")
        .args([&database_url(), "-Atqc", &format!("SELECT count(*) FROM {table}")])
        .output()
        .expect("psql runs");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("a count")
}

fn fresh_table(name: &str, key: bool) {
    let key = if key { ", PRIMARY KEY (id)" } else { "" };
    psql(&format!("DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ({COLUMNS}{key})"));
    // Settle the server (the previous side's writes) before timing the next.
    psql("CHECKPOINT");
}

fn write_csv(path: &Path, n: u64) {
    let mut out =
        csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create the CSV")));
    for i in 0..n {
        out.serialize(order(i)).expect("write a row");
    }
    out.flush().expect("flush the CSV");
}

struct Outcome {
    wall: Duration,
    cpu: f64,
    peak: usize,
}

fn baseline(csv: &Path, n: u64) -> Outcome {
    fresh_table("bench_copy", false);
    let cpu = measure::cpu_seconds_of(libc::RUSAGE_CHILDREN);
    let started = Instant::now();
    psql(&format!("\\copy bench_copy ({NAMES}) from '{}' with (format csv, header true)", csv.display()));
    let wall = started.elapsed();
    let cpu = measure::cpu_seconds_of(libc::RUSAGE_CHILDREN) - cpu;
    assert_eq!(count("bench_copy"), n);
    Outcome { wall, cpu, peak: 0 }
}

/// The upsert done by hand with psql: `\copy` into a temporary table, then one
/// `INSERT ... ON CONFLICT (id) DO UPDATE`, in one transaction.
fn baseline_upsert(csv: &Path, n: u64) -> Outcome {
    fresh_table("bench_copy_upsert", true);
    let cpu = measure::cpu_seconds_of(libc::RUSAGE_CHILDREN);
    let started = Instant::now();
    let copy = format!("\\copy bench_stage ({NAMES}) from '{}' with (format csv, header true)", csv.display());
    let updates = NAMES.split(", ").filter(|c| *c != "id").map(|c| format!("{c} = EXCLUDED.{c}")).collect::<Vec<_>>().join(", ");
    let merge = format!("INSERT INTO bench_copy_upsert SELECT * FROM bench_stage ON CONFLICT (id) DO UPDATE SET {updates}");
    psql_session(&["BEGIN", "CREATE TEMP TABLE bench_stage (LIKE bench_copy_upsert) ON COMMIT DROP", &copy, &merge, "COMMIT"]);
    let wall = started.elapsed();
    let cpu = measure::cpu_seconds_of(libc::RUSAGE_CHILDREN) - cpu;
    assert_eq!(count("bench_copy_upsert"), n);
    Outcome { wall, cpu, peak: 0 }
}

fn with_etl(runtime: &tokio::runtime::Runtime, n: u64, upsert: bool) -> Outcome {
    let table = if upsert { "bench_upsert" } else { "bench_insert" };
    fresh_table(table, upsert);
    let batch = env("ETL_BENCH_BATCH", 10_000) as usize;
    let in_flight = env("ETL_BENCH_IN_FLIGHT", 4) as usize;
    let mode = if upsert { Mode::upsert(&["id"]) } else { Mode::Insert };
    let base = measure::reset_peak();
    let cpu = measure::cpu_seconds_of(libc::RUSAGE_SELF);
    let started = Instant::now();
    let report = runtime
        .block_on(
            Pipeline::from(etl::source::iter((0..n).map(order)).batch_size(batch))
                .to(etl::sink::postgres(database_url(), table).mode(mode))
                .max_in_flight(in_flight)
                .dead_letters(etl::dead_letter::MemoryDeadLetters::new())
                .handle_signals(false)
                .run(),
        )
        .expect("the etl side runs");
    let wall = started.elapsed();
    let cpu = measure::cpu_seconds_of(libc::RUSAGE_SELF) - cpu;
    let peak = measure::peak().saturating_sub(base);
    assert_eq!(report.records_out, n, "{report}");
    assert_eq!(count(table), n);
    Outcome { wall, cpu, peak }
}

fn best(mut runs: Vec<Outcome>) -> Outcome {
    runs.sort_by_key(|o| o.wall);
    runs.remove(0)
}

fn main() {
    let sizes: Vec<u64> = std::env::var("ETL_BENCH_PG_ROWS")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rounds = env("ETL_BENCH_ROUNDS", 3).max(1);
    let dir = std::env::var("ETL_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|_| {
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        }
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    println!(
        "postgres: typed rows of ~100 bytes → one table; batches of {}, {} in flight per commit; best of {rounds}\n",
        env("ETL_BENCH_BATCH", 10_000),
        env("ETL_BENCH_IN_FLIGHT", 4)
    );
    println!("| rows | side | rows/s | wall s | CPU s (client) | peak heap | ratio to psql |");
    println!("|---|---|---|---|---|---|---|");
    for n in sizes {
        let csv = dir.join(format!("etl-bench-postgres-{}-{n}.csv", std::process::id()));
        write_csv(&csv, n);
        let mut copy = Vec::new();
        let mut insert = Vec::new();
        let mut upsert = Vec::new();
        let mut copy_upsert = Vec::new();
        for _ in 0..rounds {
            copy.push(baseline(&csv, n));
            insert.push(with_etl(&runtime, n, false));
            copy_upsert.push(baseline_upsert(&csv, n));
            upsert.push(with_etl(&runtime, n, true));
        }
        let _ = std::fs::remove_file(&csv);
        let (copy, insert, upsert, copy_upsert) = (best(copy), best(insert), best(upsert), best(copy_upsert));
        let rate = |o: &Outcome| n as f64 / o.wall.as_secs_f64();
        for (side, o, base) in [
            ("psql \\copy (CSV)", &copy, &copy),
            ("etl insert (binary COPY)", &insert, &copy),
            ("psql \\copy into a temp table + INSERT ON CONFLICT", &copy_upsert, &copy_upsert),
            ("etl upsert (staging + ON CONFLICT)", &upsert, &copy_upsert),
        ] {
            let peak = if o.peak == 0 { "-".to_string() } else { format!("{:.1} MiB", o.peak as f64 / (1 << 20) as f64) };
            println!(
                "| {n} | {side} | {:.0} | {:.2} | {:.2} | {peak} | **{:.2}** |",
                rate(o),
                o.wall.as_secs_f64(),
                o.cpu,
                rate(o) / rate(base)
            );
        }
        std::io::stdout().flush().ok();
    }
    psql("DROP TABLE IF EXISTS bench_copy, bench_copy_upsert, bench_insert, bench_upsert");
}
