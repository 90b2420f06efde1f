//! Pure helpers of the RabbitMQ source: a delivery decoded into an [`Incoming`] item, the
//! redelivery count of a message, and how a batch's delivery tags are acknowledged (one
//! `multiple` call when that is exact, one call per tag otherwise). No I/O.

use crate::batch::{Failure, FailureKind, Incoming};
use crate::record::{Extra, Meta, Position, Record};
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::time::{Duration, UNIX_EPOCH};

/// What the source needs to acknowledge one delivery: the channel it came on (a connection
/// epoch: tags of a dead channel are never sent on a new one), its delivery tag, and the key
/// its redelivery count is kept under (forgotten once the message is done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tag {
    pub epoch: u64,
    pub delivery_tag: u64,
    pub count_key: Option<String>,
}

/// A delivery, out of lapin's types.
#[derive(Debug, Clone, Default)]
pub(crate) struct Received {
    pub delivery_tag: u64,
    pub exchange: String,
    pub routing_key: String,
    pub redelivered: bool,
    pub message_id: Option<String>,
    /// The message's headers, each value as bytes (strings as their text, others as JSON).
    pub headers: Vec<(String, Bytes)>,
    /// The `x-delivery-count` header of a quorum queue: how many times the message was
    /// delivered before and returned.
    pub x_delivery_count: Option<u64>,
    /// The `timestamp` property (seconds since the epoch).
    pub timestamp: Option<u64>,
    pub body: Bytes,
}

impl Received {
    /// From lapin's delivery.
    pub(crate) fn from_lapin(delivery: lapin::message::Delivery) -> Received {
        let properties = &delivery.properties;
        let mut headers = Vec::new();
        let mut x_delivery_count = None;
        if let Some(table) = properties.headers() {
            for (name, value) in table.inner() {
                if name.as_str() == "x-delivery-count" {
                    x_delivery_count = header_count(value);
                }
                headers.push((name.as_str().to_owned(), header_bytes(value)));
            }
        }
        Received {
            delivery_tag: delivery.delivery_tag,
            exchange: delivery.exchange.as_str().to_owned(),
            routing_key: delivery.routing_key.as_str().to_owned(),
            redelivered: delivery.redelivered,
            message_id: properties.message_id().as_ref().map(|m| m.as_str().to_owned()),
            headers,
            x_delivery_count,
            timestamp: *properties.timestamp(),
            body: Bytes::from(delivery.data),
        }
    }

    /// The key of the message's redelivery count: its message id, else a fingerprint of its
    /// routing key and body.
    pub(crate) fn count_key(&self) -> String {
        match &self.message_id {
            Some(id) => format!("id:{id}"),
            None => {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                self.routing_key.hash(&mut hasher);
                self.body.hash(&mut hasher);
                format!("body:{:016x}", hasher.finish())
            }
        }
    }
}

fn header_count(value: &lapin::types::AMQPValue) -> Option<u64> {
    use lapin::types::AMQPValue as V;
    match value {
        V::LongLongInt(n) => u64::try_from(*n).ok(),
        V::LongInt(n) => u64::try_from(*n).ok(),
        V::ShortInt(n) => u64::try_from(*n).ok(),
        V::ShortShortInt(n) => u64::try_from(*n).ok(),
        V::LongUInt(n) => Some(u64::from(*n)),
        V::ShortUInt(n) => Some(u64::from(*n)),
        V::ShortShortUInt(n) => Some(u64::from(*n)),
        V::Timestamp(n) => Some(*n),
        _ => None,
    }
}

fn header_bytes(value: &lapin::types::AMQPValue) -> Bytes {
    use lapin::types::AMQPValue as V;
    match value {
        V::LongString(s) => Bytes::copy_from_slice(s.as_bytes()),
        V::ShortString(s) => Bytes::copy_from_slice(s.as_str().as_bytes()),
        V::ByteArray(b) => Bytes::copy_from_slice(b.as_slice()),
        other => match serde_json::to_value(other) {
            // The tagged JSON of amq-protocol (`{"LongInt": 5}`): the inner value.
            Ok(serde_json::Value::Object(map)) if map.len() == 1 => {
                Bytes::from(map.values().next().map(|v| v.to_string()).unwrap_or_default())
            }
            Ok(json) => Bytes::from(json.to_string()),
            Err(_) => Bytes::from(format!("{other:?}")),
        },
    }
}

/// Redelivery counts of messages of a queue without `x-delivery-count` (classic queues), by
/// [`Received::count_key`]. Kept in this process: a count starts again when the consumer
/// restarts, and each consumer of a queue counts what it sees.
#[derive(Debug, Default)]
pub(crate) struct Redeliveries {
    counts: HashMap<String, u32>,
}

/// Counts kept at most (a message is forgotten once done; this bounds the table when
/// messages are taken by other consumers and never seen again).
const MAX_COUNTS: usize = 100_000;

impl Redeliveries {
    /// A delivery of the message under `key`: how many times it has been redelivered so far
    /// (0 for a first delivery).
    pub(crate) fn observe(&mut self, key: &str, redelivered: bool) -> u32 {
        if !redelivered {
            return 0;
        }
        if self.counts.len() >= MAX_COUNTS && !self.counts.contains_key(key) {
            self.counts.clear();
        }
        let count = self.counts.entry(key.to_owned()).or_insert(0);
        *count += 1;
        *count
    }

    /// The message under `key` is done (acknowledged).
    pub(crate) fn forget(&mut self, key: &str) {
        self.counts.remove(key);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.counts.len()
    }
}

/// Decode one delivery: the record with its metadata, or a failure with the body's bytes
/// (the body does not decode, or the message was redelivered more than `max_redeliveries`
/// times). `redeliveries` is the count so far (`x-delivery-count`, or the local count).
pub(crate) fn decode<T: Record>(
    message: Received,
    queue: &str,
    redeliveries: u32,
    max_redeliveries: Option<u32>,
    tag: Tag,
) -> Incoming<T, Tag> {
    let position = match &message.message_id {
        Some(id) => Position::Id(id.clone()),
        None => Position::Id(format!("delivery tag {}", message.delivery_tag)),
    };
    let extra = Extra {
        key: Some(Bytes::from(message.routing_key.clone().into_bytes())),
        headers: message.headers,
        timestamp: message.timestamp.and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s))),
        event_type: Some(queue.to_owned()),
        delivery_count: Some(redeliveries.saturating_add(1)),
        exchange: Some(message.exchange),
        message_id: message.message_id.clone(),
        redelivered: Some(message.redelivered),
        delivery_tag: Some(message.delivery_tag),
        ..Extra::default()
    };
    let size = message.body.len();
    let raw = message.body;
    let meta = Meta::at(position).with_raw(raw.clone()).with_extra(extra);
    let name = message.message_id.as_deref().map_or_else(|| format!("with delivery tag {}", message.delivery_tag), |id| id.to_owned());
    if let Some(max) = max_redeliveries {
        if redeliveries > max {
            let error = format!("RabbitMQ message {name} redelivered {redeliveries} times, more than max_redeliveries = {max}");
            let mut failure = Failure::new(raw, FailureKind::MaxDeliveries, error, meta);
            failure.attempts = redeliveries.saturating_add(1);
            return Incoming::failed(failure, tag);
        }
    }
    match serde_json::from_slice::<T>(&raw) {
        Ok(record) => Incoming::record(record, meta, size, tag),
        Err(e) => {
            let error = format!("RabbitMQ message {name} from queue {queue}: {e}");
            Incoming::failed(Failure::new(raw, FailureKind::Decode, error, meta), tag)
        }
    }
}

/// How to settle some delivery tags of one channel with `basic.ack` / `basic.nack`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// One call with `multiple = true` up to this tag: exactly the batch's tags are the
    /// channel's unsettled tags up to it.
    Multiple(u64),
    /// One call per tag (`multiple = false`).
    Each(Vec<u64>),
}

/// The delivery tags of one channel not yet acknowledged nor rejected. `multiple = true`
/// settles every unsettled tag up to the one given: it is used only when those are exactly
/// the batch's tags, so that a batch completing before an earlier one (out of order) never
/// settles the earlier one's messages, nor messages not yet in any batch.
#[derive(Debug, Default)]
pub(crate) struct Unsettled(BTreeSet<u64>);

impl Unsettled {
    /// A delivery arrived.
    pub(crate) fn insert(&mut self, tag: u64) {
        self.0.insert(tag);
    }

    /// Settle `tags` (removing them): the calls to make. Tags not tracked are left out (settled
    /// already).
    pub(crate) fn settle(&mut self, tags: &[u64]) -> Plan {
        let mine: Vec<u64> = tags.iter().copied().filter(|t| self.0.contains(t)).collect();
        let Some(&max) = mine.iter().max() else { return Plan::Each(Vec::new()) };
        let below = self.0.range(..=max).count();
        for t in &mine {
            self.0.remove(t);
        }
        if mine.len() > 1 && below == mine.len() {
            Plan::Multiple(max)
        } else {
            let mut each = mine;
            each.sort_unstable();
            Plan::Each(each)
        }
    }

    /// How many tags are unsettled.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}
