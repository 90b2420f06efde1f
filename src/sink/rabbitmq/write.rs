//! The I/O of the RabbitMQ sink: a channel in confirm mode, the publishes of `write`, and the
//! confirms `commit` waits for (nacked and returned messages published again).

use crate::error::ConnectorError;
use crate::rabbitmq::{connect, connector_error, short};
use crate::retry::RetryPolicy;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, PublisherConfirm};

/// A message published and not yet confirmed.
struct Pending {
    routing_key: ShortString,
    body: Vec<u8>,
    confirm: PublisherConfirm,
}

/// Why a message was not confirmed.
enum Unconfirmed {
    /// Nacked or returned by the broker: publishing it again may work.
    Refused(String),
    /// The channel or the connection failed.
    Lost(lapin::Error),
}

/// The open connection of the sink and what it published since the last commit.
pub(super) struct Open {
    connection: Connection,
    channel: Channel,
    exchange: ShortString,
    options: BasicPublishOptions,
    properties: BasicProperties,
    pending: Vec<Pending>,
    /// The channel failed: the next write opens another one; the commit fails.
    pub broken: bool,
}

/// What opening needs.
pub(super) struct Settings<'a> {
    pub url: &'a str,
    pub exchange: &'a str,
    pub mandatory: bool,
    pub persistent: bool,
    pub component: &'a str,
}

impl Open {
    /// Connect, open a channel in confirm mode, and check that the exchange exists.
    pub(super) async fn open(settings: &Settings<'_>) -> Result<Open, ConnectorError> {
        let component = settings.component;
        let connection = connect(settings.url, component).await?;
        let channel = connection.create_channel().await.map_err(|e| connector_error(component, "cannot open a channel", &e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| connector_error(component, "cannot turn publisher confirms on", &e))?;
        let exchange = short(settings.exchange, "exchange name", component)?;
        if !settings.exchange.is_empty() {
            let passive = ExchangeDeclareOptions { passive: true, ..ExchangeDeclareOptions::default() };
            channel
                .exchange_declare(exchange.clone(), lapin::ExchangeKind::Direct, passive, FieldTable::default())
                .await
                .map_err(|e| connector_error(component, &format!("exchange `{}`", settings.exchange), &e))?;
        }
        let mut properties = BasicProperties::default().with_content_type("application/json".into());
        if settings.persistent {
            properties = properties.with_delivery_mode(2);
        }
        let options = BasicPublishOptions { mandatory: settings.mandatory, immediate: false };
        Ok(Open { connection, channel, exchange, options, properties, pending: Vec::new(), broken: false })
    }

    /// Publish one message (without waiting for its confirm).
    pub(super) async fn publish(&mut self, routing_key: ShortString, body: Vec<u8>) -> Result<(), lapin::Error> {
        let result =
            self.channel.basic_publish(self.exchange.clone(), routing_key.clone(), self.options, &body, self.properties.clone()).await;
        match result {
            Ok(confirm) => {
                self.pending.push(Pending { routing_key, body, confirm });
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }

    /// Wait for the confirm of every message published since the last commit; publish again
    /// those the broker nacked or returned (unroutable, with `mandatory`), with backoff, up to
    /// `retry`'s retries. Err: some messages were not confirmed (retryable: the pipeline
    /// writes the uncommitted batches again), or the channel failed.
    pub(super) async fn settle(&mut self, retry: &RetryPolicy, component: &str) -> Result<usize, ConnectorError> {
        let mut delays = retry.delays();
        let mut confirmed = 0;
        loop {
            let pending = std::mem::take(&mut self.pending);
            let mut refused = Vec::new();
            let mut lost = None;
            for p in pending {
                match confirmation(p.confirm.await) {
                    Ok(()) => confirmed += 1,
                    Err(Unconfirmed::Refused(reason)) => refused.push((p.routing_key, p.body, reason)),
                    Err(Unconfirmed::Lost(e)) => lost = lost.or(Some(e)),
                }
            }
            if let Some(e) = lost {
                self.broken = true;
                return Err(connector_error(component, "publisher confirms lost", &e));
            }
            let Some((_, _, first)) = refused.first() else { return Ok(confirmed) };
            let first = first.clone();
            let Some(delay) = delays.next() else {
                let message = format!("{} message(s) not confirmed by the broker after retries: {first}", refused.len());
                return Err(ConnectorError::retryable(component.to_owned(), message));
            };
            tracing::warn!(count = refused.len(), reason = %first, ?delay, "messages nacked or returned by the broker; publishing them again");
            tokio::time::sleep(delay).await;
            for (routing_key, body, _) in refused {
                if let Err(e) = self.publish(routing_key, body).await {
                    return Err(connector_error(component, "publishing again", &e));
                }
            }
        }
    }

    /// Messages published and not yet confirmed.
    pub(super) fn unconfirmed(&self) -> usize {
        self.pending.len()
    }

    /// Forget what is pending (after a failed commit: the pipeline writes it again).
    pub(super) fn clear(&mut self) {
        self.pending.clear();
    }

    /// Close the connection.
    pub(super) async fn close(self) {
        if let Err(e) = self.connection.close(200, "etl sink finished".into()).await {
            tracing::debug!(error = %e, "closing the rabbitmq sink's connection");
        }
    }
}

/// A publisher confirm's outcome.
fn confirmation(result: Result<Confirmation, lapin::Error>) -> Result<(), Unconfirmed> {
    match result {
        Ok(Confirmation::Ack(None)) => Ok(()),
        Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned))) => Err(Unconfirmed::Refused(format!(
            "returned by the broker: {} {} (exchange `{}`, routing key `{}`)",
            returned.reply_code, returned.reply_text, returned.delivery.exchange, returned.delivery.routing_key
        ))),
        Ok(Confirmation::Nack(None)) => Err(Unconfirmed::Refused("nacked by the broker".into())),
        Ok(Confirmation::NotRequested) => Err(Unconfirmed::Refused("the channel is not in confirm mode".into())),
        Err(e) => Err(Unconfirmed::Lost(e)),
    }
}
