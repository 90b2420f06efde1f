//! Checked steps → the builder calls: `::etl::Pipeline::from(src).filter(f)...to(sink)`, given
//! the pipeline's shape (`Run::graph`, through `::etl::__private::with_graph`).
//!
//! Each built-in step's code comes from its table entry ([`crate::ops::gen::generate`]), or
//! from `typed` for a schema step on typed records; a user step is its own expression.

use super::check::{Checked, What};
use super::graph;
use super::typed::Typed;
use crate::ops::{gen, Args, Category};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

/// The block expression that evaluates to the pipeline's `Run`, with the record types that
/// typed schema steps generate (`typed`) declared in it.
pub fn generate(steps: &[Checked], typed: &Typed) -> TokenStream {
    let mut asserts = Vec::new();
    let mut pipeline = TokenStream::new();
    for step in steps {
        let expr = match (&step.what, typed.op(step.index)) {
            (What::Builtin { .. }, Some(op)) => op.clone(),
            (What::Builtin { op, positional, named }, None) => {
                gen::generate(op, &Args { positional, named, as_type: step.as_type.as_ref(), span: step.span })
            }
            (What::User { path, call }, _) => {
                let expr = quote!(#path #call);
                match (&step.as_type, step.role) {
                    (Some(ty), Category::Source) => quote!(::etl::__private::source_as::<#ty, _>(#expr)),
                    _ => expr,
                }
            }
        };
        if let (Some(ty), Category::Source) = (&step.as_type, step.role) {
            asserts.push(quote_spanned!(ty.span()=> ::etl::__private::assert_record::<#ty>();));
        }
        let span = step.span;
        pipeline = match (step.role, &step.what) {
            (Category::Source, _) => quote_spanned!(span=> ::etl::Pipeline::from(#expr)),
            (Category::Operator, What::Builtin { .. }) => quote!(#pipeline #expr),
            (Category::Operator, What::User { .. }) => quote_spanned!(span=> #pipeline.then(#expr)),
            (Category::Sink, _) => quote_spanned!(span=> #pipeline.to(#expr)),
        };
    }
    let items = &typed.items;
    let records: Vec<graph::Described> = steps.iter().map(|s| typed.record(s.index)).collect();
    let graph = graph::generate(steps, &records);
    quote!({ #(#asserts)* #(#items)* ::etl::__private::with_graph(#pipeline, #graph) })
}
