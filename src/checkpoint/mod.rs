//! Checkpoint stores: where a [job](crate::job) keeps each finished stage's output under its
//! run id, so that a re-run resumes instead of repeating finished stages.
//!
//! [`CheckpointStore`] is a small key-value interface with compare-and-set on a revision and a
//! run-long claim:
//!
//! * [`get`](CheckpointStore::get) returns the value and its [`Revision`], `Ok(None)` only when
//!   the key is absent; a store that cannot be read is an error, never "no checkpoint";
//! * [`put`](CheckpointStore::put) writes only if the key is still at the expected revision
//!   (or absent, for `None`), else [`CheckpointError::Conflict`];
//! * [`delete`](CheckpointStore::delete) removes a key, on its revision too;
//! * [`claim`](CheckpointStore::claim) takes the run id for as long as the returned [`Claim`]
//!   lives: a second run with the same id gets [`CheckpointError::Busy`] before any stage runs;
//!   a claim dies with its process (a SIGKILLed run does not block the next; with a store shared
//!   by hosts, as `NatsKvStore`, a claim is a lease and a SIGKILLed run blocks the next until its
//!   lease expires);
//! * [`max_value_bytes`](CheckpointStore::max_value_bytes): the largest value the store takes.
//!   A job splits larger state into chunk keys (`{run_id}.chunk.{generation}.{n}`) and keeps a
//!   small head entry naming them, so a store with a payload limit (NATS KV: 1 MiB by default)
//!   takes state of any size.
//!
//! Stores: [`FileStore`] (a directory; atomic write + fsync, CAS under a file lock, claims by
//! `flock`: the embedded default) and [`MemoryStore`] (tests; an optional value limit to
//! exercise chunking). `NatsKvStore` (feature `nats`) keeps them in a NATS JetStream
//! key-value bucket shared by every host: compare-and-set on the entries' revisions, claims as
//! leases renewed in the background (a SIGKILLed run holds its id until its lease expires, 30 s
//! by default), values up to the server's payload limit.
//!
//! ```
//! use etl::checkpoint::{CheckpointStore, MemoryStore, CheckpointError};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let r1 = store.put("run-1", b"a".to_vec(), None).await?;
//! let stale = store.put("run-1", b"b".to_vec(), None).await; // expected absent: it is not
//! assert!(matches!(stale, Err(CheckpointError::Conflict { .. })));
//! let r2 = store.put("run-1", b"b".to_vec(), Some(r1)).await?;
//! assert_eq!(store.get("run-1").await?.map(|v| (v.value, v.revision)), Some((b"b".to_vec(), r2)));
//! store.delete("run-1", Some(r2)).await?;
//! assert!(store.get("run-1").await?.is_none());
//! # Ok::<(), CheckpointError>(()) }).unwrap();
//! ```

mod file;
mod memory;
#[cfg(feature = "nats")]
mod nats;

pub use file::FileStore;
pub use memory::MemoryStore;
#[cfg(feature = "nats")]
pub use nats::NatsKvStore;

use std::path::PathBuf;

/// The revision of a stored value: it changes on every write. Compare-and-set writes name the
/// revision they expect.
///
/// ```
/// let r = etl::checkpoint::Revision(7);
/// assert_eq!(r.0, 7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Revision(pub u64);

/// A value read from a store, with its revision.
///
/// ```
/// let v = etl::checkpoint::Versioned { value: b"x".to_vec(), revision: etl::checkpoint::Revision(1) };
/// assert_eq!(v.value, b"x");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The bytes.
    pub value: Vec<u8>,
    /// Their revision.
    pub revision: Revision,
}

/// A run id taken by one run: released when dropped (and when its process dies).
///
/// Stores make one from whatever holds the claim (a locked file, a lease renewed by a task).
///
/// ```
/// let claim = etl::checkpoint::Claim::new("run-1", ());
/// assert_eq!(claim.key(), "run-1");
/// ```
pub struct Claim {
    key: String,
    _guard: Box<dyn std::any::Any + Send + Sync>,
}

impl Claim {
    /// A claim on `key`, held until `guard` is dropped.
    ///
    /// ```
    /// let _claim = etl::checkpoint::Claim::new("k", std::sync::Arc::new(()));
    /// ```
    pub fn new(key: impl Into<String>, guard: impl Send + Sync + 'static) -> Claim {
        Claim { key: key.into(), _guard: Box::new(guard) }
    }

    /// The key claimed.
    ///
    /// ```
    /// assert_eq!(etl::checkpoint::Claim::new("k", ()).key(), "k");
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim").field("key", &self.key).finish_non_exhaustive()
    }
}

/// Why a checkpoint store failed. Each says what to do.
///
/// ```
/// use etl::checkpoint::CheckpointError;
/// let e = CheckpointError::Busy { key: "batch-1".into(), store: "file store ckpt".into() };
/// assert!(e.to_string().contains("another run"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The store could not be read or written (a file system or network error).
    #[error("checkpoint store {store} failed on `{key}`: {error}; fix the store (nothing was assumed: a store that cannot be read is not \"no checkpoint\") and run again")]
    Unavailable {
        /// The store.
        store: String,
        /// The key.
        key: String,
        /// The cause.
        #[source]
        error: std::io::Error,
    },
    /// A stored value is not what the store wrote (a torn or foreign file).
    #[error("checkpoint `{key}` in {store} is corrupt: {reason}; inspect it ({path:?}), then remove it to start the run from its first stage, or restore it")]
    Corrupt {
        /// The store.
        store: String,
        /// The key.
        key: String,
        /// Where it is, when it is a file.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
    /// Compare-and-set failed: the key is not at the revision this run expected; another run
    /// with the same id wrote it.
    #[error("checkpoint `{key}` in {store} changed under this run (expected {expected:?}, found {found:?}): another run with the same id is writing it; let that run finish, or use another run id")]
    Conflict {
        /// The store.
        store: String,
        /// The key.
        key: String,
        /// The revision this run expected (`None`: absent).
        expected: Option<Revision>,
        /// The revision found (`None`: absent).
        found: Option<Revision>,
    },
    /// Another run holds the run id.
    #[error("run id `{key}` is held by another run (checkpoint store {store}); wait for it to finish, or use another run id")]
    Busy {
        /// The key.
        key: String,
        /// The store.
        store: String,
    },
    /// The value is larger than the store takes (a job splits its state below this limit).
    #[error("a value of {len} bytes for `{key}` is over the {limit} bytes {store} takes")]
    TooLarge {
        /// The store.
        store: String,
        /// The key.
        key: String,
        /// The value's size.
        len: usize,
        /// The store's limit.
        limit: usize,
    },
}

/// Where jobs keep their checkpoints. See the [module](self) documentation for the contract.
///
/// ```
/// use etl::checkpoint::{CheckpointStore, FileStore};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let store = FileStore::new(dir.path());
/// let claim = store.claim("nightly").await?;
/// assert!(store.claim("nightly").await.is_err()); // held
/// drop(claim);
/// assert!(store.get("nightly").await?.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[async_trait::async_trait]
pub trait CheckpointStore: Send + Sync {
    /// A short description for logs and errors (`file store ckpt/`).
    fn describe(&self) -> String;

    /// The value under `key` and its revision; `Ok(None)` only when there is none.
    async fn get(&self, key: &str) -> Result<Option<Versioned>, CheckpointError>;

    /// Write `value` under `key` if it is at revision `expected` (`None`: absent); returns the
    /// new revision, or [`CheckpointError::Conflict`].
    async fn put(&self, key: &str, value: Vec<u8>, expected: Option<Revision>) -> Result<Revision, CheckpointError>;

    /// Remove `key` if it is at revision `expected` (`None`: whatever its revision). Removing
    /// an absent key is not an error.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(), CheckpointError>;

    /// Take `key` for one run until the [`Claim`] is dropped; [`CheckpointError::Busy`] when
    /// another run holds it.
    async fn claim(&self, key: &str) -> Result<Claim, CheckpointError>;

    /// Give back a claim at the end of a run, once the release is done (a store whose claims
    /// are leases deletes the lease before this returns, so the id is free at once even when
    /// the process exits right after). Default: drop it.
    ///
    /// ```
    /// use etl::checkpoint::{CheckpointStore, MemoryStore};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let claim = store.claim("run-1").await?;
    /// store.release(claim).await;
    /// let _again = store.claim("run-1").await?;
    /// # Ok::<(), etl::checkpoint::CheckpointError>(()) }).unwrap();
    /// ```
    async fn release(&self, claim: Claim) {
        drop(claim);
    }

    /// The largest value [`put`](CheckpointStore::put) takes; `None`: no limit. Default `None`.
    ///
    /// ```
    /// use etl::checkpoint::{CheckpointStore, MemoryStore};
    /// assert_eq!(MemoryStore::new().max_value_bytes(), None);
    /// assert_eq!(MemoryStore::new().with_max_value_bytes(1024).max_value_bytes(), Some(1024));
    /// ```
    fn max_value_bytes(&self) -> Option<usize> {
        None
    }
}

#[cfg(test)]
mod tests;
