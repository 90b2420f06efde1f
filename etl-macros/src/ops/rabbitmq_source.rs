//! `rabbitmq(queue = "..", prefetch_count = .., max_redeliveries = .., ...) [as T]`: a
//! RabbitMQ queue consumer (feature `rabbitmq`).

use super::{ArgSpec, Build, Category, Kind, Op, Typing, BATCH_ARGS};

/// The `rabbitmq` source.
pub const OP: Op = Op {
    name: "rabbitmq",
    category: Category::Source,
    positional: None,
    args: &[
        ArgSpec::required("queue", Kind::Str, "The queue to consume (`${VAR}` resolved at start-up)."),
        ArgSpec::optional(
            "url",
            Kind::Str,
            "\"${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}\"",
            "The broker, `amqp://user:password@host:port/vhost` (the password is never printed).",
        ),
        ArgSpec::optional("declare", Kind::Bool, "false", "Declare the queue, the exchange and the binding (else they must exist)."),
        ArgSpec::optional("queue_type", Kind::Str, "the broker's (classic)", "The type of a declared queue: `classic` or `quorum`."),
        ArgSpec::optional("exchange", Kind::Str, "none", "The exchange the queue is bound to (declared and bound with `declare = true`)."),
        ArgSpec::optional("exchange_type", Kind::Str, "\"direct\"", "The type of a declared exchange: `direct`, `fanout`, `topic`, `headers`."),
        ArgSpec::optional("routing_key", Kind::Str, "none", "The binding key of the queue to the exchange."),
        ArgSpec::optional("prefetch_count", Kind::Int, "2000", "Unacknowledged deliveries at most; raised to `batch_size` when lower."),
        ArgSpec::optional(
            "max_redeliveries",
            Kind::Int,
            "5",
            "Dead-letter (then acknowledge) a message redelivered more times than this (`x-delivery-count` on quorum queues).",
        ),
    ],
    shared: BATCH_ARGS,
    accepts_as: true,
    positions: super::PositionRole::None,
    feature: Some("rabbitmq"),
    typing: Typing::JsonSource,
    build: Build::Connector { path: &["etl", "source", "rabbitmq"], record_type: true },
    doc: "Consumes a queue with manual acknowledgements: acknowledges a batch's deliveries once it is delivered or dead-lettered, rejects them with requeue when it failed; reconnects with backoff after a lost connection.",
    example: "rabbitmq(queue = \"orders\", prefetch_count = 1000, max_redeliveries = 5, batch_size = 500) as Order | ...",
};
