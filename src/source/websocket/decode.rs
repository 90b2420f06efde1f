//! Pure helpers of the WebSocket source: one message into records or failures, the
//! `auth_ack` / `auth_fail` patterns, the handshake status classes and the subscribe messages'
//! `${VAR}` resolution. No I/O.

use super::{DataFormat, SubscribeMessage};
use crate::batch::{Failure, FailureKind, Incoming};
use crate::config::{interpolate_with, ConfigError};
use crate::record::{Extra, Meta, Position, Record};
use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

/// The kind of a data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    Text,
    Binary,
}

impl FrameKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            FrameKind::Text => "text",
            FrameKind::Binary => "binary",
        }
    }
}

/// One message as the connection's task read it.
pub(crate) enum Read {
    /// A data message, decoded by the reader on the pipeline's task.
    Message(Received),
    /// A message the WebSocket layer refused unread (over the hard size limit): its dead letter
    /// (boxed: it is rare, and a read's vector stays small).
    Refused(Box<Failure>),
}

/// One read's messages, decoded one by one as the batcher takes them: no vector of records
/// per read.
pub(crate) struct Decoded<T> {
    reads: std::vec::IntoIter<Read>,
    decoding: Arc<Decoding>,
    /// The records of a message split into several (`split_arrays`) not yet taken.
    split: VecDeque<Incoming<T, ()>>,
}

impl<T> Decoded<T> {
    pub(crate) fn new(reads: Vec<Read>, decoding: Arc<Decoding>) -> Self {
        Decoded { reads: reads.into_iter(), decoding, split: VecDeque::new() }
    }
}

impl<T: Record> Iterator for Decoded<T> {
    type Item = Incoming<T, ()>;

    fn next(&mut self) -> Option<Incoming<T, ()>> {
        loop {
            if let Some(incoming) = self.split.pop_front() {
                return Some(incoming);
            }
            match self.reads.next()? {
                Read::Refused(failure) => return Some(Incoming::failed(*failure, ())),
                Read::Message(message) => {
                    if let Some(incoming) = self.decoding.decode(message, &mut self.split) {
                        return Some(incoming);
                    }
                }
            }
        }
    }
}

/// One data message as read, with what its metadata needs.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub payload: Bytes,
    pub kind: FrameKind,
    /// 1-based number of the data message in this run of the source.
    pub sequence: u64,
    /// 1-based number of the connection that carried it.
    pub connection: u64,
    /// Its metadata beside the position (see [`Decoding::extra`]): shared by the messages of
    /// one kind read together.
    pub extra: Arc<Extra>,
}

/// The decoding options of one source.
#[derive(Debug, Clone)]
pub(crate) struct Decoding {
    pub format: DataFormat,
    pub split_arrays: bool,
    pub max_message_bytes: usize,
    /// The URL as configured, a password in it redacted (the `url` header of the metadata).
    pub url: Bytes,
}

impl Decoding {
    /// The extras of the `kind` messages of connection `connection` (its number as text)
    /// received at `received_at`: the frame kind as the event type, the time, the `url` and
    /// `connection` headers. Made once per read and shared by its messages, rather than five
    /// allocations per message.
    pub(crate) fn extra(&self, kind: FrameKind, connection: &Bytes, received_at: SystemTime) -> Arc<Extra> {
        Arc::new(Extra {
            event_type: Some(kind.name().to_owned()),
            timestamp: Some(received_at),
            headers: vec![("url".to_owned(), self.url.clone()), ("connection".to_owned(), connection.clone())],
            ..Extra::default()
        })
    }

    fn meta(m: &Received, raw: Bytes) -> Meta {
        Meta::at(Position::Sequence(m.sequence)).with_raw(raw).with_shared_extra(Arc::clone(&m.extra))
    }

    /// Decode one message: one record (or failure), returned; or with `split_arrays` one per
    /// element of a top-level JSON array, pushed to `split` (and `None` returned).
    pub(crate) fn decode<T: Record>(&self, m: Received, split: &mut VecDeque<Incoming<T, ()>>) -> Option<Incoming<T, ()>> {
        let size = m.payload.len();
        let what = |m: &Received| format!("WebSocket message {} ({} frame, connection {})", m.sequence, m.kind.name(), m.connection);
        if size > self.max_message_bytes {
            let kept = m.payload.slice(..self.max_message_bytes);
            let error = format!(
                "{}: {size} bytes, over max_message_bytes ({}); the dead letter keeps the first {} bytes",
                what(&m),
                self.max_message_bytes,
                kept.len()
            );
            let meta = Self::meta(&m, kept.clone());
            return Some(Incoming::failed(Failure::new(kept, FailureKind::Decode, error, meta), ()));
        }
        let decoded = match self.format {
            DataFormat::Text => match std::str::from_utf8(&m.payload) {
                Ok(text) => {
                    let mut object = serde_json::Map::with_capacity(1);
                    object.insert("data".to_owned(), Value::String(text.to_owned()));
                    serde_json::from_value::<T>(Value::Object(object)).map_err(|e| format!("{}: {e}", what(&m)))
                }
                Err(e) => {
                    Err(format!("{}: not UTF-8 text ({e}) and data_format is \"text\"; the dead letter keeps the exact bytes", what(&m)))
                }
            },
            DataFormat::Json if self.split_arrays && starts_array(&m.payload) => {
                self.split::<T>(&m, split);
                return None;
            }
            DataFormat::Json => serde_json::from_slice::<T>(&m.payload).map_err(|e| format!("{}: {e}", what(&m))),
        };
        Some(match decoded {
            // The payload moves into the metadata: no count taken and dropped per message.
            Ok(record) => {
                let meta = Meta::at(Position::Sequence(m.sequence)).with_raw(m.payload).with_shared_extra(m.extra);
                Incoming::record(record, meta, size, ())
            }
            Err(error) => {
                let meta = Self::meta(&m, m.payload.clone());
                Incoming::failed(Failure::new(m.payload, FailureKind::Decode, error, meta), ())
            }
        })
    }

    /// One record per element of the JSON array in `m`; each element's raw bytes are a slice
    /// of the message (no copy). An array that does not parse is one failure.
    fn split<T: Record>(&self, m: &Received, out: &mut VecDeque<Incoming<T, ()>>) {
        let elements = match serde_json::from_slice::<Vec<&RawValue>>(&m.payload) {
            Ok(elements) => elements,
            Err(e) => {
                let error = format!("WebSocket message {} ({} frame, connection {}): {e}", m.sequence, m.kind.name(), m.connection);
                let meta = Self::meta(m, m.payload.clone());
                out.push_back(Incoming::failed(Failure::new(m.payload.clone(), FailureKind::Decode, error, meta), ()));
                return;
            }
        };
        let base = m.payload.as_ptr() as usize;
        for (i, element) in elements.iter().enumerate() {
            let text = element.get();
            // `RawValue` borrows from the payload (`from_slice` on borrowed bytes): the
            // element's bytes are a sub-slice of it.
            let start = (text.as_ptr() as usize).wrapping_sub(base);
            let raw = if start <= m.payload.len() && start + text.len() <= m.payload.len() {
                m.payload.slice(start..start + text.len())
            } else {
                Bytes::copy_from_slice(text.as_bytes())
            };
            let meta = Self::meta(m, raw.clone());
            out.push_back(match serde_json::from_str::<T>(text) {
                Ok(record) => Incoming::record(record, meta, raw.len(), ()),
                Err(e) => {
                    let error = format!(
                        "WebSocket message {} ({} frame, connection {}), array element {i}: {e}",
                        m.sequence,
                        m.kind.name(),
                        m.connection
                    );
                    Incoming::failed(Failure::new(raw, FailureKind::Decode, error, meta), ())
                }
            });
        }
    }
}

/// Whether the first non-whitespace byte is `[`.
fn starts_array(payload: &[u8]) -> bool {
    payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// An `auth_ack` / `auth_fail` pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pattern {
    /// A JSON object: matches a JSON message holding at least its fields with equal values
    /// (recursively), or a JSON array holding such an element.
    Json(Value),
    /// Any other text: matches a message whose bytes contain it.
    Text(String),
}

impl Pattern {
    pub(crate) fn parse(pattern: &str) -> Pattern {
        match serde_json::from_str::<Value>(pattern) {
            Ok(value @ Value::Object(_)) => Pattern::Json(value),
            _ => Pattern::Text(pattern.to_owned()),
        }
    }

    pub(crate) fn matches(&self, payload: &[u8]) -> bool {
        match self {
            Pattern::Text(text) => memchr::memmem::find(payload, text.as_bytes()).is_some(),
            Pattern::Json(pattern) => match serde_json::from_slice::<Value>(payload) {
                Ok(Value::Array(items)) => items.iter().any(|item| contains(pattern, item)),
                Ok(value) => contains(pattern, &value),
                Err(_) => false,
            },
        }
    }
}

/// `value` holds every field of `pattern` with an equal value (objects recursively).
fn contains(pattern: &Value, value: &Value) -> bool {
    match (pattern, value) {
        (Value::Object(p), Value::Object(v)) => p.iter().all(|(k, pv)| v.get(k).is_some_and(|vv| contains(pv, vv))),
        _ => pattern == value,
    }
}

/// What a handshake answered with an HTTP status other than 101 means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusClass {
    /// 408, 429, 5xx: try again later.
    Retry,
    /// Anything else (401, 403, 404, ...): retrying cannot help.
    Fatal,
}

pub(crate) fn classify(status: u16) -> StatusClass {
    match status {
        408 | 429 | 500..=599 => StatusClass::Retry,
        _ => StatusClass::Fatal,
    }
}

/// The text to send for a subscribe message, `${VAR}` resolved through `lookup` (in every
/// string of a JSON value: keys and values).
pub(crate) fn resolve(message: &SubscribeMessage, lookup: &impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    fn walk(value: &Value, lookup: &impl Fn(&str) -> Option<String>) -> Result<Value, ConfigError> {
        Ok(match value {
            Value::String(s) => Value::String(interpolate_with(s, lookup)?),
            Value::Array(items) => Value::Array(items.iter().map(|v| walk(v, lookup)).collect::<Result<_, _>>()?),
            Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (k, v) in map {
                    out.insert(interpolate_with(k, lookup)?, walk(v, lookup)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }
    match message {
        SubscribeMessage::Text(text) => interpolate_with(text, lookup),
        SubscribeMessage::Json(value) => Ok(walk(value, lookup)?.to_string()),
    }
}
