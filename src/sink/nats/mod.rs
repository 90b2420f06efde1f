//! `nats`: publish each record as a JSON message to NATS JetStream.
//!
//! ```no_run
//! use etl::prelude::*;
//! # async fn demo() -> etl::Result<()> {
//! #[derive(Debug, Clone, Record, Serialize, Deserialize)]
//! struct Order { id: i64, region: String }
//! let sink = etl::sink::nats("orders.{region}").url("${NATS_URL}").msg_id("id");
//! let orders = vec![Order { id: 1, region: "eu".into() }];
//! Pipeline::from(etl::source::iter(orders)).to(sink).run().await?;
//! # Ok(()) }
//! ```
//!
//! # Writing and committing
//!
//! The sink is two-phase (see [`Sink`]): `write` publishes every record of a batch without
//! waiting, and `commit` awaits the stream's acknowledgement of every message published since
//! the last commit. The pipeline acknowledges a batch to its source only after that.
//!
//! # Subjects
//!
//! [`nats()`] takes a subject text, where `{field}` is replaced by the record's field (a
//! string's text, another value's JSON: `orders.{region}`), or a function of the record
//! returning the subject (`|o: &Order| format!("orders.{}", o.region)`). A fixed subject is
//! checked at open: a stream must capture it. A record without the field, or whose subject is
//! not a valid one, is dead-lettered.
//!
//! # Deduplication
//!
//! Every message carries a `Nats-Msg-Id`, so that a batch published again (after a failed
//! commit, or redelivered by the source after a crash) is stored once within the stream's
//! duplicate window (2 minutes by default). By default ([`MsgId::Position`]) the id is made of
//! the pipeline's name, the record's origin (topic, subject) and its source position (offset,
//! stream sequence, message id); records from a source without durable positions (an
//! iterator, a file) get none. [`NatsSink::msg_id`] names a key field instead; [`NatsSink::dedup`]
//! turns ids off.
//!
//! # Failures
//!
//! A publish the stream does not acknowledge (timeout, no stream, server gone) fails the
//! commit, retryably: the pipeline publishes the uncommitted batches again, with the same ids.
//! A message larger than the server's `max_payload` is rejected at `write` (dead-lettered).

mod encode;
#[cfg(test)]
mod tests;
mod write;

pub use crate::nats::DEFAULT_URL;
pub use encode::{ByFn, ByTemplate, FnSubject, IntoSubject, MsgId, SubjectOf, SubjectTemplate, TemplateText};

use super::{Sink, SinkContext, Written};
use crate::error::ConnectorError;
use crate::nats::{api_error, connect, MSG_ID};
use crate::record::Meta;
use async_nats::HeaderMap;
use bytes::Bytes;
use encode::{field_id, position_id};
use serde::Serialize;
use std::time::Duration;
use write::{Open, SendError};

/// The default of [`NatsSink::dedup`]: every message carries a `Nats-Msg-Id`.
///
/// ```
/// assert!(etl::sink::nats::DEFAULT_DEDUP);
/// ```
pub const DEFAULT_DEDUP: bool = true;

/// The default of [`NatsSink::ack_timeout`]: how long `commit` waits for a publish's
/// acknowledgement.
///
/// ```
/// assert_eq!(etl::sink::nats::DEFAULT_ACK_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes records as JSON messages to JetStream. See [`nats()`] and the [module docs](self).
/// `S` picks each record's subject ([`SubjectOf`]).
pub struct NatsSink<S = TemplateText> {
    url: String,
    subject: S,
    msg_id: MsgId,
    headers: Vec<(String, String)>,
    ack_timeout: Duration,
    pipeline: String,
    open: Option<Open>,
}

impl<S> std::fmt::Debug for NatsSink<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink")
            .field("url", &crate::config::display(&self.url))
            .field("msg_id", &self.msg_id)
            .field("open", &self.open.is_some())
            .finish_non_exhaustive()
    }
}

/// Publish to `subject`: a text with `${VAR}`s and `{field}` placeholders, or a function of
/// the record (see the [module docs](self)).
///
/// ```
/// use etl::Sink;
/// let sink = etl::sink::nats("orders.clean");
/// assert_eq!(Sink::<etl::Json>::describe(&sink), "nats sink orders.clean");
/// let by_fn = etl::sink::nats(|o: &etl::Json| format!("orders.{}", o.get("id").map(|v| v.to_string()).unwrap_or_default()));
/// ```
pub fn nats<M, S: IntoSubject<M>>(subject: S) -> NatsSink<S::Subject> {
    NatsSink {
        url: DEFAULT_URL.to_owned(),
        subject: subject.into_subject(),
        msg_id: MsgId::default(),
        headers: Vec::new(),
        ack_timeout: DEFAULT_ACK_TIMEOUT,
        pipeline: "pipeline".into(),
        open: None,
    }
}

impl<S> NatsSink<S> {
    /// The server's URL (`${VAR}` resolved at open). Default [`DEFAULT_URL`]: `NATS_URL`,
    /// else `nats://127.0.0.1:4222`.
    ///
    /// ```
    /// let sink = etl::sink::nats("orders").url("nats://nats-1:4222");
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Make each message's `Nats-Msg-Id` from this field of the record (its serde name)
    /// instead of its source position. A record without the field is dead-lettered.
    ///
    /// ```
    /// let sink = etl::sink::nats("orders").msg_id("id");
    /// ```
    pub fn msg_id(mut self, field: impl Into<String>) -> Self {
        self.msg_id = MsgId::Field(field.into());
        self
    }

    /// Whether messages carry a `Nats-Msg-Id` at all. Default [`DEFAULT_DEDUP`] (true).
    ///
    /// ```
    /// let sink = etl::sink::nats("orders").dedup(false);
    /// ```
    pub fn dedup(mut self, yes: bool) -> Self {
        if !yes {
            self.msg_id = MsgId::None;
        } else if self.msg_id == MsgId::None {
            self.msg_id = MsgId::Position;
        }
        self
    }

    /// Headers set on every message. Default: none.
    ///
    /// ```
    /// let sink = etl::sink::nats("orders").headers([("source", "etl")]);
    /// ```
    pub fn headers<N: Into<String>, V: Into<String>>(mut self, headers: impl IntoIterator<Item = (N, V)>) -> Self {
        self.headers.extend(headers.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// How long `commit` waits for the stream's acknowledgement of a publish. Default
    /// [`DEFAULT_ACK_TIMEOUT`] (10 s).
    ///
    /// ```
    /// let sink = etl::sink::nats("orders").ack_timeout(std::time::Duration::from_secs(2));
    /// ```
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }
}

impl<S> NatsSink<S> {
    fn component<T>(&self) -> String
    where
        S: SubjectOf<T>,
    {
        match self.subject.fixed() {
            Some(subject) => format!("nats sink {subject}"),
            None => "nats sink".to_owned(),
        }
    }

    fn header_map(&self, id: Option<String>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            headers.insert(name.as_str(), value.as_str());
        }
        if let Some(id) = id {
            headers.insert(MSG_ID, id.as_str());
        }
        headers
    }
}

impl<T: Serialize + Sync, S: SubjectOf<T>> Sink<T> for NatsSink<S> {
    fn describe(&self) -> String {
        match self.subject.fixed().map(str::to_owned).or_else(|| self.subject.written().map(crate::config::display)) {
            Some(subject) => format!("nats sink {subject}"),
            None => "nats sink".to_owned(),
        }
    }

    async fn open(&mut self, ctx: SinkContext) -> Result<(), ConnectorError> {
        self.pipeline = ctx.pipeline.clone();
        self.subject.prepare().map_err(|e| ConnectorError::permanent("nats sink", e))?;
        let component = self.component::<T>();
        let client = connect(&self.url, &component).await?;
        let max_payload = client.server_info().max_payload;
        let js = async_nats::jetstream::ContextBuilder::new().timeout(self.ack_timeout).build(client);
        if let Some(subject) = self.subject.fixed() {
            match js.stream_by_subject(subject).await {
                Ok(stream) => tracing::debug!(subject, stream, "nats sink opened"),
                Err(e) if e.to_string().contains("no stream") || e.to_string().contains("not found") => {
                    return Err(ConnectorError::permanent(component, format!("no JetStream stream captures subject `{subject}`")));
                }
                Err(e) => return Err(api_error(&component, &format!("cannot look up the stream of subject `{subject}`"), e)),
            }
        }
        self.open = Some(Open { js, max_payload, pending: Vec::new(), component });
        Ok(())
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        self.write_batch(records, &[]).await
    }

    async fn write_batch(&mut self, records: &[T], meta: &[Meta]) -> Result<Written, ConnectorError> {
        let mut rejected = Vec::new();
        let mut messages = Vec::with_capacity(records.len());
        let needs_value = self.subject.reads_fields() || matches!(self.msg_id, MsgId::Field(_));
        let mut previous: Option<&Meta> = None;
        let mut occurrence = 0usize;
        for (i, record) in records.iter().enumerate() {
            let m = meta.get(i);
            // Records sharing one source position (a flat_map's) are told apart by their rank.
            occurrence = match (previous, m) {
                (Some(p), Some(m)) if p.position == m.position && p.extra == m.extra => occurrence + 1,
                _ => 0,
            };
            previous = m;
            let encoded = (|| -> Result<(String, Bytes, Option<String>), String> {
                let value = if needs_value {
                    Some(serde_json::to_value(record).map_err(|e| format!("cannot encode the record as JSON: {e}"))?)
                } else {
                    None
                };
                let subject = self.subject.subject(record, value.as_ref())?;
                let payload = match &value {
                    Some(v) => serde_json::to_vec(v),
                    None => serde_json::to_vec(record),
                }
                .map_err(|e| format!("cannot encode the record as JSON: {e}"))?;
                let id = match &self.msg_id {
                    MsgId::None => None,
                    MsgId::Position => m.and_then(|m| position_id(&self.pipeline, m, occurrence)),
                    MsgId::Field(field) => Some(field_id(value.as_ref().ok_or("no JSON value (bug)")?, field)?),
                };
                Ok((subject, Bytes::from(payload), id))
            })();
            match encoded {
                Ok((subject, payload, id)) => messages.push((i, subject, self.header_map(id), payload)),
                Err(reason) => rejected.push((i, reason)),
            }
        }
        let open = match self.open.as_mut() {
            Some(open) => open,
            None => return Err(ConnectorError::permanent("nats sink", "write before open")),
        };
        for (i, subject, headers, payload) in messages {
            match open.send(subject, headers, payload).await {
                Ok(()) => {}
                Err(SendError::Rejected(reason)) => rejected.push((i, reason)),
                Err(SendError::Failed(e)) => return Err(e),
            }
        }
        rejected.sort_by_key(|(i, _)| *i);
        Ok(Written::rejecting(rejected))
    }

    async fn commit(&mut self) -> Result<(), ConnectorError> {
        match self.open.as_mut() {
            Some(open) => open.settle().await,
            None => Ok(()),
        }
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(mut open) = self.open.take() {
            open.settle().await?;
            if let Err(e) = open.js.client().flush().await {
                tracing::debug!(error = %e, "flushing the nats sink's connection at close failed");
            }
        }
        Ok(())
    }
}
