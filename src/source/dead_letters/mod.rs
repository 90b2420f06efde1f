//! `dead_letters`: read the entries of a dead-letter file back as records, and remove each
//! one once its batch is delivered.
//!
//! The source reads a [`FileDeadLetters`] queue (the JSONL file a run dead-letters into by
//! default) once: the entries present when it opens, oldest first, in batches like any other
//! source (`batch_size`, `batch_timeout`, ...).
//!
//! * **Decoding.** Each entry's raw `payload` is decoded as JSON into the pipeline's record
//!   type: a JSONL line, or a JSON message body (SQS, Kafka, SSE). An entry that does not
//!   decode (a CSV row, bad bytes, a type that changed again) is a
//!   [`FailureKind::Decode`](crate::batch::FailureKind::Decode) failure holding exactly its
//!   bytes: the run dead-letters it again, into *its* queue.
//! * **Acknowledgement.** The entries of a batch are removed from the file (atomically, by id)
//!   once the batch is delivered, or done with some of its records dead-lettered into the
//!   run's queue; a batch that errored (a sink that failed) leaves its entries in the file for
//!   the next run. The run returns only once the file has been updated for every batch.
//! * **Metadata.** A record's [`Meta`](crate::record::Meta) gives the entry's original
//!   position ([`Meta::position`](crate::record::Meta::position)), its raw bytes, its headers
//!   and the source that first failed it
//!   ([`Extra::original_source`](crate::record::Extra::original_source)); an entry written
//!   again keeps that source and position.
//! * **Refused at start-up:** reading the queue the run itself dead-letters into (its
//!   [`Run::dead_letters`](crate::pipeline::Run::dead_letters), or the default
//!   `dead-letters/<name>.jsonl`): a record failing again would be written into the file being
//!   read and removed with its batch. Give the run another queue.
//!
//! The entries are read into memory at start-up (a dead-letter file holds the failures of a
//! run, not its data). Nothing else may write or remove entries of the file while the source
//! reads it except through the same process (writes from other processes are not locked out;
//! see [`FileDeadLetters`]).
//!
//! ```no_run
//! use etl::prelude::*;
//! use etl::dead_letter::FileDeadLetters;
//!
//! #[derive(Debug, Clone, Record, Serialize, Deserialize)]
//! struct Order { id: i64, amount_cents: i64 }
//!
//! # async fn demo() -> etl::Result<()> {
//! // Orders that failed yesterday, once the bug is fixed: back into the lake.
//! let report = pipeline! {
//!     dead_letters(path = "dead-letters/orders.jsonl", batch_size = 100) as Order
//!     | file(dir = "lake/orders")
//! }
//! .dead_letters(FileDeadLetters::new("dead-letters/orders-replay.jsonl"))
//! .run()
//! .await?;
//! # Ok(()) }
//! ```

mod decode;
mod stream;
#[cfg(test)]
mod tests;

use super::{BatchStream, Source, SourceContext};
use crate::batch::{BatchConfig, BatchOptions};
use crate::config::{interpolate, ConfigError};
use crate::dead_letter::{DeadLetters, FileDeadLetters};
use crate::error::Error;
use crate::record::Record;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// Reads the entries of a dead-letter file as records of type `T`. See [`dead_letters()`]
/// and the [module docs](self).
#[derive(Debug)]
pub struct DeadLettersSource<T> {
    path: String,
    batching: BatchConfig,
    _record: PhantomData<fn() -> T>,
}

/// Read the dead-letter file at `path` (`${VAR}` resolved at start-up): its entries present
/// at start-up, decoded as JSON into `T`, each removed from the file once its batch is
/// delivered.
///
/// ```
/// use etl::prelude::*;
/// let src = etl::source::dead_letters::<Json>("dead-letters/orders.jsonl").batch_size(100);
/// assert_eq!(src.describe(), "dead_letters dead-letters/orders.jsonl");
/// ```
pub fn dead_letters<T>(path: impl Into<String>) -> DeadLettersSource<T> {
    DeadLettersSource { path: path.into(), batching: BatchConfig::default(), _record: PhantomData }
}

impl<T> BatchOptions for DeadLettersSource<T> {
    fn batching(&mut self) -> &mut BatchConfig {
        &mut self.batching
    }
}

impl<T: Record> Source for DeadLettersSource<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("dead_letters {}", self.path)
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        let path = interpolate(&self.path)?;
        if let Some(run_queue) = ctx.dead_letters.as_deref() {
            refuse_the_run_queue(Path::new(&path), run_queue)?;
        }
        let queue = FileDeadLetters::new(&path);
        // A queue that cannot be read is an error, not an empty queue.
        let entries = queue.list().await.map_err(Error::Source)?;
        tracing::debug!(path = %path, entries = entries.len(), "dead_letters source opened");
        Ok(stream::entries_in_batches::<T>(entries, queue, &path, self.batching, ctx.shutdown))
    }
}

/// The error when `path` is the file of the run's own dead-letter queue.
fn refuse_the_run_queue(path: &Path, run_queue: &dyn DeadLetters) -> Result<(), Error> {
    let Some(run_path) = run_queue.path() else { return Ok(()) };
    if resolved(path) != resolved(run_path) {
        return Ok(());
    }
    Err(Error::Config(ConfigError::Invalid {
        option: "path",
        message: format!(
            "the dead_letters source reads `{}`, which is also where this run dead-letters records (`{}`): a record failing again \
             would be written into the file being read. Give the run another queue, e.g. \
             `.dead_letters(FileDeadLetters::new(\"dead-letters/replay.jsonl\"))`, or another name (its default queue is \
             `dead-letters/<name>.jsonl`)",
            path.display(),
            run_path.display()
        ),
    }))
}

/// `path` made comparable: canonical when it exists, else its directory's canonical path and
/// its name (a queue file not created yet), else absolute.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(canonical) = std::fs::canonicalize(path) {
        return canonical;
    }
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        if let Ok(dir) = std::fs::canonicalize(dir) {
            return dir.join(name);
        }
    }
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
