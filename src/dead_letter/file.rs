//! The embedded default dead-letter queue: a local JSONL file.

use super::replay::{republish, Replayed};
use super::{DeadLetter, DeadLetters, DynRepublish};
use crate::batch::FailureKind;
use crate::durable::{parent_dir, write_atomically};
use crate::error::ConnectorError;
use crate::record::Position;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tracing::{debug, warn};

/// Dead letters in a local JSONL file, created (with its parent directories) on the first write.
///
/// # Format
///
/// One JSON object a line, oldest first, each line ending with `\n`:
///
/// ```text
/// {"id":"1718000000000-42-0","payload":"/wA=","error":"invalid UTF-8","kind":"decode",
///  "source":"file in.jsonl","position":{"line":3},"step":"rename(a -> b)","headers":[{"name":"trace","value":"AQI="}],
///  "attempts":1,"first_failed":1718000000000,"last_failed":1718000000000}
/// ```
///
/// (shown on several lines here, one line in the file). `payload` and header values are
/// standard base64 with padding, so any bytes survive exactly; `kind` is the
/// [`FailureKind`](crate::batch::FailureKind) in snake case; `position` is
/// [`Position`](crate::record::Position)'s serde form; `first_failed` and `last_failed` are
/// milliseconds since the Unix epoch (negative before it). Unknown fields are ignored.
///
/// # Durability and concurrency
///
/// `write` appends all its entries with one `write_all` and syncs the file before it returns.
/// `replay` and `purge` rewrite the file atomically (a `<path>.tmp` sibling, synced, renamed over
/// the file, then the directory synced). Calls on the same path are serialised within the
/// process (across every `FileDeadLetters` of that path); nothing guards against another process
/// using the same file at the same time.
///
/// A crash during an append can leave a last line without its `\n` that does not parse: it is
/// ignored (with a warning) when reading and cut off by the next write. Any other line that does
/// not parse makes reading fail with its line number: a store that cannot be read is an error.
///
/// # Example
///
/// ```
/// use etl::batch::{Failure, FailureKind};
/// use etl::dead_letter::{DeadLetter, DeadLetters, FileDeadLetters};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let queue = FileDeadLetters::new(dir.path().join("dead-letters/orders.jsonl"));
/// assert!(queue.list().await?.is_empty()); // no file yet: an empty queue
///
/// let failure = Failure::new(bytes::Bytes::from_static(b"\xff\x00"), FailureKind::Decode, "invalid UTF-8", Default::default());
/// queue.write(vec![DeadLetter::from_failure(failure, "file in.jsonl")]).await?;
///
/// // Durable: another queue on the same path reads it back, bytes intact.
/// let again = FileDeadLetters::new(dir.path().join("dead-letters/orders.jsonl"));
/// assert_eq!(&again.list().await?[0].payload[..], b"\xff\x00");
/// # Ok::<(), etl::ConnectorError>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct FileDeadLetters {
    path: PathBuf,
    /// Shared by every queue on the same path in this process.
    lock: Arc<Mutex<()>>,
}

impl FileDeadLetters {
    /// A queue stored at `path`. Nothing is created until the first write.
    ///
    /// ```
    /// use etl::dead_letter::{DeadLetters, FileDeadLetters};
    /// let queue = FileDeadLetters::new("dead-letters/orders.jsonl");
    /// assert_eq!(queue.describe(), "file dead-letters/orders.jsonl");
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> FileDeadLetters {
        let path = path.into();
        let lock = lock_for(&path);
        FileDeadLetters { path, lock }
    }

    /// Run `op` on the file in a blocking task, holding the path's lock until it has finished
    /// (even if the calling future is dropped meanwhile).
    async fn blocking<T, F>(&self, op: F) -> Result<T, ConnectorError>
    where
        T: Send + 'static,
        F: FnOnce(&Path) -> Result<T, ConnectorError> + Send + 'static,
    {
        let guard: OwnedMutexGuard<()> = Arc::clone(&self.lock).lock_owned().await;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            op(&path)
        })
        .await
        .map_err(|e| ConnectorError::retryable(component(&self.path), e))?
    }

    /// Remove one stored entry per id in `ids` (oldest first, so an id listed twice removes
    /// two entries of that id), atomically; returns how many were removed. Ids no longer in
    /// the queue are skipped. This is how the `dead_letters` source acknowledges the entries
    /// of a delivered batch.
    ///
    /// ```
    /// use etl::batch::{Failure, FailureKind};
    /// use etl::dead_letter::{DeadLetter, DeadLetters, FileDeadLetters};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let queue = FileDeadLetters::new(dir.path().join("q.jsonl"));
    /// let entry = |p: &'static [u8]| DeadLetter::from_failure(Failure::new(bytes::Bytes::from_static(p), FailureKind::Decode, "bad", Default::default()), "s");
    /// let (a, b) = (entry(b"a"), entry(b"b"));
    /// queue.write(vec![a.clone(), b.clone()]).await?;
    /// assert_eq!(queue.remove([a.id.as_str(), "gone"]).await?, 1);
    /// let left: Vec<String> = queue.list().await?.into_iter().map(|e| e.id).collect();
    /// assert_eq!(left, [b.id]);
    /// # Ok::<(), etl::ConnectorError>(()) }).unwrap();
    /// ```
    pub async fn remove<I>(&self, ids: I) -> Result<usize, ConnectorError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut wanted = Replayed::default();
        for id in ids {
            wanted.add(id.as_ref());
        }
        if wanted.count() == 0 {
            return Ok(0);
        }
        let asked = wanted.count();
        let removed = self.remove_where(move |e| wanted.take(&e.id)).await?;
        debug!(queue = %self.path.display(), asked, removed, "dead letters removed");
        Ok(removed)
    }

    /// Remove the entries `drop_it` selects, oldest first, atomically; returns how many.
    async fn remove_where<F>(&self, drop_it: F) -> Result<usize, ConnectorError>
    where
        F: FnMut(&DeadLetter) -> bool + Send + 'static,
    {
        self.blocking(move |path| remove_where(path, drop_it)).await
    }
}

/// The lock of `path`, shared by every queue on that path in this process.
fn lock_for(path: &Path) -> Arc<Mutex<()>> {
    type Locks = std::sync::Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>;
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut locks = LOCKS.get_or_init(Locks::default).lock().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(locks.entry(key).or_default())
}

#[async_trait::async_trait]
impl DeadLetters for FileDeadLetters {
    fn describe(&self) -> String {
        component(&self.path)
    }

    async fn write(&self, entries: Vec<DeadLetter>) -> Result<(), ConnectorError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(entries.iter().map(|e| e.payload.len() * 4 / 3 + 256).sum());
        for entry in &entries {
            serde_json::to_writer(&mut buf, &Line::from(entry)).map_err(|e| ConnectorError::permanent(component(&self.path), e))?;
            buf.push(b'\n');
        }
        let n = entries.len();
        self.blocking(move |path| append(path, buf).map_err(|e| io_error(path, e))).await?;
        debug!(queue = %self.path.display(), count = n, "dead letters written");
        Ok(())
    }

    async fn list(&self) -> Result<Vec<DeadLetter>, ConnectorError> {
        self.blocking(|path| Ok(read(path)?.map(|f| f.entries.into_iter().map(|(e, _)| e).collect()).unwrap_or_default())).await
    }

    async fn replay(
        &self,
        filter: &(dyn for<'a> Fn(&'a DeadLetter) -> bool + Send + Sync),
        target: &mut dyn DynRepublish,
    ) -> Result<usize, ConnectorError> {
        // Finite: only the entries present now are replayed, even if more are written meanwhile.
        let snapshot = self.list().await?;
        let matching: Vec<DeadLetter> = snapshot.into_iter().filter(|e| filter(e)).collect();
        let (mut replayed, failed) = republish(&matching, target, &self.describe()).await;
        let count = replayed.count();
        if count > 0 {
            // Re-read under the lock and remove by id: entries written during the replay stay.
            let removed = self.remove_where(move |e| replayed.take(&e.id)).await?;
            if removed != count {
                warn!(queue = %self.path.display(), replayed = count, removed, "some replayed entries were no longer in the queue");
            }
            debug!(queue = %self.path.display(), count, "dead letters replayed");
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(count),
        }
    }

    async fn purge(&self, older_than: Duration) -> Result<usize, ConnectorError> {
        let Some(cutoff) = SystemTime::now().checked_sub(older_than) else {
            return Ok(0);
        };
        let removed = self.remove_where(move |e| e.last_failed < cutoff).await?;
        if removed > 0 {
            debug!(queue = %self.path.display(), count = removed, "dead letters purged");
        }
        Ok(removed)
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

/// The name errors and logs give the queue: `file <path>`.
fn component(path: &Path) -> String {
    format!("file {}", path.display())
}

fn io_error(path: &Path, e: io::Error) -> ConnectorError {
    ConnectorError::retryable(component(path), e)
}

/// `e` with what was being done added to its message (its kind kept).
fn context<'p>(what: &str, path: &'p Path) -> impl FnOnce(io::Error) -> io::Error + 'p {
    let what = what.to_owned();
    move |e| io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// One line of the file.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    id: String,
    /// Base64.
    payload: String,
    error: String,
    kind: FailureKind,
    source: String,
    position: Position,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step: Option<String>,
    #[serde(default)]
    headers: Vec<HeaderLine>,
    attempts: u32,
    /// Milliseconds since the Unix epoch.
    first_failed: i64,
    /// Milliseconds since the Unix epoch.
    last_failed: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct HeaderLine {
    name: String,
    /// Base64.
    value: String,
}

impl DeadLetter {
    /// The entry as one line of JSON, in the format of [`FileDeadLetters`] (payload in base64).
    ///
    /// ```
    /// # use etl::batch::{Failure, FailureKind};
    /// # use etl::dead_letter::DeadLetter;
    /// let f = Failure::new(bytes::Bytes::from_static(b"\xff"), FailureKind::Decode, "invalid UTF-8", Default::default());
    /// let line = DeadLetter::from_failure(f, "file in.jsonl").to_json_line();
    /// assert!(line.contains(r#""payload":"/w==""#), "{line}");
    /// ```
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(&Line::from(self)).unwrap_or_else(|e| format!("{{\"id\":{:?},\"unprintable\":{:?}}}", self.id, e.to_string()))
    }
}

impl From<&DeadLetter> for Line {
    fn from(e: &DeadLetter) -> Line {
        Line {
            id: e.id.clone(),
            payload: BASE64.encode(&e.payload),
            error: e.error.clone(),
            kind: e.kind,
            source: e.source.clone(),
            position: e.position.clone(),
            step: e.step.clone(),
            headers: e.headers.iter().map(|(name, value)| HeaderLine { name: name.clone(), value: BASE64.encode(value) }).collect(),
            attempts: e.attempts,
            first_failed: to_millis(e.first_failed),
            last_failed: to_millis(e.last_failed),
        }
    }
}

impl TryFrom<Line> for DeadLetter {
    type Error = String;
    fn try_from(l: Line) -> Result<DeadLetter, String> {
        let payload = BASE64.decode(&l.payload).map_err(|e| format!("payload is not base64: {e}"))?;
        let headers = l
            .headers
            .into_iter()
            .map(|h| match BASE64.decode(&h.value) {
                Ok(v) => Ok((h.name, Bytes::from(v))),
                Err(e) => Err(format!("header {:?} is not base64: {e}", h.name)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DeadLetter {
            id: l.id,
            payload: Bytes::from(payload),
            error: l.error,
            kind: l.kind,
            source: l.source,
            position: l.position,
            step: l.step,
            headers,
            attempts: l.attempts,
            first_failed: from_millis(l.first_failed).ok_or("first_failed is out of range")?,
            last_failed: from_millis(l.last_failed).ok_or("last_failed is out of range")?,
        })
    }
}

/// Milliseconds since the epoch, rounded down (towards the past), saturating.
fn to_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
            i64::try_from(ms).map(|ms| -ms).unwrap_or(i64::MIN)
        }
    }
}

fn from_millis(ms: i64) -> Option<SystemTime> {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

fn parse_line(line: &[u8]) -> Result<DeadLetter, String> {
    let line: Line = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    DeadLetter::try_from(line)
}

/// The parsed file: its bytes, and each entry with the byte range of its line (without `\n`).
struct Parsed {
    bytes: Vec<u8>,
    entries: Vec<(DeadLetter, Range<usize>)>,
}

/// Read and parse the whole file; `None` when it does not exist.
fn read(path: &Path) -> Result<Option<Parsed>, ConnectorError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, context("reading", path)(e))),
    };
    let mut entries = Vec::new();
    let mut start = 0;
    let mut number = 0;
    while start < bytes.len() {
        number += 1;
        let (end, next, terminated) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(i) => (start + i, start + i + 1, true),
            None => (bytes.len(), bytes.len(), false),
        };
        let line = &bytes[start..end];
        if !line.trim_ascii().is_empty() {
            match parse_line(line) {
                Ok(entry) => entries.push((entry, start..end)),
                Err(e) if !terminated => {
                    warn!(queue = %path.display(), line = number, error = %e, "ignoring a torn last line (an interrupted write); the next write removes it");
                }
                Err(e) => {
                    return Err(ConnectorError::permanent(component(path), format!("line {number} is corrupt: {e}")));
                }
            }
        }
        start = next;
    }
    Ok(Some(Parsed { bytes, entries }))
}

/// Append `buf` (whole lines) to the file, creating it and its directories if needed, after
/// repairing a torn last line; synced before returning.
fn append(path: &Path, mut buf: Vec<u8>) -> io::Result<()> {
    let created = match std::fs::metadata(path) {
        Ok(_) => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = parent_dir(path);
            std::fs::create_dir_all(dir).map_err(context("creating directory", dir))?;
            true
        }
        Err(e) => return Err(context("opening", path)(e)),
    };
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(context("opening", path))?;
    let (at, newline) = repair_tail(&mut file, path).map_err(context("reading", path))?;
    if newline {
        buf.insert(0, b'\n');
    }
    file.seek(SeekFrom::Start(at)).map_err(context("writing", path))?;
    let written = file.write_all(&buf).and_then(|()| file.sync_all());
    if let Err(e) = written {
        // Best effort: leave no partial entries behind (the caller retries the whole write).
        if let Err(e) = file.set_len(at).and_then(|()| file.sync_all()) {
            warn!(queue = %path.display(), error = %e, "could not cut a failed append off; the next write will");
        }
        return Err(context("writing", path)(e));
    }
    if created {
        sync_dir(path).map_err(context("syncing the directory of", path))?;
    }
    Ok(())
}

/// Where to append: the end of the file, or the start of a torn last line (cut off here).
/// Also says whether a `\n` must be written first (a last line that parses but lacks its `\n`).
fn repair_tail(file: &mut File, path: &Path) -> io::Result<(u64, bool)> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok((0, false));
    }
    let mut last = [0u8];
    file.seek(SeekFrom::End(-1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok((len, false));
    }
    let start = last_line_start(file, len)?;
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(start))?;
    file.read_to_end(&mut tail)?;
    if tail.trim_ascii().is_empty() || parse_line(&tail).is_err() {
        warn!(queue = %path.display(), bytes = tail.len(), "cutting off a torn last line (an interrupted write)");
        file.set_len(start)?;
        file.sync_all()?;
        Ok((start, false))
    } else {
        Ok((len, true))
    }
}

/// The offset just after the last `\n` before `len` (0 when there is none).
fn last_line_start(file: &mut File, len: u64) -> io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut chunk = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        chunk.resize(usize::try_from(end - start).unwrap_or(0), 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Re-read the file and remove, oldest first, the entries `drop_it` selects, by rewriting it
/// atomically; returns how many were removed. A missing file has nothing to remove.
fn remove_where(path: &Path, mut drop_it: impl FnMut(&DeadLetter) -> bool) -> Result<usize, ConnectorError> {
    let Some(parsed) = read(path)? else {
        return Ok(0);
    };
    let mut kept = Vec::with_capacity(parsed.bytes.len());
    let mut removed = 0;
    for (entry, range) in &parsed.entries {
        if drop_it(entry) {
            removed += 1;
        } else {
            kept.extend_from_slice(&parsed.bytes[range.clone()]);
            kept.push(b'\n');
        }
    }
    if removed > 0 {
        rewrite(path, &kept).map_err(|e| io_error(path, e))?;
    }
    Ok(removed)
}

/// Replace the file's content with `bytes` atomically: `<path>.tmp`, synced, renamed over it,
/// then the directory synced.
fn rewrite(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically(path, bytes).map_err(context("rewriting", path))
}

/// Make the directory entry of `path` durable (a created file).
fn sync_dir(path: &Path) -> io::Result<()> {
    crate::durable::sync_dir(parent_dir(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(payload: Vec<u8>, headers: Vec<(String, Vec<u8>)>, first: i64, last: i64) -> DeadLetter {
        DeadLetter {
            id: "id-1".into(),
            payload: Bytes::from(payload),
            error: "bad \"thing\"\n".into(),
            kind: FailureKind::Transform,
            source: "kafka orders".into(),
            position: Position::Offset { partition: 3, offset: -1 },
            step: Some("rename(a -> b)".into()),
            headers: headers.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect(),
            attempts: 7,
            first_failed: from_millis(first).unwrap(),
            last_failed: from_millis(last).unwrap(),
        }
    }

    proptest! {
        #[test]
        fn dead_letter_line_round_trips(
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            headers in proptest::collection::vec((".{0,8}", proptest::collection::vec(any::<u8>(), 0..20)), 0..4),
            first in -10_000_000_000_000i64..10_000_000_000_000,
            last in -10_000_000_000_000i64..10_000_000_000_000,
        ) {
            let e = entry(payload, headers, first, last);
            let line = serde_json::to_vec(&Line::from(&e)).unwrap();
            prop_assert!(!line.contains(&b'\n'));
            prop_assert_eq!(parse_line(&line).unwrap(), e);
        }
    }

    #[test]
    fn dead_letter_times_are_milliseconds_rounded_down() {
        let t = UNIX_EPOCH + Duration::from_micros(1_234_567);
        assert_eq!(to_millis(t), 1234);
        assert_eq!(from_millis(1234), Some(UNIX_EPOCH + Duration::from_millis(1234)));
        let before = UNIX_EPOCH - Duration::from_micros(1_500);
        assert_eq!(to_millis(before), -2);
        assert_eq!(from_millis(-2), Some(UNIX_EPOCH - Duration::from_millis(2)));
    }

    #[test]
    fn dead_letter_line_format() {
        let e = entry(b"\xff\x00".to_vec(), vec![("trace".into(), vec![1, 2])], 1_718_000_000_000, 1_718_000_000_001);
        let v: serde_json::Value = serde_json::to_value(Line::from(&e)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "id": "id-1", "payload": "/wA=", "error": "bad \"thing\"\n", "kind": "transform",
                "source": "kafka orders", "position": {"offset": {"partition": 3, "offset": -1}},
                "step": "rename(a -> b)", "headers": [{"name": "trace", "value": "AQI="}], "attempts": 7,
                "first_failed": 1_718_000_000_000i64, "last_failed": 1_718_000_000_001i64,
            })
        );
    }

    #[test]
    fn dead_letter_bad_base64_is_an_error() {
        let e = entry(vec![], vec![], 0, 0);
        let mut line = serde_json::to_value(Line::from(&e)).unwrap();
        line["payload"] = "not base64!".into();
        let err = parse_line(line.to_string().as_bytes()).unwrap_err();
        assert!(err.contains("payload"), "{err}");
    }

    #[test]
    fn dead_letter_last_line_start_spans_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.jsonl");
        let mut content = b"first\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', 200_000));
        std::fs::write(&path, &content).unwrap();
        let mut file = File::open(&path).unwrap();
        assert_eq!(last_line_start(&mut file, content.len() as u64).unwrap(), 6);
        std::fs::write(&path, b"no newline at all").unwrap();
        let mut file = File::open(&path).unwrap();
        assert_eq!(last_line_start(&mut file, 17).unwrap(), 0);
    }
}
