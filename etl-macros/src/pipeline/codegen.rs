//! Checked steps → the builder calls: `::etl::Pipeline::from(src).filter(f)...to(sink)`.

use super::check::{Checked, What};
use super::typed::Typed;
use crate::ops::{Args, Category, BATCH_ARGS};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

/// The block expression that evaluates to the pipeline's `Run`, with the record types that
/// typed schema steps generate (`typed`) declared in it.
pub fn generate(steps: &[Checked], typed: &Typed) -> TokenStream {
    let mut asserts = Vec::new();
    let mut pipeline = TokenStream::new();
    for step in steps {
        let expr = match &step.what {
            What::Builtin { .. } if typed.op(step.index).is_some() => typed.op(step.index).cloned().unwrap_or_default(),
            What::Builtin { op, positional, named } => {
                let args = Args { positional, named, as_type: step.as_type.as_ref(), span: step.span };
                let mut expr = (op.gen)(&args);
                if op.category == Category::Source {
                    for (name, value) in named {
                        if BATCH_ARGS.iter().any(|a| a.name == name) {
                            let method = syn::Ident::new(name, step.span);
                            expr = quote!(::etl::batch::BatchOptions::#method(#expr, #value));
                        }
                    }
                }
                expr
            }
            What::User { path, call } => {
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
    quote!({ #(#asserts)* #(#items)* #pipeline })
}
