//! The file I/O of the file sink: blocking functions that the sink runs inline or on the
//! blocking pool ([`Offload`](crate::blocking::Offload)). Each returns the path it failed on.

use super::encode::{in_progress, is_temporary_of, parse_in_progress, temporary};
use super::partition::DirTemplate;
use crate::durable::sync_dir;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A failed file operation and the path it touched.
pub(super) type IoFailure = (PathBuf, std::io::Error);

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> IoFailure + '_ {
    move |e| (path.to_path_buf(), e)
}

fn sync_dir_at(dir: &Path) -> Result<(), IoFailure> {
    sync_dir(dir).map_err(at(dir))
}

/// A batch written to its temporary file and not yet committed (per-batch rolling).
#[derive(Debug)]
pub(super) struct Written {
    /// Its directory (its partition).
    pub dir: PathBuf,
    /// The final name, without directory.
    pub name: String,
    /// The temporary file, kept open for the commit's fsync.
    pub file: File,
}

/// Per-batch rolling, first phase: the batch's bytes in `.{name}.tmp`, not synced. On failure
/// nothing is left behind; a retry starts over under the same name.
pub(super) fn write_temporary(dir: &Path, name: &str, bytes: &[u8]) -> Result<Written, IoFailure> {
    let tmp = temporary(dir, name);
    let written = File::create(&tmp).and_then(|mut file| file.write_all(bytes).map(|()| file));
    match written {
        Ok(file) => Ok(Written { dir: dir.to_path_buf(), name: name.to_owned(), file }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err((tmp, e))
        }
    }
}

/// Per-batch rolling, second phase: sync every file of the group, rename each to its final
/// name, then sync each directory once: one directory sync per group (and partition) instead
/// of one per file. A final name therefore always holds a complete, durable batch.
pub(super) fn commit_group(group: &[Written], sync: bool) -> Result<(), IoFailure> {
    if sync {
        for written in group {
            written.file.sync_all().map_err(|e| (temporary(&written.dir, &written.name), e))?;
        }
    }
    for written in group {
        let target = written.dir.join(&written.name);
        std::fs::rename(temporary(&written.dir, &written.name), &target).map_err(at(&target))?;
    }
    if sync {
        let mut synced: Vec<&Path> = Vec::new();
        for written in group {
            if !synced.contains(&written.dir.as_path()) {
                sync_renames(&written.dir);
                synced.push(&written.dir);
            }
        }
    }
    Ok(())
}

/// Sync the directory after renames of synced files. A failure here is logged, not returned:
/// the files' data is durable and in place, only their names could be lost to a power cut;
/// reporting it would make the pipeline write the batches again under new names (duplicates).
fn sync_renames(dir: &Path) {
    if let Err(e) = sync_dir(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "directory sync after a commit failed; the files are written and synced, their names may not survive a power loss");
    }
}

/// After a failed commit, or a run that ends with batches written and not committed: remove
/// the group's files (`(directory, name)`), under their temporary or final names (the batches
/// are written again, under the same names, or redelivered).
pub(super) fn discard_group(files: &[(PathBuf, String)]) {
    for (dir, name) in files {
        for path in [temporary(dir, name), dir.join(name)] {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::debug!(file = %path.display(), "removed a file of an uncommitted batch"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "could not remove a file of an uncommitted batch"),
            }
        }
    }
}

/// An in-progress file of Size rolling.
///
/// Its hidden name `.{name}.{named}.inprogress` carries the length of its durable prefix;
/// bytes after `committed` were written and not committed yet.
#[derive(Debug)]
pub(super) struct InProgress {
    pub file: File,
    /// Its directory (its partition).
    pub dir: PathBuf,
    /// Final name, without directory.
    pub name: String,
    /// Bytes durably written (committed).
    pub committed: u64,
    /// The length the file's hidden name carries (may exceed `committed` after a failure
    /// between the rename and the directory fsync).
    pub named: u64,
    /// Bytes written, committed or not.
    pub written: u64,
    /// A write or a commit failed: bytes after `written` may be garbage; cut them off first.
    pub dirty: bool,
    /// The file is at its size limit: the next commit gives it its final name.
    pub full: bool,
    /// CSV columns of the file (its header row).
    pub columns: Vec<String>,
}

impl InProgress {
    /// Start a new in-progress file (empty, hidden as committed length 0).
    pub(super) fn create(dir: &Path, name: String, columns: Vec<String>) -> Result<InProgress, IoFailure> {
        let hidden = in_progress(dir, &name, 0);
        let file = OpenOptions::new().write(true).create(true).truncate(true).open(&hidden).map_err(at(&hidden))?;
        Ok(InProgress { file, dir: dir.to_path_buf(), name, committed: 0, named: 0, written: 0, dirty: false, full: false, columns })
    }

    /// Whether bytes were written since the last commit.
    pub(super) fn uncommitted(&self) -> bool {
        self.written > self.committed
    }

    /// Append a batch after what was written (first phase: not synced).
    pub(super) fn append(&mut self, bytes: &[u8]) -> Result<(), IoFailure> {
        let result = (|| {
            if self.dirty {
                self.file.set_len(self.written)?;
            }
            self.file.seek(SeekFrom::Start(self.written))?;
            self.file.write_all(bytes)
        })();
        if let Err(e) = result {
            self.dirty = true;
            return Err((in_progress(&self.dir, &self.name, self.named), e));
        }
        self.dirty = false;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Second phase: sync what was appended and rename the file to carry the new durable
    /// length, or to its final name when it is full; then sync the directory. On failure the
    /// uncommitted bytes are given up (the pipeline writes those batches again, which cuts
    /// them off first).
    pub(super) fn commit(&mut self, sync: bool) -> Result<(), IoFailure> {
        let dir = self.dir.as_path();
        let old = in_progress(dir, &self.name, self.named);
        let new = if self.full { dir.join(&self.name) } else { in_progress(dir, &self.name, self.written) };
        let result = (|| {
            if sync {
                self.file.sync_data().map_err(at(&old))?;
            }
            std::fs::rename(&old, &new).map_err(at(&new))
        })();
        if let Err(e) = result {
            self.written = self.committed;
            self.dirty = true;
            return Err(e);
        }
        self.named = self.written;
        self.committed = self.written;
        if sync {
            sync_renames(dir);
        }
        Ok(())
    }

    /// Give a committed file its final name (when the next batch would not fit, and at the end
    /// of the run). Bytes written and not committed are cut off first.
    pub(super) fn finalise(&self, sync: bool) -> Result<(), Finalise> {
        let dir = self.dir.as_path();
        let hidden = in_progress(dir, &self.name, self.named);
        if self.dirty || self.uncommitted() {
            self.file
                .set_len(self.committed)
                .and_then(|()| if sync { self.file.sync_all() } else { Ok(()) })
                .map_err(|e| Finalise::BeforeRename(hidden.clone(), e))?;
        }
        let target = dir.join(&self.name);
        std::fs::rename(&hidden, &target).map_err(|e| Finalise::BeforeRename(target.clone(), e))?;
        if sync {
            sync_dir(dir).map_err(|e| Finalise::AfterRename(dir.to_path_buf(), e))?;
        }
        Ok(())
    }
}

/// How finalising failed: before the rename (the file is still in progress) or after it (the
/// file has its final name; only the directory sync failed).
pub(super) enum Finalise {
    BeforeRename(PathBuf, std::io::Error),
    AfterRename(PathBuf, std::io::Error),
}

impl Finalise {
    pub(super) fn into_parts(self) -> IoFailure {
        match self {
            Finalise::BeforeRename(p, e) | Finalise::AfterRename(p, e) => (p, e),
        }
    }
}

/// Remove `path`; already gone is fine.
fn remove_if_there(path: &Path) -> Result<(), IoFailure> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err((path.to_path_buf(), e)),
        _ => Ok(()),
    }
}

/// Finalise the in-progress files of `prefix` a crash left in `dir` (truncated to their
/// committed length) and delete its temporary files.
pub(super) fn recover(dir: &Path, prefix: &str, sync: bool) -> Result<(), IoFailure> {
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
                remove_if_there(&path)?;
                continue;
            }
            let file = match OpenOptions::new().write(true).open(&path) {
                Ok(file) => file,
                // Gone meanwhile: a predecessor that had not quite stopped finished with it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err((path, e)),
            };
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
        } else if is_temporary_of(file_name, prefix) {
            changed = true;
            tracing::info!(file = %path.display(), "removing a temporary file left by an earlier run");
            remove_if_there(&path)?;
        }
    }
    if changed && sync {
        sync_dir_at(dir)?;
    }
    Ok(())
}

/// Create the partition `dir` (and its missing parents); with `sync`, make each new directory
/// entry durable (its parent synced) so that a committed file's directory survives a crash.
pub(super) fn create_partition(dir: &Path, sync: bool) -> Result<(), IoFailure> {
    let mut missing = Vec::new();
    let mut next = Some(dir);
    while let Some(d) = next.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d);
        next = d.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    if sync {
        for created in missing.iter().rev() {
            if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir_at(parent)?;
            }
        }
    }
    Ok(())
}

/// The existing partitions of `template` (directories below its root matching each of its
/// components), for the recovery at open. A root that does not exist has none.
pub(super) fn partitions(template: &DirTemplate) -> Result<Vec<PathBuf>, IoFailure> {
    let mut level = vec![template.root().to_path_buf()];
    for depth in 0..template.depth() {
        let mut next = Vec::new();
        for dir in &level {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err((dir.clone(), e)),
            };
            for entry in entries {
                let entry = entry.map_err(at(dir))?;
                let name = entry.file_name();
                let is_dir = entry.file_type().map_err(at(dir))?.is_dir();
                if is_dir && name.to_str().is_some_and(|n| template.matches(depth, n)) {
                    next.push(entry.path());
                }
            }
        }
        level = next;
    }
    level.sort();
    Ok(level)
}
