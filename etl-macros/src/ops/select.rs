//! `select(a, b)`: keep only these fields (typed records at compile time, `Json` at run time).

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
    doc: "Keeps only the named fields, in that order. On typed records, checked at compile time (an unknown field is \
          an error with a \"did you mean\"), the output a generated record type whose fields keep their serde names and \
          attributes. On `Json` records, applied at run time on field paths.",
    example: "... | select(id, title) | ...",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let fields = a.first();
    quote_spanned!(a.span=> .then(::etl::operator::json::Select::new(#fields)))
}
