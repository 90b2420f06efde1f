//! `select(a, b)`: keep only these fields of `Json` records.

use super::{Args, Category, Kind, Op, Positional};
use quote::quote_spanned;

/// The `select` operator.
pub const OP: Op = Op {
    name: "select",
    category: Category::Operator,
    positional: Some(Positional { name: "fields", kind: Kind::Fields, doc: "The fields to keep, in output order." }),
    args: &[],
    shared: &[],
    accepts_as: false,
    doc: "Keeps only the named fields, in that order. On `Json` records only for now.",
    example: "... | select(id, title) | ...",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let fields = a.first();
    quote_spanned!(a.span=> .then(::etl::operator::json::Select::new(#fields)))
}
