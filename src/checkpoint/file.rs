//! [`FileStore`]: checkpoints as files in a directory.
//!
//! Each key is a file `{key}.ckpt`: a header line (`{"etl_checkpoint":1,"revision":N,"len":L}`)
//! then the value's bytes. A write goes to a temporary file beside it, is fsynced, renamed over
//! it and the directory fsynced ([`crate::durable::write_atomically`]): after a crash the file
//! holds the old value or the new one. Compare-and-set holds an exclusive `flock` on
//! `{key}.cas` while it reads the revision and writes; a run's [`Claim`] holds one on
//! `{key}.lock`, which the kernel releases when the process dies (a SIGKILLed run does not block
//! the next). Keys are file names: characters other than ASCII letters, digits, `-`, `_` and
//! `.` (and a leading `.`) are written `%XX`.

use super::{CheckpointError, CheckpointStore, Claim, Revision, Versioned};
use crate::durable;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Checkpoints in a local directory (created on the first write): the embedded default.
///
/// ```
/// use etl::checkpoint::{CheckpointStore, FileStore};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let store = FileStore::new(dir.path().join("checkpoints"));
/// let rev = store.put("batch-2025-03-18", b"{}".to_vec(), None).await?;
/// assert_eq!(store.get("batch-2025-03-18").await?.unwrap().revision, rev);
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: Arc<PathBuf>,
}

/// The header line's format version.
const FORMAT: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    etl_checkpoint: u32,
    revision: u64,
    len: usize,
}

impl FileStore {
    /// A store in `dir`.
    ///
    /// ```
    /// let store = etl::checkpoint::FileStore::new("checkpoints");
    /// assert_eq!(store.dir(), std::path::Path::new("checkpoints"));
    /// ```
    pub fn new(dir: impl Into<PathBuf>) -> FileStore {
        FileStore { dir: Arc::new(dir.into()) }
    }

    /// Its directory.
    ///
    /// ```
    /// assert_eq!(etl::checkpoint::FileStore::new("c").dir(), std::path::Path::new("c"));
    /// ```
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `key`.
    ///
    /// ```
    /// let store = etl::checkpoint::FileStore::new("c");
    /// assert_eq!(store.path_of("run 1"), std::path::Path::new("c/run%201.ckpt"));
    /// ```
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.ckpt", file_name(key)))
    }

    fn side_file(&self, key: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", file_name(key)))
    }

    fn unavailable(&self, key: &str, error: std::io::Error) -> CheckpointError {
        CheckpointError::Unavailable { store: self.describe(), key: key.to_owned(), error }
    }

    /// Run blocking file work on tokio's blocking pool.
    async fn blocking<R: Send + 'static>(
        &self,
        key: &str,
        f: impl FnOnce(FileStore, String) -> Result<R, CheckpointError> + Send + 'static,
    ) -> Result<R, CheckpointError> {
        let (store, owned) = (self.clone(), key.to_owned());
        match tokio::task::spawn_blocking(move || f(store, owned)).await {
            Ok(result) => result,
            Err(e) => Err(self.unavailable(key, std::io::Error::other(format!("blocking task failed: {e}")))),
        }
    }

    /// Read `key`'s file (the caller holds whatever lock it needs).
    fn read(&self, key: &str) -> Result<Option<Versioned>, CheckpointError> {
        let path = self.path_of(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.unavailable(key, e)),
        };
        let corrupt =
            |reason: String| CheckpointError::Corrupt { store: self.describe(), key: key.to_owned(), path: Some(path.clone()), reason };
        let newline = bytes.iter().position(|b| *b == b'\n').ok_or_else(|| corrupt("no header line".into()))?;
        let header: Header = serde_json::from_slice(&bytes[..newline]).map_err(|e| corrupt(format!("its header does not parse: {e}")))?;
        if header.etl_checkpoint != FORMAT {
            return Err(corrupt(format!("format {} is not {FORMAT}", header.etl_checkpoint)));
        }
        let value = &bytes[newline + 1..];
        if value.len() != header.len {
            return Err(corrupt(format!("{} bytes where its header says {}", value.len(), header.len)));
        }
        Ok(Some(Versioned { value: value.to_vec(), revision: Revision(header.revision) }))
    }

    /// Hold an exclusive lock on `key`'s `.cas` file while `f` runs.
    fn under_cas_lock<R>(&self, key: &str, f: impl FnOnce() -> Result<R, CheckpointError>) -> Result<R, CheckpointError> {
        std::fs::create_dir_all(&*self.dir).map_err(|e| self.unavailable(key, e))?;
        let file = open_lock_file(&self.side_file(key, "cas")).map_err(|e| self.unavailable(key, e))?;
        lock(&file, true).map_err(|e| self.unavailable(key, e))?;
        let result = f();
        drop(file); // releases the lock
        result
    }

    fn conflict(&self, key: &str, expected: Option<Revision>, found: Option<Revision>) -> CheckpointError {
        CheckpointError::Conflict { store: self.describe(), key: key.to_owned(), expected, found }
    }
}

#[async_trait::async_trait]
impl CheckpointStore for FileStore {
    fn describe(&self) -> String {
        format!("file store {}", self.dir.display())
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>, CheckpointError> {
        self.blocking(key, |store, key| store.read(&key)).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, expected: Option<Revision>) -> Result<Revision, CheckpointError> {
        self.blocking(key, move |store, key| {
            store.under_cas_lock(&key, || {
                let found = store.read(&key)?.map(|v| v.revision);
                if found != expected {
                    return Err(store.conflict(&key, expected, found));
                }
                // Monotonic, and not reused after a delete: a stale revision never matches again.
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
                let revision = Revision(found.map_or(0, |r| r.0 + 1).max(now));
                let header = serde_json::to_vec(&Header { etl_checkpoint: FORMAT, revision: revision.0, len: value.len() })
                    .map_err(|e| store.unavailable(&key, std::io::Error::other(e)))?;
                let mut bytes = Vec::with_capacity(header.len() + 1 + value.len());
                bytes.extend_from_slice(&header);
                bytes.push(b'\n');
                bytes.extend_from_slice(&value);
                durable::write_atomically(&store.path_of(&key), &bytes).map_err(|e| store.unavailable(&key, e))?;
                Ok(revision)
            })
        })
        .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(), CheckpointError> {
        self.blocking(key, move |store, key| {
            if !store.dir.exists() {
                return Ok(());
            }
            store.under_cas_lock(&key, || {
                let found = store.read(&key)?.map(|v| v.revision);
                match (found, expected) {
                    (None, _) => return Ok(()),
                    (Some(f), Some(e)) if f != e => return Err(store.conflict(&key, expected, found)),
                    _ => {}
                }
                let path = store.path_of(&key);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(store.unavailable(&key, e)),
                }
                durable::sync_dir(&store.dir).map_err(|e| store.unavailable(&key, e))
            })
        })
        .await
    }

    async fn claim(&self, key: &str) -> Result<Claim, CheckpointError> {
        self.blocking(key, |store, key| {
            std::fs::create_dir_all(&*store.dir).map_err(|e| store.unavailable(&key, e))?;
            let file = open_lock_file(&store.side_file(&key, "lock")).map_err(|e| store.unavailable(&key, e))?;
            match lock(&file, false) {
                Ok(()) => Ok(Claim::new(key, file)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => Err(CheckpointError::Busy { key, store: store.describe() }),
                Err(e) => Err(store.unavailable(&key, e)),
            }
        })
        .await
    }
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).truncate(false).write(true).open(path)
}

/// An exclusive `flock` on `file`: waiting for it (`wait`) or failing with `WouldBlock`.
#[cfg(unix)]
fn lock(file: &File, wait: bool) -> std::io::Result<()> {
    use rustix::fs::{flock, FlockOperation};
    let op = if wait { FlockOperation::LockExclusive } else { FlockOperation::NonBlockingLockExclusive };
    flock(file, op).map_err(std::io::Error::from)
}

/// Without `flock`: no lock (the store's CAS still holds within one process's writes).
#[cfg(not(unix))]
fn lock(_file: &File, _wait: bool) -> std::io::Result<()> {
    Ok(())
}

/// `key` as a file name: ASCII letters, digits, `-`, `_`, `.` kept (a leading `.` encoded),
/// every other byte `%XX`.
pub(crate) fn file_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for (i, b) in key.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
