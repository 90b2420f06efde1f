//! `file(path = "..", format = "jsonl") [as T]`: a source reading a JSONL or CSV file once.

use super::{ArgSpec, Build, Category, Kind, Op, Typing, BATCH_ARGS};

/// The `file` source.
pub const OP: Op = Op {
    name: "file",
    category: Category::Source,
    positional: None,
    args: &[
        ArgSpec::required("path", Kind::Str, "The file to read (`${VAR}` resolved at start-up)."),
        ArgSpec::optional("format", Kind::Format, "from the extension", "`\"jsonl\"` or `\"csv\"`."),
    ],
    shared: BATCH_ARGS,
    accepts_as: true,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::JsonSource,
    build: Build::Connector { path: &["etl", "source", "file"], record_type: true },
    doc: "Reads a JSONL or CSV file once, decoding each line or row into the type after `as` (default `Json`).",
    example: "file(path = \"orders.jsonl\", batch_size = 500, batch_timeout = 2s) as Order | ...",
};
