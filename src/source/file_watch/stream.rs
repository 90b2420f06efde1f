//! The I/O of the file-watch source: the watcher and the scanner (which files, when complete),
//! the reader thread (each file decoded in bounded chunks), and the finisher (the ledger and
//! the archive once a file's records were all acknowledged).

use super::decode::{archive_candidate, count_per_file, head_hash, nanos, settled, wanted, FileFormat, Look};
use super::json::{JsonSplitter, Piece};
use super::ledger::{Entry, Ledger, LedgerError};
use super::{Resolved, HEAD_BYTES};
use crate::ack::{settle_at_end, Ack, Outstanding, OutstandingToken, Status};
use crate::batch::{batched, BatchConfig, Failure, FailureKind, Incoming};
use crate::durable::sync_dir;
use crate::error::{ConnectorError, Error};
use crate::record::{Extra, FileInfo, Meta, Position, Record};
use crate::source::file::{read_chunk, read_csv, read_jsonl_in_chunks, Item, CHUNK_BYTES};
use crate::source::{BatchStream, SourceContext};
use futures::StreamExt;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Decoded records of the watched files, with the id of their file as the token.
type Watched<T> = crate::Result<Incoming<T, u64>>;

/// How often the directory is listed again even without an event (a safety net for lost
/// events), at least.
const RESCAN_EVERY: Duration = Duration::from_secs(5);

fn component(dir: &Path) -> String {
    format!("file_watch source {}", dir.display())
}

/// A file being read, or whose records are in flight.
#[derive(Debug)]
struct FileState {
    rel: String,
    entry: Entry,
    /// Records and failures handed to the batcher.
    emitted: u64,
    /// Of those, resolved (their batch's final status known).
    resolved: u64,
    /// The reader has handed out its last record.
    ended: bool,
    /// A batch holding its records errored, or reading it stopped half-way: it is read again.
    failed: bool,
}

/// What the scanner, the reader, the acknowledgements and the finisher share.
#[derive(Debug, Default)]
struct Files {
    next_id: u64,
    by_id: HashMap<u64, FileState>,
    /// Relative paths read, in flight, or being finished: not to be picked up again.
    busy: HashSet<String>,
    /// Files known to be recorded in the ledger as they are now (no need to hash them again).
    done: HashMap<String, Look>,
}

/// A file whose records were all acknowledged (or that only needs its archive move).
struct Finished {
    rel: String,
    entry: Entry,
    /// Record it in the ledger (false: it is there already; only move it).
    record: bool,
    _owed: OutstandingToken,
}

struct Shared {
    options: Resolved,
    files: Mutex<Files>,
    ledger: Mutex<Ledger>,
    finish: mpsc::UnboundedSender<Finished>,
    outstanding: Outstanding,
}

impl Shared {
    fn files(&self) -> MutexGuard<'_, Files> {
        // The tables hold no invariant a panic half-way could break.
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn abs(&self, rel: &str) -> PathBuf {
        self.options.dir.join(rel)
    }

    /// A batch's final status: `counts` records of each file resolved.
    fn resolve(&self, counts: &[(u64, u64)], status: Status) {
        let mut files = self.files();
        for &(id, n) in counts {
            if let Some(state) = files.by_id.get_mut(&id) {
                state.resolved += n;
                if !status.is_done() {
                    state.failed = true;
                }
            }
            self.complete_if_done(&mut files, id);
        }
    }

    /// If every record of file `id` was resolved, hand it to the finisher (or, when it
    /// failed, free it to be read again).
    fn complete_if_done(&self, files: &mut Files, id: u64) {
        let done = files.by_id.get(&id).is_some_and(|s| s.ended && s.resolved >= s.emitted);
        if !done {
            return;
        }
        let Some(state) = files.by_id.remove(&id) else { return };
        if state.failed {
            tracing::warn!(file = %self.abs(&state.rel).display(), "a batch of this file failed or reading it stopped: it will be read again whole (at-least-once)");
            files.busy.remove(&state.rel);
            return;
        }
        let finished = Finished { rel: state.rel, entry: state.entry, record: true, _owed: self.outstanding.token() };
        if let Err(mpsc::error::SendError(f)) = self.finish.send(finished) {
            // The finisher is gone (the run is over): the file is read again by the next run.
            files.busy.remove(&f.rel);
        }
    }
}

fn look_of(meta: &std::fs::Metadata) -> Look {
    Look { size: meta.len(), modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH) }
}

/// Read the head of `file` and hash it, leaving the file at its start.
fn hash_head(file: &mut std::fs::File) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(HEAD_BYTES);
    file.by_ref().take(HEAD_BYTES as u64).read_to_end(&mut head)?;
    file.rewind()?;
    Ok(head_hash(&head))
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    hash_head(&mut std::fs::File::open(path)?)
}

fn entry_of(look: Look, head: String) -> Entry {
    Entry { size: look.size, modified_ns: nanos(look.modified), head, seen_only: false }
}

/// Every wanted file under the watched directory: (relative path, absolute path, look).
fn list(options: &Resolved) -> Vec<(String, PathBuf, Look)> {
    let mut out = Vec::new();
    let mut dirs = vec![options.dir.clone()];
    let archive = options.archive.as_ref().and_then(|a| std::fs::canonicalize(a).ok());
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "cannot list a watched directory");
                continue;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                if options.recursive && !name.starts_with('.') && archive.as_ref() != std::fs::canonicalize(&path).ok().as_ref() {
                    dirs.push(path);
                }
                continue;
            }
            if !wanted(&name, &options.patterns) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if !meta.is_file() || path == options.ledger {
                continue;
            }
            let rel = path.strip_prefix(&options.dir).unwrap_or(&path).to_string_lossy().into_owned();
            out.push((rel, path, look_of(&meta)));
        }
    }
    out
}

/// Open the source: check the directory, open the ledger, start the watcher, the scanner,
/// the reader and the finisher.
pub(super) async fn open<T: Record>(
    options: Resolved,
    batching: BatchConfig,
    drain_after: Option<CancellationToken>,
    ctx: SourceContext,
) -> crate::Result<BatchStream<T>> {
    let name = component(&options.dir);
    let setup = {
        let options = options.clone();
        tokio::task::spawn_blocking(move || prepare(&options))
    };
    let ledger = setup.await.map_err(|e| Error::Source(ConnectorError::permanent(name.clone(), e)))??;
    let (finish_tx, finish_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        options: options.clone(),
        files: Mutex::new(Files::default()),
        ledger: Mutex::new(ledger),
        finish: finish_tx,
        outstanding: Outstanding::new(),
    });
    // Stops the scanner and the reader on shutdown, and when the stream is dropped (a failed
    // run) or ended.
    let stop = ctx.shutdown.child_token();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let watcher = start_watcher(&options, events_tx).map_err(|e| Error::Source(ConnectorError::permanent(name.clone(), e)))?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Ready>();
    let (items_tx, items_rx) = mpsc::channel::<Vec<Watched<T>>>(2);
    let queued = Arc::new(AtomicUsize::new(0));
    // Cancelled when the stream is gone (after its end waited for every file owed): the
    // finisher then syncs the ledger and ends (the shared state holds its sender).
    let ended = CancellationToken::new();
    tokio::spawn(finisher(Arc::clone(&shared), finish_rx, ended.clone()));
    let scanner = Scanner {
        shared: Arc::clone(&shared),
        events: events_rx,
        ready: ready_tx,
        queued: Arc::clone(&queued),
        pending: HashMap::new(),
        renamed: HashSet::new(),
        shutdown: stop.clone(),
        drain: drain_after,
        _watcher: watcher,
    };
    tokio::spawn(scanner.run());
    {
        let (shared, shutdown) = (Arc::clone(&shared), stop.clone());
        tokio::task::spawn_blocking(move || reader::<T>(shared, ready_rx, items_tx, queued, shutdown));
    }
    let recorded = shared.ledger().len();
    tracing::info!(dir = %options.dir.display(), ledger = %options.ledger.display(), recorded, archive = ?options.archive, "watching a directory");
    let input = futures::stream::unfold(items_rx, |mut rx| async move { rx.recv().await.map(|chunk| (futures::stream::iter(chunk), rx)) })
        .flatten();
    let origin: Arc<str> = Arc::from(format!("file_watch {}", options.dir.display()));
    let acks = Arc::clone(&shared);
    let batches = batched(input, batching, ctx.shutdown, origin, move |tokens: Vec<u64>| {
        let counts = count_per_file(&tokens);
        let shared = Arc::clone(&acks);
        // Owed until its files are handed to the finisher (which owes them in turn): the
        // stream's end waits for the archive moves of every batch emitted.
        let owed = shared.outstanding.token();
        Ack::new(move |status| {
            shared.resolve(&counts, status);
            drop(owed);
        })
    });
    let owed = shared.outstanding.clone();
    Ok(Box::pin(settle_at_end(batches, owed, (shared, stop.drop_guard(), ended.drop_guard()))))
}

/// What `check` verifies without side effects: the directory is one, the ledger (if any) reads.
pub(super) fn check(options: &Resolved) -> crate::Result<()> {
    let name = component(&options.dir);
    let meta = std::fs::metadata(&options.dir).map_err(|e| Error::Source(ConnectorError::permanent(name.clone(), e)))?;
    if !meta.is_dir() {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory");
        return Err(Error::Source(ConnectorError::permanent(name, e)));
    }
    match std::fs::read(&options.ledger) {
        Ok(bytes) => {
            super::ledger::parse(&bytes, &options.ledger).map(|_| ()).map_err(|e| Error::Source(ConnectorError::permanent(name, e)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Source(ConnectorError::permanent(name, e))),
    }
}

/// Start-up on a blocking thread: the checks, the archive directory, the ledger, and the
/// baseline of a first start with `process_existing = false`.
fn prepare(options: &Resolved) -> crate::Result<Ledger> {
    check(options)?;
    let name = component(&options.dir);
    if let Some(archive) = &options.archive {
        std::fs::create_dir_all(archive).map_err(|e| Error::Source(ConnectorError::permanent(name.clone(), e)))?;
    }
    let (mut ledger, existed) = Ledger::open(&options.ledger).map_err(|e| Error::Source(ConnectorError::permanent(name.clone(), e)))?;
    // Entries of files that are gone (archived just before a crash cut the removal off, or
    // deleted): a file that comes back under that name is a new one.
    let gone: Vec<String> = ledger.paths().into_iter().filter(|rel| !options.dir.join(rel).exists()).collect();
    if !gone.is_empty() {
        tracing::debug!(files = gone.len(), "ledger entries of files no longer in the directory removed");
        ledger.remove(&gone).map_err(|e| Error::Source(ConnectorError::permanent(name.clone(), e)))?;
    }
    if !existed && !options.process_existing {
        let mut seen = Vec::new();
        for (rel, path, look) in list(options) {
            match hash_file(&path) {
                Ok(head) => seen.push((rel, Entry { seen_only: true, ..entry_of(look, head) })),
                Err(error) => tracing::warn!(file = %path.display(), %error, "cannot read a file present at the first start"),
            }
        }
        tracing::info!(files = seen.len(), "first start with process_existing = false: the files present are recorded as seen, not read");
        ledger.record(seen).map_err(|e| Error::Source(ConnectorError::permanent(name, e)))?;
    }
    Ok(ledger)
}

/// The operating system's watcher, or the polling one where it is not available or asked for.
/// Its events name the files created or changed (removals are of no interest); an error or an
/// overflow asks for the directory to be listed again.
fn start_watcher(options: &Resolved, events: mpsc::UnboundedSender<Event>) -> Result<Box<dyn notify::Watcher + Send>, notify::Error> {
    use notify::Watcher;
    let mode = if options.recursive { notify::RecursiveMode::Recursive } else { notify::RecursiveMode::NonRecursive };
    let handler = move |result: notify::Result<notify::Event>| {
        use notify::event::{ModifyKind, RenameMode};
        let event = match result {
            Ok(e) if e.need_rescan() => Event::Rescan,
            Ok(e) => match e.kind {
                notify::EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => {
                    Event::Paths { paths: e.paths.last().cloned().into_iter().collect(), renamed: true }
                }
                notify::EventKind::Modify(ModifyKind::Name(RenameMode::From))
                | notify::EventKind::Remove(_)
                | notify::EventKind::Access(_) => return,
                _ => Event::Paths { paths: e.paths, renamed: false },
            },
            Err(error) => {
                tracing::warn!(%error, "file watcher error; the directory will be listed again");
                Event::Rescan
            }
        };
        // The scanner is gone when the run is over.
        let _ = events.send(event);
    };
    if options.poll_interval.is_none() {
        match notify::RecommendedWatcher::new(handler.clone(), notify::Config::default()) {
            Ok(mut watcher) => match watcher.watch(&options.dir, mode) {
                Ok(()) => return Ok(Box::new(watcher)),
                Err(error) => tracing::warn!(%error, "the operating system's file events are not available; polling instead"),
            },
            Err(error) => tracing::warn!(%error, "the operating system's file events are not available; polling instead"),
        }
    }
    let interval = options.poll_interval.unwrap_or(super::DEFAULT_POLL_INTERVAL);
    let mut watcher = notify::PollWatcher::new(handler, notify::Config::default().with_poll_interval(interval))?;
    watcher.watch(&options.dir, mode)?;
    Ok(Box::new(watcher))
}

/// What the watcher tells the scanner.
#[derive(Debug)]
enum Event {
    /// Files created or changed; `renamed`: renamed into place (complete at once).
    Paths { paths: Vec<PathBuf>, renamed: bool },
    /// List the whole directory again.
    Rescan,
}

/// A file to read.
#[derive(Debug)]
struct Ready {
    rel: String,
    look: Look,
}

/// A file waiting to be complete.
#[derive(Debug)]
struct Pending {
    look: Look,
}

struct Scanner {
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<Event>,
    ready: std::sync::mpsc::Sender<Ready>,
    /// Files sent to the reader and not finished reading.
    queued: Arc<AtomicUsize>,
    pending: HashMap<String, Pending>,
    /// Relative paths renamed into place since their last look.
    renamed: HashSet<String>,
    shutdown: CancellationToken,
    drain: Option<CancellationToken>,
    /// Keeps the watch alive (dropping it stops the watch).
    _watcher: Box<dyn notify::Watcher + Send>,
}

impl Scanner {
    async fn run(mut self) {
        let settle = self.shared.options.settle;
        let tick = (settle / 5).clamp(Duration::from_millis(5), Duration::from_millis(200));
        let mut timer = tokio::time::interval(tick);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A full listing at the start, after a watcher error or overflow, every `RESCAN_EVERY`
        // (a safety net), and once when draining starts; otherwise only the paths events name.
        let mut rescan = true;
        let mut touched: HashSet<PathBuf> = HashSet::new();
        let mut last_scan = Instant::now();
        let mut scanned_after_drain = false;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                event = self.events.recv() => match event {
                    Some(e) => rescan |= self.note(e, &mut touched),
                    None => break,
                },
                _ = timer.tick() => {}
            }
            while let Ok(e) = self.events.try_recv() {
                rescan |= self.note(e, &mut touched);
            }
            let draining = self.drain.as_ref().is_some_and(CancellationToken::is_cancelled);
            let full = rescan || last_scan.elapsed() >= RESCAN_EVERY || (draining && !scanned_after_drain);
            if full || !touched.is_empty() {
                let shared = Arc::clone(&self.shared);
                let paths = std::mem::take(&mut touched);
                let found = tokio::task::spawn_blocking(move || if full { discover(&shared) } else { discover_paths(&shared, paths) })
                    .await
                    .unwrap_or_default();
                for (rel, look, archive_only) in found {
                    if archive_only {
                        self.archive_only(rel, look);
                    } else {
                        self.pending.entry(rel).or_insert(Pending { look });
                    }
                }
                if full {
                    rescan = false;
                    last_scan = Instant::now();
                    scanned_after_drain = draining;
                }
            }
            if !self.pending.is_empty() && !self.check_pending().await {
                break; // the reader is gone
            }
            if draining && scanned_after_drain && self.pending.is_empty() && self.queued.load(Ordering::Acquire) == 0 {
                tracing::debug!("drained: nothing waiting or being read");
                break;
            }
        }
        // Dropping `ready` ends the reader once it finished its file.
    }

    /// Note an event's paths; true when it asks for a full listing.
    fn note(&mut self, event: Event, touched: &mut HashSet<PathBuf>) -> bool {
        match event {
            Event::Rescan => true,
            Event::Paths { paths, renamed } => {
                for path in paths {
                    if renamed {
                        if let Ok(rel) = path.strip_prefix(&self.shared.options.dir) {
                            self.renamed.insert(rel.to_string_lossy().into_owned());
                        }
                    }
                    touched.insert(path);
                }
                false
            }
        }
    }

    /// A file the ledger lists (read before a crash) that is still here: only move it.
    fn archive_only(&mut self, rel: String, look: Look) {
        let entry = match self.shared.ledger().get(&rel) {
            Some(e) => e.clone(),
            None => return,
        };
        let _ = look;
        self.shared.files().busy.insert(rel.clone());
        let finished = Finished { rel, entry, record: false, _owed: self.shared.outstanding.token() };
        if let Err(mpsc::error::SendError(f)) = self.shared.finish.send(finished) {
            self.shared.files().busy.remove(&f.rel);
        }
    }

    /// Look at the waiting files again; send the complete ones to the reader, oldest first.
    /// False when the reader is gone.
    async fn check_pending(&mut self) -> bool {
        let settle = self.shared.options.settle;
        let dir = self.shared.options.dir.clone();
        let rels: Vec<(String, Look)> = self.pending.iter().map(|(r, p)| (r.clone(), p.look)).collect();
        let looks = tokio::task::spawn_blocking(move || {
            rels.into_iter()
                .map(|(rel, before)| (std::fs::metadata(dir.join(&rel)).ok().map(|m| look_of(&m)), rel, before))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let now = SystemTime::now();
        let mut ready = Vec::new();
        for (look, rel, before) in looks {
            let Some(look) = look else {
                self.pending.remove(&rel); // gone
                self.renamed.remove(&rel);
                continue;
            };
            let renamed = self.renamed.remove(&rel);
            if renamed || settled(Some(before), look, now, settle) {
                self.pending.remove(&rel);
                ready.push(Ready { rel, look });
            } else if let Some(p) = self.pending.get_mut(&rel) {
                p.look = look;
            }
        }
        ready.sort_by(|a, b| a.look.modified.cmp(&b.look.modified).then_with(|| a.rel.cmp(&b.rel)));
        for file in ready {
            self.shared.files().busy.insert(file.rel.clone());
            self.queued.fetch_add(1, Ordering::AcqRel);
            if self.ready.send(file).is_err() {
                return false;
            }
        }
        true
    }
}

/// List the directory: the files to wait for (not busy, not done as they are), and those the
/// ledger lists as read that are still here and must only be archived (`true`).
fn discover(shared: &Shared) -> Vec<(String, Look, bool)> {
    let listed = list(&shared.options);
    let mut out = Vec::new();
    let mut present = BTreeSet::new();
    for (rel, path, look) in listed {
        present.insert(rel.clone());
        out.extend(consider(shared, rel, &path, look));
    }
    shared.files().done.retain(|rel, _| present.contains(rel));
    out
}

/// The files among `paths` (named by the watcher's events) that are wanted, as [`discover`]
/// says of a listing.
fn discover_paths(shared: &Shared, paths: HashSet<PathBuf>) -> Vec<(String, Look, bool)> {
    let options = &shared.options;
    let mut out = Vec::new();
    for path in paths {
        let Ok(rel) = path.strip_prefix(&options.dir) else { continue };
        let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>();
        let Some(name) = parts.pop() else { continue };
        if (!options.recursive && !parts.is_empty())
            || parts.iter().any(|p| p.starts_with('.'))
            || !wanted(&name, &options.patterns)
            || path == options.ledger
            || options.archive.as_ref().is_some_and(|a| path.starts_with(a))
        {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.is_file() {
            out.extend(consider(shared, rel.to_string_lossy().into_owned(), &path, look_of(&meta)));
        }
    }
    out
}

/// One wanted file: nothing when it is busy or recorded as it is; `(rel, look, true)` when the
/// ledger lists it as read and it must only be archived; `(rel, look, false)` to wait for.
fn consider(shared: &Shared, rel: String, path: &Path, look: Look) -> Option<(String, Look, bool)> {
    {
        let files = shared.files();
        if files.busy.contains(&rel) || files.done.get(&rel) == Some(&look) {
            return None;
        }
    }
    let entry = shared.ledger().get(&rel).cloned();
    let recorded = match entry {
        Some(e) if e.size == look.size && e.modified_ns == nanos(look.modified) => match hash_file(path) {
            Ok(head) if head == e.head => Some(e),
            _ => None,
        },
        _ => None,
    };
    match recorded {
        Some(e) if shared.options.archive.is_some() && !e.seen_only => Some((rel, look, true)),
        Some(_) => {
            shared.files().done.insert(rel, look);
            None
        }
        None => Some((rel, look, false)),
    }
}

/// The reader thread: each complete file in turn, decoded in chunks handed to the batcher.
fn reader<T: Record>(
    shared: Arc<Shared>,
    ready: std::sync::mpsc::Receiver<Ready>,
    items: mpsc::Sender<Vec<Watched<T>>>,
    queued: Arc<AtomicUsize>,
    shutdown: CancellationToken,
) {
    while let Ok(file) = ready.recv() {
        let open = !shutdown.is_cancelled() && read_file::<T>(&shared, file, &items, &shutdown);
        queued.fetch_sub(1, Ordering::AcqRel);
        if !open {
            break;
        }
    }
    // Files sent and never read are read by the next run.
    drop(items);
    let mut files = shared.files();
    while let Ok(file) = ready.try_recv() {
        files.busy.remove(&file.rel);
    }
}

/// How one pass over a file ended.
enum Pass {
    /// Read to its end.
    Done,
    /// Stopped at the first record that does not decode (item number, 1-based), to see whether
    /// the file is still being written.
    Suspect(u64),
    /// The stream is gone or the run is stopping.
    Closed,
}

/// Read one file; false when the stream is gone.
fn read_file<T: Record>(shared: &Shared, file: Ready, items: &mpsc::Sender<Vec<Watched<T>>>, shutdown: &CancellationToken) -> bool {
    let path = shared.abs(&file.rel);
    let format = shared.options.format.of(&path);
    let mut look = file.look;
    let (id, head) = {
        let head = match hash_file(&path) {
            Ok(h) => h,
            Err(error) => {
                // Gone or unreadable: listed again later (if it is still there).
                tracing::warn!(file = %path.display(), %error, "cannot open a complete file; it will be tried again");
                shared.files().busy.remove(&file.rel);
                return true;
            }
        };
        let mut files = shared.files();
        let id = files.next_id;
        files.next_id += 1;
        let state =
            FileState { rel: file.rel.clone(), entry: entry_of(look, head.clone()), emitted: 0, resolved: 0, ended: false, failed: false };
        files.by_id.insert(id, state);
        (id, head)
    };
    let _ = head;
    tracing::debug!(file = %path.display(), size = look.size, ?format, "reading a complete file");
    let mut skip = 0u64;
    let mut stable = false;
    let mut open = true;
    loop {
        let info = Arc::new(FileInfo { path: path.clone(), size: look.size, modified: look.modified });
        match pass::<T>(shared, id, &path, format, &info, skip, stable, items, shutdown) {
            Pass::Done => break,
            Pass::Closed => {
                open = !items.is_closed();
                let mut files = shared.files();
                if let Some(s) = files.by_id.get_mut(&id) {
                    s.failed = true;
                }
                break;
            }
            Pass::Suspect(n) => {
                // Is it still being written? Wait `settle` and look again.
                skip = n - 1;
                if !pause(shared.options.settle, shutdown) {
                    let mut files = shared.files();
                    if let Some(s) = files.by_id.get_mut(&id) {
                        s.failed = true;
                    }
                    break;
                }
                match std::fs::metadata(&path) {
                    Ok(meta) if look_of(&meta) != look => {
                        tracing::info!(file = %path.display(), record = n, "a record does not decode and the file changed meanwhile: reading on from it");
                        look = look_of(&meta);
                        let head = hash_file(&path).unwrap_or_default();
                        if let Some(s) = shared.files().by_id.get_mut(&id) {
                            s.entry = entry_of(look, head);
                        }
                    }
                    _ => {
                        tracing::debug!(file = %path.display(), record = n, "a record does not decode and the file is unchanged: dead-lettering its bad records");
                        stable = true;
                    }
                }
            }
        }
    }
    let mut files = shared.files();
    if let Some(s) = files.by_id.get_mut(&id) {
        s.ended = true;
    }
    shared.complete_if_done(&mut files, id);
    open
}

/// Sleep `settle` in short steps; false when the run is stopping.
fn pause(settle: Duration, shutdown: &CancellationToken) -> bool {
    let until = Instant::now() + settle;
    while Instant::now() < until {
        if shutdown.is_cancelled() {
            return false;
        }
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
    }
    !shutdown.is_cancelled()
}

/// One pass over a file: its items after the first `skip`, each with the file's metadata,
/// handed out in chunks; stops at the first failure unless the file is known `stable`.
#[allow(clippy::too_many_arguments)]
fn pass<T: Record>(
    shared: &Shared,
    id: u64,
    path: &Path,
    format: FileFormat,
    info: &Arc<FileInfo>,
    skip: u64,
    stable: bool,
    items: &mpsc::Sender<Vec<Watched<T>>>,
    shutdown: &CancellationToken,
) -> Pass {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(error) => {
            let error = Error::Source(ConnectorError::retryable(component(&shared.options.dir), error));
            let _ = items.blocking_send(vec![Err(error)]);
            return Pass::Closed;
        }
    };
    // A small file is read in one chunk of its size: the records of many small files in flight
    // then hold small buffers (their raw bytes are slices of them), not 256 KiB each.
    let chunk = usize::try_from(info.size).map_or(CHUNK_BYTES, |size| (size + 1).clamp(4096, CHUNK_BYTES));
    let shown = path.display().to_string();
    let mut seen = 0u64;
    let mut outcome = Pass::Done;
    let mut send = |chunk: Vec<Item<T>>| -> bool {
        // One `Extra` per chunk rather than one for the whole file: the reader thread clones it
        // for each record while the pipeline's thread drops those of earlier chunks, and a
        // count shared by both threads would bounce between their caches at every record.
        let extra = Arc::new(Extra { file: Some(Arc::new(FileInfo::clone(info))), ..Extra::default() });
        let mut out: Vec<Watched<T>> = Vec::with_capacity(chunk.len());
        for item in chunk {
            seen += 1;
            if seen <= skip {
                continue;
            }
            match item {
                Err(e) => out.push(Err(e)),
                Ok(Incoming { item: Ok((record, mut meta)), size, .. }) => {
                    meta.extra = Some(Arc::clone(&extra));
                    out.push(Ok(Incoming::record(record, meta, size, id)));
                }
                Ok(Incoming { item: Err(mut failure), .. }) => {
                    if !stable {
                        outcome = Pass::Suspect(seen);
                        break;
                    }
                    failure.error = format!("{shown}: {}", failure.error);
                    failure.meta.extra = Some(Arc::clone(&extra));
                    out.push(Ok(Incoming::failed(failure, id)));
                }
            }
        }
        let stop = matches!(outcome, Pass::Suspect(_));
        if !out.is_empty() {
            if let Some(s) = shared.files().by_id.get_mut(&id) {
                s.emitted += out.len() as u64;
            }
            if items.blocking_send(out).is_err() {
                outcome = Pass::Closed;
                return false;
            }
        }
        !stop
    };
    let name = shown.as_str();
    match format {
        FileFormat::Jsonl => read_jsonl_in_chunks::<T, _>(file, chunk, name, shutdown, &mut send),
        FileFormat::Csv => read_csv::<T, _>(file, name, shutdown, &mut send),
        FileFormat::Json => read_json::<T, _>(file, chunk, name, shutdown, &mut send),
    }
    if shutdown.is_cancelled() && matches!(outcome, Pass::Done) {
        // Stopped before its end: not done.
        return Pass::Closed;
    }
    outcome
}

/// Read `input` as JSON (an array streamed element by element, or top-level values), in
/// chunks of `chunk` bytes, handing each chunk's decoded
/// elements to `send`; stops at the end, when `send` returns false, or on shutdown.
pub(super) fn read_json<T: Record, R: Read>(
    mut input: R,
    chunk: usize,
    path: &str,
    shutdown: &CancellationToken,
    mut send: impl FnMut(Vec<Item<T>>) -> bool,
) {
    let mut splitter = JsonSplitter::new();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let mut buf = std::mem::take(&mut splitter.buf);
        let read = read_chunk(&mut input, &mut buf, chunk);
        splitter.buf = buf;
        let end = match read {
            Ok(n) => n == 0,
            Err(error) => {
                tracing::error!(path, %error, "cannot read the file");
                send(vec![Err(Error::Source(ConnectorError::retryable(format!("file_watch source {path}"), error)))]);
                return;
            }
        };
        let mut decoded: Vec<Item<T>> = Vec::new();
        while let Some(piece) = splitter.next(end) {
            decoded.push(Ok(decode_piece(piece)));
        }
        if (!decoded.is_empty() && !send(decoded)) || end {
            return;
        }
    }
}

/// A JSON element decoded, or a failure with its bytes.
pub(super) fn decode_piece<T: Record>(piece: Piece) -> Incoming<T, ()> {
    match piece {
        Piece::Element { raw, line } => {
            let size = raw.len();
            match serde_json::from_slice::<T>(&raw) {
                Ok(record) => Incoming::record(record, Meta { position: Position::Line(line), raw: Some(raw), extra: None }, size, ()),
                Err(e) => {
                    let meta = Meta::at(Position::Line(line)).with_raw(raw.clone());
                    Incoming::failed(Failure::new(raw, FailureKind::Decode, format!("line {line}: {e}"), meta), ())
                }
            }
        }
        Piece::Broken { raw, line, error } => {
            let meta = Meta::at(Position::Line(line)).with_raw(raw.clone());
            Incoming::failed(Failure::new(raw, FailureKind::Decode, error, meta), ())
        }
    }
}

/// The finisher: records finished files in the ledger (one fsync per group), then moves them
/// to the archive and removes them from the ledger.
async fn finisher(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Finished>, ended: CancellationToken) {
    loop {
        let first = tokio::select! {
            biased;
            next = rx.recv() => match next {
                Some(f) => f,
                None => break,
            },
            _ = ended.cancelled() => break,
        };
        let mut group = vec![first];
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        let s = Arc::clone(&shared);
        if let Err(e) = tokio::task::spawn_blocking(move || finish(&s, group)).await {
            tracing::error!(error = %e, "the file-watch finisher panicked");
        }
    }
    let s = Arc::clone(&shared);
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(error) = s.ledger().sync() {
            tracing::warn!(%error, "cannot sync the ledger at the end");
        }
    })
    .await;
}

fn finish(shared: &Shared, group: Vec<Finished>) {
    let records: Vec<(String, Entry)> = group.iter().filter(|f| f.record).map(|f| (f.rel.clone(), f.entry.clone())).collect();
    let count = records.len();
    if let Err(error) = shared.ledger().record(records) {
        log_ledger(&error);
        // Not recorded: read again (at-least-once).
        let mut files = shared.files();
        for f in &group {
            files.busy.remove(&f.rel);
        }
        return;
    }
    tracing::debug!(files = count, "files recorded in the ledger");
    let Some(archive) = shared.options.archive.clone() else {
        let mut files = shared.files();
        for f in &group {
            let look = Look { size: f.entry.size, modified: from_nanos(f.entry.modified_ns) };
            files.done.insert(f.rel.clone(), look);
            files.busy.remove(&f.rel);
        }
        return;
    };
    let mut moved = Vec::new();
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for f in &group {
        let from = shared.abs(&f.rel);
        match move_no_clobber(&from, &archive.join(&f.rel)) {
            Ok(to) => {
                tracing::debug!(from = %from.display(), to = %to.display(), "archived");
                dirs.insert(crate::durable::parent_dir(&to).to_owned());
                dirs.insert(crate::durable::parent_dir(&from).to_owned());
                moved.push(f.rel.clone());
            }
            Err(error) => {
                // Still recorded: the next listing moves it (it is not read again).
                tracing::error!(file = %from.display(), archive = %archive.display(), %error, "cannot move a processed file to the archive; will try again");
            }
        }
    }
    for dir in &dirs {
        if let Err(error) = sync_dir(dir) {
            tracing::warn!(dir = %dir.display(), %error, "cannot sync a directory after archiving");
        }
    }
    if let Err(error) = shared.ledger().remove(&moved) {
        log_ledger(&error);
    }
    let mut files = shared.files();
    for f in &group {
        files.busy.remove(&f.rel);
    }
}

fn log_ledger(error: &LedgerError) {
    tracing::error!(%error, "the ledger could not be written; the files concerned will be read again (at-least-once)");
}

fn from_nanos(ns: i128) -> SystemTime {
    if ns >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_nanos((-ns) as u64)
    }
}

/// Move `from` to `to`, or to the first free suffixed name beside it (`a.1.json`, ...), never
/// over an existing file: a hard link (which fails when the name is taken) then the removal of
/// `from`; across file systems, a copy into a file created new, synced, then the removal.
/// Returns where it went.
pub(super) fn move_no_clobber(from: &Path, to: &Path) -> std::io::Result<PathBuf> {
    let parent = crate::durable::parent_dir(to);
    std::fs::create_dir_all(parent)?;
    for n in 0..10_000 {
        let candidate = archive_candidate(to, n);
        match std::fs::hard_link(from, &candidate) {
            Ok(()) => {
                std::fs::remove_file(from)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if same_file(from, &candidate) {
                    // Linked before a crash, not yet removed.
                    std::fs::remove_file(from)?;
                    return Ok(candidate);
                }
            }
            Err(_) => match std::fs::OpenOptions::new().write(true).create_new(true).open(&candidate) {
                Ok(mut out) => {
                    let mut input = std::fs::File::open(from)?;
                    std::io::copy(&mut input, &mut out)?;
                    out.sync_all()?;
                    std::fs::remove_file(from)?;
                    return Ok(candidate);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            },
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, format!("10000 names taken beside {}", to.display())))
}

fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}
