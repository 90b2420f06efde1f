//! `filter_map(f)`: Transforms each record, dropping those for which the closure returns `None`.

use super::{Args, Category, Kind, Op, Positional};
use quote::quote_spanned;

/// The `filter_map` operator.
pub const OP: Op = Op {
    name: "filter_map",
    category: Category::Operator,
    positional: Some(Positional { name: "f", kind: Kind::Expr, doc: "`FnMut(T) -> Option<U>`." }),
    args: &[],
    shared: &[],
    accepts_as: false,
    doc: "Transforms each record, dropping those for which the closure returns `None`.",
    example: "... | filter_map(|o| o.email) | ...",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let f = a.first();
    quote_spanned!(a.span=> .filter_map(#f))
}
