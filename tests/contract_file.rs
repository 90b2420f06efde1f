//! The connector contract (tests/common/contract.rs) for the file source (JSONL) and the file
//! sink.
//!
//! The file source reads a file once and keeps no checkpoint: it has no store to ask what is
//! acknowledged (`custody` is `None`), so the properties check what reached the sink. For the
//! shutdown property it reads a FIFO that stays open (a file that is still being written): the
//! source blocks on it like a live stream until the pipeline is cancelled.
//!
//! The file sink's failures are real ones of the file system: for a write, the lake directory
//! is replaced by a regular file (creating the batch's temporary file fails with ENOTDIR); for
//! a commit, a directory stands at the final name of the last file of the group (its rename
//! fails with EISDIR after the renames before it succeeded: the commit must take those back).

mod common;

use bytes::Bytes;
use common::contract::{self, Batching, Custody, Hook, Mode, Phase, Promise, SinkHarness, SourceHarness};
use common::crash::read_lake;
use etl::format::Format;
use etl::record::{Extra, Position};
use etl::Json;
use std::io::Write;
use std::path::{Path, PathBuf};

struct FileSourceHarness {
    dir: tempfile::TempDir,
    /// Drain mode: a regular file.
    path: PathBuf,
    /// Live mode: a FIFO and our end of it (read-write, so that opening never blocks and the
    /// reader sees the end of the input only when it is dropped).
    fifo: Option<(PathBuf, std::fs::File)>,
}

impl FileSourceHarness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input.jsonl");
        FileSourceHarness { dir, path, fifo: None }
    }
}

impl SourceHarness for FileSourceHarness {
    type Source = etl::source::FileSource<Json>;

    fn name(&self) -> String {
        "file".into()
    }

    fn source(&mut self, mode: Mode, batching: Batching) -> Self::Source {
        let path = match mode {
            Mode::Drain => self.path.clone(),
            Mode::Live => {
                let (path, _) = self.fifo.get_or_insert_with(|| {
                    let path = self.dir.path().join("input.fifo");
                    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
                    // SAFETY: a valid NUL-terminated path and mode.
                    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
                    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).expect("open the FIFO");
                    (path, file)
                });
                path.clone()
            }
        };
        batching.apply(etl::source::file::<Json>(path.to_str().unwrap()).format(Format::Jsonl))
    }

    async fn put(&mut self, payloads: &[Bytes]) {
        let mut bytes = Vec::new();
        for p in payloads {
            bytes.extend_from_slice(p);
            bytes.push(b'\n');
        }
        match &mut self.fifo {
            // One write (the whole input fits in the pipe's buffer): the source reads it at once.
            Some((_, fifo)) => fifo.write_all(&bytes).unwrap(),
            None => std::fs::OpenOptions::new().create(true).append(true).open(&self.path).unwrap().write_all(&bytes).unwrap(),
        }
    }

    async fn custody(&self) -> Option<Custody> {
        None
    }

    fn position(&self, index: usize) -> Position {
        Position::Line(index as u64 + 1)
    }

    fn check_extra(&self, _index: usize, extra: Option<&Extra>) -> Result<(), String> {
        match extra {
            None => Ok(()),
            Some(_) => Err("a file line has no extras".into()),
        }
    }

    fn binary_safe(&self) -> bool {
        true
    }
}

common::contract::source_contract!(FileSourceHarness::new());

// ---------------------------------------------------------------------------------------------
// The file sink

struct FileSinkHarness {
    _dir: tempfile::TempDir,
    lake: PathBuf,
}

impl FileSinkHarness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        FileSinkHarness { _dir: dir, lake }
    }
}

/// The final names of the batches written and not committed: their hidden temporaries.
fn pending(lake: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(lake)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix('.')?.strip_suffix(".tmp").map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Replace the lake directory with a regular file (writes fail), or put it back.
fn swap_lake(lake: &Path, broken: bool) {
    let away = lake.with_extension("away");
    if broken {
        std::fs::rename(lake, &away).unwrap();
        std::fs::write(lake, b"not a directory").unwrap();
    } else {
        std::fs::remove_file(lake).unwrap();
        std::fs::rename(&away, lake).unwrap();
    }
}

impl SinkHarness for FileSinkHarness {
    type Sink = etl::sink::FileSink;

    fn name(&self) -> String {
        "file".into()
    }

    fn promise(&self) -> Promise {
        Promise::OneUnitPerBatch
    }

    async fn fail(&mut self, phase: Phase, times: usize) -> Option<Hook> {
        let lake = self.lake.clone();
        let mut failures = 0;
        let mut broken = false;
        let mut obstacles: Vec<PathBuf> = Vec::new();
        Some(Box::new(move |called, ok| {
            if called != phase {
                return;
            }
            match (phase, ok) {
                (Phase::Write, None) if failures < times => {
                    swap_lake(&lake, true);
                    broken = true;
                }
                (Phase::Write, Some(ok)) => {
                    if broken {
                        swap_lake(&lake, false);
                        broken = false;
                    }
                    failures += usize::from(!ok);
                }
                (Phase::Commit, None) if failures < times => {
                    // The last file of the group cannot take its final name.
                    let last = pending(&lake).pop().expect("a commit with nothing written");
                    let obstacle = lake.join(last);
                    std::fs::create_dir_all(obstacle.join("in-the-way")).unwrap();
                    obstacles.push(obstacle);
                }
                (Phase::Commit, Some(ok)) => {
                    for obstacle in obstacles.drain(..) {
                        std::fs::remove_dir_all(obstacle).unwrap();
                    }
                    failures += usize::from(!ok);
                }
                _ => {}
            }
        }))
    }

    async fn sink(&mut self) -> Self::Sink {
        etl::sink::file(self.lake.to_str().unwrap())
    }

    async fn read_back(&mut self) -> Vec<Vec<Json>> {
        let lake = read_lake(&self.lake);
        assert!(lake.hidden.is_empty(), "no temporary file left after the run: {:?}", lake.hidden);
        lake.files.into_iter().map(|(_, records)| records).collect()
    }
}

common::contract::sink_contract!(FileSinkHarness::new());

/// The contract's own failure: a harness that loses a record fails the round trip (the suite
/// can fail).
#[tokio::test]
async fn the_contract_catches_a_sink_that_loses_a_batch() {
    struct Lossy(FileSinkHarness);
    impl SinkHarness for Lossy {
        type Sink = etl::sink::FileSink;
        fn name(&self) -> String {
            "lossy".into()
        }
        fn promise(&self) -> Promise {
            Promise::OneUnitPerBatch
        }
        async fn fail(&mut self, _: Phase, _: usize) -> Option<Hook> {
            None
        }
        async fn sink(&mut self) -> Self::Sink {
            self.0.sink().await
        }
        async fn read_back(&mut self) -> Vec<Vec<Json>> {
            let mut units = self.0.read_back().await;
            units.pop();
            units
        }
    }
    let caught = tokio::spawn(contract::sink_round_trip(Lossy(FileSinkHarness::new()))).await;
    let panic = caught.expect_err("the round trip must fail");
    let message = panic.into_panic().downcast::<String>().map(|s| *s).unwrap_or_default();
    assert!(message.contains("each batch in exactly one unit"), "{message}");
}
