//! Durable file operations shared by the connectors that keep files: replace a file atomically
//! (the SSE resume file, the dead-letter file's rewrites) and make renames durable (the file
//! sink's commits). A leaf: it depends on nothing of the crate.
//!
//! The steps are the classic ones (write a temporary file beside the target, fsync it, rename
//! it over the target, fsync the directory): no crate does exactly this with the directory
//! fsync that makes the rename survive a power loss (`tempfile::NamedTempFile::persist` does
//! not sync the directory), so it is written here once.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Make the entries of `dir` (files created, renamed or deleted in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened as files on every platform; the rename itself is atomic.
        let _ = dir;
        Ok(())
    }
}

/// The temporary name `write_atomically` uses for `path`: `{name}.tmp` beside it.
pub(crate) fn temporary_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replace `path` with `bytes`, atomically and durably: write `{name}.tmp` beside it, fsync
/// it, rename it over `path`, fsync the directory. A reader (or a restart after a crash) sees
/// the old content or the new one, never a mix. On failure the temporary file is removed and
/// `path` is untouched (unless only the directory fsync failed: then the new content is in
/// place but its durability is not guaranteed).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temporary_beside(path);
    let written = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(parent_dir(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last-id");
        write_atomically(&path, b"41").unwrap();
        write_atomically(&path, b"42").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"42");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["last-id"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_content_and_removes_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("target");
        write_atomically(&path, b"old").unwrap();
        // A directory in the way of the rename.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join("inner")).unwrap();
        assert!(write_atomically(&blocked, b"new").is_err());
        assert!(!temporary_beside(&blocked).exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn the_parent_of_a_bare_name_is_the_current_directory() {
        assert_eq!(parent_dir(Path::new("x")), Path::new("."));
        assert_eq!(parent_dir(Path::new("a/x")), Path::new("a"));
        assert_eq!(temporary_beside(Path::new("a/x")), Path::new("a/x.tmp"));
    }
}
