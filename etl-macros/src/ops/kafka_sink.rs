//! `kafka(topic = "..", key = .., ...)`: a sink producing each record as a JSON message to an
//! Apache Kafka topic (feature `kafka`).

use super::{ArgSpec, Build, Category, Kind, Op, Typing};

/// The `kafka` sink.
pub const OP: Op = Op {
    name: "kafka",
    category: Category::Sink,
    positional: None,
    args: &[
        ArgSpec::required("topic", Kind::Str, "The topic to produce to (`${VAR}` resolved at start-up)."),
        ArgSpec::optional("brokers", Kind::Str, "\"${KAFKA_BROKERS:-localhost:9092}\"", "Bootstrap servers, `host:port,host:port`."),
        ArgSpec::optional(
            "key",
            Kind::Expr,
            "none",
            "The message key: a field's name (`\"id\"`) or a closure `|r| ..` returning bytes or a string.",
        ),
        ArgSpec::optional("headers", Kind::Expr, "none", "Headers on every message: an iterable of `(name, value)` pairs."),
        ArgSpec::optional("properties", Kind::Expr, "none", "Any librdkafka producer properties: an iterable of `(key, value)` string pairs."),
    ],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: Some("kafka"),
    typing: Typing::Keep,
    build: Build::Connector { path: &["etl", "sink", "kafka"], record_type: false },
    doc: "Produces records as JSON messages with an idempotent producer (`acks=all`); a batch is acknowledged once every delivery report came back; a message over the broker's size limit is dead-lettered.",
    example: "... | kafka(topic = \"orders-clean\", key = \"id\")",
};
