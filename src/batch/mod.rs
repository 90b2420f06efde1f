//! Batches: records moving together with their metadata, their per-record failures and one
//! acknowledgement handle.

mod batcher;
mod config;
pub(crate) mod spare;

pub use batcher::{batched, batched_chunks, Accumulator, Fill, Incoming, Stamp};
pub use config::{BatchConfig, BatchOptions, DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TIMEOUT, DEFAULT_MAX_BYTES};

use crate::ack::Ack;
use crate::positions::Positions;
use crate::record::Meta;
use bytes::Bytes;
use futures::Stream;
use serde::Serialize;
use std::pin::Pin;
use std::sync::Arc;

/// The stream of batches an opened source yields. An `Err` item is fatal for the run (sources
/// retry and reconnect on their own before giving up).
///
/// ```
/// use etl::batch::{Batch, BatchStream};
/// let stream: BatchStream<i64> = Box::pin(futures::stream::iter([Ok(Batch::from_records(vec![1, 2]))]));
/// ```
pub type BatchStream<T> = Pin<Box<dyn Stream<Item = crate::Result<Batch<T>>> + Send>>;

/// Why a record failed; stored with its dead-letter entry.
///
/// ```
/// assert_eq!(etl::batch::FailureKind::Decode.to_string(), "decode");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The source's bytes could not be decoded (bad JSON, wrong type, invalid UTF-8).
    Decode,
    /// An operator or stage failed on the record (missing field, exhausted retries).
    Transform,
    /// The sink refused the record permanently (cannot encode it, constraint violation).
    Sink,
    /// The broker delivered the message more times than the source's limit (`max_deliver`,
    /// `max_receives`) without it being acknowledged: a poison message, set aside.
    MaxDeliveries,
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailureKind::Decode => "decode",
            FailureKind::Transform => "transform",
            FailureKind::Sink => "sink",
            FailureKind::MaxDeliveries => "max_deliveries",
        })
    }
}

/// A record that failed, on its way to the dead-letter queue: its raw bytes, the error, and
/// its metadata.
///
/// ```
/// use etl::batch::{Failure, FailureKind};
/// use etl::record::Meta;
/// let f = Failure::new(bytes::Bytes::from_static(b"{oops"), FailureKind::Decode, "expected value", Meta::default());
/// assert_eq!(&f.payload[..], b"{oops");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The bytes as the source read them (or the record serialised as JSON when the source
    /// keeps no raw bytes).
    pub payload: Bytes,
    /// What kind of failure.
    pub kind: FailureKind,
    /// The error message.
    pub error: String,
    /// The record's metadata (position, headers, ...).
    pub meta: Meta,
    /// How many attempts were made before giving up.
    pub attempts: u32,
    /// The pipeline step where it failed (0 is the source; set by the pipeline, see
    /// [`Step`](crate::operator::Step)); `None` until a step claims it.
    pub step: Option<usize>,
}

impl Failure {
    /// A failure after one attempt.
    pub fn new(payload: Bytes, kind: FailureKind, error: impl Into<String>, meta: Meta) -> Failure {
        Failure { payload, kind, error: error.into(), meta, attempts: 1, step: None }
    }

    /// A failure of a decoded record: keeps the source's raw bytes when there are any,
    /// otherwise the record serialised as JSON.
    pub fn of_record<T: Serialize>(record: &T, mut meta: Meta, kind: FailureKind, error: impl Into<String>) -> Failure {
        let payload = match meta.raw.take() {
            Some(raw) => raw,
            None => serde_json::to_vec(record).map(Bytes::from).unwrap_or_default(),
        };
        Failure::new(payload, kind, error, meta)
    }
}

/// A batch of records with their metadata, failures and acknowledgement.
///
/// Operators transform the records in place; the metadata stays aligned with the records and
/// the acknowledgement travels with the batch to the sink.
///
/// ```
/// use etl::batch::Batch;
/// let batch = Batch::from_records(vec![1, 2, 3, 4]);
/// let batch = batch.filter(|n| n % 2 == 0).map(|n| n * 10);
/// assert_eq!(batch.records(), &[20, 40]);
/// ```
#[derive(Debug)]
pub struct Batch<T> {
    records: Vec<T>,
    meta: Vec<Meta>,
    failures: Vec<Failure>,
    ack: Ack,
    origin: Arc<str>,
    positions: Positions,
}

/// The parts of a batch, for sinks and the pipeline driver.
#[derive(Debug)]
pub struct BatchParts<T> {
    /// The records.
    pub records: Vec<T>,
    /// Their metadata, one per record.
    pub meta: Vec<Meta>,
    /// Records that failed on the way.
    pub failures: Vec<Failure>,
    /// The acknowledgement handle.
    pub ack: Ack,
    /// The source this batch came from (`file in.jsonl`), for dead-letter entries.
    pub origin: Arc<str>,
    /// The source positions the batch covers (see [`Batch::positions`]).
    pub positions: Positions,
}

impl<T> Batch<T> {
    /// A batch from records, metadata (one per record), failures and an acknowledgement.
    ///
    /// # Panics
    /// If `meta` and `records` differ in length (a bug of the source that built the batch).
    pub fn new(records: Vec<T>, meta: Vec<Meta>, failures: Vec<Failure>, ack: Ack, origin: Arc<str>) -> Batch<T> {
        assert_eq!(records.len(), meta.len(), "every record needs its metadata");
        Batch { records, meta, failures, ack, origin, positions: Positions::default() }
    }

    /// The same batch, covering the source positions `positions` (what a source that reports
    /// its positions attaches; operators that take a batch apart and build a new one pass its
    /// positions on with this).
    ///
    /// ```
    /// use etl::positions::{OffsetRange, Positions};
    /// let read = Positions::new("g", vec![OffsetRange::new("t", 0, 0, 2)]);
    /// let batch = etl::batch::Batch::from_records(vec![1, 2]).with_positions(read.clone());
    /// assert_eq!(batch.filter(|_| false).positions(), &read);
    /// ```
    pub fn with_positions(mut self, positions: Positions) -> Batch<T> {
        self.positions = positions;
        self
    }

    /// The source positions this batch covers: per partition, the range of offsets its source
    /// read into it (empty for sources that report none). Operators never change it, whatever
    /// they do to the records: a record filtered out or dead-lettered was read, and a sink
    /// that stores positions (exactly-once) must move past it. See [`crate::positions`].
    ///
    /// ```
    /// assert!(etl::batch::Batch::from_records(vec![1]).positions().is_empty());
    /// ```
    pub fn positions(&self) -> &Positions {
        &self.positions
    }

    /// A batch of records without metadata or acknowledgement (tests, examples).
    pub fn from_records(records: Vec<T>) -> Batch<T> {
        let meta = records.iter().map(|_| Meta::default()).collect();
        Batch::new(records, meta, Vec::new(), Ack::none(), Arc::from("memory"))
    }

    /// The records.
    pub fn records(&self) -> &[T] {
        &self.records
    }

    /// The records, mutable (the metadata stays aligned since the length cannot change).
    pub fn records_mut(&mut self) -> &mut [T] {
        &mut self.records
    }

    /// The metadata, one per record.
    pub fn meta(&self) -> &[Meta] {
        &self.meta
    }

    /// Records paired with their metadata.
    pub fn iter_with_meta(&self) -> impl Iterator<Item = (&T, &Meta)> {
        self.records.iter().zip(&self.meta)
    }

    /// Failed records carried toward the dead-letter queue.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// The records that failed on the way, to amend (the pipeline stamps each with its step).
    pub(crate) fn failures_mut(&mut self) -> &mut [Failure] {
        &mut self.failures
    }

    /// Number of records (failures not included).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no record is left (there may still be failures to dead-letter).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Where the batch came from.
    pub fn origin(&self) -> &Arc<str> {
        &self.origin
    }

    /// Take the batch apart.
    pub fn into_parts(self) -> BatchParts<T> {
        BatchParts {
            records: self.records,
            meta: self.meta,
            failures: self.failures,
            ack: self.ack,
            origin: self.origin,
            positions: self.positions,
        }
    }

    /// Apply `f` to every record (the allocation is reused when `U` has the layout of `T`).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Batch<U> {
        Batch {
            records: self.records.into_iter().map(f).collect(),
            meta: self.meta,
            failures: self.failures,
            ack: self.ack,
            origin: self.origin,
            positions: self.positions,
        }
    }

    /// Keep the records for which `keep` is true; the others are done (filtered out).
    pub fn filter(mut self, mut keep: impl FnMut(&T) -> bool) -> Batch<T> {
        let mut verdicts = Vec::with_capacity(self.records.len());
        self.records.retain(|r| {
            let k = keep(r);
            verdicts.push(k);
            k
        });
        let mut verdict = verdicts.into_iter();
        self.meta.retain(|_| verdict.next().unwrap_or(false));
        self
    }

    /// Keep the records and the failures whose verdict is true (one verdict each, in order;
    /// a missing verdict drops); the others leave the batch without a trace (a source dropping
    /// copies of records it read again).
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))] // used by the Kafka source
    pub(crate) fn retain(&mut self, records: &[bool], failures: &[bool]) {
        let mut verdict = records.iter();
        self.records.retain(|_| verdict.next().copied().unwrap_or(false));
        let mut verdict = records.iter();
        self.meta.retain(|_| verdict.next().copied().unwrap_or(false));
        let mut verdict = failures.iter();
        self.failures.retain(|_| verdict.next().copied().unwrap_or(false));
    }

    /// Apply `f` to every record, dropping those for which it returns `None`.
    pub fn filter_map<U>(self, mut f: impl FnMut(T) -> Option<U>) -> Batch<U> {
        let mut records = Vec::with_capacity(self.records.len());
        let mut meta = Vec::with_capacity(self.records.len());
        for (r, m) in self.records.into_iter().zip(self.meta) {
            if let Some(u) = f(r) {
                records.push(u);
                meta.push(m);
            }
        }
        Batch { records, meta, failures: self.failures, ack: self.ack, origin: self.origin, positions: self.positions }
    }

    /// Replace every record by the records `f` yields for it; each inherits the metadata.
    pub fn flat_map<U, I: IntoIterator<Item = U>>(self, mut f: impl FnMut(T) -> I) -> Batch<U> {
        let mut records = Vec::with_capacity(self.records.len());
        let mut meta = Vec::with_capacity(self.records.len());
        for (r, m) in self.records.into_iter().zip(self.meta) {
            for u in f(r) {
                records.push(u);
                meta.push(m.clone());
            }
        }
        Batch { records, meta, failures: self.failures, ack: self.ack, origin: self.origin, positions: self.positions }
    }

    /// Apply a fallible `f` to every record; a record whose call fails leaves the batch and is
    /// carried to the dead-letter queue with the error.
    ///
    /// ```
    /// use etl::batch::Batch;
    /// let b = Batch::from_records(vec!["1".to_string(), "x".to_string()]);
    /// let b = b.try_map(|s| s.parse::<i64>());
    /// assert_eq!(b.records(), &[1]);
    /// assert_eq!(b.failures().len(), 1);
    /// ```
    pub fn try_map<U, E: std::fmt::Display>(self, mut f: impl FnMut(T) -> Result<U, E>) -> Batch<U>
    where
        T: Serialize,
    {
        let mut failures = self.failures;
        let mut records = Vec::with_capacity(self.records.len());
        let mut meta = Vec::with_capacity(self.records.len());
        for (r, m) in self.records.into_iter().zip(self.meta) {
            // Serialise before the call consumes the record, only if the source kept no bytes:
            // the dead-letter entry must hold what came in, not what the function made of it.
            let fallback = if m.raw.is_none() { serde_json::to_vec(&r).ok().map(Bytes::from) } else { None };
            match f(r) {
                Ok(u) => {
                    records.push(u);
                    meta.push(m);
                }
                Err(e) => {
                    let mut m = m;
                    let payload = m.raw.take().or(fallback).unwrap_or_default();
                    failures.push(Failure::new(payload, FailureKind::Transform, e.to_string(), m));
                }
            }
        }
        Batch { records, meta, failures, ack: self.ack, origin: self.origin, positions: self.positions }
    }

    /// Apply a fallible in-place edit to every record (the `Json` field operations); a record
    /// whose edit fails is carried to the dead-letter queue as it came in (an edit that failed
    /// half-way is not what the source sent).
    pub fn try_for_each<E: std::fmt::Display>(self, mut edit: impl FnMut(&mut T) -> Result<(), E>) -> Batch<T>
    where
        T: Serialize,
    {
        self.try_map(|mut record| edit(&mut record).map(|()| record))
    }
}

#[cfg(test)]
mod tests;
