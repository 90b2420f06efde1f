//! `inspect(f)`: call the closure on each record, passing the records on unchanged.

use super::{Build, Category, Kind, Op, Positional, Typing};

/// The `inspect` operator.
pub const OP: Op = Op {
    name: "inspect",
    category: Category::Operator,
    positional: Some(Positional { name: "f", kind: Kind::Expr, doc: "`FnMut(&T)`." }),
    args: &[],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::Keep,
    build: Build::Method("inspect"),
    doc: "Calls the closure on each record, passing the records on unchanged.",
    example: "... | inspect(|o| tracing::debug!(?o)) | ...",
};
