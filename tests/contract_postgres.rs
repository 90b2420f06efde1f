//! The connector contract (tests/common/contract.rs) for the PostgreSQL sink against a real
//! server (`DATABASE_URL`, see tests/common/postgres.rs; a server that does not answer is a
//! failure saying how to start it).
//!
//! Failures are real ones of the connection: the sink reaches PostgreSQL through the loopback
//! TCP fault proxy (tests/common/proxy.rs), and the harness's hook drops the sink's
//! connections just before the calls that must fail, so that the statement they send never
//! reaches the server (the write's `COPY`, the `COMMIT`). The table has a primary key on `n`
//! and the sink inserts: a record written twice would be refused by the table (and the run
//! report would say so); `read_back` checks, besides the contract's at-least-once promise,
//! that every record is in the table exactly once (a failed commit rolls everything back and
//! the pipeline writes every uncommitted batch again).

mod common;
#[path = "common/postgres.rs"]
mod pg;
#[path = "common/proxy.rs"]
mod proxy;

use common::contract::{Hook, Phase, Promise, SinkHarness};
use etl::Json;
use serde_json::json;

struct PostgresHarness {
    table: String,
    proxy: proxy::TcpProxy,
    client: tokio_postgres::Client,
}

impl PostgresHarness {
    async fn new() -> Self {
        let client = pg::client().await;
        let table = pg::unique("contract");
        pg::exec(&client, &format!("CREATE TABLE \"{table}\" (n bigint PRIMARY KEY, text text NOT NULL, multiline text NOT NULL)")).await;
        let proxy = proxy::TcpProxy::start(pg::address(&pg::database_url())).await;
        PostgresHarness { table, proxy, client }
    }
}

impl SinkHarness for PostgresHarness {
    type Sink = etl::sink::PostgresSink;

    fn name(&self) -> String {
        "postgres".into()
    }

    fn promise(&self) -> Promise {
        Promise::AtLeastOnce
    }

    async fn fail(&mut self, phase: Phase, times: usize) -> Option<Hook> {
        let proxy = self.proxy.clone();
        let mut left = times;
        Some(Box::new(move |called, outcome| {
            if called == phase && outcome.is_none() && left > 0 {
                left -= 1;
                // Whatever the sink sends next never reaches the server.
                proxy.reset_connections();
            }
        }))
    }

    async fn sink(&mut self) -> Self::Sink {
        etl::sink::postgres(pg::url_via(self.proxy.addr), &self.table)
    }

    async fn read_back(&mut self) -> Vec<Vec<Json>> {
        let rows =
            self.client.query(&format!("SELECT n, text, multiline FROM \"{}\" ORDER BY n", self.table), &[]).await.expect("read back");
        let records: Vec<Json> = rows
            .iter()
            .map(|r| {
                let (n, text, multiline): (i64, String, String) = (r.get(0), r.get(1), r.get(2));
                serde_json::from_value(json!({"n": n, "text": text, "multiline": multiline})).expect("a record")
            })
            .collect();
        let mut numbers: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        numbers.dedup();
        assert_eq!(numbers.len(), rows.len(), "every record once (the primary key)");
        records.into_iter().map(|r| vec![r]).collect()
    }
}

common::contract::sink_contract!(PostgresHarness::new().await);
