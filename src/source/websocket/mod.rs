//! `websocket`: a WebSocket source (`ws://`, and `wss://` through rustls), with subscriptions,
//! keep-alive pings, authentication checks and reconnection.
//!
//! The source opens the connection with tokio-tungstenite (the configured headers on the
//! handshake request), sends the [subscribe messages](WebSocketSource::subscribe) in order,
//! then reads messages. Every text or binary message (fragmented ones reassembled by the
//! WebSocket layer) becomes one record, or one per element of a top-level JSON array with
//! [`split_arrays`](WebSocketSource::split_arrays). Ping frames are answered with pongs, a
//! close frame from the server is answered with a close frame, and pongs and pings count as
//! traffic for [`idle_timeout`](WebSocketSource::idle_timeout).
//!
//! ```no_run
//! use etl::prelude::*;
//! # async fn demo() -> etl::Result<()> {
//! let out = etl::sink::collect::<Json>();
//! let source = etl::source::websocket::<Json>("wss://stream.example.com/feed")
//!     .header("Authorization", "Bearer ${TOKEN}")
//!     .subscribe(serde_json::json!({"action": "subscribe", "channel": "trades"}))
//!     .split_arrays(true)
//!     .batch_size(500);
//! let report = Pipeline::from(source).to(out.sink()).run().await?;
//! println!("{} messages", report.records_in);
//! # Ok(()) }
//! ```
//!
//! # Guarantee: at most once across reconnects
//!
//! WebSocket has no acknowledgement and no resume position: a message is the server's to
//! forget once it is written to the socket. The source hands each message it read to the
//! pipeline exactly once, and the pipeline delivers it at least once (or dead-letters it), but
//! what the server sent while the connection was down, and what was read but not yet written
//! by the sink when the process dies, is **lost** unless the server replays it (many feeds
//! send a snapshot after each subscribe: the subscribe messages are re-sent after every
//! reconnect for that reason). Batches carry no acknowledgement that a server could hear; a
//! graceful shutdown (signal or cancellation) still flushes and writes the partial batch; the
//! messages the connection's task read ahead of the batcher (at most 4 reads, see
//! [Tasks](#tasks)) are dropped with the source, like those still in the socket. Use a broker
//! (Kafka, SQS, NATS) in front of the sink where losing a message matters.
//!
//! # Metadata
//!
//! Beside each record, never inside it: [`Meta::position`](crate::record::Meta::position) is
//! [`Position::Sequence(n)`](crate::record::Position::Sequence), the 1-based number of the
//! data message in this run of the source, counted across reconnects (the elements of one
//! split array share their message's number); [`Meta::raw`](crate::record::Meta::raw) is the
//! message's exact bytes (the element's, for a split array); the
//! [`Extra`](crate::record::Extra) holds the frame kind as `event_type` (`"text"` or
//! `"binary"`), the time the message was read as `timestamp` (`received_at`), and two headers:
//! `url` (the URL as configured, `${VAR}` not resolved) and `connection` (the 1-based number
//! of the connection that carried the message, which grows by one with each reconnect). The
//! messages of one read (every frame already received when the source looked, up to 1 024
//! frames or 1 MiB) share one `Extra`, and so one `timestamp`: the time that read began.
//!
//! # Tasks
//!
//! The connection (handshake, framing, pings, reconnects) runs in a task of its own, which
//! hands each read's messages to the pipeline's task; the pipeline decodes them. On a
//! multi-threaded runtime the two halves of a message's cost run on two cores; the task stops
//! when the pipeline drops the source.
//!
//! # Decoding
//!
//! With [`DataFormat::Json`] (the default) a message (text or binary) is JSON decoded into
//! `T`. With [`DataFormat::Text`] it is not parsed: the record is decoded from `{"data": "<the
//! text>"}`, so `T` is [`Json`](crate::Json) or a struct with a `data: String` field. These
//! messages become a [`FailureKind::Decode`](crate::batch::FailureKind::Decode) failure that
//! the pipeline dead-letters with its exact bytes while the stream goes on:
//!
//! * a message that does not decode into `T` (bad JSON, wrong type; an array element that
//!   does not: that element alone);
//! * a binary message that is not UTF-8 with `data_format = "text"`;
//! * a message over [`max_message_bytes`](WebSocketSource::max_message_bytes) (default 1 MiB):
//!   the dead letter keeps its first `max_message_bytes` bytes and the error gives its size.
//!   The WebSocket layer itself refuses (and never buffers) a message over 8 ×
//!   `max_message_bytes`: the server then gets a close frame 1009 (message too big), a dead
//!   letter without payload records the loss, and the source reconnects.
//!
//! A text frame that is not UTF-8 breaks the WebSocket protocol: tungstenite closes the
//! connection (1007) and the source reconnects.
//!
//! # Keep-alive, reconnection and authentication
//!
//! A ping is sent every [`ping_interval`](WebSocketSource::ping_interval) (20 s); no pong
//! within [`pong_timeout`](WebSocketSource::pong_timeout) (10 s) means the connection is dead.
//! A dead, broken, refused or closed connection is followed by a reconnect after a delay that
//! grows exponentially from [`reconnect_delay`](WebSocketSource::reconnect_delay) (×2, capped
//! at 60 s or the base if larger) with jitter. [`max_reconnects`](WebSocketSource::max_reconnects)
//! counts **consecutive** failures: the count resets when a connection delivers a message (or
//! its `auth_ack`) or stays up 60 s. A handshake answered with 408, 429 or 5xx is retried;
//! another status (401, 403, 404) ends the run with an error naming it.
//!
//! With [`auth_ack`](WebSocketSource::auth_ack), each connection must receive a message
//! matching it within [`auth_ack_timeout`](WebSocketSource::auth_ack_timeout) (10 s) of the
//! handshake (the subscribe messages, which carry the credentials, are sent first); the
//! matching message is not a record. A message matching
//! [`auth_fail`](WebSocketSource::auth_fail) in that window, or no `auth_ack` in time, ends
//! the run with an error saying so: no reconnect loop against credentials that do not work. A
//! pattern that is a JSON object matches a JSON message holding at least its fields with equal
//! values (or an array holding such an element); any other pattern matches a message whose
//! text contains it.
//!
//! # Shutdown
//!
//! On shutdown the source stops reading at once (it does not wait for the next message), the
//! partial batch is flushed and the connection dropped.

mod arena;
mod decode;
mod stream;
#[cfg(test)]
mod tests;

pub use super::DataFormat;

use super::{BatchStream, Source, SourceContext};
use crate::batch::{BatchConfig, BatchOptions};
use crate::config::Secret;
use crate::record::Record;
use std::marker::PhantomData;
use std::time::Duration;

/// The default of [`WebSocketSource::ping_interval`]: 20 s.
///
/// ```
/// assert_eq!(etl::source::websocket::DEFAULT_PING_INTERVAL, std::time::Duration::from_secs(20));
/// ```
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(20);

/// The default of [`WebSocketSource::pong_timeout`]: 10 s.
///
/// ```
/// assert_eq!(etl::source::websocket::DEFAULT_PONG_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(10);

/// The default of [`WebSocketSource::reconnect`]: reconnect after a failure or a close.
///
/// ```
/// assert!(etl::source::websocket::DEFAULT_RECONNECT);
/// ```
pub const DEFAULT_RECONNECT: bool = true;

/// The default of [`WebSocketSource::reconnect_delay`]: 3 s.
///
/// ```
/// assert_eq!(etl::source::websocket::DEFAULT_RECONNECT_DELAY, std::time::Duration::from_secs(3));
/// ```
pub const DEFAULT_RECONNECT_DELAY: Duration = Duration::from_secs(3);

/// The default of [`WebSocketSource::max_reconnects`].
///
/// ```
/// assert_eq!(etl::source::websocket::DEFAULT_MAX_RECONNECTS, 10);
/// ```
pub const DEFAULT_MAX_RECONNECTS: u32 = 10;

/// The default of [`WebSocketSource::auth_ack_timeout`]: 10 s.
///
/// ```
/// assert_eq!(etl::source::websocket::DEFAULT_AUTH_ACK_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const DEFAULT_AUTH_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The default of [`WebSocketSource::max_message_bytes`]: 1 MiB.
///
/// ```
/// assert_eq!(etl::source::websocket::DEFAULT_MAX_MESSAGE_BYTES, 1 << 20);
/// ```
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The default of [`WebSocketSource::split_arrays`]: a JSON array is one record.
///
/// ```
/// assert!(!etl::source::websocket::DEFAULT_SPLIT_ARRAYS);
/// ```
pub const DEFAULT_SPLIT_ARRAYS: bool = false;

/// A message sent after each connection (see [`WebSocketSource::subscribe`]): a JSON value
/// (sent as compact JSON text) or a text sent as it is. `${VAR}` is resolved at start-up, in
/// every string of a JSON value.
///
/// ```
/// use etl::source::websocket::SubscribeMessage;
/// let json: SubscribeMessage = serde_json::json!({"op": "subscribe"}).into();
/// let text: SubscribeMessage = "SUB trades".into();
/// assert_ne!(json, text);
/// ```
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum SubscribeMessage {
    /// A JSON value, sent as compact JSON text.
    Json(serde_json::Value),
    /// A text sent as it is.
    Text(String),
}

impl std::fmt::Debug for SubscribeMessage {
    /// Never the content: subscribe messages often carry credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubscribeMessage::Json(_) => f.write_str("Json(***)"),
            SubscribeMessage::Text(_) => f.write_str("Text(***)"),
        }
    }
}

impl From<serde_json::Value> for SubscribeMessage {
    fn from(value: serde_json::Value) -> Self {
        SubscribeMessage::Json(value)
    }
}

impl From<&serde_json::Value> for SubscribeMessage {
    fn from(value: &serde_json::Value) -> Self {
        SubscribeMessage::Json(value.clone())
    }
}

impl From<String> for SubscribeMessage {
    fn from(text: String) -> Self {
        SubscribeMessage::Text(text)
    }
}

impl From<&str> for SubscribeMessage {
    fn from(text: &str) -> Self {
        SubscribeMessage::Text(text.to_owned())
    }
}

impl From<&String> for SubscribeMessage {
    fn from(text: &String) -> Self {
        SubscribeMessage::Text(text.clone())
    }
}

/// A WebSocket source. See [`websocket()`] and the [module docs](self).
#[derive(Debug)]
pub struct WebSocketSource<T> {
    url: String,
    /// Header names and value templates (secrets: `Debug` shows `***`).
    headers: Vec<(String, Secret)>,
    subscribe: Vec<SubscribeMessage>,
    data_format: DataFormat,
    split_arrays: bool,
    ping_interval: Duration,
    pong_timeout: Duration,
    reconnect: bool,
    reconnect_delay: Duration,
    max_reconnects: u32,
    idle_timeout: Option<Duration>,
    auth_ack: Option<String>,
    auth_fail: Option<String>,
    auth_ack_timeout: Duration,
    max_message_bytes: usize,
    ca_file: Option<String>,
    batching: BatchConfig,
    _record: PhantomData<fn() -> T>,
}

/// Read the WebSocket at `url` (`ws://` or `wss://`; `${VAR}` resolved at start-up).
///
/// ```
/// use etl::prelude::*;
/// use std::time::Duration;
/// let src = etl::source::websocket::<Json>("wss://stream.example.com/feed")
///     .subscribe(serde_json::json!({"action": "subscribe", "channel": "trades"}))
///     .ping_interval(Duration::from_secs(20))
///     .max_reconnects(10)
///     .batch_size(1000);
/// assert_eq!(src.describe(), "websocket wss://stream.example.com/feed");
/// ```
pub fn websocket<T>(url: impl Into<String>) -> WebSocketSource<T> {
    WebSocketSource {
        url: url.into(),
        headers: Vec::new(),
        subscribe: Vec::new(),
        data_format: DataFormat::Json,
        split_arrays: DEFAULT_SPLIT_ARRAYS,
        ping_interval: DEFAULT_PING_INTERVAL,
        pong_timeout: DEFAULT_PONG_TIMEOUT,
        reconnect: DEFAULT_RECONNECT,
        reconnect_delay: DEFAULT_RECONNECT_DELAY,
        max_reconnects: DEFAULT_MAX_RECONNECTS,
        idle_timeout: None,
        auth_ack: None,
        auth_fail: None,
        auth_ack_timeout: DEFAULT_AUTH_ACK_TIMEOUT,
        max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        ca_file: None,
        batching: BatchConfig::default(),
        _record: PhantomData,
    }
}

impl<T> WebSocketSource<T> {
    /// Send a header with the handshake request (of every connection). `${VAR}` in the value is
    /// resolved at start-up; values are secrets, never logged. Default: none.
    ///
    /// ```
    /// let src = etl::source::websocket::<etl::Json>("ws://localhost/feed").header("Authorization", "Bearer ${TOKEN}");
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), Secret::new(value)));
        self
    }

    /// Send this message after every connection (the first and each reconnect), after the ones
    /// added before it: a JSON value or a text (see [`SubscribeMessage`]). Default: none.
    ///
    /// ```
    /// let src = etl::source::websocket::<etl::Json>("ws://localhost/feed")
    ///     .subscribe(serde_json::json!({"action": "auth", "key": "${API_KEY}"}))
    ///     .subscribe(r#"{"action":"subscribe","trades":["AAPL"]}"#);
    /// ```
    pub fn subscribe(mut self, message: impl Into<SubscribeMessage>) -> Self {
        self.subscribe.push(message.into());
        self
    }

    /// How messages are decoded. Default [`DataFormat::Json`].
    ///
    /// ```
    /// use etl::source::DataFormat;
    /// let src = etl::source::websocket::<etl::Json>("ws://localhost/feed").data_format(DataFormat::Text);
    /// ```
    pub fn data_format(mut self, format: DataFormat) -> Self {
        self.data_format = format;
        self
    }

    /// With [`DataFormat::Json`], a message that is a JSON array becomes one record per element
    /// (an empty array, none). Default [`DEFAULT_SPLIT_ARRAYS`] (false: the array is one
    /// record).
    ///
    /// ```
    /// let src = etl::source::websocket::<etl::Json>("ws://localhost/feed").split_arrays(true);
    /// ```
    pub fn split_arrays(mut self, yes: bool) -> Self {
        self.split_arrays = yes;
        self
    }

    /// Send a ping this often; [`Duration::ZERO`] sends none. Default
    /// [`DEFAULT_PING_INTERVAL`] (20 s).
    ///
    /// ```
    /// let src = etl::source::websocket::<etl::Json>("ws://localhost/feed").ping_interval(std::time::Duration::from_secs(5));
    /// ```
    pub fn ping_interval(mut self, every: Duration) -> Self {
        self.ping_interval = every;
        self
    }

    /// A ping not answered by a pong within this long means the connection is dead: the source
    /// reconnects. Default [`DEFAULT_PONG_TIMEOUT`] (10 s).
    ///
    /// ```
    /// let src = etl::source::websocket::<etl::Json>("ws://localhost/feed").pong_timeout(std::time::Duration::from_secs(3));
    /// ```
    pub fn pong_timeout(mut self, timeout: Duration) -> Self {
        self.pong_timeout = timeout;
        self
    }

    /// Reconnect after a failure or a close. Default [`DEFAULT_RECONNECT`] (true). When false,
    /// a close by the server ends the run normally and a failure ends it with an error.
    ///
    /// ```
    /// let src = etl::source::websocket::<etl::Json>("ws://localhost/feed").reconnect(false);
    /// ```
    pub fn reconnect(mut self, yes: bool) -> Self {
        self.reconnect = yes;
        self
    }

    /// The first reconnect delay, doubled after each consecutive failure (with jitter, capped
    /// at 60 s). Default [`DEFAULT_RECONNECT_DELAY`] (3 s).
    ///
    /// ```
    /// let src = etl::source::websocket::<etl::Json>("ws://localhost/feed").reconnect_delay(std::time::Duration::from_millis(500));
    /// ```
    pub fn reconnect_delay(mut self, delay: Duration) -> Self {
        self.reconnect_delay = delay;
        self
    }

    /// Consecutive failed connections (refused, or closed before delivering a message)
    /// tolerated before the run ends with an error; reset by a connection that delivers a
    /// message. Default [`DEFAULT_MAX_RECONNECTS`] (10).
    ///
    /// ```
    /// let src = etl::source::websocket::<etl::Json>("ws://localhost/feed").max_reconnects(3);
    /// ```
    pub fn max_reconnects(mut self, n: u32) -> Self {
        self.max_reconnects = n;
        self
    }

    /// Reconnect when no frame at all (message, ping or pong) arrives for this long. Default
    /// `None`: silence is normal (the pings still detect a dead connection).
    ///
    /// ```
    /// let src = etl::source::websocket::<etl::Json>("ws://localhost/feed").idle_timeout(Some(std::time::Duration::from_secs(60)));
    /// ```
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Each connection must receive a message matching this pattern within
    /// [`auth_ack_timeout`](Self::auth_ack_timeout), or the run ends with an authentication
    /// error (see the [module docs](self#keep-alive-reconnection-and-authentication) for the
    /// matching). `${VAR}` resolved. Default: none (no acknowledgement awaited).
    ///
    /// ```
    /// let src = etl::source::websocket::<etl::Json>("ws://localhost/feed").auth_ack(r#"{"status": "authenticated"}"#);
    /// ```
    pub fn auth_ack(mut self, pattern: impl Into<String>) -> Self {
        self.auth_ack = Some(pattern.into());
        self
    }

    /// A message matching this pattern in a connection's authentication window (until its
    /// `auth_ack`, or for `auth_ack_timeout` without one) ends the run with an authentication
    /// error instead of reconnecting. `${VAR}` resolved. Default: none.
    ///
    /// ```
    /// let src = etl::source::websocket::<etl::Json>("ws://localhost/feed").auth_fail("auth failed");
    /// ```
    pub fn auth_fail(mut self, pattern: impl Into<String>) -> Self {
        self.auth_fail = Some(pattern.into());
        self
    }

    /// How long a connection waits for its `auth_ack` (and watches for `auth_fail`). Default
    /// [`DEFAULT_AUTH_ACK_TIMEOUT`] (10 s).
    ///
    /// ```
    /// let src = etl::source::websocket::<etl::Json>("ws://localhost/feed").auth_ack_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn auth_ack_timeout(mut self, timeout: Duration) -> Self {
        self.auth_ack_timeout = timeout;
        self
    }

    /// The largest message accepted, in bytes. Default [`DEFAULT_MAX_MESSAGE_BYTES`] (1 MiB).
    /// A larger one is dead-lettered with its first `max_message_bytes` bytes and the stream
    /// goes on; one over 8 times this is refused by the WebSocket layer (see the
    /// [module docs](self#decoding)).
    ///
    /// ```
    /// let src = etl::source::websocket::<etl::Json>("ws://localhost/feed").max_message_bytes(64 * 1024);
    /// ```
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Trust the certificates in this PEM file for `wss://`, besides the Mozilla roots
    /// (webpki-roots). Default: the Mozilla roots only.
    ///
    /// ```
    /// let src = etl::source::websocket::<etl::Json>("wss://feed.internal/ws").ca_file("/etc/ssl/internal-ca.pem");
    /// ```
    pub fn ca_file(mut self, path: impl Into<String>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
}

impl<T> BatchOptions for WebSocketSource<T> {
    fn batching(&mut self) -> &mut BatchConfig {
        &mut self.batching
    }
}

impl<T: Record> Source for WebSocketSource<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("websocket {}", crate::config::display(&self.url))
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        stream::open(self, ctx).await
    }

    fn dead_letter_decoder(&self) -> Option<super::DeadLetterDecoder<T>> {
        (self.data_format == DataFormat::Json).then(super::json_decoder::<T>)
    }
}
