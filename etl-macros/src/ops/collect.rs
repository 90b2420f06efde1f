//! `collect(handle)`: keep records in memory behind an `etl::sink::Collected<T>` handle.

use super::{Args, Build, Category, Kind, Op, Positional, Typing};
use quote::quote_spanned;

/// The `collect` sink.
pub const OP: Op = Op {
    name: "collect",
    category: Category::Sink,
    positional: Some(Positional {
        name: "handle",
        kind: Kind::Expr,
        doc: "An `etl::sink::Collected<T>` (from `etl::sink::collect()`); read it back with `.records()`.",
    }),
    args: &[],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::Keep,
    build: Build::Custom(gen),
    doc: "Keeps the records in memory (tests).",
    example: "let out = etl::sink::collect();\npipeline! { ... | collect(out) }",
};

/// Not the plain mapping: the handle is borrowed (`&(handle)`), so the user keeps it to read
/// the records back after the run.
fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let handle = a.first();
    quote_spanned!(a.span=> ::etl::__private::collect_sink(&(#handle)))
}
