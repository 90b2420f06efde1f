//! Pure helpers of the Kafka source: a polled message (out of rdkafka's borrowed types)
//! decoded into an [`Incoming`] item with its metadata beside it. No I/O.

use super::partitions::Token;
use crate::batch::{Failure, FailureKind, Incoming};
use crate::record::{Extra, Meta, Position, Record};
use bytes::Bytes;
use std::time::{Duration, UNIX_EPOCH};

/// A message as the consumer polled it, copied out of librdkafka's buffer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Received {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Bytes>,
    /// `None` for a tombstone (a message without a value).
    pub payload: Option<Bytes>,
    pub headers: Vec<(String, Bytes)>,
    /// The message's timestamp (create or log-append time), milliseconds since the epoch.
    pub timestamp_millis: Option<i64>,
}

/// The metadata of a message: `Position::Offset`, the raw payload, and the key, headers,
/// timestamp and topic (as `event_type`) in [`Extra`]. Takes the message's parts (a clone of
/// a `Bytes` made from a `Vec` costs an allocation: two a message at a million messages).
pub(crate) fn meta(message: Received) -> Meta {
    let Received { topic, partition, offset, key, payload, headers, timestamp_millis } = message;
    let extra = Extra {
        key,
        headers,
        timestamp: timestamp_millis.and_then(|ms| u64::try_from(ms).ok()).and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms))),
        event_type: Some(topic),
        ..Extra::default()
    };
    let meta = Meta::at(Position::Offset { partition, offset }).with_extra(extra);
    match payload {
        Some(payload) => meta.with_raw(payload),
        None => meta,
    }
}

/// Decode one message: the record (JSON) with its metadata, or a decode failure with the raw
/// payload and the position (a tombstone is a failure with an empty payload).
pub(crate) fn decode<T: Record>(message: Received, token: Token) -> Incoming<T, Token> {
    let where_ = |m: &Received| format!("kafka {} partition {} offset {}", m.topic, m.partition, m.offset);
    let Some(payload) = message.payload.as_deref() else {
        let error = format!("{}: a message without a value (tombstone)", where_(&message));
        return Incoming::failed(Failure::new(Bytes::new(), FailureKind::Decode, error, meta(message)), token);
    };
    let size = payload.len();
    match serde_json::from_slice::<T>(payload) {
        Ok(record) => Incoming::record(record, meta(message), size, token),
        Err(e) => {
            let error = format!("{}: {e}", where_(&message));
            let meta = meta(message);
            let raw = meta.raw.clone().unwrap_or_default();
            Incoming::failed(Failure::new(raw, FailureKind::Decode, error, meta), token)
        }
    }
}
