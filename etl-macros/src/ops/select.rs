//! `select(a, b)`: keep only these fields (typed records at compile time, `Json` at run time).

use super::{fields, Build, Category, Kind, Op, Positional, SchemaRule, Typing, Value};
use crate::diagnostic::Diagnostics;
use crate::shape::{Reshaped, Shape, Why};
use proc_macro2::Span;

/// The `select` operator.
pub const OP: Op = Op {
    name: "select",
    category: Category::Operator,
    positional: Some(Positional { name: "fields", kind: Kind::Fields, doc: "The fields to keep, in output order." }),
    args: &[],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::Schema(SchemaRule::Reshape { empty: ("`select` needs at least one field to keep", "select(id, title)"), apply }),
    build: Build::Then(&["etl", "operator", "json", "Select", "new"]),
    doc: "Keeps only the named fields, in that order. On typed records, checked at compile time (an unknown field is \
          an error with a \"did you mean\"), the output a generated record type whose fields keep their serde names and \
          attributes. On `Json` records, applied at run time on field paths.",
    example: "... | select(id, title) | ...",
};

/// Select on a typed record: each name a field here, none twice; the record after it has
/// those fields in that order.
fn apply(shape: &Shape, value: &Value, _step: Span, d: &mut Diagnostics) -> Option<Reshaped> {
    let Value::Fields(names) = value else { return None };
    let chosen = fields::named(shape, names, "select", d)?;
    let mut gone = shape.gone.clone();
    let mut named = vec![None; shape.fields.len()];
    for (i, f) in shape.fields.iter().enumerate() {
        match chosen.iter().find(|(at, _)| *at == i) {
            Some((_, span)) => named[i] = Some(*span),
            None => gone.push((f.rust.clone(), Why::Removed("select"))),
        }
    }
    let kept = chosen.iter().map(|(at, _)| shape.fields[*at].clone()).collect();
    let from = chosen.into_iter().map(|(at, span)| (at, Some(span))).collect();
    Some(Reshaped { shape: shape.with_fields(kept, gone), from, named })
}
