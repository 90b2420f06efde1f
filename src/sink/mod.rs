//! Sinks: where records go. A sink returns only once the batch is durably written.

mod blackhole;
mod collect;
mod encode;
mod file;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "sqs")]
pub mod sqs;
mod stdout;

pub use blackhole::{blackhole, Blackhole};
pub use collect::{collect, Collect, Collected};
pub use encode::Encoded;
pub use file::{file, FileSink, Rolling};
#[cfg(feature = "s3")]
pub use s3::{s3, S3Sink};
#[cfg(feature = "sqs")]
pub use sqs::{sqs, SqsSink};
pub use stdout::{stdout, Stdout};

use crate::error::ConnectorError;
use crate::record::Meta;
use std::future::Future;

/// What a sink reports about a batch it wrote: the records it refused permanently (they are
/// dead-lettered; everything else was written).
///
/// ```
/// let w = etl::sink::Written::all();
/// assert!(w.rejected.is_empty());
/// ```
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// `(index in the batch, reason)` of each record the sink could not write and never will.
    pub rejected: Vec<(usize, String)>,
}

impl Written {
    /// Every record was written.
    pub fn all() -> Written {
        Written::default()
    }
}

/// A destination for records.
///
/// `write` must return only once the records are durable (committed, fsynced, confirmed by the
/// broker): the pipeline acknowledges the source right after. A retryable error makes the
/// pipeline retry the same records with backoff; a permanent one stops the run with nothing
/// acknowledged. Implementing one:
///
/// ```
/// use etl::prelude::*;
/// use etl::sink::Written;
/// struct Count(usize);
/// impl Sink<i64> for Count {
///     fn describe(&self) -> String { "count".into() }
///     async fn write(&mut self, records: &[i64]) -> Result<Written, etl::ConnectorError> {
///         self.0 += records.len();
///         Ok(Written::all())
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot write records of type `{T}`",
    note = "the sink must accept the record type produced by the last step; add `as Type` or a `map` before it"
)]
pub trait Sink<T>: Send {
    /// A short description for logs: the connector and its target.
    fn describe(&self) -> String;

    /// Connect and check the destination (table exists, directory writable) before the source
    /// is opened. Default: nothing to check.
    fn open(&mut self) -> impl Future<Output = Result<(), ConnectorError>> + Send {
        async { Ok(()) }
    }

    /// Durably write `records`.
    fn write(&mut self, records: &[T]) -> impl Future<Output = Result<Written, ConnectorError>> + Send;

    /// Durably write `records`, with the metadata of each (`meta[i]` belongs to `records[i]`).
    /// The pipeline calls this one; the default ignores the metadata and calls
    /// [`write`](Sink::write). Sinks that name their output after the batch's position (an
    /// object key with the first offset) override it. A retry of the same batch passes the
    /// same records and metadata again.
    ///
    /// ```
    /// use etl::prelude::*;
    /// use etl::record::Meta;
    /// use etl::sink::Written;
    /// struct FirstPosition(Vec<String>);
    /// impl Sink<i64> for FirstPosition {
    ///     fn describe(&self) -> String { "first-position".into() }
    ///     async fn write(&mut self, records: &[i64]) -> Result<Written, etl::ConnectorError> {
    ///         self.write_batch(records, &[]).await
    ///     }
    ///     async fn write_batch(&mut self, _: &[i64], meta: &[Meta]) -> Result<Written, etl::ConnectorError> {
    ///         self.0.push(meta.first().map(|m| m.position.to_string()).unwrap_or_default());
    ///         Ok(Written::all())
    ///     }
    /// }
    /// ```
    fn write_batch(&mut self, records: &[T], meta: &[Meta]) -> impl Future<Output = Result<Written, ConnectorError>> + Send {
        let _ = meta;
        self.write(records)
    }

    /// Flush and release resources at the end of the run. Default: nothing to do.
    fn close(&mut self) -> impl Future<Output = Result<(), ConnectorError>> + Send {
        async { Ok(()) }
    }
}
