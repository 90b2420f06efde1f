//! `kafka(topics = [..], group = "..", ...) [as T]`: an Apache Kafka consumer-group source
//! (feature `kafka`).

use super::{ArgSpec, Build, Category, Kind, Op, Typing, BATCH_ARGS};

/// The `kafka` source.
pub const OP: Op = Op {
    name: "kafka",
    category: Category::Source,
    positional: None,
    args: &[
        ArgSpec::required("topics", Kind::Expr, "The topics to read: `[\"orders\"]`, or any iterable of strings."),
        ArgSpec::required("group", Kind::Str, "The consumer group (`${VAR}` resolved at start-up)."),
        ArgSpec::optional("brokers", Kind::Str, "\"${KAFKA_BROKERS:-localhost:9092}\"", "Bootstrap servers, `host:port,host:port`."),
        ArgSpec::optional(
            "auto_offset_reset",
            Kind::Str,
            "\"earliest\"",
            "Where a group without a committed offset starts: `\"earliest\"` or `\"latest\"`.",
        ),
        ArgSpec::optional("poll_timeout", Kind::Duration, "100ms", "Longest wait of one poll of the consumer."),
        ArgSpec::optional("session_timeout", Kind::Duration, "45s", "The group session timeout (`session.timeout.ms`)."),
        ArgSpec::optional(
            "security_protocol",
            Kind::Str,
            "librdkafka's (`plaintext`)",
            "`plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl` (TLS needs librdkafka's `ssl` feature).",
        ),
        ArgSpec::optional("sasl_mechanism", Kind::Str, "none", "`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, ..."),
        ArgSpec::optional("sasl_username", Kind::Str, "none", "The SASL user (`${VAR}` resolved at start-up)."),
        ArgSpec::optional("sasl_password", Kind::Str, "none", "The SASL password (`${VAR}` resolved at start-up; never printed).").secret(),
        ArgSpec::optional("ssl_ca_location", Kind::Str, "none", "A CA certificate file for TLS."),
        ArgSpec::optional("properties", Kind::Expr, "none", "Any librdkafka consumer properties: an iterable of `(key, value)` string pairs."),
    ],
    shared: BATCH_ARGS,
    accepts_as: true,
    positions: super::PositionRole::Seeks,
    feature: Some("kafka"),
    typing: Typing::JsonSource,
    build: Build::Connector { path: &["etl", "source", "kafka"], record_type: true },
    doc: "Reads topics as a member of a consumer group; commits, per partition, only the offsets below the first batch not yet delivered or dead-lettered; seeks back and redelivers after a failed batch; commits on rebalance and at shutdown.",
    example: "kafka(topics = [\"orders\"], group = \"etl-orders\", batch_size = 500, batch_timeout = 2s) as Order | ...",
};
