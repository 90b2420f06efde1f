//! Persisting the last delivered event id across restarts (`last_event_id_file`).
//!
//! Each batch gets a sequence number and carries the id of its last event. When its
//! acknowledgement resolves, [`Watermark`] (pure) advances over the batches resolved so far
//! **contiguously from the first** as done (delivered, or rejected = dead-lettered), so an id
//! is never recorded while an earlier batch is unresolved or failed; [`IdFile`] writes the new
//! id atomically (temporary file, fsync, rename, fsync of the directory).

use crate::ack::Status;
use crate::durable::write_atomically;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The contiguous watermark of resolved batches.
#[derive(Debug, Default)]
pub(crate) struct Watermark {
    /// The sequence number of the first batch not yet resolved as done.
    next: u64,
    /// Batches resolved as done after an unresolved one: their last event ids.
    ahead: BTreeMap<u64, Arc<str>>,
    /// A batch failed (errored): the watermark never moves again in this run.
    stuck: bool,
}

impl Watermark {
    /// Batch `seq` (whose last event had id `id`) resolved with `status`: the id the watermark
    /// reached if it moved, else `None`.
    pub(crate) fn resolved(&mut self, seq: u64, id: Arc<str>, status: Status) -> Option<Arc<str>> {
        if self.stuck || seq < self.next {
            return None;
        }
        if !status.is_done() {
            self.stuck = true;
            self.ahead.clear();
            return None;
        }
        self.ahead.insert(seq, id);
        let mut reached = None;
        while let Some(id) = self.ahead.remove(&self.next) {
            reached = Some(id);
            self.next += 1;
        }
        reached
    }
}

/// The file holding the last delivered event id, and the watermark that decides when to write.
#[derive(Debug)]
pub(crate) struct IdFile {
    path: PathBuf,
    watermark: Watermark,
    /// What the file holds (skip writes that change nothing).
    written: Option<Arc<str>>,
}

impl IdFile {
    pub(crate) fn new(path: PathBuf, current: Option<&str>) -> IdFile {
        IdFile { path, watermark: Watermark::default(), written: current.map(Arc::from) }
    }

    /// The id stored at `path`: `Ok(None)` when the file does not exist; a trailing line end
    /// (from a hand edit) is not part of the id (ids cannot contain CR or LF).
    pub(crate) fn read(path: &Path) -> std::io::Result<Option<String>> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Batch `seq` resolved: write the id the watermark reached, if it changed. A failed write
    /// is logged, not fatal: after a restart the source resumes from the older id and the
    /// events after it are delivered again (at least once, never lost).
    pub(crate) fn resolved(&mut self, seq: u64, id: Arc<str>, status: Status) {
        let Some(id) = self.watermark.resolved(seq, id, status) else {
            if !status.is_done() {
                tracing::debug!(path = %self.path.display(), seq, "batch not delivered: the stored last event id stays");
            }
            return;
        };
        if self.written.as_deref() == Some(&*id) {
            return;
        }
        match write_atomically(&self.path, id.as_bytes()) {
            Ok(()) => self.written = Some(id),
            Err(e) => tracing::warn!(error = %e, path = %self.path.display(), "could not store the last event id"),
        }
    }
}
