//! `rabbitmq(routing_key = .., exchange = "..", ...)`: a sink publishing each record as a JSON
//! message to a RabbitMQ exchange, with publisher confirms (feature `rabbitmq`).

use super::{ArgSpec, Build, Category, Kind, Op, Typing};

/// The `rabbitmq` sink.
pub const OP: Op = Op {
    name: "rabbitmq",
    category: Category::Sink,
    positional: None,
    args: &[
        ArgSpec::required(
            "routing_key",
            Kind::Expr,
            "The routing key: a string (`\"orders\"`; `${VAR}` resolved at start-up) or a closure `|r: &T| ..` returning one.",
        ),
        ArgSpec::optional(
            "url",
            Kind::Str,
            "\"${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}\"",
            "The broker, `amqp://user:password@host:port/vhost` (the password is never printed).",
        ),
        ArgSpec::optional("exchange", Kind::Str, "\"\"", "The exchange to publish to (it must exist); `\"\"` routes to the queue the key names."),
        ArgSpec::optional("mandatory", Kind::Bool, "true", "Unroutable messages come back, are published again, then fail the commit."),
        ArgSpec::optional("persistent", Kind::Bool, "true", "Persistent messages (`delivery_mode` 2)."),
    ],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: Some("rabbitmq"),
    typing: Typing::Keep,
    build: Build::Connector { path: &["etl", "sink", "rabbitmq"], record_type: false },
    doc: "Publishes records as JSON messages; `commit` waits for the broker's confirm of each; nacked or returned (unroutable) messages are published again, then the batch fails and is written again.",
    example: "... | rabbitmq(exchange = \"events\", routing_key = \"order.clean\")",
};
