//! An incremental `text/event-stream` parser: bytes in, events out. Pure: no I/O, no clock.
//!
//! It follows the WHATWG HTML standard's *event stream interpretation*:
//!
//! * lines end in CRLF, LF or CR; a CR at the end of one chunk and an LF at the start of the
//!   next are one line end; a UTF-8 byte order mark at the start of the stream is skipped;
//! * a line starting with `:` is a comment; a line without a colon is a field name with an
//!   empty value; one space after the colon is removed;
//! * `event` sets the type of the event being built; `data` appends a line to its data (lines
//!   joined with `\n`); `id` sets the last event id buffer unless the value contains NUL;
//!   `retry` (ASCII digits only) is reported at once as [`Frame::Retry`], with or without data;
//!   other fields are ignored;
//! * a blank line dispatches the event: the last event id takes the buffer's value (so an `id:`
//!   in an event without data still counts); an event without any `data` line is not
//!   dispatched; the type defaults to `message`;
//! * an event cut off by the end of the stream (no blank line after it) is discarded:
//!   [`Parser::restart`] drops it before the next connection.
//!
//! # Bytes, not text
//!
//! The parser works on bytes. `event` and `id` values are decoded as UTF-8 with replacement
//! characters (as the standard decodes the whole stream). `data` is **not** decoded: an event's
//! [`Event::data`] holds the exact bytes the server sent, so data with invalid UTF-8 is still
//! dispatched, and the consumer can reject it with the exact bytes while the stream goes on.
//! When an event has a single `data` line, its data is a slice of the chunk it arrived in
//! (no copy).
//!
//! # Bounded memory
//!
//! [`Parser::new`] takes the largest event data accepted (`max_event_bytes`). An event whose
//! data grows past it is still dispatched, at its blank line, with [`Event::too_large`] set and
//! [`Event::data`] holding only the first `max_event_bytes` bytes; the rest is counted and
//! dropped as it arrives. An `event` or `id` value longer than the limit is not applied and
//! marks the event too large the same way. Comment, `retry` and unknown lines longer than the
//! limit are dropped. A line is never buffered past the limit (plus a few bytes for the field
//! name), whatever the chunking.
//!
//! ```
//! use etl::source::sse::frame::{Frame, Parser};
//! use bytes::Bytes;
//! let mut parser = Parser::new(1024);
//! parser.push(Bytes::from_static(b"\xEF\xBB\xBF: hello\r\nid: 7\r\nevent: trade\r\ndata: {\"p\":1}\r\n\r"));
//! parser.push(Bytes::from_static(b"\nretry: 500\n"));
//! let Some(Frame::Event(event)) = parser.next_frame() else { panic!() };
//! assert_eq!((event.event_type.as_str(), event.id.as_str(), &event.data[..]), ("trade", "7", &b"{\"p\":1}"[..]));
//! assert_eq!(parser.next_frame(), Some(Frame::Retry(std::time::Duration::from_millis(500))));
//! assert_eq!(parser.next_frame(), None); // needs more bytes
//! assert_eq!(parser.last_event_id(), "7");
//! ```

use super::decode::BomStripper;
use bytes::{Bytes, BytesMut};
use std::time::Duration;

/// Bytes allowed in a buffered line beyond `max_event_bytes`: room for the field name, the
/// colon and the space of a `data:` line whose value is exactly at the limit.
const LINE_SLACK: usize = 16;

/// What the parser reports.
///
/// ```
/// use etl::source::sse::frame::{Frame, Parser};
/// let mut p = Parser::new(64);
/// p.push(bytes::Bytes::from_static(b"retry: 250\n"));
/// assert_eq!(p.next_frame(), Some(Frame::Retry(std::time::Duration::from_millis(250))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// A dispatched event (a blank line after at least one `data` line).
    Event(Event),
    /// A `retry:` field: the server's reconnection time. Takes effect at once, whether or not
    /// the event it belongs to has data.
    Retry(Duration),
}

/// One dispatched event.
///
/// ```
/// use etl::source::sse::frame::{Frame, Parser};
/// let mut p = Parser::new(64);
/// p.push(bytes::Bytes::from_static(b"data: a\ndata: b\n\n"));
/// let Some(Frame::Event(e)) = p.next_frame() else { panic!() };
/// assert_eq!((e.event_type.as_str(), e.id.as_str(), &e.data[..]), ("message", "", &b"a\nb"[..]));
/// assert!(e.too_large.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// The `event` field, or `message` when there was none (or it was empty).
    pub event_type: String,
    /// The last event id when the event was dispatched (empty: no id set).
    pub id: String,
    /// The data lines joined with `\n`, exactly as sent (not checked for UTF-8). When
    /// [`too_large`](Event::too_large) is set, only the first `max_event_bytes` bytes.
    pub data: Bytes,
    /// Set when the event went over `max_event_bytes`.
    pub too_large: Option<TooLarge>,
}

/// Which field of an event went over `max_event_bytes`, and how long it was.
///
/// ```
/// use etl::source::sse::frame::{Frame, Parser};
/// let mut p = Parser::new(4);
/// p.push(bytes::Bytes::from_static(b"data: 0123456789\n\n"));
/// let Some(Frame::Event(e)) = p.next_frame() else { panic!() };
/// assert_eq!(e.too_large.map(|t| (t.field, t.bytes)), Some(("data", 10)));
/// assert_eq!(&e.data[..], b"0123");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// `data`, `event` or `id`.
    pub field: &'static str,
    /// The field's full length in bytes (for `data`: all lines joined).
    pub bytes: usize,
}

/// The data of the event being built.
#[derive(Debug, Default)]
enum Data {
    #[default]
    Empty,
    /// A single data line: a slice of the input (no copy).
    One(Bytes),
    /// Several lines (or one over the limit), copied and joined, at most `max` bytes.
    Many(BytesMut),
}

/// The event being built between two blank lines.
#[derive(Debug, Default)]
struct Pending {
    data: Data,
    /// At least one `data` line was seen.
    has_data: bool,
    /// The full length of the data (lines joined), counted past the limit.
    data_len: usize,
    event_type: Option<String>,
    /// An `event` or `id` value over the limit.
    too_large: Option<TooLarge>,
}

impl Pending {
    /// Append a `data` line's value (or the start of one, for a line over the limit).
    fn data_line(&mut self, value: Bytes, max: usize) {
        let separator = usize::from(self.has_data);
        self.has_data = true;
        self.data_len = self.data_len.saturating_add(separator).saturating_add(value.len());
        match std::mem::take(&mut self.data) {
            Data::Empty if value.len() <= max => self.data = Data::One(value),
            Data::Empty => self.data = Data::Many(capped(BytesMut::new(), &value, max)),
            Data::One(first) => {
                let joined = capped(BytesMut::from(&first[..]), b"\n", max);
                self.data = Data::Many(capped(joined, &value, max));
            }
            Data::Many(joined) => {
                let joined = if separator == 1 { capped(joined, b"\n", max) } else { joined };
                self.data = Data::Many(capped(joined, &value, max));
            }
        }
    }

    /// More bytes of the current `data` line (a line over the limit, arriving in pieces).
    fn data_more(&mut self, bytes: &[u8], max: usize) {
        self.data_len = self.data_len.saturating_add(bytes.len());
        let joined = match std::mem::take(&mut self.data) {
            Data::Empty => BytesMut::new(),
            Data::One(first) => BytesMut::from(&first[..]),
            Data::Many(joined) => joined,
        };
        self.data = Data::Many(capped(joined, bytes, max));
    }

    fn mark_too_large(&mut self, field: &'static str, bytes: usize) {
        if self.too_large.is_none() {
            self.too_large = Some(TooLarge { field, bytes });
        }
    }
}

/// `buf` with as much of `bytes` as fits under `max`.
fn capped(mut buf: BytesMut, bytes: &[u8], max: usize) -> BytesMut {
    let room = max.saturating_sub(buf.len());
    buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    buf
}

/// What to do with the rest of a line that went over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Long {
    /// A `data` line: count its bytes, keep what fits.
    Data,
    /// An `event` or `id` line: count its bytes, apply nothing.
    Field(&'static str, usize),
    /// A comment, `retry` or unknown field: drop it.
    Ignore,
}

/// The incremental event-stream parser. See the [module docs](self).
///
/// Feed it with [`push`](Parser::push), then call [`next_frame`](Parser::next_frame) until it
/// returns `None` (it needs more bytes); call [`restart`](Parser::restart) when a connection
/// ends, before reading the next one.
///
/// ```
/// use etl::source::sse::frame::{Frame, Parser};
/// use bytes::Bytes;
/// let mut p = Parser::new(1 << 20).with_last_event_id("41");
/// p.push(Bytes::from_static(b"data: x\n\nid: 42\ndata: cut off by the connection"));
/// assert!(matches!(p.next_frame(), Some(Frame::Event(e)) if e.id == "41"));
/// assert_eq!(p.next_frame(), None);
/// p.restart(); // the connection dropped: the partial event is discarded
/// p.push(Bytes::from_static(b"data: y\n\n"));
/// assert!(matches!(p.next_frame(), Some(Frame::Event(e)) if e.id == "41" && &e.data[..] == b"y"));
/// ```
#[derive(Debug)]
pub struct Parser {
    max: usize,
    bom: BomStripper,
    /// The chunk being parsed and the position of its first unparsed byte.
    chunk: Bytes,
    pos: usize,
    /// The start of a line whose end is not in sight yet (at most `max + LINE_SLACK` bytes).
    line: BytesMut,
    /// Set while skipping the rest of a line that went over the limit.
    long: Option<Long>,
    /// The previous line ended with CR: an LF right after it is part of that line end.
    skip_lf: bool,
    pending: Pending,
    /// The last event id buffer (set by `id:` lines).
    id_buffer: String,
    /// The last event id (set at each dispatch).
    last_id: String,
}

impl Parser {
    /// A parser that accepts event data up to `max_event_bytes` bytes.
    ///
    /// ```
    /// let p = etl::source::sse::frame::Parser::new(1 << 20);
    /// assert_eq!(p.last_event_id(), "");
    /// ```
    pub fn new(max_event_bytes: usize) -> Parser {
        Parser {
            max: max_event_bytes,
            bom: BomStripper::default(),
            chunk: Bytes::new(),
            pos: 0,
            line: BytesMut::new(),
            long: None,
            skip_lf: false,
            pending: Pending::default(),
            id_buffer: String::new(),
            last_id: String::new(),
        }
    }

    /// Start from this last event id (the one a reconnecting client sends as
    /// `Last-Event-ID`): events carry it until the stream sets another.
    ///
    /// ```
    /// let p = etl::source::sse::frame::Parser::new(64).with_last_event_id("9");
    /// assert_eq!(p.last_event_id(), "9");
    /// ```
    pub fn with_last_event_id(mut self, id: impl Into<String>) -> Parser {
        self.last_id = id.into();
        self.id_buffer.clone_from(&self.last_id);
        self
    }

    /// The last event id: the id buffer's value at the last blank line (empty: none).
    ///
    /// ```
    /// let mut p = etl::source::sse::frame::Parser::new(64);
    /// p.push(bytes::Bytes::from_static(b"id: 5\n\n")); // no data: no event, but the id counts
    /// assert_eq!(p.next_frame(), None);
    /// assert_eq!(p.last_event_id(), "5");
    /// ```
    pub fn last_event_id(&self) -> &str {
        &self.last_id
    }

    /// The next chunk of the stream. Call it once [`next_frame`](Parser::next_frame) has
    /// returned `None` (if bytes of the previous chunk are still unparsed they are kept, at
    /// the cost of a copy).
    ///
    /// ```
    /// let mut p = etl::source::sse::frame::Parser::new(64);
    /// p.push(bytes::Bytes::from_static(b"data: a"));
    /// assert_eq!(p.next_frame(), None);
    /// p.push(bytes::Bytes::from_static(b"\n\n"));
    /// assert!(p.next_frame().is_some());
    /// ```
    pub fn push(&mut self, chunk: Bytes) {
        let chunk = self.bom.push(chunk);
        if self.pos < self.chunk.len() {
            let mut joined = BytesMut::with_capacity(self.chunk.len() - self.pos + chunk.len());
            joined.extend_from_slice(&self.chunk[self.pos..]);
            joined.extend_from_slice(&chunk);
            self.chunk = joined.freeze();
        } else {
            self.chunk = chunk;
        }
        self.pos = 0;
    }

    /// The next event or `retry`, or `None` when every complete line pushed so far is parsed.
    ///
    /// ```
    /// let mut p = etl::source::sse::frame::Parser::new(64);
    /// p.push(bytes::Bytes::from_static(b": comment\nevent: x\n\n"));
    /// assert_eq!(p.next_frame(), None); // no data line: nothing to dispatch
    /// ```
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            let len = self.chunk.len();
            if self.pos >= len {
                return None;
            }
            if self.skip_lf {
                self.skip_lf = false;
                if self.chunk[self.pos] == b'\n' {
                    self.pos += 1;
                    continue;
                }
            }
            let start = self.pos;
            match memchr::memchr2(b'\n', b'\r', &self.chunk[start..]) {
                None => {
                    self.pos = len;
                    self.partial(start, len);
                    return None;
                }
                Some(offset) => {
                    let end = start + offset;
                    self.skip_lf = self.chunk[end] == b'\r';
                    self.pos = end + 1;
                    if let Some(frame) = self.line_end(start, end) {
                        return Some(frame);
                    }
                }
            }
        }
    }

    /// A new connection (the stream ended or broke): discard the partial line and the event
    /// being built, expect a new leading BOM, and keep the last event id.
    ///
    /// ```
    /// let mut p = etl::source::sse::frame::Parser::new(64);
    /// p.push(bytes::Bytes::from_static(b"id: 3\n\nid: 4\ndata: never finished\n"));
    /// assert_eq!(p.next_frame(), None);
    /// p.restart();
    /// assert_eq!(p.last_event_id(), "3");
    /// ```
    pub fn restart(&mut self) {
        self.bom = BomStripper::default();
        self.chunk = Bytes::new();
        self.pos = 0;
        self.line = BytesMut::new();
        self.long = None;
        self.skip_lf = false;
        self.pending = Pending::default();
        self.id_buffer.clone_from(&self.last_id);
    }

    /// The largest buffered line: a `data:` line whose value is at the limit fits.
    fn line_cap(&self) -> usize {
        self.max.saturating_add(LINE_SLACK)
    }

    /// Bytes held by the parser's own buffers (the partial line and the event's data), for
    /// tests of the memory bound.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        let data = match &self.pending.data {
            Data::Empty => 0,
            Data::One(b) => b.len(),
            Data::Many(m) => m.capacity(),
        };
        self.line.capacity() + data
    }

    /// `chunk[start..end]` is the start of a line whose end has not arrived.
    fn partial(&mut self, start: usize, end: usize) {
        if self.long.is_some() {
            self.long_more(start, end);
            return;
        }
        self.line.extend_from_slice(&self.chunk[start..end]);
        if self.line.len() > self.line_cap() {
            self.start_long();
        }
    }

    /// A line end at `end`; the line's last bytes are `chunk[start..end]`.
    fn line_end(&mut self, start: usize, end: usize) -> Option<Frame> {
        if self.long.is_some() {
            self.long_more(start, end);
            self.finish_long();
            return None;
        }
        let line = if self.line.is_empty() {
            self.chunk.slice(start..end)
        } else {
            self.line.extend_from_slice(&self.chunk[start..end]);
            if self.line.len() > self.line_cap() {
                self.start_long();
                self.finish_long();
                return None;
            }
            self.line.split().freeze()
        };
        self.process(line)
    }

    /// The buffered start of the current line went over the limit: apply what can be applied
    /// of it and decide what to do with the rest.
    fn start_long(&mut self) {
        let head = std::mem::take(&mut self.line).freeze();
        let long = match field(&head) {
            Some((b"data", value)) => {
                self.pending.data_line(head.slice_ref(value), self.max);
                Long::Data
            }
            Some((b"event", value)) => Long::Field("event", value.len()),
            Some((b"id", value)) => Long::Field("id", value.len()),
            _ => Long::Ignore,
        };
        tracing::debug!(max_event_bytes = self.max, ?long, "SSE line over max_event_bytes");
        self.long = Some(long);
    }

    /// More bytes (`chunk[start..end]`) of a line over the limit.
    fn long_more(&mut self, start: usize, end: usize) {
        match &mut self.long {
            Some(Long::Data) => self.pending.data_more(&self.chunk[start..end], self.max),
            Some(Long::Field(_, n)) => *n = n.saturating_add(end - start),
            Some(Long::Ignore) | None => {}
        }
    }

    /// The end of a line over the limit.
    fn finish_long(&mut self) {
        if let Some(Long::Field(name, n)) = self.long.take() {
            self.pending.mark_too_large(name, n);
        }
    }

    /// One complete line (without its line end).
    fn process(&mut self, line: Bytes) -> Option<Frame> {
        if line.is_empty() {
            return self.dispatch().map(Frame::Event);
        }
        let (name, value) = field(&line)?;
        if line.len() > self.line_cap() {
            // Whole in one chunk, but treated exactly as if it had arrived in pieces (see
            // `start_long`), so that the result never depends on the chunking.
            match name {
                b"data" => self.pending.data_line(line.slice_ref(value), self.max),
                b"event" => self.pending.mark_too_large("event", value.len()),
                b"id" => self.pending.mark_too_large("id", value.len()),
                _ => {}
            }
            return None;
        }
        match name {
            b"data" => self.pending.data_line(line.slice_ref(value), self.max),
            b"event" if value.len() > self.max => self.pending.mark_too_large("event", value.len()),
            b"event" => self.pending.event_type = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if value.len() > self.max => self.pending.mark_too_large("id", value.len()),
            b"id" if !value.contains(&0) => self.id_buffer = String::from_utf8_lossy(value).into_owned(),
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // Digits only; a value too large for u64 milliseconds is ignored.
                let millis = std::str::from_utf8(value).ok()?.parse::<u64>().ok()?;
                return Some(Frame::Retry(Duration::from_millis(millis)));
            }
            _ => {}
        }
        None
    }

    /// A blank line: the last event id takes the buffer's value; the event (if it has data)
    /// is dispatched.
    fn dispatch(&mut self) -> Option<Event> {
        if self.last_id != self.id_buffer {
            self.last_id.clone_from(&self.id_buffer);
        }
        let pending = std::mem::take(&mut self.pending);
        if !pending.has_data {
            return None;
        }
        let too_large =
            pending.too_large.or_else(|| (pending.data_len > self.max).then_some(TooLarge { field: "data", bytes: pending.data_len }));
        let data = match pending.data {
            Data::Empty => Bytes::new(),
            Data::One(data) => data,
            Data::Many(data) => data.freeze(),
        };
        let event_type = pending.event_type.filter(|t| !t.is_empty()).unwrap_or_else(|| "message".to_owned());
        Some(Event { event_type, id: self.last_id.clone(), data, too_large })
    }
}

/// A non-empty line as `(field name, value)`: `None` for a comment. A line without a colon is
/// a field with an empty value; one space after the colon is not part of the value.
fn field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    match memchr::memchr(b':', line) {
        Some(0) => None,
        Some(colon) => {
            let value = &line[colon + 1..];
            Some((&line[..colon], value.strip_prefix(b" ").unwrap_or(value)))
        }
        None => Some((line, &[])),
    }
}
