//! `nats(stream = "..", durable = "..", subject = "..", ...) [as T]`: a NATS JetStream source,
//! a durable pull consumer with explicit acks (feature `nats`).

use super::{ArgSpec, Build, Category, Kind, Op, Typing, BATCH_ARGS};

/// The `nats` source.
pub const OP: Op = Op {
    name: "nats",
    category: Category::Source,
    positional: None,
    args: &[
        ArgSpec::required("stream", Kind::Str, "The JetStream stream (`${VAR}` resolved at start-up)."),
        ArgSpec::required("durable", Kind::Str, "The durable pull consumer; processes with the same one share the messages."),
        ArgSpec::optional("url", Kind::Str, "\"${NATS_URL:-nats://127.0.0.1:4222}\"", "The server's URL."),
        ArgSpec::optional(
            "subject",
            Kind::Str,
            "every subject of the stream",
            "The consumer's filter subject (wildcards allowed); what a created stream captures.",
        ),
        ArgSpec::optional("create", Kind::Bool, "false", "Create the stream and the consumer when missing (else a start-up error names them)."),
        ArgSpec::optional("max_deliver", Kind::Count, "5", "Deliveries before a failing message is dead-lettered and terminated (`+TERM`)."),
        ArgSpec::optional("ack_wait", Kind::Duration, "30s", "How long the server waits for an ack; progress acks extend it while a batch is in flight."),
        ArgSpec::optional("nak_delay", Kind::Duration, "1s", "Delay of the first nak after a failed batch, doubled per later delivery."),
        ArgSpec::optional("progress", Kind::Bool, "true", "Send progress acks (`+WPI`) for messages in flight past half of `ack_wait`."),
    ],
    shared: BATCH_ARGS,
    accepts_as: true,
    positions: super::PositionRole::None,
    feature: Some("nats"),
    typing: Typing::JsonSource,
    build: Build::Connector { path: &["etl", "source", "nats"], record_type: true },
    doc: "Reads a JetStream stream through a durable pull consumer; acks a batch's messages once it is delivered or dead-lettered, naks them with a growing delay when it failed, dead-letters and terminates a message on its last delivery.",
    example: "nats(stream = \"ORDERS\", durable = \"etl-orders\", subject = \"orders.>\", create = true, batch_size = 500) as Order | ...",
};
