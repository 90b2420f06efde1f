//! `file`: write batches as JSONL or CSV files in a directory (a local data lake).
//!
//! # Durability
//!
//! [`Rolling::PerBatch`] writes each batch to a hidden temporary file (`.{name}.tmp`), fsyncs
//! it, renames it to its final name `{prefix}-{run}-{seq:06}.{ext}` and fsyncs the directory:
//! a final name always holds a complete batch. A retried write reuses the same name, so a
//! batch is never written twice.
//!
//! [`Rolling::Size`] appends batches to an in-progress file whose hidden name carries the
//! length of its durable, acknowledged prefix: `.{name}.{committed}.inprogress`. Each batch is
//! written after that prefix, fsynced, and only then is the file renamed to carry the new
//! length (and the directory fsynced), before `write` returns. A crash can leave bytes after
//! the committed length (a partial batch that was never acknowledged): the next
//! [`Sink::open`] on the directory truncates every in-progress file of the same prefix to the
//! length in its name and renames it to its final name. This works for CSV, whose quoted
//! fields may contain newlines, as well as for JSONL. A file is finalised when it reaches the
//! size limit and on [`Sink::close`].
//!
//! Only one sink may write a given prefix in a given directory at a time: `open` finalises the
//! in-progress files it finds there as left over by a crash.

use super::{Encoded, Sink, Written};
use crate::blocking::Offload;
use crate::config::interpolate;
use crate::error::ConnectorError;
use crate::format::Format;
use crate::record::Record;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// When a new file is started.
///
/// ```
/// use etl::sink::Rolling;
/// let sink = etl::sink::file("lake").rolling(Rolling::Size(64 << 20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rolling {
    /// One file per batch.
    PerBatch,
    /// Append batches to one file until it reaches this many bytes. A file never exceeds it,
    /// except one holding a single batch larger than the limit.
    Size(u64),
}

/// Suffix of in-progress files (Size rolling), after the committed length.
const IN_PROGRESS: &str = ".inprogress";
/// Suffix of temporary files (per-batch rolling).
const TMP: &str = ".tmp";

/// Writes each batch durably into files of a directory. See [`file()`].
pub struct FileSink {
    dir: String,
    format: Format,
    prefix: String,
    rolling: Rolling,
    sync: bool,
    /// The resolved directory, once opened.
    resolved: Option<PathBuf>,
    /// Makes file names unique across runs and sinks: start time (ms) and process id.
    run: String,
    /// Number of the next file.
    seq: u64,
    /// The encoding buffer, reused from batch to batch.
    encoded: Encoded,
    /// The file being appended to (Size rolling).
    current: Option<InProgress>,
    /// Where the file I/O runs.
    offload: Offload,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the encoding buffer: it can hold megabytes.
        f.debug_struct("FileSink")
            .field("dir", &self.dir)
            .field("format", &self.format)
            .field("prefix", &self.prefix)
            .field("rolling", &self.rolling)
            .field("sync", &self.sync)
            .field("resolved", &self.resolved)
            .field("run", &self.run)
            .field("seq", &self.seq)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// An in-progress file of Size rolling.
#[derive(Debug)]
struct InProgress {
    file: File,
    /// Final name, without directory.
    name: String,
    /// Bytes durably written and acknowledged.
    committed: u64,
    /// The length the file's hidden name carries (may exceed `committed` after a failure
    /// between the rename and the directory fsync).
    named: u64,
    /// A write failed: bytes after `committed` may be garbage.
    dirty: bool,
    /// CSV columns of the file (its header row).
    columns: Vec<String>,
}

impl InProgress {
    fn hidden(dir: &Path, name: &str, len: u64) -> PathBuf {
        dir.join(format!(".{name}.{len}{IN_PROGRESS}"))
    }
}

/// Write into the directory `dir` (`${VAR}` resolved at start-up).
///
/// ```
/// use etl::prelude::*;
/// let sink = etl::sink::file("lake").format(Format::Csv).prefix("orders");
/// ```
pub fn file(dir: impl Into<String>) -> FileSink {
    static SINKS: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
    let nth = SINKS.fetch_add(1, Ordering::Relaxed);
    let run = match nth {
        0 => format!("{millis:013}-{}", std::process::id()),
        n => format!("{millis:013}-{}.{n}", std::process::id()),
    };
    FileSink {
        dir: dir.into(),
        format: Format::Jsonl,
        prefix: "part".into(),
        rolling: Rolling::PerBatch,
        sync: true,
        resolved: None,
        run,
        seq: 0,
        encoded: Encoded::default(),
        current: None,
        offload: Offload::default(),
    }
}

impl FileSink {
    /// The file format. Default JSONL.
    ///
    /// ```
    /// let sink = etl::sink::file("lake").format(etl::format::Format::Csv);
    /// ```
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// The file name prefix. Default `part`.
    ///
    /// ```
    /// let sink = etl::sink::file("lake").prefix("orders");
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// When to start a new file. Default one per batch.
    ///
    /// ```
    /// let sink = etl::sink::file("lake").rolling(etl::sink::Rolling::Size(1 << 20));
    /// ```
    pub fn rolling(mut self, rolling: Rolling) -> Self {
        self.rolling = rolling;
        self
    }

    /// Whether to fsync before acknowledging. Default true; false trades durability on power
    /// loss for speed.
    ///
    /// ```
    /// let sink = etl::sink::file("scratch").sync(false);
    /// ```
    pub fn sync(mut self, yes: bool) -> Self {
        self.sync = yes;
        self
    }

    fn component(path: &Path) -> String {
        format!("file sink {}", path.display())
    }

    /// Run file I/O (fsync: milliseconds on a disk) inline or off the async threads, whichever
    /// costs less (see [`Offload`]).
    async fn blocking<R: Send + 'static>(&mut self, dir: &Path, f: impl FnOnce() -> R + Send + 'static) -> Result<R, ConnectorError> {
        self.offload.run(f).await.map_err(|e| ConnectorError::retryable(Self::component(dir), e))
    }

    /// Resolve, create and check the directory, and recover what a crash left; idempotent.
    async fn ensure_open(&mut self) -> Result<PathBuf, ConnectorError> {
        if let Some(dir) = &self.resolved {
            return Ok(dir.clone());
        }
        let dir = PathBuf::from(interpolate(&self.dir).map_err(|e| ConnectorError::permanent(format!("file sink {}", self.dir), e))?);
        let prefix = self.prefix.clone();
        let probe = format!(".{}-{}-probe{TMP}", self.prefix, self.run);
        let sync = self.sync;
        let checked = dir.clone();
        self.blocking(&dir, move || -> Result<(), ConnectorError> {
            let permanent = |path: &Path, e: std::io::Error| ConnectorError::permanent(Self::component(path), e);
            std::fs::create_dir_all(&checked).map_err(|e| permanent(&checked, e))?;
            let probe = checked.join(probe);
            File::create(&probe).and_then(|mut f| f.write_all(b"probe")).map_err(|e| permanent(&probe, e))?;
            std::fs::remove_file(&probe).map_err(|e| permanent(&probe, e))?;
            recover(&checked, &prefix, sync).map_err(|(path, e)| ConnectorError::retryable(Self::component(&path), e))
        })
        .await??;
        tracing::debug!(dir = %dir.display(), "file sink opened");
        self.resolved = Some(dir.clone());
        Ok(dir)
    }

    /// The name of the next file: `{prefix}-{run}-{seq:06}.{ext}`.
    fn file_name(&self) -> String {
        format!("{}-{}-{:06}.{}", self.prefix, self.run, self.seq, self.format.extension())
    }

    /// The next file's name, taken.
    fn next_name(&mut self) -> String {
        let name = self.file_name();
        self.seq += 1;
        name
    }

    async fn write_per_batch<T: Record + Sync>(&mut self, dir: PathBuf, records: &[T]) -> Result<Written, ConnectorError> {
        self.encoded.encode(records, self.format, true);
        let rejected = std::mem::take(&mut self.encoded.rejected);
        if self.encoded.count == 0 {
            return Ok(Written { rejected });
        }
        // The name is taken only once the file is in place: a retry reuses it (no duplicate).
        let name = self.file_name();
        let bytes = std::mem::take(&mut self.encoded.bytes);
        let sync = self.sync;
        let task_dir = dir.clone();
        let (bytes, result) = self
            .blocking(&dir, move || {
                let result = write_whole(&task_dir, &name, &bytes, sync);
                (bytes, result)
            })
            .await?;
        self.encoded.bytes = bytes;
        let (path, e) = match result {
            Ok(()) => {
                self.seq += 1;
                return Ok(Written { rejected });
            }
            Err(failure) => failure,
        };
        Err(ConnectorError::retryable(Self::component(&path), e))
    }

    async fn write_rolling<T: Record + Sync>(&mut self, dir: PathBuf, records: &[T], max: u64) -> Result<Written, ConnectorError> {
        let csv = self.format == Format::Csv;
        if let Some(current) = &self.current {
            match csv {
                true => self.encoded.encode_csv(records, &current.columns, false),
                false => self.encoded.encode_jsonl(records),
            }
            if current.committed > 0 && current.committed + self.encoded.bytes.len() as u64 > max && self.encoded.count > 0 {
                self.finalise(&dir).await?;
            }
        }
        if self.current.is_none() {
            // A new file: its CSV header comes from this batch.
            let columns = if csv { T::csv_header(records) } else { Vec::new() };
            match csv {
                true => self.encoded.encode_csv(records, &columns, true),
                false => self.encoded.encode_jsonl(records),
            }
            if self.encoded.count == 0 {
                return Ok(Written { rejected: std::mem::take(&mut self.encoded.rejected) });
            }
            let name = self.next_name();
            let hidden = InProgress::hidden(&dir, &name, 0);
            let file = self
                .blocking(&dir, move || OpenOptions::new().write(true).create(true).truncate(true).open(&hidden).map_err(|e| (hidden, e)))
                .await?
                .map_err(|(path, e)| ConnectorError::retryable(Self::component(&path), e))?;
            self.current = Some(InProgress { file, name, committed: 0, named: 0, dirty: false, columns });
        }
        let rejected = std::mem::take(&mut self.encoded.rejected);
        if self.encoded.count == 0 {
            return Ok(Written { rejected });
        }
        let Some(mut current) = self.current.take() else {
            return Err(ConnectorError::permanent(Self::component(&dir), "no in-progress file (bug)"));
        };
        let bytes = std::mem::take(&mut self.encoded.bytes);
        let sync = self.sync;
        let task_dir = dir.clone();
        let (current, bytes, result) = self
            .blocking(&dir, move || {
                let result = append(&task_dir, &mut current, &bytes, sync);
                (current, bytes, result)
            })
            .await?;
        self.encoded.bytes = bytes;
        let full = current.committed >= max;
        self.current = Some(current);
        result.map_err(|(path, e)| ConnectorError::retryable(Self::component(&path), e))?;
        if full {
            // The batch is durable: a failed roll-over must not make the pipeline write it
            // again. The next write (or `close`) tries the roll-over again.
            if let Err(e) = self.finalise(&dir).await {
                tracing::warn!(error = %e, "cannot finalise a full file yet; will retry");
            }
        }
        Ok(Written { rejected })
    }

    /// Give the in-progress file its final name.
    async fn finalise(&mut self, dir: &Path) -> Result<(), ConnectorError> {
        let Some(current) = self.current.take() else { return Ok(()) };
        let sync = self.sync;
        let task_dir = dir.to_path_buf();
        let (current, result) = self
            .blocking(dir, move || {
                let result = finalise_blocking(&task_dir, &current, sync);
                (current, result)
            })
            .await?;
        match result {
            // Renamed: the file is done, even if the directory fsync failed after the rename
            // (then a crash may bring the in-progress name back; `open` finalises it).
            Ok(()) | Err(Finalise::AfterRename(..)) => {
                tracing::debug!(file = %current.name, bytes = current.committed, "file finalised");
            }
            Err(Finalise::BeforeRename(..)) => self.current = Some(current),
        }
        result.map_err(|e| {
            let (path, e) = e.into_parts();
            ConnectorError::retryable(Self::component(&path), e)
        })
    }
}

type IoFailure = (PathBuf, std::io::Error);

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> IoFailure + '_ {
    move |e| (path.to_path_buf(), e)
}

/// Make a rename (or creation, deletion) in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), IoFailure> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened as files on every platform; the rename is atomic.
        let _ = dir;
        Ok(())
    }
}

/// Per-batch rolling: temporary file, fsync, rename, directory fsync.
fn write_whole(dir: &Path, name: &str, bytes: &[u8], sync: bool) -> Result<(), IoFailure> {
    let tmp = dir.join(format!(".{name}{TMP}"));
    let target = dir.join(name);
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        Ok(())
    });
    if let Err(e) = written.map_err(at(&tmp)).and_then(|()| std::fs::rename(&tmp, &target).map_err(at(&target))) {
        // Leave nothing behind; a retry starts over under the same name.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Size rolling: append a batch after the committed prefix and commit it (see the module docs).
fn append(dir: &Path, current: &mut InProgress, bytes: &[u8], sync: bool) -> Result<(), IoFailure> {
    let old = InProgress::hidden(dir, &current.name, current.named);
    let written = (|| {
        if current.dirty {
            current.file.set_len(current.committed)?;
        }
        current.file.seek(SeekFrom::Start(current.committed))?;
        current.file.write_all(bytes)?;
        if sync {
            current.file.sync_data()?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        current.dirty = true;
        return Err((old, e));
    }
    let len = current.committed + bytes.len() as u64;
    let new = InProgress::hidden(dir, &current.name, len);
    if let Err(e) = std::fs::rename(&old, &new) {
        current.dirty = true;
        return Err((new, e));
    }
    current.named = len;
    if sync {
        if let Err(e) = sync_dir(dir) {
            current.dirty = true;
            return Err(e);
        }
    }
    current.committed = len;
    current.dirty = false;
    Ok(())
}

enum Finalise {
    BeforeRename(PathBuf, std::io::Error),
    AfterRename(PathBuf, std::io::Error),
}

impl Finalise {
    fn into_parts(self) -> IoFailure {
        match self {
            Finalise::BeforeRename(p, e) | Finalise::AfterRename(p, e) => (p, e),
        }
    }
}

fn finalise_blocking(dir: &Path, current: &InProgress, sync: bool) -> Result<(), Finalise> {
    let hidden = InProgress::hidden(dir, &current.name, current.named);
    if current.dirty {
        current
            .file
            .set_len(current.committed)
            .and_then(|()| if sync { current.file.sync_all() } else { Ok(()) })
            .map_err(|e| Finalise::BeforeRename(hidden.clone(), e))?;
    }
    let target = dir.join(&current.name);
    std::fs::rename(&hidden, &target).map_err(|e| Finalise::BeforeRename(target.clone(), e))?;
    if sync {
        sync_dir(dir).map_err(|(p, e)| Finalise::AfterRename(p, e))?;
    }
    Ok(())
}

/// Parse `.{final name}.{len}.inprogress`.
fn parse_in_progress(file_name: &str) -> Option<(&str, u64)> {
    let body = file_name.strip_prefix('.')?.strip_suffix(IN_PROGRESS)?;
    let (name, len) = body.rsplit_once('.')?;
    Some((name, len.parse().ok()?))
}

/// Finalise the in-progress files of `prefix` a crash left in `dir` (truncated to their
/// committed length) and delete its temporary files.
fn recover(dir: &Path, prefix: &str, sync: bool) -> Result<(), IoFailure> {
    let ours = format!("{prefix}-");
    let mut changed = false;
    for entry in std::fs::read_dir(dir).map_err(at(dir))? {
        let entry = entry.map_err(at(dir))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else { continue };
        let path = entry.path();
        if let Some((name, len)) = parse_in_progress(file_name) {
            if !name.starts_with(&ours) {
                continue;
            }
            changed = true;
            if len == 0 {
                std::fs::remove_file(&path).map_err(at(&path))?;
                continue;
            }
            let file = OpenOptions::new().write(true).open(&path).map_err(at(&path))?;
            let actual = file.metadata().map_err(at(&path))?.len();
            if actual < len {
                tracing::warn!(file = %path.display(), committed = len, actual, "in-progress file is shorter than its committed length; keeping what is there");
            } else if actual > len {
                tracing::info!(file = %path.display(), committed = len, dropped = actual - len, "dropping the unacknowledged tail of an in-progress file");
                file.set_len(len).map_err(at(&path))?;
            }
            if sync {
                file.sync_all().map_err(at(&path))?;
            }
            let target = dir.join(name);
            std::fs::rename(&path, &target).map_err(at(&target))?;
            tracing::info!(file = %target.display(), bytes = len.min(actual), "finalised an in-progress file left by an earlier run");
        } else if file_name.starts_with(&format!(".{ours}")) && file_name.ends_with(TMP) {
            changed = true;
            tracing::info!(file = %path.display(), "removing a temporary file left by an earlier run");
            std::fs::remove_file(&path).map_err(at(&path))?;
        }
    }
    if changed && sync {
        sync_dir(dir)?;
    }
    Ok(())
}

impl<T: Record + Sync> Sink<T> for FileSink {
    fn describe(&self) -> String {
        match &self.resolved {
            Some(dir) => format!("file {}", dir.display()),
            None => format!("file {}", self.dir),
        }
    }

    async fn open(&mut self, _ctx: super::SinkContext) -> Result<(), ConnectorError> {
        self.ensure_open().await.map(|_| ())
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        let dir = self.ensure_open().await?;
        if records.is_empty() {
            return Ok(Written::all());
        }
        match self.rolling {
            Rolling::PerBatch => self.write_per_batch(dir, records).await,
            Rolling::Size(max) => self.write_rolling(dir, records, max).await,
        }
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        match &self.resolved {
            Some(dir) => {
                let dir = dir.clone();
                self.finalise(&dir).await
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Json;
    use serde_json::json;

    fn rec(v: serde_json::Value) -> Json {
        serde_json::from_value(v).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn parses_in_progress_names() {
        assert_eq!(parse_in_progress(".part-1-2-000001.csv.1234.inprogress"), Some(("part-1-2-000001.csv", 1234)));
        assert_eq!(parse_in_progress("part-1.csv"), None);
        assert_eq!(parse_in_progress(".part-1.csv.x.inprogress"), None);
    }

    #[tokio::test]
    async fn per_batch_files_and_sequence() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("lake");
        let mut sink = file(dir.to_str().unwrap()).prefix("p");
        Sink::<Json>::open(&mut sink, crate::sink::SinkContext::default()).await.unwrap();
        sink.write(&[rec(json!({"a": 1}))]).await.unwrap();
        sink.write(&[rec(json!({"a": 2})), rec(json!({"a": 3}))]).await.unwrap();
        Sink::<Json>::write(&mut sink, &[]).await.unwrap();
        Sink::<Json>::close(&mut sink).await.unwrap();
        let files = names(&dir);
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(files[0].ends_with("-000000.jsonl") && files[1].ends_with("-000001.jsonl"), "{files:?}");
        assert_eq!(std::fs::read_to_string(dir.join(&files[1])).unwrap(), "{\"a\":2}\n{\"a\":3}\n");
    }

    #[tokio::test]
    async fn per_batch_retry_after_failure_leaves_one_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut sink = file(tmp.path().to_str().unwrap()).prefix("p");
        Sink::<Json>::open(&mut sink, crate::sink::SinkContext::default()).await.unwrap();
        // Block the temporary name so that the write fails.
        let blocker = tmp.path().join(format!(".p-{}-000000.jsonl.tmp", sink.run));
        std::fs::create_dir(&blocker).unwrap();
        std::fs::write(blocker.join("x"), b"x").unwrap();
        let batch = [rec(json!({"a": 1})), rec(json!({"a": 2}))];
        let e = sink.write(&batch).await.unwrap_err();
        assert!(e.is_retryable());
        assert!(e.to_string().contains(".tmp"), "{e}");
        assert!(names(tmp.path()).iter().all(|n| n.starts_with('.')), "nothing under a final name: {:?}", names(tmp.path()));
        std::fs::remove_dir_all(&blocker).unwrap();
        sink.write(&batch).await.unwrap();
        let files = names(tmp.path());
        assert_eq!(files, [format!("p-{}-000000.jsonl", sink.run)]);
        assert_eq!(std::fs::read_to_string(tmp.path().join(&files[0])).unwrap(), "{\"a\":1}\n{\"a\":2}\n");
    }

    #[tokio::test]
    async fn size_retry_after_failure_writes_the_batch_once() {
        let tmp = tempfile::tempdir().unwrap();
        let mut sink = file(tmp.path().to_str().unwrap()).prefix("s").rolling(Rolling::Size(1 << 20));
        let first = [rec(json!({"a": 1}))];
        let second = [rec(json!({"a": 2})), rec(json!({"a": 3}))];
        sink.write(&first).await.unwrap();
        let committed = Encoded::new(&first, Format::Jsonl, false).bytes.len();
        let len = committed + Encoded::new(&second, Format::Jsonl, false).bytes.len();
        // Block the rename that commits the second batch (after its bytes were written).
        let name = format!("s-{}-000000.jsonl", sink.run);
        let blocker = tmp.path().join(format!(".{name}.{len}.inprogress"));
        std::fs::create_dir(&blocker).unwrap();
        std::fs::write(blocker.join("x"), b"x").unwrap();
        let e = sink.write(&second).await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        std::fs::remove_dir_all(&blocker).unwrap();
        sink.write(&second).await.unwrap();
        Sink::<Json>::close(&mut sink).await.unwrap();
        assert_eq!(names(tmp.path()), std::slice::from_ref(&name));
        assert_eq!(std::fs::read_to_string(tmp.path().join(&name)).unwrap(), "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
    }

    #[tokio::test]
    async fn size_rolls_before_exceeding_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        // Each record is 8 bytes: `{"a":1}\n`.
        let mut sink = file(tmp.path().to_str().unwrap()).rolling(Rolling::Size(20));
        for i in 0..5 {
            sink.write(&[rec(json!({"a": i}))]).await.unwrap();
        }
        Sink::<Json>::close(&mut sink).await.unwrap();
        let sizes: Vec<u64> = names(tmp.path()).iter().map(|n| std::fs::metadata(tmp.path().join(n)).unwrap().len()).collect();
        assert_eq!(sizes, [16, 16, 8]);
    }

    #[tokio::test]
    async fn interpolates_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let mut sink = file(format!("{}/${{ETL_FILE_SINK_TEST_UNSET:-sub}}", tmp.path().display()));
        Sink::<Json>::open(&mut sink, crate::sink::SinkContext::default()).await.unwrap();
        assert!(tmp.path().join("sub").is_dir());
        assert_eq!(Sink::<Json>::describe(&sink), format!("file {}/sub", tmp.path().display()));
        let mut bad = file("${ETL_FILE_SINK_TEST_UNSET}");
        let e = Sink::<Json>::open(&mut bad, crate::sink::SinkContext::default()).await.unwrap_err();
        assert!(!e.is_retryable());
    }

    #[tokio::test]
    async fn unwritable_directory_is_permanent() {
        let tmp = tempfile::tempdir().unwrap();
        let not_a_dir = tmp.path().join("file");
        std::fs::write(&not_a_dir, b"x").unwrap();
        let mut sink = file(not_a_dir.join("sub").to_str().unwrap());
        let e = Sink::<Json>::open(&mut sink, crate::sink::SinkContext::default()).await.unwrap_err();
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("sub"), "{e}");
    }
}
