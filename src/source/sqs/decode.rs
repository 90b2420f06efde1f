//! Pure helpers of the SQS source: a received message decoded into an [`Incoming`] item, the
//! seconds of a visibility timeout, a queue's name. No I/O. (The table of messages in flight
//! that the heartbeat reads is the shared [`Leases`](crate::ack::Leases).)

use crate::batch::{Failure, FailureKind, Incoming};
use crate::record::{Extra, Meta, Position, Record};
use bytes::Bytes;
use std::time::{Duration, UNIX_EPOCH};

/// What the source needs to acknowledge one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Receipt {
    /// The message id (for logs).
    pub message_id: String,
    /// The receipt handle of this receive.
    pub handle: String,
}

/// A received message, out of the SDK's types.
#[derive(Debug, Clone, Default)]
pub(crate) struct Received {
    pub message_id: String,
    pub handle: String,
    pub body: String,
    /// `ApproximateReceiveCount`.
    pub receive_count: Option<u32>,
    /// `SentTimestamp` (milliseconds since the epoch).
    pub sent_millis: Option<u64>,
}

impl Received {
    /// From the SDK's message; `None` without a receipt handle (it could never be deleted).
    pub(crate) fn from_sdk(message: aws_sdk_sqs::types::Message) -> Option<Received> {
        use aws_sdk_sqs::types::MessageSystemAttributeName as Name;
        let attribute = |name: &Name| message.attributes().and_then(|a| a.get(name)).and_then(|v| v.parse::<u64>().ok());
        let receive_count = attribute(&Name::ApproximateReceiveCount).map(|c| u32::try_from(c).unwrap_or(u32::MAX));
        let sent_millis = attribute(&Name::SentTimestamp);
        Some(Received {
            handle: message.receipt_handle?,
            message_id: message.message_id.unwrap_or_default(),
            body: message.body.unwrap_or_default(),
            receive_count,
            sent_millis,
        })
    }
}

/// Decode one message: the record with its metadata, or a failure with the body's bytes (the
/// body does not decode, or the message was received more than `max_receives` times).
pub(crate) fn decode<T: Record>(message: Received, queue: &str, max_receives: Option<u32>) -> Incoming<T, Receipt> {
    let extra = Extra {
        event_type: Some(queue.to_owned()),
        delivery_count: message.receive_count,
        timestamp: message.sent_millis.and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms))),
        ..Extra::default()
    };
    let receipt = Receipt { message_id: message.message_id.clone(), handle: message.handle };
    let size = message.body.len();
    let raw = Bytes::from(message.body);
    let meta = Meta::at(Position::Id(message.message_id.clone())).with_raw(raw.clone()).with_extra(extra);
    if let (Some(max), Some(count)) = (max_receives, message.receive_count) {
        if count > max {
            let error = format!("SQS message {} received {count} times, more than max_receives = {max}", message.message_id);
            let mut failure = Failure::new(raw, FailureKind::MaxDeliveries, error, meta);
            failure.attempts = count;
            return Incoming::failed(failure, receipt);
        }
    }
    match serde_json::from_slice::<T>(&raw) {
        Ok(record) => Incoming::record(record, meta, size, receipt),
        Err(e) => {
            let error = format!("SQS message {}: {e}", message.message_id);
            Incoming::failed(Failure::new(raw, FailureKind::Decode, error, meta), receipt)
        }
    }
}

/// The seconds to send for a visibility timeout (rounded up; SQS's limit is 12 hours).
pub(crate) fn visibility_seconds(timeout: Duration) -> i32 {
    let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    secs.min(43_200) as i32
}

/// The name of a queue from its URL (the last path segment).
pub(crate) fn queue_name(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}
