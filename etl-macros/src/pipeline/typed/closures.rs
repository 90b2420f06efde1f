//! Closures of `filter`, `map`, ... that read a field the records do not have, reported by the
//! macro with what it knows (rustc would only say the field does not exist, on a type it
//! names `etl::Json` or `Order_after_select`):
//!
//! * on `Json` records (schemaless): any field read (`o.status`), with how to read a `Json`
//!   value or give the records a type;
//! * after a schema step: a field that an earlier step renamed away or removed, with what
//!   became of it; on the record type a step generated, any other unknown field, naming the
//!   step that made it (`Order after select(id, amount)`).

use crate::diagnostic::Diagnostics;
use crate::ops::Value;
use crate::shape::{quoted, Shape, Why};
use crate::suggest;
use syn::Ident;

/// What the closures of a step are given.
pub enum Records<'a> {
    /// `etl::Json` records.
    Json,
    /// Typed records with these fields.
    Shape(&'a Shape),
}

/// Check the closures among a step's argument `values` (those written in place) on `records`.
pub fn check(d: &mut Diagnostics, records: Records<'_>, values: &[&Value]) {
    if let Records::Shape(shape) = records {
        if shape.gone.is_empty() && !shape.generated {
            return;
        }
    }
    for value in values {
        let Value::Expr(expr) = value else { continue };
        let Some(closure) = closure(expr) else { continue };
        let Some(param) = closure.inputs.first().and_then(pat_ident) else { continue };
        let mut scan = Scan { param: param.clone(), shadowed: false, reads: Vec::new() };
        syn::visit::Visit::visit_expr(&mut scan, &closure.body);
        if scan.shadowed {
            continue;
        }
        for field in scan.reads {
            let name = field.to_string();
            let name = name.trim_start_matches("r#");
            match records {
                Records::Json => d.error(
                    field.span(),
                    format!("no field `{name}`: the records here are `etl::Json` (schemaless)"),
                    format!(
                        "read it with `{param}.get(\"{name}\")` (an `Option<&serde_json::Value>`), or give the records a type: \
                         `as Order` after the source, with `#[derive(Record, Serialize, Deserialize)] struct Order {{ {name}: .., .. }}`"
                    ),
                ),
                Records::Shape(shape) => typed_read(d, shape, &param.to_string(), &field, name),
            }
        }
    }
}

/// A read of `name` (at `field`) on records of `shape`.
fn typed_read(d: &mut Diagnostics, shape: &Shape, param: &str, field: &Ident, name: &str) {
    if shape.position(name).is_some() {
        return;
    }
    match shape.gone(name) {
        Some(Why::Renamed(to)) => d.error(
            field.span(),
            format!("no field `{name}` on the record here: an earlier `rename` renamed it to `{to}`"),
            format!("write `{param}.{to}`"),
        ),
        Some(Why::Removed(by)) => d.error(
            field.span(),
            format!("no field `{name}` on the record here: an earlier `{by}` removed it"),
            format!("keep `{name}` in that `{by}`, or use it before that step; the fields here are {}", quoted(&shape.names())),
        ),
        None if shape.generated => d.error(
            field.span(),
            format!("no field `{name}` on {}", shape.label),
            suggest::did_you_mean(name, shape.names()).unwrap_or_else(|| format!("its fields are {}", quoted(&shape.names()))),
        ),
        None => {} // a user's struct: rustc's own error names it and lists its fields
    }
}

/// The closure `expr` is, if it is one written in place (in parentheses or not).
fn closure(expr: &syn::Expr) -> Option<&syn::ExprClosure> {
    match expr {
        syn::Expr::Closure(c) => Some(c),
        syn::Expr::Paren(p) => closure(&p.expr),
        syn::Expr::Group(g) => closure(&g.expr),
        _ => None,
    }
}

/// The identifier a closure parameter binds: `o`, `o: T`, `&o`, `mut o`.
fn pat_ident(pat: &syn::Pat) -> Option<&Ident> {
    match pat {
        syn::Pat::Ident(p) if p.subpat.is_none() => Some(&p.ident),
        syn::Pat::Type(t) => pat_ident(&t.pat),
        syn::Pat::Reference(r) => pat_ident(&r.pat),
        _ => None,
    }
}

/// Reads `param.field` in a closure body; gives up (`shadowed`) where the body binds `param`
/// again, since a later `param.x` may then be another value.
struct Scan {
    param: Ident,
    shadowed: bool,
    reads: Vec<Ident>,
}

impl<'ast> syn::visit::Visit<'ast> for Scan {
    fn visit_expr_field(&mut self, e: &'ast syn::ExprField) {
        if let (syn::Expr::Path(p), syn::Member::Named(field)) = (&*e.base, &e.member) {
            if p.qself.is_none() && p.path.is_ident(&self.param) {
                self.reads.push(field.clone());
            }
        }
        syn::visit::visit_expr_field(self, e);
    }

    fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
        if p.ident == self.param {
            self.shadowed = true;
        }
        syn::visit::visit_pat_ident(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // `println!("{}", o.amount_cents)`: read the arguments of the usual formatting macros.
        if let Ok(args) = m.parse_body_with(syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated) {
            for a in &args {
                self.visit_expr(a);
            }
        }
    }
}
