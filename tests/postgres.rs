//! The PostgreSQL sink against a real server (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; `scripts/test.sh` starts it, and a server that
//! does not answer is a failure saying how to start it). Every test has tables of its own and
//! checks the table's own view from another session, not only the run report.

mod common;
#[path = "common/postgres.rs"]
mod pg;
#[path = "common/proxy.rs"]
mod proxy;

use common::{quick_retries, wait_until_async, Event, Fed, Timeline, PATIENCE};
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
    let select = format!("SELECT id, \"Title\", body::text, n, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), status FROM \"{table}\" ORDER BY id");
    let read = |rows: Vec<tokio_postgres::Row>| -> Vec<Row> { rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))).collect() };
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
    let changes: Vec<Json> = vec![json!({"id": 1, "n": 8}), json!({"id": 2, "Title": "changed", "status": "done"}), json!({"id": 10, "Title": "new"})]
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
