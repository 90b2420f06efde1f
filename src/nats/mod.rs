//! What the NATS JetStream source, sink and dead-letter queue share: connecting (the URL's
//! `${VAR}` resolved, a name for the server's monitoring), looking up or creating streams and
//! consumers with errors that name them, the classes of async-nats' errors (may a retry help?)
//! and the header names the connectors write.

use crate::config::{interpolate, ConfigError};
use crate::error::ConnectorError;
use async_nats::jetstream;
use std::time::Duration;

/// The default server URL of the NATS connectors: `NATS_URL`, or `nats://127.0.0.1:4222` when
/// it is unset (resolved when the connector opens).
///
/// ```
/// assert_eq!(etl::source::nats::DEFAULT_URL, "${NATS_URL:-nats://127.0.0.1:4222}");
/// ```
pub const DEFAULT_URL: &str = "${NATS_URL:-nats://127.0.0.1:4222}";

/// The header JetStream deduplicates published messages by, within the stream's
/// `duplicate_window`.
pub(crate) const MSG_ID: &str = "Nats-Msg-Id";

/// How long a JetStream API request (stream and consumer lookups, publish acknowledgements)
/// waits for its answer.
pub(crate) const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect to the server at `url` (`${VAR}` resolved): async-nats' client, which reconnects on
/// its own (with backoff) for as long as it lives. `component` names the connector in errors.
pub(crate) async fn connect(url: &str, component: &str) -> Result<async_nats::Client, ConnectorError> {
    let resolved = interpolate(url).map_err(|e: ConfigError| ConnectorError::permanent(component.to_owned(), e))?;
    let options = async_nats::ConnectOptions::new()
        .name(format!("etl {component}"))
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(API_TIMEOUT))
        // Keep trying after the first connection: a server restart must not end a run.
        .retry_on_initial_connect()
        .max_reconnects(None);
    // `retry_on_initial_connect` would wait forever for a server that is not there: the first
    // connection gets a deadline of its own, so that a wrong URL is a start-up error.
    let client = options.connect(resolved.as_str()).await.map_err(|e| {
        ConnectorError::retryable(component.to_owned(), format!("cannot connect to {}: {e}", crate::config::redact(&resolved)))
    })?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while client.connection_state() != async_nats::connection::State::Connected {
        if tokio::time::Instant::now() >= deadline {
            return Err(ConnectorError::retryable(
                component.to_owned(),
                format!("cannot connect to {} within 10 s (is the server running?)", crate::config::redact(&resolved)),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(client)
}

/// A JetStream context on `client` whose requests wait [`API_TIMEOUT`].
pub(crate) fn jetstream(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new().timeout(API_TIMEOUT).build(client)
}

/// The stream `name`, or `None` when the server has no such stream.
pub(crate) async fn lookup_stream(
    js: &jetstream::Context,
    name: &str,
    component: &str,
) -> Result<Option<jetstream::stream::Stream>, ConnectorError> {
    use jetstream::context::GetStreamErrorKind;
    match js.get_stream(name).await {
        Ok(stream) => Ok(Some(stream)),
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(ref api) if api.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) => {
            Ok(None)
        }
        Err(e) => Err(api_error(component, &format!("cannot look up stream `{name}`"), e)),
    }
}

/// The stream `name`: looked up, or created capturing `subjects` when `create` is set.
/// A missing stream without `create` is a permanent error naming it.
pub(crate) async fn stream(
    js: &jetstream::Context,
    name: &str,
    subjects: &[String],
    create: bool,
    component: &str,
) -> Result<jetstream::stream::Stream, ConnectorError> {
    if let Some(stream) = lookup_stream(js, name, component).await? {
        return Ok(stream);
    }
    if !create {
        return Err(missing_stream(name, component));
    }
    let config = jetstream::stream::Config { name: name.to_owned(), subjects: subjects.to_vec(), ..Default::default() };
    let created = js
        .get_or_create_stream(config)
        .await
        .map_err(|e| ConnectorError::permanent(component.to_owned(), format!("cannot create stream `{name}`: {e}")))?;
    tracing::info!(stream = name, subjects = ?subjects, "created JetStream stream");
    Ok(created)
}

/// The start-up error of a stream that does not exist.
pub(crate) fn missing_stream(name: &str, component: &str) -> ConnectorError {
    ConnectorError::permanent(component.to_owned(), format!("stream `{name}` does not exist (create it, or set `create = true`)"))
}

/// Whether an async-nats error's text says the server (or the path to it) failed for now: a
/// timeout, no responders while JetStream restarts, a closed connection.
fn transient(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    ["timed out", "timeout", "no responders", "connection", "broken pipe", "disconnected", "request", "unavailable"]
        .iter()
        .any(|t| text.contains(t))
}

/// A connector error for a failed JetStream call: retryable when a retry can help.
pub(crate) fn api_error(component: &str, action: &str, error: impl std::fmt::Display) -> ConnectorError {
    let text = error.to_string();
    let message = format!("{action}: {text}");
    if transient(&text) {
        ConnectorError::retryable(component.to_owned(), message)
    } else {
        ConnectorError::permanent(component.to_owned(), message)
    }
}

/// How an entry's text travels in a header value: bytes outside printable ASCII (and `%`)
/// as `%XX`, so that newlines, carriage returns and non-ASCII survive the header block.
///
/// ```ignore
/// assert_eq!(encode_header("a\nb%"), "a%0Ab%25");
/// ```
pub(crate) fn encode_header(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of a header value written by [`encode_header`] (a malformed escape is kept as is).
pub(crate) fn decode_header(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The description of a NATS source (`nats ORDERS/etl-orders`): its stream and durable
/// consumer. Dead-letter entries carry it as their source; [`parse_origin`] reads it back.
pub(crate) fn origin(stream: &str, durable: &str) -> String {
    format!("nats {stream}/{durable}")
}

/// The stream of a NATS source's description ([`origin`]), if `source` is one.
pub(crate) fn parse_origin(source: &str) -> Option<&str> {
    let rest = source.strip_prefix("nats ")?;
    let (stream, _durable) = rest.split_once('/')?;
    (!stream.is_empty()).then_some(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_round_trip_any_text() {
        for text in ["plain", "a\nb\r\nc", "100%", "naïve — ünïcode", "%zz", "", "%4", "end%"] {
            let encoded = encode_header(text);
            assert!(encoded.bytes().all(|b| (0x20..0x7f).contains(&b)), "{encoded}");
            assert_eq!(decode_header(&encoded), text, "{encoded}");
        }
        assert_eq!(encode_header("a\nb%"), "a%0Ab%25");
    }

    #[test]
    fn origins_name_the_stream() {
        assert_eq!(origin("ORDERS", "etl"), "nats ORDERS/etl");
        assert_eq!(parse_origin("nats ORDERS/etl"), Some("ORDERS"));
        assert_eq!(parse_origin("file in.jsonl"), None);
        assert_eq!(parse_origin("nats /x"), None);
    }

    #[test]
    fn transient_errors_are_retryable() {
        assert!(api_error("c", "publish", "timed out").is_retryable());
        assert!(api_error("c", "publish", "no responders").is_retryable());
        assert!(!api_error("c", "create", "invalid stream name").is_retryable());
    }
}
