//! `websocket(url = "..", subscribe_messages = [..], ...) [as T]`: a WebSocket source with
//! subscriptions, pings, authentication checks and reconnection (feature `websocket`).

use super::{ArgSpec, Build, Category, Kind, Op, Set, Typing, Value, BATCH_ARGS};
use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

/// The `websocket` source.
pub const OP: Op = Op {
    name: "websocket",
    category: Category::Source,
    positional: None,
    args: &[
        ArgSpec::required("url", Kind::Str, "The `ws://` or `wss://` URL (`${VAR}` resolved at start-up)."),
        ArgSpec::optional(
            "headers",
            Kind::Expr,
            "none",
            "Handshake request headers: any iterable of `(name, value)` string pairs; values take `${VAR}` and never print.",
        )
        .set(Set::Custom(super::sse::headers)),
        ArgSpec::optional(
            "subscribe_messages",
            Kind::Expr,
            "none",
            "Messages sent after every connection and reconnect, in order: any iterable of JSON values or strings; `${VAR}` resolved in their strings.",
        )
        .set(Set::Custom(subscribe_messages))
        .secret(),
        ArgSpec::optional(
            "data_format",
            Kind::DataFormat,
            "\"json\"",
            "`\"json\"` decodes each message into the record type; `\"text\"` reads it as `{\"data\": text}`.",
        ),
        ArgSpec::optional("split_arrays", Kind::Bool, "false", "A message that is a JSON array becomes one record per element."),
        ArgSpec::optional("ping_interval", Kind::Duration, "20s", "Send a ping this often (`0s`: never)."),
        ArgSpec::optional("pong_timeout", Kind::Duration, "10s", "A ping without a pong this long after it means a dead connection: reconnect."),
        ArgSpec::optional("reconnect", Kind::Bool, "true", "Reconnect (re-sending the subscribe messages) when the connection drops or closes."),
        ArgSpec::optional("reconnect_delay", Kind::Duration, "3s", "First reconnect delay (exponential backoff with jitter, capped at 60s)."),
        ArgSpec::optional("max_reconnects", Kind::Int, "10", "Consecutive failed connections before the run fails (reset by a good connection)."),
        ArgSpec::optional("idle_timeout", Kind::Duration, "none (silence is normal)", "Reconnect after this long without any frame.")
            .set(Set::Custom(super::sse::idle_timeout)),
        ArgSpec::optional(
            "auth_ack",
            Kind::Str,
            "none",
            "Each connection must receive a message matching this (a JSON object's fields, or a substring) in time, or the run fails.",
        ),
        ArgSpec::optional("auth_fail", Kind::Str, "none", "A message matching this while authenticating fails the run (no reconnect loop)."),
        ArgSpec::optional("auth_ack_timeout", Kind::Duration, "10s", "How long a connection waits for `auth_ack`."),
        ArgSpec::optional(
            "max_message_bytes",
            Kind::Int,
            "1 MiB",
            "A larger message is dead-lettered (truncated) and the stream goes on; over 8 times this the connection is closed (1009).",
        ),
        ArgSpec::optional("ca_file", Kind::Str, "the Mozilla roots only", "A PEM file of certificates to trust for `wss://`."),
    ],
    shared: BATCH_ARGS,
    accepts_as: true,
    positions: super::PositionRole::None,
    feature: Some("websocket"),
    typing: Typing::JsonSource,
    build: Build::Connector { path: &["etl", "source", "websocket"], record_type: true },
    doc: "Reads a WebSocket feed (text and binary messages, fragments reassembled); at most once across reconnects (no acknowledgement); the URL, connection number, frame kind and arrival time stay beside the record; undecodable messages are dead-lettered with their raw bytes.",
    example: "websocket(url = \"wss://${FEED_HOST}/ws\", subscribe_messages = [json!({\"op\": \"subscribe\"})], split_arrays = true) as Json | ...",
};

/// Not the plain mapping: the builder takes one message per call (`.subscribe(message)`), the
/// argument any iterable of them. (Hygienic bindings, as for `headers`.)
fn subscribe_messages(source: TokenStream, messages: &Value, _span: Span) -> TokenStream {
    let (bound, message) = (Ident::new("__etl_source", Span::mixed_site()), Ident::new("__etl_message", Span::mixed_site()));
    quote!({
        let mut #bound = #source;
        for #message in #messages {
            #bound = #bound.subscribe(#message);
        }
        #bound
    })
}
