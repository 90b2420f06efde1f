//! Pure helpers of the SSE source: the leading-BOM filter (used by the [`frame`](super::frame)
//! parser), HTTP status classification and the decoding of one event into an [`Incoming`] item.

use super::frame::Event;
use super::DataFormat;
use crate::batch::{Failure, FailureKind, Incoming};
use crate::record::{Extra, Meta, Position, Record};
use bytes::Bytes;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Removes a UTF-8 byte order mark from the start of a byte stream, fed chunk by chunk (the
/// BOM may be split across chunks).
#[derive(Debug, Default)]
pub(crate) struct BomStripper {
    /// Bytes held back because they may be the start of a BOM.
    held: Vec<u8>,
    /// The start of the stream has been decided.
    done: bool,
}

impl BomStripper {
    /// The bytes of `chunk` to pass on (possibly empty while the start is undecided).
    pub(crate) fn push(&mut self, chunk: Bytes) -> Bytes {
        if self.done {
            return chunk;
        }
        if self.held.is_empty() && chunk.len() >= BOM.len() {
            self.done = true;
            return if chunk.starts_with(BOM) { chunk.slice(BOM.len()..) } else { chunk };
        }
        self.held.extend_from_slice(&chunk);
        if self.held.len() < BOM.len() && BOM.starts_with(&self.held) {
            return Bytes::new();
        }
        self.done = true;
        let held = std::mem::take(&mut self.held);
        let start = if held.starts_with(BOM) { BOM.len() } else { 0 };
        Bytes::copy_from_slice(&held[start..])
    }

    /// The stream ended: what was held back (a prefix of a BOM is not a BOM). The parser
    /// drops it instead (an unfinished line); the tests use it to check the stripping.
    #[cfg(test)]
    pub(crate) fn finish(&mut self) -> Bytes {
        self.done = true;
        Bytes::from(std::mem::take(&mut self.held))
    }
}

/// What an HTTP status means for an SSE connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusClass {
    /// 2xx other than 204: read the event stream.
    Stream,
    /// 204 No Content: the server asks the client to stop reconnecting (the SSE spec).
    Stop,
    /// 5xx, 408, 429: try again later.
    Retry,
    /// Any other status (4xx, an unfollowed 3xx): retrying cannot help.
    Fatal,
}

/// Classify an HTTP status code.
pub(crate) fn classify(status: u16) -> StatusClass {
    match status {
        204 => StatusClass::Stop,
        200..=299 => StatusClass::Stream,
        408 | 429 | 500..=599 => StatusClass::Retry,
        _ => StatusClass::Fatal,
    }
}

/// True when `event` passes `filter` (no filter: every event).
pub(crate) fn wanted(event: &Event, filter: Option<&str>) -> bool {
    filter.is_none_or(|f| event.event_type == f)
}

/// Decode one event into an item for the batcher: the record with its metadata (position = the
/// event id, raw = the data bytes, extra.event_type = the event type), or a
/// [`FailureKind::Decode`] failure carrying the exact data bytes: data over `max_event_bytes`
/// (then only its first `max_event_bytes` bytes), data that is not UTF-8, data that does not
/// decode into `T`.
pub(crate) fn decode<T: Record, K>(event: Event, format: DataFormat, max_event_bytes: usize, token: K) -> Incoming<T, K> {
    let position = if event.id.is_empty() { Position::None } else { Position::Id(event.id) };
    let extra = Extra { event_type: Some(event.event_type), ..Extra::default() };
    let raw = event.data;
    let size = raw.len();
    let meta = Meta::at(position).with_raw(raw.clone()).with_extra(extra);
    // Only error messages name the event: not formatted for the events that decode.
    let what = || match &meta.position {
        Position::Id(id) => format!("SSE event id {id}"),
        _ => "SSE event".to_owned(),
    };
    let decoded = match (event.too_large, std::str::from_utf8(&raw)) {
        (Some(t), _) => Err(match t.field {
            "data" => format!(
                "{}: its data is {} bytes, over max_event_bytes ({max_event_bytes}); the dead letter keeps the first {} bytes",
                what(),
                t.bytes,
                raw.len()
            ),
            field => format!("{}: its `{field}` field is {} bytes, over max_event_bytes ({max_event_bytes})", what(), t.bytes),
        }),
        (None, Err(e)) => Err(format!("{}: the data is not valid UTF-8 ({e}); the dead letter keeps the exact bytes", what())),
        (None, Ok(text)) => match format {
            DataFormat::Json => serde_json::from_str::<T>(text),
            DataFormat::Text => {
                let mut object = serde_json::Map::with_capacity(1);
                object.insert("data".to_owned(), serde_json::Value::String(text.to_owned()));
                serde_json::from_value::<T>(serde_json::Value::Object(object))
            }
        }
        .map_err(|e| format!("{}: {e}", what())),
    };
    match decoded {
        Ok(record) => Incoming::record(record, meta, size, token),
        Err(error) => Incoming::failed(Failure::new(raw, FailureKind::Decode, error, meta), token),
    }
}
