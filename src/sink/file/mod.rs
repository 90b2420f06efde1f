//! `file`: write batches as JSONL or CSV files in a directory (a local data lake).
//!
//! # Durability, in two phases
//!
//! The sink follows the pipeline's two-phase contract ([`Sink`]): `write` writes, `commit`
//! makes durable, and the source hears about a batch only after the commit.
//!
//! [`Rolling::PerBatch`] writes each batch to a hidden temporary file (`.{name}.tmp`) in
//! `write`. `commit` fsyncs every file written since the last commit, renames each to its final
//! name `{prefix}-{run}-{seq:06}.{ext}`, and fsyncs the directory once for the whole group
//! (instead of a file sync and a directory sync per batch): a final name always holds a
//! complete, durable batch. A failed commit removes the group's files and the pipeline writes
//! those batches again under the same names, so a batch is never in two files.
//!
//! [`Rolling::Size`] appends batches to an in-progress file whose hidden name carries the
//! length of its durable, acknowledged prefix: `.{name}.{committed}.inprogress`. `write`
//! appends after what was written; `commit` fsyncs the file and renames it to carry the new
//! length (then fsyncs the directory). A crash can leave bytes after the committed length
//! (batches never acknowledged): the next [`Sink::open`] on the directory truncates every
//! in-progress file of the same prefix to the length in its name and renames it to its final
//! name. This works for CSV, whose quoted fields may contain newlines, as well as for JSONL.
//! A file is finalised when the next batch would take it past the size limit, and on
//! [`Sink::close`]; when several batches are written before one commit (`max_in_flight` > 1),
//! the file is finalised at the commit after it reached the limit instead, so it may exceed the
//! limit by the batches of that commit.
//!
//! Only one sink may write a given prefix in a given directory at a time: `open` finalises the
//! in-progress files it finds there as left over by a crash.
//!
//! # Partitions
//!
//! The directory may hold the placeholders `{date}` and `{hour}` (the same as the `s3` sink's
//! key template): the UTC date (`2024-06-10`) and hour (`13`) of the write, i.e. the
//! **processing time**, not a field of the records. `lake/orders/{date}/{hour}` writes into
//! `lake/orders/2024-06-10/13/` (created when first needed, its entry synced with `sync`).
//! `{{` and `}}` are literal braces; any other placeholder is an error at start-up naming it.
//!
//! With [`Rolling::PerBatch`] each batch goes to the partition of its write. With
//! [`Rolling::Size`] a file stays in the partition it was started in: when the partition of a
//! write differs, the file is finalised (at once, or at the commit of the batches it already
//! holds, like a file at its size limit: those written before that commit still go to it), and
//! the next file starts in the new partition. At open, the recovery visits every existing
//! directory below the template's root (the components before the first placeholder) that
//! matches the template.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use etl::prelude::*;
//! let dir = tempfile::tempdir().unwrap();
//! let lake = dir.path().join("orders/{date}/{hour}");
//! let out = etl::sink::file(lake.to_str().unwrap()).prefix("orders").max_file_bytes(64 << 20);
//! let order: Json = serde_json::from_str(r#"{"id": 1}"#).unwrap();
//! Pipeline::from(etl::source::iter(vec![order])).to(out).handle_signals(false).run().await?;
//! let date = std::fs::read_dir(dir.path().join("orders")).unwrap().next().unwrap().unwrap().file_name();
//! assert_eq!(date.len(), "2024-06-10".len());
//! # Ok::<(), etl::Error>(()) }).unwrap();
//! ```

mod encode;
mod partition;
mod write;

use super::{Sink, SinkContext, Written};
use crate::blocking::Offload;
use crate::config::interpolate;
use crate::error::ConnectorError;
use crate::format::{Encoded, Format};
use crate::record::Record;
use encode::{file_name, run_id, TMP};
use partition::DirTemplate;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use write::{commit_group, create_partition, discard_group, partitions, recover, write_temporary, Finalise, InProgress};

/// The default [`FileSink::format`]: JSON lines.
///
/// ```
/// assert_eq!(etl::sink::file::DEFAULT_FORMAT, etl::format::Format::Jsonl);
/// ```
pub const DEFAULT_FORMAT: Format = Format::Jsonl;

/// The default [`FileSink::prefix`] of file names.
///
/// ```
/// assert_eq!(etl::sink::file::DEFAULT_PREFIX, "part");
/// ```
pub const DEFAULT_PREFIX: &str = "part";

/// The default of [`FileSink::sync`]: fsync before acknowledging.
///
/// ```
/// assert!(etl::sink::file::DEFAULT_SYNC);
/// ```
pub const DEFAULT_SYNC: bool = true;

/// The default [`FileSink::rolling`]: one file per batch.
///
/// ```
/// assert_eq!(etl::sink::file::DEFAULT_ROLLING, etl::sink::Rolling::PerBatch);
/// ```
pub const DEFAULT_ROLLING: Rolling = Rolling::PerBatch;

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
    /// except one holding a single batch larger than the limit, or one that reached it in the
    /// middle of a commit group (see the [module docs](self)). In a partitioned directory, a
    /// new file also starts in each new partition.
    Size(u64),
}

/// Writes each batch durably into files of a directory. See [`file()`].
pub struct FileSink {
    dir: String,
    format: Format,
    prefix: String,
    rolling: Rolling,
    sync: bool,
    /// The resolved directory template, once opened.
    resolved: Option<DirTemplate>,
    /// The partition last created (or found), so that each is created once.
    partition: Option<PathBuf>,
    /// The clock that picks a write's partition (tests set it).
    clock: fn() -> SystemTime,
    /// Makes file names unique across runs and sinks: start time (ms) and process id.
    run: String,
    /// Number of the next file.
    seq: u64,
    /// Number of the first file written since the last commit.
    committed_seq: u64,
    /// The encoding buffer, reused from batch to batch.
    encoded: Encoded,
    /// Files written since the last commit (per-batch rolling).
    uncommitted: Vec<write::Written>,
    /// The file being appended to (Size rolling).
    current: Option<InProgress>,
    /// Where writes run (no sync: quick) and where commits run (fsync: slow on a disk).
    offload_write: Offload,
    offload_commit: Offload,
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
            .field("uncommitted", &self.uncommitted.len())
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// Write into the directory `dir` (`${VAR}` resolved at start-up), which may be partitioned
/// by the UTC date and hour of the write with `{date}` and `{hour}` (see the
/// [module docs](self#partitions)).
///
/// ```
/// use etl::prelude::*;
/// let sink = etl::sink::file("lake").format(Format::Csv).prefix("orders");
/// let hourly = etl::sink::file("lake/orders/{date}/{hour}").max_file_bytes(64 << 20);
/// ```
pub fn file(dir: impl Into<String>) -> FileSink {
    FileSink {
        dir: dir.into(),
        format: DEFAULT_FORMAT,
        prefix: DEFAULT_PREFIX.into(),
        rolling: DEFAULT_ROLLING,
        sync: DEFAULT_SYNC,
        resolved: None,
        partition: None,
        clock: SystemTime::now,
        run: run_id(),
        seq: 0,
        committed_seq: 0,
        encoded: Encoded::default(),
        uncommitted: Vec::new(),
        current: None,
        offload_write: Offload::default(),
        offload_commit: Offload::default(),
    }
}

impl FileSink {
    /// The file format. Default [`DEFAULT_FORMAT`] (JSONL).
    ///
    /// ```
    /// let sink = etl::sink::file("lake").format(etl::format::Format::Csv);
    /// ```
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// The file name prefix. Default [`DEFAULT_PREFIX`] (`part`).
    ///
    /// ```
    /// let sink = etl::sink::file("lake").prefix("orders");
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// When to start a new file. Default [`DEFAULT_ROLLING`] (one per batch).
    ///
    /// ```
    /// let sink = etl::sink::file("lake").rolling(etl::sink::Rolling::Size(1 << 20));
    /// ```
    pub fn rolling(mut self, rolling: Rolling) -> Self {
        self.rolling = rolling;
        self
    }

    /// Roll to a new file once the current one reaches `bytes`: [`Rolling::Size`]`(bytes)`
    /// (what `max_file_bytes = 64MB` sets in `pipeline!`). Default [`DEFAULT_ROLLING`] (one
    /// file per batch).
    ///
    /// ```
    /// let sink = etl::sink::file("lake").max_file_bytes(64 << 20);
    /// ```
    pub fn max_file_bytes(self, bytes: u64) -> Self {
        self.rolling(Rolling::Size(bytes))
    }

    /// Whether to fsync before acknowledging. Default [`DEFAULT_SYNC`] (true); false trades
    /// durability on power loss for speed.
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

    fn io_error((path, e): write::IoFailure) -> ConnectorError {
        ConnectorError::retryable(Self::component(&path), e)
    }

    /// Run a write's file I/O (no sync: tens of microseconds) inline or off the async threads,
    /// whichever costs less (see [`Offload`]).
    async fn blocking<R: Send + 'static>(&mut self, dir: &Path, f: impl FnOnce() -> R + Send + 'static) -> Result<R, ConnectorError> {
        self.offload_write.run(f).await.map_err(|e| ConnectorError::retryable(Self::component(dir), e))
    }

    /// Run a commit's file I/O (fsync: milliseconds on a disk), likewise, with its own estimate.
    async fn blocking_commit<R: Send + 'static>(
        &mut self,
        dir: &Path,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, ConnectorError> {
        self.offload_commit.run(f).await.map_err(|e| ConnectorError::retryable(Self::component(dir), e))
    }

    /// Resolve the directory template, create and check its root, and recover what a crash
    /// left (in every existing partition); idempotent. Returns the root.
    async fn ensure_open(&mut self) -> Result<PathBuf, ConnectorError> {
        if let Some(template) = &self.resolved {
            return Ok(template.root().to_path_buf());
        }
        let text = interpolate(&self.dir).map_err(|e| ConnectorError::permanent(format!("file sink {}", self.dir), e))?;
        let template = DirTemplate::parse(&text).map_err(|e| ConnectorError::permanent(format!("file sink {text}"), e))?;
        let dir = template.root().to_path_buf();
        let prefix = self.prefix.clone();
        let probe = format!(".{}-{}-probe{TMP}", self.prefix, self.run);
        let sync = self.sync;
        let checked = template.clone();
        self.blocking(&dir, move || -> Result<(), ConnectorError> {
            let root = checked.root();
            let permanent = |path: &Path, e: std::io::Error| ConnectorError::permanent(Self::component(path), e);
            std::fs::create_dir_all(root).map_err(|e| permanent(root, e))?;
            let probe = root.join(probe);
            File::create(&probe).and_then(|mut f| f.write_all(b"probe")).map_err(|e| permanent(&probe, e))?;
            std::fs::remove_file(&probe).map_err(|e| permanent(&probe, e))?;
            let dirs = if checked.is_partitioned() { partitions(&checked).map_err(Self::io_error)? } else { vec![root.to_path_buf()] };
            for dir in dirs {
                recover(&dir, &prefix, sync).map_err(Self::io_error)?;
            }
            Ok(())
        })
        .await??;
        tracing::debug!(dir = %template.text(), "file sink opened");
        self.resolved = Some(template);
        Ok(dir)
    }

    /// The directory of a write now: the root, or the partition of the clock's time (created
    /// when it is a new one).
    async fn partition(&mut self) -> Result<PathBuf, ConnectorError> {
        let root = self.ensure_open().await?;
        let Some(template) = self.resolved.as_ref().filter(|t| t.is_partitioned()) else { return Ok(root) };
        let dir = template.render((self.clock)());
        if self.partition.as_ref() != Some(&dir) {
            let (task_dir, sync) = (dir.clone(), self.sync);
            self.blocking(&dir, move || create_partition(&task_dir, sync)).await?.map_err(Self::io_error)?;
            tracing::debug!(dir = %dir.display(), "file sink partition");
            self.partition = Some(dir.clone());
        }
        Ok(dir)
    }

    /// The name of the next file: `{prefix}-{run}-{seq:06}.{ext}`.
    fn file_name(&self) -> String {
        file_name(&self.prefix, &self.run, self.seq, self.format.extension())
    }

    async fn write_per_batch<T: Record + Sync>(&mut self, dir: PathBuf, records: &[T]) -> Result<Written, ConnectorError> {
        self.encoded.encode(records, self.format, true);
        let rejected = std::mem::take(&mut self.encoded.rejected);
        if self.encoded.count == 0 {
            return Ok(Written::rejecting(rejected));
        }
        // The name is taken only once the file is written: a retry reuses it (no duplicate).
        let name = self.file_name();
        let bytes = std::mem::take(&mut self.encoded.bytes);
        let task_dir = dir.clone();
        let (bytes, result) = self
            .blocking(&dir, move || {
                let result = write_temporary(&task_dir, &name, &bytes);
                (bytes, result)
            })
            .await?;
        self.encoded.bytes = bytes;
        self.uncommitted.push(result.map_err(Self::io_error)?);
        self.seq += 1;
        Ok(Written::rejecting(rejected))
    }

    async fn commit_per_batch(&mut self, dir: PathBuf) -> Result<(), ConnectorError> {
        if self.uncommitted.is_empty() {
            return Ok(());
        }
        let group = std::mem::take(&mut self.uncommitted);
        let sync = self.sync;
        let result = self
            .blocking_commit(&dir, move || match commit_group(&group, sync) {
                Ok(()) => Ok(group.len()),
                Err(e) => {
                    let files: Vec<(PathBuf, String)> = group.into_iter().map(|w| (w.dir, w.name)).collect();
                    discard_group(&files);
                    Err(e)
                }
            })
            .await;
        match result {
            Ok(Ok(files)) => {
                tracing::trace!(files, "file sink committed");
                self.committed_seq = self.seq;
                Ok(())
            }
            Ok(Err(e)) => {
                // The batches are written again under the same names.
                self.seq = self.committed_seq;
                Err(Self::io_error(e))
            }
            Err(e) => {
                self.seq = self.committed_seq;
                Err(e)
            }
        }
    }

    async fn write_rolling<T: Record + Sync>(&mut self, dir: PathBuf, records: &[T], max: u64) -> Result<Written, ConnectorError> {
        let csv = self.format == Format::Csv;
        if let Some(current) = &mut self.current {
            match csv {
                true => self.encoded.encode_csv(records, &current.columns, false),
                false => self.encoded.encode_jsonl(records),
            }
            let too_big = current.written > 0 && current.written + self.encoded.bytes.len() as u64 > max && self.encoded.count > 0;
            // The write belongs to another partition: the file is done, like a full one.
            let moved = current.dir != dir && self.encoded.count > 0;
            if (too_big || moved) && current.uncommitted() {
                // Part of this file awaits its commit: it is finalised then.
                current.full = true;
            } else if too_big || moved {
                self.finalise().await?;
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
                return Ok(Written::rejecting(std::mem::take(&mut self.encoded.rejected)));
            }
            let name = self.file_name();
            let task_dir = dir.clone();
            let created = self.blocking(&dir, move || InProgress::create(&task_dir, name, columns)).await?;
            self.current = Some(created.map_err(Self::io_error)?);
            self.seq += 1;
        }
        let rejected = std::mem::take(&mut self.encoded.rejected);
        if self.encoded.count == 0 {
            return Ok(Written::rejecting(rejected));
        }
        let Some(mut current) = self.current.take() else {
            return Err(ConnectorError::permanent(Self::component(&dir), "no in-progress file (bug)"));
        };
        let bytes = std::mem::take(&mut self.encoded.bytes);
        let (mut current, bytes, result) = self
            .blocking(&dir, move || {
                let result = current.append(&bytes);
                (current, bytes, result)
            })
            .await?;
        self.encoded.bytes = bytes;
        current.full |= current.written >= max;
        self.current = Some(current);
        result.map_err(Self::io_error)?;
        Ok(Written::rejecting(rejected))
    }

    async fn commit_rolling(&mut self) -> Result<(), ConnectorError> {
        let Some(current) = self.current.take_if(|c| c.uncommitted()) else { return Ok(()) };
        let sync = self.sync;
        let dir = current.dir.clone();
        let (current, result) = self
            .blocking_commit(&dir, move || {
                let mut current = current;
                let result = current.commit(sync);
                (current, result)
            })
            .await?;
        let finalised = result.is_ok() && current.full;
        if finalised {
            tracing::debug!(file = %current.name, bytes = current.committed, "file finalised");
        } else {
            self.current = Some(current);
        }
        result.map_err(Self::io_error)
    }

    /// Give the in-progress file its final name (its uncommitted bytes, if any, cut off).
    async fn finalise(&mut self) -> Result<(), ConnectorError> {
        let Some(current) = self.current.take() else { return Ok(()) };
        let sync = self.sync;
        let dir = current.dir.clone();
        let (current, result) = self
            .blocking_commit(&dir, move || {
                let result = current.finalise(sync);
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
        result.map_err(|e| Self::io_error(e.into_parts()))
    }
}

impl<T: Record + Sync> Sink<T> for FileSink {
    fn describe(&self) -> String {
        match &self.resolved {
            Some(template) => format!("file {}", template.text()),
            None => format!("file {}", crate::config::display(&self.dir)),
        }
    }

    async fn open(&mut self, _ctx: SinkContext) -> Result<(), ConnectorError> {
        self.ensure_open().await.map(|_| ())
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        if records.is_empty() {
            self.ensure_open().await?;
            return Ok(Written::all());
        }
        let dir = self.partition().await?;
        match self.rolling {
            Rolling::PerBatch => self.write_per_batch(dir, records).await,
            Rolling::Size(max) => self.write_rolling(dir, records, max).await,
        }
    }

    async fn commit(&mut self) -> Result<(), ConnectorError> {
        let Some(root) = self.resolved.as_ref().map(|t| t.root().to_path_buf()) else { return Ok(()) };
        match self.rolling {
            Rolling::PerBatch => self.commit_per_batch(root).await,
            Rolling::Size(_) => self.commit_rolling().await,
        }
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        let Some(root) = self.resolved.as_ref().map(|t| t.root().to_path_buf()) else { return Ok(()) };
        if !self.uncommitted.is_empty() {
            // The run ended with batches written and not committed: they are redelivered.
            let files: Vec<(PathBuf, String)> = std::mem::take(&mut self.uncommitted).into_iter().map(|w| (w.dir, w.name)).collect();
            self.blocking(&root, move || discard_group(&files)).await?;
            self.seq = self.committed_seq;
        }
        self.finalise().await
    }
}

#[cfg(test)]
mod tests;
