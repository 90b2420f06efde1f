//! `filter_map(f)`: transform each record, dropping those for which the closure returns `None`.

use super::{Build, Category, Kind, Op, Positional, Typing};

/// The `filter_map` operator.
pub const OP: Op = Op {
    name: "filter_map",
    category: Category::Operator,
    positional: Some(Positional { name: "f", kind: Kind::Expr, doc: "`FnMut(T) -> Option<U>`." }),
    args: &[],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::Untyped,
    build: Build::Method("filter_map"),
    doc: "Transforms each record, dropping those for which the closure returns `None`.",
    example: "... | filter_map(|o| o.email) | ...",
};
