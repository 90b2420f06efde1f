//! Persisting the last delivered event id across restarts (`last_event_id_file`).
//!
//! Each batch carries the id of its last event. Batches resolve out of order; the shared
//! ordered [`Watermark`] decides which id is the last *delivered* one: it advances over the
//! batches resolved **contiguously from the first** as done (delivered, or rejected =
//! dead-lettered), so an id is never recorded while an earlier batch is unresolved or failed.
//! The acknowledgement callback only updates the watermark and publishes the id it reached; a
//! task of its own writes the file ([`write_atomically`]: temporary file, fsync, rename, fsync
//! of the directory) on the blocking pool, coalescing ids that arrive faster than a write, so
//! neither the pipeline's task nor the callback waits for an fsync. The source reads its next
//! batch only once the file covers every batch acknowledged so far ([`Resume::caught_up`]), so
//! the file lags the sink by at most the batches in flight. The task is owed to the source's
//! [`Outstanding`]: the stream's end waits until the last id is on disk.

use crate::ack::{Ack, Outstanding, Watermark};
use crate::durable::write_atomically;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

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

/// The watermark of a stream's batches and the channels to and from the task that writes the
/// file.
#[derive(Debug)]
pub(crate) struct Resume {
    watermark: Mutex<Watermark<Arc<str>>>,
    /// The newest id the watermark reached, with the number of batches it covers.
    latest: watch::Sender<Option<(u64, Arc<str>)>>,
    /// How many batches the file covers (written, or attempted and logged as failed).
    durable: watch::Receiver<u64>,
    outstanding: Outstanding,
}

impl Resume {
    /// Start the writer of `path` (which holds `stored`), owed to `outstanding`.
    pub(crate) fn start(path: PathBuf, stored: Option<String>, outstanding: &Outstanding) -> Arc<Resume> {
        let (latest, updates) = watch::channel(None);
        let (written, durable) = watch::channel(0);
        outstanding.spawn(write_updates(path, stored.map(Arc::from), updates, written));
        Arc::new(Resume { watermark: Mutex::new(Watermark::new()), latest, durable, outstanding: outstanding.clone() })
    }

    fn watermark(&self) -> std::sync::MutexGuard<'_, Watermark<Arc<str>>> {
        // The watermark holds no invariant a panic could break half-way.
        self.watermark.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The acknowledgement of the next batch, whose last event had id `id`.
    pub(crate) fn ack(self: &Arc<Self>, id: Arc<str>) -> Ack {
        let seq = self.watermark().issue();
        let (resume, owed) = (Arc::clone(self), self.outstanding.token());
        Ack::new(move |status| {
            let mut watermark = resume.watermark();
            match watermark.resolve(seq, id, status) {
                Some(id) => {
                    resume.latest.send_replace(Some((watermark.completed(), id)));
                }
                None if !status.is_done() => tracing::debug!(seq, "batch not delivered: the stored last event id stays"),
                None => {}
            }
            drop(owed);
        })
    }

    /// Wait until the file covers every batch acknowledged so far. The source waits for this
    /// before it reads the next batch, so the sink is never more than the batches in flight
    /// ahead of the file: a restart repeats at most the in-flight window.
    pub(crate) async fn caught_up(&self) {
        let mut durable = self.durable.clone();
        loop {
            let acknowledged = self.watermark().completed();
            if *durable.borrow_and_update() >= acknowledged {
                return;
            }
            if durable.changed().await.is_err() {
                // The writer is gone (the run is ending): nothing to wait for.
                return;
            }
        }
    }
}

/// Write each id the watermark reaches, the newest first when several arrived during a write,
/// and say how many batches the file covers. A failed write is logged, not fatal: after a
/// restart the source resumes from an older id and the events after it are delivered again (at
/// least once, never lost). Ends when every sender is gone (the stream and every batch's
/// acknowledgement), after the last write.
async fn write_updates(
    path: PathBuf,
    mut written: Option<Arc<str>>,
    mut updates: watch::Receiver<Option<(u64, Arc<str>)>>,
    durable: watch::Sender<u64>,
) {
    while updates.changed().await.is_ok() {
        let Some((covered, id)) = updates.borrow_and_update().clone() else { continue };
        if written.as_deref() != Some(&*id) {
            let (file, bytes) = (path.clone(), Arc::clone(&id));
            match tokio::task::spawn_blocking(move || write_atomically(&file, bytes.as_bytes())).await {
                Ok(Ok(())) => written = Some(id),
                Ok(Err(e)) => tracing::warn!(error = %e, path = %path.display(), "could not store the last event id"),
                Err(e) => tracing::warn!(error = %e, path = %path.display(), "the write of the last event id did not finish"),
            }
        }
        durable.send_replace(covered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Status;

    #[tokio::test]
    async fn the_file_holds_the_last_id_of_the_contiguous_delivered_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last-id");
        assert_eq!(read(&path).unwrap(), None);
        let owed = Outstanding::new();
        let resume = Resume::start(path.clone(), None, &owed);
        let acks: Vec<Ack> = ["7", "8", "9", "10"].into_iter().map(|id| resume.ack(Arc::from(id))).collect();
        let mut acks = acks.into_iter();
        let (a, b, c, d) = (acks.next().unwrap(), acks.next().unwrap(), acks.next().unwrap(), acks.next().unwrap());
        b.resolve(Status::Delivered);
        a.resolve(Status::Delivered);
        c.resolve(Status::Errored);
        d.resolve(Status::Delivered);
        drop(resume);
        owed.settled().await;
        assert_eq!(read(&path).unwrap().as_deref(), Some("8"), "9 failed: 10 is not recorded");
        assert!(!dir.path().join("last-id.tmp").exists());
    }

    #[tokio::test]
    async fn caught_up_waits_until_the_file_covers_every_acknowledged_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last-id");
        let owed = Outstanding::new();
        let resume = Resume::start(path.clone(), None, &owed);
        resume.caught_up().await; // nothing acknowledged yet
        let (a, b) = (resume.ack(Arc::from("1")), resume.ack(Arc::from("2")));
        a.resolve(Status::Delivered);
        b.resolve(Status::Delivered);
        resume.caught_up().await;
        assert_eq!(read(&path).unwrap().as_deref(), Some("2"), "caught up means written");
        // An errored batch holds the watermark: nothing more to wait for.
        resume.ack(Arc::from("3")).resolve(Status::Errored);
        resume.caught_up().await;
        drop(resume);
        owed.settled().await;
    }

    #[tokio::test]
    async fn an_unchanged_id_is_not_written_again_and_a_failed_write_is_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: every write fails.
        let path = dir.path().join("blocked");
        std::fs::create_dir_all(path.join("inner")).unwrap();
        let owed = Outstanding::new();
        let resume = Resume::start(path.clone(), Some("5".into()), &owed);
        resume.ack(Arc::from("6")).resolve(Status::Delivered);
        drop(resume);
        owed.settled().await;
        assert!(path.is_dir(), "the failed write left the path as it was");
    }

    #[test]
    fn a_stored_id_is_read_without_its_line_end_and_a_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last-id");
        write_atomically(&path, b"42\r\n").unwrap();
        assert_eq!(read(&path).unwrap().as_deref(), Some("42"));
        assert!(read(dir.path()).is_err());
    }
}
