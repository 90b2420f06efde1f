//! The I/O of the S3 sink: one `PutObject` per batch.

use crate::aws::connector_error;
use crate::error::ConnectorError;
use crate::format::Format;
use aws_sdk_s3::primitives::ByteStream;

/// Put `body` (a batch encoded in `format`) under `key`; errors are `component`'s.
pub(super) async fn put(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    format: Format,
    body: bytes::Bytes,
    component: &str,
) -> Result<(), ConnectorError> {
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Jsonl => "application/x-ndjson",
    };
    let put = client.put_object().bucket(bucket).key(key).content_type(content_type).body(ByteStream::from(body)).send().await;
    put.map(|_| ()).map_err(|e| connector_error(format!("{component} key {key}"), "PutObject", &e))
}
