//! `flat_map(f)`: turn each record into zero or more records.

use super::{Build, Category, Kind, Op, Positional, Typing};

/// The `flat_map` operator.
pub const OP: Op = Op {
    name: "flat_map",
    category: Category::Operator,
    positional: Some(Positional { name: "f", kind: Kind::Expr, doc: "`FnMut(T) -> impl IntoIterator<Item = U>`." }),
    args: &[],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::Untyped,
    build: Build::Method("flat_map"),
    doc: "Turns each record into zero or more records.",
    example: "... | flat_map(|o| o.lines) | ...",
};
