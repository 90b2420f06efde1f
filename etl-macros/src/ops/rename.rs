//! `rename(a -> b, c.d -> c_d)`: rename fields (typed records at compile time, `Json` at run time).

use super::{Args, Category, Kind, Op, Positional};
use quote::quote_spanned;

/// The `rename` operator.
pub const OP: Op = Op {
    name: "rename",
    category: Category::Operator,
    positional: Some(Positional { name: "renames", kind: Kind::Renames, doc: "`from -> to` pairs; dotted paths reach nested fields." }),
    args: &[],
    shared: &[],
    accepts_as: false,
    doc: "Renames fields, in order. On typed records (`as Order`), checked at compile time: the output is a generated \
          record type with the new names (later closures write `o.new`), serialised under the new names; an unknown \
          field, a rename onto an existing field, or a field renamed twice is an error on its token. On `Json` \
          records, applied at run time on field paths (a missing field, or a rename onto an existing one, \
          dead-letters the record).",
    example: "file(path = \"events.jsonl\") | rename(ts -> timestamp, length.new -> length_new) | ...",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let pairs = a.first();
    quote_spanned!(a.span=> .then(::etl::operator::json::Rename::new(#pairs)))
}
