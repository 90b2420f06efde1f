//! `flat_map(f)`: Turns each record into zero or more records.

use super::{Args, Category, Kind, Op, Positional};
use quote::quote_spanned;

/// The `flat_map` operator.
pub const OP: Op = Op {
    name: "flat_map",
    category: Category::Operator,
    positional: Some(Positional { name: "f", kind: Kind::Expr, doc: "`FnMut(T) -> impl IntoIterator<Item = U>`." }),
    args: &[],
    shared: &[],
    accepts_as: false,
    doc: "Turns each record into zero or more records.",
    example: "... | flat_map(|o| o.lines) | ...",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let f = a.first();
    quote_spanned!(a.span=> .flat_map(#f))
}
