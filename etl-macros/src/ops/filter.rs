//! `filter(f)`: keep the records for which the closure returns true.

use super::{Build, Category, Kind, Op, Positional, Typing};

/// The `filter` operator.
pub const OP: Op = Op {
    name: "filter",
    category: Category::Operator,
    positional: Some(Positional { name: "f", kind: Kind::Expr, doc: "`FnMut(&T) -> bool`." }),
    args: &[],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::Keep,
    build: Build::Method("filter"),
    doc: "Keeps the records for which the closure returns true.",
    example: "... | filter(|o| o.amount_cents > 0) | ...",
};
