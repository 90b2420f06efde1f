//! What the RabbitMQ source and sink share (feature `rabbitmq`): the broker's URL, opening a
//! connection, declaring a queue, an exchange and a binding, and the classes of lapin's
//! errors (whether a retry, or a new connection, can help).
//!
//! Both connectors talk AMQP 0-9-1 through [lapin](https://docs.rs/lapin) on the pipeline's
//! tokio runtime. Neither uses lapin's automatic recovery: the source reconnects on its own
//! (see [`crate::source::rabbitmq`]) because a delivery tag belongs to the channel that
//! delivered it, and an acknowledgement of a dead channel's delivery must never be sent on a
//! new one.

use crate::config::interpolate;
use crate::error::ConnectorError;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ErrorKind, ExchangeKind};

/// The default broker URL: `RABBITMQ_URL`, else the local broker with RabbitMQ's default
/// credentials and virtual host (`%2f` is `/`).
///
/// ```
/// assert_eq!(etl::rabbitmq::DEFAULT_URL, "${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}");
/// ```
pub const DEFAULT_URL: &str = "${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}";

/// The default exchange type when the source declares an exchange.
///
/// ```
/// assert_eq!(etl::rabbitmq::DEFAULT_EXCHANGE_TYPE, "direct");
/// ```
pub const DEFAULT_EXCHANGE_TYPE: &str = "direct";

/// Open a connection to the broker at `url` (`${VAR}` resolved here). A URL that cannot be
/// resolved or parsed, refused credentials or an unknown virtual host are permanent errors; a
/// broker that does not answer is retryable.
pub(crate) async fn connect(url: &str, component: &str) -> Result<Connection, ConnectorError> {
    let resolved = interpolate(url).map_err(|e| ConnectorError::permanent(component.to_owned(), e))?;
    let name = format!("etl {component}");
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(&resolved, properties)
        .await
        .map_err(|e| connector_error(component, &format!("cannot connect to {}", crate::config::redact(&resolved)), &e))
}

/// A lapin error as a [`ConnectorError`] on `component`, with what was being done.
pub(crate) fn connector_error(component: &str, what: &str, error: &lapin::Error) -> ConnectorError {
    let message = format!("{what}: {error}");
    if is_permanent(error) {
        ConnectorError::permanent(component.to_owned(), message)
    } else {
        ConnectorError::retryable(component.to_owned(), message)
    }
}

/// Whether no retry can help: the broker refused access, or the queue or exchange does not
/// exist or was declared with other arguments, or the URL is wrong. Lost connections, closed
/// channels and the broker's hard errors (a restart forces connections closed) are
/// retryable.
///
/// ```
/// # // The classes are checked against a live broker in tests/rabbitmq.rs.
/// let io = lapin::Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
/// assert!(!etl::rabbitmq::is_permanent(&io));
/// ```
pub fn is_permanent(error: &lapin::Error) -> bool {
    match error.kind() {
        ErrorKind::ProtocolError(e) => {
            matches!(
                e.kind(),
                AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED | AMQPSoftError::NOTFOUND | AMQPSoftError::PRECONDITIONFAILED)
            ) || matches!(e.kind(), AMQPErrorKind::Hard(h) if matches!(h, lapin::protocol::AMQPHardError::NOTALLOWED))
        }
        ErrorKind::AuthProviderError(_) | ErrorKind::InvalidProtocolVersion(_) => true,
        ErrorKind::IOError(io) => {
            // lapin reports a malformed URL as an I/O error of kind `InvalidInput`.
            io.kind() == std::io::ErrorKind::InvalidInput
        }
        _ => false,
    }
}

/// What to declare before consuming: the queue (durable), an exchange (durable, of
/// `exchange_type`) and the binding between them with `routing_key`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Topology {
    /// Declare the queue and the exchange (when false, only check that the queue exists).
    pub declare: bool,
    pub exchange: Option<String>,
    pub exchange_type: Option<String>,
    pub routing_key: Option<String>,
    /// Extra arguments of the queue's declaration (`x-queue-type`, ...).
    pub queue_arguments: FieldTable,
}

/// The exchange kind named `name` (`direct`, `fanout`, `topic`, `headers`, or a plugin's).
pub(crate) fn exchange_kind(name: &str) -> ExchangeKind {
    match name {
        "direct" => ExchangeKind::Direct,
        "fanout" => ExchangeKind::Fanout,
        "topic" => ExchangeKind::Topic,
        "headers" => ExchangeKind::Headers,
        other => ExchangeKind::Custom(other.to_owned()),
    }
}

/// Declare (or only check) `queue` and what `topology` asks for; returns the number of
/// messages ready in the queue.
pub(crate) async fn declare(channel: &Channel, queue: &str, topology: &Topology, component: &str) -> Result<u32, ConnectorError> {
    let options = if topology.declare { QueueDeclareOptions::durable() } else { QueueDeclareOptions::default().passive() };
    let arguments = if topology.declare { topology.queue_arguments.clone() } else { FieldTable::default() };
    let name = short(queue, "queue name", component)?;
    let declared = channel.queue_declare(name.clone(), options, arguments).await.map_err(|e| {
        let what = if topology.declare { format!("cannot declare queue `{queue}`") } else { format!("queue `{queue}` (declare = false)") };
        connector_error(component, &what, &e)
    })?;
    // The binding is part of the declaration: with `declare = false` the exchange is only
    // checked, and the queue's bindings are the broker's business.
    if let Some(exchange) = topology.exchange.as_deref().filter(|e| !e.is_empty()) {
        let kind = exchange_kind(topology.exchange_type.as_deref().unwrap_or(DEFAULT_EXCHANGE_TYPE));
        let options = if topology.declare {
            ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() }
        } else {
            ExchangeDeclareOptions { passive: true, ..ExchangeDeclareOptions::default() }
        };
        let exchange_name = short(exchange, "exchange name", component)?;
        channel
            .exchange_declare(exchange_name.clone(), kind, options, FieldTable::default())
            .await
            .map_err(|e| connector_error(component, &format!("exchange `{exchange}`"), &e))?;
        if !topology.declare {
            return Ok(declared.message_count());
        }
        let key = topology.routing_key.clone().unwrap_or_default();
        channel
            .queue_bind(name, exchange_name, short(&key, "routing key", component)?, QueueBindOptions::default(), FieldTable::default())
            .await
            .map_err(|e| connector_error(component, &format!("cannot bind queue `{queue}` to exchange `{exchange}` with `{key}`"), &e))?;
    }
    Ok(declared.message_count())
}

/// `text` as an AMQP short string (a queue, exchange or routing key name: at most 255
/// bytes); a longer one is a permanent error naming `what`.
pub(crate) fn short(text: &str, what: &str, component: &str) -> Result<lapin::types::ShortString, ConnectorError> {
    lapin::types::ShortString::try_new(text)
        .map_err(|_| ConnectorError::permanent(component.to_owned(), format!("the {what} `{text}` is longer than AMQP's 255 bytes")))
}
