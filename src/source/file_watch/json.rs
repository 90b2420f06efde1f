//! Splitting a JSON file into its records without holding the file: the elements of a
//! top-level array, or the top-level values one after the other. Pure (no I/O): fed chunk by
//! chunk, it hands out each element's bytes as a zero-copy slice of its chunk, with the line
//! it starts on.
//!
//! It only finds where elements start and end (strings, escapes and bracket depth); serde
//! decodes each element. Broken input never stops it: a stray byte between elements becomes an
//! element of its own (which then fails to decode and is dead-lettered), an element that never
//! ends runs to the end of the file, and one larger than [`MAX_ELEMENT_BYTES`] is reported
//! (with its first bytes) and skipped.

use bytes::{Buf, Bytes, BytesMut};

/// The largest element kept whole; a larger one is reported and skipped.
pub(super) const MAX_ELEMENT_BYTES: usize = 64 << 20;

/// What a reported oversized element keeps of its bytes.
const REPORTED_PREFIX: usize = 64 << 10;

/// What the splitter hands out.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Piece {
    /// One element's bytes (to decode), and the line it starts on.
    Element { raw: Bytes, line: u64 },
    /// Something that is not an element: an oversized one, or an array the file never closed.
    Broken { raw: Bytes, line: u64, error: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing but blanks seen yet.
    Start,
    /// Inside a top-level array.
    Array,
    /// Top-level values one after the other (or after the array closed).
    Values,
}

#[derive(Debug, Clone, Copy)]
struct Element {
    /// Where it starts in the buffer.
    start: usize,
    line: u64,
    /// It started with `{` or `[` (it ends with the bracket that closes it).
    container: bool,
    /// Too large: reported, its bytes dropped as they are scanned.
    discarding: bool,
}

/// See the [module docs](self).
#[derive(Debug)]
pub(super) struct JsonSplitter {
    /// Bytes not handed out yet.
    pub(super) buf: BytesMut,
    /// The next byte to scan.
    pos: usize,
    /// The line of `pos`, 1-based.
    line: u64,
    mode: Mode,
    element: Option<Element>,
    in_string: bool,
    escape: bool,
    depth: u32,
    /// The unclosed array was reported.
    reported_unclosed: bool,
}

impl JsonSplitter {
    pub(super) fn new() -> Self {
        JsonSplitter {
            buf: BytesMut::new(),
            pos: 0,
            line: 1,
            mode: Mode::Start,
            element: None,
            in_string: false,
            escape: false,
            depth: 0,
            reported_unclosed: false,
        }
    }

    /// The next piece, or `None` when more bytes are needed (`eof` false) or the input is used
    /// up (`eof` true).
    pub(super) fn next(&mut self, eof: bool) -> Option<Piece> {
        loop {
            if self.element.is_none() && !self.between(eof) {
                if eof && self.mode == Mode::Array && !self.reported_unclosed {
                    self.reported_unclosed = true;
                    let error = format!("line {}: the file ends inside the JSON array (no closing `]`)", self.line);
                    return Some(Piece::Broken { raw: Bytes::new(), line: self.line, error });
                }
                return None;
            }
            match self.scan(eof) {
                Some(Some(piece)) => return Some(piece),
                Some(None) => continue, // a discarded element ended
                None => return None,
            }
        }
    }

    /// Skip blanks and separators up to the start of an element; false when the buffer is
    /// used up first.
    fn between(&mut self, eof: bool) -> bool {
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            if self.mode == Mode::Start && self.pos == 0 && b == 0xEF {
                // A UTF-8 byte order mark.
                if self.buf.len() < 3 && !eof {
                    return false;
                }
                if self.buf.starts_with(b"\xEF\xBB\xBF") {
                    self.pos = 3;
                    continue;
                }
            }
            match (b, self.mode) {
                (b'\n', _) => self.line += 1,
                (b' ' | b'\t' | b'\r', _) => {}
                (b'[', Mode::Start) => self.mode = Mode::Array,
                (b',', Mode::Array) => {}
                (b']', Mode::Array) => self.mode = Mode::Values,
                _ => {
                    if self.mode == Mode::Start {
                        self.mode = Mode::Values;
                    }
                    let container = b == b'{' || b == b'[';
                    self.element = Some(Element { start: self.pos, line: self.line, container, discarding: false });
                    self.in_string = false;
                    self.escape = false;
                    self.depth = 0;
                    return true;
                }
            }
            self.pos += 1;
        }
        // Drop what was skipped.
        self.buf.advance(self.pos);
        self.pos = 0;
        false
    }

    /// Scan the element in progress: `Some(Some(piece))` when it ended (or was found too
    /// large), `Some(None)` when a discarded one ended, `None` when more bytes are needed.
    fn scan(&mut self, eof: bool) -> Option<Option<Piece>> {
        let Some(mut el) = self.element else { return Some(None) };
        let mut end = None;
        while self.pos < self.buf.len() {
            if !el.discarding && self.pos - el.start > MAX_ELEMENT_BYTES {
                // Report it with its first bytes, then drop its bytes as they are scanned.
                let raw = Bytes::copy_from_slice(&self.buf[el.start..el.start + REPORTED_PREFIX]);
                let error = format!("line {}: a JSON element larger than {} MiB; skipped", el.line, MAX_ELEMENT_BYTES >> 20);
                el.discarding = true;
                self.buf.advance(self.pos);
                self.pos = 0;
                el.start = 0;
                self.element = Some(el);
                return Some(Some(Piece::Broken { raw, line: el.line, error }));
            }
            let b = self.buf[self.pos];
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if !el.container {
                        end = Some(self.pos + 1);
                        self.pos += 1;
                        break;
                    }
                } else if b == b'\n' {
                    self.line += 1;
                }
                self.pos += 1;
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if self.depth == 0 => {
                    // Closes nothing of this element: the end of a scalar (`1]`), or a stray
                    // bracket that is an element of its own.
                    let stop = if self.pos == el.start { self.pos + 1 } else { self.pos };
                    self.pos = stop;
                    end = Some(stop);
                    break;
                }
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 && el.container {
                        self.pos += 1;
                        end = Some(self.pos);
                        break;
                    }
                }
                b',' | b' ' | b'\t' | b'\r' | b'\n' if self.depth == 0 && !el.container => {
                    let stop = if self.pos == el.start { self.pos + 1 } else { self.pos };
                    if stop > self.pos && b == b'\n' {
                        self.line += 1;
                    }
                    self.pos = stop;
                    end = Some(stop);
                    break;
                }
                b'\n' => self.line += 1,
                _ => {}
            }
            self.pos += 1;
        }
        if el.discarding {
            // Keep nothing of it.
            self.buf.advance(end.unwrap_or(self.pos));
            self.pos = 0;
            el.start = 0;
            if end.is_some() || eof {
                self.element = None;
                return Some(None);
            }
            self.element = Some(el);
            return None;
        }
        let end = match end {
            Some(end) => end,
            None if eof && self.pos > el.start => self.pos,
            None => {
                self.element = Some(el);
                return None;
            }
        };
        self.element = None;
        self.buf.advance(el.start);
        let raw = self.buf.split_to(end - el.start).freeze();
        self.pos -= end;
        Some(Some(Piece::Element { raw, line: el.line }))
    }
}
