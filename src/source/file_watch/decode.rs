//! Pure helpers of the file-watch source: the format of a file, which names are taken, when a
//! file is complete, archive names, the head hash, and counting a batch's records per file.
//! No I/O.

use crate::config::ConfigError;
use crate::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How the `file_watch` source reads the files it picks up.
///
/// ```
/// use etl::source::file_watch::WatchFormat;
/// assert_eq!("csv".parse::<WatchFormat>().unwrap(), WatchFormat::Csv);
/// assert_eq!("auto".parse::<WatchFormat>().unwrap(), WatchFormat::Auto);
/// assert!("xml".parse::<WatchFormat>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchFormat {
    /// From each file's extension: `.jsonl` and `.ndjson` are JSON Lines, `.csv` is CSV,
    /// `.json` and any other is JSON.
    Auto,
    /// JSON: a file whose first non-blank byte is `[` is an array, each element a record,
    /// streamed element by element; otherwise each top-level value is a record (one object,
    /// or several one after the other, on one line or many).
    Json,
    /// JSON Lines: one JSON value per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

impl std::str::FromStr for WatchFormat {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<WatchFormat, ConfigError> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(WatchFormat::Auto),
            "json" => Ok(WatchFormat::Json),
            "jsonl" | "ndjson" => Ok(WatchFormat::Jsonl),
            "csv" => Ok(WatchFormat::Csv),
            other => Err(ConfigError::Invalid {
                option: "format",
                message: format!("unknown format `{other}`; expected `auto`, `json`, `jsonl` or `csv`"),
            }),
        }
    }
}

impl WatchFormat {
    /// The name the DSL and the parser use.
    ///
    /// ```
    /// assert_eq!(etl::source::file_watch::WatchFormat::Jsonl.name(), "jsonl");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            WatchFormat::Auto => "auto",
            WatchFormat::Json => "json",
            WatchFormat::Jsonl => "jsonl",
            WatchFormat::Csv => "csv",
        }
    }
}

/// How one file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileFormat {
    Json,
    Jsonl,
    Csv,
}

impl WatchFormat {
    /// The format of the file at `path`.
    pub(super) fn of(self, path: &Path) -> FileFormat {
        match self {
            WatchFormat::Json => FileFormat::Json,
            WatchFormat::Jsonl => FileFormat::Jsonl,
            WatchFormat::Csv => FileFormat::Csv,
            WatchFormat::Auto => match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
                Some("jsonl" | "ndjson") => FileFormat::Jsonl,
                Some("csv") => FileFormat::Csv,
                _ => FileFormat::Json,
            },
        }
    }
}

/// The patterns, compiled; a bad one is a start-up error naming it.
pub(super) fn compile_patterns(patterns: &[String]) -> crate::Result<Vec<glob::Pattern>> {
    if patterns.is_empty() {
        return Err(Error::Config(ConfigError::Invalid {
            option: "patterns",
            message: "no pattern: no file would ever be read; give at least one, such as `[\"*.json\"]`".into(),
        }));
    }
    patterns
        .iter()
        .map(|p| {
            glob::Pattern::new(p)
                .map_err(|e| Error::Config(ConfigError::Invalid { option: "patterns", message: format!("bad glob pattern `{p}`: {e}") }))
        })
        .collect()
}

/// Whether a file called `name` is taken: not hidden, and matching a pattern.
pub(super) fn wanted(name: &str, patterns: &[glob::Pattern]) -> bool {
    !name.starts_with('.') && patterns.iter().any(|p| p.matches(name))
}

/// A file's size and modification time, as two looks compare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Look {
    pub(super) size: u64,
    pub(super) modified: SystemTime,
}

/// Whether a file is complete: the same at two looks (`before`, then `now_look`), and last
/// modified at least `settle` before `now`. A modification time in the future (clock skew)
/// waits until it is `settle` in the past.
pub(super) fn settled(before: Option<Look>, now_look: Look, now: SystemTime, settle: Duration) -> bool {
    before == Some(now_look) && now.duration_since(now_look.modified).is_ok_and(|age| age >= settle)
}

/// Nanoseconds since the Unix epoch (negative before it), as the ledger stores times.
pub(super) fn nanos(time: SystemTime) -> i128 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// The `n`th name tried in the archive for `path` (`n` = 0: the path itself; then
/// `stem.n.ext`: `a/orders.json` → `a/orders.1.json`, `notes` → `notes.1`).
pub(super) fn archive_candidate(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_owned();
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{n}"),
    };
    path.with_file_name(name)
}

/// The ledger's hash of a file's head (its first [`HEAD_BYTES`](super::HEAD_BYTES) bytes), in
/// hex: xxh3, stable across versions and platforms.
pub(super) fn head_hash(head: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(head))
}

/// A batch's tokens (the file id of each record, in order) counted per file, in order of
/// first appearance: records of one file are contiguous in a batch, so this is short.
pub(super) fn count_per_file(tokens: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &id in tokens {
        match out.last_mut() {
            Some((last, n)) if *last == id => *n += 1,
            _ => match out.iter_mut().find(|(f, _)| *f == id) {
                Some((_, n)) => *n += 1,
                None => out.push((id, 1)),
            },
        }
    }
    out
}
