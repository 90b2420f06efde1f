//! The connection loop of the SSE source: connect, read events, reconnect.

use super::decode::{classify, decode, wanted, StatusClass};
use super::frame::{Frame, Parser};
use super::resume::{self, Resume};
use super::{DataFormat, SseSource};
use crate::ack::{settle_at_end, Ack, Outstanding};
use crate::batch::{batched, Incoming};
use crate::config::{interpolate, ConfigError, Secret};
use crate::error::{ConnectorError, Error};
use crate::record::Record;
use crate::source::reconnect::{Next, Reconnect, ReconnectPolicy};
use crate::source::{BatchStream, SourceContext};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CACHE_CONTROL};
use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest wait for a TCP (and TLS) connection. There is no read timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Cap of the exponential reconnect delay (before jitter), unless the base delay is larger.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A connection that stayed up this long was healthy, even without events.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Why a response body stopped.
#[derive(Debug)]
enum BodyError {
    Http(reqwest::Error),
    Idle(Duration),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Http(e) => write!(f, "reading the stream failed: {e}"),
            BodyError::Idle(d) => write!(f, "nothing received for {d:?} (idle_timeout)"),
        }
    }
}

/// One item for the batcher; its token is the last event id when the id is persisted.
type Item<T> = Incoming<T, Option<Arc<str>>>;

type Body = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send>>;

/// The body of a response as a byte stream, ending with an error after `idle` without a byte.
fn body(response: reqwest::Response, idle: Option<Duration>) -> Body {
    Box::pin(futures::stream::unfold(Some(response), move |state| async move {
        let mut response = state?;
        let chunk = match idle {
            Some(d) => match tokio::time::timeout(d, response.chunk()).await {
                Ok(chunk) => chunk,
                Err(_) => return Some((Err(BodyError::Idle(d)), None)),
            },
            None => response.chunk().await,
        };
        match chunk {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(response))),
            Ok(None) => None,
            Err(e) => Some((Err(BodyError::Http(e)), None)),
        }
    }))
}

/// An open connection: its body, when it opened, whether it delivered an event.
struct Open {
    body: Body,
    since: Instant,
    delivered: bool,
}

/// What a connection attempt gave.
enum Attempt {
    Connected(reqwest::Response),
    /// 204: the server says stop.
    Stop,
}

/// What a connection attempt needs; borrowed apart from the connection (which is not `Sync`).
struct Request<'a> {
    client: &'a reqwest::Client,
    url: &'a str,
    label: &'a str,
    headers: &'a HeaderMap,
    last_id: &'a str,
}

/// One connection attempt.
async fn attempt(r: Request<'_>) -> Result<Attempt, ConnectorError> {
    let component = || format!("sse source {}", r.label);
    let mut request = r.client.get(r.url).headers(r.headers.clone()).header(ACCEPT, "text/event-stream").header(CACHE_CONTROL, "no-cache");
    if !r.last_id.is_empty() {
        // Bytes, not `from_str`: an id may be any UTF-8 text (browsers send it UTF-8 encoded).
        match HeaderValue::from_bytes(r.last_id.as_bytes()) {
            Ok(id) => request = request.header("Last-Event-ID", id),
            Err(_) => tracing::warn!(url = %r.label, "last event id is not a valid header value; connecting without Last-Event-ID"),
        }
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) if e.is_builder() => return Err(ConnectorError::permanent(component(), e)),
        Err(e) => return Err(ConnectorError::retryable(component(), e)),
    };
    let status = response.status();
    let error = || format!("HTTP status {status}");
    match classify(status.as_u16()) {
        StatusClass::Stream => Ok(Attempt::Connected(response)),
        StatusClass::Stop => Ok(Attempt::Stop),
        StatusClass::Retry => Err(ConnectorError::retryable(component(), error())),
        StatusClass::Fatal => Err(ConnectorError::permanent(component(), error())),
    }
}

struct Connection<T> {
    client: reqwest::Client,
    /// The resolved URL (requests only; never logged, it may hold a resolved secret).
    url: String,
    /// The URL as configured, for logs and errors.
    label: String,
    headers: HeaderMap,
    filter: Option<String>,
    format: DataFormat,
    reconnect: Reconnect,
    reconnect_enabled: bool,
    idle_timeout: Option<Duration>,
    max_event_bytes: usize,
    /// The event parser; it keeps the last event id (sent as `Last-Event-ID`) across
    /// connections.
    parser: Parser,
    /// The last event id as a shared string, the token of each item when the id is persisted
    /// (`None`: it is not).
    id_token: Option<Arc<str>>,
    open: Option<Open>,
    shutdown: CancellationToken,
    done: bool,
    _record: PhantomData<fn() -> T>,
}

impl<T: Record> Connection<T> {
    fn component(&self) -> String {
        format!("sse source {}", self.label)
    }

    /// Connect, retrying per the reconnect policy. `Ok(false)`: stop without error (204 or
    /// shutdown).
    async fn connect(&mut self) -> crate::Result<bool> {
        loop {
            let last_id = self.parser.last_event_id();
            let request = Request { client: &self.client, url: &self.url, label: &self.label, headers: &self.headers, last_id };
            let error = match attempt(request).await {
                Ok(Attempt::Connected(response)) => {
                    tracing::debug!(url = %self.label, last_event_id = %self.parser.last_event_id(), "sse connected");
                    self.parser.restart();
                    self.open = Some(Open { body: body(response, self.idle_timeout), since: Instant::now(), delivered: false });
                    return Ok(true);
                }
                Ok(Attempt::Stop) => {
                    tracing::info!(url = %self.label, "server answered 204 No Content: stream ends");
                    return Ok(false);
                }
                Err(e) if !e.is_retryable() => {
                    tracing::error!(error = %e, url = %self.label, "sse connection refused permanently");
                    return Err(Error::Source(e));
                }
                Err(e) => e.to_string(),
            };
            let next = self.reconnect.failed();
            if !self.pause(next, &error).await? {
                return Ok(false);
            }
        }
    }

    /// After a failure: wait per the policy (see [`crate::source::reconnect::pause`]).
    async fn pause(&mut self, next: Next, error: &str) -> crate::Result<bool> {
        let component = self.component();
        crate::source::reconnect::pause(next, error, self.reconnect_enabled, "sse", &self.label, component, &self.shutdown).await
    }

    /// The next item for the batcher; `None` when the stream is over.
    async fn next_item(&mut self) -> Option<crate::Result<Item<T>>> {
        loop {
            if self.done {
                return None;
            }
            let Some(open) = self.open.as_mut() else {
                let connected = self.connect().await;
                match self.go_on(connected) {
                    ControlFlow::Continue(()) => continue,
                    ControlFlow::Break(last) => return last,
                }
            };
            match self.parser.next_frame() {
                Some(Frame::Retry(delay)) => {
                    tracing::debug!(url = %self.label, ?delay, "server set the reconnect delay (retry:)");
                    self.reconnect.server_retry(delay);
                    continue;
                }
                Some(Frame::Event(event)) => {
                    self.reconnect.succeeded();
                    open.delivered = true;
                    if !wanted(&event, self.filter.as_deref()) {
                        continue;
                    }
                    let token = self.id_token.as_mut().map(|token| {
                        if **token != *event.id {
                            *token = Arc::from(event.id.as_str());
                        }
                        Arc::clone(token)
                    });
                    return Some(Ok(decode(event, self.format, self.max_event_bytes, token)));
                }
                None => {}
            }
            let (since, delivered) = (open.since, open.delivered);
            let (ended, clean) = match open.body.next().await {
                Some(Ok(chunk)) => {
                    self.parser.push(chunk);
                    continue;
                }
                Some(Err(e)) => (e.to_string(), false),
                None => ("the server closed the stream".to_owned(), true),
            };
            // The connection is gone; an event cut off with it was never dispatched.
            self.open = None;
            self.parser.restart();
            if !self.reconnect_enabled && clean {
                tracing::info!(url = %self.label, "sse stream ended (reconnect is off)");
                self.done = true;
                return None;
            }
            let next = self.reconnect.ended(delivered, since.elapsed());
            let paused = self.pause(next, &ended).await;
            if let ControlFlow::Break(last) = self.go_on(paused) {
                return last;
            }
        }
    }

    /// After connecting or pausing: `Ok(true)` goes on; `Ok(false)` ends the stream quietly;
    /// an error ends it with that error as its last item.
    fn go_on(&mut self, outcome: crate::Result<bool>) -> ControlFlow<Option<crate::Result<Item<T>>>> {
        match outcome {
            Ok(true) => ControlFlow::Continue(()),
            Ok(false) => {
                self.done = true;
                ControlFlow::Break(None)
            }
            Err(e) => {
                self.done = true;
                ControlFlow::Break(Some(Err(e)))
            }
        }
    }
}

/// Resolve the options, make the first connection (a 4xx or a wrong URL fails the start-up),
/// and return the batched event stream.
pub(super) async fn open<T: Record>(source: SseSource<T>, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
    let url = interpolate(&source.url)?;
    reqwest::Url::parse(&url)
        .map_err(|e| ConfigError::Invalid { option: "url", message: format!("`{}` is not a valid URL: {e}", source.url) })?;
    let mut headers = HeaderMap::new();
    for (name, template) in &source.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ConfigError::Invalid { option: "header", message: format!("invalid header name `{name}`: {e}") })?;
        let value = Secret::resolve(template.expose())?;
        let mut value = HeaderValue::from_str(value.expose()).map_err(|_| ConfigError::Invalid {
            option: "header",
            message: format!("the value of header `{name}` is not a valid HTTP header value"),
        })?;
        value.set_sensitive(true);
        headers.append(header, value);
    }
    let mut last_id = source.last_event_id.unwrap_or_default();
    // What the stream's end waits for: the acknowledgements of its batches and the writes of
    // the last event id file.
    let outstanding = Outstanding::new();
    let resume = match &source.last_event_id_file {
        Some(path) => {
            let component = || format!("sse source {}", source.url);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !dir.is_dir() {
                    return Err(ConfigError::Invalid {
                        option: "last_event_id_file",
                        message: format!("the directory of `{}` does not exist", path.display()),
                    }
                    .into());
                }
            }
            let stored = resume::read(path).map_err(|e| {
                Error::Source(ConnectorError::permanent(
                    component(),
                    format!("cannot read the last event id file `{}`: {e}", path.display()),
                ))
            })?;
            if let Some(id) = stored.as_deref().filter(|id| !id.is_empty()) {
                tracing::info!(url = %source.url, path = %path.display(), last_event_id = id, "resuming after the stored last event id");
                id.clone_into(&mut last_id);
            }
            Some(Resume::start(path.clone(), stored, &outstanding))
        }
        None => None,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| Error::Source(ConnectorError::permanent(format!("sse source {}", source.url), e)))?;
    let policy = ReconnectPolicy {
        enabled: source.reconnect,
        initial_delay: source.reconnect_delay,
        max_delay: MAX_DELAY,
        max_reconnects: source.max_reconnects,
        stable_after: STABLE_AFTER,
        jitter: true,
    };
    let mut connection = Connection::<T> {
        client,
        url,
        label: source.url.clone(),
        headers,
        filter: source.event_filter,
        format: source.data_format,
        reconnect: Reconnect::new(policy),
        reconnect_enabled: source.reconnect,
        idle_timeout: source.idle_timeout,
        max_event_bytes: source.max_event_bytes,
        id_token: resume.as_ref().map(|_| Arc::from(last_id.as_str())),
        parser: Parser::new(source.max_event_bytes).with_last_event_id(last_id),
        open: None,
        shutdown: ctx.shutdown.clone(),
        done: false,
        _record: PhantomData,
    };
    let connected = tokio::select! {
        connected = connection.connect() => connected?,
        () = ctx.shutdown.cancelled() => false,
    };
    connection.done = !connected;
    // Boxed: the state moves in and out of each item's future, a pointer rather than the connection.
    let input = futures::stream::unfold(Box::new(connection), |mut connection| async move {
        let item = connection.next_item().await?;
        Some((item, connection))
    });
    let origin: Arc<str> = Arc::from(format!("sse {}", source.url));
    let resume_gate = resume.clone();
    let make_ack = move |tokens: Vec<Option<Arc<str>>>| match (&resume, tokens.last()) {
        (Some(resume), Some(Some(id))) => resume.ack(Arc::clone(id)),
        _ => Ack::none(),
    };
    let batches = batched(input, source.batching, ctx.shutdown, origin, make_ack);
    // With a resume file, the next batch is read only once the file covers every batch
    // acknowledged so far (see `resume`).
    let batches: BatchStream<T> = match resume_gate {
        Some(resume) => Box::pin(futures::stream::unfold((batches, resume), |(mut batches, resume)| async move {
            resume.caught_up().await;
            let item = batches.next().await?;
            Some((item, (batches, resume)))
        })),
        None => batches,
    };
    Ok(Box::pin(settle_at_end(batches, outstanding, ())))
}
