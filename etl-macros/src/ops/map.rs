//! `map(f) [as U]`: transform each record.

use super::{Args, Category, Kind, Op, Positional};
use quote::quote_spanned;

/// The `map` operator.
pub const OP: Op = Op {
    name: "map",
    category: Category::Operator,
    positional: Some(Positional { name: "f", kind: Kind::Expr, doc: "`FnMut(T) -> U`; `as U` declares the output type." }),
    args: &[],
    shared: &[],
    accepts_as: true,
    doc: "Transforms each record into a new one.",
    example: "... | map(|o| Paid { id: o.id, amount_cents: o.amount_cents }) as Paid | ...",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let f = a.first();
    match a.as_type {
        Some(ty) => quote_spanned!(a.span=> .map::<#ty, _>(#f)),
        None => quote_spanned!(a.span=> .map(#f)),
    }
}
