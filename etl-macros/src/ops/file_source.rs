//! `file(path = "..", format = "jsonl") [as T]`: a source reading a JSONL or CSV file once.

use super::{ArgSpec, Args, Category, Kind, Op, BATCH_ARGS};
use quote::{quote, quote_spanned};

/// The `file` source.
pub const OP: Op = Op {
    name: "file",
    category: Category::Source,
    positional: None,
    args: &[
        ArgSpec { name: "path", kind: Kind::Str, required: true, default: None, doc: "The file to read (`${VAR}` resolved at start-up)." },
        ArgSpec {
            name: "format",
            kind: Kind::Format,
            required: false,
            default: Some("from the extension"),
            doc: "`\"jsonl\"` or `\"csv\"`.",
        },
    ],
    shared: BATCH_ARGS,
    accepts_as: true,
    doc: "Reads a JSONL or CSV file once, decoding each line or row into the type after `as` (default `Json`).",
    example: "file(path = \"orders.jsonl\", batch_size = 500, batch_timeout = 2s) as Order | ...",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let ty = a.record_type();
    let path = a.get("path").map(|p| quote!(#p)).unwrap_or_else(|| quote!(""));
    let mut src = quote_spanned!(a.span=> ::etl::source::file::<#ty>(#path));
    if let Some(format) = a.get("format") {
        src = quote!(#src.format(#format));
    }
    src
}
