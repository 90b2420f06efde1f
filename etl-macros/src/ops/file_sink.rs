//! `file(dir = "..", format = "csv", prefix = "..")`: a sink writing files into a directory.

use super::{ArgSpec, Build, Category, Kind, Op, Typing};

/// The `file` sink.
pub const OP: Op = Op {
    name: "file",
    category: Category::Sink,
    positional: None,
    args: &[
        ArgSpec::required("dir", Kind::Str, "The directory to write into (`${VAR}` resolved at start-up)."),
        ArgSpec::optional("format", Kind::Format, "\"jsonl\"", "`\"jsonl\"` or `\"csv\"`."),
        ArgSpec::optional("prefix", Kind::Str, "\"part\"", "The file name prefix."),
        ArgSpec::optional(
            "sync",
            Kind::Bool,
            "true",
            "fsync each file (and the directory) before acknowledging; `false` leaves it to the OS (faster, not durable across a crash).",
        ),
    ],
    shared: &[],
    accepts_as: false,
    feature: None,
    typing: Typing::Keep,
    build: Build::Connector { path: &["etl", "sink", "file"], record_type: false },
    doc: "Writes each batch to a file in a directory (temporary file, fsync, rename).",
    example: "... | file(dir = \"lake/orders\", format = \"csv\", prefix = \"orders\")",
};
