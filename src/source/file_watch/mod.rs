//! `file_watch`: watch a directory and read each file that lands in it, once it is complete
//! (feature `file-watch`).
//!
//! # Which files, and when
//!
//! The directory (and its sub-directories with `recursive`) is watched with the operating
//! system's events through `notify` (inotify, FSEvents, ...); where those are not available
//! (too many watches, a network file system) or with [`poll_interval`](FileWatchSource::poll_interval)
//! set, `notify`'s polling watcher scans it instead. Events only wake the source up: what it
//! reads is decided by listing the directory, so an event lost in an overflowing queue delays
//! a file, never loses it. Hidden files (a name starting with `.`: the temporaries writers
//! rename into place, the ledger) are ignored, and so is the archive directory when it is
//! inside the watched one. A file is taken when its *name* matches one of the glob
//! [`patterns`](FileWatchSource::patterns).
//!
//! A file is read only once it is **complete**: its size and modification time were the same
//! at two looks and it was last modified at least [`settle`](FileWatchSource::settle) ago, or
//! it was renamed into the directory (a writer that writes `x.tmp` and renames it to `x.json`
//! has finished). Files are read one after the other, oldest modification first.
//!
//! # Reading
//!
//! Every format streams in bounded chunks on a blocking thread, as the `file` source reads
//! (256 KiB at a time; memory is bounded by a few chunks and the longest record, whatever the
//! file size): JSON Lines and CSV with the `file` source's own readers, and a JSON file element
//! by element ([`WatchFormat`]: a top-level array is split into its elements without ever
//! holding the array). Records of several files share batches (`batch_size`,
//! `batch_timeout` as for any source).
//!
//! A file that fails to parse midway (a record that does not decode) may still be being
//! written: the source stops at the first bad record, waits `settle`, and looks at the file
//! again. When it changed, it is read again from there (the records already handed on are
//! skipped); when it did not, the bad record and every later one that does not decode are
//! dead-lettered with their raw bytes, the file's path and line, and reading goes on.
//!
//! # Metadata
//!
//! Beside each record: [`Position::Line`](crate::record::Position::Line) (the line for JSON
//! Lines and JSON, the record number for CSV, as the `file` source) and
//! [`Extra::file`](crate::record::Extra::file): the file's path, size and modification time.
//! A dead-letter entry's source names the file (`file_watch inbox/a.jsonl`).
//!
//! # Acknowledgement: the archive and the ledger
//!
//! A file is done once every batch holding its records was delivered or dead-lettered
//! (acknowledged). Then, in this order:
//!
//! 1. it is recorded in the **ledger** (relative path, size, modification time, an xxh3 hash
//!    of its first 4 KiB), appended and fsynced;
//! 2. with [`move_after_process`](FileWatchSource::move_after_process), it is moved to the
//!    archive directory under the same relative path, never over an existing file: a name
//!    taken gets a suffix (`orders.json` → `orders.1.json`); then its ledger entry is removed.
//!
//! The ledger (default `<dir>/.etl-file-watch.ledger`) survives restarts: a file it lists with
//! the same size, modification time and head hash is not read again, so a crash between
//! delivery and the archive move does not reprocess the file (the next start only moves it).
//! A batch that errored leaves its files unrecorded, to be read again whole (at-least-once:
//! the records of theirs that were delivered arrive twice). A crash between a sink's commit
//! and the ledger's append does the same for the files of the batches in flight.
//!
//! With `process_existing = false` the files present at the **first** start (no ledger yet)
//! are recorded as seen and not read; on every later start the ledger says what was seen, so
//! files that arrived while the pipeline was stopped are read.
//!
//! # Shutdown
//!
//! The source stops reading at the next chunk, the batch in hand is flushed, and the stream
//! ends once every file whose records were all acknowledged is recorded (and archived). A file
//! read partly is read again whole by the next run.

mod decode;
mod json;
mod ledger;
mod stream;
#[cfg(test)]
mod tests;

pub use decode::WatchFormat;

use super::{BatchStream, Source, SourceContext};
use crate::batch::{BatchConfig, BatchOptions};
use crate::config::interpolate;
use crate::record::Record;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The default [`patterns`](FileWatchSource::patterns): the formats the source reads.
///
/// ```
/// assert_eq!(etl::source::file_watch::DEFAULT_PATTERNS, ["*.json", "*.jsonl", "*.ndjson", "*.csv"]);
/// ```
pub const DEFAULT_PATTERNS: &[&str] = &["*.json", "*.jsonl", "*.ndjson", "*.csv"];

/// The default [`recursive`](FileWatchSource::recursive): only the directory itself.
///
/// ```
/// assert!(!etl::source::file_watch::DEFAULT_RECURSIVE);
/// ```
pub const DEFAULT_RECURSIVE: bool = false;

/// The default [`process_existing`](FileWatchSource::process_existing): files present at the
/// first start are read.
///
/// ```
/// assert!(etl::source::file_watch::DEFAULT_PROCESS_EXISTING);
/// ```
pub const DEFAULT_PROCESS_EXISTING: bool = true;

/// The default [`settle`](FileWatchSource::settle): how long a file must stay unchanged.
///
/// ```
/// assert_eq!(etl::source::file_watch::DEFAULT_SETTLE, std::time::Duration::from_millis(500));
/// ```
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(500);

/// The default [`format`](FileWatchSource::format): from each file's extension.
///
/// ```
/// assert_eq!(etl::source::file_watch::DEFAULT_FORMAT, etl::source::file_watch::WatchFormat::Auto);
/// ```
pub const DEFAULT_FORMAT: WatchFormat = WatchFormat::Auto;

/// The ledger's file name in the watched directory, unless [`ledger`](FileWatchSource::ledger)
/// names another file.
///
/// ```
/// assert_eq!(etl::source::file_watch::DEFAULT_LEDGER_NAME, ".etl-file-watch.ledger");
/// ```
pub const DEFAULT_LEDGER_NAME: &str = ".etl-file-watch.ledger";

/// How often the polling watcher scans, when the operating system's events are not available
/// and [`poll_interval`](FileWatchSource::poll_interval) is not set.
///
/// ```
/// assert_eq!(etl::source::file_watch::DEFAULT_POLL_INTERVAL, std::time::Duration::from_secs(1));
/// ```
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How many bytes of a file's head the ledger hashes.
///
/// ```
/// assert_eq!(etl::source::file_watch::HEAD_BYTES, 4096);
/// ```
pub const HEAD_BYTES: usize = 4096;

/// Watches a directory and reads each complete file once. See [`file_watch()`] and the
/// [module docs](self).
#[derive(Debug)]
pub struct FileWatchSource<T> {
    dir: String,
    patterns: Vec<String>,
    recursive: bool,
    process_existing: bool,
    move_after_process: Option<String>,
    format: WatchFormat,
    settle: Duration,
    ledger: Option<String>,
    poll_interval: Option<Duration>,
    drain_after: Option<CancellationToken>,
    batching: BatchConfig,
    _record: PhantomData<fn() -> T>,
}

/// Watch the directory `dir` (`${VAR}` resolved at start-up) and read each complete file that
/// matches the patterns, once.
///
/// ```
/// use etl::prelude::*;
/// let src = etl::source::file_watch::<Json>("/data/inbox")
///     .patterns(["*.json", "*.csv"])
///     .move_after_process("/data/archive")
///     .batch_size(1000);
/// ```
pub fn file_watch<T>(dir: impl Into<String>) -> FileWatchSource<T> {
    FileWatchSource {
        dir: dir.into(),
        patterns: DEFAULT_PATTERNS.iter().map(|p| (*p).to_owned()).collect(),
        recursive: DEFAULT_RECURSIVE,
        process_existing: DEFAULT_PROCESS_EXISTING,
        move_after_process: None,
        format: DEFAULT_FORMAT,
        settle: DEFAULT_SETTLE,
        ledger: None,
        poll_interval: None,
        drain_after: None,
        batching: BatchConfig::default(),
        _record: PhantomData,
    }
}

impl<T> FileWatchSource<T> {
    /// Glob patterns a file's name must match (`*`, `?`, `[a-z]`). Default
    /// [`DEFAULT_PATTERNS`].
    ///
    /// ```
    /// let src = etl::source::file_watch::<etl::Json>("inbox").patterns(["orders-*.csv"]);
    /// ```
    pub fn patterns<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.patterns = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Watch the sub-directories too (an archive directory inside is skipped). Default `false`.
    ///
    /// ```
    /// let src = etl::source::file_watch::<etl::Json>("inbox").recursive(true);
    /// ```
    pub fn recursive(mut self, yes: bool) -> Self {
        self.recursive = yes;
        self
    }

    /// Read the files present at the first start. Default `true`. With `false`, they are
    /// recorded in the ledger as seen; files that arrive later, while running or while
    /// stopped, are read.
    ///
    /// ```
    /// let src = etl::source::file_watch::<etl::Json>("inbox").process_existing(false);
    /// ```
    pub fn process_existing(mut self, yes: bool) -> Self {
        self.process_existing = yes;
        self
    }

    /// Move each file, once all its records were acknowledged, into this directory (`${VAR}`
    /// resolved; created if missing) under its path relative to the watched one; a name
    /// taken there gets a suffix (`a.json` → `a.1.json`), never an overwrite. Default: files
    /// stay where they are (the ledger says they were read).
    ///
    /// ```
    /// let src = etl::source::file_watch::<etl::Json>("inbox").move_after_process("archive");
    /// ```
    pub fn move_after_process(mut self, dir: impl Into<String>) -> Self {
        self.move_after_process = Some(dir.into());
        self
    }

    /// How the files are read. Default [`WatchFormat::Auto`] (from each file's extension).
    ///
    /// ```
    /// use etl::source::file_watch::WatchFormat;
    /// let src = etl::source::file_watch::<etl::Json>("inbox").format(WatchFormat::Jsonl);
    /// ```
    pub fn format(mut self, format: WatchFormat) -> Self {
        self.format = format;
        self
    }

    /// How long a file must stay unchanged (size and modification time) before it is read.
    /// Default 500 ms.
    ///
    /// ```
    /// let src = etl::source::file_watch::<etl::Json>("inbox").settle(std::time::Duration::from_secs(2));
    /// ```
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// The ledger of processed files (`${VAR}` resolved). Default
    /// `<dir>/.etl-file-watch.ledger`. Give each pipeline watching one directory its own.
    ///
    /// ```
    /// let src = etl::source::file_watch::<etl::Json>("inbox").ledger("/var/lib/etl/inbox.ledger");
    /// ```
    pub fn ledger(mut self, path: impl Into<String>) -> Self {
        self.ledger = Some(path.into());
        self
    }

    /// Scan the directory at this interval with `notify`'s polling watcher rather than use
    /// the operating system's events (network and FUSE file systems send none). Default: the
    /// events, or polling every [`DEFAULT_POLL_INTERVAL`] where they are not available.
    ///
    /// ```
    /// let src = etl::source::file_watch::<etl::Json>("/mnt/nfs/inbox").poll_interval(std::time::Duration::from_secs(5));
    /// ```
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = Some(interval);
        self
    }

    /// Drain, then stop: once `token` is cancelled, the source ends as soon as no file is
    /// waiting to settle or being read, and the pipeline finishes the batches in hand (a job
    /// that empties a directory). Without it the source watches until shutdown.
    ///
    /// ```
    /// let done = tokio_util::sync::CancellationToken::new();
    /// done.cancel(); // read what is there, then stop
    /// let src = etl::source::file_watch::<etl::Json>("inbox").drain_after(done);
    /// ```
    pub fn drain_after(mut self, token: CancellationToken) -> Self {
        self.drain_after = Some(token);
        self
    }
}

impl<T> BatchOptions for FileWatchSource<T> {
    fn batching(&mut self) -> &mut BatchConfig {
        &mut self.batching
    }
}

/// The options as resolved at start-up.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) dir: PathBuf,
    pub(crate) patterns: Vec<glob::Pattern>,
    pub(crate) recursive: bool,
    pub(crate) process_existing: bool,
    pub(crate) archive: Option<PathBuf>,
    pub(crate) format: WatchFormat,
    pub(crate) settle: Duration,
    pub(crate) ledger: PathBuf,
    pub(crate) poll_interval: Option<Duration>,
}

impl<T> FileWatchSource<T> {
    fn resolve(&self) -> crate::Result<Resolved> {
        let dir = PathBuf::from(interpolate(&self.dir)?);
        let patterns = decode::compile_patterns(&self.patterns)?;
        let archive = match &self.move_after_process {
            Some(a) => Some(PathBuf::from(interpolate(a)?)),
            None => None,
        };
        let ledger = match &self.ledger {
            Some(l) => PathBuf::from(interpolate(l)?),
            None => dir.join(DEFAULT_LEDGER_NAME),
        };
        Ok(Resolved {
            dir,
            patterns,
            recursive: self.recursive,
            process_existing: self.process_existing,
            archive,
            format: self.format,
            settle: self.settle,
            ledger,
            poll_interval: self.poll_interval,
        })
    }
}

impl<T: Record> Source for FileWatchSource<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("file_watch {}", crate::config::display(&self.dir))
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        let options = self.resolve()?;
        stream::open::<T>(options, self.batching, self.drain_after, ctx).await
    }

    /// What `open` checks, without its effects (the ledger is not created, no baseline is
    /// recorded): the directory exists and is one, the ledger (if any) reads.
    async fn check(self, _ctx: SourceContext) -> crate::Result<()> {
        let options = self.resolve()?;
        let name = format!("file_watch source {}", options.dir.display());
        tokio::task::spawn_blocking(move || stream::check(&options))
            .await
            .map_err(|e| crate::error::Error::Source(crate::error::ConnectorError::permanent(name, e)))?
    }

    /// JSON and JSON Lines: a dead letter holds the record's JSON text. CSV files: `None` is
    /// not known ahead (the format is per file), so JSON is assumed; a CSV row's dead letter
    /// does not decode and stays in the queue (replay it with a `dead_letters(..)` pipeline).
    fn dead_letter_decoder(&self) -> Option<super::DeadLetterDecoder<T>> {
        match self.format {
            WatchFormat::Csv => None,
            _ => Some(super::json_decoder::<T>()),
        }
    }
}
