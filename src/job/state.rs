//! A job's checkpoint in a [`CheckpointStore`]: a head entry under the run id, and the state in
//! it or, when the store has a value limit it would pass, in chunk entries the head names.
//!
//! The head is a JSON line then the state's bytes (inline) or nothing (chunked):
//! `{"etl_job_checkpoint":1,"stage":"transform","index":1,"stages":[..],"len":N,"chunks":null}`.
//! Chunks are written first under `{run_id}.chunk.{generation}.{n}` (a new random generation
//! per checkpoint, written only if absent), then the head by compare-and-set; the previous
//! checkpoint's chunks are deleted after. A crash in between leaves unreferenced chunks, never
//! a head naming missing ones.

use crate::checkpoint::{CheckpointError, CheckpointStore, Revision};

/// The head's format version.
///
/// ```
/// assert_eq!(etl::job::FORMAT, 1);
/// ```
pub const FORMAT: u32 = 1;

/// What chunk keys have between the run id and the generation: `{run_id}.chunk.{generation}.{n}`.
///
/// ```
/// assert_eq!(etl::job::CHUNK_MARKER, ".chunk.");
/// ```
pub const CHUNK_MARKER: &str = ".chunk.";

/// Room kept for the head's JSON line when state goes inline under a value limit.
const HEAD_ROOM: usize = 4096;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Head {
    etl_job_checkpoint: u32,
    /// The stage whose output the state is.
    pub(super) stage: String,
    index: usize,
    stages: Vec<String>,
    len: usize,
    chunks: Option<Chunks>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Chunks {
    generation: String,
    count: usize,
}

/// Where the run's checkpoint is: the head's revision and its chunks.
#[derive(Debug, Default)]
pub(super) struct Position {
    revision: Option<Revision>,
    chunks: Option<Chunks>,
}

impl Position {
    /// Whether a checkpoint was written (or read) for the run.
    pub(super) fn is_stored(&self) -> bool {
        self.revision.is_some()
    }
}

/// A checkpoint read back.
pub(super) struct Found {
    pub(super) head: Head,
    pub(super) state: Vec<u8>,
    pub(super) position: Position,
}

fn chunk_key(run_id: &str, generation: &str, n: usize) -> String {
    format!("{run_id}{CHUNK_MARKER}{generation}.{n}")
}

fn corrupt(store: &dyn CheckpointStore, key: &str, reason: String) -> CheckpointError {
    CheckpointError::Corrupt { store: store.describe(), key: key.to_owned(), path: None, reason }
}

/// The run's checkpoint, if any. Every failure to read it is an error.
pub(super) async fn load(store: &dyn CheckpointStore, run_id: &str) -> Result<Option<Found>, CheckpointError> {
    let Some(entry) = store.get(run_id).await? else { return Ok(None) };
    let newline = entry.value.iter().position(|b| *b == b'\n').ok_or_else(|| corrupt(store, run_id, "no header line".into()))?;
    let head: Head =
        serde_json::from_slice(&entry.value[..newline]).map_err(|e| corrupt(store, run_id, format!("not a job checkpoint ({e})")))?;
    if head.etl_job_checkpoint != FORMAT {
        return Err(corrupt(store, run_id, format!("job checkpoint format {} is not {FORMAT}", head.etl_job_checkpoint)));
    }
    let mut state = match &head.chunks {
        None => entry.value[newline + 1..].to_vec(),
        Some(chunks) => {
            let mut state = Vec::with_capacity(head.len);
            for n in 0..chunks.count {
                let key = chunk_key(run_id, &chunks.generation, n);
                let chunk = store.get(&key).await?.ok_or_else(|| corrupt(store, run_id, format!("its chunk `{key}` is missing")))?;
                state.extend_from_slice(&chunk.value);
            }
            state
        }
    };
    if state.len() != head.len {
        return Err(corrupt(store, run_id, format!("{} bytes of state where its head says {}", state.len(), head.len)));
    }
    state.shrink_to_fit();
    let position = Position { revision: Some(entry.revision), chunks: head.chunks.clone() };
    Ok(Some(Found { head, state, position }))
}

/// Write the checkpoint after stage `index` over the one at `at`; returns where it now is.
pub(super) async fn save(
    store: &dyn CheckpointStore,
    run_id: &str,
    stages: &[&str],
    index: usize,
    state: &[u8],
    at: Position,
) -> Result<Position, CheckpointError> {
    let limit = store.max_value_bytes();
    let chunked = limit.is_some_and(|limit| state.len() + HEAD_ROOM > limit);
    let mut head = Head {
        etl_job_checkpoint: FORMAT,
        stage: stages[index].to_owned(),
        index,
        stages: stages.iter().map(|s| s.to_string()).collect(),
        len: state.len(),
        chunks: None,
    };
    if let (true, Some(limit)) = (chunked, limit) {
        let size = limit.max(1);
        let generation = format!("{:016x}", fastrand::u64(..));
        let mut count = 0;
        for (n, chunk) in state.chunks(size).enumerate() {
            store.put(&chunk_key(run_id, &generation, n), chunk.to_vec(), None).await?;
            count += 1;
        }
        head.chunks = Some(Chunks { generation, count });
    }
    let mut value = serde_json::to_vec(&head).map_err(|e| corrupt(store, run_id, format!("its head cannot be written: {e}")))?;
    value.push(b'\n');
    if !chunked {
        value.extend_from_slice(state);
    }
    let revision = store.put(run_id, value, at.revision).await?;
    delete_chunks(store, run_id, at.chunks.as_ref()).await;
    Ok(Position { revision: Some(revision), chunks: head.chunks })
}

/// Delete the checkpoint at `at` (the job succeeded).
pub(super) async fn clear(store: &dyn CheckpointStore, run_id: &str, at: Position) -> Result<(), CheckpointError> {
    if at.revision.is_none() {
        return Ok(());
    }
    store.delete(run_id, at.revision).await?;
    delete_chunks(store, run_id, at.chunks.as_ref()).await;
    Ok(())
}

/// Delete chunks no head names any more; a failure leaves them (unreferenced) and is logged.
async fn delete_chunks(store: &dyn CheckpointStore, run_id: &str, chunks: Option<&Chunks>) {
    let Some(chunks) = chunks else { return };
    for n in 0..chunks.count {
        let key = chunk_key(run_id, &chunks.generation, n);
        if let Err(e) = store.delete(&key, None).await {
            tracing::warn!(run_id, key, error = %e, "could not delete an old checkpoint chunk; it is unreferenced and can be removed by hand");
        }
    }
}
