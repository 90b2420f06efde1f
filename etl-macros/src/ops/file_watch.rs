//! `file_watch(dir = "..", patterns = [..], move_after_process = "..", ...) [as T]`: a source
//! that watches a directory and reads each complete file once (feature `file-watch`).

use super::{ArgSpec, Build, Category, Kind, Op, Typing, BATCH_ARGS};

/// The `file_watch` source.
pub const OP: Op = Op {
    name: "file_watch",
    category: Category::Source,
    positional: None,
    args: &[
        ArgSpec::required("dir", Kind::Str, "The directory to watch (`${VAR}` resolved at start-up)."),
        ArgSpec::optional(
            "patterns",
            Kind::Expr,
            "`[\"*.json\", \"*.jsonl\", \"*.ndjson\", \"*.csv\"]`",
            "Glob patterns a file's name must match: `[\"*.json\", \"*.csv\"]`, or any iterable of strings. Hidden files are ignored.",
        ),
        ArgSpec::optional("recursive", Kind::Bool, "false", "Watch the sub-directories too."),
        ArgSpec::optional(
            "process_existing",
            Kind::Bool,
            "true",
            "Read the files present at the first start; with `false` they are recorded as seen (later starts read what arrived while stopped).",
        ),
        ArgSpec::optional(
            "move_after_process",
            Kind::Str,
            "none (files stay; the ledger says they were read)",
            "Move each file, once all its records were acknowledged, into this directory under its relative path; a name taken gets a suffix, never an overwrite.",
        ),
        ArgSpec::optional(
            "format",
            Kind::WatchFormat,
            "\"auto\"",
            "`\"auto\"` (from each file's extension), `\"json\"` (an array streamed element by element, or top-level values), `\"jsonl\"` or `\"csv\"`.",
        ),
        ArgSpec::optional("settle", Kind::Duration, "500ms", "A file is read once unchanged (size and modification time) for this long, or renamed into place."),
        ArgSpec::optional(
            "ledger",
            Kind::Str,
            "`<dir>/.etl-file-watch.ledger`",
            "The ledger of processed files (path, size, modification time, hash of the head), kept across restarts.",
        ),
        ArgSpec::optional(
            "poll_interval",
            Kind::Duration,
            "none (the system's file events; polling every 1s where unavailable)",
            "Scan the directory at this interval rather than use the system's file events (network file systems).",
        ),
    ],
    shared: BATCH_ARGS,
    accepts_as: true,
    positions: super::PositionRole::None,
    feature: Some("file-watch"),
    typing: Typing::JsonSource,
    build: Build::Connector { path: &["etl", "source", "file_watch"], record_type: true },
    doc: "Watches a directory and reads each complete file once (JSON arrays, JSON Lines, CSV, streamed); archives a file or records it in the ledger only after all its records were delivered or dead-lettered; path, size, modification time and line beside each record.",
    example: "file_watch(dir = \"/data/inbox\", patterns = [\"*.json\", \"*.csv\"], move_after_process = \"/data/archive\", batch_size = 1000) as Order | ...",
};
