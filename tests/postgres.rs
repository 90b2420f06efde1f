//! The PostgreSQL sink against a real server (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; `scripts/test.sh` starts it, and a server that
//! does not answer is a failure saying how to start it). Every test has tables of its own and
//! checks the table's own view from another session, not only the run report.

mod common;
#[path = "common/postgres.rs"]
mod pg;
#[path = "common/proxy.rs"]
mod proxy;

use common::{quick_retries, wait_until_async, Fed, Timeline, PATIENCE};
use etl::ack::Status;
use etl::batch::BatchConfig;
use etl::dead_letter::{DeadLetters, MemoryDeadLetters};
use etl::prelude::*;
use etl::sink::postgres::Mode;
use etl::sink::{SinkContext, Written};
use etl::ConnectorError;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
    paid: bool,
    score: f64,
    note: Option<String>,
    tags: Vec<String>,
    created_at: String,
    total: String,
    day: String,
    ref_id: String,
    small: i16,
}

fn order(id: i64) -> Order {
    let customers = ["Ada Lovelace", "O'Brien, \"Pat\"", "Zoë Ünïcödé 東京 🦀", "back\\slash\ttab\nnewline", "'; DROP TABLE x; --"];
    Order {
        id,
        customer: customers[(id % 5) as usize].to_owned(),
        amount_cents: id * 7919 % 100_000,
        paid: id % 2 == 0,
        score: id as f64 / 8.0,
        note: (id % 3 == 0).then(|| format!("note {id}")),
        tags: vec![format!("t{id}"), "x\"y".into()],
        created_at: format!("2026-11-{:02}T{:02}:30:15.123456+02:00", 1 + id % 28, id % 24),
        total: format!("{}.{:02}", id * 3, id % 100),
        day: format!("2026-01-{:02}", 1 + id % 28),
        ref_id: format!("{:08x}-0000-4000-8000-{:012x}", id, id),
        small: (id % 1000) as i16,
    }
}

const ORDERS: &str = "id bigint PRIMARY KEY, customer text NOT NULL, amount_cents bigint NOT NULL, paid boolean NOT NULL, \
    score double precision, note text, tags jsonb, created_at timestamptz, total numeric(12,2), day date, ref_id uuid, small smallint";

async fn orders_table(client: &tokio_postgres::Client) -> String {
    let table = pg::unique("orders");
    pg::exec(client, &format!("CREATE TABLE \"{table}\" ({ORDERS})")).await;
    table
}

/// The rows of an orders table, as the database writes them back in text.
async fn read_orders(client: &tokio_postgres::Client, table: &str) -> Vec<Vec<Option<String>>> {
    let sql = format!(
        "SELECT id::text, customer, amount_cents::text, paid::text, score::text, note, tags::text, \
         to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), total::text, day::text, ref_id::text, small::text \
         FROM \"{table}\" AS t ORDER BY t.id"
    );
    client.query(&sql, &[]).await.unwrap().iter().map(|r| (0..12).map(|i| r.get::<_, Option<String>>(i)).collect()).collect()
}

/// What [`read_orders`] should return for an order.
fn expected(o: &Order) -> Vec<Option<String>> {
    let created = {
        // +02:00 → UTC: two hours earlier (the test's hours are ≥ 0; a day boundary moves the date).
        let day = 1 + o.id % 28;
        let hour = o.id % 24;
        let (day, hour) = if hour >= 2 { (day, hour - 2) } else { (day - 1, hour + 22) };
        if day == 0 {
            format!("2026-10-31T{hour:02}:30:15.123456")
        } else {
            format!("2026-11-{day:02}T{hour:02}:30:15.123456")
        }
    };
    vec![
        Some(o.id.to_string()),
        Some(o.customer.clone()),
        Some(o.amount_cents.to_string()),
        Some(o.paid.to_string()),
        Some(o.score.to_string()),
        o.note.clone(),
        Some(serde_json::to_string(&o.tags).unwrap().replace("\",\"", "\", \"")),
        Some(created),
        Some(o.total.clone()),
        Some(o.day.clone()),
        Some(o.ref_id.clone()),
        Some(o.small.to_string()),
    ]
}

fn run<T: Record + Clone + Sync + Send>(
    records: Vec<T>,
    sink: etl::sink::PostgresSink,
    batch: usize,
    dlq: &MemoryDeadLetters,
) -> impl std::future::Future<Output = etl::Result<etl::pipeline::RunReport>> {
    Pipeline::from(etl::source::iter(records).batch_size(batch))
        .to(sink)
        .retry(quick_retries(5))
        .dead_letters(dlq.clone())
        .handle_signals(false)
        .run()
}

async fn open<T: Record + Sync>(sink: &mut etl::sink::PostgresSink) -> Result<(), ConnectorError> {
    Sink::<T>::open(sink, SinkContext::default()).await
}

#[tokio::test]
async fn insert_round_trip_typed_records_with_every_supported_type() {
    let client = pg::client().await;
    let table = orders_table(&client).await;
    let orders: Vec<Order> = (0..250).map(order).collect();
    let dlq = MemoryDeadLetters::new();
    let report = run(orders.clone(), etl::sink::postgres(pg::database_url(), &table), 40, &dlq).await.expect("the run");
    assert_eq!((report.records_out, report.dead_lettered), (250, 0), "{report}");
    assert!(dlq.is_empty());
    let rows = read_orders(&client, &table).await;
    let want: Vec<Vec<Option<String>>> = orders.iter().map(expected).collect();
    assert_eq!(rows.len(), want.len());
    for (got, want) in rows.iter().zip(&want) {
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn upsert_round_trip_updates_in_place_and_the_last_of_duplicate_keys_wins() {
    let client = pg::client().await;
    let table = orders_table(&client).await;
    let url = pg::database_url();
    let dlq = MemoryDeadLetters::new();
    let first: Vec<Order> = (0..100).map(order).collect();
    run(first, etl::sink::postgres(&url, &table).mode(Mode::upsert(&["id"])), 30, &dlq).await.expect("first run");
    // Ids 50..150, each changed; id 60 and 70 twice in the same batch (last wins), and across batches.
    let mut second: Vec<Order> = (50..150).map(|id| Order { customer: format!("v2 {id}"), ..order(id) }).collect();
    second.insert(10, Order { customer: "first of two".into(), ..order(60) });
    second.push(Order { customer: "late change".into(), ..order(70) });
    let report = run(second, etl::sink::postgres(&url, &table).mode(Mode::upsert(&["id"])), 1000, &dlq).await.expect("second run");
    assert_eq!((report.records_out, report.dead_lettered), (102, 0), "{report}");
    assert!(dlq.is_empty(), "{:?}", dlq.list().await.unwrap());
    let rows = read_orders(&client, &table).await;
    assert_eq!(rows.len(), 150, "every id once");
    for (i, row) in rows.iter().enumerate() {
        let id = i as i64;
        let customer = match id {
            70 => "late change".to_owned(),
            50..=149 => format!("v2 {id}"),
            _ => order(id).customer,
        };
        assert_eq!(row[0], Some(id.to_string()));
        assert_eq!(row[1].as_deref(), Some(customer.as_str()), "id {id}");
        assert_eq!(row[4], Some(order(id).score.to_string()), "the other columns too");
    }
    // The same batch again changes nothing: redelivery with upsert is idempotent.
    let again: Vec<Order> = (50..150).map(|id| Order { customer: format!("v2 {id}"), ..order(id) }).collect();
    run(again, etl::sink::postgres(&url, &table).mode(Mode::upsert(&["id"])), 7, &dlq).await.expect("third run");
    assert_eq!(pg::count(&client, &table).await, 150);
}

#[tokio::test]
async fn json_records_insert_and_upsert_awkward_text_and_refuse_what_cannot_be_stored() {
    let client = pg::client().await;
    let table = pg::unique("events");
    pg::exec(
        &client,
        &format!(
            "CREATE TABLE \"{table}\" (id bigint PRIMARY KEY, \"Title\" text, body jsonb, n integer, at timestamptz, \
             status text NOT NULL DEFAULT 'new', tags text[])"
        ),
    )
    .await;
    let url = pg::database_url();
    let records: Vec<Json> = vec![
        json!({"id": 1, "Title": "unicode: Zoë 東京 🦀 \u{202e}rtl", "body": {"a": [1, 2, {"b": null}]}, "n": 7}),
        json!({"id": 2, "Title": "quotes ' \" `; --", "at": "2026-11-30T12:00:00Z"}),
        json!({"id": 3, "Title": "NUL \u{0} inside"}),
        json!({"id": 4, "Title": null, "body": "just a string", "n": null, "status": "done"}),
        json!({"id": 5, "nope": 1}),
        json!({"id": 6, "n": "not a number"}),
        json!({"id": 7, "n": 3_000_000_000i64}),
        json!({"id": 8, "tags": ["a"]}),
        json!({"body": {"x": 1}, "id": 9, "Title": "keys in another order"}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    let dlq = MemoryDeadLetters::new();
    let report = run(records.clone(), etl::sink::postgres(&url, &table), 100, &dlq).await.expect("the run");
    assert_eq!((report.records_out, report.dead_lettered), (4, 5), "{report}");
    let entries = dlq.list().await.unwrap();
    let refused: Vec<(i64, String)> = entries
        .iter()
        .map(|e| {
            let record: Value = serde_json::from_slice(&e.payload).expect("the record is in the entry");
            (record["id"].as_i64().unwrap(), e.error.clone())
        })
        .collect();
    let ids: Vec<i64> = refused.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [3, 5, 6, 7, 8], "{refused:?}");
    assert!(refused[0].1.contains("NUL") && refused[0].1.contains("Title"), "{}", refused[0].1);
    assert!(refused[1].1.contains("`nope`") && refused[1].1.contains(&table), "{}", refused[1].1);
    assert!(refused[2].1.contains("column `n`") && refused[2].1.contains("text"), "{}", refused[2].1);
    assert!(refused[3].1.contains("out of range") && refused[3].1.contains("`n`"), "{}", refused[3].1);
    assert!(refused[4].1.contains("tags") && refused[4].1.contains("text[]"), "{}", refused[4].1);
    type Row = (i64, Option<String>, Option<String>, Option<i32>, Option<String>, String);
    let select = format!(
        "SELECT id, \"Title\", body::text, n, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), status FROM \"{table}\" ORDER BY id"
    );
    let read = |rows: Vec<tokio_postgres::Row>| -> Vec<Row> {
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))).collect()
    };
    let got = read(client.query(&select, &[]).await.unwrap());
    let s = |v: &str| Some(v.to_owned());
    let want: Vec<Row> = vec![
        (1, s("unicode: Zoë 東京 🦀 \u{202e}rtl"), s(r#"{"a": [1, 2, {"b": null}]}"#), Some(7), None, "new".into()),
        (2, s("quotes ' \" `; --"), None, None, s("2026-11-30 12:00:00"), "new".into()),
        (4, None, s(r#""just a string""#), None, None, "done".into()),
        (9, s("keys in another order"), s(r#"{"x": 1}"#), None, None, "new".into()),
    ];
    assert_eq!(got, want, "missing fields take the column's default; JSON null is NULL");
    // Upsert of Json records: only the columns a record names are updated.
    let changes: Vec<Json> =
        vec![json!({"id": 1, "n": 8}), json!({"id": 2, "Title": "changed", "status": "done"}), json!({"id": 10, "Title": "new"})]
            .into_iter()
            .map(|v| serde_json::from_value(v).unwrap())
            .collect();
    let report = run(changes, etl::sink::postgres(&url, &table).mode(Mode::upsert(&["id"])), 100, &dlq).await.expect("the upsert");
    assert_eq!(report.records_out, 3, "{report}");
    let got = read(client.query(&select, &[]).await.unwrap());
    assert_eq!(got[0], (1, s("unicode: Zoë 東京 🦀 \u{202e}rtl"), s(r#"{"a": [1, 2, {"b": null}]}"#), Some(8), None, "new".into()));
    assert_eq!(got[1], (2, s("changed"), None, None, s("2026-11-30 12:00:00"), "done".into()));
    assert_eq!(got[4], (10, s("new"), None, None, None, "new".into()));
}

#[derive(Debug, Clone, PartialEq, Record, Serialize, Deserialize)]
struct Item {
    id: i64,
    name: String,
    qty: i32,
}

fn items(range: std::ops::Range<i64>) -> Vec<Item> {
    range.map(|id| Item { id, name: format!("item {id}"), qty: (id % 7) as i32 }).collect()
}

/// The error `open` fails with, checked to be permanent.
async fn open_error<T: Record + Sync>(sink: etl::sink::PostgresSink) -> String {
    let mut sink = sink;
    let e = open::<T>(&mut sink).await.expect_err("open refuses");
    assert!(!e.is_retryable(), "a start-up error is permanent: {e}");
    e.to_string()
}

#[tokio::test]
async fn start_up_errors_name_the_table_and_the_column() {
    let client = pg::client().await;
    let url = pg::database_url();
    // A missing table.
    let missing = pg::unique("missing");
    let e = open_error::<Item>(etl::sink::postgres(&url, &missing)).await;
    assert!(e.contains(&format!("public.{missing}")) && e.contains("does not exist") && e.contains("create = true"), "{e}");
    // A field without a column (with a hint for a case mismatch).
    let table = pg::unique("items");
    pg::exec(&client, &format!("CREATE TABLE \"{table}\" (id bigint PRIMARY KEY, \"Name\" text, qty integer)")).await;
    let e = open_error::<Item>(etl::sink::postgres(&url, &table)).await;
    assert!(e.contains(&table) && e.contains("no column `name`") && e.contains("did you mean `Name`"), "{e}");
    // A column whose type cannot hold the field.
    let table = pg::unique("items");
    pg::exec(&client, &format!("CREATE TABLE \"{table}\" (id bigint PRIMARY KEY, name text, qty timestamptz)")).await;
    let e = open_error::<Item>(etl::sink::postgres(&url, &table)).await;
    assert!(e.contains(&table) && e.contains("`qty`") && e.contains("timestamp with time zone") && e.contains("i32"), "{e}");
    // A NOT NULL column without a default that no field fills.
    let table = pg::unique("items");
    pg::exec(&client, &format!("CREATE TABLE \"{table}\" (id bigint, name text, qty integer, owner text NOT NULL)")).await;
    let e = open_error::<Item>(etl::sink::postgres(&url, &table)).await;
    assert!(e.contains(&table) && e.contains("`owner`") && e.contains("NOT NULL"), "{e}");
    // An upsert without a unique index on the key (a non-unique index does not count), or on another key.
    let table = pg::unique("items");
    pg::exec(&client, &format!("CREATE TABLE \"{table}\" (id bigint, name text UNIQUE, qty integer); CREATE INDEX ON \"{table}\" (id)"))
        .await;
    let e = open_error::<Item>(etl::sink::postgres(&url, &table).mode(Mode::upsert(&["id"]))).await;
    assert!(e.contains(&table) && e.contains("no unique index or constraint on exactly (id)"), "{e}");
    let e = open_error::<Item>(etl::sink::postgres(&url, &table).mode(Mode::upsert(&["nope"]))).await;
    assert!(e.contains("upsert key `nope`"), "{e}");
    // ... which the same table accepts on `name`, and for Json records too.
    let mut sink = etl::sink::postgres(&url, &table).mode(Mode::upsert(&["name"]));
    open::<Item>(&mut sink).await.expect("name is unique");
    let mut sink = etl::sink::postgres(&url, &table).mode(Mode::upsert(&["name"]));
    open::<Json>(&mut sink).await.expect("name is unique");
    // A generated column.
    let table = pg::unique("items");
    pg::exec(&client, &format!("CREATE TABLE \"{table}\" (id bigint, name text, qty integer GENERATED ALWAYS AS (id * 2) STORED)")).await;
    let e = open_error::<Item>(etl::sink::postgres(&url, &table)).await;
    assert!(e.contains("`qty`") && e.contains("generated"), "{e}");
    // A view.
    let view = pg::unique("items_view");
    pg::exec(&client, &format!("CREATE VIEW \"{view}\" AS SELECT 1::bigint AS id, 'x'::text AS name, 1 AS qty")).await;
    let e = open_error::<Item>(etl::sink::postgres(&url, &view)).await;
    assert!(e.contains("is not a table"), "{e}");
    // An unset variable, named; `create` for records without a schema.
    let e = open_error::<Item>(etl::sink::postgres("${ETL_TEST_SURELY_UNSET_URL}", &table)).await;
    assert!(e.contains("ETL_TEST_SURELY_UNSET_URL"), "{e}");
    let e = open_error::<Json>(etl::sink::postgres(&url, pg::unique("missing")).create(true)).await;
    assert!(e.contains("typed record"), "{e}");
    // Through the pipeline: the run fails before anything is read.
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&read);
    let source = etl::source::iter((0..10).map(move |id| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Item { id, name: String::new(), qty: 0 }
    }));
    let result = Pipeline::from(source).to(etl::sink::postgres(&url, &missing)).handle_signals(false).run().await;
    assert!(result.is_err_and(|e| e.to_string().contains(&missing)));
    assert_eq!(read.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing consumed");
}

#[tokio::test]
async fn create_true_makes_the_table_from_the_record_schema() {
    #[derive(Debug, Clone, Record, Serialize, Deserialize)]
    struct Reading {
        sensor: String,
        at: i64,
        value: f64,
        ok: bool,
        small: u8,
        note: Option<String>,
        extra: Vec<i32>,
    }
    let client = pg::client().await;
    let table = pg::unique("readings");
    let sink = etl::sink::postgres(pg::database_url(), &table).create(true).mode(Mode::upsert(&["sensor", "at"]));
    let readings: Vec<Reading> = (0..20)
        .map(|i| Reading {
            sensor: format!("s{}", i % 4),
            at: i / 4,
            value: i as f64 * 0.5,
            ok: true,
            small: 3,
            note: None,
            extra: vec![i as i32],
        })
        .collect();
    let dlq = MemoryDeadLetters::new();
    run(readings.clone(), sink, 6, &dlq).await.expect("the run");
    let columns: Vec<(String, String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let want = [
        ("sensor", "text", "NO"),
        ("at", "bigint", "NO"),
        ("value", "double precision", "NO"),
        ("ok", "boolean", "NO"),
        ("small", "smallint", "NO"),
        ("note", "text", "YES"),
        ("extra", "jsonb", "NO"),
    ];
    let want: Vec<(String, String, String)> = want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(columns, want);
    assert_eq!(pg::count(&client, &table).await, 20);
    // The keys are the primary key: a second run upserts.
    run(readings, etl::sink::postgres(pg::database_url(), &table).create(true).mode(Mode::upsert(&["sensor", "at"])), 6, &dlq)
        .await
        .expect("a second run");
    assert_eq!(pg::count(&client, &table).await, 20);
    assert!(dlq.is_empty());
}

#[tokio::test]
async fn rows_the_table_refuses_are_dead_lettered_with_their_record_and_the_rest_land() {
    let client = pg::client().await;
    let url = pg::database_url();
    let table = pg::unique("checked");
    pg::exec(
        &client,
        &format!("CREATE TABLE \"{table}\" (id bigint PRIMARY KEY, name text NOT NULL, qty integer CONSTRAINT qty_small CHECK (qty < 5))"),
    )
    .await;
    // qty = id % 7: ids with qty 5 or 6 break the CHECK; id 3 appears twice (a duplicate key in
    // insert mode: the second is refused).
    let mut records = items(0..60);
    records.insert(30, Item { id: 3, name: "duplicate".into(), qty: 0 });
    let dlq = MemoryDeadLetters::new();
    let report = run(records.clone(), etl::sink::postgres(&url, &table), 25, &dlq).await.expect("the run");
    let breaking: Vec<i64> = (0..60).filter(|id| id % 7 >= 5).collect();
    assert_eq!(report.dead_lettered as usize, breaking.len() + 1, "{report}");
    assert_eq!(report.records_out as usize, 61 - breaking.len() - 1, "{report}");
    let entries = dlq.list().await.unwrap();
    let mut refused: Vec<Item> = entries.iter().map(|e| serde_json::from_slice(&e.payload).expect("the record")).collect();
    refused.sort_by_key(|i| (i.id, i.name.clone()));
    let mut want: Vec<Item> = records.iter().filter(|i| i.qty >= 5 || i.name == "duplicate").cloned().collect();
    want.sort_by_key(|i| (i.id, i.name.clone()));
    assert_eq!(refused, want, "each refused record dead-lettered once, as it was");
    for e in &entries {
        assert!(e.error.contains("qty_small") || e.error.contains("duplicate key"), "the database's reason: {}", e.error);
        assert!(e.error.contains("SQLSTATE 23"), "{}", e.error);
    }
    let ids: Vec<i64> =
        client.query(&format!("SELECT id FROM \"{table}\" ORDER BY id"), &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let want_ids: Vec<i64> = (0..60).filter(|id| id % 7 < 5).collect();
    assert_eq!(ids, want_ids, "the rest landed, once");
    let name: String = client.query_one(&format!("SELECT name FROM \"{table}\" WHERE id = 3"), &[]).await.unwrap().get(0);
    assert_eq!(name, "item 3", "the first of the duplicates");
}

#[tokio::test]
async fn values_out_of_range_are_refused_before_sending() {
    #[derive(Debug, Clone, Record, Serialize, Deserialize)]
    struct Wide {
        id: i64,
        qty: i64,
        at: String,
    }
    let client = pg::client().await;
    let table = pg::unique("narrow");
    pg::exec(&client, &format!("CREATE TABLE \"{table}\" (id bigint, qty smallint, at timestamptz)")).await;
    let records = vec![
        Wide { id: 1, qty: 32767, at: "2026-01-01T00:00:00Z".into() },
        Wide { id: 2, qty: 32768, at: "2026-01-01T00:00:00Z".into() },
        Wide { id: 3, qty: 1, at: "2026-01-01 00:00:00".into() },
        Wide { id: 4, qty: 1, at: "yesterday".into() },
        Wide { id: 5, qty: -32768, at: "2026-02-30T00:00:00Z".into() },
    ];
    let dlq = MemoryDeadLetters::new();
    let report = run(records, etl::sink::postgres(pg::database_url(), &table), 10, &dlq).await.expect("the run");
    assert_eq!((report.records_out, report.dead_lettered), (1, 4), "{report}");
    let errors: Vec<String> = dlq.list().await.unwrap().into_iter().map(|e| e.error).collect();
    assert!(errors[0].contains("32768") && errors[0].contains("out of range") && errors[0].contains("`qty`"), "{errors:?}");
    assert!(errors[1].contains("no UTC offset"), "{errors:?}");
    assert!(errors[2].contains("yesterday"), "{errors:?}");
    assert!(errors[3].contains("2026-02-30") && errors[3].contains("`at`"), "{errors:?}");
    assert_eq!(pg::count(&client, &table).await, 1);
}

#[tokio::test]
async fn nothing_is_visible_before_commit_and_a_lost_transaction_fails_the_commit() {
    let client = pg::client().await;
    let url = pg::database_url();
    let table = pg::unique("two_phase");
    pg::exec(&client, &format!("CREATE TABLE \"{table}\" (id bigint PRIMARY KEY, name text, qty integer)")).await;
    let mut sink = etl::sink::postgres(&url, &table);
    open::<Item>(&mut sink).await.expect("open");
    let written = sink.write(&items(0..10)).await.expect("write");
    assert_eq!(written, Written::all());
    sink.write(&items(10..20)).await.expect("a second write, same transaction");
    assert_eq!(pg::count(&client, &table).await, 0, "nothing visible from another session before commit");
    Sink::<Item>::commit(&mut sink).await.expect("commit");
    assert_eq!(pg::count(&client, &table).await, 20, "everything visible after commit");
    Sink::<Item>::commit(&mut sink).await.expect("a commit with nothing written");

    // The server ends the sink's session between a write and the commit: the commit fails
    // (retryably) and nothing of the batch is committed.
    sink.write(&items(20..30)).await.expect("write");
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'etl' AND state LIKE 'idle in transaction%' \
             AND strpos(query, $1) > 0 AND datname = current_database()",
            &[&table],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "the sink's session, idle in its transaction");
    let e = Sink::<Item>::commit(&mut sink).await.expect_err("the commit fails");
    assert!(e.is_retryable(), "{e}");
    assert_eq!(pg::count(&client, &table).await, 20, "nothing of the lost transaction");
    // Writing again (as the pipeline does after a failed commit) and committing lands it.
    sink.write(&items(20..30)).await.expect("write again");
    Sink::<Item>::commit(&mut sink).await.expect("commit");
    assert_eq!(pg::count(&client, &table).await, 30);

    // A write that fails after earlier writes of the same transaction: the retried write
    // succeeds on a new connection, but the commit fails so that the earlier batch is written
    // again too.
    sink.write(&items(30..40)).await.expect("write");
    client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'etl' \
             AND state LIKE 'idle in transaction%' AND strpos(query, $1) > 0 AND datname = current_database()",
            &[&table],
        )
        .await
        .unwrap();
    let e = sink.write(&items(40..50)).await.expect_err("the connection is gone");
    assert!(e.is_retryable(), "{e}");
    sink.write(&items(40..50)).await.expect("the retried write");
    let e = Sink::<Item>::commit(&mut sink).await.expect_err("the batch 30..40 was lost with its transaction");
    assert!(e.is_retryable() && e.to_string().contains("written again"), "{e}");
    assert_eq!(pg::count(&client, &table).await, 30);
    sink.write(&items(30..40)).await.expect("rewrite");
    sink.write(&items(40..50)).await.expect("rewrite");
    Sink::<Item>::commit(&mut sink).await.expect("commit");
    assert_eq!(pg::count(&client, &table).await, 50);
    Sink::<Item>::close(&mut sink).await.expect("close");
}

#[tokio::test]
async fn the_password_never_shows() {
    let sink = etl::sink::postgres("postgres://etl:hunter2@127.0.0.1:1/db?sslmode=disable&password=hunter3", "t");
    let debug = format!("{sink:?}");
    assert!(!debug.contains("hunter"), "{debug}");
    assert!(debug.contains("etl:***@127.0.0.1"), "{debug}");
    let sink = etl::sink::postgres("host=127.0.0.1 port=1 user=etl password='hunter 2' dbname=db", "t");
    let debug = format!("{sink:?}");
    assert!(!debug.contains("hunter"), "{debug}");
    // Nothing listens on port 1: the error names the table, not the password.
    std::env::set_var("ETL_TEST_PG_PASSWORD", "hunter4");
    let mut sink = etl::sink::postgres("postgres://etl:${ETL_TEST_PG_PASSWORD}@127.0.0.1:1/db", "t").timeout(Duration::from_secs(5));
    let e = open::<Item>(&mut sink).await.expect_err("nothing listens there");
    let text = format!("{e} {e:?}");
    assert!(!text.contains("hunter4") && text.contains("postgres sink public.t"), "{text}");
    assert!(!format!("{sink:?}").contains("hunter4"));
}

#[tokio::test]
async fn postgres_unreachable_for_10_seconds_mid_run_loses_nothing_and_commits_nothing_meanwhile() {
    const CUT: Duration = Duration::from_secs(10);
    let client = pg::client().await;
    let table = pg::unique("outage");
    pg::exec(&client, &format!("CREATE TABLE \"{table}\" (id bigint PRIMARY KEY, name text, qty integer)")).await;
    let proxy = proxy::TcpProxy::start(pg::address(&pg::database_url())).await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let timeline = Timeline::default();
    let batching = BatchConfig { batch_size: 10, batch_timeout: Duration::from_millis(100), ..BatchConfig::default() };
    let source = Fed { rx, batching, timeline: timeline.clone() };
    let sink = etl::sink::postgres(pg::url_via(proxy.addr), &table).mode(Mode::upsert(&["id"])).timeout(Duration::from_secs(5));
    // Retries spread over more than the outage.
    let retry = RetryPolicy::default().max_retries(60).initial_delay(Duration::from_millis(100)).max_delay(Duration::from_secs(1));
    let run = tokio::spawn(
        Pipeline::from(source)
            .map(|id: i64| Item { id, name: format!("item {id}"), qty: (id % 7) as i32 })
            .to(sink)
            .retry(retry)
            .max_in_flight(3)
            .dead_letters(MemoryDeadLetters::new())
            .handle_signals(false)
            .run(),
    );
    let feed = |range: std::ops::Range<i64>| {
        let tx = tx.clone();
        async move {
            for id in range {
                tx.send(id).expect("the source is open");
                if id % 10 == 9 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    };
    feed(0..200).await;
    wait_until_async(PATIENCE, "the first 200 rows committed", || async { pg::count(&client, &table).await == 200 }).await;

    proxy.cut();
    let cut_at = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let acks_at_cut = timeline.acks().len();
    feed(200..400).await;
    while cut_at.elapsed() < CUT {
        assert_eq!(pg::count(&client, &table).await, 200, "nothing committed while PostgreSQL is unreachable");
        assert_eq!(timeline.acks().len(), acks_at_cut, "nothing acknowledged while PostgreSQL is unreachable");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(proxy.dropped() >= 1, "the sink's connection was cut");
    proxy.restore();
    feed(400..600).await;
    drop(tx);
    let report = tokio::time::timeout(PATIENCE, run).await.expect("the run ends").expect("no panic").expect("the run succeeds");
    assert!(report.retries > 0, "the sink retried: {report}");
    assert_eq!((report.records_out, report.dead_lettered), (600, 0), "{report}");
    let ids: Vec<i64> =
        client.query(&format!("SELECT id FROM \"{table}\" ORDER BY id"), &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, (0..600).collect::<Vec<_>>(), "every row exactly once");
    let acks = timeline.acks();
    assert!(acks.iter().all(|(_, s)| *s == Status::Delivered), "{acks:?}");
    let mut batches: Vec<usize> = acks.iter().map(|(i, _)| *i).collect();
    batches.sort_unstable();
    assert_eq!(batches, (0..acks.len()).collect::<Vec<_>>(), "every batch acknowledged once");
}
