//! `dead-letters replay`: a run's dead letters as the source of its own pipeline. The entries
//! present when it starts that the pipeline's source can decode ([`Source::dead_letter_decoder`])
//! go through the operators and the sink; each one is removed from the queue once its batch
//! is acknowledged (written, or dead-lettered again as a new entry). Entries that do not decode
//! stay where they are.

use crate::ack::{settle_at_end, Ack, Outstanding};
use crate::batch::Batch;
use crate::dead_letter::{DeadLetter, DeadLetters, Republish};
use crate::error::{ConnectorError, Error};
use crate::record::{Extra, Meta};
use crate::source::{BatchStream, DeadLetterDecoder, Source, SourceContext};
use std::collections::HashSet;
use std::sync::Arc;

/// Records a replay batch holds at most.
const REPLAY_BATCH: usize = 500;

/// A dead-letter queue read as records of the pipeline's source type.
pub(super) struct Replay<T> {
    pub(super) queue: Arc<dyn DeadLetters>,
    pub(super) decode: DeadLetterDecoder<T>,
}

impl<T: Send + 'static> Source for Replay<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("replay of {}", self.queue.describe())
    }

    async fn open(self, _ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        let entries = self.queue.list().await.map_err(Error::DeadLetters)?;
        let total = entries.len();
        let mut decoded: Vec<(DeadLetter, T)> = Vec::with_capacity(total);
        for entry in entries {
            match (self.decode)(&entry.payload) {
                Ok(record) => decoded.push((entry, record)),
                Err(why) => tracing::debug!(id = %entry.id, error = %why, "dead letter does not decode as the source's records; it stays"),
            }
        }
        let kept = total - decoded.len();
        if kept > 0 {
            tracing::warn!(
                kept,
                queue = %self.queue.describe(),
                "dead letters that do not decode as this pipeline's source records stay in the queue (they failed after a step that changed them; replay them with a pipeline that starts at `dead_letters(path = ..)`)"
            );
        }
        tracing::info!(replaying = decoded.len(), of = total, queue = %self.queue.describe(), "replaying dead letters");
        let outstanding = Outstanding::new();
        let runtime = tokio::runtime::Handle::current();
        let mut batches = Vec::new();
        let mut decoded = decoded.into_iter().peekable();
        while decoded.peek().is_some() {
            let chunk: Vec<(DeadLetter, T)> = decoded.by_ref().take(REPLAY_BATCH).collect();
            let ids: HashSet<String> = chunk.iter().map(|(e, _)| e.id.clone()).collect();
            let (meta, records): (Vec<Meta>, Vec<T>) = chunk
                .into_iter()
                .map(|(e, r)| {
                    // A record that fails again keeps the source that failed it first.
                    let extra = Extra { headers: e.headers, original_source: Some(e.source), ..Extra::default() };
                    (Meta::at(e.position).with_raw(e.payload).with_extra(extra), r)
                })
                .unzip();
            let (queue, owed, runtime) = (Arc::clone(&self.queue), outstanding.clone(), runtime.clone());
            let token = outstanding.token();
            let ack = Ack::new(move |status| {
                if status.is_done() {
                    owed.spawn_on(&runtime, remove(queue, ids));
                }
                drop(token);
            });
            batches.push(Ok(Batch::new(records, meta, Vec::new(), ack, Arc::from("dead-letter replay"))));
        }
        Ok(Box::pin(settle_at_end(futures::stream::iter(batches), outstanding, ())))
    }
}

/// Remove the entries `ids` (replayed and acknowledged) from `queue`.
async fn remove(queue: Arc<dyn DeadLetters>, ids: HashSet<String>) {
    match queue.replay(&|e: &DeadLetter| ids.contains(&e.id), &mut Removed).await {
        Ok(n) => tracing::debug!(removed = n, "replayed dead letters removed"),
        Err(e) => tracing::warn!(error = %e, "replayed dead letters could not be removed; a later replay sends them again"),
    }
}

/// The replay's target: the entries were already re-published through the pipeline.
struct Removed;

impl Republish for Removed {
    async fn republish(&mut self, _entry: &DeadLetter) -> Result<(), ConnectorError> {
        Ok(())
    }
}
