//! `file`: read a JSONL or CSV file once.
//!
//! # JSONL
//!
//! The file is read in 256 KiB chunks; each complete line is a zero-copy [`Bytes`] slice of its
//! chunk, kept as the record's raw bytes ([`Meta::raw`]). Blank lines are skipped (they still
//! count for line numbers), a trailing `\r` is stripped, and so is a UTF-8 byte order mark at
//! the start of the file. A last line without a newline is still a record. A line that does not
//! decode (bad JSON, wrong field type, invalid UTF-8) becomes a
//! [`FailureKind::Decode`](crate::batch::FailureKind::Decode) failure holding exactly its bytes,
//! and reading goes on.
//!
//! Both formats are read and decoded on a blocking thread, which hands decoded chunks over a
//! small bounded channel: memory is bounded by a few chunks and the longest line (or CSV
//! record), whatever the file size, and decoding (most of a file pipeline's work) overlaps with
//! the operators and the sink.
//!
//! # CSV
//!
//! The first row is the header. Typed records are deserialised with the `csv` crate's serde
//! support (an empty cell is `None` for an `Option` field); dynamic records ([`Json`](crate::Json),
//! whose schema is dynamic) become objects of header → **string** cell, with no type inference
//! (`007` stays `"007"`). Positions are [`Position::Line`] with the 1-based **record** number,
//! the header not counted (a quoted cell may span lines, so it can differ from the physical line,
//! which error messages also give). Good rows keep no raw bytes. A row that fails to decode (a
//! bad cell, the wrong number of cells, invalid UTF-8) becomes a failure whose payload is the row
//! re-encoded as CSV, without its line terminator.

mod decode;
mod stream;
#[cfg(test)]
mod tests;

use super::{BatchStream, Source, SourceContext};
use crate::ack::Ack;
use crate::batch::{batched, BatchConfig, BatchOptions, Incoming};
use crate::config::{interpolate, ConfigError};
use crate::error::{ConnectorError, Error};
use crate::format::Format;
use crate::record::Record;
use futures::StreamExt;
use std::marker::PhantomData;
use std::sync::Arc;
use stream::decoded_on_a_thread;
// The readers, shared with the `file_watch` source (which reads each file it picks up with them).
#[cfg(feature = "file-watch")]
pub(crate) use stream::{read_chunk, read_jsonl_in_chunks};
pub(crate) use stream::{read_csv, read_jsonl};

/// Bytes read from a JSONL file at a time.
///
/// ```
/// assert_eq!(etl::source::file::CHUNK_BYTES, 256 * 1024);
/// ```
pub const CHUNK_BYTES: usize = 256 * 1024;

/// CSV rows handed from the reading thread at a time.
const CSV_CHUNK: usize = 1024;

/// One decoded line or row, or a read error that ends the stream.
pub(crate) type Item<T> = crate::Result<Incoming<T, ()>>;

/// Reads a JSONL or CSV file once, decoding each line / row into `T`. See [`file()`].
#[derive(Debug)]
pub struct FileSource<T> {
    path: String,
    format: Option<Format>,
    batching: BatchConfig,
    _record: PhantomData<fn() -> T>,
}

/// Read the file at `path` (`${VAR}` resolved at start-up) once.
///
/// ```
/// use etl::prelude::*;
/// let src = etl::source::file::<Json>("events.jsonl").format(Format::Jsonl).batch_size(500);
/// ```
pub fn file<T>(path: impl Into<String>) -> FileSource<T> {
    FileSource { path: path.into(), format: None, batching: BatchConfig::default(), _record: PhantomData }
}

impl<T> FileSource<T> {
    /// The file's format. Default: from the extension (`.jsonl`, `.ndjson`, `.json`, `.csv`).
    ///
    /// ```
    /// use etl::prelude::*;
    /// let src = etl::source::file::<Json>("events.log").format(Format::Jsonl);
    /// ```
    pub fn format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }
}

impl<T> BatchOptions for FileSource<T> {
    fn batching(&mut self) -> &mut BatchConfig {
        &mut self.batching
    }
}

fn component(path: &str) -> String {
    format!("file source {path}")
}

impl<T: Record> Source for FileSource<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("file {}", crate::config::display(&self.path))
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        let path = interpolate(&self.path)?;
        let format = match self.format.or_else(|| Format::from_path(path.as_ref())) {
            Some(format) => format,
            None => {
                return Err(Error::Config(ConfigError::Invalid {
                    option: "format",
                    message: format!(
                    "cannot tell the format of `{path}` from its extension; set it with `.format(Format::Jsonl)` or `.format(Format::Csv)`"
                ),
                }))
            }
        };
        let file = tokio::fs::File::open(&path).await.map_err(|e| Error::Source(ConnectorError::permanent(component(&path), e)))?;
        tracing::debug!(path = %path, ?format, "file source opened");
        let origin: Arc<str> = Arc::from(format!("file {path}"));
        let (file, shutdown) = (file.into_std().await, ctx.shutdown.clone());
        let input = match format {
            Format::Jsonl => decoded_on_a_thread(path, move |path, send| read_jsonl::<T, _>(file, path, &shutdown, send)).boxed(),
            Format::Csv => decoded_on_a_thread(path, move |path, send| read_csv::<T, _>(file, path, &shutdown, send)).boxed(),
        };
        Ok(batched(input, self.batching, ctx.shutdown, origin, |_| Ack::none()))
    }

    /// JSON Lines: a dead letter holds the record's JSON text. CSV: `None` (a
    /// row needs its header; replay such entries with a `dead_letters(..)` pipeline).
    fn dead_letter_decoder(&self) -> Option<super::DeadLetterDecoder<T>> {
        match self.format.or_else(|| Format::from_path(self.path.as_ref())) {
            Some(Format::Jsonl) => Some(super::json_decoder::<T>()),
            _ => None,
        }
    }
}
