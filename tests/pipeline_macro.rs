//! `pipeline!` end to end: the generated builder calls run, and what they produce is what the
//! DSL says (counts, batches from `batch_size`, Json schema steps, files written).

use etl::dead_letter::{DeadLetters, MemoryDeadLetters};
use etl::prelude::*;

#[derive(Debug, Clone, PartialEq, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
}

fn orders() -> Vec<Order> {
    (1..=10).map(|id| Order { id, customer: format!("c{}", id % 3), amount_cents: if id % 2 == 0 { id * 100 } else { 0 } }).collect()
}

#[tokio::test]
async fn iter_filter_map_collect() -> etl::Result<()> {
    let out = etl::sink::collect::<i64>();
    let report = pipeline! {
        iter(orders()) as Order
        | filter(|o| o.amount_cents > 0)
        | inspect(|o| assert!(o.id % 2 == 0))
        | map(|o| o.amount_cents)
        | collect(out)
    }
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(out.records(), vec![200, 400, 600, 800, 1000]);
    assert_eq!((report.records_in, report.records_out, report.filtered()), (10, 5, 5));
    Ok(())
}

#[tokio::test]
async fn map_as_type_filter_map_and_flat_map() -> etl::Result<()> {
    let out = etl::sink::collect::<String>();
    let report = pipeline! {
        iter(orders())
        | filter_map(|o: Order| (o.amount_cents > 0).then_some(o))
        | flat_map(|o| vec![o.customer.clone(), o.id.to_string()])
        | map(|s| s.as_str().into()) as String // `as` picks `Into`'s target
        | collect(out)
    }
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(out.records(), ["c2", "2", "c1", "4", "c0", "6", "c2", "8", "c1", "10"]);
    assert_eq!(report.records_out, 10);
    Ok(())
}

#[tokio::test]
async fn batch_arguments_reach_the_source() -> etl::Result<()> {
    let out = etl::sink::collect::<i64>();
    let report = pipeline! {
        iter(1..=7i64, batch_size = 2, batch_timeout = 1.5s, max_bytes = 1000000) | collect(out)
    }
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(report.batches, 4, "7 records in batches of 2");
    assert_eq!(out.len(), 7);

    let out = etl::sink::collect::<i64>();
    let report = pipeline! { iter(1..=100i64, batch_size = 10, max_batches = 3, batch_timeout = 200ms) | collect(out) }
        .handle_signals(false)
        .run()
        .await?;
    assert_eq!((report.batches, out.len()), (3, 30));

    let out = etl::sink::collect::<i64>();
    let report = pipeline! { iter(1..=100i64, max_records = 5, batch_timeout = 1m) | collect(out) }.handle_signals(false).run().await?;
    assert_eq!((report.records_in, out.len()), (5, 5));
    Ok(())
}

#[tokio::test]
async fn json_file_rename_select_drop_to_files() -> etl::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"id\":1,\"title\":\"a\",\"length\":{\"new\":3},\"secret\":\"x\"}\n{\"id\":2,\"title\":\"b\",\"length\":{\"new\":5},\"secret\":\"y\"}\n{\"id\":3,\"title\":\"c\",\"length\":{\"new\":7},\"secret\":\"z\"}\n",
    )
    .expect("write input");
    let path = input.to_string_lossy().into_owned();
    let lake = dir.path().join("lake");
    let lake_s = lake.to_string_lossy().into_owned();
    // `${..:-default}` resolved at start-up (the variables are unset: no `set_var` in tests that
    // run in parallel), with the defaults built at run time and passed as expressions.
    let input_spec = format!("${{ETL_PIPELINE_MACRO_UNSET_IN:-{path}}}");
    let lake_spec = format!("${{ETL_PIPELINE_MACRO_UNSET_LAKE:-{lake_s}}}");
    let report = pipeline! {
        file(path = input_spec, format = "jsonl", batch_size = 2, batch_timeout = 2s)
        | rename(length.new -> length_new, title -> name)
        | drop(secret)
        | select(name, id, length_new)
        | file(dir = lake_spec, format = "jsonl", prefix = "events")
    }
    .name("pipeline_macro_json")
    .dead_letters(MemoryDeadLetters::new())
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!((report.records_in, report.records_out, report.batches, report.dead_lettered), (3, 3, 2, 0));

    let mut files: Vec<_> = std::fs::read_dir(&lake).expect("lake exists").filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    assert_eq!(files.len(), 2, "one file per batch: {files:?}");
    assert!(files.iter().all(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with("events"))));
    let lines: Vec<String> =
        files.iter().flat_map(|f| std::fs::read_to_string(f).expect("read").lines().map(str::to_owned).collect::<Vec<_>>()).collect();
    assert_eq!(
        lines,
        [r#"{"name":"a","id":1,"length_new":3}"#, r#"{"name":"b","id":2,"length_new":5}"#, r#"{"name":"c","id":3,"length_new":7}"#]
    );
    Ok(())
}

#[tokio::test]
async fn typed_file_source_to_csv() -> etl::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let input = dir.path().join("orders.jsonl");
    let body: String = orders().iter().map(|o| serde_json::to_string(o).expect("json") + "\n").collect();
    std::fs::write(&input, body).expect("write input");
    let input = input.to_string_lossy().into_owned();
    let out = etl::sink::collect::<Order>();
    let report = pipeline! {
        file(path = input, batch_size = 4) as Order
        | filter(|o| o.customer == "c1")
        | collect(out)
    }
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(out.records().iter().map(|o| o.id).collect::<Vec<_>>(), [1, 4, 7, 10]);
    assert_eq!(report.batches, 3);
    Ok(())
}

mod user {
    //! User steps by path: a sink counting records.
    use etl::sink::{Sink, Written};
    use etl::ConnectorError;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    pub struct Count(pub Arc<AtomicU64>);

    impl<T: Sync> Sink<T> for Count {
        fn describe(&self) -> String {
            "count".into()
        }
        async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
            self.0.fetch_add(records.len() as u64, Ordering::Relaxed);
            Ok(Written::all())
        }
    }

    pub fn count(n: &Arc<AtomicU64>) -> Count {
        Count(Arc::clone(n))
    }
}

#[tokio::test]
async fn user_sink_by_path() -> etl::Result<()> {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    pipeline! { iter(0..42i64) | user::count(&n) }.handle_signals(false).run().await?;
    assert_eq!(n.load(std::sync::atomic::Ordering::Relaxed), 42);
    Ok(())
}

/// The lines of every file in `dir`, files in name order.
fn lines_in(dir: &std::path::Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("dir exists").filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    files.iter().flat_map(|f| std::fs::read_to_string(f).expect("read").lines().map(str::to_owned).collect::<Vec<_>>()).collect()
}

#[tokio::test]
async fn typed_rename_select_filter_collect() -> etl::Result<()> {
    let out = etl::sink::collect();
    let report = pipeline! {
        iter(orders()) as Order
        | filter(|o| o.amount_cents > 0)
        | rename(amount_cents -> amount)
        | select(id, amount)
        | filter(|o| o.amount > 200)
        | collect(out)
    }
    .handle_signals(false)
    .run()
    .await?;
    let got: Vec<(i64, i64)> = out.records().into_iter().map(|r| (r.id, r.amount)).collect();
    assert_eq!(got, [(4, 400), (6, 600), (8, 800), (10, 1000)]);
    assert_eq!((report.records_in, report.records_out), (10, 4));
    // The generated type is a record: its schema is the new field list.
    fn schema_of<T: Record>(_: &[T]) -> Vec<(&'static str, &'static str)> {
        T::schema().fields.iter().map(|f| (f.name, f.ty)).collect()
    }
    assert_eq!(schema_of(&out.records()), [("id", "i64"), ("amount", "i64")]);
    assert_eq!(format!("{:?}", out.records()[0]), "Order_after_select { id: 4, amount: 400 }");
    // Named, for messages and the pipeline's graph, after the step that made it.
    fn name_of<T: Record>(_: &[T]) -> &'static str {
        T::schema().name
    }
    assert_eq!(name_of(&out.records()), "Order after select(id, amount)");
    Ok(())
}

mod events {
    use etl::prelude::*;

    #[derive(Debug, Clone, PartialEq, Record, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Event {
        pub event_id: i64,
        #[serde(rename = "type")]
        pub kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub note: Option<String>,
        pub created_at: String,
        pub secret: String,
    }

    pub fn sample() -> Vec<Event> {
        (1..=3)
            .map(|i| Event {
                event_id: i,
                kind: format!("k{i}"),
                note: (i == 2).then(|| "n".to_owned()),
                created_at: format!("t{i}"),
                secret: "x".into(),
            })
            .collect()
    }
}

#[tokio::test]
async fn typed_steps_keep_serde_names_in_json_and_csv() -> etl::Result<()> {
    use events::Event;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (json_dir, csv_dir) = (dir.path().join("json"), dir.path().join("csv"));
    let (json_spec, csv_spec) = (json_dir.to_string_lossy().into_owned(), csv_dir.to_string_lossy().into_owned());
    pipeline! {
        iter(events::sample()) as Event
        | rename(created_at -> ts)
        | select(event_id, kind, note, ts)
        | file(dir = json_spec, format = "jsonl")
    }
    .handle_signals(false)
    .run()
    .await?;
    // Kept fields keep their serde names (`eventId` from `rename_all`, `type`) and options
    // (`note` left out when `None`); the renamed field takes its new name.
    assert_eq!(
        lines_in(&json_dir),
        [
            r#"{"eventId":1,"type":"k1","ts":"t1"}"#,
            r#"{"eventId":2,"type":"k2","note":"n","ts":"t2"}"#,
            r#"{"eventId":3,"type":"k3","ts":"t3"}"#
        ]
    );

    pipeline! {
        iter(events::sample()) as events::Event
        | drop(note, secret)
        | rename(kind -> category)
        | file(dir = csv_spec, format = "csv")
    }
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(lines_in(&csv_dir), ["eventId,category,createdAt", "1,k1,t1", "2,k2,t2", "3,k3,t3"]);
    Ok(())
}

mod money {
    //! Serde helpers private to the record's module: generated types call them through the
    //! record (`FieldSerializeWith`, ...), so they resolve here, not where the pipeline is.
    use etl::prelude::*;

    fn default_currency() -> String {
        "EUR".into()
    }

    fn is_zero(n: &i64) -> bool {
        *n == 0
    }

    mod cents {
        pub fn serialize<S: serde::Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&format!("{}.{:02}", v / 100, v % 100))
        }
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
            let text: String = serde::Deserialize::deserialize(d)?;
            let (units, cents) = text.split_once('.').ok_or_else(|| serde::de::Error::custom("no ."))?;
            Ok(units.parse::<i64>().map_err(serde::de::Error::custom)? * 100 + cents.parse::<i64>().map_err(serde::de::Error::custom)?)
        }
    }

    #[derive(Debug, Clone, PartialEq, Record, Serialize, Deserialize)]
    pub struct Price {
        pub id: i64,
        #[serde(with = "cents")]
        pub amount: i64,
        #[serde(default = "default_currency")]
        pub currency: String,
        #[serde(skip_serializing_if = "is_zero", default)]
        pub discount: i64,
        #[serde(alias = "desc")]
        pub description: String,
    }
}

/// Deserialize `text` into the type of `_like` (a generated type, which has no name to write).
fn parse_like<T: serde::de::DeserializeOwned>(_like: &T, text: &str) -> T {
    serde_json::from_str(text).expect("deserializes")
}

#[tokio::test]
async fn serde_helpers_of_the_records_module_follow_its_fields() -> etl::Result<()> {
    use money::Price;
    let prices = vec![
        Price { id: 1, amount: 1250, currency: "USD".into(), discount: 0, description: "a".into() },
        Price { id: 2, amount: 99, currency: "EUR".into(), discount: 5, description: "b".into() },
    ];
    let out = etl::sink::collect();
    pipeline! { iter(prices) as Price | select(amount, discount, currency, description) | collect(out) }
        .handle_signals(false)
        .run()
        .await?;
    let got = out.records();
    let json: Vec<String> = got.iter().map(|r| serde_json::to_string(r).expect("serializes")).collect();
    assert_eq!(
        json,
        [
            r#"{"amount":"12.50","currency":"USD","description":"a"}"#,
            r#"{"amount":"0.99","discount":5,"currency":"EUR","description":"b"}"#
        ]
    );
    // Deserialising goes through the record's helpers too: `with`, `default = ".."`, `default`, `alias`.
    let back = parse_like(&got[0], r#"{"amount":"3.07","desc":"c"}"#);
    assert_eq!((back.amount, back.currency.as_str(), back.discount, back.description.as_str()), (307, "EUR", 0, "c"));
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Record, Serialize, Deserialize)]
struct Page<T> {
    items: Vec<T>,
    n: usize,
}

#[tokio::test]
async fn generic_records_through_rename() -> etl::Result<()> {
    let out = etl::sink::collect();
    pipeline! { iter(vec![Page { items: vec![1i64, 2], n: 2 }]) as Page<i64> | rename(n -> count) | collect(out) }
        .handle_signals(false)
        .run()
        .await?;
    let got = out.records();
    assert_eq!((got[0].items.clone(), got[0].count), (vec![1, 2], 2));
    assert_eq!(serde_json::to_string(&got[0]).expect("json"), r#"{"items":[1,2],"count":2}"#);
    Ok(())
}

/// A field type that is neither `Clone` nor `Debug`.
#[derive(PartialEq, Serialize, Deserialize)]
struct Opaque(i64);

#[derive(Record, Serialize, Deserialize)]
struct Plain {
    id: i64,
    blob: Opaque,
}

#[tokio::test]
async fn records_without_clone_or_debug_go_through_schema_steps() -> etl::Result<()> {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    pipeline! {
        iter(vec![Plain { id: 1, blob: Opaque(7) }]) as Plain
        | rename(blob -> payload)
        | filter(|p| p.payload == Opaque(7) && p.id == 1)
        | user::count(&n)
    }
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(n.load(std::sync::atomic::Ordering::Relaxed), 1);
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Record, Serialize, Deserialize)]
struct Payment {
    id: i64,
    amount: i64,
    #[serde(skip)]
    cached: Option<String>,
}

#[tokio::test]
async fn into_moves_fields_by_name_and_defaults_skipped_ones() -> etl::Result<()> {
    let out = etl::sink::collect::<Payment>();
    pipeline! {
        iter(orders()) as Order
        | filter(|o| o.amount_cents > 500)
        | drop(customer)
        | rename(amount_cents -> amount)
        | into(Payment)
        | filter(|p| p.amount > 700)
        | collect(out)
    }
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(out.records(), [Payment { id: 8, amount: 800, cached: None }, Payment { id: 10, amount: 1000, cached: None }]);
    Ok(())
}

#[tokio::test]
async fn map_as_a_record_then_schema_steps() -> etl::Result<()> {
    let out = etl::sink::collect();
    pipeline! {
        iter(vec![1i64, 2])
        | map(|n| Payment { id: n, amount: n * 10, cached: Some("c".into()) }) as Payment
        | map(|mut p| { p.amount += 1; p }) // no `as`: the type is assumed kept
        | rename(amount -> total)
        | collect(out)
    }
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(out.records().iter().map(|r| (r.id, r.total)).collect::<Vec<_>>(), [(1, 11), (2, 21)]);
    Ok(())
}

#[tokio::test]
async fn json_into_a_record_dead_letters_what_does_not_fit() -> etl::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"id\":1,\"cents\":5}\n{\"id\":\"two\",\"cents\":6}\n{\"id\":3,\"cents\":7}\n").expect("write");
    let input = input.to_string_lossy().into_owned();
    let out = etl::sink::collect::<Payment>();
    let report = pipeline! {
        file(path = input)
        | rename(cents -> amount)
        | into(Payment)
        | collect(out)
    }
    .dead_letters(MemoryDeadLetters::new())
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(out.records().iter().map(|p| (p.id, p.amount)).collect::<Vec<_>>(), [(1, 5), (3, 7)]);
    assert_eq!(report.dead_lettered, 1);
    Ok(())
}

/// `into(Type)` on records whose type the macro cannot see (`iter` over `Json` rows, no `as`):
/// decoded at run time after the run-time `select`; the row that does not fit is dead-lettered
/// with serde's error and the row as it was, and the others reach the sink.
#[tokio::test]
async fn into_on_json_rows_of_an_unseen_type_decodes_and_dead_letters_what_does_not_fit() -> etl::Result<()> {
    #[derive(Debug, Clone, PartialEq, Record, Serialize, Deserialize)]
    struct Row {
        a: i64,
        b: String,
    }
    let rows: Vec<etl::Json> = [r#"{"a":1,"b":"x","c":0}"#, r#"{"a":"two","b":"y","c":0}"#, r#"{"a":3,"b":"z"}"#]
        .iter()
        .map(|text| serde_json::from_str(text).expect("a JSON object"))
        .collect();
    let out = etl::sink::collect::<Row>();
    let dead = MemoryDeadLetters::new();
    let report = pipeline! {
        iter(rows)
        | select(a, b)
        | into(Row)
        | filter(|r| r.a > 0)
        | collect(out)
    }
    .dead_letters(dead.clone())
    .handle_signals(false)
    .run()
    .await?;
    assert_eq!(out.records(), [Row { a: 1, b: "x".into() }, Row { a: 3, b: "z".into() }]);
    assert_eq!((report.records_in, report.records_out, report.dead_lettered), (3, 2, 1));
    let entries = dead.list().await.expect("memory dead letters list");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, etl::batch::FailureKind::Decode);
    assert!(entries[0].error.contains("invalid type: string \"two\", expected i64"), "{}", entries[0].error);
    assert_eq!(&entries[0].payload[..], br#"{"a":"two","b":"y"}"#, "the row as it reached `into` (after `select`)");
    Ok(())
}

/// `map` with a path: a plain function maps, a `#[stage]` runs with its retries; `as U` checks.
mod map_by_path {
    use super::*;

    fn cents(o: Order) -> i64 {
        o.amount_cents
    }

    #[stage(retries = 1, backoff = 1ms)]
    pub async fn label(n: i64) -> Result<String, etl::stage::Error> {
        if n < 0 {
            return Err(etl::stage::Error::permanent("negative"));
        }
        Ok(format!("{n}c"))
    }

    #[tokio::test]
    async fn functions_and_stages_by_path() -> etl::Result<()> {
        let out = etl::sink::collect::<String>();
        let dead = MemoryDeadLetters::new();
        let mut items = orders();
        items[0].amount_cents = -1;
        let report = pipeline! {
            iter(items) as Order
            | rename(amount_cents -> amount)
            | rename(amount -> amount_cents)
            | into(Order)
            | map(cents) as i64
            | filter(|n| *n != 0)
            | map(label) as String
            | collect(out)
        }
        .dead_letters(dead.clone())
        .handle_signals(false)
        .run()
        .await?;
        assert_eq!(out.records(), ["200c", "400c", "600c", "800c", "1000c"]);
        assert_eq!((report.records_in, report.records_out, report.dead_lettered), (10, 5, 1));
        Ok(())
    }
}
