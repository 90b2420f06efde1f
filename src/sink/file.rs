//! `file`: write batches as JSONL or CSV files in a directory (a local data lake).
//! (Skeleton: body being written.)

use super::{Sink, Written};
use crate::error::ConnectorError;
use crate::format::Format;
use crate::record::Record;

/// When a new file is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rolling {
    /// One file per batch.
    PerBatch,
    /// Append batches to one file until it reaches this many bytes.
    Size(u64),
}

/// Writes each batch durably into files of a directory. See [`file`].
#[derive(Debug)]
pub struct FileSink {
    dir: String,
    format: Format,
    prefix: String,
    rolling: Rolling,
    sync: bool,
}

/// Write into the directory `dir` (`${VAR}` resolved at start-up).
///
/// ```
/// use etl::prelude::*;
/// let sink = etl::sink::file("lake").format(Format::Csv).prefix("orders");
/// ```
pub fn file(dir: impl Into<String>) -> FileSink {
    FileSink { dir: dir.into(), format: Format::Jsonl, prefix: "part".into(), rolling: Rolling::PerBatch, sync: true }
}

impl FileSink {
    /// The file format. Default JSONL.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// The file name prefix. Default `part`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// When to start a new file. Default one per batch.
    pub fn rolling(mut self, rolling: Rolling) -> Self {
        self.rolling = rolling;
        self
    }

    /// Whether to fsync before acknowledging. Default true; false trades durability on power
    /// loss for speed.
    pub fn sync(mut self, yes: bool) -> Self {
        self.sync = yes;
        self
    }
}

impl<T: Record + Sync> Sink<T> for FileSink {
    fn describe(&self) -> String {
        format!("file {}", self.dir)
    }

    async fn write(&mut self, _records: &[T]) -> Result<Written, ConnectorError> {
        let _ = (&self.prefix, self.rolling, self.sync, self.format);
        todo!("file sink")
    }
}
