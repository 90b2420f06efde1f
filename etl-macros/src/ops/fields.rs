//! What the schema steps' rules share: checking the fields they name on a typed record.

use super::FieldRef;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::shape::Shape;
use proc_macro2::Span;

/// Typed records take field names; a dotted path or a literal is an error.
pub fn simple(f: &FieldRef, step: &str, d: &mut Diagnostics) -> bool {
    if !f.simple {
        d.push(Diagnostic::new(
            f.span,
            format!("`{step}` on a typed record takes field names, not `{}`", f.path),
            "name a field of the struct (nested fields of typed records are reached with `map`)",
        ));
    }
    f.simple
}

/// The fields a `select` or `drop` names: each a field of `shape`, none twice; per field, its
/// position and the user's token. `None` after reporting every error.
pub fn named(shape: &Shape, fields: &[FieldRef], step: &'static str, d: &mut Diagnostics) -> Option<Vec<(usize, Span)>> {
    let mut ok = true;
    let mut out: Vec<(usize, Span)> = Vec::new();
    for f in fields {
        if !simple(f, step, d) {
            ok = false;
            continue;
        }
        let Some(at) = shape.position(&f.path) else {
            d.push(shape.missing(&f.path, f.span, step));
            ok = false;
            continue;
        };
        if out.iter().any(|(i, _)| *i == at) {
            d.error(f.span, format!("`{}` is named twice in this `{step}`", f.path), "keep one");
            ok = false;
            continue;
        }
        out.push((at, f.span));
    }
    ok.then_some(out)
}
