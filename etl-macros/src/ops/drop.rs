//! `drop(a, b.c)`: remove fields (typed records at compile time, `Json` at run time).

use super::{fields, Build, Category, Kind, Op, Positional, SchemaRule, Typing, Value};
use crate::diagnostic::Diagnostics;
use crate::shape::{Reshaped, Shape, Why};
use proc_macro2::Span;

/// The `drop` operator.
pub const OP: Op = Op {
    name: "drop",
    category: Category::Operator,
    positional: Some(Positional { name: "fields", kind: Kind::Fields, doc: "The fields to remove; dotted paths reach nested fields." }),
    args: &[],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::Schema(SchemaRule::Reshape { empty: ("`drop` needs at least one field to remove", "drop(internal_id)"), apply }),
    build: Build::Then(&["etl", "operator", "json", "DropFields", "new"]),
    doc: "Removes the named fields. On typed records, checked at compile time (an unknown field is an error; \
          dropping every field too), the output a generated record type without them. On `Json` records, applied \
          at run time on field paths.",
    example: "... | drop(internal_id, meta.trace) | ...",
};

/// Drop on a typed record: each name a field here, none twice, at least one field left.
fn apply(shape: &Shape, value: &Value, step: Span, d: &mut Diagnostics) -> Option<Reshaped> {
    let Value::Fields(names) = value else { return None };
    let dropped = fields::named(shape, names, "drop", d)?;
    if dropped.len() == shape.fields.len() {
        d.error(
            step,
            format!("`drop` removes every field of {}", shape.label),
            "keep at least one field; to discard records, use `filter`",
        );
        return None;
    }
    let mut gone = shape.gone.clone();
    let mut kept = Vec::new();
    let mut named = vec![None; shape.fields.len()];
    for (i, f) in shape.fields.iter().enumerate() {
        match dropped.iter().find(|(at, _)| *at == i) {
            Some((_, span)) => {
                gone.push((f.rust.clone(), Why::Removed("drop")));
                named[i] = Some(*span);
            }
            None => kept.push(i),
        }
    }
    let fields = kept.iter().map(|at| shape.fields[*at].clone()).collect();
    Some(Reshaped { shape: shape.with_fields(fields, gone), from: kept.into_iter().map(|at| (at, None)).collect(), named })
}
