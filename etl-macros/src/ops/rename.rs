//! `rename(a -> b, c.d -> c_d)`: rename fields (typed records at compile time, `Json` at run time).

use super::fields::simple;
use super::{Build, Category, Kind, Op, Positional, SchemaRule, Typing, Value};
use crate::diagnostic::Diagnostics;
use crate::shape::{Reshaped, Shape, Why};
use proc_macro2::Span;

/// The `rename` operator.
pub const OP: Op = Op {
    name: "rename",
    category: Category::Operator,
    positional: Some(Positional { name: "renames", kind: Kind::Renames, doc: "`from -> to` pairs; dotted paths reach nested fields." }),
    args: &[],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::Schema(SchemaRule::Reshape { empty: ("`rename` needs at least one `old -> new`", "rename(ts -> timestamp)"), apply }),
    build: Build::Then(&["etl", "operator", "json", "Rename", "new"]),
    doc: "Renames fields, in order. On typed records (`as Order`), checked at compile time: the output is a generated \
          record type with the new names (later closures write `o.new`), serialised under the new names; an unknown \
          field, a rename onto an existing field, or a field renamed twice is an error on its token. On `Json` \
          records, applied at run time on field paths (a missing field, or a rename onto an existing one, \
          dead-letters the record).",
    example: "file(path = \"events.jsonl\") | rename(ts -> timestamp, length.new -> length_new) | ...",
};

/// Rename on a typed record: each `from` a field here (renamed once), each `to` a new name
/// that is a Rust identifier and no other field's.
fn apply(shape: &Shape, value: &Value, _step: Span, d: &mut Diagnostics) -> Option<Reshaped> {
    let Value::Renames(pairs) = value else { return None };
    let mut fields = shape.fields.clone();
    let mut new_names: Vec<Option<Span>> = vec![None; fields.len()];
    let mut named: Vec<Option<Span>> = vec![None; fields.len()];
    let mut done: Vec<(&str, &str)> = Vec::new();
    let mut gone = shape.gone.clone();
    let mut ok = true;
    for (from, to) in pairs {
        if !(simple(from, "rename", d) & simple(to, "rename", d)) {
            ok = false;
            continue;
        }
        if matches!(to.path.as_str(), "self" | "Self" | "super" | "crate" | "_") {
            d.error(
                to.span,
                format!("`{}` cannot name a field of a Rust struct", to.path),
                format!("choose another name; to write the column as `{}`, `map` into a record of your own whose field has `#[serde(rename = \"{}\")]`", to.path, to.path),
            );
            ok = false;
            continue;
        }
        let Some(at) = fields.iter().position(|f| f.rust == from.path) else {
            match done.iter().find(|(f, _)| *f == from.path) {
                Some((_, to)) => d.error(
                    from.span,
                    format!("field `{}` is renamed twice", from.path),
                    format!("this `rename` already renamed `{}` to `{to}`; to rename it again, write `{to} -> ...`", from.path),
                ),
                None => d.push(shape.missing(&from.path, from.span, "rename")),
            }
            ok = false;
            continue;
        };
        if from.path == to.path {
            d.error(to.span, format!("`{}` is renamed to itself", from.path), format!("remove `{0} -> {0}`", from.path));
            ok = false;
            continue;
        }
        if fields.iter().any(|f| f.rust == to.path) {
            d.error(
                to.span,
                format!("cannot rename `{}` to `{}`: {} already has a field `{}`", from.path, to.path, shape.label, to.path),
                format!("drop or rename the existing `{0}` first (`drop({0})`), or choose another name", to.path),
            );
            ok = false;
            continue;
        }
        let f = &mut fields[at];
        f.rust = to.path.clone();
        f.serde = to.path.clone();
        f.renamed = true;
        new_names[at] = Some(to.span);
        named[at].get_or_insert(from.span);
        gone.retain(|(n, _)| *n != to.path);
        gone.push((from.path.clone(), Why::Renamed(to.path.clone())));
        done.push((&from.path, &to.path));
    }
    if !ok {
        return None;
    }
    Some(Reshaped { shape: shape.with_fields(fields, gone), from: new_names.into_iter().enumerate().collect(), named })
}
