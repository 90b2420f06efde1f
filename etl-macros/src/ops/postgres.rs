//! `postgres(url = "..", table = "..", mode = upsert(id))`: a sink writing records into a
//! PostgreSQL table with binary COPY (feature `postgres`).

use super::{ArgSpec, Build, Category, Kind, Op, Typing};

/// The `postgres` sink.
pub const OP: Op = Op {
    name: "postgres",
    category: Category::Sink,
    positional: None,
    args: &[
        ArgSpec::required("url", Kind::Str, "The connection URL, `postgres://user:password@host/db` (`${VAR}` resolved at start-up; the password is never printed)."),
        ArgSpec::required("table", Kind::Str, "The table to write."),
        ArgSpec::optional("schema", Kind::Str, "\"public\"", "The table's schema."),
        ArgSpec::optional(
            "mode",
            Kind::WriteMode,
            "insert",
            "`insert` (binary COPY) or `upsert(key, ..)` (COPY into a temporary table, then `INSERT .. ON CONFLICT (key) DO UPDATE`).",
        ),
        ArgSpec::optional("create", Kind::Bool, "false", "Create the table from the record's schema when it does not exist."),
        ArgSpec::optional("pool_size", Kind::Count, "4", "Connections in the sink's pool (shared by the run's sinks with the same URL)."),
        ArgSpec::optional("timeout", Kind::Duration, "30s", "Longest wait to connect, for one statement, or for the commit."),
        ArgSpec::optional("ca_file", Kind::Str, "none", "An extra CA certificate (PEM) for `sslmode=require` (feature `postgres-tls`)."),
        ArgSpec::optional(
            "exactly_once",
            Kind::Bool,
            "false",
            "Store each batch's source positions (per group, topic, partition: the next offset) in its transaction, and make the source start at them: every row written once, inserts included. Needs a source that seeks (`kafka`).",
        ),
        ArgSpec::optional(
            "offsets_table",
            Kind::Str,
            "\"etl_offsets\"",
            "The table of stored positions (in the sink's schema) under `exactly_once`; created when missing.",
        ),
    ],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::Stores,
    feature: Some("postgres"),
    typing: Typing::Keep,
    build: Build::Connector { path: &["etl", "sink", "postgres"], record_type: false },
    doc: "Writes each batch inside a transaction committed with the pipeline's commit (binary COPY; upsert through a temporary table); the table's columns are checked against the record at start-up; a row the database refuses is dead-lettered and the rest is written. With `exactly_once = true` the batch's source positions commit with its rows and a Kafka source resumes from them (exactly once, in insert mode too).",
    example: "... | postgres(url = \"${DATABASE_URL}\", table = \"orders\", mode = upsert(id))",
};
