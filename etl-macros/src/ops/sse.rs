//! `sse(url = "..", event_filter = "message", ...) [as T]`: a Server-Sent-Events source that
//! reconnects with `Last-Event-ID`.

use super::{ArgSpec, Args, Category, Kind, Op, BATCH_ARGS};
use quote::{quote, quote_spanned};

/// The `sse` source.
pub const OP: Op = Op {
    name: "sse",
    category: Category::Source,
    positional: None,
    args: &[
        ArgSpec { name: "url", kind: Kind::Str, required: true, default: None, doc: "The event stream's URL (`${VAR}` resolved at start-up)." },
        ArgSpec {
            name: "headers",
            kind: Kind::Expr,
            required: false,
            default: Some("none"),
            doc: "Request headers: any iterable of `(name, value)` string pairs; values take `${VAR}` and never print.",
        },
        ArgSpec { name: "event_filter", kind: Kind::Str, required: false, default: Some("every event type"), doc: "Only events of this type become records." },
        ArgSpec { name: "data_format", kind: Kind::DataFormat, required: false, default: Some("\"json\""), doc: "`\"json\"` decodes `data` into the record type; `\"text\"` reads it as `{\"data\": text}`." },
        ArgSpec { name: "reconnect", kind: Kind::Expr, required: false, default: Some("true"), doc: "Reconnect (with `Last-Event-ID`) when the connection drops." },
        ArgSpec { name: "reconnect_delay", kind: Kind::Duration, required: false, default: Some("3s"), doc: "First reconnect delay (exponential backoff with jitter; the server's `retry:` replaces it)." },
        ArgSpec { name: "max_reconnects", kind: Kind::Int, required: false, default: Some("10"), doc: "Consecutive failed connections before the run fails." },
        ArgSpec { name: "idle_timeout", kind: Kind::Duration, required: false, default: Some("none (silence is normal)"), doc: "Reconnect after this long without a byte." },
        ArgSpec { name: "last_event_id", kind: Kind::Str, required: false, default: Some("none"), doc: "Resume after this event id." },
        ArgSpec {
            name: "last_event_id_file",
            kind: Kind::Str,
            required: false,
            default: Some("none"),
            doc: "Keep the id of the last delivered event in this file (atomic rename) and resume after it on the next start.",
        },
        ArgSpec {
            name: "max_event_bytes",
            kind: Kind::Int,
            required: false,
            default: Some("1 MiB"),
            doc: "An event larger than this is dead-lettered (truncated) and the stream goes on.",
        },
    ],
    shared: BATCH_ARGS,
    accepts_as: true,
    doc: "Reads a Server-Sent-Events stream; the event id and type stay beside the record as metadata; undecodable data is dead-lettered with its raw text.",
    example: "sse(url = \"${STREAM_URL}\", event_filter = \"message\", batch_size = 100) as Json | ...",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let ty = a.record_type();
    let url = a.get("url").map(|u| quote!(#u)).unwrap_or_else(|| quote!(""));
    let mut src = quote_spanned!(a.span=> ::etl::source::sse::<#ty>(#url));
    if let Some(headers) = a.get("headers") {
        src = quote!({
            let mut source = #src;
            for (name, value) in #headers {
                source = source.header(name, value);
            }
            source
        });
    }
    for (name, method) in [
        ("event_filter", quote!(event_filter)),
        ("data_format", quote!(data_format)),
        ("reconnect", quote!(reconnect)),
        ("reconnect_delay", quote!(reconnect_delay)),
        ("max_reconnects", quote!(max_reconnects)),
        ("last_event_id", quote!(last_event_id)),
        ("last_event_id_file", quote!(last_event_id_file)),
        ("max_event_bytes", quote!(max_event_bytes)),
    ] {
        if let Some(v) = a.get(name) {
            src = quote!(#src.#method(#v));
        }
    }
    if let Some(v) = a.get("idle_timeout") {
        src = quote!(#src.idle_timeout(::core::option::Option::Some(#v)));
    }
    src
}
