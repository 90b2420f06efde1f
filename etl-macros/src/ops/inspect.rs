//! `inspect(f)`: Calls the closure on each record, passing the records on unchanged.

use super::{Args, Category, Kind, Op, Positional};
use quote::quote_spanned;

/// The `inspect` operator.
pub const OP: Op = Op {
    name: "inspect",
    category: Category::Operator,
    positional: Some(Positional { name: "f", kind: Kind::Expr, doc: "`FnMut(&T)`." }),
    args: &[],
    shared: &[],
    accepts_as: false,
    doc: "Calls the closure on each record, passing the records on unchanged.",
    example: "... | inspect(|o| tracing::debug!(?o)) | ...",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let f = a.first();
    quote_spanned!(a.span=> .inspect(#f))
}
