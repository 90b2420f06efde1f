//! `s3`: write each batch as one object in an Amazon S3 bucket (or any S3-compatible store),
//! as CSV with a header row or as JSON lines.
//!
//! One `PutObject` per batch, with its content type (`text/csv; charset=utf-8` or
//! `application/x-ndjson`) and no ACL (objects stay as private as the bucket makes them). The
//! batch is encoded like the [`file`](crate::sink::file()) sink does: CSV quotes commas,
//! quotes and newlines, integers stay integers; a record that cannot be encoded is rejected
//! (dead-lettered) and the others are written.
//!
//! # Keys
//!
//! [`S3Sink::key`] sets the key template. Placeholders:
//!
//! | placeholder | value |
//! |---|---|
//! | `{seq}` | the batch number of this sink, from 0, zero-padded to 6 digits |
//! | `{run}` | unique per sink instance: start time in milliseconds and process id (`1718000000000-4242`) |
//! | `{first_position}` | the first record's position: an SQS message id, a line number, `partition-offset` (characters other than letters, digits, `-`, `_`, `.` become `_`) |
//! | `{date}`, `{hour}` | the UTC date (`2024-06-10`) and hour (`13`) of the write, for time-partitioned prefixes |
//! | `{ext}` | `csv` or `jsonl` |
//!
//! `{{` and `}}` are literal braces; any other placeholder is an error at start-up naming it.
//! The default is `{date}/batch-{run}-{seq}.{ext}`.
//!
//! A retried write of the same batch uses the same key (it is chosen once per batch and kept
//! until the write succeeds), so a retry overwrites rather than duplicates.
//!
//! # Errors
//!
//! Throttling (`SlowDown`), 5xx answers, timeouts and connection failures are retryable (the
//! pipeline retries the batch); access denied, a missing bucket and other 4xx answers are
//! permanent. At start-up the sink checks the bucket with `HeadBucket`.
//!
//! ```no_run
//! use etl::prelude::*;
//! # async fn demo() -> etl::Result<()> {
//! let sink = etl::sink::s3("${BUCKET}")
//!     .endpoint_url("http://127.0.0.1:5000")
//!     .format(Format::Csv)
//!     .key("orders/{date}/{hour}/batch-{first_position}-{seq}.{ext}");
//! Pipeline::from(etl::source::file::<Json>("orders.jsonl")).to(sink).run().await?;
//! # Ok(()) }
//! ```

mod encode;
mod write;

use super::{Encoded, Sink, Written};
use crate::aws::{self, AwsOptions};
use crate::config::interpolate;
use crate::error::ConnectorError;
use crate::format::Format;
use crate::record::{Meta, Position, Record};
use encode::{KeyTemplate, KeyValues};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The default key template.
///
/// ```
/// assert_eq!(etl::sink::s3::DEFAULT_KEY, "{date}/batch-{run}-{seq}.{ext}");
/// ```
pub const DEFAULT_KEY: &str = "{date}/batch-{run}-{seq}.{ext}";

/// The default [`S3Sink::format`] of objects: JSON lines.
///
/// ```
/// assert_eq!(etl::sink::s3::DEFAULT_FORMAT, etl::format::Format::Jsonl);
/// ```
pub const DEFAULT_FORMAT: Format = Format::Jsonl;

/// Writes each batch as one object in an S3 bucket. See [`s3()`] and the [module docs](self).
pub struct S3Sink {
    bucket: String,
    aws: AwsOptions,
    format: Format,
    key: String,
    run: String,
    seq: u64,
    encoded: Encoded,
    /// The key chosen for the batch being written, until its write succeeds: (key, number of
    /// records, first position) so that only a retry of the same batch reuses it.
    frozen: Option<(String, usize, Position)>,
    open: Option<Open>,
}

struct Open {
    client: aws_sdk_s3::Client,
    /// The resolved bucket name.
    bucket: String,
    template: KeyTemplate,
}

impl std::fmt::Debug for S3Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the encoding buffer: it can hold megabytes.
        f.debug_struct("S3Sink")
            .field("bucket", &self.bucket)
            .field("aws", &self.aws)
            .field("format", &self.format)
            .field("key", &self.key)
            .field("run", &self.run)
            .field("seq", &self.seq)
            .field("frozen", &self.frozen)
            .finish_non_exhaustive()
    }
}

/// Write batches as objects into `bucket` (`${VAR}` resolved at start-up, when the sink also
/// checks that the bucket exists).
///
/// ```
/// use etl::prelude::*;
/// let sink = etl::sink::s3("lake").format(Format::Csv).key("orders/{date}/{seq}.{ext}");
/// assert_eq!(Sink::<Json>::describe(&sink), "s3 sink s3://lake");
/// ```
pub fn s3(bucket: impl Into<String>) -> S3Sink {
    static SINKS: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
    let run = match SINKS.fetch_add(1, Ordering::Relaxed) {
        0 => format!("{millis:013}-{}", std::process::id()),
        n => format!("{millis:013}-{}.{n}", std::process::id()),
    };
    S3Sink {
        bucket: bucket.into(),
        aws: AwsOptions::default(),
        format: DEFAULT_FORMAT,
        key: DEFAULT_KEY.into(),
        run,
        seq: 0,
        encoded: Encoded::default(),
        frozen: None,
        open: None,
    }
}

impl S3Sink {
    /// The object format. Default [`DEFAULT_FORMAT`] (JSONL).
    ///
    /// ```
    /// let sink = etl::sink::s3("lake").format(etl::format::Format::Csv);
    /// ```
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// The key template (see the [module docs](self#keys)). Default [`DEFAULT_KEY`].
    ///
    /// ```
    /// let sink = etl::sink::s3("lake").key("events/{date}/{hour}/{first_position}-{seq}.{ext}");
    /// ```
    pub fn key(mut self, template: impl Into<String>) -> Self {
        self.key = template.into();
        self
    }

    /// Send requests to this endpoint instead of AWS's (`http://127.0.0.1:5000` for moto, a
    /// MinIO URL; `${VAR}` resolved at start-up), with path-style addressing. Default: AWS, or
    /// `AWS_ENDPOINT_URL` when set.
    ///
    /// ```
    /// let sink = etl::sink::s3("lake").endpoint_url("${MOTO_URL}");
    /// ```
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.aws.endpoint_url = Some(url.into());
        self
    }

    /// The AWS region (`${VAR}` resolved at start-up). Default: the standard chain
    /// (`AWS_REGION`, the profile's region).
    ///
    /// ```
    /// let sink = etl::sink::s3("lake").region("eu-west-1");
    /// ```
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.aws.region = Some(region.into());
        self
    }

    fn component(&self) -> String {
        format!("s3 sink s3://{}", crate::config::display(&self.bucket))
    }

    async fn ensure_open(&mut self, resources: &crate::resources::Resources) -> Result<(), ConnectorError> {
        if self.open.is_some() {
            return Ok(());
        }
        let component = self.component();
        let permanent = |e: crate::ConfigError| ConnectorError::permanent(component.clone(), e);
        let template = KeyTemplate::parse(&self.key).map_err(permanent)?;
        let bucket = interpolate(&self.bucket).map_err(permanent)?;
        let loaded = aws::load(&self.aws, resources).await.map_err(permanent)?;
        let config = aws_sdk_s3::config::Builder::from(&loaded.config).force_path_style(loaded.custom_endpoint).build();
        let client = aws_sdk_s3::Client::from_conf(config);
        client.head_bucket().bucket(&bucket).send().await.map_err(|e| {
            aws::connector_error(component.clone(), "HeadBucket (does the bucket exist, and may these credentials use it?)", &e)
        })?;
        tracing::debug!(bucket = %bucket, "s3 sink opened");
        self.open = Some(Open { client, bucket, template });
        Ok(())
    }

    /// The key of the batch being written: the frozen one for a retry of the same batch, a new
    /// one otherwise.
    fn key_for(&mut self, template: &KeyTemplate, count: usize, meta: &[Meta]) -> String {
        let first = meta.first().map(|m| m.position.clone()).unwrap_or_default();
        if let Some((key, n, position)) = &self.frozen {
            if *n == count && *position == first {
                return key.clone();
            }
        }
        let values =
            KeyValues { seq: self.seq, run: &self.run, first_position: &first, now: SystemTime::now(), ext: self.format.extension() };
        let key = template.render(&values);
        self.frozen = Some((key.clone(), count, first));
        key
    }
}

impl<T: Record + Sync> Sink<T> for S3Sink {
    fn describe(&self) -> String {
        self.component()
    }

    async fn open(&mut self, ctx: crate::sink::SinkContext) -> Result<(), ConnectorError> {
        self.ensure_open(&ctx.resources).await
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        self.write_batch(records, &[]).await
    }

    async fn write_batch(&mut self, records: &[T], meta: &[Meta]) -> Result<Written, ConnectorError> {
        // Opened by the pipeline; a sink used on its own opens with resources of its own.
        self.ensure_open(&crate::resources::Resources::default()).await?;
        self.encoded.encode(records, self.format, true);
        let rejected = std::mem::take(&mut self.encoded.rejected);
        if self.encoded.count == 0 {
            return Ok(Written::rejecting(rejected));
        }
        let Some(open) = self.open.take() else {
            return Err(ConnectorError::permanent(self.component(), "not open (bug)"));
        };
        let key = self.key_for(&open.template, records.len(), meta);
        // One exact copy; the encoding buffer stays for the next batch instead of growing
        // again from empty.
        let body = bytes::Bytes::copy_from_slice(&self.encoded.bytes);
        let put = write::put(&open.client, &open.bucket, &key, self.format, body, &self.component()).await;
        let bucket = open.bucket.clone();
        self.open = Some(open);
        put?;
        tracing::debug!(bucket = %bucket, key = %key, records = records.len() - rejected.len(), "object written");
        self.seq += 1;
        self.frozen = None;
        Ok(Written::rejecting(rejected))
    }
}

#[cfg(test)]
mod tests;
