//! The I/O of the Kafka sink: a librdkafka `ThreadedProducer` whose delivery callback counts
//! what is still in flight and keeps the failures until the next commit.

use super::encode::fingerprint;
use crate::error::ConnectorError;
use crate::kafka::{connector_error, is_permanent};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// What the delivery callback reports to the sink.
#[derive(Default)]
pub(super) struct Deliveries {
    /// Messages produced and not yet reported.
    in_flight: AtomicU64,
    /// Notified when a report arrives.
    reported: Notify,
    /// Failed deliveries since the last commit.
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<KafkaError>,
    permanent: bool,
    /// Fingerprints of values the broker refused as too large.
    too_large: Vec<u64>,
}

impl Deliveries {
    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The producer's context: librdkafka's logs to `tracing`, delivery reports to [`Deliveries`].
pub(super) struct Context {
    pub deliveries: Arc<Deliveries>,
    pub topic: String,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::kafka::log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, topic = %self.topic, "kafka producer error");
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            let mut failures = self.deliveries.failures();
            failures.count += 1;
            if error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge) {
                failures.too_large.push(fingerprint(message.payload().unwrap_or_default()));
            } else {
                failures.permanent |= is_permanent(error);
                if failures.first.is_none() {
                    failures.first = Some(error.clone());
                }
            }
        }
        self.deliveries.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.deliveries.reported.notify_waiters();
    }
}

/// An open producer.
pub(super) struct Open {
    pub producer: ThreadedProducer<Context>,
    pub deliveries: Arc<Deliveries>,
    pub topic: String,
    pub component: String,
    /// Values the broker refused as too large: a rewrite rejects them.
    pub too_large: HashSet<u64>,
}

/// Why a message could not be handed to the producer.
pub(super) enum SendError {
    /// The message will never be accepted (too large): reject the record.
    Rejected(String),
    /// The write fails.
    Failed(ConnectorError),
}

impl Open {
    /// Hand one message to the producer (waiting while its queue is full).
    pub(super) async fn send(&self, key: Option<&[u8]>, payload: &[u8], headers: Option<&OwnedHeaders>) -> Result<(), SendError> {
        loop {
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic).payload(payload);
            if let Some(key) = key {
                record = record.key(key);
            }
            if let Some(headers) = headers {
                record = record.headers(headers.clone());
            }
            self.deliveries.in_flight.fetch_add(1, Ordering::AcqRel);
            let error = match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((error, _)) => error,
            };
            self.deliveries.in_flight.fetch_sub(1, Ordering::AcqRel);
            match error.rdkafka_error_code() {
                Some(RDKafkaErrorCode::QueueFull) => {
                    // Wait for a delivery report to make room (or a little while).
                    let reported = self.deliveries.reported.notified();
                    let _ = tokio::time::timeout(Duration::from_millis(10), reported).await;
                }
                Some(RDKafkaErrorCode::MessageSizeTooLarge) => {
                    return Err(SendError::Rejected(format!(
                        "the message ({} bytes) is larger than the producer's message.max.bytes: {error}",
                        payload.len()
                    )))
                }
                _ => return Err(SendError::Failed(connector_error(&self.component, "produce", &error))),
            }
        }
    }

    /// Wait for the delivery report of every message handed over, then say how it went.
    pub(super) async fn settle(&mut self) -> Result<(), ConnectorError> {
        // No `flush` here: rust-rdkafka's flush also polls the producer's queue, racing the
        // ThreadedProducer's own polling thread, and measured 5-10 times slower (benches/kafka.rs).
        loop {
            let reported = self.deliveries.reported.notified();
            tokio::pin!(reported);
            reported.as_mut().enable();
            if self.deliveries.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            // A report wakes this up; the timeout only guards against a missed wake-up.
            let _ = tokio::time::timeout(Duration::from_millis(100), reported).await;
        }
        let failures = std::mem::take(&mut *self.deliveries.failures());
        if failures.count == 0 {
            return Ok(());
        }
        let too_large = failures.too_large.len();
        self.too_large.extend(failures.too_large);
        let Some(first) = failures.first else {
            // Only values too large: the rewrite dead-letters them.
            let message =
                format!("the broker refused {too_large} message(s) as too large; they are dead-lettered when the batch is written again");
            tracing::warn!(topic = %self.topic, count = too_large, "messages too large for the broker");
            return Err(ConnectorError::retryable(self.component.clone(), message));
        };
        tracing::warn!(error = %first, topic = %self.topic, failed = failures.count, "deliveries failed after librdkafka's retries");
        let message = format!("{} message(s) not delivered: {first}", failures.count);
        if failures.permanent {
            Err(ConnectorError::permanent(self.component.clone(), message))
        } else {
            Err(ConnectorError::retryable(self.component.clone(), message))
        }
    }

    /// Wait for what is in flight at the end (nothing, after the last commit).
    pub(super) fn flush(&self, timeout: Duration) -> Result<(), ConnectorError> {
        self.producer.flush(timeout).map_err(|e| connector_error(&self.component, "flush", &e))
    }
}
