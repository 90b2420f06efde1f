//! `filter(f)`: Keeps the records for which the closure returns true.

use super::{Args, Category, Kind, Op, Positional};
use quote::quote_spanned;

/// The `filter` operator.
pub const OP: Op = Op {
    name: "filter",
    category: Category::Operator,
    positional: Some(Positional { name: "f", kind: Kind::Expr, doc: "`FnMut(&T) -> bool`." }),
    args: &[],
    shared: &[],
    accepts_as: false,
    doc: "Keeps the records for which the closure returns true.",
    example: "... | filter(|o| o.amount_cents > 0) | ...",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let f = a.first();
    quote_spanned!(a.span=> .filter(#f))
}
