//! The `orders` example (the design card's pipeline: Kafka → filter → rename → PostgreSQL
//! upsert) end to end, against `KAFKA_BROKERS` (the mock broker process `scripts/test.sh`
//! starts) and `DATABASE_URL`:
//!
//! * the table ends with every order that is not a test order, once, under its last version,
//!   with `amount` for `amount_cents`;
//! * SIGKILLed 5 times mid-batch and restarted (the crash harness, the pipeline in a child
//!   process): still every order exactly once (upsert), and the group's committed offsets at the
//!   end offsets;
//! * two processes in one group share the topic's partitions; one is SIGKILLed, the other
//!   takes its partitions over and finishes the work, then SIGTERM stops it with exit code 0.
//!
//! What each check reads is the systems' own view: the table through a session of its own, the
//! group's committed offsets through a client of its own.

mod common;
#[path = "common/kafka.rs"]
mod kafka_broker;
#[path = "../examples/orders.rs"]
#[allow(dead_code)]
mod orders;
#[path = "common/postgres.rs"]
mod pg;

use bytes::Bytes;
use common::crash::{self, Child, Pair, Watch};
use common::{wait_until_async, PATIENCE};
use kafka_broker::{brokers, committed, committed_async, create_topic, end_offsets_async, produce_async, unique, Out};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// `n` orders, keyed by id (so an id's versions keep their order in its partition): ids
/// `0..n*3/4`, then updates of earlier ids (a new amount) for the last quarter. Every id ending
/// in 9 is a test order (`status = "test"`, its updates too). Returns the messages and the
/// table the pipeline must end with: id → (customer, amount) of the orders that are not tests,
/// last version winning.
fn orders(n: u64) -> (Vec<Out>, BTreeMap<i64, (String, i64)>) {
    let first = n * 3 / 4;
    let mut out = Vec::new();
    let mut want = BTreeMap::new();
    for i in 0..n {
        let (id, amount) = if i < first { (i as i64, (i * 100) as i64) } else { (((i - first) * 3 % first) as i64, (i * 7) as i64) };
        let test = id % 10 == 9;
        let customer = format!("c-{}", id % 17);
        let order = json!({"id": id, "customer": customer, "amount_cents": amount, "status": if test { "test" } else { "paid" }});
        if !test {
            want.insert(id, (customer, amount));
        }
        out.push(Out { key: Some(Bytes::from(id.to_string())), value: Bytes::from(order.to_string()), ..Out::default() });
    }
    (out, want)
}

/// The table as the database sees it: id → (customer, amount).
async fn table(name: &str) -> BTreeMap<i64, (String, i64)> {
    let client = pg::client().await;
    let rows = client
        .query(&format!("SELECT id, customer, amount FROM \"{name}\" ORDER BY id"), &[])
        .await
        .unwrap_or_else(|e| panic!("read {name}: {e:?}"));
    rows.iter().map(|r| (r.get::<_, i64>(0), (r.get::<_, String>(1), r.get::<_, i64>(2)))).collect()
}

async fn rows(name: &str) -> i64 {
    let client = pg::client().await;
    match client.query_one(&format!("SELECT count(*) FROM \"{name}\""), &[]).await {
        Ok(row) => row.get(0),
        // Not created yet (the pipeline creates it at start-up).
        Err(_) => 0,
    }
}

fn config(args: &Value) -> orders::Config {
    orders::Config {
        brokers: brokers(),
        topic: args["topic"].as_str().unwrap().to_owned(),
        group: args["group"].as_str().unwrap().to_owned(),
        database_url: pg::database_url(),
        table: args["table"].as_str().unwrap().to_owned(),
        max_records: args["max_records"].as_u64(),
        // A killed process never leaves the group: the others take its partitions once its
        // session expires (6 s here, the shortest the mock broker's coordinator took).
        properties: vec![("session.timeout.ms".into(), "6000".into())],
        exactly_once: args["exactly_once"].as_bool().unwrap_or(false),
        handle_signals: true,
    }
}

/// In a child process: the example's pipeline until it has read what the group has not
/// committed yet (`max_records` from the offsets), or until a signal when `run_until_signal`.
async fn child(args: Value) {
    let mut args = args;
    if args["run_until_signal"].as_bool() != Some(true) {
        let (topic, group) = (args["topic"].as_str().unwrap().to_owned(), args["group"].as_str().unwrap().to_owned());
        let ends = end_offsets_async(&topic).await;
        let done = committed_async(&group, &topic).await;
        let ready: i64 = ends.iter().zip(done).map(|(e, c)| e - c.unwrap_or(0)).sum();
        args["max_records"] = json!(ready);
    }
    let report = orders::run(config(&args)).await.expect("the orders pipeline");
    eprintln!("child finished: {report}");
}

#[tokio::test]
async fn orders_reach_the_table_once_under_their_last_version() {
    if let Some(args) = crash::child_args() {
        return child(args).await;
    }
    let topic = create_topic("orders", 3).await;
    let (messages, want) = orders(400);
    produce_async(&topic, messages).await;
    let table_name = pg::unique("orders");
    let args = json!({"topic": topic, "group": unique("orders"), "table": table_name, "max_records": 400, "run_until_signal": false});
    let mut config = config(&args);
    config.handle_signals = false;
    let report = orders::run(config).await.expect("the orders pipeline");
    assert_eq!(report.records_in, 400);
    assert_eq!(report.dead_lettered, 0);
    let got = table(&table_name).await;
    assert_eq!(got.len(), want.len(), "one row per order that is not a test");
    assert!(got == want, "every order under its last version, amount_cents renamed amount");
}

/// `--exactly-once`: insert mode into a table created without a key, so every version of an
/// order is a row; each message that is not a test order is a row once, and a second run
/// appends only what was produced since.
#[tokio::test]
async fn orders_exactly_once_appends_every_version_once() {
    if let Some(args) = crash::child_args() {
        return child(args).await;
    }
    let topic = create_topic("orders-eo", 3).await;
    let (messages, _) = orders(400);
    let paid = |m: &[Out]| m.iter().filter(|o| !String::from_utf8_lossy(&o.value).contains("\"test\"")).count() as i64;
    let first = paid(&messages);
    produce_async(&topic, messages).await;
    let table_name = pg::unique("orders_eo");
    let group = unique("orders-eo");
    let args = json!({"topic": topic, "group": group, "table": table_name, "max_records": 400, "exactly_once": true});
    let mut config = config(&args);
    config.handle_signals = false;
    orders::run(config.clone()).await.expect("the orders pipeline, exactly once");
    assert_eq!(rows(&table_name).await, first, "one row per message that is not a test order");
    // 40 more (new versions of orders already in the table): appended, nothing else again.
    let (more, _) = orders(40);
    let second = paid(&more);
    produce_async(&topic, more).await;
    config.max_records = Some(40);
    orders::run(config).await.expect("the second run");
    assert_eq!(rows(&table_name).await, first + second);
    let client = pg::client().await;
    let stored: i64 = client
        .query_one("SELECT sum(next_offset)::bigint FROM etl_offsets WHERE group_id = $1 AND topic = $2", &[&group, &topic])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 440, "the offsets stored with the rows");
}

/// Every kill's record of the durable state.
struct OrdersWatch {
    topic: String,
    group: String,
}

impl Watch for OrdersWatch {
    fn progress(&self) -> usize {
        // Batches (of the example's 500) committed by the group: its committed offsets, a
        // blocking client call of a few milliseconds.
        let offsets: usize = committed(&self.group, &self.topic).into_iter().map(|c| c.unwrap_or(0) as usize).sum();
        offsets / 500
    }

    async fn finished(&mut self) -> bool {
        let ends: Vec<Option<i64>> = end_offsets_async(&self.topic).await.into_iter().map(Some).collect();
        committed_async(&self.group, &self.topic).await == ends
    }
}

#[tokio::test]
async fn orders_survive_sigkill_exactly_once_in_the_table() {
    if let Some(args) = crash::child_args() {
        return child(args).await;
    }
    // 6 partitions: the mock broker trims a partition's log past 5 MiB (150 000 orders are ~15 MB).
    let topic = create_topic("orders-crash", 6).await;
    let (messages, want) = orders(150_000);
    produce_async(&topic, messages).await;
    let table_name = pg::unique("orders_crash");
    let group = unique("orders-crash");
    let dir = tempfile::tempdir().unwrap();
    let child = Child {
        test: "orders_survive_sigkill_exactly_once_in_the_table".into(),
        args: json!({"topic": topic, "group": group, "table": table_name, "run_until_signal": false}),
        log_dir: dir.path().to_owned(),
    };
    let mut watch = OrdersWatch { topic: topic.clone(), group: group.clone() };
    let crashes = crash::run(&child, 5, &mut watch).await;
    let got = table(&table_name).await;
    assert_eq!(got.len(), want.len(), "{crashes:?}: one row per order that is not a test (upsert: exactly once)");
    assert!(got == want, "{crashes:?}: every order under its last version");
    let ends: Vec<Option<i64>> = end_offsets_async(&topic).await.into_iter().map(Some).collect();
    assert_eq!(committed_async(&group, &topic).await, ends, "{crashes:?}: the group's offsets end at the end");
}

#[tokio::test]
async fn two_processes_share_the_work_and_one_finishes_when_the_other_dies() {
    if let Some(args) = crash::child_args() {
        return child(args).await;
    }
    let topic = create_topic("orders-scale", 4).await;
    let (messages, want) = orders(6000);
    produce_async(&topic, messages).await;
    let table_name = pg::unique("orders_scale");
    let group = unique("orders-scale");
    let dir = tempfile::tempdir().unwrap();
    let child = Child {
        test: "two_processes_share_the_work_and_one_finishes_when_the_other_dies".into(),
        args: json!({"topic": topic, "group": group, "table": table_name, "run_until_signal": true}),
        log_dir: dir.path().to_owned(),
    };
    let mut pair = Pair::spawn(&child);
    // Both work: the table grows while both are alive; then B dies mid-work.
    wait_until_async(PATIENCE, "the two processes to write orders", || async { rows(&table_name).await > 200 }).await;
    pair.kill_b();
    // A takes B's partitions over (once B's session expires) and reaches the end of the topic.
    let ends: Vec<Option<i64>> = end_offsets_async(&topic).await.into_iter().map(Some).collect();
    pair.wait_for_a(Duration::from_secs(120), "commit the whole topic", || async { committed_async(&group, &topic).await == ends }).await;
    // SIGTERM: A flushes, commits and exits 0.
    pair.stop_a();
    let got = table(&table_name).await;
    assert_eq!(got.len(), want.len(), "one row per order that is not a test");
    assert!(got == want, "every order under its last version");
}
