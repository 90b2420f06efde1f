//! `iter(expr) [as T]`: a source over any `IntoIterator`.

use super::{Args, Build, Category, Kind, Op, Positional, Typing, BATCH_ARGS};
use quote::quote_spanned;

/// The `iter` source.
pub const OP: Op = Op {
    name: "iter",
    category: Category::Source,
    positional: Some(Positional { name: "items", kind: Kind::Expr, doc: "Any `IntoIterator`; `as T` asserts its item type." }),
    args: &[],
    shared: BATCH_ARGS,
    accepts_as: true,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::InferredSource,
    build: Build::Custom(gen),
    doc: "Reads the items of an iterator (tests, examples, in-memory data).",
    example: "iter(orders) as Order | ...",
};

/// Not the plain mapping: with `as T`, the items go through `iter_as::<T, _>`, which fixes the
/// iterator's item type before the source is built (inference of `vec![]` and closures, and a
/// mismatch reported on the items).
fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let items = a.first();
    let source = match a.as_type {
        Some(ty) => quote_spanned!(a.span=> ::etl::__private::iter_as::<#ty, _>(#items)),
        None => quote_spanned!(a.span=> ::etl::source::iter(#items)),
    };
    super::gen::set_all(&OP, source, a)
}
