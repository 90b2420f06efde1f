//! Checked steps → the builder calls: `::etl::Pipeline::from(src).filter(f)...to(sink)`, given
//! the pipeline's shape (`Run::graph`, through `::etl::__private::with_graph`).
//!
//! Each built-in step's code comes from its table entry ([`crate::ops::gen::generate`]), or
//! from `typed` for a schema step on typed records; a user step is its own expression.

use super::check::{Checked, What};
use super::graph::{self, Described};
use super::parse::Fork;
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
            (What::Fork(fork), _) if fork.kind == "merge" => merged_sources(fork, step.as_type.as_ref()),
            (What::Fork(fork), _) => fork_branches(fork, &typed.record(step.index)),
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
            (Category::Operator, What::Builtin { .. }) => quote!(#pipeline #expr),
            (Category::Operator, What::User { .. }) => quote_spanned!(span=> #pipeline.then(#expr)),
            (Category::Source, _) => quote_spanned!(span=> ::etl::Pipeline::from(#expr)),
            (Category::Sink, What::Fork(fork)) => {
                let method = syn::Ident::new(&fork.kind.to_string(), span);
                quote_spanned!(span=> #pipeline.#method(#expr))
            }
            (Category::Sink, _) => quote_spanned!(span=> #pipeline.to(#expr)),
            (_, What::Fork(_)) => pipeline, // misplaced: reported by the checker
        };
    }
    let items = &typed.items;
    let records: Vec<graph::Described> = steps.iter().map(|s| typed.record(s.index)).collect();
    let graph = graph::generate(steps, &records);
    quote!({ #(#asserts)* #(#items)* ::etl::__private::with_graph(#pipeline, #graph) })
}

/// The steps that make a branch's record type matter to the macro (it generates or checks
/// fields): the branch's pipeline is told the type at the fork (`as T`) when it has one.
const SCHEMA_STEPS: [&str; 4] = ["rename", "select", "drop", "into"];

/// A fork's argument: the closure that makes its branches, each branch a pipeline of its own
/// (expanded by `pipeline!` again) from an input of the records at the fork,
/// `|__etl_input| vec![branch(pipeline! { Input::like(&__etl_input) | .. | sink }), ..]`; a
/// route's predicates go to `when`. The branch's tokens keep their spans: its errors are on
/// the user's tokens.
fn fork_branches(fork: &Fork, at_fork: &Described) -> TokenStream {
    let arms = fork.arms.iter().map(|arm| {
        let body = &arm.body;
        let uses_schema = body
            .clone()
            .into_iter()
            .any(|tt| matches!(&tt, proc_macro2::TokenTree::Ident(i) if SCHEMA_STEPS.contains(&i.to_string().as_str())));
        let as_type = match at_fork {
            Described::Type { ty, name } if uses_schema && *name == crate::text::text(ty) => Some(quote!(as #ty)),
            Described::Name(name) if uses_schema && name == "Json" => Some(quote!(as ::etl::Json)),
            _ => None,
        };
        let run = quote!(::etl::pipeline! { ::etl::fanout::Input::like(&__etl_input) #as_type | #body });
        match &arm.predicate {
            Some(predicate) => quote!(::etl::fanout::when(#run, #predicate)),
            None => quote!(::etl::fanout::branch(#run)),
        }
    });
    quote!(|__etl_input| ::std::vec![#(#arms),*])
}

/// `merge(a(..), b(..)) [as T]`: `::etl::source::merge(a, b)` (nested for more), each source
/// made by a pipeline of its own (`pipeline! { a(..) as T | blackhole }`, whose source is
/// taken), so each is checked and typed as the first step of a pipeline.
fn merged_sources(fork: &Fork, as_type: Option<&syn::Type>) -> TokenStream {
    let as_type = as_type.map(|ty| quote!(as #ty));
    let sources: Vec<TokenStream> = fork
        .arms
        .iter()
        .map(|arm| {
            let body = &arm.body;
            quote!(::etl::__private::source_of(::etl::pipeline! { #body #as_type | ::etl::sink::blackhole() }))
        })
        .collect();
    let mut sources = sources.into_iter();
    let first = sources.next().unwrap_or_default();
    sources.fold(first, |merged, next| quote!(::etl::source::merge(#merged, #next)))
}
