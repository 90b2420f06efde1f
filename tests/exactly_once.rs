//! Exactly-once delivery into PostgreSQL (issue 13): the `postgres` sink storing the positions
//! of each batch with its rows (`exactly_once(true)`), the fencing of a batch whose positions
//! another writer moved, and the `kafka` source placing its partitions at the stored positions.
//!
//! Against `DATABASE_URL` and, for the last test, `KAFKA_BROKERS` (the mock broker process
//! `scripts/test.sh` starts); a missing server is a failure saying how to start it. What is
//! checked is the database's own view (`count(*)`, the offsets table) and the broker's
//! (committed offsets), read through clients of the test's own.

mod common;
#[path = "common/kafka.rs"]
mod kafka_broker;
#[path = "common/postgres.rs"]
mod pg;

use bytes::Bytes;
use etl::ack::Ack;
use etl::batch::{Batch, BatchStream};
use etl::positions::{OffsetRange, Partition, Positions};
use etl::prelude::*;
use etl::record::{Meta, Position};
use etl::sink::{SinkContext, Written};
use etl::source::SourceContext;
use kafka_broker::{brokers, committed_async, create_topic, produce_async, Out};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Record, Serialize, Deserialize)]
struct Payment {
    id: i64,
    cents: i64,
}

/// A ledger table without a key (a replayed batch would be a second row) and an offsets table
/// name of the test's own.
async fn ledger(client: &tokio_postgres::Client) -> (String, String) {
    let table = pg::unique("ledger");
    pg::exec(client, &format!("CREATE TABLE \"{table}\" (id bigint NOT NULL, cents bigint NOT NULL)")).await;
    (table, pg::unique("offsets"))
}

fn sink(table: &str, offsets: &str) -> etl::sink::PostgresSink {
    etl::sink::postgres(pg::database_url(), table).exactly_once(true).offsets_table(offsets)
}

fn payments(ids: std::ops::Range<i64>) -> Vec<Payment> {
    ids.map(|id| Payment { id, cents: id * 10 }).collect()
}

fn at(topic: &str, partition: i32, from: i64, to: i64) -> Positions {
    Positions::new("ledger-group", vec![OffsetRange::new(topic, partition, from, to)])
}

/// The offsets table as the database sees it: (topic, partition, next_offset), sorted.
async fn stored(client: &tokio_postgres::Client, offsets: &str) -> Vec<(String, i32, i64)> {
    let sql = format!("SELECT topic, \"partition\", next_offset FROM \"{offsets}\" WHERE group_id = 'ledger-group' ORDER BY 1, 2");
    client.query(&sql, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

async fn write(sink: &mut etl::sink::PostgresSink, records: &[Payment], positions: &Positions) -> Written {
    Sink::<Payment>::write_positioned(sink, records, &[], positions).await.expect("write")
}

#[tokio::test]
async fn positions_commit_with_the_rows_and_a_replayed_batch_is_fenced_off() {
    let client = pg::client().await;
    let (table, offsets) = ledger(&client).await;
    let mut sink = sink(&table, &offsets);
    Sink::<Payment>::open(&mut sink, SinkContext::default()).await.expect("open creates the offsets table");
    assert_eq!(write(&mut sink, &payments(0..3), &at("payments", 0, 0, 3)).await, Written::all());
    assert_eq!(pg::count(&client, &table).await, 0, "nothing visible before the commit");
    assert!(stored(&client, &offsets).await.is_empty(), "nor the positions");
    Sink::<Payment>::commit(&mut sink).await.unwrap();
    assert_eq!(pg::count(&client, &table).await, 3);
    assert_eq!(stored(&client, &offsets).await, [("payments".to_owned(), 0, 3)]);

    // The same batch again (a crash after the commit, before Kafka heard of it): fenced off.
    assert!(write(&mut sink, &payments(0..3), &at("payments", 0, 0, 3)).await.fenced);
    // The next batch, and a batch whose records were all filtered out (its range moves on),
    // in the same transaction as the fenced one.
    assert_eq!(write(&mut sink, &payments(3..5), &at("payments", 0, 3, 5)).await, Written::all());
    assert_eq!(write(&mut sink, &[], &at("payments", 0, 5, 9)).await, Written::all());
    Sink::<Payment>::commit(&mut sink).await.unwrap();
    assert_eq!(pg::count(&client, &table).await, 5, "the replayed batch wrote nothing");
    assert_eq!(stored(&client, &offsets).await, [("payments".to_owned(), 0, 9)]);

    // Two partitions, one of them moved: nothing of the batch, not even the other's position.
    let both = Positions::new("ledger-group", vec![OffsetRange::new("payments", 1, 0, 2), OffsetRange::new("payments", 0, 5, 9)]);
    assert!(write(&mut sink, &payments(100..102), &both).await.fenced);
    assert_eq!(write(&mut sink, &payments(9..10), &at("payments", 0, 9, 10)).await, Written::all());
    Sink::<Payment>::commit(&mut sink).await.unwrap();
    assert_eq!(pg::count(&client, &table).await, 6);
    assert_eq!(stored(&client, &offsets).await, [("payments".to_owned(), 0, 10)], "partition 1 got no row");
    let distinct: i64 = client.query_one(&format!("SELECT count(DISTINCT id) FROM \"{table}\""), &[]).await.unwrap().get(0);
    assert_eq!(distinct, 6);
}

/// Two members write the same partition's range at once (the old owner of a partition, still
/// writing after a rebalance, and the new one): the second waits for the first's transaction
/// and is fenced off when it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_writer_is_fenced_by_the_compare_and_set() {
    let client = pg::client().await;
    let (table, offsets) = ledger(&client).await;
    let (mut old_owner, mut new_owner) = (sink(&table, &offsets), sink(&table, &offsets));
    Sink::<Payment>::open(&mut old_owner, SinkContext::default()).await.unwrap();
    Sink::<Payment>::open(&mut new_owner, SinkContext::default()).await.unwrap();
    // Both read partition 0 from offset 0 (nothing stored yet).
    assert_eq!(write(&mut new_owner, &payments(0..4), &at("payments", 0, 0, 4)).await, Written::all());
    let zombie = tokio::spawn(async move {
        let written = write(&mut old_owner, &payments(0..2), &at("payments", 0, 0, 2)).await;
        Sink::<Payment>::commit(&mut old_owner).await.unwrap();
        written
    });
    // The zombie's statement waits for the new owner's uncommitted row.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!zombie.is_finished(), "the compare-and-set waits for the other transaction");
    Sink::<Payment>::commit(&mut new_owner).await.unwrap();
    let written = tokio::time::timeout(common::PATIENCE, zombie).await.expect("the zombie's write ends").unwrap();
    assert!(written.fenced, "the zombie's batch is fenced off: {written:?}");
    assert_eq!(pg::count(&client, &table).await, 4);
    assert_eq!(stored(&client, &offsets).await, [("payments".to_owned(), 0, 4)]);
}

/// The sink offers its run's source the positions it stored; a second store in a run is
/// refused; a batch without positions (a dead-letter replay) is written without any.
#[tokio::test]
async fn the_sink_offers_its_store_to_the_source_of_its_run() {
    let client = pg::client().await;
    let (table, offsets) = ledger(&client).await;
    let resources = etl::resources::Resources::default();
    let ctx = SinkContext::default().with_resources(resources.clone());
    let mut sink = sink(&table, &offsets);
    Sink::<Payment>::open(&mut sink, ctx.clone()).await.unwrap();
    write(&mut sink, &payments(0..5), &at("payments", 2, 10, 15)).await;
    Sink::<Payment>::commit(&mut sink).await.unwrap();
    let source = SourceContext::new(ctx.shutdown.clone()).with_resources(resources);
    let store = source.positions().expect("a store offered");
    let asked = [Partition::new("payments", 2), Partition::new("payments", 3), Partition::new("refunds", 2)];
    assert_eq!(store.stored("ledger-group", &asked).await.unwrap(), vec![(Partition::new("payments", 2), 15)]);
    assert!(store.stored("other-group", &asked).await.unwrap().is_empty(), "positions are per group");

    let mut second = etl::sink::postgres(pg::database_url(), &table).exactly_once(true).offsets_table(&offsets);
    let refused = Sink::<Payment>::open(&mut second, ctx).await.unwrap_err();
    assert!(refused.to_string().contains("another sink of this run stores"), "{refused}");
    // A batch without positions (a dead-letter replay): written, at least once, nothing stored.
    assert_eq!(Sink::<Payment>::write(&mut sink, &payments(100..101)).await.unwrap(), Written::all());
    Sink::<Payment>::commit(&mut sink).await.unwrap();
    assert_eq!(pg::count(&client, &table).await, 6);
    assert_eq!(stored(&client, &offsets).await, [("payments".to_owned(), 2, 15)]);

    pg::exec(&client, &format!("CREATE TABLE \"{offsets}_bad\" (group_id text)")).await;
    let mut bad = etl::sink::postgres(pg::database_url(), &table).exactly_once(true).offsets_table(format!("{offsets}_bad"));
    let e = Sink::<Payment>::open(&mut bad, SinkContext::default()).await.unwrap_err();
    assert!(e.to_string().contains("cannot hold positions"), "{e}");
}

/// A source of fixed batches with positions, most of whose records a filter drops.
struct Positioned(Vec<(Vec<Payment>, Positions)>);

impl Source for Positioned {
    type Item = Payment;
    fn describe(&self) -> String {
        "positioned".into()
    }
    async fn open(self, _ctx: SourceContext) -> etl::Result<BatchStream<Payment>> {
        let batches: Vec<etl::Result<Batch<Payment>>> = self
            .0
            .into_iter()
            .map(|(records, positions)| {
                let meta = records.iter().map(|p| Meta::at(Position::Offset { partition: 0, offset: p.id })).collect();
                Ok(Batch::new(records, meta, vec![], Ack::none(), Arc::from("positioned")).with_positions(positions))
            })
            .collect();
        Ok(Box::pin(futures::stream::iter(batches)))
    }
}

/// Through the pipeline: positions travel through the operators to the sink, and a batch
/// whose records were all filtered out still moves the stored position.
#[tokio::test]
async fn filtered_records_move_the_stored_positions_through_the_pipeline() {
    let client = pg::client().await;
    let (table, offsets) = ledger(&client).await;
    let source = Positioned(vec![
        (payments(0..4), at("payments", 0, 0, 4)),
        (payments(4..8), at("payments", 0, 4, 8)),
        (payments(8..12), at("payments", 0, 8, 12)),
    ]);
    let report = Pipeline::from(source)
        .filter(|p: &Payment| p.id < 4 || p.id >= 8)
        .map(|p: Payment| Payment { cents: p.cents + 1, ..p })
        .to(sink(&table, &offsets))
        .dead_letters(etl::dead_letter::MemoryDeadLetters::new())
        .handle_signals(false)
        .run()
        .await
        .expect("run");
    assert_eq!(report.records_out, 8);
    assert_eq!(pg::count(&client, &table).await, 8);
    assert_eq!(stored(&client, &offsets).await, [("payments".to_owned(), 0, 12)]);
}

/// The `kafka` source starts at the positions the sink stored, not at the group's offsets,
/// and still commits its offsets to Kafka (lag monitoring).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_source_starts_at_the_stored_positions() {
    let client = pg::client().await;
    let (table, offsets) = ledger(&client).await;
    let topic = create_topic("eo-placed", 2).await;
    let group = kafka_broker::unique("eo-placed");
    let messages: Vec<Out> = (0..40i32)
        .map(|id| Out {
            partition: Some(id % 2),
            value: Bytes::from(serde_json::json!({"id": id, "cents": id}).to_string()),
            ..Out::default()
        })
        .collect();
    produce_async(&topic, messages).await;
    // Partition 0 was written up to offset 5 by an earlier run; partition 1 has no row.
    pg::exec(&client, &etl_offsets_sql(&offsets)).await;
    client
        .execute(
            &format!("INSERT INTO \"{offsets}\" (group_id, topic, \"partition\", next_offset) VALUES ($1, $2, 0, 5)"),
            &[&group, &topic],
        )
        .await
        .unwrap();
    let source = etl::source::kafka::<Payment>([topic.clone()], group.clone())
        .brokers(brokers())
        .batch_size(7)
        .batch_timeout(Duration::from_millis(100))
        .max_records(35);
    let report = Pipeline::from(source)
        .to(sink(&table, &offsets))
        .dead_letters(etl::dead_letter::MemoryDeadLetters::new())
        .handle_signals(false)
        .run()
        .await
        .expect("run");
    assert_eq!(report.records_in, 35, "20 of partition 1, 15 of partition 0 (from offset 5)");
    let ids: Vec<i64> =
        client.query(&format!("SELECT id FROM \"{table}\" ORDER BY id"), &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let want: Vec<i64> = (0..40).filter(|id| id % 2 == 1 || *id >= 10).collect();
    assert_eq!(ids, want, "partition 0 from its stored offset 5 (ids 10, 12, ...), partition 1 from the start");
    let stored: Vec<(i32, i64)> = client
        .query(&format!("SELECT \"partition\", next_offset FROM \"{offsets}\" WHERE group_id = $1 ORDER BY 1"), &[&group])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(stored, [(0, 20), (1, 20)]);
    assert_eq!(committed_async(&group, &topic).await, [Some(20), Some(20)], "the group's offsets follow, for its lag");
}

/// The offsets table as the sink creates it (for a test that fills it first).
fn etl_offsets_sql(offsets: &str) -> String {
    format!(
        "CREATE TABLE \"{offsets}\" (group_id text NOT NULL, topic text NOT NULL, \"partition\" integer NOT NULL, \
         next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (group_id, topic, \"partition\"))"
    )
}

/// The `postgres` sink, and another writer: once the stored offset of partition 0 reaches
/// `at`, it moves it to `to`, as a member that took the partition over would after writing
/// those offsets.
struct Interloper {
    inner: etl::sink::PostgresSink,
    offsets: String,
    group: String,
    at: i64,
    to: i64,
    reached: i64,
    /// Where the stored offset was when it moved it (0: not yet).
    moved_from: Arc<std::sync::atomic::AtomicI64>,
}

impl Sink<Payment> for Interloper {
    fn describe(&self) -> String {
        Sink::<Payment>::describe(&self.inner)
    }
    async fn open(&mut self, ctx: SinkContext) -> Result<(), etl::ConnectorError> {
        Sink::<Payment>::open(&mut self.inner, ctx).await
    }
    async fn write(&mut self, records: &[Payment]) -> Result<Written, etl::ConnectorError> {
        self.inner.write(records).await
    }
    async fn write_positioned(
        &mut self,
        records: &[Payment],
        meta: &[Meta],
        positions: &Positions,
    ) -> Result<Written, etl::ConnectorError> {
        let written = self.inner.write_positioned(records, meta, positions).await?;
        if !written.fenced {
            self.reached = positions.ranges.iter().map(|r| r.to).fold(self.reached, i64::max);
        }
        Ok(written)
    }
    async fn commit(&mut self) -> Result<(), etl::ConnectorError> {
        Sink::<Payment>::commit(&mut self.inner).await?;
        if self.moved_from.load(std::sync::atomic::Ordering::SeqCst) == 0 && self.reached >= self.at {
            self.moved_from.store(self.reached, std::sync::atomic::Ordering::SeqCst);
            let sql = format!("UPDATE \"{}\" SET next_offset = $1 WHERE group_id = $2 AND \"partition\" = 0", self.offsets);
            pg::client().await.execute(&sql, &[&self.to, &self.group]).await.expect("move the stored offset");
        }
        Ok(())
    }
}

/// A batch fenced off because another writer moved its partition's stored offset: dropped,
/// and the source reads on from the stored offset (not from its own first unfinished one):
/// what the other writer covered is not written here, nothing is written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_batch_makes_the_source_read_on_from_the_stored_offset() {
    let client = pg::client().await;
    let (table, offsets) = ledger(&client).await;
    let topic = create_topic("eo-fenced", 1).await;
    let group = kafka_broker::unique("eo-fenced");
    let messages: Vec<Out> = (0..100).map(|id| Out::value(Bytes::from(serde_json::json!({"id": id, "cents": id}).to_string()))).collect();
    produce_async(&topic, messages).await;
    let source = etl::source::kafka::<Payment>([topic.clone()], group.clone())
        .brokers(brokers())
        .batch_size(10)
        .batch_timeout(Duration::from_millis(50));
    let moved_from = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let sink = Interloper {
        inner: sink(&table, &offsets),
        offsets: offsets.clone(),
        group: group.clone(),
        at: 30,
        to: 60,
        reached: 0,
        moved_from: Arc::clone(&moved_from),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let run = Pipeline::from(source)
        .to(sink)
        .dead_letters(etl::dead_letter::MemoryDeadLetters::new())
        .handle_signals(false)
        .cancel_on(stop.clone())
        .run();
    let run = tokio::spawn(run);
    let sql = format!("SELECT next_offset FROM \"{offsets}\" WHERE group_id = $1");
    common::wait_until_async(common::PATIENCE, "the stored offset to reach the end", || async {
        // No table until the sink has opened.
        client.query_opt(&sql, &[&group]).await.ok().flatten().map(|r| r.get::<_, i64>(0)) == Some(100)
    })
    .await;
    stop.cancel();
    run.await.unwrap().expect("run");
    let ids: Vec<i64> =
        client.query(&format!("SELECT id FROM \"{table}\" ORDER BY id"), &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    // The other writer moved the stored offset from where this one's last commit left it
    // (30, or a batch or more further: the driver commits a few batches at once) to 60.
    let from = moved_from.load(std::sync::atomic::Ordering::SeqCst);
    assert!((30..60).contains(&from), "moved from {from}");
    let want: Vec<i64> = (0..from).chain(60..100).collect();
    assert_eq!(ids, want, "0..{from} written here, {from}..60 by the other writer, 60..100 here after the fence");
    assert_eq!(committed_async(&group, &topic).await, [Some(100)]);
}
