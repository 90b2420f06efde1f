//! The ledger of processed files: which files of the watched directory were read and
//! acknowledged (or seen at a first start with `process_existing = false`), so that a restart
//! neither reads them again nor skips the others.
//!
//! On disk it is a JSON Lines log: one line per file recorded (relative path, size,
//! modification time in nanoseconds, hash of the head) and one per file removed (archived).
//! Records are appended and fsynced before anything depends on them (the archive move);
//! removals are appended without a sync (a lost removal leaves an entry for a file that is no
//! longer there, which the next start drops: it prunes the entries of files that are gone). At start-up the log is read and rewritten
//! compacted with `write_atomically`, and again whenever it grows to twice its live entries.
//! A torn last line (a crash in the middle of an append that was never synced) is ignored.

use crate::durable::{parent_dir, sync_dir, write_atomically};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the ledger says about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) size: u64,
    pub(super) modified_ns: i128,
    pub(super) head: String,
    /// Seen at a first start with `process_existing = false`, not read.
    pub(super) seen_only: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    removed: bool,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    modified_ns: i128,
    #[serde(default)]
    head: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    seen_only: bool,
}

impl Line {
    fn record(path: &str, e: &Entry) -> Line {
        Line {
            path: path.to_owned(),
            removed: false,
            size: e.size,
            modified_ns: e.modified_ns,
            head: e.head.clone(),
            seen_only: e.seen_only,
        }
    }

    fn removal(path: &str) -> Line {
        Line { path: path.to_owned(), removed: true, size: 0, modified_ns: 0, head: String::new(), seen_only: false }
    }
}

/// A ledger error: what failed on which file.
#[derive(Debug, thiserror::Error)]
pub(super) enum LedgerError {
    #[error("cannot read or write the ledger {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the ledger {path} is corrupt at line {line}: {message} (move it away to read every file again)")]
    Corrupt { path: PathBuf, line: usize, message: String },
}

/// Parse a ledger's bytes: the live entries and how many lines were read. A torn last line
/// (no newline, not JSON) is ignored; any other bad line is an error.
pub(super) fn parse(bytes: &[u8], path: &Path) -> Result<(HashMap<String, Entry>, usize), LedgerError> {
    let mut entries = HashMap::new();
    let mut count = 0;
    let ends_whole = bytes.last() == Some(&b'\n');
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    for (i, line) in lines.iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let last = i + 1 == lines.len();
        let parsed: Line = match serde_json::from_slice(line) {
            Ok(l) => l,
            Err(_) if last && !ends_whole => {
                tracing::warn!(ledger = %path.display(), "ignoring a torn last line of the ledger (a crash during an append)");
                break;
            }
            Err(e) => return Err(LedgerError::Corrupt { path: path.to_owned(), line: i + 1, message: e.to_string() }),
        };
        count += 1;
        if parsed.removed {
            entries.remove(&parsed.path);
        } else {
            let entry = Entry { size: parsed.size, modified_ns: parsed.modified_ns, head: parsed.head, seen_only: parsed.seen_only };
            entries.insert(parsed.path, entry);
        }
    }
    Ok((entries, count))
}

/// Encode records and removals as ledger lines.
fn encode(lines: &[Line]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.len() * 96);
    for line in lines {
        // A struct of strings and integers always serialises.
        if serde_json::to_writer(&mut out, line).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// The ledger file, open for appends, and its live entries.
#[derive(Debug)]
pub(super) struct Ledger {
    path: PathBuf,
    file: File,
    entries: HashMap<String, Entry>,
    /// Lines in the file.
    lines: usize,
}

impl Ledger {
    /// Open (or create) the ledger at `path`, compacting it; also says whether it existed.
    pub(super) fn open(path: &Path) -> Result<(Ledger, bool), LedgerError> {
        let io = |source| LedgerError::Io { path: path.to_owned(), source };
        let (entries, existed) = match std::fs::read(path) {
            Ok(bytes) => (parse(&bytes, path)?.0, true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (HashMap::new(), false),
            Err(e) => return Err(io(e)),
        };
        std::fs::create_dir_all(parent_dir(path)).map_err(io)?;
        let mut ledger = Ledger { file: File::open(parent_dir(path)).map_err(io)?, path: path.to_owned(), entries, lines: 0 };
        ledger.compact()?;
        Ok((ledger, existed))
    }

    /// Rewrite the file with the live entries only, atomically, and reopen it for appends.
    fn compact(&mut self) -> Result<(), LedgerError> {
        let io = |source| LedgerError::Io { path: self.path.clone(), source };
        let mut lines: Vec<Line> = self.entries.iter().map(|(p, e)| Line::record(p, e)).collect();
        lines.sort_by(|a, b| a.path.cmp(&b.path));
        write_atomically(&self.path, &encode(&lines)).map_err(io)?;
        self.file = OpenOptions::new().append(true).open(&self.path).map_err(io)?;
        self.lines = lines.len();
        Ok(())
    }

    /// The entry of the file at `path` (relative to the watched directory).
    pub(super) fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// The relative paths the ledger lists.
    pub(super) fn paths(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// How many files the ledger lists.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Record files, durably (appended and fsynced) before returning.
    pub(super) fn record(&mut self, files: Vec<(String, Entry)>) -> Result<(), LedgerError> {
        if files.is_empty() {
            return Ok(());
        }
        let lines: Vec<Line> = files.iter().map(|(p, e)| Line::record(p, e)).collect();
        self.append(&lines, true)?;
        self.entries.extend(files);
        Ok(())
    }

    /// Remove files (archived), without a sync.
    pub(super) fn remove(&mut self, paths: &[String]) -> Result<(), LedgerError> {
        let lines: Vec<Line> = paths.iter().filter(|p| self.entries.contains_key(*p)).map(|p| Line::removal(p)).collect();
        if lines.is_empty() {
            return Ok(());
        }
        self.append(&lines, false)?;
        for p in paths {
            self.entries.remove(p);
        }
        if self.lines > 2 * self.entries.len() + 1024 {
            self.compact()?;
        }
        Ok(())
    }

    fn append(&mut self, lines: &[Line], sync: bool) -> Result<(), LedgerError> {
        let io = |source| LedgerError::Io { path: self.path.clone(), source };
        self.file.write_all(&encode(lines)).map_err(io)?;
        if sync {
            self.file.sync_data().map_err(io)?;
        }
        self.lines += lines.len();
        Ok(())
    }

    /// Make the file's removals durable too (at the end of a run).
    pub(super) fn sync(&mut self) -> Result<(), LedgerError> {
        let io = |source| LedgerError::Io { path: self.path.clone(), source };
        self.file.sync_data().map_err(io)?;
        sync_dir(parent_dir(&self.path)).map_err(io)
    }
}
