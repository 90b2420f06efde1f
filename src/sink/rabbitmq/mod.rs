//! `rabbitmq`: publish each record as a JSON message to a RabbitMQ exchange, with publisher
//! confirms.
//!
//! ```no_run
//! use etl::prelude::*;
//! # async fn demo() -> etl::Result<()> {
//! #[derive(Debug, Clone, Record, Serialize, Deserialize)]
//! struct Order { id: i64, kind: String }
//! let sink = etl::sink::rabbitmq(|o: &Order| format!("order.{}", o.kind))
//!     .url("${RABBITMQ_URL}")
//!     .exchange("events");
//! let orders = vec![Order { id: 1, kind: "created".into() }];
//! Pipeline::from(etl::source::iter(orders)).to(sink).run().await?;
//! # Ok(()) }
//! ```
//!
//! # Writing and committing
//!
//! The sink is two-phase (see [`Sink`]): its channel is in confirm mode (`confirm.select`);
//! `write` publishes every record of a batch without waiting, and `commit` waits for the
//! broker's confirm of every message published since the last commit. The pipeline
//! acknowledges a batch to its source only after that, and may keep several batches
//! published and unconfirmed (`max_in_flight`). Messages are persistent (`delivery_mode` 2,
//! [`RabbitmqSink::persistent`]) with content type `application/json`.
//!
//! # Failures
//!
//! * A message the broker nacks, or returns because no queue is bound to take it (published
//!   with `mandatory`, the default: [`RabbitmqSink::mandatory`]), is published again with
//!   backoff within the commit ([`RabbitmqSink::retry`]); when the retries run out the commit
//!   fails, retryably: the pipeline publishes every uncommitted batch again and commits
//!   again, within its retry policy, then stops with the batches left for redelivery. The
//!   messages of those batches that were confirmed are then published twice
//!   (at-least-once).
//! * A lost connection or channel fails the write or the commit (retryably); the next write
//!   opens a new connection.
//! * A record that cannot be encoded as JSON, or whose routing key is longer than AMQP's 255
//!   bytes, is rejected at `write` ([`Written::rejected`]: it is dead-lettered).
//! * A missing exchange or refused credentials are permanent errors at start-up.
//!
//! # Routing
//!
//! [`rabbitmq()`] takes the routing key: a fixed one (`"orders"`; with the default exchange
//! `""` it names the queue), or a function of the record (`|o: &Order| o.kind.clone()`; name
//! the argument's type, since the sink is built before the pipeline tells it). A field's
//! value is a function returning it.

mod encode;
#[cfg(test)]
mod tests;
mod write;

pub use crate::rabbitmq::DEFAULT_URL;
pub use encode::{ByFn, Fixed, FixedKey, FnKey, IntoRoutingKey, Message, RoutingKey, MAX_ROUTING_KEY_BYTES};

use super::{Sink, SinkContext, Written};
use crate::error::ConnectorError;
use crate::retry::RetryPolicy;
use std::time::Duration;
use write::{Open, Settings};

/// The default of [`RabbitmqSink::exchange`]: the default exchange, which routes a message
/// to the queue its routing key names.
///
/// ```
/// assert_eq!(etl::sink::rabbitmq::DEFAULT_EXCHANGE, "");
/// ```
pub const DEFAULT_EXCHANGE: &str = "";

/// The default of [`RabbitmqSink::mandatory`]: an unroutable message comes back and is
/// published again, then fails the commit, rather than being dropped by the broker.
///
/// ```
/// assert!(etl::sink::rabbitmq::DEFAULT_MANDATORY);
/// ```
pub const DEFAULT_MANDATORY: bool = true;

/// The default of [`RabbitmqSink::persistent`]: messages survive a broker restart (in a
/// durable queue).
///
/// ```
/// assert!(etl::sink::rabbitmq::DEFAULT_PERSISTENT);
/// ```
pub const DEFAULT_PERSISTENT: bool = true;

/// The default [`RabbitmqSink::retry`] of nacked and returned messages within a commit: 5
/// retries from 100 ms, doubling, at most 5 s apart, with jitter.
///
/// ```
/// assert_eq!(etl::sink::rabbitmq::default_retry().max_retries, 5);
/// ```
pub fn default_retry() -> RetryPolicy {
    RetryPolicy::default().initial_delay(Duration::from_millis(100)).max_delay(Duration::from_secs(5))
}

/// Publishes records as JSON messages to a RabbitMQ exchange. See [`rabbitmq()`] and the
/// [module docs](self). `K` says how a message is routed ([`RoutingKey`]).
pub struct RabbitmqSink<K> {
    url: String,
    exchange: String,
    key: K,
    mandatory: bool,
    persistent: bool,
    retry: RetryPolicy,
    open: Option<Open>,
    /// Messages published on a connection that broke before their confirms came: the next
    /// commit fails, so that the pipeline writes the uncommitted batches again.
    lost: usize,
}

impl<K> std::fmt::Debug for RabbitmqSink<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitmqSink")
            .field("url", &crate::config::redact(&self.url))
            .field("exchange", &self.exchange)
            .field("mandatory", &self.mandatory)
            .field("persistent", &self.persistent)
            .field("open", &self.open.is_some())
            .finish()
    }
}

/// Publish to the default exchange, or the one [`RabbitmqSink::exchange`] names, with
/// `routing_key`: a fixed key (`${VAR}` resolved at open) or a function of the record. The
/// sink connects and checks the exchange when the pipeline opens it.
///
/// ```
/// use etl::Sink;
/// let sink = etl::sink::rabbitmq("orders-clean");
/// assert_eq!(Sink::<etl::Json>::describe(&sink), "rabbitmq sink exchange `` routing key orders-clean");
/// let by_fn = etl::sink::rabbitmq(|o: &etl::Json| o.get("kind").and_then(|k| k.as_str()).unwrap_or("other").to_owned());
/// ```
pub fn rabbitmq<M, K: IntoRoutingKey<M>>(routing_key: K) -> RabbitmqSink<K::Key> {
    RabbitmqSink {
        url: DEFAULT_URL.to_owned(),
        exchange: DEFAULT_EXCHANGE.to_owned(),
        key: routing_key.into_key(),
        mandatory: DEFAULT_MANDATORY,
        persistent: DEFAULT_PERSISTENT,
        retry: default_retry(),
        open: None,
        lost: 0,
    }
}

impl<K> RabbitmqSink<K> {
    /// The broker's URL (`${VAR}` resolved at open; the password is never logged). Default
    /// [`DEFAULT_URL`]: `RABBITMQ_URL`, else `amqp://guest:guest@127.0.0.1:5672/%2f`.
    ///
    /// ```
    /// let sink = etl::sink::rabbitmq("orders").url("amqp://etl:secret@rabbit:5672/%2f");
    /// assert!(!format!("{sink:?}").contains("secret"));
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// The exchange to publish to (`${VAR}` resolved at open; it must exist). Default
    /// [`DEFAULT_EXCHANGE`], the default exchange.
    ///
    /// ```
    /// let sink = etl::sink::rabbitmq("order.created").exchange("events");
    /// ```
    pub fn exchange(mut self, exchange: impl Into<String>) -> Self {
        self.exchange = exchange.into();
        self
    }

    /// Publish with `mandatory`: a message no queue takes is returned and published again,
    /// then fails the commit. Default [`DEFAULT_MANDATORY`] (true); false lets the broker drop
    /// unroutable messages silently.
    ///
    /// ```
    /// let sink = etl::sink::rabbitmq("orders").mandatory(false);
    /// ```
    pub fn mandatory(mut self, yes: bool) -> Self {
        self.mandatory = yes;
        self
    }

    /// Publish persistent messages (`delivery_mode` 2). Default [`DEFAULT_PERSISTENT`] (true).
    ///
    /// ```
    /// let sink = etl::sink::rabbitmq("orders").persistent(false);
    /// ```
    pub fn persistent(mut self, yes: bool) -> Self {
        self.persistent = yes;
        self
    }

    /// How messages the broker nacked or returned are published again within one commit.
    /// Default: [`default_retry`] (5 retries from 100 ms, at most 5 s apart, with jitter).
    ///
    /// ```
    /// let sink = etl::sink::rabbitmq("orders").retry(etl::pipeline::RetryPolicy::never());
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    fn component(&self) -> String {
        format!("rabbitmq sink {}", crate::config::display(&self.url))
    }

    async fn ensure_open(&mut self) -> Result<&mut Open, ConnectorError> {
        if self.open.as_ref().is_some_and(|o| o.broken) {
            if let Some(old) = self.open.take() {
                // What it published and never heard confirmed may or may not be in the broker:
                // the commit that follows must not count it as durable.
                self.lost += old.unconfirmed();
                tracing::info!(exchange = %self.exchange, unconfirmed = old.unconfirmed(), "reconnecting the rabbitmq sink");
                tokio::spawn(old.close());
            }
        }
        if self.open.is_none() {
            let component = self.component();
            let exchange = crate::config::interpolate(&self.exchange).map_err(|e| ConnectorError::permanent(component.clone(), e))?;
            let settings = Settings {
                url: &self.url,
                exchange: &exchange,
                mandatory: self.mandatory,
                persistent: self.persistent,
                component: &component,
            };
            self.open = Some(Open::open(&settings).await?);
            tracing::debug!(exchange = %exchange, "rabbitmq sink opened");
        }
        self.open.as_mut().ok_or_else(|| ConnectorError::permanent("rabbitmq sink", "not open (bug)"))
    }
}

impl<T: Sync, K: RoutingKey<T>> Sink<T> for RabbitmqSink<K> {
    fn describe(&self) -> String {
        format!("rabbitmq sink exchange `{}` routing key {}", crate::config::display(&self.exchange), self.key.describe())
    }

    async fn open(&mut self, _ctx: SinkContext) -> Result<(), ConnectorError> {
        let component = self.component();
        self.key.resolve().map_err(|e| ConnectorError::permanent(component, e))?;
        self.ensure_open().await.map(|_| ())
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        let component = self.component();
        let mut messages = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        for (i, record) in records.iter().enumerate() {
            match self.key.message(record) {
                Ok((key, body)) => match lapin::types::ShortString::try_new(key) {
                    Ok(key) => messages.push((key, body)),
                    Err(e) => rejected.push((i, format!("the routing key is too long: {e}"))),
                },
                Err(reason) => rejected.push((i, reason)),
            }
        }
        let open = self.ensure_open().await?;
        for (key, body) in messages {
            if let Err(e) = open.publish(key, body).await {
                return Err(crate::rabbitmq::connector_error(&component, "publish", &e));
            }
        }
        Ok(Written::rejecting(rejected))
    }

    async fn commit(&mut self) -> Result<(), ConnectorError> {
        let component = self.component();
        let retry = self.retry.clone();
        let lost = std::mem::take(&mut self.lost);
        let Some(open) = self.open.as_mut() else {
            return match lost {
                0 => Ok(()),
                n => {
                    Err(ConnectorError::retryable(component, format!("{n} message(s) published on a lost connection were never confirmed")))
                }
            };
        };
        let result = open.settle(&retry, &component).await;
        let result = match (result, lost) {
            (Ok(_), n) if n > 0 => Err(ConnectorError::retryable(
                component,
                format!("{n} message(s) published on a lost connection were never confirmed; the batches are written again"),
            )),
            (result, _) => result,
        };
        if result.is_err() {
            open.clear();
        }
        result.map(|confirmed| tracing::debug!(confirmed, "rabbitmq sink commit: every message confirmed"))
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(open) = self.open.take() {
            open.close().await;
        }
        Ok(())
    }
}
