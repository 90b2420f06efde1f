//! Pure helpers of the SSE source: the leading-BOM filter, HTTP status classification and the
//! decoding of one event into an [`Incoming`] item.

use super::DataFormat;
use crate::batch::{Failure, FailureKind, Incoming};
use crate::record::{Extra, Meta, Position, Record};
use bytes::Bytes;
use eventsource_stream::Event;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Removes a UTF-8 byte order mark from the start of a byte stream, fed chunk by chunk (the
/// BOM may be split across chunks). `eventsource-stream` 0.2.3 panics on a leading BOM.
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

    /// The stream ended: what was held back (a prefix of a BOM is not a BOM).
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
    filter.is_none_or(|f| event.event == f)
}

/// Decode one event into an item for the batcher: the record with its metadata (position = the
/// event id, raw = the data, extra.event_type = the event type), or a decode failure carrying
/// the data text.
pub(crate) fn decode<T: Record>(event: Event, format: DataFormat) -> Incoming<T, ()> {
    let position = if event.id.is_empty() { Position::None } else { Position::Id(event.id) };
    let extra = Extra { event_type: Some(event.event), ..Extra::default() };
    let size = event.data.len();
    let decoded = match format {
        DataFormat::Json => serde_json::from_str::<T>(&event.data),
        DataFormat::Text => {
            let mut object = serde_json::Map::with_capacity(1);
            object.insert("data".to_owned(), serde_json::Value::String(event.data.clone()));
            serde_json::from_value::<T>(serde_json::Value::Object(object))
        }
    };
    let raw = Bytes::from(event.data);
    let meta = Meta::at(position).with_raw(raw.clone()).with_extra(extra);
    match decoded {
        Ok(record) => Incoming::record(record, meta, size, ()),
        Err(e) => {
            let error = match &meta.position {
                Position::Id(id) => format!("SSE event id {id}: {e}"),
                _ => format!("SSE event: {e}"),
            };
            Incoming::failed(Failure::new(raw, FailureKind::Decode, error, meta), ())
        }
    }
}
