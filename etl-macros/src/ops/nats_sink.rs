//! `nats(subject = .., ...)`: a sink publishing each record as a JSON message to NATS
//! JetStream (feature `nats`).

use super::{ArgSpec, Build, Category, Kind, Op, Typing};

/// The `nats` sink.
pub const OP: Op = Op {
    name: "nats",
    category: Category::Sink,
    positional: None,
    args: &[
        ArgSpec::required(
            "subject",
            Kind::Expr,
            "The subject: a string (`${VAR}` resolved; `{field}` replaced by the record's field) or a closure `|r: &T| ..` returning it.",
        ),
        ArgSpec::optional("url", Kind::Str, "\"${NATS_URL:-nats://127.0.0.1:4222}\"", "The server's URL."),
        ArgSpec::optional("msg_id", Kind::Str, "the record's source position", "The field whose value is the `Nats-Msg-Id` (deduplication)."),
        ArgSpec::optional("dedup", Kind::Bool, "true", "Set a `Nats-Msg-Id` on every message."),
        ArgSpec::optional("headers", Kind::Expr, "none", "Headers on every message: an iterable of `(name, value)` string pairs."),
        ArgSpec::optional("ack_timeout", Kind::Duration, "10s", "How long a commit waits for a publish's acknowledgement."),
    ],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: Some("nats"),
    typing: Typing::Keep,
    build: Build::Connector { path: &["etl", "sink", "nats"], record_type: false },
    doc: "Publishes records as JSON messages to JetStream; a batch is acknowledged once the stream acknowledged every publish; a `Nats-Msg-Id` from the source position (or a key field) stores a redelivered batch once.",
    example: "... | nats(subject = \"orders.{region}\", msg_id = \"id\")",
};
