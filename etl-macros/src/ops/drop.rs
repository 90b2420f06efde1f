//! `drop(a, b.c)`: remove fields (typed records at compile time, `Json` at run time).

use super::{Args, Category, Kind, Op, Positional};
use quote::quote_spanned;

/// The `drop` operator.
pub const OP: Op = Op {
    name: "drop",
    category: Category::Operator,
    positional: Some(Positional { name: "fields", kind: Kind::Fields, doc: "The fields to remove; dotted paths reach nested fields." }),
    args: &[],
    shared: &[],
    accepts_as: false,
    doc: "Removes the named fields. On typed records, checked at compile time (an unknown field is an error; \
          dropping every field too), the output a generated record type without them. On `Json` records, applied \
          at run time on field paths.",
    example: "... | drop(internal_id, meta.trace) | ...",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let fields = a.first();
    quote_spanned!(a.span=> .then(::etl::operator::json::DropFields::new(#fields)))
}
