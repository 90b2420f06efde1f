//! The I/O of the file source: reading JSONL chunks and CSV rows on a blocking thread and
//! handing the decoded items over a small bounded channel.

use super::decode::{decode_dynamic, reencode, LineDecoder};
use super::{component, Item, CHUNK_BYTES, CSV_CHUNK};
use crate::batch::{Failure, FailureKind, Incoming};
use crate::error::{ConnectorError, Error};
use crate::record::{Meta, Position, Record};
use bytes::BytesMut;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// Read `input` as JSONL, in chunks of [`CHUNK_BYTES`] bytes, handing each chunk's decoded lines to
/// `send`; stops at the end of the input, when `send` returns false (the stream was dropped),
/// or when `shutdown` is cancelled.
///
/// It reads with `std::io` straight into the decoder's buffer (`tokio::fs::File` reads into a
/// buffer of its own and copies from it: measured 137 instructions per record).
pub(crate) fn read_jsonl<T: Record, R: std::io::Read>(
    input: R,
    path: &str,
    shutdown: &CancellationToken,
    send: impl FnMut(Vec<Item<T>>) -> bool,
) {
    read_jsonl_in_chunks(input, CHUNK_BYTES, path, shutdown, send)
}

/// [`read_jsonl`] reading `chunk` bytes at a time (the file-watch source reads a small file in
/// one chunk of its size, so that the records of many small files in flight do not each hold
/// a 256 KiB buffer).
pub(crate) fn read_jsonl_in_chunks<T: Record, R: std::io::Read>(
    mut input: R,
    chunk: usize,
    path: &str,
    shutdown: &CancellationToken,
    mut send: impl FnMut(Vec<Item<T>>) -> bool,
) {
    let mut decoder = LineDecoder::<T>::with_capacity(chunk);
    // Lines in the last chunk: the next chunk's vector is allocated once at about that size
    // rather than grown by doubling (measured: the copies and large allocations cost 160
    // instructions per 130-byte record).
    let mut expected = 0;
    loop {
        if shutdown.is_cancelled() {
            tracing::debug!(path, "shutdown: stop reading");
            return;
        }
        let (mut lines, end) = match read_chunk(&mut input, &mut decoder.pending, chunk) {
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

/// Append up to `chunk` bytes of `input` to `buf`.
pub(crate) fn read_chunk(input: &mut impl std::io::Read, buf: &mut BytesMut, chunk: usize) -> std::io::Result<usize> {
    let start = buf.len();
    buf.resize(start + chunk, 0);
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
pub(super) fn decoded_on_a_thread<T: Record>(
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

/// Read `input` as CSV, handing decoded rows to `send` in chunks; stops when `send` returns
/// false (the stream was dropped) or `shutdown` is cancelled.
pub(crate) fn read_csv<T: Record, R: std::io::Read>(
    input: R,
    path: &str,
    shutdown: &CancellationToken,
    mut send: impl FnMut(Vec<Item<T>>) -> bool,
) {
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
