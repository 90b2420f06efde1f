//! `file`: read a JSONL or CSV file once.
//!
//! # JSONL
//!
//! The file is read in 256 KiB chunks; each complete line is a zero-copy [`Bytes`] slice of its
//! chunk, kept as the record's raw bytes ([`Meta::raw`]). Blank lines are skipped (they still
//! count for line numbers), a trailing `\r` is stripped, and so is a UTF-8 byte order mark at
//! the start of the file. A last line without a newline is still a record. A line that does not
//! decode (bad JSON, wrong field type, invalid UTF-8) becomes a
//! [`FailureKind::Decode`](crate::batch::FailureKind::Decode) failure holding exactly its bytes,
//! and reading goes on.
//!
//! Both formats are read and decoded on a blocking thread, which hands decoded chunks over a
//! small bounded channel: memory is bounded by a few chunks and the longest line (or CSV
//! record), whatever the file size, and decoding (most of a file pipeline's work) overlaps with
//! the operators and the sink.
//!
//! # CSV
//!
//! The first row is the header. Typed records are deserialised with the `csv` crate's serde
//! support (an empty cell is `None` for an `Option` field); dynamic records ([`Json`](crate::Json),
//! whose schema is dynamic) become objects of header → **string** cell, with no type inference
//! (`007` stays `"007"`). Positions are [`Position::Line`] with the 1-based **record** number,
//! the header not counted (a quoted cell may span lines, so it can differ from the physical line,
//! which error messages also give). Good rows keep no raw bytes. A row that fails to decode (a
//! bad cell, the wrong number of cells, invalid UTF-8) becomes a failure whose payload is the row
//! re-encoded as CSV, without its line terminator.

use super::{BatchStream, Source, SourceContext};
use crate::ack::Ack;
use crate::batch::{batched, BatchConfig, BatchOptions, Failure, FailureKind, Incoming};
use crate::config::{interpolate, ConfigError};
use crate::error::{ConnectorError, Error};
use crate::format::Format;
use crate::record::{Meta, Position, Record};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::de::value::MapDeserializer;
use std::marker::PhantomData;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Bytes read from a JSONL file at a time.
const CHUNK: usize = 256 * 1024;
/// CSV rows handed from the reading thread at a time.
const CSV_CHUNK: usize = 1024;

type Item<T> = crate::Result<Incoming<T, ()>>;

/// Reads a JSONL or CSV file once, decoding each line / row into `T`. See [`file()`].
#[derive(Debug)]
pub struct FileSource<T> {
    path: String,
    format: Option<Format>,
    batching: BatchConfig,
    _record: PhantomData<fn() -> T>,
}

/// Read the file at `path` (`${VAR}` resolved at start-up) once.
///
/// ```
/// use etl::prelude::*;
/// let src = etl::source::file::<Json>("events.jsonl").format(Format::Jsonl).batch_size(500);
/// ```
pub fn file<T>(path: impl Into<String>) -> FileSource<T> {
    FileSource { path: path.into(), format: None, batching: BatchConfig::default(), _record: PhantomData }
}

impl<T> FileSource<T> {
    /// The file's format. Default: from the extension (`.jsonl`, `.ndjson`, `.json`, `.csv`).
    ///
    /// ```
    /// use etl::prelude::*;
    /// let src = etl::source::file::<Json>("events.log").format(Format::Jsonl);
    /// ```
    pub fn format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }
}

impl<T> BatchOptions for FileSource<T> {
    fn batching(&mut self) -> &mut BatchConfig {
        &mut self.batching
    }
}

fn component(path: &str) -> String {
    format!("file source {path}")
}

impl<T: Record> Source for FileSource<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("file {}", self.path)
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        let path = interpolate(&self.path)?;
        let format = match self.format.or_else(|| Format::from_path(path.as_ref())) {
            Some(format) => format,
            None => {
                return Err(Error::Config(ConfigError::Invalid {
                    option: "format",
                    message: format!(
                    "cannot tell the format of `{path}` from its extension; set it with `.format(Format::Jsonl)` or `.format(Format::Csv)`"
                ),
                }))
            }
        };
        let file = tokio::fs::File::open(&path).await.map_err(|e| Error::Source(ConnectorError::permanent(component(&path), e)))?;
        tracing::debug!(path = %path, ?format, "file source opened");
        let origin: Arc<str> = Arc::from(format!("file {path}"));
        let (file, shutdown) = (file.into_std().await, ctx.shutdown.clone());
        let input = match format {
            Format::Jsonl => decoded_on_a_thread(path, move |path, send| read_jsonl::<T, _>(file, path, &shutdown, send)).boxed(),
            Format::Csv => decoded_on_a_thread(path, move |path, send| read_csv::<T, _>(file, path, &shutdown, send)).boxed(),
        };
        Ok(batched(input, self.batching, ctx.shutdown, origin, |_| Ack::none()))
    }
}

// ---------------------------------------------------------------------------------------------
// JSONL

/// Splits a byte stream into lines and decodes them; pure (no I/O), fed chunk by chunk.
#[derive(Debug)]
struct LineDecoder<T> {
    /// Bytes read but not yet split into lines (the start of an incomplete line).
    pending: BytesMut,
    /// Number of the last line handed out.
    line: u64,
    /// No byte seen yet (a BOM may follow).
    at_start: bool,
    _record: PhantomData<fn() -> T>,
}

impl<T: Record> LineDecoder<T> {
    fn new() -> Self {
        LineDecoder { pending: BytesMut::with_capacity(CHUNK), line: 0, at_start: true, _record: PhantomData }
    }

    /// The complete lines read so far (up to the last newline), to decode with
    /// [`LineDecoder::next_line`]; empty when no line is complete yet.
    fn take_complete(&mut self) -> Bytes {
        self.strip_bom(false);
        match memchr::memrchr(b'\n', &self.pending) {
            Some(last) => self.pending.split_to(last + 1).freeze(),
            None => Bytes::new(),
        }
    }

    /// The input ended: what is left (the last line, which has no newline).
    fn take_rest(&mut self) -> Bytes {
        self.strip_bom(true);
        self.pending.split().freeze()
    }

    /// Decode the next non-blank line of `lines` and consume it; `None` once `lines` is used up.
    /// The record's raw bytes are a slice of `lines` (no copy).
    fn next_line(&mut self, lines: &mut Bytes) -> Option<Item<T>> {
        while !lines.is_empty() {
            let len = memchr::memchr(b'\n', lines).map_or(lines.len(), |i| i + 1);
            let mut raw = lines.split_to(len);
            self.line += 1;
            if raw.last() == Some(&b'\n') {
                raw.truncate(raw.len() - 1);
            }
            if raw.last() == Some(&b'\r') {
                raw.truncate(raw.len() - 1);
            }
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(Ok(self.decode(raw)));
        }
        None
    }

    fn decode(&self, raw: Bytes) -> Incoming<T, ()> {
        let size = raw.len();
        match serde_json::from_slice::<T>(&raw) {
            // Built in place rather than `Meta::at(..).with_raw(raw)`: the builder was not
            // inlined and moved the 72-byte `Meta` twice per record (measured: ~28
            // instructions per record).
            Ok(record) => Incoming::record(record, Meta { position: Position::Line(self.line), raw: Some(raw), extra: None }, size, ()),
            Err(e) => {
                let meta = Meta::at(Position::Line(self.line));
                let error = format!("line {}: {e}", self.line);
                Incoming::failed(Failure::new(raw.clone(), FailureKind::Decode, error, meta.with_raw(raw)), ())
            }
        }
    }

    fn strip_bom(&mut self, eof: bool) {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        if !self.at_start {
            return;
        }
        // Decide once three bytes are in, or as soon as they cannot be a BOM any more.
        if self.pending.len() >= BOM.len() || eof || !BOM.starts_with(&self.pending) {
            self.at_start = false;
            if self.pending.starts_with(BOM) {
                let _ = self.pending.split_to(BOM.len());
            }
        }
    }
}

/// Read `input` as JSONL, in chunks of [`CHUNK`] bytes, handing each chunk's decoded lines to
/// `send`; stops at the end of the input, when `send` returns false (the stream was dropped),
/// or when `shutdown` is cancelled.
///
/// It reads with `std::io` straight into the decoder's buffer (`tokio::fs::File` reads into a
/// buffer of its own and copies from it: measured 137 instructions per record).
fn read_jsonl<T: Record, R: std::io::Read>(
    mut input: R,
    path: &str,
    shutdown: &CancellationToken,
    mut send: impl FnMut(Vec<Item<T>>) -> bool,
) {
    let mut decoder = LineDecoder::<T>::new();
    // Lines in the last chunk: the next chunk's vector is allocated once at about that size
    // rather than grown by doubling (measured: the copies and large allocations cost 160
    // instructions per 130-byte record).
    let mut expected = 0;
    loop {
        if shutdown.is_cancelled() {
            tracing::debug!(path, "shutdown: stop reading");
            return;
        }
        let (mut lines, end) = match read_chunk(&mut input, &mut decoder.pending) {
            Ok(0) => (decoder.take_rest(), true),
            Ok(_) => (decoder.take_complete(), false),
            Err(error) => {
                tracing::error!(path, %error, "cannot read the file");
                send(vec![Err(Error::Source(ConnectorError::retryable(component(path), error)))]);
                return;
            }
        };
        let mut decoded: Vec<Item<T>> = Vec::with_capacity(expected + expected / 8);
        decoded.extend(std::iter::from_fn(|| decoder.next_line(&mut lines)));
        expected = decoded.len();
        let delivered = decoded.is_empty() || send(decoded);
        if end || !delivered {
            return;
        }
    }
}

/// Append up to [`CHUNK`] bytes of `input` to `buf`.
fn read_chunk(input: &mut impl std::io::Read, buf: &mut BytesMut) -> std::io::Result<usize> {
    let start = buf.len();
    buf.resize(start + CHUNK, 0);
    let result = loop {
        match input.read(&mut buf[start..]) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    buf.truncate(start + *result.as_ref().unwrap_or(&0));
    result
}

/// The items `read` decodes on a blocking thread, as a stream: `read` hands them over in
/// chunks through a small bounded channel (so memory stays bounded whatever the file size)
/// until it returns or the stream is dropped.
///
/// Decoding is most of a file pipeline's work; on a thread of its own it overlaps with the
/// operators and the sink, and the hand-over costs one wake-up per chunk rather than per record.
fn decoded_on_a_thread<T: Record>(
    path: String,
    read: impl FnOnce(&str, &mut dyn FnMut(Vec<Item<T>>) -> bool) + Send + 'static,
) -> impl futures::Stream<Item = Item<T>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Item<T>>>(2);
    let name = path.clone();
    let reader = tokio::task::spawn_blocking(move || read(&path, &mut |chunk| tx.blocking_send(chunk).is_ok()));
    futures::stream::unfold((rx, Some(reader), name), |(mut rx, reader, name)| async move {
        if let Some(chunk) = rx.recv().await {
            return Some((futures::stream::iter(chunk), (rx, reader, name)));
        }
        // The channel closed: the reader finished, or panicked (then say so rather than end
        // the stream as if the file were complete).
        match reader?.await {
            Ok(()) => None,
            Err(e) => {
                let error = Err(Error::Source(ConnectorError::permanent(component(&name), e)));
                Some((futures::stream::iter(vec![error]), (rx, None, name)))
            }
        }
    })
    .flatten()
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Read `input` as CSV, handing decoded rows to `send` in chunks; stops when `send` returns
/// false (the stream was dropped) or `shutdown` is cancelled.
fn read_csv<T: Record, R: std::io::Read>(input: R, path: &str, shutdown: &CancellationToken, mut send: impl FnMut(Vec<Item<T>>) -> bool) {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(input);
    let headers = match reader.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            send(vec![Err(Error::Source(ConnectorError::permanent(component(path), e)))]);
            return;
        }
    };
    let names: Option<Vec<String>> = headers.iter().map(|h| std::str::from_utf8(h).ok().map(str::to_owned)).collect();
    let Some(names) = names else {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, "the header row is not valid UTF-8");
        send(vec![Err(Error::Source(ConnectorError::permanent(component(path), e)))]);
        return;
    };
    let dynamic = T::schema().is_dynamic();
    let mut row = csv::ByteRecord::new();
    let mut out = Vec::with_capacity(CSV_CHUNK);
    let mut number = 0u64;
    loop {
        if shutdown.is_cancelled() {
            tracing::debug!(path, "shutdown: stop reading");
            break;
        }
        match reader.read_byte_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {
                number += 1;
                let line = row.position().map_or(0, csv::Position::line);
                let meta = Meta::at(Position::Line(number));
                let size = row.as_slice().len();
                let decoded = if row.len() != headers.len() {
                    Err(format!("expected {} fields as in the header, found {}", headers.len(), row.len()))
                } else if dynamic {
                    decode_dynamic::<T>(&names, &row)
                } else {
                    row.deserialize::<T>(Some(&headers)).map_err(|e| e.to_string())
                };
                out.push(Ok(match decoded {
                    Ok(record) => Incoming::record(record, meta, size, ()),
                    Err(e) => {
                        let payload = reencode(&row);
                        let error = format!("record {number} (line {line}): {e}");
                        Incoming::failed(Failure::new(payload.clone(), FailureKind::Decode, error, meta.with_raw(payload)), ())
                    }
                }));
            }
            Err(e) => {
                out.push(Err(Error::Source(ConnectorError::retryable(component(path), e))));
                break;
            }
        }
        if out.len() >= CSV_CHUNK && !send(std::mem::replace(&mut out, Vec::with_capacity(CSV_CHUNK))) {
            return;
        }
    }
    if !out.is_empty() {
        send(out);
    }
}

/// A dynamic record from a row: an object of header → string cell.
fn decode_dynamic<T: Record>(names: &[String], row: &csv::ByteRecord) -> Result<T, String> {
    let mut cells = Vec::with_capacity(row.len());
    for (i, cell) in row.iter().enumerate() {
        match std::str::from_utf8(cell) {
            Ok(text) => cells.push((names[i].as_str(), text)),
            Err(e) => return Err(format!("field `{}` is not valid UTF-8: {e}", names[i])),
        }
    }
    let de: MapDeserializer<'_, _, serde::de::value::Error> = MapDeserializer::new(cells.into_iter());
    T::deserialize(de).map_err(|e| e.to_string())
}

/// A row written back as one CSV record, without its terminator.
fn reencode(row: &csv::ByteRecord) -> Bytes {
    let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(Vec::with_capacity(row.as_slice().len() + 8));
    let _ = writer.write_byte_record(row);
    let mut bytes = writer.into_inner().unwrap_or_default();
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    Bytes::from(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Json;
    use serde_json::json;

    fn decode_all(input: &[u8], split_every: usize) -> Vec<Incoming<Json, ()>> {
        let mut decoder = LineDecoder::<Json>::new();
        let mut out = Vec::new();
        for piece in input.chunks(split_every.max(1)) {
            decoder.pending.extend_from_slice(piece);
            let mut lines = decoder.take_complete();
            out.extend(std::iter::from_fn(|| decoder.next_line(&mut lines)));
        }
        let mut rest = decoder.take_rest();
        out.extend(std::iter::from_fn(|| decoder.next_line(&mut rest)));
        out.into_iter().map(Result::unwrap).collect()
    }

    fn summary(items: &[Incoming<Json, ()>]) -> Vec<(u64, Result<Json, Vec<u8>>)> {
        items
            .iter()
            .map(|inc| match &inc.item {
                Ok((r, m)) => (line_of(m), Ok(r.clone())),
                Err(f) => (line_of(&f.meta), Err(f.payload.to_vec())),
            })
            .collect()
    }

    fn line_of(meta: &Meta) -> u64 {
        match meta.position {
            Position::Line(n) => n,
            _ => panic!("not a line: {:?}", meta.position),
        }
    }

    fn rec(v: serde_json::Value) -> Json {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn lines_blank_crlf_bom_and_last_line() {
        let input = b"\xEF\xBB\xBF{\"a\":1}\r\n\n   \n{\"a\":2}\n{bad\n{\"a\":3}";
        for split in [1, 2, 3, 5, 7, 1000] {
            let items = decode_all(input, split);
            let got = summary(&items);
            assert_eq!(
                got,
                vec![
                    (1, Ok(rec(json!({"a": 1})))),
                    (4, Ok(rec(json!({"a": 2})))),
                    (5, Err(b"{bad".to_vec())),
                    (6, Ok(rec(json!({"a": 3}))))
                ],
                "split {split}"
            );
            let Ok((_, meta)) = &items[0].item else { panic!() };
            assert_eq!(meta.raw.as_deref(), Some(&b"{\"a\":1}"[..]));
            assert_eq!(items[0].size, 7);
            let Err(f) = &items[2].item else { panic!() };
            assert!(f.error.starts_with("line 5: "), "{}", f.error);
            assert_eq!(f.kind, FailureKind::Decode);
        }
    }

    #[test]
    fn invalid_utf8_and_truncated_last_line_fail() {
        let items = decode_all(b"{\"a\":\"\xff\"}\n{\"a\":", 4);
        let got = summary(&items);
        assert_eq!(got, vec![(1, Err(b"{\"a\":\"\xff\"}".to_vec())), (2, Err(b"{\"a\":".to_vec()))]);
    }

    #[test]
    fn bom_only_or_empty() {
        assert!(decode_all(b"", 1).is_empty());
        assert!(decode_all(b"\xEF\xBB\xBF", 1).is_empty());
        assert!(decode_all(b"\xEF\xBB", 1).len() == 1, "a partial BOM is a bad line");
    }

    #[test]
    fn csv_rows_dynamic_and_failures() {
        let input = "id,name\n1,\"a,b\"\n2\n3,\"multi\nline\"\n";
        let mut got = Vec::new();
        read_csv::<Json, _>(input.as_bytes(), "t.csv", &CancellationToken::new(), |chunk| {
            got.extend(chunk);
            true
        });
        assert_eq!(got.len(), 3);
        let Ok(Incoming { item: Ok((r, m)), .. }) = &got[0] else { panic!() };
        assert_eq!(r, &rec(json!({"id": "1", "name": "a,b"})));
        assert_eq!(m.position, Position::Line(1));
        let Ok(Incoming { item: Err(f), .. }) = &got[1] else { panic!() };
        assert_eq!(&f.payload[..], b"2");
        assert_eq!(f.meta.position, Position::Line(2));
        assert!(f.error.contains("record 2 (line 3)"), "{}", f.error);
        let Ok(Incoming { item: Ok((r, m)), .. }) = &got[2] else { panic!() };
        assert_eq!(r, &rec(json!({"id": "3", "name": "multi\nline"})));
        assert_eq!(m.position, Position::Line(3));
    }

    proptest::proptest! {
        /// However the bytes are cut into reads, the same records come out at the same lines.
        #[test]
        fn any_chunking_gives_the_same_lines(
            values in proptest::collection::vec(proptest::option::of("[a-z\\\\\"\n é🦀]{0,12}"), 0..30),
            split in 1usize..40,
            crlf in proptest::bool::ANY,
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut input = String::new();
            let mut expected = Vec::new();
            for (i, v) in values.iter().enumerate() {
                match v {
                    Some(s) => {
                        let r = rec(json!({ "s": s }));
                        input.push_str(&serde_json::to_string(&r).unwrap());
                        expected.push((i as u64 + 1, Ok(r)));
                    }
                    None => input.push_str("  "),
                }
                input.push_str(eol);
            }
            let whole = summary(&decode_all(input.as_bytes(), usize::MAX));
            proptest::prop_assert_eq!(&whole, &expected);
            proptest::prop_assert_eq!(summary(&decode_all(input.as_bytes(), split)), expected);
        }
    }

    /// Hands out `pieces` one read at a time (after an `Interrupted`), then fails with `error`.
    struct Pieces {
        pieces: std::collections::VecDeque<&'static [u8]>,
        interrupted: bool,
        error: Option<std::io::ErrorKind>,
    }

    impl std::io::Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.interrupted = !self.interrupted;
            if self.interrupted {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            match self.pieces.pop_front() {
                Some(piece) => {
                    buf[..piece.len()].copy_from_slice(piece);
                    Ok(piece.len())
                }
                None => self.error.map_or(Ok(0), |kind| Err(kind.into())),
            }
        }
    }

    fn read_pieces(pieces: &[&'static [u8]], error: Option<std::io::ErrorKind>) -> Vec<Vec<Item<Json>>> {
        let input = Pieces { pieces: pieces.iter().copied().collect(), interrupted: false, error };
        let mut chunks = Vec::new();
        read_jsonl::<Json, _>(input, "t.jsonl", &CancellationToken::new(), |chunk| {
            chunks.push(chunk);
            true
        });
        chunks
    }

    #[test]
    fn jsonl_reads_retry_interrupted_and_hand_over_each_read_lines() {
        let chunks = read_pieces(&[b"{\"a\":1}\n{\"a\"", b":2}\n", b"\n", b"{\"a\":3}"], None);
        let lines: Vec<Vec<u64>> =
            chunks.iter().map(|c| c.iter().map(|i| line_of(&i.as_ref().unwrap().item.as_ref().unwrap().1)).collect()).collect();
        // The blank line's read hands over nothing; the last line comes at the end of the input.
        assert_eq!(lines, vec![vec![1], vec![2], vec![4]]);
    }

    #[test]
    fn jsonl_read_error_comes_after_the_lines_before_it() {
        let chunks = read_pieces(&[b"{\"a\":1}\n{\"a\":"], Some(std::io::ErrorKind::BrokenPipe));
        assert_eq!(chunks.len(), 2);
        assert!(chunks[0][0].is_ok());
        let Err(Error::Source(e)) = &chunks[1][0] else { panic!("not a source error: {:?}", chunks[1]) };
        assert!(e.to_string().contains("t.jsonl"), "{e}");
    }

    #[test]
    fn jsonl_stops_when_the_stream_is_dropped_or_on_shutdown() {
        let input = Pieces { pieces: [&b"{}\n"[..], b"{}\n", b"{}\n"].into_iter().collect(), interrupted: false, error: None };
        let mut sends = 0;
        read_jsonl::<Json, _>(input, "t.jsonl", &CancellationToken::new(), |_| {
            sends += 1;
            false
        });
        assert_eq!(sends, 1, "a refused chunk ends the reading");
        let token = CancellationToken::new();
        token.cancel();
        let mut got = Vec::new();
        read_jsonl::<Json, _>(&b"{}\n"[..], "t.jsonl", &token, |chunk| {
            got.extend(chunk);
            true
        });
        assert!(got.is_empty());
    }

    #[test]
    fn csv_stops_on_shutdown() {
        let input = "id\n1\n2\n";
        let token = CancellationToken::new();
        token.cancel();
        let mut got = Vec::new();
        read_csv::<Json, _>(input.as_bytes(), "t.csv", &token, |chunk| {
            got.extend(chunk);
            true
        });
        assert!(got.is_empty());
    }
}
