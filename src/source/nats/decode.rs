//! Pure helpers of the NATS source: a delivered message decoded into an [`Incoming`] item,
//! the delay of a nak, the bodies of acknowledgements. No I/O. (The table of messages in
//! flight that the progress acks read is the shared [`Leases`](crate::ack::Leases).)

use crate::batch::{Failure, FailureKind, Incoming};
use crate::record::{Extra, Meta, Position, Record};
use async_nats::Subject;
use bytes::Bytes;
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest delay a nak asks for, whatever the delivery count.
pub(crate) const MAX_NAK_DELAY: Duration = Duration::from_secs(300);

/// The reply subject of a delivery, where its acknowledgements go
/// (`$JS.ACK.<stream>.<consumer>...`): async-nats' own [`Subject`], whose clones share its
/// bytes, so the lease table, the acknowledgement and its publish take no copy of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply(pub Subject);

impl Reply {
    pub(crate) fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Default for Reply {
    fn default() -> Self {
        Reply(Subject::from_static(""))
    }
}

impl From<&str> for Reply {
    fn from(reply: &str) -> Self {
        Reply(Subject::from(reply))
    }
}

/// Hashed as its text, so the lease table can be searched with a `&str`.
impl Hash for Reply {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Borrow<str> for Reply {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

/// A message the consumer delivered, out of async-nats' types.
#[derive(Debug, Clone, Default)]
pub(crate) struct Received {
    /// The subject it was published to.
    pub subject: String,
    /// Where acknowledgements go.
    pub reply: Reply,
    pub payload: Bytes,
    /// Its headers, in order.
    pub headers: Vec<(String, Bytes)>,
    /// Its sequence in the stream.
    pub stream_sequence: u64,
    /// How many times the consumer has delivered it (1 the first time).
    pub delivered: u32,
    /// When it was stored, in nanoseconds since the epoch.
    pub published_nanos: Option<i128>,
}

/// What the source needs to acknowledge one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// The reply subject acknowledgements are sent to.
    pub reply: Reply,
    /// The stream sequence (for logs and dead-letter entries).
    pub stream_sequence: u64,
    /// The delivery count of this delivery.
    pub delivered: u32,
    /// On the last delivery attempt (`delivered ≥ max_deliver`): what a dead-letter entry
    /// needs if the batch fails (the payload, the subject and the headers).
    pub last_attempt: Option<LastAttempt>,
}

/// The payload and metadata of a message on its last delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LastAttempt {
    pub payload: Bytes,
    pub subject: String,
    pub headers: Vec<(String, Bytes)>,
    pub published: Option<SystemTime>,
}

/// The time of `nanos` since the epoch (before it: none).
fn time_of(nanos: i128) -> Option<SystemTime> {
    let nanos = u64::try_from(nanos).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))
}

/// What acknowledging `message` needs (on its last attempt, what its dead letter needs too).
pub(crate) fn delivery(message: Received, max_deliver: u32) -> Delivery {
    let mut message = message;
    let reply = std::mem::take(&mut message.reply);
    delivery_of(&message, reply, max_deliver)
}

fn delivery_of(message: &Received, reply: Reply, max_deliver: u32) -> Delivery {
    let last_attempt = (message.delivered >= max_deliver).then(|| LastAttempt {
        published: message.published_nanos.and_then(time_of),
        payload: message.payload.clone(),
        subject: message.subject.clone(),
        headers: message.headers.clone(),
    });
    Delivery { reply, stream_sequence: message.stream_sequence, delivered: message.delivered, last_attempt }
}

/// Decode one message into `T`: the record with its metadata (subject as `event_type`,
/// headers, stream sequence as [`Position::Sequence`], delivery count, timestamp), or a
/// failure with its bytes (the payload does not decode, or it was delivered more than
/// `max_deliver` times, which a consumer whose server-side limit is higher than the source's
/// allows).
pub(crate) fn decode<T: Record>(message: Received, max_deliver: u32) -> Incoming<T, Delivery> {
    let mut message = message;
    let published = message.published_nanos.and_then(time_of);
    let reply = std::mem::take(&mut message.reply);
    let delivery = delivery_of(&message, reply, max_deliver);
    let extra = Extra {
        event_type: Some(message.subject),
        headers: message.headers,
        delivery_count: Some(message.delivered),
        timestamp: published,
        ..Extra::default()
    };
    let size = message.payload.len();
    let raw = message.payload;
    let meta = Meta::at(Position::Sequence(message.stream_sequence)).with_raw(raw.clone()).with_extra(extra);
    if message.delivered > max_deliver {
        let error = format!(
            "NATS message at stream sequence {} delivered {} times, more than max_deliver = {max_deliver}",
            message.stream_sequence, message.delivered
        );
        let mut failure = Failure::new(raw, FailureKind::MaxDeliveries, error, meta);
        failure.attempts = message.delivered;
        return Incoming::failed(failure, delivery);
    }
    match serde_json::from_slice::<T>(&raw) {
        Ok(record) => Incoming::record(record, meta, size, delivery),
        Err(e) => {
            let error = format!("NATS message at stream sequence {}: {e}", message.stream_sequence);
            Incoming::failed(Failure::new(raw, FailureKind::Decode, error, meta), delivery)
        }
    }
}

/// The delay a nak asks for after the `delivered`-th delivery failed: `nak_delay` doubled for
/// each delivery after the first, at most [`MAX_NAK_DELAY`] (and never less than `nak_delay`).
pub(crate) fn nak_delay(base: Duration, delivered: u32) -> Duration {
    let doublings = delivered.saturating_sub(1).min(20);
    base.saturating_mul(1u32 << doublings).min(MAX_NAK_DELAY.max(base))
}

/// The body of an acknowledgement: `+ACK`, `-NAK {"delay": ns}`, `+TERM <reason>`, `+WPI`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AckBody {
    Ack,
    Nak(Duration),
    Term(String),
    Progress,
}

impl AckBody {
    pub(crate) fn bytes(&self) -> Bytes {
        match self {
            AckBody::Ack => Bytes::from_static(b"+ACK"),
            AckBody::Nak(delay) if delay.is_zero() => Bytes::from_static(b"-NAK"),
            AckBody::Nak(delay) => Bytes::from(format!("-NAK {{\"delay\":{}}}", delay.as_nanos())),
            AckBody::Term(reason) if reason.is_empty() => Bytes::from_static(b"+TERM"),
            AckBody::Term(reason) => Bytes::from(format!("+TERM {}", reason.replace(['\r', '\n'], " "))),
            AckBody::Progress => Bytes::from_static(b"+WPI"),
        }
    }
}
