//! `kafka`: produce each record as a JSON message to a Kafka topic, with librdkafka's
//! idempotent producer (`enable.idempotence = true`, `acks = all`).
//!
//! ```no_run
//! use etl::prelude::*;
//! # async fn demo() -> etl::Result<()> {
//! #[derive(Debug, Clone, Record, Serialize, Deserialize)]
//! struct Order { id: i64, customer: String }
//! let sink = etl::sink::kafka("orders-clean")
//!     .brokers("${KAFKA_BROKERS}")
//!     .key("customer")
//!     .headers([("source", "etl")]);
//! let orders = vec![Order { id: 1, customer: "ada".into() }];
//! Pipeline::from(etl::source::iter(orders)).to(sink).run().await?;
//! # Ok(()) }
//! ```
//!
//! # Writing and committing
//!
//! The sink is two-phase (see [`Sink`]): `write` hands every record of a batch to the producer
//! without waiting (librdkafka batches and sends them), and `commit` waits for the delivery
//! report of every message written since the last commit. The pipeline acknowledges a batch
//! to its source only after that, and may keep several batches written and uncommitted
//! (`max_in_flight`), so that batches overlap on the wire.
//!
//! # Failures
//!
//! * librdkafka retries failed produce requests itself (idempotently: no duplicate from its
//!   own retries) until `message.timeout.ms` (librdkafka's default, 5 minutes; set it with
//!   [`KafkaSink::properties`]).
//! * A message that still fails makes `commit` fail, retryably (permanently for refused
//!   credentials or authorisation): the pipeline writes every uncommitted batch again and
//!   commits again, within its retry policy, then stops with the batches left for
//!   redelivery. Messages of those batches that were delivered are then delivered twice
//!   (at-least-once).
//! * A record whose message is larger than the producer's `message.max.bytes` is rejected at
//!   `write` ([`Written::rejected`]: it is dead-lettered), not retried. One the broker refuses
//!   as too large (`MessageSizeTooLarge` from a broker whose limit is lower) fails the commit;
//!   the sink remembers its value, and the rewrite that follows rejects it.
//! * A record that cannot be encoded as JSON, or has no field to key it by, is rejected.
//!
//! # Keys and headers
//!
//! [`KafkaSink::key`] takes a field name (the message key is the field's value: a string's
//! text, any other value's JSON) or a function of the record returning bytes
//! (`|o: &Order| o.id.to_string()`). [`KafkaSink::headers`] are set on every message.

mod encode;
#[cfg(test)]
mod tests;
mod write;

pub use crate::kafka::{IntoSecret, DEFAULT_BROKERS};
pub use encode::{ByField, ByFn, FieldKey, FnKey, IntoKey, Message, MessageKey, NoKey};

use super::{Sink, SinkContext, Written};
use crate::config::interpolate;
use crate::error::ConnectorError;
use crate::kafka::{connector_error, ClientOptions};
use encode::fingerprint;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{Producer, ThreadedProducer};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use write::{Context, Deliveries, Open, SendError};

/// How long opening waits for the brokers' metadata, and closing for the last messages.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Produces records as JSON messages to a Kafka topic. See [`kafka()`] and the
/// [module docs](self). `K` says how a message is keyed ([`KafkaSink::key`]).
pub struct KafkaSink<K = NoKey> {
    topic: String,
    client: ClientOptions,
    key: K,
    headers: Vec<(String, Vec<u8>)>,
    open: Option<Open>,
}

impl<K> std::fmt::Debug for KafkaSink<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.topic)
            .field("client", &self.client)
            .field("headers", &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("open", &self.open.is_some())
            .finish()
    }
}

/// Produce to `topic` (`${VAR}` resolved at open, when the sink also checks that the brokers
/// answer and that the topic exists).
///
/// ```
/// use etl::Sink;
/// let sink = etl::sink::kafka("orders");
/// assert_eq!(Sink::<etl::Json>::describe(&sink), "kafka sink orders");
/// ```
pub fn kafka(topic: impl Into<String>) -> KafkaSink {
    KafkaSink { topic: topic.into(), client: ClientOptions::default(), key: NoKey, headers: Vec::new(), open: None }
}

impl<K> KafkaSink<K> {
    crate::kafka::client_option_methods!("etl::sink::kafka(\"orders\")");

    /// Key every message: by a field of the record (its serde name: `.key("customer")`), or by
    /// a function of the record returning bytes (`.key(|o: &Order| o.id.to_string())`; name
    /// the argument's type, since the sink is built before the pipeline tells it). Default:
    /// no key ([`NoKey`]).
    ///
    /// ```
    /// let by_field = etl::sink::kafka("orders").key("customer");
    /// let by_fn = etl::sink::kafka("orders").key(|o: &etl::Json| o.get("id").map(|v| v.to_string()).unwrap_or_default());
    /// ```
    pub fn key<M, N: IntoKey<M>>(self, key: N) -> KafkaSink<N::Key> {
        KafkaSink { topic: self.topic, client: self.client, key: key.into_key(), headers: self.headers, open: None }
    }

    /// Headers set on every message, in order. Default: none.
    ///
    /// ```
    /// let sink = etl::sink::kafka("orders").headers([("source", "etl"), ("schema", "v2")]);
    /// ```
    pub fn headers<N: Into<String>, V: Into<Vec<u8>>>(mut self, headers: impl IntoIterator<Item = (N, V)>) -> Self {
        self.headers.extend(headers.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Any other librdkafka producer properties (`linger.ms`, `compression.type`,
    /// `message.timeout.ms`, ...; values' `${VAR}` resolved at open), set after the sink's
    /// own. Overriding `enable.idempotence` or `acks` weakens the delivery guarantee.
    /// Default: none.
    ///
    /// ```
    /// let sink = etl::sink::kafka("orders").properties([("compression.type", "zstd"), ("linger.ms", "20")]);
    /// ```
    pub fn properties<N: Into<String>, V: Into<String>>(mut self, properties: impl IntoIterator<Item = (N, V)>) -> Self {
        self.client.properties.extend(properties.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    fn component(&self) -> String {
        format!("kafka sink {}", crate::config::display(&self.topic))
    }

    async fn ensure_open(&mut self) -> Result<&mut Open, ConnectorError> {
        if self.open.is_none() {
            let component = self.component();
            let config_error = |e: crate::ConfigError| ConnectorError::permanent(component.clone(), e);
            let topic = interpolate(&self.topic).map_err(config_error)?;
            let config = self.client.config(&[("enable.idempotence", "true".into()), ("acks", "all".into())]).map_err(config_error)?;
            let deliveries = Arc::new(Deliveries::default());
            let context = Context { deliveries: Arc::clone(&deliveries), topic: topic.clone() };
            let (comp, name) = (component.clone(), topic.clone());
            let producer = tokio::task::spawn_blocking(move || -> Result<ThreadedProducer<Context>, ConnectorError> {
                let producer: ThreadedProducer<Context> =
                    config.create_with_context(context).map_err(|e| connector_error(&comp, "cannot create the producer", &e))?;
                let metadata = producer
                    .client()
                    .fetch_metadata(Some(&name), OPEN_TIMEOUT)
                    .map_err(|e| connector_error(&comp, &format!("the brokers did not answer for topic `{name}`"), &e))?;
                match metadata.topics().iter().find(|t| t.name() == name) {
                    Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(producer),
                    _ => Err(ConnectorError::permanent(comp.clone(), format!("topic `{name}` does not exist"))),
                }
            })
            .await
            .map_err(|e| ConnectorError::permanent(component.clone(), format!("opening panicked: {e}")))??;
            tracing::debug!(topic = %topic, "kafka sink opened");
            self.open = Some(Open { producer, deliveries, topic, component, too_large: HashSet::new() });
        }
        self.open.as_mut().ok_or_else(|| ConnectorError::permanent("kafka sink", "not open (bug)"))
    }

    fn owned_headers(&self) -> Option<OwnedHeaders> {
        if self.headers.is_empty() {
            return None;
        }
        let mut headers = OwnedHeaders::new_with_capacity(self.headers.len());
        for (key, value) in &self.headers {
            headers = headers.insert(Header { key, value: Some(value.as_slice()) });
        }
        Some(headers)
    }
}

impl<T: Sync, K: MessageKey<T>> Sink<T> for KafkaSink<K> {
    fn describe(&self) -> String {
        self.component()
    }

    async fn open(&mut self, _ctx: SinkContext) -> Result<(), ConnectorError> {
        self.ensure_open().await.map(|_| ())
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        let headers = self.owned_headers();
        let mut messages = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        for (i, record) in records.iter().enumerate() {
            match self.key.message(record) {
                Ok(message) => messages.push((i, message)),
                Err(reason) => rejected.push((i, reason)),
            }
        }
        let open = self.ensure_open().await?;
        for (i, (key, payload)) in messages {
            if !open.too_large.is_empty() && open.too_large.contains(&fingerprint(&payload)) {
                rejected.push((i, format!("the broker refused the message ({} bytes) as too large", payload.len())));
                continue;
            }
            match open.send(key.as_deref(), &payload, headers.as_ref()).await {
                Ok(()) => {}
                Err(SendError::Rejected(reason)) => rejected.push((i, reason)),
                Err(SendError::Failed(e)) => return Err(e),
            }
        }
        rejected.sort_by_key(|(i, _)| *i);
        Ok(Written::rejecting(rejected))
    }

    async fn commit(&mut self) -> Result<(), ConnectorError> {
        match self.open.as_mut() {
            Some(open) => open.settle().await,
            None => Ok(()),
        }
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        let Some(open) = self.open.take() else { return Ok(()) };
        tokio::task::spawn_blocking(move || open.flush(OPEN_TIMEOUT))
            .await
            .map_err(|e| ConnectorError::permanent(self.component(), format!("closing panicked: {e}")))?
    }
}
