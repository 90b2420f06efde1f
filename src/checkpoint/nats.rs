//! [`NatsKvStore`]: checkpoints in a NATS JetStream key-value bucket (feature `nats`).
//!
//! * **Keys.** NATS KV keys take only `[-/_=.a-zA-Z0-9]` (no leading, trailing or double dot),
//!   so a key (a run id, a chunk key) is encoded: ASCII letters, digits, `-` and `_` kept, every
//!   other byte `=XX` (uppercase hex; `.` too, so an encoded key is one token). Values live under
//!   `v.{encoded}`, claims under `c.{encoded}`: no run id can name another run's claim.
//! * **Revisions** are the entries' revisions (the bucket stream's sequences): they grow with
//!   every write in the bucket and are never reused, even after a delete. An entry whose last
//!   operation is a delete or a purge is absent. Compare-and-set is the server's: `create`
//!   (absent, or a delete marker) and `update` on the expected revision; a deletion purges the
//!   key on its revision.
//! * **Limits.** [`max_value_bytes`](CheckpointStore::max_value_bytes) is the server's
//!   `max_payload` (1 MiB by default), or the bucket's `max_value_size` when smaller, minus
//!   4 KiB for the headers: a job splits larger state into chunks.
//! * **Claims are leases.** A claim is the entry `c.{encoded}` holding
//!   `{"holder":"<nuid>","expires_at_ms":<unix ms>}`, written only if absent (or expired: taken
//!   over on its revision) and renewed every third of the lease by a background task, on its
//!   revision. Dropping the [`Claim`] stops the renewals and purges the entry on its revision.
//!   A run that dies without dropping it (SIGKILL, a lost host) holds the id until its lease
//!   expires ([`NatsKvStore::DEFAULT_LEASE`], or [`NatsKvStore::with_lease`]); until then a new
//!   run gets [`CheckpointError::Busy`], whose message says when the lease expires. Expiry is
//!   judged by the clock of the run that wants the id: hosts' clocks must agree to well within
//!   a lease.

use super::{CheckpointError, CheckpointStore, Claim, Revision, Versioned};
use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// Room kept under the server's payload limit for a message's headers and subject.
const MARGIN: usize = 4096;

/// How long [`NatsKvStore::claim`] waits for this process's own release of the same key.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// Checkpoints in a NATS JetStream key-value bucket: compare-and-set on the entries' revisions,
/// claims as leases renewed in the background, values up to the server's payload limit (see the
/// [module](self) documentation). Cheap to clone; clones share the connection.
///
/// ```no_run
/// use etl::checkpoint::{CheckpointStore, NatsKvStore};
/// use std::time::Duration;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = NatsKvStore::connect("${NATS_URL:-nats://127.0.0.1:4222}", "etl_checkpoints")
///     .await?
///     .with_lease(Duration::from_secs(10));
/// assert_eq!(store.describe(), "nats kv etl_checkpoints");
/// let claim = store.claim("nightly-2025-03-18").await?;
/// let rev = store.put("nightly-2025-03-18", b"{}".to_vec(), None).await?;
/// assert_eq!(store.get("nightly-2025-03-18").await?.map(|v| v.revision), Some(rev));
/// drop(claim);
/// # Ok::<(), etl::checkpoint::CheckpointError>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct NatsKvStore {
    kv: kv::Store,
    client: async_nats::Client,
    bucket: Arc<str>,
    lease: Duration,
    max_value_bytes: usize,
    /// Claims this process released (their release tasks), by key: a claim of the same key
    /// waits for them, so that a run can follow another at once.
    releases: Arc<Mutex<HashMap<String, JoinHandle<()>>>>,
}

impl std::fmt::Debug for NatsKvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsKvStore")
            .field("bucket", &self.bucket)
            .field("lease", &self.lease)
            .field("max_value_bytes", &self.max_value_bytes)
            .finish_non_exhaustive()
    }
}

/// What a claim entry holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Lease {
    /// The claiming run's unique id (a NUID).
    holder: String,
    /// When the lease ends unless renewed, in milliseconds since the Unix epoch.
    expires_at_ms: u64,
}

impl Lease {
    fn bytes(holder: &str, lease: Duration) -> bytes::Bytes {
        let lease = Lease { holder: holder.to_owned(), expires_at_ms: now_ms().saturating_add(lease.as_millis() as u64) };
        // A struct of a string and a number always serialises.
        serde_json::to_vec(&lease).unwrap_or_default().into()
    }

    fn parse(bytes: &[u8]) -> Option<Lease> {
        serde_json::from_slice(bytes).ok()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why a compare-and-set write did not happen.
enum Refused {
    /// The key is not at the expected revision.
    Lost,
    /// Any other failure (its text).
    Failed(String),
}

impl NatsKvStore {
    /// The lease of a claim unless [`with_lease`](NatsKvStore::with_lease) says otherwise: 30 s.
    /// A run killed without releasing its claim blocks its run id for at most this long.
    ///
    /// ```
    /// assert_eq!(etl::checkpoint::NatsKvStore::DEFAULT_LEASE, std::time::Duration::from_secs(30));
    /// ```
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

    /// Connect to the server at `url` (`${VAR}` resolved, e.g. `${NATS_URL}`) and open the
    /// key-value bucket `bucket` (letters, digits, `-`, `_`), created (history 1) when missing.
    /// A server that does not answer within 10 s is [`CheckpointError::Unavailable`]: a store
    /// that is down at the start is an error, never "no checkpoint".
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = etl::checkpoint::NatsKvStore::connect("nats://127.0.0.1:4222", "checkpoints").await?;
    /// # Ok::<(), etl::checkpoint::CheckpointError>(()) }).unwrap();
    /// ```
    pub async fn connect(url: &str, bucket: &str) -> Result<NatsKvStore, CheckpointError> {
        let store = format!("nats kv {bucket}");
        let unavailable = |text: String| CheckpointError::Unavailable {
            store: store.clone(),
            key: bucket.to_owned(),
            error: std::io::Error::other(text),
        };
        if bucket.is_empty() || !bucket.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(unavailable(format!("`{bucket}` is not a key-value bucket name (ASCII letters, digits, `-`, `_`)")));
        }
        let component = format!("checkpoint store {store}");
        let client = crate::nats::connect(url, &component).await.map_err(|e| unavailable(e.error.to_string()))?;
        let max_payload = client.server_info().max_payload;
        let js = crate::nats::jetstream(client.clone());
        let stream = format!("KV_{bucket}");
        let existing = crate::nats::lookup_stream(&js, &stream, &component).await.map_err(|e| unavailable(e.error.to_string()))?;
        let kv = match existing {
            Some(_) => js.get_key_value(bucket).await.map_err(|e| unavailable(format!("cannot open bucket `{bucket}`: {e}")))?,
            None => {
                let config = kv::Config {
                    bucket: bucket.to_owned(),
                    description: "etl job checkpoints".to_owned(),
                    history: 1,
                    ..Default::default()
                };
                match js.create_key_value(config).await {
                    Ok(kv) => {
                        tracing::info!(bucket, "created the NATS key-value bucket for checkpoints");
                        kv
                    }
                    // Another process may have created it in between.
                    Err(create) => js
                        .get_key_value(bucket)
                        .await
                        .map_err(|e| unavailable(format!("cannot create bucket `{bucket}` ({create}), nor open it ({e})")))?,
                }
            }
        };
        let max_value_size = kv.stream.cached_info().config.max_message_size;
        let mut limit = max_payload;
        if max_value_size > 0 {
            limit = limit.min(max_value_size as usize);
        }
        let max_value_bytes = limit.saturating_sub(MARGIN).max(1);
        tracing::debug!(bucket, max_payload, max_value_size, max_value_bytes, "checkpoint store connected");
        Ok(NatsKvStore { kv, client, bucket: bucket.into(), lease: NatsKvStore::DEFAULT_LEASE, max_value_bytes, releases: Arc::default() })
    }

    /// Claims with a lease of `lease` (renewed every `lease / 3`) instead of
    /// [`DEFAULT_LEASE`](NatsKvStore::DEFAULT_LEASE): shorter, a killed run blocks its id for
    /// less time; longer, a run survives a longer outage of the server without losing its claim.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let store = etl::checkpoint::NatsKvStore::connect("nats://127.0.0.1:4222", "checkpoints").await?.with_lease(Duration::from_secs(5));
    /// assert_eq!(store.lease(), Duration::from_secs(5));
    /// # Ok::<(), etl::checkpoint::CheckpointError>(()) }).unwrap();
    /// ```
    pub fn with_lease(mut self, lease: Duration) -> NatsKvStore {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// The lease of its claims.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = etl::checkpoint::NatsKvStore::connect("nats://127.0.0.1:4222", "checkpoints").await?;
    /// assert_eq!(store.lease(), etl::checkpoint::NatsKvStore::DEFAULT_LEASE);
    /// # Ok::<(), etl::checkpoint::CheckpointError>(()) }).unwrap();
    /// ```
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Its bucket's name.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = etl::checkpoint::NatsKvStore::connect("nats://127.0.0.1:4222", "checkpoints").await?;
    /// assert_eq!(store.bucket(), "checkpoints");
    /// # Ok::<(), etl::checkpoint::CheckpointError>(()) }).unwrap();
    /// ```
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The bucket's key of the value stored under `key` (`v.` then `key` encoded).
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = etl::checkpoint::NatsKvStore::connect("nats://127.0.0.1:4222", "checkpoints").await?;
    /// assert_eq!(store.key_of("batch 1.chunk"), "v.batch=201=2Echunk");
    /// # Ok::<(), etl::checkpoint::CheckpointError>(()) }).unwrap();
    /// ```
    pub fn key_of(&self, key: &str) -> String {
        value_key(key)
    }

    fn unavailable(&self, key: &str, text: String) -> CheckpointError {
        CheckpointError::Unavailable { store: self.describe(), key: key.to_owned(), error: std::io::Error::other(text) }
    }

    fn busy(&self, key: &str, expires_in: Duration) -> CheckpointError {
        // The variant's message is "held by another run (checkpoint store {store}); wait ...":
        // the store's part says how long a dead holder still blocks the id.
        let store = format!(
            "{}, whose lease on it expires in {:.1} s unless its holder renews it: a run that was killed holds the id until then",
            self.describe(),
            expires_in.as_secs_f64()
        );
        CheckpointError::Busy { key: key.to_owned(), store }
    }

    /// The entry under the bucket key `nkey` when its last operation is a put.
    async fn entry(&self, nkey: &str, key: &str) -> Result<Option<kv::Entry>, CheckpointError> {
        match self.kv.entry(nkey).await {
            Ok(Some(entry)) if entry.operation == Operation::Put => Ok(Some(entry)),
            Ok(_) => Ok(None),
            Err(e) => Err(self.unavailable(key, format!("cannot read `{nkey}`: {e}"))),
        }
    }

    async fn found(&self, nkey: &str, key: &str) -> Result<Option<Revision>, CheckpointError> {
        Ok(self.entry(nkey, key).await?.map(|e| Revision(e.revision)))
    }

    /// Write `value` under `nkey` if absent (`None`) or at `expected`.
    async fn write(&self, nkey: &str, value: bytes::Bytes, expected: Option<u64>) -> Result<u64, Refused> {
        match expected {
            None => self.kv.create(nkey, value).await.map_err(|e| match e.kind() {
                CreateErrorKind::AlreadyExists => Refused::Lost,
                _ => Refused::Failed(e.to_string()),
            }),
            Some(revision) => self.kv.update(nkey, value, revision).await.map_err(|e| match e.kind() {
                UpdateErrorKind::WrongLastRevision => Refused::Lost,
                _ => Refused::Failed(e.to_string()),
            }),
        }
    }

    /// Wait (a while) for this process's release of `key`, if one is under way.
    async fn after_release(&self, key: &str) {
        let pending = lock(&self.releases).remove(key);
        if let Some(task) = pending {
            if tokio::time::timeout(RELEASE_WAIT, task).await.is_err() {
                tracing::debug!(run_id = key, "the release of the previous claim is still under way");
            }
        }
    }
}

#[async_trait::async_trait]
impl CheckpointStore for NatsKvStore {
    fn describe(&self) -> String {
        format!("nats kv {}", self.bucket)
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>, CheckpointError> {
        let entry = self.entry(&value_key(key), key).await?;
        Ok(entry.map(|e| Versioned { value: e.value.to_vec(), revision: Revision(e.revision) }))
    }

    async fn put(&self, key: &str, value: Vec<u8>, expected: Option<Revision>) -> Result<Revision, CheckpointError> {
        if value.len() > self.max_value_bytes {
            return Err(CheckpointError::TooLarge {
                store: self.describe(),
                key: key.to_owned(),
                len: value.len(),
                limit: self.max_value_bytes,
            });
        }
        let nkey = value_key(key);
        match self.write(&nkey, value.into(), expected.map(|r| r.0)).await {
            Ok(revision) => Ok(Revision(revision)),
            Err(Refused::Lost) => {
                let found = self.found(&nkey, key).await?;
                Err(CheckpointError::Conflict { store: self.describe(), key: key.to_owned(), expected, found })
            }
            Err(Refused::Failed(text)) => Err(self.unavailable(key, format!("cannot write `{nkey}`: {text}"))),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(), CheckpointError> {
        let nkey = value_key(key);
        if expected.is_none() && self.entry(&nkey, key).await?.is_none() {
            return Ok(()); // absent: no purge marker for a key that is not there
        }
        match self.kv.purge_expect_revision(&nkey, expected.map(|r| r.0)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => match self.found(&nkey, key).await? {
                None => Ok(()), // already gone
                found => Err(CheckpointError::Conflict { store: self.describe(), key: key.to_owned(), expected, found }),
            },
            Err(e) => Err(self.unavailable(key, format!("cannot delete `{nkey}`: {e}"))),
        }
    }

    async fn claim(&self, key: &str) -> Result<Claim, CheckpointError> {
        self.after_release(key).await;
        let ckey = claim_key(key);
        // A NUID from the client's generator (inboxes are `_INBOX.<nuid>`).
        let inbox = self.client.new_inbox();
        let holder = inbox.rsplit('.').next().unwrap_or(&inbox).to_owned();
        let mut revision = None;
        // A claim released between our `create` and our read: try again (twice).
        for _ in 0..3 {
            match self.write(&ckey, Lease::bytes(&holder, self.lease), None).await {
                Ok(r) => {
                    revision = Some(r);
                    break;
                }
                Err(Refused::Lost) => {}
                Err(Refused::Failed(text)) => return Err(self.unavailable(key, format!("cannot create the claim `{ckey}`: {text}"))),
            }
            let Some(entry) = self.entry(&ckey, key).await? else { continue };
            let held = Lease::parse(&entry.value).ok_or_else(|| CheckpointError::Corrupt {
                store: self.describe(),
                key: key.to_owned(),
                path: None,
                reason: format!("its claim `{ckey}` is not a lease written by etl"),
            })?;
            if held.holder == holder {
                // Our own create, stored though its answer was lost (a timeout): it is ours.
                revision = Some(entry.revision);
                break;
            }
            let now = now_ms();
            if held.expires_at_ms > now {
                return Err(self.busy(key, Duration::from_millis(held.expires_at_ms - now)));
            }
            tracing::warn!(
                run_id = key,
                holder = held.holder,
                expired_ms_ago = now - held.expires_at_ms,
                "taking over an expired claim: the run that held it died or could not renew its lease"
            );
            match self.write(&ckey, Lease::bytes(&holder, self.lease), Some(entry.revision)).await {
                Ok(r) => {
                    revision = Some(r);
                    break;
                }
                // Another run took it over first.
                Err(Refused::Lost) => return Err(self.busy(key, self.lease)),
                Err(Refused::Failed(text)) => return Err(self.unavailable(key, format!("cannot take over the claim `{ckey}`: {text}"))),
            }
        }
        let Some(revision) = revision else { return Err(self.busy(key, self.lease)) };
        tracing::debug!(run_id = key, holder, lease = ?self.lease, "claimed the run id");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let lease = Renewal { kv: self.kv.clone(), ckey, run_id: key.to_owned(), holder, lease: self.lease, revision };
        let task = tokio::spawn(lease.run(stopped));
        let held = Held { key: key.to_owned(), stop: Some(stop), task: Some(task), releases: self.releases.clone() };
        Ok(Claim::new(key, held))
    }

    /// Stop renewing and delete the lease, and wait for it (a bounded while).
    async fn release(&self, claim: Claim) {
        let key = claim.key().to_owned();
        drop(claim);
        self.after_release(&key).await;
    }

    fn max_value_bytes(&self) -> Option<usize> {
        Some(self.max_value_bytes)
    }
}

/// A held claim: the renewal task, stopped (and the claim released) when dropped.
struct Held {
    key: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    releases: Arc<Mutex<HashMap<String, JoinHandle<()>>>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(()); // a task that lost the claim has ended already
        }
        if let Some(task) = self.task.take() {
            let mut releases = lock(&self.releases);
            releases.retain(|_, t| !t.is_finished());
            releases.insert(self.key.clone(), task);
        }
    }
}

/// The renewal of one claim's lease, then its release.
struct Renewal {
    kv: kv::Store,
    ckey: String,
    run_id: String,
    holder: String,
    lease: Duration,
    revision: u64,
}

impl Renewal {
    /// Renew every third of the lease until `stopped`, then delete the claim on its revision.
    /// A renewal is never interrupted half-way, so the release knows the last revision.
    async fn run(mut self, mut stopped: tokio::sync::oneshot::Receiver<()>) {
        let period = self.lease / 3;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = ticks.tick() => {
                    if !self.renew().await {
                        return;
                    }
                }
            }
        }
        self.release().await;
    }

    /// One renewal; `false` when another run holds the claim now (renewals stop).
    async fn renew(&mut self) -> bool {
        match self.kv.update(&self.ckey, Lease::bytes(&self.holder, self.lease), self.revision).await {
            Ok(revision) => {
                self.revision = revision;
                tracing::trace!(run_id = self.run_id, revision, "renewed the claim's lease");
                true
            }
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                // An earlier renewal may have been stored without its acknowledgement reaching
                // us: read who holds the claim now.
                match self.kv.entry(&self.ckey).await {
                    Ok(Some(entry))
                        if entry.operation == Operation::Put && Lease::parse(&entry.value).is_some_and(|l| l.holder == self.holder) =>
                    {
                        self.revision = entry.revision;
                        true
                    }
                    Ok(entry) => {
                        let holder = entry.filter(|e| e.operation == Operation::Put).and_then(|e| Lease::parse(&e.value)).map(|l| l.holder);
                        tracing::error!(
                            run_id = self.run_id,
                            claim = self.ckey,
                            new_holder = holder.as_deref().unwrap_or("none"),
                            "lost the claim on the run id: its lease expired before it could be renewed (the server was out of reach too long?) and it is gone or held by another run; renewals stop, and the checkpoint's compare-and-set refuses this run's writes if the other run writes first"
                        );
                        false
                    }
                    Err(read) => {
                        tracing::warn!(run_id = self.run_id, error = %read, "could not renew the claim's lease nor read it; trying again");
                        true
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    run_id = self.run_id,
                    error = %e,
                    lease = ?self.lease,
                    "could not renew the claim's lease; trying again (another run may take the id over once the lease expires)"
                );
                true
            }
        }
    }

    /// Delete the claim on its last revision; a failure leaves it to expire with its lease.
    async fn release(self) {
        match self.kv.purge_expect_revision(&self.ckey, Some(self.revision)).await {
            Ok(()) => tracing::debug!(run_id = self.run_id, "released the claim"),
            Err(e) => {
                tracing::debug!(run_id = self.run_id, error = %e, lease = ?self.lease, "could not release the claim; it expires with its lease")
            }
        }
    }
}

/// `key` encoded for a NATS KV key: ASCII letters, digits, `-`, `_` kept, every other byte
/// `=XX` (uppercase hex).
fn encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// `{prefix}.{encoded}`; the bare prefix for the empty key (a key may not end with a dot).
fn prefixed(prefix: &str, key: &str) -> String {
    if key.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}.{}", encode(key))
    }
}

/// The bucket key of a stored value.
fn value_key(key: &str) -> String {
    prefixed("v", key)
}

/// The bucket key of a run id's claim.
fn claim_key(key: &str) -> String {
    prefixed("c", key)
}

/// The key [`encode`] encoded (`None`: not an encoding).
#[cfg(test)]
fn decode(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' => {
                let hex = encoded.get(i + 1..i + 3)?;
                if hex.bytes().any(|h| h.is_ascii_lowercase()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NATS KV's own rule (async-nats' `is_valid_key`).
    fn valid_nats_key(key: &str) -> bool {
        !key.is_empty()
            && !key.starts_with('.')
            && !key.ends_with('.')
            && !key.contains("..")
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
    }

    #[test]
    fn keys_are_encoded_reversibly_into_nats_keys() {
        assert_eq!(encode("batch-2025-03-18_a"), "batch-2025-03-18_a");
        assert_eq!(encode("run.chunk.0123.4"), "run=2Echunk=2E0123=2E4");
        assert_eq!(encode("a/b c=d"), "a=2Fb=20c=3Dd");
        assert_eq!(encode(".."), "=2E=2E");
        assert_eq!(encode("é"), "=C3=A9");
        assert_eq!(value_key("run 1"), "v.run=201");
        assert_eq!(claim_key("run 1"), "c.run=201");
        for key in [
            "batch-2025-03-18",
            "run.chunk.0123.4",
            "..",
            ".a.",
            "a..b",
            "=",
            "=2E",
            "x y\nz",
            "naïve — ünïcode",
            "*>",
            "$KV.x",
            "v.a",
            "c",
        ] {
            let encoded = encode(key);
            assert_eq!(decode(&encoded).as_deref(), Some(key), "{encoded}");
            assert!(valid_nats_key(&value_key(key)), "{key:?} → {}", value_key(key));
            assert!(valid_nats_key(&claim_key(key)), "{key:?} → {}", claim_key(key));
            assert!(!encoded.contains('.'), "one token: {encoded}");
        }
        assert!(valid_nats_key(&value_key("")) && valid_nats_key(&claim_key("")));
        assert_eq!(decode("a=2"), None);
        assert_eq!(decode("a.b"), None);
        assert_eq!(decode("=2e"), None, "uppercase hex only: one encoding per key");
    }

    #[test]
    fn a_run_id_never_collides_with_a_claim_or_another_key() {
        let ids = ["a", "c.a", "v.a", "c", "v", "", "a.b", "a=2Eb", "a_b", "A"];
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            assert!(seen.insert(value_key(id)), "{id}");
            assert!(seen.insert(claim_key(id)), "{id}");
        }
        for id in ids {
            assert!(value_key(id).starts_with('v') && claim_key(id).starts_with('c'));
        }
    }

    #[test]
    fn leases_round_trip() {
        let bytes = Lease::bytes("NUID123", Duration::from_secs(2));
        let lease = Lease::parse(&bytes).unwrap();
        assert_eq!(lease.holder, "NUID123");
        let left = lease.expires_at_ms.saturating_sub(now_ms());
        assert!((1000..=2000).contains(&left), "{left}");
        assert!(String::from_utf8(bytes.to_vec()).unwrap().starts_with(r#"{"holder":"NUID123","expires_at_ms":"#));
        assert!(Lease::parse(b"{}").is_none());
    }
}
