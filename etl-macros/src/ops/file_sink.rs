//! `file(dir = "..", format = "csv", prefix = "..")`: a sink writing files into a directory.

use super::{ArgSpec, Args, Category, Kind, Op};
use quote::{quote, quote_spanned};

/// The `file` sink.
pub const OP: Op = Op {
    name: "file",
    category: Category::Sink,
    positional: None,
    args: &[
        ArgSpec {
            name: "dir",
            kind: Kind::Str,
            required: true,
            default: None,
            doc: "The directory to write into (`${VAR}` resolved at start-up).",
        },
        ArgSpec { name: "format", kind: Kind::Format, required: false, default: Some("\"jsonl\""), doc: "`\"jsonl\"` or `\"csv\"`." },
        ArgSpec { name: "prefix", kind: Kind::Str, required: false, default: Some("\"part\""), doc: "The file name prefix." },
        ArgSpec {
            name: "sync",
            kind: Kind::Bool,
            required: false,
            default: Some("true"),
            doc: "fsync each file (and the directory) before acknowledging; `false` leaves it to the OS (faster, not durable across a crash).",
        },
    ],
    shared: &[],
    accepts_as: false,
    doc: "Writes each batch to a file in a directory (temporary file, fsync, rename).",
    example: "... | file(dir = \"lake/orders\", format = \"csv\", prefix = \"orders\")",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let dir = a.get("dir").map(|d| quote!(#d)).unwrap_or_else(|| quote!(""));
    let mut sink = quote_spanned!(a.span=> ::etl::sink::file(#dir));
    if let Some(format) = a.get("format") {
        sink = quote!(#sink.format(#format));
    }
    if let Some(prefix) = a.get("prefix") {
        sink = quote!(#sink.prefix(#prefix));
    }
    if let Some(sync) = a.get("sync") {
        sink = quote!(#sink.sync(#sync));
    }
    sink
}
