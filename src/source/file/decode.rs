//! Pure helpers of the file source: JSONL lines split out of chunks of bytes and decoded, CSV
//! rows decoded as dynamic records or re-encoded for a dead letter. No I/O.

use super::Item;
use crate::batch::{Failure, FailureKind, Incoming};
use crate::record::{Meta, Position, Record};
use bytes::{Bytes, BytesMut};
use serde::de::value::MapDeserializer;
use std::marker::PhantomData;

/// Splits a byte stream into lines and decodes them; pure (no I/O), fed chunk by chunk.
#[derive(Debug)]
pub(super) struct LineDecoder<T> {
    /// Bytes read but not yet split into lines (the start of an incomplete line).
    pub(super) pending: BytesMut,
    /// Number of the last line handed out.
    pub(super) line: u64,
    /// No byte seen yet (a BOM may follow).
    pub(super) at_start: bool,
    _record: PhantomData<fn() -> T>,
}

impl<T: Record> LineDecoder<T> {
    #[cfg(test)]
    pub(super) fn new() -> Self {
        Self::with_capacity(super::CHUNK_BYTES)
    }

    pub(super) fn with_capacity(bytes: usize) -> Self {
        LineDecoder { pending: BytesMut::with_capacity(bytes), line: 0, at_start: true, _record: PhantomData }
    }

    /// The complete lines read so far (up to the last newline), to decode with
    /// [`LineDecoder::next_line`]; empty when no line is complete yet.
    pub(super) fn take_complete(&mut self) -> Bytes {
        self.strip_bom(false);
        match memchr::memrchr(b'\n', &self.pending) {
            Some(last) => self.pending.split_to(last + 1).freeze(),
            None => Bytes::new(),
        }
    }

    /// The input ended: what is left (the last line, which has no newline).
    pub(super) fn take_rest(&mut self) -> Bytes {
        self.strip_bom(true);
        self.pending.split().freeze()
    }

    /// Decode the next non-blank line of `lines` and consume it; `None` once `lines` is used up.
    /// The record's raw bytes are a slice of `lines` (no copy).
    pub(super) fn next_line(&mut self, lines: &mut Bytes) -> Option<Item<T>> {
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

    pub(super) fn decode(&self, raw: Bytes) -> Incoming<T, ()> {
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

    pub(super) fn strip_bom(&mut self, eof: bool) {
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

/// A dynamic record from a row: an object of header → string cell.
pub(super) fn decode_dynamic<T: Record>(names: &[String], row: &csv::ByteRecord) -> Result<T, String> {
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
pub(super) fn reencode(row: &csv::ByteRecord) -> Bytes {
    let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(Vec::with_capacity(row.as_slice().len() + 8));
    let _ = writer.write_byte_record(row);
    let mut bytes = writer.into_inner().unwrap_or_default();
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    Bytes::from(bytes)
}
