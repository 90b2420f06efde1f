//! `sse(url = "..", event_filter = "message", ...) [as T]`: a Server-Sent-Events source that
//! reconnects with `Last-Event-ID` (feature `sse`, on by default).

use super::{ArgSpec, Build, Category, Kind, Op, Set, Typing, Value, BATCH_ARGS};
use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

/// The `sse` source.
pub const OP: Op = Op {
    name: "sse",
    category: Category::Source,
    positional: None,
    args: &[
        ArgSpec::required("url", Kind::Str, "The event stream's URL (`${VAR}` resolved at start-up)."),
        ArgSpec::optional(
            "headers",
            Kind::Expr,
            "none",
            "Request headers: any iterable of `(name, value)` string pairs; values take `${VAR}` and never print.",
        )
        .set(Set::Custom(headers)),
        ArgSpec::optional("event_filter", Kind::Str, "every event type", "Only events of this type become records."),
        ArgSpec::optional(
            "data_format",
            Kind::DataFormat,
            "\"json\"",
            "`\"json\"` decodes `data` into the record type; `\"text\"` reads it as `{\"data\": text}`.",
        ),
        ArgSpec::optional("reconnect", Kind::Expr, "true", "Reconnect (with `Last-Event-ID`) when the connection drops."),
        ArgSpec::optional(
            "reconnect_delay",
            Kind::Duration,
            "3s",
            "First reconnect delay (exponential backoff with jitter; the server's `retry:` replaces it).",
        ),
        ArgSpec::optional("max_reconnects", Kind::Int, "10", "Consecutive failed connections before the run fails."),
        ArgSpec::optional("idle_timeout", Kind::Duration, "none (silence is normal)", "Reconnect after this long without a byte.")
            .set(Set::Custom(idle_timeout)),
        ArgSpec::optional("last_event_id", Kind::Str, "none", "Resume after this event id."),
        ArgSpec::optional(
            "last_event_id_file",
            Kind::Str,
            "none",
            "Keep the id of the last delivered event in this file (atomic rename) and resume after it on the next start.",
        ),
        ArgSpec::optional("max_event_bytes", Kind::Int, "1 MiB", "An event larger than this is dead-lettered (truncated) and the stream goes on."),
    ],
    shared: BATCH_ARGS,
    accepts_as: true,
    positions: super::PositionRole::None,
    feature: Some("sse"),
    typing: Typing::JsonSource,
    build: Build::Connector { path: &["etl", "source", "sse"], record_type: true },
    doc: "Reads a Server-Sent-Events stream; the event id and type stay beside the record as metadata; undecodable data is dead-lettered with its raw text.",
    example: "sse(url = \"${STREAM_URL}\", event_filter = \"message\", batch_size = 100) as Json | ...",
};

/// Not the plain mapping: the builder takes one header per call (`.header(name, value)`), the
/// argument any iterable of pairs. (The loop is the macro's code, not spanned on the user's
/// tokens: clippy would judge `for .. in [one pair]` as theirs.)
pub(super) fn headers(source: TokenStream, headers: &Value, _span: Span) -> TokenStream {
    // Hygienic, so that the user's expression cannot see (or be shadowed by) the bindings.
    let (bound, name, value) = (
        Ident::new("__etl_source", Span::mixed_site()),
        Ident::new("__etl_name", Span::mixed_site()),
        Ident::new("__etl_value", Span::mixed_site()),
    );
    quote!({
        let mut #bound = #source;
        for (#name, #value) in #headers {
            #bound = #bound.header(#name, #value);
        }
        #bound
    })
}

/// Not the plain mapping: the builder takes an `Option` (`None` turns the timeout off).
pub(super) fn idle_timeout(source: TokenStream, timeout: &Value, span: Span) -> TokenStream {
    let method = Ident::new("idle_timeout", span);
    quote!(#source.#method(::core::option::Option::Some(#timeout)))
}
