//! The connector contract (tests/common/contract.rs) for the `file_watch` source.
//!
//! Each `put` writes one JSON Lines file into the watched directory (a hidden temporary renamed
//! into place, as a careful writer does). The source's store is the file system itself: a
//! payload is acknowledged once its file was moved to the archive directory, and ready while
//! its file is still in the watched one (`custody` lists both directories).

mod common;

use bytes::Bytes;
use common::contract::{Batching, Custody, Mode, SourceHarness};
use etl::record::{Extra, Position};
use etl::Json;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

struct WatchHarness {
    _dir: tempfile::TempDir,
    inbox: PathBuf,
    archive: PathBuf,
    /// Per file put: its name, how many payloads, its size and modification time.
    files: Vec<(String, usize, u64, SystemTime)>,
    /// Per payload: (file index, line).
    index: Vec<(usize, u64)>,
}

impl WatchHarness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        let archive = dir.path().join("archive");
        std::fs::create_dir_all(&inbox).unwrap();
        WatchHarness { _dir: dir, inbox, archive, files: Vec::new(), index: Vec::new() }
    }
}

impl SourceHarness for WatchHarness {
    type Source = etl::source::FileWatchSource<Json>;

    fn name(&self) -> String {
        "file_watch".into()
    }

    fn source(&mut self, mode: Mode, batching: Batching) -> Self::Source {
        let source = etl::source::file_watch::<Json>(self.inbox.to_str().unwrap())
            .move_after_process(self.archive.to_str().unwrap())
            .settle(Duration::from_millis(50));
        let source = match mode {
            Mode::Live => source,
            Mode::Drain => {
                let drain = CancellationToken::new();
                drain.cancel();
                source.drain_after(drain)
            }
        };
        batching.apply(source)
    }

    async fn put(&mut self, payloads: &[Bytes]) {
        let name = format!("part-{}.jsonl", self.files.len());
        let mut bytes = Vec::new();
        for (line, p) in payloads.iter().enumerate() {
            bytes.extend_from_slice(p);
            bytes.push(b'\n');
            self.index.push((self.files.len(), line as u64 + 1));
        }
        let tmp = self.inbox.join(format!(".{name}.tmp"));
        let mut f = std::fs::File::create(&tmp).unwrap();
        f.write_all(&bytes).unwrap();
        f.sync_all().unwrap();
        drop(f);
        let path = self.inbox.join(&name);
        std::fs::rename(&tmp, &path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        self.files.push((name, payloads.len(), meta.len(), meta.modified().unwrap()));
    }

    async fn custody(&self) -> Option<Custody> {
        let (mut acknowledged, mut ready) = (0, 0);
        for (name, n, _, _) in &self.files {
            let archived = self.archive.join(name).exists();
            let waiting = self.inbox.join(name).exists();
            assert!(!(archived && waiting), "{name} both in the inbox and in the archive");
            if archived {
                acknowledged += n;
            }
            if waiting {
                ready += n;
            }
        }
        Some(Custody { acknowledged, ready })
    }

    fn position(&self, index: usize) -> Position {
        Position::Line(self.index[index].1)
    }

    fn check_extra(&self, index: usize, extra: Option<&Extra>) -> Result<(), String> {
        let extra = extra.ok_or("no extras")?;
        let file = extra.file.as_ref().ok_or("no file metadata")?;
        let (name, _, size, modified) = &self.files[self.index[index].0];
        if file.path != self.inbox.join(name) {
            return Err(format!("path {:?}, expected {:?}", file.path, self.inbox.join(name)));
        }
        if file.size != *size || file.modified != *modified {
            return Err(format!("size and mtime {} {:?}, expected {size} {modified:?}", file.size, file.modified));
        }
        if extra.key.is_some() || !extra.headers.is_empty() || extra.event_type.is_some() || extra.original_source.is_some() {
            return Err("nothing but the file".into());
        }
        Ok(())
    }

    fn binary_safe(&self) -> bool {
        true
    }
}

common::contract::source_contract!(WatchHarness::new());
