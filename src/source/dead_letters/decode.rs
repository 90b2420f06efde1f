//! Pure helpers of the `dead_letters` source: an entry → a record with its metadata, or a
//! decode failure with its bytes. No I/O.

use crate::batch::{Failure, FailureKind, Incoming};
use crate::dead_letter::DeadLetter;
use crate::record::{Extra, Meta, Record};

/// One entry as the batcher takes it: the record decoded from its payload (JSON), or the
/// failure to dead-letter again, with the entry's id as the acknowledgement token.
pub(super) fn decode<T: Record>(entry: DeadLetter) -> Incoming<T, String> {
    let size = entry.payload.len();
    let extra = Extra { headers: entry.headers, original_source: Some(entry.source), ..Extra::default() };
    let meta = Meta::at(entry.position).with_raw(entry.payload.clone()).with_extra(extra);
    match serde_json::from_slice::<T>(&entry.payload) {
        Ok(record) => Incoming::record(record, meta, size, entry.id),
        Err(e) => {
            let source = meta.extra.as_ref().and_then(|x| x.original_source.as_deref()).unwrap_or_default();
            let error = format!("dead letter {} (from {source}, {}): {e}", entry.id, meta.position);
            let mut failure = Failure::new(entry.payload, FailureKind::Decode, error, meta);
            // Tried once more than when it was dead-lettered.
            failure.attempts = entry.attempts.saturating_add(1);
            Incoming::failed(failure, entry.id)
        }
    }
}
