//! `postgres`: write records into a PostgreSQL table with binary `COPY`, one transaction per
//! commit, inserting or upserting.
//!
//! ```no_run
//! use etl::prelude::*;
//! use etl::sink::postgres::Mode;
//! # async fn demo() -> etl::Result<()> {
//! #[derive(Debug, Clone, Record, Serialize, Deserialize)]
//! struct Order { id: i64, customer: String, amount_cents: i64 }
//! let orders = vec![Order { id: 1, customer: "Ada".into(), amount_cents: 1250 }];
//! let sink = etl::sink::postgres("${DATABASE_URL}", "orders").mode(Mode::upsert(&["id"]));
//! Pipeline::from(etl::source::iter(orders)).to(sink).run().await?;
//! # Ok(()) }
//! ```
//!
//! # Start-up checks
//!
//! [`Sink::open`] connects and reads the table's columns from the catalog before the source is
//! opened. It fails (permanently, naming the table and the column) when the table does not
//! exist (unless [`create(true)`](PostgresSink::create), which creates it from the record's
//! schema), when a field of the record has no column, when a column's type cannot hold the
//! field's type (an `i64` into a `text` column is fine, a `String` into a `bigint` is not),
//! when a `NOT NULL` column without a default has no field, when the role may not insert (or,
//! for an upsert, update), and for an upsert when no unique index or constraint covers exactly
//! the key columns.
//!
//! # Columns
//!
//! Typed records (`#[derive(Record)]`) write one column per field, named as serde names the
//! field, in every row. [`Json`](crate::Json) records have no schema: each record writes the
//! columns its keys name (one `COPY` per set of keys in a batch, usually one), the other
//! columns take their defaults (NULL when they have none), and a record with a key that is no
//! column of the table (or a generated one, or one of a type the sink cannot write) is
//! refused. Identifiers are always
//! quoted: names are case-sensitive.
//!
//! Values are converted to the column's type as they are serialized: integers (range-checked)
//! into `smallint`/`integer`/`bigint`, `real`/`double precision` and `numeric`; floats into
//! `real`/`double precision`/`numeric`; booleans; strings into `text`/`varchar`/`char`/enums,
//! `numeric` (a decimal number), `timestamptz` (RFC 3339 with a UTC offset), `timestamp`,
//! `date` (`YYYY-MM-DD`) and `uuid`; bytes into `bytea`; any value into `json`/`jsonb` (nested
//! arrays, maps and structs must go to one of those). `None`, a missing field and a JSON null
//! are NULL. Integers, floats and booleans also go into text columns as their text. Other
//! column types (arrays, ranges, `inet`, `interval`, ...) cannot be written.
//!
//! # What happens to each record
//!
//! * A record that cannot be converted (a string into an integer column, a value out of range,
//!   text with a NUL character, which PostgreSQL text cannot hold, a malformed timestamp) is
//!   refused before anything is sent: it is dead-lettered (through [`Written::rejected`]) with
//!   the reason, naming the column, and the others are written.
//! * A row the database refuses for its data (SQLSTATE class 22 data exception, 23 integrity
//!   constraint violation such as a `CHECK` or a duplicate key, 44, or a trigger's `RAISE`)
//!   is dead-lettered with the database's message: every `COPY` runs under a savepoint, and
//!   when one fails the sink rolls back to it and bisects the batch (around the row the error
//!   names, when it names one) until it has found the refused rows and written the others.
//! * The others are written with `COPY ... FROM STDIN (FORMAT binary)` inside the open
//!   transaction (begun by the first write after a commit, with `SET CONSTRAINTS ALL
//!   IMMEDIATE` so that deferred constraints are checked row by row too). Nothing is visible
//!   to other sessions before [`Sink::commit`], which commits the transaction; the pipeline
//!   acknowledges the batches to their source only after that.
//! * Upsert ([`Mode::Upsert`]): the rows are copied into a temporary staging table of the
//!   session, then `INSERT INTO t SELECT DISTINCT ON (key) ... ON CONFLICT (key) DO UPDATE SET`
//!   every other written column. Two records with the same key in one batch do not fail the
//!   statement: the last one wins. Re-running a batch leaves the same rows: with upsert,
//!   redelivery after a failure writes every row exactly once.
//! * A lost connection, a server restart, a timeout ([`PostgresSink::timeout`]), a
//!   serialization failure or a deadlock (08xxx, 40001, 40P01, 57P0x, ...) is a retryable
//!   error: the transaction is abandoned (its connection closed, so the server rolls it back)
//!   and the pipeline retries. When the lost transaction held batches of earlier writes, the
//!   next commit fails too (retryably), so that the pipeline writes every uncommitted batch
//!   again rather than committing only the last one.
//! * An error a retry cannot fix (42xxx: a column dropped mid-run, a privilege revoked; 28xxx
//!   authentication) is permanent: the run stops and nothing uncommitted is acknowledged.
//!
//! A commit that fails after PostgreSQL received it may have committed: the pipeline then
//! writes those batches again, which an upsert absorbs and an insert duplicates (at-least-once
//! delivery), unless the sink stores the source's positions (below).
//!
//! # Exactly once
//!
//! With [`exactly_once(true)`](PostgresSink::exactly_once) and a source that reports the
//! positions of its batches (the `kafka` source; see [`crate::positions`]), every row is
//! written once, in insert mode too, whatever crashes, restarts and rebalances happen:
//!
//! * At open the sink creates the [offsets table](PostgresSink::offsets_table) when it is
//!   missing (`group_id`, `topic`, `partition`, `next_offset`, `updated_at`; primary key on
//!   the first three) and offers it to the run's source as its position store. The Kafka
//!   source then places every partition it is assigned (at start-up and at each rebalance) at
//!   its stored `next_offset`, ignoring the group's committed offset (a partition without a
//!   row starts at the group's offset, as without exactly-once). It still commits its offsets
//!   to Kafka after each transaction, so the group's lag stays meaningful.
//! * In the transaction of each batch, before its rows, one statement stores the batch's
//!   ranges: per (group, topic, partition), `next_offset` moves from the range's start to the
//!   offset after its last record, **only if it is still at the range's start**
//!   (compare-and-set; a partition without a row gets one). Records filtered out or
//!   dead-lettered on the way, and rows the database refused, are inside the ranges: they are
//!   not read again either. Rows and offsets commit together or not at all.
//! * **Fencing**: a consumer that lost a partition in a rebalance and still writes a batch it
//!   had read finds the offset moved by the partition's new owner (or, if it comes first,
//!   makes the new owner find it moved): that batch is rolled back to its savepoint and
//!   dropped ([`Written::fenced`]), and the consumer that still owns its partitions reads
//!   them again from the stored offsets. A commit that failed after PostgreSQL committed is
//!   caught the same way: the batches written again are fenced off, not duplicated.
//!
//! What is not exactly once: dead-letter entries (written before the transaction commits: a
//! crash in between dead-letters those records again on the next run), side effects of the
//! pipeline's own steps (a `map` stage calling a service runs again for the records read
//! again after a crash), and batches without positions (a `dead-letters replay`, or a source
//! that reports none: written at least once, with a warning).
//!
//! # Connections and secrets
//!
//! Connections come from a [deadpool](deadpool_postgres) pool of at most
//! [`pool_size`](PostgresSink::pool_size) connections, shared by the sinks of a run that use
//! the same URL. A write holds one connection from its transaction's first write to its
//! commit. The URL is `postgres://user:password@host:port/db?options` or the `key=value`
//! form, with `${VAR}` resolved at start-up; its password never appears in logs, errors or
//! `Debug` output. `sslmode=require` needs the `postgres-tls` feature: rustls with ring, and
//! the server's certificate checked against the Mozilla roots plus
//! [`ca_file`](PostgresSink::ca_file) and the host name (stricter than libpq's `require`, like
//! its `verify-full`). `prefer` (the default) and `disable` connect without TLS.

mod encode;
mod offsets;
mod positions;
#[cfg(test)]
mod tests;
mod write;

use super::{Sink, SinkContext, Written};
use crate::config::interpolate;
use crate::error::ConnectorError;
use crate::positions::Positions;
use crate::record::{Meta, Record, Schema};
use crate::resources::Resources;
use bytes::BytesMut;
use deadpool_postgres::Pool;
use encode::{Column, Encoder, Kind, Plan, Target};
use serde::Serialize;
use std::time::Duration;
use write::{Statements, Tls, Transaction};

/// The default [`PostgresSink::schema`]: `public`.
///
/// ```
/// assert_eq!(etl::sink::postgres::DEFAULT_SCHEMA, "public");
/// ```
pub const DEFAULT_SCHEMA: &str = "public";

/// The default [`PostgresSink::mode`]: insert every row.
///
/// ```
/// assert_eq!(etl::sink::postgres::DEFAULT_MODE, etl::sink::postgres::Mode::Insert);
/// ```
pub const DEFAULT_MODE: Mode = Mode::Insert;

/// The default [`PostgresSink::create`]: the table must exist.
///
/// ```
/// assert!(!etl::sink::postgres::DEFAULT_CREATE);
/// ```
pub const DEFAULT_CREATE: bool = false;

/// The default [`PostgresSink::pool_size`]: at most 4 connections.
///
/// ```
/// assert_eq!(etl::sink::postgres::DEFAULT_POOL_SIZE, 4);
/// ```
pub const DEFAULT_POOL_SIZE: usize = 4;

/// The default [`PostgresSink::exactly_once`]: at-least-once delivery.
///
/// ```
/// assert!(!etl::sink::postgres::DEFAULT_EXACTLY_ONCE);
/// ```
pub const DEFAULT_EXACTLY_ONCE: bool = false;

/// The default [`PostgresSink::offsets_table`]: `etl_offsets`, in the sink's schema.
///
/// ```
/// assert_eq!(etl::sink::postgres::DEFAULT_OFFSETS_TABLE, "etl_offsets");
/// ```
pub const DEFAULT_OFFSETS_TABLE: &str = "etl_offsets";

/// The default [`PostgresSink::timeout`]: 30 s for a connection or a statement.
///
/// ```
/// assert_eq!(etl::sink::postgres::DEFAULT_TIMEOUT, std::time::Duration::from_secs(30));
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How rows are written.
///
/// ```
/// use etl::sink::postgres::Mode;
/// assert_eq!(Mode::upsert(&["id"]), Mode::Upsert(vec!["id".to_string()]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `COPY` every row into the table; a row that breaks a constraint (a duplicate key) is
    /// dead-lettered.
    Insert,
    /// Insert a row, or update the row with the same key (these columns, which a unique
    /// index or constraint of the table must cover exactly). The last of several rows with
    /// the same key in a batch wins.
    Upsert(Vec<String>),
}

impl Mode {
    /// Upsert on these key columns.
    ///
    /// ```
    /// let mode = etl::sink::postgres::Mode::upsert(&["tenant", "id"]);
    /// ```
    pub fn upsert(keys: &[&str]) -> Mode {
        Mode::Upsert(keys.iter().map(|k| (*k).to_owned()).collect())
    }

    fn keys(&self) -> &[String] {
        match self {
            Mode::Insert => &[],
            Mode::Upsert(keys) => keys,
        }
    }
}

/// Writes records into a PostgreSQL table. See [`postgres()`] and the [module docs](self).
///
/// ```
/// use etl::sink::postgres::{Mode, PostgresSink};
/// let sink: PostgresSink = etl::sink::postgres("${DATABASE_URL}", "orders").schema("sales").mode(Mode::upsert(&["id"]));
/// assert!(!format!("{sink:?}").contains("DATABASE_URL=")); // Debug never shows a password
/// ```
pub struct PostgresSink {
    url: String,
    table: String,
    schema: String,
    mode: Mode,
    create: bool,
    pool_size: usize,
    timeout: Duration,
    ca_file: Option<String>,
    exactly_once: bool,
    offsets_table: String,
    open: Option<Open>,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("url", &encode::redact(&self.url))
            .field("table", &self.table)
            .field("schema", &self.schema)
            .field("mode", &self.mode)
            .field("create", &self.create)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("exactly_once", &self.exactly_once)
            .field("offsets_table", &self.offsets_table)
            .field("open", &self.open.is_some())
            .finish()
    }
}

/// Write into the table `table` of the database at `url` (`postgres://user:password@host/db`
/// or `host=... user=...`; `${VAR}` resolved at open, which also checks the table).
///
/// ```
/// use etl::Sink;
/// let sink = etl::sink::postgres("postgres://etl:${DB_PASS}@db.local/shop", "orders");
/// assert_eq!(Sink::<etl::Json>::describe(&sink), "postgres sink public.orders");
/// ```
pub fn postgres(url: impl Into<String>, table: impl Into<String>) -> PostgresSink {
    PostgresSink {
        url: url.into(),
        table: table.into(),
        schema: DEFAULT_SCHEMA.into(),
        mode: DEFAULT_MODE,
        create: DEFAULT_CREATE,
        pool_size: DEFAULT_POOL_SIZE,
        timeout: DEFAULT_TIMEOUT,
        ca_file: None,
        exactly_once: DEFAULT_EXACTLY_ONCE,
        offsets_table: DEFAULT_OFFSETS_TABLE.to_owned(),
        open: None,
    }
}

impl PostgresSink {
    /// The table's schema (`${VAR}` resolved at open). Default [`DEFAULT_SCHEMA`] (`public`).
    ///
    /// ```
    /// let sink = etl::sink::postgres("${DATABASE_URL}", "orders").schema("sales");
    /// ```
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Insert or upsert. Default [`DEFAULT_MODE`] (insert).
    ///
    /// ```
    /// use etl::sink::postgres::Mode;
    /// let sink = etl::sink::postgres("${DATABASE_URL}", "orders").mode(Mode::upsert(&["id"]));
    /// ```
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Create the table at open when it does not exist, from the record's schema (typed
    /// records only): one column per field (`i64` → `bigint`, `f64` → `double precision`,
    /// `String` → `text`, `bool` → `boolean`, `DateTime` → `timestamptz`, `Uuid` → `uuid`,
    /// nested values → `jsonb`, ...), `NOT NULL` unless the field is an `Option`, and the
    /// upsert keys as primary key. Default [`DEFAULT_CREATE`] (false).
    ///
    /// ```
    /// let sink = etl::sink::postgres("${DATABASE_URL}", "orders").create(true);
    /// ```
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// The most connections open at once (shared by the sinks of a run with the same URL).
    /// Default [`DEFAULT_POOL_SIZE`] (4).
    ///
    /// ```
    /// let sink = etl::sink::postgres("${DATABASE_URL}", "orders").pool_size(2);
    /// ```
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// The longest wait for a connection, a statement or a commit; past it the transaction is
    /// abandoned and the error is retryable. Default [`DEFAULT_TIMEOUT`] (30 s).
    ///
    /// ```
    /// let sink = etl::sink::postgres("${DATABASE_URL}", "orders").timeout(std::time::Duration::from_secs(10));
    /// ```
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit.max(Duration::from_millis(1));
        self
    }

    /// A PEM file of certificate authorities to trust besides the Mozilla roots, for servers
    /// whose certificate is signed by a private CA (`sslmode=require`; `${VAR}` resolved at
    /// open). Used with the `postgres-tls` feature only; without it, `sslmode=require` is
    /// refused at open. Default: none.
    ///
    /// ```
    /// let sink = etl::sink::postgres("${DATABASE_URL}", "orders").ca_file("/etc/ssl/db-ca.pem");
    /// ```
    pub fn ca_file(mut self, path: impl Into<String>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Exactly-once delivery from a source that reports its positions (the `kafka` source):
    /// each batch's rows and, per (consumer group, topic, partition), the next offset to read
    /// are committed in one transaction, and the source resumes from the stored offsets. See
    /// "Exactly once" in the [module docs](self). Default [`DEFAULT_EXACTLY_ONCE`] (false).
    ///
    /// ```
    /// let sink = etl::sink::postgres("${DATABASE_URL}", "ledger").exactly_once(true);
    /// ```
    pub fn exactly_once(mut self, yes: bool) -> Self {
        self.exactly_once = yes;
        self
    }

    /// The table of stored positions under [`exactly_once`](PostgresSink::exactly_once), in
    /// the sink's [`schema`](PostgresSink::schema) (`${VAR}` resolved at open), created when
    /// missing. Several pipelines (and groups) may share one. Default
    /// [`DEFAULT_OFFSETS_TABLE`] (`etl_offsets`).
    ///
    /// ```
    /// let sink = etl::sink::postgres("${DATABASE_URL}", "ledger").exactly_once(true).offsets_table("ledger_offsets");
    /// ```
    pub fn offsets_table(mut self, table: impl Into<String>) -> Self {
        self.offsets_table = table.into();
        self
    }

    fn component(&self) -> String {
        match &self.open {
            Some(open) => open.component.clone(),
            None => format!("postgres sink {}.{}", crate::config::display(&self.schema), crate::config::display(&self.table)),
        }
    }
}

/// The sink once open: the pool, the table, the SQL, the transaction being filled.
struct Open {
    component: String,
    pool: Pool,
    timeout: Duration,
    /// `"schema"."table"`.
    target: String,
    columns: Vec<Column>,
    keys: Vec<String>,
    /// The upsert's staging table and its row-number column.
    stage: Option<(String, String)>,
    begin: String,
    /// Typed records: the fixed plan and its SQL.
    fixed: Option<Fixed>,
    transaction: Option<Transaction>,
    /// A transaction holding batches of earlier writes was lost: the next commit must fail,
    /// so that the pipeline writes every uncommitted batch again.
    lost: bool,
    /// Exactly-once: the offsets table and its compare-and-set.
    offsets: Option<Offsets>,
    /// A batch without positions was written under exactly-once (said once).
    unpositioned: bool,
    encoder: Encoder,
    buffer: BytesMut,
}

/// The offsets table of exactly-once delivery.
struct Offsets {
    /// The compare-and-set of a batch's ranges ([`offsets::fence_sql`]).
    fence: String,
    /// Offered to the run's source at open.
    store: std::sync::Arc<positions::Stored>,
}

struct Fixed {
    plan: Plan,
    copy: String,
    merge: Option<String>,
}

impl Open {
    fn statements_for(&self, plan: &Plan) -> (String, Option<String>) {
        let names: Vec<&str> = plan.names().collect();
        match &self.stage {
            None => (encode::copy_sql(&self.target, names.iter().copied()), None),
            Some((stage, row)) => {
                let keys: Vec<&str> = self.keys.iter().map(String::as_str).collect();
                (
                    encode::copy_sql(&format!("pg_temp.{}", encode::quote(stage)), names.iter().copied()),
                    Some(encode::merge_sql(&self.target, stage, row, &names, &keys)),
                )
            }
        }
    }

    /// The plans of a batch of dynamic records: one per set of keys (the columns they name, in
    /// the table's order), with the records that have that set, in order. Records with a key
    /// that is no writable column are refused.
    fn dynamic_groups<T: Serialize>(&self, records: &[T], refused: &mut Vec<(usize, String)>) -> Vec<(Plan, Vec<usize>)> {
        let mut groups: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
        let mut names = Vec::new();
        'records: for (i, record) in records.iter().enumerate() {
            names.clear();
            if let Err(e) = record.serialize(encode_names::Names(&mut names)) {
                refused.push((i, e.0));
                continue;
            }
            let mut positions = Vec::with_capacity(names.len());
            for name in &names {
                let reason = match self.columns.iter().position(|c| &c.name == name) {
                    None => format!("field `{name}` is not a column of table {}", self.target),
                    Some(p) if self.columns[p].generated => {
                        format!("column `{name}` of table {} is generated: it cannot be written", self.target)
                    }
                    Some(p) if self.columns[p].kind == Kind::Unsupported => format!(
                        "column `{name}` of table {} is of type {}, which the postgres sink cannot write",
                        self.target, self.columns[p].type_name
                    ),
                    Some(p) => {
                        positions.push(p);
                        continue;
                    }
                };
                refused.push((i, reason));
                continue 'records;
            }
            positions.sort_unstable();
            positions.dedup();
            match groups.iter_mut().find(|(set, _)| *set == positions) {
                Some((_, members)) => members.push(i),
                None => groups.push((positions, vec![i])),
            }
        }
        groups
            .into_iter()
            .map(|(set, members)| (Plan::new(set.iter().map(|&p| target_of(&self.columns[p])).collect(), &self.keys), members))
            .collect()
    }

    async fn write<T: Record>(&mut self, records: &[T], positions: &Positions) -> Result<Written, ConnectorError> {
        if self.offsets.is_some() && positions.is_empty() && !records.is_empty() && !std::mem::replace(&mut self.unpositioned, true) {
            // A replay of dead letters (`dead-letters replay`), or a source that reports no
            // positions: nothing to store, the rows are written at least once.
            tracing::warn!(
                table = %self.target,
                "exactly_once: a batch without source positions (a dead-letter replay, or a source that reports none) is written at least once"
            );
        }
        let mut transaction = self.transaction.take();
        let earlier = transaction.as_ref().map_or(0, |t| t.batches);
        if let Some(offsets) = self.offsets.as_ref().filter(|_| !positions.is_empty()) {
            let mut current = match transaction.take() {
                Some(t) => t,
                None => Transaction::new(write::connection(&self.pool, &self.component).await?),
            };
            let statements = Statements { component: &self.component, timeout: self.timeout, begin: &self.begin, copy: "", merge: None };
            match current.fence(&statements, &offsets.fence, positions).await {
                Ok(fenced) if fenced.is_empty() => transaction = Some(current),
                Ok(fenced) => {
                    tracing::warn!(
                        table = %self.target,
                        group = %positions.consumer,
                        fenced = ?fenced,
                        records = records.len(),
                        "positions moved by another writer since this batch was read: the batch is fenced off (not written)"
                    );
                    self.transaction = Some(current);
                    return Ok(Written::fenced());
                }
                Err(e) => {
                    if earlier > 0 {
                        self.lost = true;
                    }
                    tracing::warn!(error = %e, table = %self.target, lost_batches = earlier, "storing the positions failed; transaction abandoned");
                    current.discard();
                    return Err(e);
                }
            }
        }
        let mut refused = Vec::new();
        let groups = match &self.fixed {
            Some(_) => vec![(None, (0..records.len()).collect::<Vec<_>>())],
            None => self.dynamic_groups(records, &mut refused).into_iter().map(|(plan, members)| (Some(plan), members)).collect(),
        };
        for (plan, members) in groups {
            let (plan, copy, merge) = match (plan, &self.fixed) {
                (Some(plan), _) => {
                    let (copy, merge) = self.statements_for(&plan);
                    (std::borrow::Cow::Owned(plan), std::borrow::Cow::Owned(copy), merge.map(std::borrow::Cow::Owned))
                }
                (None, Some(fixed)) => (
                    std::borrow::Cow::Borrowed(&fixed.plan),
                    std::borrow::Cow::Borrowed(fixed.copy.as_str()),
                    fixed.merge.as_deref().map(std::borrow::Cow::Borrowed),
                ),
                (None, None) => return Err(ConnectorError::permanent(self.component.clone(), "no plan (a bug of the sink)")),
            };
            self.encoder.clear();
            for i in members {
                if let Err(reason) = self.encoder.push(&plan, i, &records[i]) {
                    refused.push((i, reason));
                }
            }
            if self.encoder.rows.is_empty() {
                continue;
            }
            let mut current = match transaction.take() {
                Some(t) => t,
                None => Transaction::new(write::connection(&self.pool, &self.component).await?),
            };
            let statements =
                Statements { component: &self.component, timeout: self.timeout, begin: &self.begin, copy: &copy, merge: merge.as_deref() };
            match write::write_rows(&mut current, &statements, &self.encoder.body, &self.encoder.rows, &mut self.buffer).await {
                Ok(more) => {
                    refused.extend(more);
                    transaction = Some(current);
                }
                Err(e) => {
                    if earlier > 0 {
                        self.lost = true;
                    }
                    tracing::warn!(error = %e, table = %self.target, lost_batches = earlier, "write failed; transaction abandoned");
                    current.discard();
                    return Err(e);
                }
            }
        }
        if let Some(t) = &mut transaction {
            t.batches = earlier + 1;
        }
        self.transaction = transaction;
        refused.sort_by_key(|(i, _)| *i);
        tracing::debug!(table = %self.target, records = records.len(), refused = refused.len(), "batch written (uncommitted)");
        Ok(Written::rejecting(refused))
    }

    async fn commit(&mut self) -> Result<(), ConnectorError> {
        if std::mem::take(&mut self.lost) {
            if let Some(transaction) = self.transaction.take() {
                transaction.discard();
            }
            return Err(ConnectorError::retryable(
                self.component.clone(),
                "the connection was lost with uncommitted batches in its transaction; they must be written again",
            ));
        }
        let Some(transaction) = self.transaction.take() else { return Ok(()) };
        let batches = transaction.batches;
        transaction.commit(&self.component, self.timeout).await?;
        tracing::debug!(table = %self.target, batches, "committed");
        Ok(())
    }
}

fn target_of(c: &Column) -> Target {
    Target { name: c.name.clone(), type_name: c.type_name.clone(), kind: c.kind }
}

/// Collects the field names of a record (a struct or a map) without serializing the values.
mod encode_names {
    use super::encode::EncodeError;
    use serde::ser::{self, Impossible, Serialize};

    pub(super) struct Names<'a>(pub &'a mut Vec<String>);

    const NOT_A_ROW: &str = "the postgres sink writes records that serialize as a struct or a map, one field per column";

    macro_rules! refuse {
        ($($name:ident($($arg:ty),*)),* $(,)?) => {
            $(fn $name(self, $(_: $arg),*) -> Result<(), EncodeError> { Err(EncodeError(NOT_A_ROW.into())) })*
        };
    }

    impl<'a> ser::Serializer for Names<'a> {
        type Ok = ();
        type Error = EncodeError;
        type SerializeSeq = Impossible<(), EncodeError>;
        type SerializeTuple = Impossible<(), EncodeError>;
        type SerializeTupleStruct = Impossible<(), EncodeError>;
        type SerializeTupleVariant = Impossible<(), EncodeError>;
        type SerializeMap = Self;
        type SerializeStruct = Self;
        type SerializeStructVariant = Impossible<(), EncodeError>;

        refuse!(
            serialize_bool(bool),
            serialize_i8(i8),
            serialize_i16(i16),
            serialize_i32(i32),
            serialize_i64(i64),
            serialize_u8(u8),
            serialize_u16(u16),
            serialize_u32(u32),
            serialize_u64(u64),
            serialize_f32(f32),
            serialize_f64(f64),
            serialize_char(char),
            serialize_str(&str),
            serialize_bytes(&[u8]),
            serialize_none(),
            serialize_unit(),
            serialize_unit_struct(&'static str),
            serialize_unit_variant(&'static str, u32, &'static str),
        );

        fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
            value.serialize(self)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), EncodeError> {
            value.serialize(self)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<(), EncodeError> {
            Err(EncodeError(NOT_A_ROW.into()))
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, EncodeError> {
            Err(EncodeError(NOT_A_ROW.into()))
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, EncodeError> {
            Err(EncodeError(NOT_A_ROW.into()))
        }
        fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, EncodeError> {
            Err(EncodeError(NOT_A_ROW.into()))
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, EncodeError> {
            Err(EncodeError(NOT_A_ROW.into()))
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self, EncodeError> {
            Ok(self)
        }
        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
            Ok(self)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, EncodeError> {
            Err(EncodeError(NOT_A_ROW.into()))
        }
    }

    impl ser::SerializeStruct for Names<'_> {
        type Ok = ();
        type Error = EncodeError;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, _: &T) -> Result<(), EncodeError> {
            self.0.push(key.to_owned());
            Ok(())
        }
        fn end(self) -> Result<(), EncodeError> {
            Ok(())
        }
    }

    impl ser::SerializeMap for Names<'_> {
        type Ok = ();
        type Error = EncodeError;
        fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
            match serde_json::to_value(key) {
                Ok(serde_json::Value::String(s)) => {
                    self.0.push(s);
                    Ok(())
                }
                _ => Err(EncodeError(format!("a map key that is not a string: {NOT_A_ROW}"))),
            }
        }
        fn serialize_value<T: Serialize + ?Sized>(&mut self, _: &T) -> Result<(), EncodeError> {
            Ok(())
        }
        fn end(self) -> Result<(), EncodeError> {
            Ok(())
        }
    }
}

impl PostgresSink {
    async fn ensure_open(&mut self, schema: &'static Schema, resources: &Resources) -> Result<&mut Open, ConnectorError> {
        if self.open.is_none() {
            self.open = Some(self.connect(schema, resources).await?);
        }
        let component = self.component();
        self.open.as_mut().ok_or_else(|| ConnectorError::permanent(component, "not open (a bug of the sink)"))
    }

    async fn connect(&self, schema: &'static Schema, resources: &Resources) -> Result<Open, ConnectorError> {
        let early = self.component();
        let resolve = |text: &str| interpolate(text).map_err(|e| ConnectorError::permanent(early.clone(), e));
        let (url, table, schema_name) = (resolve(&self.url)?, resolve(&self.table)?, resolve(&self.schema)?);
        let component = format!("postgres sink {schema_name}.{table}");
        let permanent = |message: String| ConnectorError::permanent(component.clone(), message);
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| permanent(format!("invalid url `{}`: {e}", encode::redact(&url))))?;
        if config.get_application_name().is_none() {
            config.application_name("etl");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.timeout);
        }
        let tls = self.tls(&config, &component)?;
        let key = format!("postgres {url} pool {}", self.pool_size);
        let (size, limit) = (self.pool_size, self.timeout);
        let pool: Pool = resources.get_or_try_init(&key, || async { write::pool(config, tls, size, limit, &component) }).await?;
        let client = write::connection(&pool, &component).await?;
        let target = encode::qualified(&schema_name, &table);
        let mut keys: Vec<String> = Vec::new();
        for key in self.mode.keys() {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        if matches!(self.mode, Mode::Upsert(_)) && keys.is_empty() {
            return Err(permanent("an upsert needs at least one key column: Mode::upsert(&[\"id\"])".into()));
        }
        let fields: Vec<(&str, &str)> = schema.fields.iter().map(|f| (f.name, f.ty)).collect();
        let mut info = write::table_info(&client, &schema_name, &table, &component, limit).await?;
        if info.is_none() && self.create {
            if schema.is_dynamic() {
                return Err(permanent(format!(
                    "table {schema_name}.{table} does not exist, and `create = true` needs a typed record (#[derive(Record)]) to know its columns; {} records have none",
                    schema.name
                )));
            }
            let sql = encode::create_table_sql(&target, &fields, &keys);
            tracing::info!(table = %target, %sql, "creating the table");
            let created = write::timed(&component, "creating the table", limit, client.batch_execute(&sql)).await;
            info = write::table_info(&client, &schema_name, &table, &component, limit).await?;
            match created {
                // Two pipelines starting together: `IF NOT EXISTS` does not stop PostgreSQL
                // from failing the second CREATE (a unique violation in its catalog) while the
                // first commits; the table is there, which is what was asked.
                Err(e) if info.is_some() => {
                    tracing::debug!(table = %target, error = %e, "the table was created by another session meanwhile")
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
        let Some(info) = info else {
            return Err(permanent(format!("table {schema_name}.{table} does not exist (create it, or set `create = true`)")));
        };
        if !matches!(info.relkind.as_str(), "r" | "p") {
            return Err(permanent(format!("{schema_name}.{table} is not a table (relkind `{}`): the sink writes with COPY", info.relkind)));
        }
        if !info.can_insert {
            return Err(permanent(format!("the role may not INSERT into table {schema_name}.{table}")));
        }
        let columns = info.columns;
        let column = |name: &str| columns.iter().find(|c| c.name == name);
        let did_you_mean = |name: &str| {
            columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
                .map(|c| format!(" (did you mean `{}`? names are case-sensitive)", c.name))
                .unwrap_or_default()
        };
        if !keys.is_empty() {
            if !info.can_update {
                return Err(permanent(format!("the role may not UPDATE table {schema_name}.{table}, which an upsert needs")));
            }
            for key in &keys {
                if column(key).is_none() {
                    return Err(permanent(format!(
                        "the upsert key `{key}` is not a column of table {schema_name}.{table}{}",
                        did_you_mean(key)
                    )));
                }
                if !schema.is_dynamic() && !fields.iter().any(|(name, _)| name == key) {
                    return Err(permanent(format!("the upsert key `{key}` is not a field of {}", schema.name)));
                }
            }
            let mut wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
            wanted.sort_unstable();
            wanted.dedup();
            let unique = write::unique_keys(&client, info.oid, &component, limit).await?;
            if !unique.iter().any(|index| index.iter().map(String::as_str).eq(wanted.iter().copied())) {
                return Err(permanent(format!(
                    "table {schema_name}.{table} has no unique index or constraint on exactly ({}), which `ON CONFLICT` needs for an upsert \
                     (add one: ALTER TABLE {target} ADD UNIQUE ({}); unique indexes found: {unique:?})",
                    wanted.join(", "),
                    wanted.iter().map(|k| encode::quote(k)).collect::<Vec<_>>().join(", "),
                )));
            }
        }
        let fixed = if schema.is_dynamic() {
            let unsupported: Vec<String> =
                columns.iter().filter(|c| c.kind == Kind::Unsupported).map(|c| format!("{} ({})", c.name, c.type_name)).collect();
            if !unsupported.is_empty() {
                tracing::warn!(table = %target, ?unsupported, "records with these fields will be refused: the sink cannot write these column types");
            }
            None
        } else {
            let mut targets = Vec::with_capacity(fields.len());
            for (name, ty) in &fields {
                let Some(c) = column(name) else {
                    return Err(permanent(format!(
                        "table {schema_name}.{table} has no column `{name}` for field `{name}` of {}{}",
                        schema.name,
                        did_you_mean(name)
                    )));
                };
                if c.generated {
                    return Err(permanent(format!(
                        "column `{name}` of table {schema_name}.{table} is a generated column: field `{name}` of {} cannot be written to it",
                        schema.name
                    )));
                }
                let (inner, _) = encode::strip_option(ty);
                if !encode::compatible(encode::field_kind(&inner), c.kind) {
                    return Err(permanent(format!(
                        "column `{name}` of table {schema_name}.{table} is of type {}, which cannot hold field `{name}` of {} (Rust type {ty})",
                        c.type_name, schema.name
                    )));
                }
                targets.push(target_of(c));
            }
            if let Some(c) =
                columns.iter().find(|c| c.not_null && !c.has_default && !c.generated && !fields.iter().any(|(n, _)| *n == c.name))
            {
                return Err(permanent(format!(
                    "column `{}` of table {schema_name}.{table} is NOT NULL without a default, and {} has no field `{}`",
                    c.name, schema.name, c.name
                )));
            }
            Some(Plan::new(targets, &keys))
        };
        let offsets = if self.exactly_once {
            let offsets_table = resolve(&self.offsets_table)?;
            let offsets_target = encode::qualified(&schema_name, &offsets_table);
            positions::prepare_table(&client, &offsets_target, &component, limit).await?;
            tracing::info!(table = %target, offsets = %offsets_target, "exactly-once: positions are stored with the rows");
            let store =
                positions::Stored { pool: pool.clone(), target: offsets_target.clone(), component: component.clone(), timeout: limit };
            Some(Offsets { fence: offsets::fence_sql(&offsets_target), store: std::sync::Arc::new(store) })
        } else {
            None
        };
        drop(client);
        let stage = (!keys.is_empty()).then(|| (encode::stage_name(&schema_name, &table), encode::row_number_column(&columns)));
        let create_stage = stage.as_ref().map(|(name, row)| encode::create_stage_sql(name, &columns, row));
        let begin = write::begin_sql(create_stage.as_deref());
        tracing::info!(table = %target, columns = columns.len(), mode = ?self.mode, typed = fixed.is_some(), "postgres sink opened");
        let mut open = Open {
            component,
            pool,
            timeout: limit,
            target,
            columns,
            keys,
            stage,
            begin,
            fixed: None,
            transaction: None,
            lost: false,
            offsets,
            unpositioned: false,
            encoder: Encoder::default(),
            buffer: BytesMut::new(),
        };
        if let Some(plan) = fixed {
            let (copy, merge) = open.statements_for(&plan);
            open.fixed = Some(Fixed { plan, copy, merge });
        }
        Ok(open)
    }

    #[cfg(not(feature = "postgres-tls"))]
    fn tls(&self, config: &tokio_postgres::Config, component: &str) -> Result<Tls, ConnectorError> {
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(ConnectorError::permanent(
                component.to_owned(),
                "`sslmode=require` needs etl's `postgres-tls` cargo feature (TLS with rustls)",
            ));
        }
        Ok(Tls::None)
    }

    #[cfg(feature = "postgres-tls")]
    fn tls(&self, config: &tokio_postgres::Config, component: &str) -> Result<Tls, ConnectorError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        if config.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
            // `prefer` (the default) and `disable`: plain TCP, as without the feature. libpq's
            // `prefer` would try TLS without checking the certificate; a TLS connection that
            // checks nothing protects nothing, so TLS here is asked for explicitly.
            return Ok(Tls::None);
        }
        let permanent = |message: String| ConnectorError::permanent(component.to_owned(), message);
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &self.ca_file {
            let path = interpolate(path).map_err(|e| permanent(e.to_string()))?;
            let certs = CertificateDer::pem_file_iter(&path).map_err(|e| permanent(format!("ca_file {path}: {e}")))?;
            for cert in certs {
                let cert = cert.map_err(|e| permanent(format!("ca_file {path}: {e}")))?;
                roots.add(cert).map_err(|e| permanent(format!("ca_file {path}: {e}")))?;
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| permanent(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new(tls)))
    }
}

impl<T: Record + Sync> Sink<T> for PostgresSink {
    fn describe(&self) -> String {
        self.component()
    }

    async fn open(&mut self, ctx: SinkContext) -> Result<(), ConnectorError> {
        let open = self.ensure_open(T::schema(), &ctx.resources).await?;
        if let Some(offsets) = &open.offsets {
            if !ctx.offer_positions(offsets.store.clone()) {
                return Err(ConnectorError::permanent(
                    open.component.clone(),
                    "`exactly_once`: another sink of this run stores the source's positions already; a run has one",
                ));
            }
        }
        Ok(())
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        self.write_positioned(records, &[], &Positions::default()).await
    }

    async fn write_positioned(&mut self, records: &[T], _meta: &[Meta], positions: &Positions) -> Result<Written, ConnectorError> {
        // Opened by the pipeline; a sink used on its own opens with resources of its own.
        let open = self.ensure_open(T::schema(), &Resources::default()).await?;
        open.write(records, positions).await
    }

    async fn commit(&mut self) -> Result<(), ConnectorError> {
        match &mut self.open {
            Some(open) => open.commit().await,
            None => Ok(()),
        }
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(open) = &mut self.open {
            if let Some(transaction) = open.transaction.take() {
                tracing::warn!(table = %open.target, "closed with an uncommitted transaction: rolled back");
                transaction.discard();
            }
        }
        Ok(())
    }
}
