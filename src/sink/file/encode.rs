//! Pure helpers of the file sink: the names of its files. (The records' bytes come from the
//! shared [`Encoded`](crate::format::Encoded).) No I/O.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Suffix of in-progress files (Size rolling), after the committed length.
pub(super) const IN_PROGRESS: &str = ".inprogress";
/// Suffix of temporary files (per-batch rolling).
pub(super) const TMP: &str = ".tmp";

/// What makes file names unique across runs and sinks: the start time (ms) and the process id,
/// plus a counter when one process opens several sinks.
pub(super) fn run_id() -> String {
    static SINKS: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
    match SINKS.fetch_add(1, Ordering::Relaxed) {
        0 => format!("{millis:013}-{}", std::process::id()),
        n => format!("{millis:013}-{}.{n}", std::process::id()),
    }
}

/// The final name of file number `seq`: `{prefix}-{run}-{seq:06}.{extension}`.
pub(super) fn file_name(prefix: &str, run: &str, seq: u64, extension: &str) -> String {
    format!("{prefix}-{run}-{seq:06}.{extension}")
}

/// The hidden temporary file a batch is written to before its commit renames it to `name`.
pub(super) fn temporary(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}{TMP}"))
}

/// The hidden name of an in-progress file whose durable prefix is `len` bytes long.
pub(super) fn in_progress(dir: &Path, name: &str, len: u64) -> PathBuf {
    dir.join(format!(".{name}.{len}{IN_PROGRESS}"))
}

/// Parse `.{final name}.{len}.inprogress`.
pub(super) fn parse_in_progress(file_name: &str) -> Option<(&str, u64)> {
    let body = file_name.strip_prefix('.')?.strip_suffix(IN_PROGRESS)?;
    let (name, len) = body.rsplit_once('.')?;
    Some((name, len.parse().ok()?))
}

/// Whether `file_name` is a temporary file of a sink writing `prefix`.
pub(super) fn is_temporary_of(file_name: &str, prefix: &str) -> bool {
    file_name.starts_with(&format!(".{prefix}-")) && file_name.ends_with(TMP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let name = file_name("part", "1-2", 7, "csv");
        assert_eq!(name, "part-1-2-000007.csv");
        let hidden = in_progress(Path::new("d"), &name, 1234);
        assert_eq!(hidden, Path::new("d/.part-1-2-000007.csv.1234.inprogress"));
        let hidden = hidden.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_in_progress(hidden), Some(("part-1-2-000007.csv", 1234)));
        assert!(is_temporary_of(temporary(Path::new("d"), &name).file_name().unwrap().to_str().unwrap(), "part"));
        assert!(!is_temporary_of(".other-1.csv.tmp", "part"));
    }

    #[test]
    fn parses_only_in_progress_names() {
        assert_eq!(parse_in_progress("part-1.csv"), None);
        assert_eq!(parse_in_progress(".part-1.csv.x.inprogress"), None);
    }

    #[test]
    fn run_ids_differ_between_sinks() {
        assert_ne!(run_id(), run_id());
    }
}
