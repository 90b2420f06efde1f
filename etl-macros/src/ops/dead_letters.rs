//! `dead_letters(path = "..") [as T]`: a source reading back the entries of a dead-letter file,
//! each removed once its batch is delivered.

use super::{ArgSpec, Build, Category, Kind, Op, Typing, BATCH_ARGS};

/// The `dead_letters` source.
pub const OP: Op = Op {
    name: "dead_letters",
    category: Category::Source,
    positional: None,
    args: &[ArgSpec::required(
        "path",
        Kind::Str,
        "The dead-letter file to read (`${VAR}` resolved at start-up); it must not be the run's own dead-letter queue.",
    )],
    shared: BATCH_ARGS,
    accepts_as: true,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::JsonSource,
    build: Build::Connector { path: &["etl", "source", "dead_letters"], record_type: true },
    doc: "Reads the entries of a dead-letter file present at start-up, decoding each payload as JSON into the type after `as` (default `Json`; one that does not decode is dead-lettered again into the run's queue, which must be another file); removes an entry from the file once its batch is delivered, leaves it when the batch fails. The record's metadata keeps the entry's original source and position.",
    example: "dead_letters(path = \"dead-letters/orders.jsonl\", batch_size = 100) as Order | ...",
};
