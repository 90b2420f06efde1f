//! The I/O of the PostgreSQL sink: the connection pool, the catalog queries of `open`, and the
//! transaction that `write` fills (binary `COPY` under a savepoint, bisected on a data error)
//! and `commit` commits.

use super::encode::{classify, Class, Column, Kind, COPY_HEADER, COPY_TRAILER};
use super::offsets;
use crate::error::ConnectorError;
use crate::positions::{OffsetRange, Positions};
use bytes::{BufMut, BytesMut};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use futures::SinkExt;
use std::future::Future;
use std::ops::Range;
use std::time::Duration;

/// The savepoint every attempt runs under.
const SAVEPOINT: &str = "etl_batch";

/// Why an attempt failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The database refused the data of (one of) the rows: find it, dead-letter it.
    Data(String),
    /// Anything else: the transaction is gone; the error says whether a retry can help.
    Other(ConnectorError),
}

/// How an error of the database reads in a dead-letter entry or a log line: its message,
/// SQLSTATE, detail, and the constraint, column and context it names.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else { return e.to_string() };
    let mut out = format!("{} (SQLSTATE {}", db.message(), db.code().code());
    if let Some(detail) = db.detail() {
        out.push_str(&format!("; {detail}"));
    }
    if let Some(constraint) = db.constraint() {
        out.push_str(&format!("; constraint `{constraint}`"));
    }
    if let Some(column) = db.column() {
        out.push_str(&format!("; column `{column}`"));
    }
    if let Some(place) = db.where_() {
        out.push_str(&format!("; {place}"));
    }
    out.push(')');
    out
}

/// The class of an error: a database error by its SQLSTATE; anything without one (the
/// connection closed, an I/O error) is retryable.
pub(super) fn class_of(e: &tokio_postgres::Error) -> Class {
    e.code().map_or(Class::Retryable, |code| classify(code.code()))
}

/// A connector error for `e`, met while doing `what`.
pub(super) fn connector_error(component: &str, what: &str, e: &tokio_postgres::Error) -> ConnectorError {
    let message = format!("{what}: {}", describe(e));
    match class_of(e) {
        Class::Retryable => ConnectorError::retryable(component.to_owned(), message),
        Class::Data | Class::Permanent => ConnectorError::permanent(component.to_owned(), message),
    }
}

/// Await `future` at most `limit`; a timeout is a retryable error.
pub(super) async fn timed<T>(
    component: &str,
    what: &str,
    limit: Duration,
    future: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, ConnectorError> {
    match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(connector_error(component, what, &e)),
        Err(_) => Err(ConnectorError::retryable(component.to_owned(), format!("{what}: no answer from PostgreSQL within {limit:?}"))),
    }
}

/// A pool of connections to the database of `config`.
pub(super) fn pool(
    config: tokio_postgres::Config,
    tls: Tls,
    size: usize,
    timeout: Duration,
    component: &str,
) -> Result<Pool, ConnectorError> {
    let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = match tls {
        Tls::None => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        #[cfg(feature = "postgres-tls")]
        Tls::Rustls(connector) => Manager::from_config(config, connector, manager_config),
    };
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(|e| ConnectorError::permanent(component.to_owned(), format!("cannot build the connection pool: {e}")))
}

/// How connections are secured.
pub(super) enum Tls {
    /// Plain TCP (or TLS refused by `sslmode=require` at open, without the `postgres-tls`
    /// feature).
    None,
    /// rustls with ring.
    #[cfg(feature = "postgres-tls")]
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

/// A connection from the pool.
pub(super) async fn connection(pool: &Pool, component: &str) -> Result<Object, ConnectorError> {
    pool.get().await.map_err(|e| match e {
        PoolError::Backend(e) => connector_error(component, "connecting to PostgreSQL", &e),
        PoolError::Timeout(kind) => {
            ConnectorError::retryable(component.to_owned(), format!("connecting to PostgreSQL: timed out ({kind:?})"))
        }
        other => ConnectorError::retryable(component.to_owned(), format!("connecting to PostgreSQL: {other}")),
    })
}

/// What the catalog says about the table.
pub(super) struct TableInfo {
    pub oid: u32,
    /// `r` table, `p` partitioned table, `v` view, ...
    pub relkind: String,
    pub columns: Vec<Column>,
    pub can_insert: bool,
    pub can_update: bool,
}

/// The table's columns, types and privileges; `None` when there is no such relation.
pub(super) async fn table_info(
    client: &Object,
    schema: &str,
    table: &str,
    component: &str,
    limit: Duration,
) -> Result<Option<TableInfo>, ConnectorError> {
    let relation = timed(
        component,
        "reading the catalog",
        limit,
        client.query_opt(
            "SELECT c.oid, c.relkind::text, has_table_privilege(c.oid, 'INSERT'), has_table_privilege(c.oid, 'UPDATE') \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema, &table],
        ),
    )
    .await?;
    let Some(relation) = relation else { return Ok(None) };
    let oid: u32 = relation.get(0);
    let rows = timed(
        component,
        "reading the table's columns",
        limit,
        client.query(
            "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), \
                    COALESCE(b.typname, t.typname)::text, \
                    (CASE WHEN t.typtype = 'd' THEN b.typtype ELSE t.typtype END)::text, \
                    a.attnotnull, a.atthasdef, a.attgenerated <> '' \
             FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_catalog.pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        ),
    )
    .await?;
    let columns = rows
        .iter()
        .map(|r| {
            let typname: String = r.get(2);
            let typtype: String = r.get(3);
            Column {
                name: r.get(0),
                type_name: r.get(1),
                kind: Kind::of(&typname, &typtype),
                not_null: r.get(4),
                has_default: r.get(5),
                generated: r.get(6),
            }
        })
        .collect();
    Ok(Some(TableInfo { oid, relkind: relation.get(1), columns, can_insert: relation.get(2), can_update: relation.get(3) }))
}

/// The column sets of the table's unique indexes that `ON CONFLICT (columns)` can use: not
/// partial, not on expressions, not deferrable.
pub(super) async fn unique_keys(client: &Object, oid: u32, component: &str, limit: Duration) -> Result<Vec<Vec<String>>, ConnectorError> {
    let rows = timed(
        component,
        "reading the table's unique indexes",
        limit,
        client.query(
            "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
             WHERE i.indrelid = $1 AND i.indisunique AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL \
             GROUP BY i.indexrelid",
            &[&oid],
        ),
    )
    .await?;
    Ok(rows.iter().map(|r| r.get::<_, Vec<String>>(0)).collect())
}

/// Where the transaction stands with its savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing sent yet: the next attempt begins the transaction.
    Begin,
    /// The savepoint was just set: the next attempt runs under it.
    Clean,
    /// An attempt succeeded under the savepoint: release it and set a new one.
    Dirty,
    /// An attempt failed: roll back to the savepoint before anything else.
    Failed,
}

/// An open transaction on a connection of the pool, filled by writes until a commit.
pub(super) struct Transaction {
    conn: Object,
    step: Step,
    /// Writes (batches) that succeeded in this transaction.
    pub batches: usize,
}

impl Transaction {
    pub(super) fn new(conn: Object) -> Transaction {
        Transaction { conn, step: Step::Begin, batches: 0 }
    }

    /// Drop the connection instead of returning it to the pool: the server rolls back what
    /// it held, and a connection in an unknown state is never reused.
    pub(super) fn discard(self) {
        drop(Object::take(self.conn));
    }

    /// Commit: everything written in this transaction becomes durable. The connection goes
    /// back to the pool on success and is discarded on failure.
    pub(super) async fn commit(self, component: &str, limit: Duration) -> Result<(), ConnectorError> {
        let sql = match self.step {
            Step::Begin => return Ok(()),
            // The last attempt failed: its savepoint must be rolled back, or COMMIT would roll
            // back the whole transaction (and answer as if it had committed).
            Step::Failed => "ROLLBACK TO SAVEPOINT etl_batch; COMMIT",
            Step::Clean | Step::Dirty => "COMMIT",
        };
        match timed(component, "committing", limit, self.conn.batch_execute(sql)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.discard();
                Err(e)
            }
        }
    }

    /// Store the batch's positions with the compare-and-set `fence` (see
    /// [`offsets::fence_sql`]), under the savepoint, before its rows. Returns the ranges that
    /// were fenced (another writer moved their partitions): when there are any, nothing of the
    /// statement stays (the savepoint is rolled back at the next step) and the batch must not
    /// be written. An error of the statement leaves the transaction to be abandoned.
    pub(super) async fn fence<'p>(
        &mut self,
        statements: &Statements<'_>,
        fence: &str,
        positions: &'p Positions,
    ) -> Result<Vec<&'p OffsetRange>, ConnectorError> {
        let (component, limit) = (statements.component, statements.timeout);
        let prefix = self.prefix(statements.begin);
        if !prefix.is_empty() {
            timed(component, "starting a batch", limit, self.conn.batch_execute(prefix)).await?;
            self.step = Step::Clean;
        }
        self.step = Step::Failed;
        let statement = timed(component, "preparing the positions' compare-and-set", limit, self.conn.prepare_cached(fence)).await?;
        let args = offsets::FenceArgs::of(positions);
        let group: &str = &positions.consumer;
        let rows = timed(
            component,
            "storing the positions",
            limit,
            self.conn.query(&statement, &[&group, &args.topics, &args.partitions, &args.from, &args.to]),
        )
        .await?;
        let stored: Vec<(String, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let fenced = offsets::fenced(positions, &stored);
        if fenced.is_empty() {
            self.step = Step::Dirty;
        }
        Ok(fenced)
    }

    /// What runs before an attempt, from where the transaction stands.
    fn prefix<'a>(&self, begin: &'a str) -> &'a str {
        match self.step {
            Step::Begin => begin,
            Step::Clean => "",
            Step::Dirty => "RELEASE SAVEPOINT etl_batch; SAVEPOINT etl_batch",
            Step::Failed => "ROLLBACK TO SAVEPOINT etl_batch",
        }
    }

    /// Write `rows` (ranges of `body`, consecutive) with one `COPY` under the savepoint, then
    /// run `merge` (upsert). On a data error the savepoint is rolled back at the next step.
    pub(super) async fn attempt(
        &mut self,
        statements: &Statements<'_>,
        body: &[u8],
        rows: &[(usize, Range<usize>)],
        buffer: &mut BytesMut,
    ) -> Result<(), Failure> {
        let (component, limit) = (statements.component, statements.timeout);
        let other = Failure::Other;
        let prefix = self.prefix(statements.begin);
        if !prefix.is_empty() {
            timed(component, "starting a batch", limit, self.conn.batch_execute(prefix)).await.map_err(other)?;
            self.step = Step::Clean;
        }
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else { return Ok(()) };
        buffer.clear();
        buffer.reserve(COPY_HEADER.len() + (last.1.end - first.1.start) + COPY_TRAILER.len());
        buffer.put_slice(COPY_HEADER);
        buffer.put_slice(&body[first.1.start..last.1.end]);
        buffer.put_slice(COPY_TRAILER);
        let message = buffer.split().freeze();
        // From here on a failure leaves the savepoint to roll back.
        self.step = Step::Failed;
        let statement = timed(component, "preparing COPY", limit, self.conn.prepare_cached(statements.copy)).await.map_err(other)?;
        let copy = async {
            let sink = self.conn.copy_in::<_, bytes::Bytes>(&statement).await?;
            futures::pin_mut!(sink);
            sink.send(message).await?;
            sink.finish().await
        };
        let copied = tokio::time::timeout(limit, copy).await;
        data_or_other(component, "COPY", limit, copied)?;
        if let Some(merge) = statements.merge {
            let merged = tokio::time::timeout(limit, self.conn.batch_execute(merge)).await;
            data_or_other(component, "upserting the staged rows", limit, merged)?;
        }
        self.step = Step::Dirty;
        Ok(())
    }
}

/// A data error as [`Failure::Data`]; anything else (a timeout among them) as
/// [`Failure::Other`].
fn data_or_other<T>(
    component: &str,
    what: &str,
    limit: Duration,
    result: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
) -> Result<(), Failure> {
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if class_of(&e) == Class::Data => Err(Failure::Data(describe(&e))),
        Ok(Err(e)) => Err(Failure::Other(connector_error(component, what, &e))),
        Err(_) => Err(Failure::Other(ConnectorError::retryable(
            component.to_owned(),
            format!("{what}: no answer from PostgreSQL within {limit:?}"),
        ))),
    }
}

/// The SQL of one write.
pub(super) struct Statements<'a> {
    pub component: &'a str,
    pub timeout: Duration,
    /// `BEGIN; SET CONSTRAINTS ALL IMMEDIATE; [create the staging table;] SAVEPOINT etl_batch`.
    pub begin: &'a str,
    pub copy: &'a str,
    pub merge: Option<&'a str>,
}

/// The first statements of a transaction: deferred constraints are checked at each
/// statement, so that a row that breaks one is found by its `COPY` (and dead-lettered) rather
/// than failing the commit of every batch.
pub(super) fn begin_sql(create_stage: Option<&str>) -> String {
    match create_stage {
        Some(create) => format!("BEGIN; SET CONSTRAINTS ALL IMMEDIATE; {create}; SAVEPOINT {SAVEPOINT}"),
        None => format!("BEGIN; SET CONSTRAINTS ALL IMMEDIATE; SAVEPOINT {SAVEPOINT}"),
    }
}

/// Write `rows` (record index, bytes in `body`) in `transaction`, finding the rows the
/// database refuses by bisection: a failed range is split in two (around the row named by the
/// error's `COPY ..., line N` when there is one) and each part tried again under the
/// savepoint, down to single rows, which are refused. Returns the refused rows.
pub(super) async fn write_rows(
    transaction: &mut Transaction,
    statements: &Statements<'_>,
    body: &[u8],
    rows: &[(usize, Range<usize>)],
    buffer: &mut BytesMut,
) -> Result<Vec<(usize, String)>, ConnectorError> {
    let mut refused = Vec::new();
    let mut pending: Vec<Range<usize>> = Vec::new();
    pending.push(0..rows.len());
    let mut attempts = 0usize;
    while let Some(range) = pending.pop() {
        if range.is_empty() {
            continue;
        }
        attempts += 1;
        match transaction.attempt(statements, body, &rows[range.clone()], buffer).await {
            Ok(()) => {}
            Err(Failure::Other(e)) => return Err(e),
            Err(Failure::Data(reason)) if range.len() == 1 => {
                tracing::debug!(record = rows[range.start].0, %reason, "row refused by the database");
                refused.push((rows[range.start].0, reason));
            }
            Err(Failure::Data(reason)) => {
                // Split around the named row, or in halves; the parts go back in order.
                let named = copy_line(&reason).filter(|line| *line >= 1 && *line <= range.len()).map(|line| range.start + line - 1);
                let parts = match named {
                    Some(row) => vec![range.start..row, row..row + 1, row + 1..range.end],
                    None => {
                        let mid = range.start + range.len() / 2;
                        vec![range.start..mid, mid..range.end]
                    }
                };
                pending.extend(parts.into_iter().rev());
            }
        }
    }
    if !refused.is_empty() {
        tracing::warn!(refused = refused.len(), rows = rows.len(), attempts, "rows refused by the database");
    }
    Ok(refused)
}

/// The row number of `COPY ..., line N` in an error's context.
pub(super) fn copy_line(reason: &str) -> Option<usize> {
    let at = reason.find("COPY ")?;
    let rest = &reason[at..];
    let line = rest.find(", line ")?;
    let digits: String = rest[line + 7..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
