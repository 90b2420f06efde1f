//! `blackhole()`: discard every record (benchmarks).

use super::{Build, Category, Op, Typing};

/// The `blackhole` sink.
pub const OP: Op = Op {
    name: "blackhole",
    category: Category::Sink,
    positional: None,
    args: &[],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::Keep,
    build: Build::Connector { path: &["etl", "sink", "blackhole"], record_type: false },
    doc: "Accepts and discards every record (benchmarks).",
    example: "... | blackhole()",
};
