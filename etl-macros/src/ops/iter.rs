//! `iter(expr) [as T]`: a source over any `IntoIterator`.

use super::{Args, Category, Kind, Op, Positional, BATCH_ARGS};
use quote::quote_spanned;

/// The `iter` source.
pub const OP: Op = Op {
    name: "iter",
    category: Category::Source,
    positional: Some(Positional { name: "items", kind: Kind::Expr, doc: "Any `IntoIterator`; `as T` asserts its item type." }),
    args: &[],
    shared: BATCH_ARGS,
    accepts_as: true,
    doc: "Reads the items of an iterator (tests, examples, in-memory data).",
    example: "iter(orders) as Order | ...",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let items = a.first();
    match a.as_type {
        Some(ty) => quote_spanned!(a.span=> ::etl::__private::iter_as::<#ty, _>(#items)),
        None => quote_spanned!(a.span=> ::etl::source::iter(#items)),
    }
}
