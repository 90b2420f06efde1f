//! Pure: which records of a batch an exactly-once sink may write. No I/O.
//!
//! A batch can hold records fetched before a seek back or a rebalance (the batch being filled
//! when a batch of the same partition failed): at-least-once delivery lets them through (they
//! come again, and never count for a commit), but a sink that stores positions must write only
//! what the batch's ranges cover, and each offset once. Every offset of a range was read again
//! after the seek, in this batch, after its stale copy: keeping the **last** copy of each
//! offset, and only offsets inside a range, leaves exactly the records the ranges say.

use crate::positions::Positions;
use crate::record::{Meta, Position};
use std::collections::HashSet;

/// One verdict per meta (in order): true for the last record of each offset inside a range of
/// `positions`. Metadata without a Kafka position (none in a Kafka batch) is kept.
pub(crate) fn read_once<'a>(positions: &Positions, metas: impl DoubleEndedIterator<Item = &'a Meta> + ExactSizeIterator) -> Vec<bool> {
    let mut keep = vec![false; metas.len()];
    let mut seen: HashSet<(&str, i32, i64)> = HashSet::new();
    for (i, meta) in metas.enumerate().rev() {
        let Position::Offset { partition, offset } = meta.position else {
            keep[i] = true;
            continue;
        };
        let topic = meta.extra.as_ref().and_then(|e| e.event_type.as_deref()).unwrap_or_default();
        keep[i] = positions.contains(topic, partition, offset) && seen.insert((topic, partition, offset));
    }
    keep
}
