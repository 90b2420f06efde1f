//! Closures of `filter`, `map`, ... after a schema step: a field read on the closure's
//! argument that an earlier step renamed away or removed is reported with what became of it
//! (rustc would only say the field does not exist).

use crate::diagnostic::Diagnostics;
use crate::ops::Value;
use crate::shape::{quoted, Shape, Why};
use syn::Ident;

/// Check the closure `f` (when it is one written in place) on records of `shape`.
pub fn check(d: &mut Diagnostics, shape: &Shape, f: Option<&Value>) {
    if shape.gone.is_empty() {
        return;
    }
    let Some(Value::Expr(syn::Expr::Closure(closure))) = f else { return };
    let Some(param) = closure.inputs.first().and_then(pat_ident) else { return };
    let mut scan = Scan { param: param.clone(), shadowed: false, reads: Vec::new() };
    syn::visit::Visit::visit_expr(&mut scan, &closure.body);
    if scan.shadowed {
        return;
    }
    for field in scan.reads {
        let name = field.to_string();
        let name = name.trim_start_matches("r#");
        if shape.position(name).is_some() {
            continue;
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
            None => {} // never a field: rustc's own error lists the fields
        }
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
