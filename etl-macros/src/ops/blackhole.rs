//! `blackhole()`: discard every record (benchmarks).

use super::{Args, Category, Op};
use quote::quote_spanned;

/// The `blackhole` sink.
pub const OP: Op = Op {
    name: "blackhole",
    category: Category::Sink,
    positional: None,
    args: &[],
    shared: &[],
    accepts_as: false,
    doc: "Accepts and discards every record (benchmarks).",
    example: "... | blackhole()",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    quote_spanned!(a.span=> ::etl::sink::blackhole())
}
