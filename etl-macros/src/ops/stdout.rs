//! `stdout()`: print each record as a JSON line.

use super::{Args, Category, Op};
use quote::quote_spanned;

/// The `stdout` sink.
pub const OP: Op = Op {
    name: "stdout",
    category: Category::Sink,
    positional: None,
    args: &[],
    shared: &[],
    accepts_as: false,
    doc: "Writes each record to standard output as a JSON line.",
    example: "... | stdout()",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    quote_spanned!(a.span=> ::etl::sink::stdout())
}
