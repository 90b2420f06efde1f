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
/// timestamp and topic (as `event_type`) in [`Extra`].
pub(crate) fn meta(message: &Received) -> Meta {
    let extra = Extra {
        key: message.key.clone(),
        headers: message.headers.clone(),
        timestamp: message
            .timestamp_millis
            .and_then(|ms| u64::try_from(ms).ok())
            .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms))),
        event_type: Some(message.topic.clone()),
        ..Extra::default()
    };
    let meta = Meta::at(Position::Offset { partition: message.partition, offset: message.offset }).with_extra(extra);
    match &message.payload {
        Some(payload) => meta.with_raw(payload.clone()),
        None => meta,
    }
}

/// Decode one message: the record (JSON) with its metadata, or a decode failure with the raw
/// payload and the position (a tombstone is a failure with an empty payload).
pub(crate) fn decode<T: Record>(message: Received, token: Token) -> Incoming<T, Token> {
    let meta = meta(&message);
    let Some(payload) = message.payload else {
        let error = format!(
            "kafka {} partition {} offset {}: a message without a value (tombstone)",
            message.topic, message.partition, message.offset
        );
        return Incoming::failed(Failure::new(Bytes::new(), FailureKind::Decode, error, meta), token);
    };
    let size = payload.len();
    match serde_json::from_slice::<T>(&payload) {
        Ok(record) => Incoming::record(record, meta, size, token),
        Err(e) => {
            let error = format!("kafka {} partition {} offset {}: {e}", message.topic, message.partition, message.offset);
            Incoming::failed(Failure::new(payload, FailureKind::Decode, error, meta), token)
        }
    }
}
