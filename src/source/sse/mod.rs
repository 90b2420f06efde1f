//! `sse`: a Server-Sent Events source (`text/event-stream` over HTTP), with reconnection.
//!
//! The source sends `GET url` with `Accept: text/event-stream` and the configured headers, and
//! parses the body with `eventsource-stream` (a leading UTF-8 BOM is stripped first; CRLF, CR
//! and LF line ends, comments and multi-line `data:` follow the SSE spec). Each dispatched event
//! of the wanted type ([`SseSource::event_filter`]) becomes one record; comments, events of other
//! types and events without data produce nothing. An event cut off by a dropped connection (no
//! blank line after it) is discarded; the server sends it again after the reconnect.
//!
//! ```no_run
//! use etl::prelude::*;
//! # async fn demo() -> etl::Result<()> {
//! let out = etl::sink::collect::<Json>();
//! let source = etl::source::sse::<Json>("https://stream.example.com/events")
//!     .header("Authorization", "Bearer ${TOKEN}")
//!     .event_filter("trade")
//!     .batch_size(500);
//! let report = Pipeline::from(source).to(out.sink()).run().await?;
//! println!("{} events", report.records_in);
//! # Ok(()) }
//! ```
//!
//! # Metadata
//!
//! Beside each record, never inside it: [`Meta::position`](crate::record::Meta::position) is
//! [`Position::Id`](crate::record::Position::Id) with the event id (or `Position::None` when
//! the stream has set no id), [`Meta::raw`](crate::record::Meta::raw) is the event's data, and
//! [`Extra::event_type`](crate::record::Extra::event_type) is the event type (`message` when the
//! server gave none).
//!
//! # Decoding
//!
//! With [`DataFormat::Json`] (the default) the data is JSON decoded into `T`. With
//! [`DataFormat::Text`] the data is not parsed: the record is decoded from the object
//! `{"data": "<the data text>"}`, so `T` is [`Json`](crate::Json) or a struct with a `data:
//! String` field. Data that does not decode becomes a
//! [`FailureKind::Decode`](crate::batch::FailureKind::Decode) failure holding the data text: the
//! pipeline dead-letters it and the stream goes on.
//!
//! # Reconnection
//!
//! A refused or failed connection, a 5xx / 408 / 429 status, or a stream that ends or breaks is
//! followed by a reconnect after a delay, sending `Last-Event-ID` = the id of the last event
//! read (the last one handed to the batcher, or skipped by the filter). Delays grow
//! exponentially (×2, capped at 60 s or the base if larger) with jitter from the base delay:
//! [`SseSource::reconnect_delay`], or the server's `retry:` value once it sent one (note:
//! `eventsource-stream` only reports `retry:` when it comes in an event that has data).
//! [`SseSource::max_reconnects`] counts **consecutive** failures: the count resets when a
//! connection delivers an event or stays up 60 s, and reconnecting after such a healthy
//! connection ends is not counted as a failure. Past it, or on any other status (4xx), the
//! run ends with an error naming the status. A 204 response ends the stream normally (the SSE
//! way for a server to say "stop").
//!
//! Silence is normal: the HTTP client has a connect timeout (10 s) but no read timeout. An
//! optional [`SseSource::idle_timeout`] reconnects after a silence that long (comments count as
//! traffic, so servers' `:keep-alive` lines keep the connection).

mod parser;
mod reconnect;
mod stream;
#[cfg(test)]
mod tests;

use super::{BatchStream, Source, SourceContext};
use crate::batch::{BatchConfig, BatchOptions};
use crate::config::Secret;
use crate::record::Record;
use std::marker::PhantomData;
use std::time::Duration;

/// How the `data` of an event becomes a record. See the [module docs](self#decoding).
///
/// ```
/// assert_eq!(etl::source::DataFormat::default(), etl::source::DataFormat::Json);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataFormat {
    /// The data is a JSON document decoded into the record type.
    #[default]
    Json,
    /// The data is text, decoded into the record type as `{"data": "<text>"}`.
    Text,
}

/// A Server-Sent Events source. See [`sse()`] and the [module docs](self).
#[derive(Debug)]
pub struct SseSource<T> {
    url: String,
    /// Header names and value templates (secrets: `Debug` shows `***`).
    headers: Vec<(String, Secret)>,
    event_filter: Option<String>,
    data_format: DataFormat,
    reconnect: bool,
    reconnect_delay: Duration,
    max_reconnects: u32,
    idle_timeout: Option<Duration>,
    last_event_id: Option<String>,
    batching: BatchConfig,
    _record: PhantomData<fn() -> T>,
}

/// Read the Server-Sent Events stream at `url` (`${VAR}` resolved at start-up).
///
/// ```
/// use etl::prelude::*;
/// use std::time::Duration;
/// let src = etl::source::sse::<Json>("https://stream.example.com/events")
///     .header("Authorization", "Bearer ${TOKEN}")
///     .event_filter("trade")
///     .reconnect_delay(Duration::from_secs(3))
///     .max_reconnects(10)
///     .batch_size(500);
/// assert_eq!(src.describe(), "sse https://stream.example.com/events");
/// ```
pub fn sse<T>(url: impl Into<String>) -> SseSource<T> {
    SseSource {
        url: url.into(),
        headers: Vec::new(),
        event_filter: None,
        data_format: DataFormat::Json,
        reconnect: true,
        reconnect_delay: Duration::from_secs(3),
        max_reconnects: 10,
        idle_timeout: None,
        last_event_id: None,
        batching: BatchConfig::default(),
        _record: PhantomData,
    }
}

impl<T> SseSource<T> {
    /// Send a request header (on every connection). `${VAR}` in the value is resolved at
    /// start-up; values are kept as secrets and never logged. Default: none besides `Accept:
    /// text/event-stream`, `Cache-Control: no-cache` and `Last-Event-ID`.
    ///
    /// ```
    /// let src = etl::source::sse::<etl::Json>("http://localhost/e").header("Authorization", "Bearer ${TOKEN}");
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), Secret::new(value)));
        self
    }

    /// Keep only events of this type (the `event:` field; an event without one has type
    /// `message`). Default: every event.
    ///
    /// ```
    /// let src = etl::source::sse::<etl::Json>("http://localhost/e").event_filter("message");
    /// ```
    pub fn event_filter(mut self, event_type: impl Into<String>) -> Self {
        self.event_filter = Some(event_type.into());
        self
    }

    /// How event data is decoded. Default [`DataFormat::Json`].
    ///
    /// ```
    /// use etl::source::DataFormat;
    /// let src = etl::source::sse::<etl::Json>("http://localhost/e").data_format(DataFormat::Text);
    /// ```
    pub fn data_format(mut self, format: DataFormat) -> Self {
        self.data_format = format;
        self
    }

    /// Reconnect after a failure or the end of the stream. Default true. When false, the end of
    /// the stream ends the run normally and a failure ends it with an error.
    ///
    /// ```
    /// let src = etl::source::sse::<etl::Json>("http://localhost/e").reconnect(false);
    /// ```
    pub fn reconnect(mut self, yes: bool) -> Self {
        self.reconnect = yes;
        self
    }

    /// The first reconnect delay, doubled after each consecutive failure (with jitter, capped at
    /// 60 s). A `retry:` from the server replaces it. Default 3 s.
    ///
    /// ```
    /// let src = etl::source::sse::<etl::Json>("http://localhost/e").reconnect_delay(std::time::Duration::from_millis(500));
    /// ```
    pub fn reconnect_delay(mut self, delay: Duration) -> Self {
        self.reconnect_delay = delay;
        self
    }

    /// Consecutive failed connections (or connections that ended without delivering an event)
    /// tolerated before the run ends with an error; reset by a connection that delivers an
    /// event. Default 10.
    ///
    /// ```
    /// let src = etl::source::sse::<etl::Json>("http://localhost/e").max_reconnects(3);
    /// ```
    pub fn max_reconnects(mut self, n: u32) -> Self {
        self.max_reconnects = n;
        self
    }

    /// Reconnect when nothing (not even a comment) arrives for this long. Default `None`:
    /// silence is normal and never ends a connection.
    ///
    /// ```
    /// let src = etl::source::sse::<etl::Json>("http://localhost/e").idle_timeout(Some(std::time::Duration::from_secs(300)));
    /// ```
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Resume after this event id: sent as `Last-Event-ID` on the first connection. Default:
    /// none (the server starts where it likes).
    ///
    /// ```
    /// let src = etl::source::sse::<etl::Json>("http://localhost/e").last_event_id("1042");
    /// ```
    pub fn last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = Some(id.into());
        self
    }
}

impl<T> BatchOptions for SseSource<T> {
    fn batching(&mut self) -> &mut BatchConfig {
        &mut self.batching
    }
}

impl<T: Record> Source for SseSource<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("sse {}", self.url)
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        stream::open(self, ctx).await
    }
}
