//! `s3(bucket = "..", format = "csv", key = "..")`: a sink writing each batch as one object in
//! an S3 bucket (feature `s3`).

use super::{ArgSpec, Build, Category, Kind, Op, Typing};

/// The `s3` sink.
pub const OP: Op = Op {
    name: "s3",
    category: Category::Sink,
    positional: None,
    args: &[
        ArgSpec::required("bucket", Kind::Str, "The bucket (`${VAR}` resolved at start-up)."),
        ArgSpec::optional(
            "key",
            Kind::Str,
            "\"{date}/batch-{run}-{seq}.{ext}\"",
            "Object key template: `{seq}`, `{run}`, `{first_position}`, `{date}`, `{hour}`, `{ext}`.",
        ),
        ArgSpec::optional("format", Kind::Format, "\"jsonl\"", "`\"jsonl\"` or `\"csv\"` (with a header row)."),
        ArgSpec::optional(
            "endpoint_url",
            Kind::Str,
            "AWS, or `AWS_ENDPOINT_URL`",
            "A custom endpoint (moto, MinIO), with path-style addressing.",
        ),
        ArgSpec::optional("region", Kind::Str, "`AWS_REGION` / the profile", "The AWS region."),
    ],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: Some("s3"),
    typing: Typing::Keep,
    build: Build::Connector { path: &["etl", "sink", "s3"], record_type: false },
    doc: "Writes each batch as one object (CSV or JSONL) with `PutObject`; a retried batch keeps its key.",
    example: "... | s3(bucket = \"${BUCKET}\", format = \"csv\", key = \"orders/{date}/{first_position}-{seq}.{ext}\")",
};
