//! The runner (`etl::cli`) end to end: each test runs a pipeline program in a child process
//! (this test binary again, told which program by `ETL_CLI_CHILD`) with a command line, and
//! checks its exit code, its output and what it left behind: `check` with an unset variable
//! and an unreachable sink, `graph`, the dead-letter list / replay round trip, the metrics
//! endpoint scraped during a run and compared with the report, the dead-letter ratio
//! guardrail on a misspelled `Json` field, and a second signal.

use etl::cli::{Cli, NoArgs};
use etl::dead_letter::FileDeadLetters;
use etl::prelude::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Which program the child runs.
const CHILD: &str = "ETL_CLI_CHILD";
/// The child's command line, as JSON.
const ARGS: &str = "ETL_CLI_ARGS";
/// The directory a program works in.
const DIR: &str = "ETL_CLI_DIR";

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    amount_cents: i64,
    status: String,
}

/// The child side: run the program named by `ETL_CLI_CHILD` under the runner and exit with
/// its code. In a normal test run (the variable unset) it does nothing.
#[test]
fn child() {
    let Ok(program) = std::env::var(CHILD) else { return };
    let args: Vec<String> = serde_json::from_str(&std::env::var(ARGS).expect("ETL_CLI_ARGS")).expect("args as JSON");
    let dir = PathBuf::from(std::env::var(DIR).expect("ETL_CLI_DIR"));
    let cli = Cli::<NoArgs>::try_parse_line(args).unwrap_or_else(|e| e.exit());
    let code = match program.as_str() {
        "orders" => etl::cli::run_with(cli, |_| orders(dir)),
        "typo" => etl::cli::run_with(cli, |_| typo(dir)),
        "unset" => etl::cli::run_with(cli, |_| unset(dir)),
        "slow" => etl::cli::run_with(cli, |_| slow(dir)),
        "stuck" => etl::cli::run_with(cli, |_| stuck(dir)),
        #[cfg(feature = "postgres")]
        "unreachable" => etl::cli::run_with(cli, |_| unreachable()),
        other => panic!("no program {other}"),
    };
    std::process::exit(i32::from(code));
}

/// Typed orders from `in.jsonl` to JSON Lines files in `out/`; an order with a negative
/// amount fails in `try_map` unless `ETL_CLI_FIX` is set. Dead letters in `dlq.jsonl`.
async fn orders(dir: PathBuf) -> etl::Result<()> {
    let fixed = std::env::var_os("ETL_CLI_FIX").is_some();
    let report = pipeline! {
        file(path = "${ETL_CLI_DIR}/in.jsonl", batch_size = 25) as Order
        | filter(|o| o.status != "test")
        | etl::operator::TryMap(move |o: Order| if o.amount_cents < 0 && !fixed { Err(format!("negative amount {}", o.amount_cents)) } else { Ok(o) })
        | file(dir = "${ETL_CLI_DIR}/out", format = "jsonl")
    }
    .name("orders")
    .dead_letters(FileDeadLetters::new(dir.join("dlq.jsonl")))
    .handle_signals(true)
    .run()
    .await?;
    println!("report {}", serde_json::json!({"in": report.records_in, "out": report.records_out, "dead": report.dead_lettered}));
    Ok(())
}

/// A schemaless pipeline whose `rename` names a field that is not there.
async fn typo(dir: PathBuf) -> etl::Result<()> {
    pipeline! {
        file(path = "${ETL_CLI_DIR}/in.jsonl", batch_size = 50)
        | rename(amount_cnts -> amount)
        | file(dir = "${ETL_CLI_DIR}/out", format = "jsonl")
    }
    .name("typo")
    .dead_letters(FileDeadLetters::new(dir.join("dlq.jsonl")))
    .run()
    .await?;
    Ok(())
}

/// A pipeline whose input names an unset variable.
async fn unset(dir: PathBuf) -> etl::Result<()> {
    pipeline! {
        file(path = "${ETL_CLI_TEST_SURELY_UNSET}/in.jsonl")
        | file(dir = "${ETL_CLI_DIR}/out", format = "jsonl")
    }
    .name("unset")
    .dead_letters(FileDeadLetters::new(dir.join("dlq.jsonl")))
    .run()
    .await?;
    Ok(())
}

/// 2 000 numbers, 1 ms each, into a blackhole; prints the report, then waits for the file
/// `scraped` (so that the test can read the metrics after the run).
async fn slow(dir: PathBuf) -> etl::Result<()> {
    let report = pipeline! {
        iter(0..2_000i64, batch_size = 50)
        | inspect(|_| std::thread::sleep(Duration::from_millis(1)))
        | filter(|n| n % 10 != 0)
        | blackhole()
    }
    .name("slow")
    .dead_letters(FileDeadLetters::new(dir.join("dlq.jsonl")))
    .run()
    .await?;
    println!(
        "report {}",
        serde_json::json!({"in": report.records_in, "out": report.records_out, "dead": report.dead_lettered, "batches": report.batches})
    );
    let scraped = dir.join("scraped");
    for _ in 0..600 {
        if scraped.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A sink that never finishes a write.
struct Stuck;

impl Stuck {
    fn new() -> Stuck {
        Stuck
    }
}

impl Sink<i64> for Stuck {
    fn describe(&self) -> String {
        "stuck".into()
    }
    async fn write(&mut self, _: &[i64]) -> Result<etl::sink::Written, etl::ConnectorError> {
        std::future::pending().await
    }
}

/// A pipeline whose sink never finishes a write: only a second signal ends the run.
async fn stuck(dir: PathBuf) -> etl::Result<()> {
    std::fs::write(dir.join("started"), b"").expect("marker");
    pipeline! { iter(0..10i64) | crate::Stuck::new() }
        .name("stuck")
        .dead_letters(FileDeadLetters::new(dir.join("dlq.jsonl")))
        .run()
        .await?;
    Ok(())
}

/// A PostgreSQL sink at a port nothing listens on.
#[cfg(feature = "postgres")]
async fn unreachable() -> etl::Result<()> {
    pipeline! {
        iter(vec![Order { id: 1, amount_cents: 1, status: "paid".into() }]) as Order
        | postgres(url = "postgres://postgres@127.0.0.1:1/test", table = "cli_unreachable", timeout = 2s)
    }
    .name("unreachable")
    .run()
    .await?;
    Ok(())
}

/// Run `program` with `args` in `dir`; wait for it; its output.
fn run(program: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    spawn(program, dir, args, env).wait_with_output().expect("wait for the child")
}

fn spawn(program: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    let mut line = vec![program.to_owned()];
    line.extend(args.iter().map(|a| a.to_string()));
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, program)
        .env(ARGS, serde_json::to_string(&line).expect("args"))
        .env(DIR, dir)
        .env_remove("RUST_LOG")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().expect("spawn the child")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What the child said, for assertion messages.
fn said(out: &Output) -> String {
    format!("exit {:?}\n--- stdout\n{}\n--- stderr\n{}", out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// What the program wrote on stdout: what follows the test harness's `test child ... `.
fn program_stdout(stdout: &str) -> &str {
    stdout.split_once("test child ... ").map_or(stdout, |(_, program)| program)
}

/// The `report {...}` line a program printed.
fn report(out: &Output) -> serde_json::Value {
    report_in(&text(&out.stdout)).unwrap_or_else(|| panic!("no report line\n{}", said(out)))
}

fn report_in(stdout: &str) -> Option<serde_json::Value> {
    let line = program_stdout(stdout).lines().find_map(|l| l.strip_prefix("report "))?;
    serde_json::from_str(line).ok()
}

/// `n` orders (ids 0..n), the ones whose id is a multiple of 10 with a negative amount.
fn write_orders(dir: &Path, n: i64) {
    let mut f = std::fs::File::create(dir.join("in.jsonl")).expect("input");
    for id in 0..n {
        let amount = if id % 10 == 0 { -id - 1 } else { id * 100 };
        writeln!(f, r#"{{"id": {id}, "amount_cents": {amount}, "status": "paid"}}"#).expect("write");
    }
}

/// The JSON lines of every file under `dir/out`.
fn written(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.join("out")) else { return out };
    for entry in entries.flatten() {
        let body = std::fs::read_to_string(entry.path()).expect("read");
        out.extend(body.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")));
    }
    out
}

#[test]
fn check_with_an_unset_variable_fails_naming_it_and_run_exits_with_the_start_up_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run("unset", dir.path(), &["check"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("check failed: pipeline `unset` could not start"), "{}", said(&out));
    assert!(stderr.contains("ETL_CLI_TEST_SURELY_UNSET"), "{}", said(&out));

    let out = run("unset", dir.path(), &[], &[]);
    assert_eq!(out.status.code(), Some(i32::from(etl::cli::EXIT_STARTUP)), "{}", said(&out));
    assert!(
        text(&out.stderr).contains("error: environment variable `ETL_CLI_TEST_SURELY_UNSET` is not set")
            || text(&out.stderr).contains("ETL_CLI_TEST_SURELY_UNSET"),
        "{}",
        said(&out)
    );
    assert!(written(dir.path()).is_empty(), "nothing may be written");
}

#[cfg(feature = "postgres")]
#[test]
fn check_with_an_unreachable_sink_fails_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run("unreachable", dir.path(), &["check"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("check failed: pipeline `unreachable` could not start: sink failed: postgres sink"), "{}", said(&out));
    assert!(stderr.contains("127.0.0.1:1") || stderr.to_lowercase().contains("connect"), "{}", said(&out));
}

#[test]
fn check_passes_without_consuming_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_orders(dir.path(), 100);
    let out = run("orders", dir.path(), &["check"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert!(text(&out.stderr).contains("check passed"), "{}", said(&out));
    assert_eq!(report(&out), serde_json::json!({"in": 0, "out": 0, "dead": 0}));
    assert!(written(dir.path()).is_empty(), "check wrote records");
}

#[test]
fn graph_prints_the_pipeline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run("orders", dir.path(), &["graph"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let stdout = text(&out.stdout);
    let graph: String = program_stdout(&stdout).lines().take_while(|l| !l.starts_with("report ")).map(|l| format!("{l}\n")).collect();
    assert_eq!(graph, GRAPH_MERMAID, "{}", said(&out));

    let out = run("orders", dir.path(), &["graph", "--format", "dot"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert!(program_stdout(&text(&out.stdout)).starts_with("digraph \"orders\" {\n"), "{}", said(&out));
}

/// `orders graph` (a snapshot: the macro's description of the `orders` program above).
const GRAPH_MERMAID: &str = r#"---
title: orders
---
flowchart LR
    s0(["file(path = #quot;${ETL_CLI_DIR}/in.jsonl#quot;, batch_size = 25)"])
    s1["filter(|o| o.status != #quot;test#quot;)"]
    s2["etl::operator::TryMap(move |o: Order| if o.amount_cents < 0 && !fixed { Err(format!(#quot;negative amount {}#quot;, o.amount_cents)) } else { Ok(o) })"]
    s3[("file(dir = #quot;${ETL_CLI_DIR}/out#quot;, format = #quot;jsonl#quot;)")]
    s0 -->|"Order { id: i64, amount_cents: i64, status: String }"| s1
    s1 -->|"Order { id: i64, amount_cents: i64, status: String }"| s2
    s2 -->|"?"| s3
"#;

#[test]
fn dead_letters_list_then_replay_after_the_fix_then_nothing_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_orders(dir.path(), 100);
    let out = run("orders", dir.path(), &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert_eq!(report(&out), serde_json::json!({"in": 100, "out": 90, "dead": 10}));

    let out = run("orders", dir.path(), &["dead-letters", "list", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let entries: Vec<serde_json::Value> = program_stdout(&text(&out.stdout))
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("entry"))
        .collect();
    assert_eq!(entries.len(), 10, "{}", said(&out));
    for e in &entries {
        assert!(e["error"].as_str().unwrap_or_default().starts_with("negative amount"), "{e}");
        assert!(e["step"].as_str().unwrap_or_default().contains("TryMap"), "the step that failed: {e}");
    }
    let human = run("orders", dir.path(), &["dead-letters", "list"], &[]);
    assert_eq!(text(&human.stdout).lines().filter(|l| l.contains("negative amount")).count(), 10, "{}", said(&human));

    let out = run("orders", dir.path(), &["dead-letters", "replay"], &[("ETL_CLI_FIX", "1")]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert_eq!(report(&out), serde_json::json!({"in": 10, "out": 10, "dead": 0}));
    let ids: std::collections::BTreeSet<i64> = written(dir.path()).iter().map(|r| r["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, (0..100).collect(), "every order written once replayed");

    let out = run("orders", dir.path(), &["dead-letters", "list", "--json"], &[]);
    assert_eq!(program_stdout(&text(&out.stdout)).lines().filter(|l| l.starts_with('{')).count(), 0, "{}", said(&out));

    // Purge: nothing older than a day here.
    let out = run("orders", dir.path(), &["dead-letters", "purge", "--older-than", "1d"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert!(text(&out.stdout).contains("orders: purged 0 dead letter(s)"), "{}", said(&out));
}

#[test]
fn a_misspelled_json_field_stops_the_run_naming_the_step_and_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_orders(dir.path(), 1_000);
    let out = run("typo", dir.path(), &[], &[]);
    assert_eq!(out.status.code(), Some(i32::from(etl::cli::EXIT_FAILED)), "{}", said(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("records dead-lettered (more than 0.5 of them), most at step rename(amount_cnts -> amount)"), "{}", said(&out));
    assert!(stderr.contains("first error: field `amount_cnts` is missing"), "{}", said(&out));
    assert!(stderr.contains("dead-letter summary"), "the summary is logged: {}", said(&out));
    let kept = std::fs::read_to_string(dir.path().join("dlq.jsonl")).expect("dead letters kept");
    let kept = kept.lines().count();
    assert!((100..1_000).contains(&kept), "stopped early, dead letters kept: {kept}");
}

#[test]
fn metrics_are_served_during_the_run_and_equal_the_report_at_the_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("addr")
    };
    let addr_arg = addr.to_string();
    let child = spawn("slow", dir.path(), &["--metrics-addr", &addr_arg], &[]);
    let mut during = String::new();
    wait_until("metrics served during the run", || {
        during = scrape(addr).unwrap_or_default();
        during.contains("etl_records_in_total{pipeline=\"slow\"}")
    });
    assert!(during.contains("# TYPE etl_batch_write_seconds"), "{during}");
    // After the run (the program prints its report, then waits for `scraped`).
    let mut child = child;
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let mut after = String::new();
    wait_until("the run to finish", || {
        after = scrape(addr).unwrap_or_default();
        metric(&after, "etl_batches_total{pipeline=\"slow\"}") == Some(40.0)
    });
    std::fs::write(dir.path().join("scraped"), b"").expect("marker");
    let status = child.wait().expect("wait");
    let stdout = reader.join().expect("reader");
    assert!(status.success(), "{stdout}");
    let report = report_in(&stdout).expect("report line");
    assert_eq!(report, serde_json::json!({"in": 2000, "out": 1800, "dead": 0, "batches": 40}));
    assert_eq!(metric(&after, "etl_records_in_total{pipeline=\"slow\"}"), Some(2000.0), "{after}");
    assert_eq!(metric(&after, "etl_records_out_total{pipeline=\"slow\"}"), Some(1800.0), "{after}");
    assert_eq!(metric(&after, "etl_batches_in_flight{pipeline=\"slow\"}"), Some(0.0), "{after}");
    assert!(after.contains("etl_step_records_in_total{pipeline=\"slow\",step="), "per-step counters: {after}");
}

/// Wait until `cond` holds, checking every 20 ms; panic naming `what` after a minute (only a
/// hang takes that long, even on a loaded machine).
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET /metrics` on `addr`.
fn scrape(addr: std::net::SocketAddr) -> Option<String> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    body.starts_with("HTTP/1.1 200").then_some(body)
}

/// The value of the sample named exactly `name` (with its labels).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[cfg(unix)]
#[test]
fn a_second_signal_stops_at_once_saying_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = spawn("stuck", dir.path(), &[], &[]);
    wait_until("the program to start", || dir.path().join("started").exists());
    std::thread::sleep(Duration::from_millis(300));
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(i32::from(etl::cli::EXIT_INTERRUPTED)), "{}", said(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("second signal"), "{}", said(&out));
    assert!(stderr.contains("stopped at once by a second signal"), "{}", said(&out));
}
