//! A dead-letter queue on a NATS JetStream stream ([`NatsDeadLetters`]), and
//! [`NatsRepublish`], the replay target that publishes entries back to their origin subject.
//!
//! Each entry is one message of the stream: its payload is the record's raw bytes (binary-safe:
//! never decoded), and headers carry the rest: `Etl-Id` (also its `Nats-Msg-Id`, so that a
//! retried write is stored once), `Etl-Error`, `Etl-Kind`, `Etl-Source`, `Etl-Position` (JSON),
//! `Etl-Step`, `Etl-Attempts`, `Etl-First-Failed` and `Etl-Last-Failed` (RFC 3339), and the
//! record's own headers in `Etl-Headers` (JSON pairs, values base64). Text values are
//! percent-encoded outside printable ASCII, so newlines in an error survive the header block.

use super::replay::republish;
use super::{DeadLetter, DeadLetters, DynRepublish, Republish};
use crate::batch::FailureKind;
use crate::error::ConnectorError;
use crate::nats::{api_error, connect, decode_header, encode_header, jetstream, parse_origin, MSG_ID};
use crate::record::Position;
use async_nats::jetstream::stream::Stream;
use async_nats::HeaderMap;
use base64::Engine;
use bytes::Bytes;
use std::collections::HashMap;
use std::future::IntoFuture;
use std::time::{Duration, SystemTime};

const ID: &str = "Etl-Id";
const ERROR: &str = "Etl-Error";
const KIND: &str = "Etl-Kind";
const SOURCE: &str = "Etl-Source";
const POSITION: &str = "Etl-Position";
const STEP: &str = "Etl-Step";
const ATTEMPTS: &str = "Etl-Attempts";
const FIRST_FAILED: &str = "Etl-First-Failed";
const LAST_FAILED: &str = "Etl-Last-Failed";
const HEADERS: &str = "Etl-Headers";

/// Dead letters kept in a JetStream stream, created when missing (file storage, capturing
/// one subject). Connects on first use; clones share nothing (each connects on its own).
///
/// ```no_run
/// use etl::prelude::*;
/// # async fn demo() -> etl::Result<()> {
/// let queue = etl::dead_letter::NatsDeadLetters::new("${NATS_URL}", "ETL_DEAD_LETTERS");
/// let report = Pipeline::from(etl::source::iter(vec![etl::Json::default()]))
///     .to(etl::sink::stdout())
///     .dead_letters(queue)
///     .run()
///     .await?;
/// # Ok(()) }
/// ```
pub struct NatsDeadLetters {
    url: String,
    stream: String,
    subject: Option<String>,
    open: tokio::sync::OnceCell<Open>,
}

struct Open {
    stream: Stream,
    subject: String,
    js: async_nats::jetstream::Context,
}

impl std::fmt::Debug for NatsDeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsDeadLetters").field("url", &crate::config::display(&self.url)).field("stream", &self.stream).finish()
    }
}

impl NatsDeadLetters {
    /// The queue in the stream `stream` of the server at `url` (both `${VAR}` resolved on
    /// first use).
    ///
    /// ```
    /// use etl::dead_letter::{DeadLetters, NatsDeadLetters};
    /// let queue = NatsDeadLetters::new("nats://127.0.0.1:4222", "DLQ_ORDERS");
    /// assert_eq!(queue.describe(), "nats stream DLQ_ORDERS");
    /// ```
    pub fn new(url: impl Into<String>, stream: impl Into<String>) -> NatsDeadLetters {
        NatsDeadLetters { url: url.into(), stream: stream.into(), subject: None, open: tokio::sync::OnceCell::new() }
    }

    /// The subject entries are published to (the stream captures it when it creates it).
    /// Default `etl.dead_letters.<stream>`.
    ///
    /// ```
    /// let queue = etl::dead_letter::NatsDeadLetters::new("nats://127.0.0.1:4222", "DLQ").subject("dlq.orders");
    /// ```
    pub fn subject(mut self, subject: impl Into<String>) -> NatsDeadLetters {
        self.subject = Some(subject.into());
        self
    }

    async fn open(&self) -> Result<&Open, ConnectorError> {
        self.open
            .get_or_try_init(|| async {
                let component = self.describe();
                let stream_name = crate::config::interpolate(&self.stream).map_err(|e| ConnectorError::permanent(component.clone(), e))?;
                let subject = match &self.subject {
                    Some(s) => crate::config::interpolate(s).map_err(|e| ConnectorError::permanent(component.clone(), e))?,
                    None => format!("etl.dead_letters.{stream_name}"),
                };
                let client = connect(&self.url, &component).await?;
                let js = jetstream(client);
                let stream = crate::nats::stream(&js, &stream_name, std::slice::from_ref(&subject), true, &component).await?;
                Ok(Open { stream, subject, js })
            })
            .await
    }

    /// Every entry with its stream sequence, oldest first.
    async fn entries(&self) -> Result<Vec<(u64, DeadLetter)>, ConnectorError> {
        let open = self.open().await?;
        let component = self.describe();
        let info = open.stream.get_info().await.map_err(|e| api_error(&component, "cannot read the stream's info", e))?;
        let mut out = Vec::new();
        if info.state.messages == 0 {
            return Ok(out);
        }
        let mut sequence = info.state.first_sequence;
        while sequence <= info.state.last_sequence {
            let message = match open.stream.raw_message_builder().sequence(sequence).next_by_subject(open.subject.clone()).send().await {
                Ok(m) => m,
                Err(e) if e.to_string().to_ascii_lowercase().contains("no message") || e.to_string().contains("not found") => break,
                Err(e) => return Err(api_error(&component, "cannot read an entry", e)),
            };
            sequence = message.sequence + 1;
            let time =
                SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(message.time.unix_timestamp_nanos()).unwrap_or_default());
            out.push((message.sequence, entry(&message.headers, message.payload, time)));
        }
        Ok(out)
    }
}

/// The headers of `entry`.
fn headers(entry: &DeadLetter) -> HeaderMap {
    let millis = |t: SystemTime| humantime::format_rfc3339_millis(t).to_string();
    let mut map = HeaderMap::new();
    map.insert(MSG_ID, encode_header(&entry.id).as_str());
    map.insert(ID, encode_header(&entry.id).as_str());
    map.insert(ERROR, encode_header(&entry.error).as_str());
    map.insert(KIND, entry.kind.to_string().as_str());
    map.insert(SOURCE, encode_header(&entry.source).as_str());
    map.insert(POSITION, encode_header(&serde_json::to_string(&entry.position).unwrap_or_default()).as_str());
    if let Some(step) = &entry.step {
        map.insert(STEP, encode_header(step).as_str());
    }
    map.insert(ATTEMPTS, entry.attempts.to_string().as_str());
    map.insert(FIRST_FAILED, millis(entry.first_failed).as_str());
    map.insert(LAST_FAILED, millis(entry.last_failed).as_str());
    if !entry.headers.is_empty() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let pairs: Vec<(&str, String)> = entry.headers.iter().map(|(k, v)| (k.as_str(), b64.encode(v))).collect();
        map.insert(HEADERS, encode_header(&serde_json::to_string(&pairs).unwrap_or_default()).as_str());
    }
    map
}

/// The entry stored as a message with `headers` and `payload`, published at `time`. What a
/// header does not say gets a neutral value (an entry written by another program).
fn entry(headers: &HeaderMap, payload: Bytes, time: SystemTime) -> DeadLetter {
    let text = |name: &str| headers.get(name).map(|v| decode_header(v.as_str()));
    let when = |name: &str| text(name).and_then(|t| humantime::parse_rfc3339_weak(&t).ok()).unwrap_or(time);
    let kind =
        text(KIND).and_then(|k| serde_json::from_value::<FailureKind>(serde_json::Value::String(k)).ok()).unwrap_or(FailureKind::Transform);
    let position = text(POSITION).and_then(|p| serde_json::from_str::<Position>(&p).ok()).unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD;
    let original: Vec<(String, Bytes)> = text(HEADERS)
        .and_then(|h| serde_json::from_str::<Vec<(String, String)>>(&h).ok())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| Some((k, Bytes::from(b64.decode(v).ok()?))))
        .collect();
    DeadLetter {
        id: text(ID).unwrap_or_default(),
        payload,
        error: text(ERROR).unwrap_or_default(),
        kind,
        source: text(SOURCE).unwrap_or_default(),
        position,
        step: text(STEP),
        headers: original,
        attempts: text(ATTEMPTS).and_then(|a| a.parse().ok()).unwrap_or(1),
        first_failed: when(FIRST_FAILED),
        last_failed: when(LAST_FAILED),
    }
}

#[async_trait::async_trait]
impl DeadLetters for NatsDeadLetters {
    fn describe(&self) -> String {
        format!("nats stream {}", crate::config::display(&self.stream))
    }

    async fn write(&self, entries: Vec<DeadLetter>) -> Result<(), ConnectorError> {
        let open = self.open().await?;
        let component = self.describe();
        let mut acks = Vec::with_capacity(entries.len());
        for entry in &entries {
            let ack = open
                .js
                .publish_with_headers(open.subject.clone(), headers(entry), entry.payload.clone())
                .await
                .map_err(|e| api_error(&component, "cannot publish a dead letter", e))?;
            acks.push(ack.into_future());
        }
        for answer in futures::future::join_all(acks).await {
            answer.map_err(|e| ConnectorError::retryable(component.clone(), format!("a dead letter was not stored: {e}")))?;
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<DeadLetter>, ConnectorError> {
        Ok(self.entries().await?.into_iter().map(|(_, e)| e).collect())
    }

    async fn replay(
        &self,
        filter: &(dyn for<'a> Fn(&'a DeadLetter) -> bool + Send + Sync),
        target: &mut dyn DynRepublish,
    ) -> Result<usize, ConnectorError> {
        // Finite: the entries present now, even if the target writes more.
        let snapshot: Vec<(u64, DeadLetter)> = self.entries().await?.into_iter().filter(|(_, e)| filter(e)).collect();
        if snapshot.is_empty() {
            return Ok(0);
        }
        let entries: Vec<DeadLetter> = snapshot.iter().map(|(_, e)| e.clone()).collect();
        let (mut replayed, failed) = republish(&entries, target, &self.describe()).await;
        let count = replayed.count();
        let open = self.open().await?;
        for (sequence, entry) in &snapshot {
            if replayed.take(&entry.id) {
                open.stream
                    .delete_message(*sequence)
                    .await
                    .map_err(|e| api_error(&self.describe(), &format!("entry {} was replayed but could not be removed", entry.id), e))?;
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(count),
        }
    }

    async fn purge(&self, older_than: Duration) -> Result<usize, ConnectorError> {
        let Some(cutoff) = SystemTime::now().checked_sub(older_than) else { return Ok(0) };
        let open = self.open().await?;
        let mut removed = 0;
        for (sequence, entry) in self.entries().await? {
            if entry.last_failed < cutoff {
                open.stream.delete_message(sequence).await.map_err(|e| api_error(&self.describe(), "cannot remove an entry", e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A replay target that publishes each entry's payload back to the subject it was first read
/// from, with its original headers (but its `Nats-Msg-Id`, which the stream would take for a
/// duplicate). The subject is found by looking the entry's position up in the stream its
/// source read (`nats STREAM/durable` at stream sequence n); for entries from other sources,
/// or from a stream that no longer holds the message (work-queue retention), the
/// [`fallback_subject`](NatsRepublish::fallback_subject), else the replay stops with an error
/// naming the entry.
///
/// ```no_run
/// use etl::dead_letter::{DeadLetters, NatsDeadLetters, NatsRepublish};
/// # async fn demo() -> Result<(), etl::ConnectorError> {
/// let queue = NatsDeadLetters::new("${NATS_URL}", "DLQ");
/// let mut origin = NatsRepublish::new("${NATS_URL}");
/// let replayed = queue.replay(&|_| true, &mut origin).await?;
/// # Ok(()) }
/// ```
pub struct NatsRepublish {
    url: String,
    fallback: Option<String>,
    js: Option<async_nats::jetstream::Context>,
    streams: HashMap<String, Stream>,
}

impl std::fmt::Debug for NatsRepublish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsRepublish").field("url", &crate::config::display(&self.url)).field("fallback", &self.fallback).finish()
    }
}

impl NatsRepublish {
    /// Publish to the server at `url` (`${VAR}` resolved on first use).
    pub fn new(url: impl Into<String>) -> NatsRepublish {
        NatsRepublish { url: url.into(), fallback: None, js: None, streams: HashMap::new() }
    }

    /// The subject of entries whose origin subject cannot be found. Default: none (an error).
    ///
    /// ```
    /// let target = etl::dead_letter::NatsRepublish::new("nats://127.0.0.1:4222").fallback_subject("orders.replayed");
    /// ```
    pub fn fallback_subject(mut self, subject: impl Into<String>) -> NatsRepublish {
        self.fallback = Some(subject.into());
        self
    }

    async fn subject(&mut self, entry: &DeadLetter) -> Result<String, ConnectorError> {
        let component = "nats replay";
        let js = match &self.js {
            Some(js) => js.clone(),
            None => {
                let js = jetstream(connect(&self.url, component).await?);
                self.js = Some(js.clone());
                js
            }
        };
        let found = match (parse_origin(&entry.source), &entry.position) {
            (Some(stream_name), Position::Sequence(sequence)) => {
                if !self.streams.contains_key(stream_name) {
                    if let Ok(stream) = js.get_stream(stream_name).await {
                        self.streams.insert(stream_name.to_owned(), stream);
                    }
                }
                match self.streams.get(stream_name) {
                    Some(stream) => stream.get_raw_message(*sequence).await.ok().map(|m| m.subject.to_string()),
                    None => None,
                }
            }
            _ => None,
        };
        match found.or_else(|| self.fallback.clone()) {
            Some(subject) => Ok(subject),
            None => Err(ConnectorError::permanent(
                component,
                format!(
                    "cannot tell the origin subject of dead letter {} (source `{}`, {}): set a fallback subject",
                    entry.id, entry.source, entry.position
                ),
            )),
        }
    }
}

impl Republish for NatsRepublish {
    async fn republish(&mut self, entry: &DeadLetter) -> Result<(), ConnectorError> {
        let subject = self.subject(entry).await?;
        let js = self.js.clone().ok_or_else(|| ConnectorError::permanent("nats replay", "not connected (bug)"))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &entry.headers {
            if name.eq_ignore_ascii_case(MSG_ID) || name.to_ascii_lowercase().starts_with("nats-expected") {
                continue;
            }
            if let Ok(text) = std::str::from_utf8(value) {
                headers.append(name.as_str(), text);
            }
        }
        let ack = js
            .publish_with_headers(subject.clone(), headers, entry.payload.clone())
            .await
            .map_err(|e| api_error("nats replay", "publish", e))?;
        ack.await.map_err(|e| {
            ConnectorError::retryable("nats replay", format!("replaying {} to `{subject}` was not acknowledged: {e}", entry.id))
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_survives_its_headers_binary_payload_and_all() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let original = DeadLetter {
            id: "1700000000123-42-7".into(),
            payload: Bytes::from_static(b"\xff\x00{oops\n"),
            error: "expected value at line 1\nand more: ünïcode, 100%".into(),
            kind: FailureKind::MaxDeliveries,
            source: "nats ORDERS/etl".into(),
            position: Position::Sequence(9),
            step: Some("rename(a -> b)".into()),
            headers: vec![("trace".into(), Bytes::from_static(b"abc\x01"))],
            attempts: 5,
            first_failed: now,
            last_failed: now + Duration::from_secs(3),
        };
        let map = headers(&original);
        assert_eq!(map.get(MSG_ID).map(|v| v.as_str().to_owned()).as_deref(), Some("1700000000123-42-7"));
        for (_, values) in map.iter() {
            for v in values {
                assert!(!v.as_str().contains('\n'), "{v}");
            }
        }
        let back = entry(&map, original.payload.clone(), SystemTime::now());
        assert_eq!(back, original);
    }

    #[test]
    fn a_message_without_headers_is_still_an_entry() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        let e = entry(&HeaderMap::new(), Bytes::from_static(b"x"), time);
        assert_eq!((&e.payload[..], e.first_failed, e.attempts), (&b"x"[..], time, 1));
    }
}
