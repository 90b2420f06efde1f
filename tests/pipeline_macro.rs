//! `pipeline!` end to end: the generated builder calls run, and what they produce is what the
//! DSL says (counts, batches from `batch_size`, Json schema steps, files written).

use etl::dead_letter::MemoryDeadLetters;
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
    std::env::set_var("ETL_PIPELINE_MACRO_IN", &path);
    std::env::set_var("ETL_PIPELINE_MACRO_LAKE", &lake_s);
    let report = pipeline! {
        file(path = "${ETL_PIPELINE_MACRO_IN}", format = "jsonl", batch_size = 2, batch_timeout = 2s)
        | rename(length.new -> length_new, title -> name)
        | drop(secret)
        | select(name, id, length_new)
        | file(dir = "${ETL_PIPELINE_MACRO_LAKE}", format = "jsonl", prefix = "events")
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
    std::env::set_var("ETL_PIPELINE_MACRO_ORDERS", input.to_string_lossy().as_ref());
    let out = etl::sink::collect::<Order>();
    let report = pipeline! {
        file(path = "${ETL_PIPELINE_MACRO_ORDERS}", batch_size = 4) as Order
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

#[tokio::test]
async fn typed_rename_select_filter() -> etl::Result<()> {
    let out = etl::sink::collect();
    pipeline! {
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
    Ok(())
}
