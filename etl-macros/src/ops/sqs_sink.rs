//! `sqs(queue_url = "..")`: a sink sending each record as a JSON message to an Amazon SQS
//! queue (feature `sqs`).

use super::{ArgSpec, Build, Category, Kind, Op, Typing};

/// The `sqs` sink.
pub const OP: Op = Op {
    name: "sqs",
    category: Category::Sink,
    positional: None,
    args: &[
        ArgSpec::required("queue_url", Kind::Str, "The queue's URL (`${VAR}` resolved at start-up)."),
        ArgSpec::optional("endpoint_url", Kind::Str, "AWS, or `AWS_ENDPOINT_URL`", "A custom endpoint (moto, LocalStack)."),
        ArgSpec::optional("region", Kind::Str, "`AWS_REGION` / the profile", "The AWS region."),
        ArgSpec::optional(
            "max_message_bytes",
            Kind::Int,
            "the queue's `MaximumMessageSize`",
            "Largest message body; larger records are dead-lettered.",
        ),
    ],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: Some("sqs"),
    typing: Typing::Keep,
    build: Build::Connector { path: &["etl", "sink", "sqs"], record_type: false },
    doc: "Sends records as JSON messages with `SendMessageBatch`; failed entries are retried, refused ones dead-lettered.",
    example: "... | sqs(queue_url = \"${OUT_QUEUE_URL}\")",
};
