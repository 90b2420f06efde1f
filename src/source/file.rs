//! `file`: read a JSONL or CSV file once. (Skeleton: body being written.)

use super::{BatchStream, Source, SourceContext};
use crate::batch::{BatchConfig, BatchOptions};
use crate::format::Format;
use crate::record::Record;
use std::marker::PhantomData;

/// Reads a JSONL or CSV file once, decoding each line / row into `T`. See [`file`].
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

impl<T: Record> Source for FileSource<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("file {}", self.path)
    }

    async fn open(self, _ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        todo!("file source")
    }
}
