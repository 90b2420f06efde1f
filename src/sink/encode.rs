//! Encoding a batch of records as JSONL or CSV bytes. (Skeleton: body being written.)

use crate::format::Format;
use crate::record::Record;

/// A batch encoded as bytes, with the records that could not be encoded.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The encoded bytes (with a header row for CSV when asked).
    pub bytes: Vec<u8>,
    /// `(index, reason)` of records that could not be encoded; they left no partial row.
    pub rejected: Vec<(usize, String)>,
    /// How many records were encoded.
    pub count: usize,
}

impl Encoded {
    /// Encode `records` in `format`; CSV gets a header row when `header` is true.
    pub fn new<T: Record>(_records: &[T], _format: Format, _header: bool) -> Encoded {
        todo!("encode")
    }
}
