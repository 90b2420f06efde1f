//! `sse`: a Server-Sent Events source (`text/event-stream` over HTTP), with reconnection.
//!
//! The source sends `GET url` with `Accept: text/event-stream` and the configured headers, and
//! parses the body with its own incremental parser, [`frame::Parser`], which follows the
//! WHATWG event stream interpretation (a leading UTF-8 BOM, CRLF / CR / LF line ends, comments,
//! multi-line `data:`, `id:` and `retry:` in events with or without data). Each dispatched
//! event of the wanted type ([`SseSource::event_filter`]) becomes one record; comments, events
//! of other types and events without data produce nothing. An event cut off by a dropped
//! connection (no blank line after it) is discarded; the server sends it again after the
//! reconnect.
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
//! String` field. These events become a
//! [`FailureKind::Decode`](crate::batch::FailureKind::Decode) failure that the pipeline
//! dead-letters while the stream goes on:
//!
//! * data that does not decode into `T`: the dead letter holds the data bytes;
//! * data that is not valid UTF-8: the dead letter holds the **exact** bytes sent (the parser
//!   works on bytes and never replaces them);
//! * data over [`SseSource::max_event_bytes`] (default 1 MiB): the parser keeps only the first
//!   `max_event_bytes` bytes and counts the rest as it arrives, so memory stays bounded; the
//!   dead letter holds that truncated prefix and the error gives the full size. (An `event:` or
//!   `id:` value over the limit also dead-letters its event; its value is not applied.)
//!
//! # Reconnection
//!
//! A refused or failed connection, a 5xx / 408 / 429 status, or a stream that ends or breaks is
//! followed by a reconnect after a delay, sending `Last-Event-ID` = the id of the last event
//! read (the last one handed to the batcher, or skipped by the filter). Delays grow
//! exponentially (×2, capped at 60 s or the base if larger) with jitter from the base delay:
//! [`SseSource::reconnect_delay`], or the server's `retry:` value once it sent one (a bare
//! `retry:` in an event without data counts too).
//! [`SseSource::max_reconnects`] counts **consecutive** failures: the count resets when a
//! connection delivers an event or stays up 60 s, and reconnecting after such a healthy
//! connection ends is not counted as a failure. Past it, or on any other status (4xx), the
//! run ends with an error naming the status. A 204 response ends the stream normally (the SSE
//! way for a server to say "stop").
//!
//! Silence is normal: the HTTP client has a connect timeout (10 s) but no read timeout. An
//! optional [`SseSource::idle_timeout`] reconnects after a silence that long (comments count as
//! traffic, so servers' `:keep-alive` lines keep the connection).
//!
//! # Resuming after a restart
//!
//! With [`SseSource::last_event_id_file`], the id of the last event of each batch is written to
//! a file once that batch is delivered (its acknowledgement resolved as delivered, or rejected:
//! dead-lettered), and only when every earlier batch is too. On the next start the file's
//! content is the first `Last-Event-ID`, so the server resumes after the last delivered event.

mod decode;
pub mod frame;
#[cfg(test)]
mod frame_tests;
mod resume;
mod stream;
#[cfg(test)]
mod tests;

use super::{BatchStream, Source, SourceContext};
use crate::batch::{BatchConfig, BatchOptions};
use crate::config::Secret;
use crate::record::Record;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::Duration;

/// The default of [`SseSource::max_event_bytes`]: 1 MiB.
///
/// ```
/// assert_eq!(etl::source::sse::DEFAULT_MAX_EVENT_BYTES, 1 << 20);
/// ```
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// The default of [`SseSource::reconnect_delay`]: 3 s.
///
/// ```
/// assert_eq!(etl::source::sse::DEFAULT_RECONNECT_DELAY, std::time::Duration::from_secs(3));
/// ```
pub const DEFAULT_RECONNECT_DELAY: Duration = Duration::from_secs(3);

/// The default of [`SseSource::max_reconnects`].
///
/// ```
/// assert_eq!(etl::source::sse::DEFAULT_MAX_RECONNECTS, 10);
/// ```
pub const DEFAULT_MAX_RECONNECTS: u32 = 10;

/// The default of [`SseSource::reconnect`]: reconnect after a failure or the end of the stream.
///
/// ```
/// assert!(etl::source::sse::DEFAULT_RECONNECT);
/// ```
pub const DEFAULT_RECONNECT: bool = true;

pub use super::DataFormat;

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
    last_event_id_file: Option<PathBuf>,
    max_event_bytes: usize,
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
        reconnect: DEFAULT_RECONNECT,
        reconnect_delay: DEFAULT_RECONNECT_DELAY,
        max_reconnects: DEFAULT_MAX_RECONNECTS,
        idle_timeout: None,
        last_event_id: None,
        last_event_id_file: None,
        max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
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

    /// Reconnect after a failure or the end of the stream. Default [`DEFAULT_RECONNECT`] (true). When false, the end of
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
    /// 60 s). A `retry:` from the server replaces it. Default
    /// [`DEFAULT_RECONNECT_DELAY`] (3 s).
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
    /// event. Default [`DEFAULT_MAX_RECONNECTS`] (10).
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

    /// Keep the id of the last delivered event in this file, and resume from it. Default: none.
    ///
    /// At start-up, if the file exists, its content is the first `Last-Event-ID` (it takes
    /// precedence over [`last_event_id`](SseSource::last_event_id) unless it is empty); a file
    /// that exists but cannot be read, or a missing directory, fails the start-up. After each
    /// batch is delivered or dead-lettered (and every batch before it too), the id of its last
    /// event is written to the file atomically: a temporary file beside it, fsync, rename,
    /// fsync of the directory. A task of its own writes it (never the pipeline's task), one
    /// write for the newest id when several batches resolve during a write, and the source
    /// reads its next batch only once the file covers every batch acknowledged so far: after a
    /// crash, a restart repeats at most the batches that were in flight (`max_in_flight`). A
    /// failed write is logged and the run goes on: a restart then resumes from an older id and
    /// repeats events (at least once), it never skips any.
    ///
    /// ```
    /// let src = etl::source::sse::<etl::Json>("http://localhost/e").last_event_id_file("/var/lib/etl/trades.last-id");
    /// ```
    pub fn last_event_id_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.last_event_id_file = Some(path.into());
        self
    }

    /// The largest event data accepted, in bytes. Default [`DEFAULT_MAX_EVENT_BYTES`] (1 MiB).
    /// A larger event is dead-lettered with its first `max_event_bytes` bytes and an error
    /// giving its size, and the stream goes on; the parser never buffers more than this (plus a
    /// few bytes) for one line or one event's data. See the [module docs](self#decoding).
    ///
    /// ```
    /// let src = etl::source::sse::<etl::Json>("http://localhost/e").max_event_bytes(64 * 1024);
    /// ```
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
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
        format!("sse {}", crate::config::display(&self.url))
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        stream::open(self, ctx).await
    }

    fn dead_letter_decoder(&self) -> Option<super::DeadLetterDecoder<T>> {
        (self.data_format == DataFormat::Json).then(super::json_decoder::<T>)
    }
}
