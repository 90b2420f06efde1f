//! `stdout()`: print each record as a JSON line.

use super::{Build, Category, Op, Typing};

/// The `stdout` sink.
pub const OP: Op = Op {
    name: "stdout",
    category: Category::Sink,
    positional: None,
    args: &[],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::Keep,
    build: Build::Connector { path: &["etl", "sink", "stdout"], record_type: false },
    doc: "Writes each record to standard output as a JSON line.",
    example: "... | stdout()",
};
