//! `sqs(queue_url = "..", wait_time_seconds = 20, ...) [as T]`: an Amazon SQS source (feature
//! `sqs`).

use super::{ArgSpec, Build, Category, Kind, Op, Typing, BATCH_ARGS};

/// The `sqs` source.
pub const OP: Op = Op {
    name: "sqs",
    category: Category::Source,
    positional: None,
    args: &[
        ArgSpec::required("queue_url", Kind::Str, "The queue's URL (`${VAR}` resolved at start-up)."),
        ArgSpec::optional("endpoint_url", Kind::Str, "AWS, or `AWS_ENDPOINT_URL`", "A custom endpoint (moto, LocalStack)."),
        ArgSpec::optional("region", Kind::Str, "`AWS_REGION` / the profile", "The AWS region."),
        ArgSpec::optional("wait_time_seconds", Kind::Int, "20", "Long-polling wait of one receive, 0 to 20 seconds."),
        ArgSpec::optional(
            "visibility_timeout",
            Kind::Duration,
            "the queue's",
            "How long received messages stay invisible; extended by a heartbeat while in flight.",
        ),
        ArgSpec::optional("max_receives", Kind::Int, "no limit", "Dead-letter (then delete) a message received more times than this."),
        ArgSpec::optional("max_messages_per_poll", Kind::Int, "10", "Messages asked for per receive, 1 to 10."),
        ArgSpec::optional("heartbeat", Kind::Expr, "true", "Extend the visibility of messages in flight past half their timeout."),
    ],
    shared: BATCH_ARGS,
    accepts_as: true,
    positions: super::PositionRole::None,
    feature: Some("sqs"),
    typing: Typing::JsonSource,
    build: Build::Connector { path: &["etl", "source", "sqs"], record_type: true },
    doc: "Reads an SQS queue with long polling; deletes a batch's messages once it is delivered or dead-lettered, makes them visible again when it failed.",
    example: "sqs(queue_url = \"${QUEUE_URL}\", visibility_timeout = 60s, max_receives = 5, batch_size = 100) as Order | ...",
};
