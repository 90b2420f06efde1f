//! Pure helpers of the SQS sink: records as JSON message bodies, and bodies grouped into
//! requests. No I/O.

use serde::Serialize;
use std::ops::Range;

/// Strings by record index: message bodies, or reasons for a rejection.
pub(super) type ByIndex = Vec<(usize, String)>;

/// `records` as `(index, JSON body)`, and the records that cannot be sent: not encodable, or
/// larger than `max_bytes`.
pub(super) fn bodies<T: Serialize>(records: &[T], max_bytes: usize) -> (ByIndex, ByIndex) {
    let mut rejected = Vec::new();
    let mut bodies = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        match serde_json::to_string(record) {
            Ok(body) if body.len() > max_bytes => {
                rejected.push((i, format!("message of {} bytes exceeds the queue's maximum message size of {max_bytes} bytes", body.len())))
            }
            Ok(body) => bodies.push((i, body)),
            Err(e) => rejected.push((i, format!("cannot encode as JSON: {e}"))),
        }
    }
    (bodies, rejected)
}

/// Split entries of the given body sizes, in order, into requests of at most `max_entries`
/// entries whose sizes add up to at most `max_bytes` (an entry larger than `max_bytes` alone
/// goes in a request of its own).
pub(super) fn chunks(sizes: &[usize], max_entries: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let count = i - start;
        if count > 0 && (count >= max_entries || bytes + size > max_bytes) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}
