//! `periodic(every = 10s, poll = f, ...) [as T]`: a source that calls an async function on a
//! fixed schedule and streams the records it returns.

use super::{ArgSpec, Args, Build, Category, Kind, Op, Typing, BATCH_ARGS};
use quote::{quote, quote_spanned};

/// The `periodic` source.
pub const OP: Op = Op {
    name: "periodic",
    category: Category::Source,
    positional: None,
    args: &[
        ArgSpec::required("every", Kind::Duration, "The period: a tick at start-up, then every period on a fixed schedule (polls never overlap; ticks a slow poll outlasted are skipped and counted)."),
        ArgSpec::required("poll", Kind::Expr, "An `async fn() -> Result<Vec<T>, E>` (E: Display), or a closure without arguments returning such a future."),
        ArgSpec::optional("retries", Kind::Int, "3", "Retries of a failed poll within its tick (exponential backoff with jitter); then the source waits for the next tick."),
        ArgSpec::optional("backoff", Kind::Duration, "1s", "The delay before the first retry of a failed poll, doubling after each."),
        ArgSpec::optional("max_polls", Kind::Int, "no limit", "Stop after this many ticks were polled (failed ones included)."),
        ArgSpec::optional(
            "max_consecutive_failures",
            Kind::Int,
            "no limit (keeps ticking)",
            "End the run with an error once this many ticks in a row failed on every attempt.",
        ),
    ],
    shared: BATCH_ARGS,
    accepts_as: true,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::InferredSource,
    build: Build::Custom(gen),
    doc: "Calls an async function on a fixed schedule and streams the records it returns (an API polled every 10 s); failed polls retried with backoff, no acknowledgement; each record's position is its index.",
    example: "periodic(every = 10s, poll = fetch_readings, retries = 5) as Reading | ...",
};

/// Not the plain mapping: `::<T>` only with `as T` (without it the record type is the poll's,
/// inferred, as `iter`'s).
fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let ty = match a.as_type {
        Some(ty) => quote_spanned!(a.span=> ::<#ty>),
        None => proc_macro2::TokenStream::new(),
    };
    let arg = |name: &str| match a.get(name) {
        Some(v) => quote!(#v),
        // Reported by the checker; never generated without its error.
        None => quote_spanned!(a.span=> ::core::compile_error!("etl-macros: missing required argument")),
    };
    let (every, poll) = (arg("every"), arg("poll"));
    super::gen::set_all(&OP, quote_spanned!(a.span=> ::etl::source::periodic #ty (#every, #poll)), a)
}
