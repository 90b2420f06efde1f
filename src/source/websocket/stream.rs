//! The connection loop of the WebSocket source: connect, subscribe, authenticate, read, ping,
//! reconnect. It runs in a task of its own and hands each read's messages, undecoded, to the
//! [`Reader`] on the pipeline's task, which decodes them for the batcher: framing and decoding,
//! the two halves of a message's cost, run on two cores.

use super::arena::{Arena, COPY_BELOW};
use super::decode::{classify, resolve, Decoded, Decoding, FrameKind, Pattern, Read, Received, StatusClass};
use super::WebSocketSource;
use crate::ack::Ack;
use crate::batch::{batched_chunks, Failure, FailureKind};
use crate::config::{interpolate, ConfigError, Secret};
use crate::error::{ConnectorError, Error};
use crate::record::{Extra, Meta, Position, Record};
use crate::source::reconnect::{Next, Reconnect, ReconnectPolicy};
use crate::source::{BatchStream, SourceContext};
use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Request};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// Longest wait for the TCP connection, the TLS handshake and the WebSocket handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Cap of the exponential reconnect delay (before jitter), unless the base delay is larger.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A connection that stayed up this long was healthy, even without messages.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// The WebSocket layer refuses (without buffering it) a message over this many times
/// `max_message_bytes`; between 1 and this many times it is read and dead-lettered truncated.
const HARD_LIMIT_FACTOR: usize = 8;

/// At most this many frames are handled per wake-up: every frame already read is taken in one
/// go (no future, timer poll or clock reading per message), and a connection that keeps
/// delivering still hands its records on and lets its timers fire.
const READ_AHEAD: usize = 1024;
/// A read also ends once its messages hold this many bytes (plus the one that went over): large
/// messages do not pile up 1 024 at a time.
const READ_AHEAD_BYTES: usize = 1024 * 1024;

/// Reads the connection's task may be ahead of the pipeline by, each of at most
/// [`READ_AHEAD`] frames and about [`READ_AHEAD_BYTES`]: then it stops reading and TCP holds
/// the server back.
const CHUNKS_AHEAD: usize = 4;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
/// What the connection's task hands the reader per wake-up: the messages it read, or the error
/// that ends the stream.
type Chunk = crate::Result<Vec<Read>>;

/// The authentication window of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthPhase {
    /// Waiting for `auth_ack` (or watching for `auth_fail`) until the deadline.
    Waiting(Instant),
    Done,
}

/// An open connection.
struct Open {
    ws: Ws,
    number: u64,
    /// `number` as text, for the metadata.
    number_text: Bytes,
    since: Instant,
    delivered: bool,
    last_frame: Instant,
    next_ping: Option<Instant>,
    pong_deadline: Option<Instant>,
    auth: AuthPhase,
    /// Fires at the earliest of the deadlines above (and the idle one); see [`rearm`].
    timer: Pin<Box<Sleep>>,
    /// The server sent a close frame: what follows (the end of the stream, or a TLS or TCP
    /// error of a server that does not wait for our answer) is a clean close.
    closing: bool,
}

/// What woke the read loop.
enum Wake {
    /// Frames were read and handled (data messages are in `pending`).
    Read,
    /// The stream ended (the server closed the connection).
    Closed,
    /// Reading failed.
    Failed(WsError),
    /// A message matched `auth_fail`.
    AuthFailed(Error),
    /// The timer fired with nothing due (a pong came, frames kept the connection busy).
    Rearm,
    Ping,
    PongMissed,
    Idle,
    AuthTimeout,
}

/// The time of one wake-up's frames, and the extras of its data messages by frame kind (made
/// at the first message of each kind, shared by the others).
struct Arrival {
    at: SystemTime,
    text: Option<Arc<Extra>>,
    binary: Option<Arc<Extra>>,
}

impl Arrival {
    fn extra(&mut self, kind: FrameKind, decoding: &Decoding, connection: &Bytes) -> Arc<Extra> {
        let at = self.at;
        let slot = match kind {
            FrameKind::Text => &mut self.text,
            FrameKind::Binary => &mut self.binary,
        };
        Arc::clone(slot.get_or_insert_with(|| decoding.extra(kind, connection, at)))
    }
}

/// How a connection ended.
struct Ended {
    reason: String,
    /// The server closed it (a close frame or the end of the stream), not an error.
    clean: bool,
}

struct Connection {
    /// The resolved URL (requests only; never logged, it may hold a resolved secret).
    request: Request<()>,
    /// The URL as configured, for logs and errors.
    label: String,
    subscribe: Vec<String>,
    connector: Option<Connector>,
    config: WebSocketConfig,
    reconnect: Reconnect,
    reconnect_enabled: bool,
    ping_interval: Option<Duration>,
    pong_timeout: Duration,
    idle_timeout: Option<Duration>,
    auth_ack: Option<Pattern>,
    auth_fail: Option<Pattern>,
    auth_ack_timeout: Duration,
    /// Shared with the [`Reader`]; here for the `url` of each read's extras.
    decoding: Arc<Decoding>,
    /// Where small messages' bytes are copied to.
    arena: Arena,
    open: Option<Open>,
    /// Messages read and not yet handed to the batcher.
    pending: Vec<Read>,
    /// A connection that ended after messages still in `pending`: handled once they are out.
    ended: Option<Ended>,
    /// Data messages read so far (the position of the next is this + 1).
    sequence: u64,
    /// Connections opened so far.
    connections: u64,
    shutdown: CancellationToken,
    done: bool,
    /// The error that ends the stream, returned once the pending items are out.
    error: Option<Error>,
}

impl Connection {
    fn component(&self) -> String {
        component(&self.label)
    }

    /// One connection attempt: handshake and subscribe messages.
    async fn attempt(&mut self) -> Result<Ws, ConnectorError> {
        let component = self.component();
        let handshake =
            tokio_tungstenite::connect_async_tls_with_config(self.request.clone(), Some(self.config), true, self.connector.clone());
        let ws = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
            Err(_) => return Err(ConnectorError::retryable(component, format!("no WebSocket handshake within {CONNECT_TIMEOUT:?}"))),
            Ok(Ok((ws, _response))) => ws,
            Ok(Err(WsError::Http(response))) => {
                let status = response.status();
                let error = format!("the handshake was answered with HTTP status {status}");
                return Err(match classify(status.as_u16()) {
                    StatusClass::Retry => ConnectorError::retryable(component, error),
                    StatusClass::Fatal => ConnectorError::permanent(component, error),
                });
            }
            Ok(Err(e @ (WsError::Url(_) | WsError::HttpFormat(_)))) => return Err(ConnectorError::permanent(component, e)),
            Ok(Err(e)) => return Err(ConnectorError::retryable(component, e)),
        };
        let mut ws = ws;
        for text in &self.subscribe {
            if let Err(e) = ws.send(Message::text(text.as_str())).await {
                return Err(ConnectorError::retryable(component, format!("sending a subscribe message failed: {e}")));
            }
        }
        Ok(ws)
    }

    /// Connect, retrying per the reconnect policy. `Ok(false)`: shutdown came first.
    async fn connect(&mut self) -> crate::Result<bool> {
        loop {
            let error = match self.attempt().await {
                Ok(ws) => {
                    self.connections += 1;
                    let now = Instant::now();
                    let auth = match (&self.auth_ack, &self.auth_fail) {
                        (None, None) => AuthPhase::Done,
                        _ => AuthPhase::Waiting(now + self.auth_ack_timeout),
                    };
                    tracing::debug!(url = %self.label, connection = self.connections, "websocket connected");
                    let mut open = Open {
                        ws,
                        number: self.connections,
                        number_text: Bytes::from(self.connections.to_string()),
                        since: now,
                        delivered: false,
                        last_frame: now,
                        next_ping: self.ping_interval.map(|d| now + d),
                        pong_deadline: None,
                        auth,
                        timer: Box::pin(tokio::time::sleep_until(now)),
                        closing: false,
                    };
                    rearm(&mut open, self.idle_timeout);
                    self.open = Some(open);
                    return Ok(true);
                }
                Err(e) if !e.is_retryable() => {
                    tracing::error!(error = %e, url = %self.label, "websocket connection refused permanently");
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
        crate::source::reconnect::pause(next, error, self.reconnect_enabled, "websocket", &self.label, component, &self.shutdown).await
    }

    /// The messages of the next read; `None` when the stream is over.
    async fn next_chunk(&mut self) -> Option<Chunk> {
        loop {
            // Messages read before an end go first (the dead letter of the message that broke
            // the connection, the records before an authentication failure), then the error;
            // a reconnect waits until they are out.
            if !self.pending.is_empty() {
                return Some(Ok(std::mem::replace(&mut self.pending, Vec::with_capacity(READ_AHEAD))));
            }
            if self.done {
                return self.error.take().map(Err);
            }
            if let Some(ended) = self.ended.take() {
                // Boxed, like connecting: the pause is rare, and the future of every read
                // stays small.
                Box::pin(self.end(ended)).await;
                continue;
            }
            if self.open.is_none() {
                let connected = Box::pin(self.connect()).await;
                self.go_on(connected);
                continue;
            }
            match self.read().await {
                Ok(None) => {}
                Ok(Some(ended)) => self.ended = Some(ended),
                Err(e) => {
                    self.open = None;
                    self.go_on(Err(e));
                }
            }
        }
    }

    /// Wait for events of the open connection and handle them: `Ok(None)` goes on (messages
    /// may be pending), `Ok(Some)` the connection ended, `Err` an authentication failure.
    async fn read(&mut self) -> crate::Result<Option<Ended>> {
        let wake = std::future::poll_fn(|cx| self.poll_read(cx)).await;
        let Some(open) = self.open.as_mut() else { return Ok(None) };
        let now = Instant::now();
        match wake {
            Wake::Read => Ok(None),
            Wake::Rearm => {
                rearm(open, self.idle_timeout);
                Ok(None)
            }
            Wake::Ping => {
                open.next_ping = self.ping_interval.map(|d| now + d);
                if open.pong_deadline.is_none() {
                    open.pong_deadline = Some(now + self.pong_timeout);
                }
                rearm(open, self.idle_timeout);
                if let Err(e) = open.ws.send(Message::Ping(Bytes::from_static(b"etl"))).await {
                    return Ok(Some(Ended { reason: format!("sending a ping failed: {e}"), clean: false }));
                }
                Ok(None)
            }
            Wake::PongMissed => Ok(Some(Ended {
                reason: format!("no pong within {:?} of a ping (pong_timeout): the connection is dead", self.pong_timeout),
                clean: false,
            })),
            Wake::Idle => Ok(Some(Ended {
                reason: format!("nothing received for {:?} (idle_timeout)", self.idle_timeout.unwrap_or_default()),
                clean: false,
            })),
            Wake::AuthTimeout => {
                open.auth = AuthPhase::Done;
                rearm(open, self.idle_timeout);
                if self.auth_ack.is_some() {
                    let error = format!(
                        "authentication failed: no message matching auth_ack within {:?} (auth_ack_timeout) of connecting; not reconnecting",
                        self.auth_ack_timeout
                    );
                    tracing::error!(url = %self.label, "{error}");
                    return Err(Error::Source(ConnectorError::permanent(self.component(), error)));
                }
                Ok(None)
            }
            Wake::AuthFailed(error) => Err(error),
            Wake::Closed => Ok(Some(Ended { reason: "the server closed the connection".to_owned(), clean: true })),
            Wake::Failed(WsError::Capacity(e)) => {
                self.sequence += 1;
                let error = format!(
                    "WebSocket message {} refused by the WebSocket layer ({e}; over {HARD_LIMIT_FACTOR} x max_message_bytes): its bytes were never buffered; the connection was closed with 1009 and is reopened",
                    self.sequence
                );
                tracing::warn!(url = %self.label, "{error}");
                // Tell the server why (1009), briefly: the connection is dropped either way.
                let frame = CloseFrame { code: CloseCode::Size, reason: "message too big".into() };
                let _ = tokio::time::timeout(Duration::from_secs(1), open.ws.close(Some(frame))).await;
                let extra = Extra {
                    timestamp: Some(SystemTime::now()),
                    headers: vec![("url".to_owned(), self.decoding.url.clone()), ("connection".to_owned(), open.number_text.clone())],
                    ..Extra::default()
                };
                let meta = Meta::at(Position::Sequence(self.sequence)).with_extra(extra);
                self.pending.push(Read::Refused(Box::new(Failure::new(Bytes::new(), FailureKind::Decode, error.clone(), meta))));
                Ok(Some(Ended { reason: error, clean: false }))
            }
            Wake::Failed(WsError::ConnectionClosed) => {
                Ok(Some(Ended { reason: "the server closed the connection".to_owned(), clean: true }))
            }
            Wake::Failed(e) if open.closing => {
                tracing::debug!(url = %self.label, error = %e, "the connection ended after the server's close frame");
                Ok(Some(Ended { reason: "the server closed the connection".to_owned(), clean: true }))
            }
            Wake::Failed(e) => Ok(Some(Ended { reason: format!("reading failed: {e}"), clean: false })),
        }
    }

    /// Poll the open connection: its timer first (frames that keep coming must not starve
    /// it), then every frame already read, up to [`READ_AHEAD`] frames or
    /// [`READ_AHEAD_BYTES`], handled at once; data
    /// messages go to `pending`. One clock reading per wake-up with frames: the messages read
    /// together share their receive time and their extras.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        let Connection { open, decoding, arena, pending, sequence, reconnect, auth_ack, auth_fail, idle_timeout, label, .. } = self;
        let Some(open) = open.as_mut() else { return Poll::Ready(Wake::Read) };
        if open.timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(due(open, *idle_timeout));
        }
        let mut arrival: Option<Arrival> = None;
        let mut bytes = 0usize;
        for _ in 0..READ_AHEAD {
            if bytes >= READ_AHEAD_BYTES {
                break;
            }
            let message = match open.ws.poll_next_unpin(cx) {
                Poll::Pending if arrival.is_some() => return Poll::Ready(Wake::Read),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Wake::Closed),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Wake::Failed(e)),
                Poll::Ready(Some(Ok(message))) => message,
            };
            let arrival = arrival.get_or_insert_with(|| {
                open.last_frame = Instant::now();
                Arrival { at: SystemTime::now(), text: None, binary: None }
            });
            let (payload, kind) = match message {
                Message::Text(text) => (Bytes::from(text), FrameKind::Text),
                Message::Binary(bytes) => (bytes, FrameKind::Binary),
                Message::Pong(_) => {
                    open.pong_deadline = None;
                    continue;
                }
                Message::Close(frame) => {
                    // tungstenite answers it; the stream ends after.
                    open.closing = true;
                    tracing::debug!(url = %label, ?frame, "the server sent a close frame");
                    continue;
                }
                // Pings are answered by tungstenite (the pong goes out with the next read).
                Message::Ping(_) | Message::Frame(_) => continue,
            };
            if let AuthPhase::Waiting(_) = open.auth {
                if auth_fail.as_ref().is_some_and(|p| p.matches(&payload)) {
                    let error = format!(
                        "authentication failed: the server sent a message matching auth_fail ({} bytes); not reconnecting",
                        payload.len()
                    );
                    tracing::error!(url = %label, "{error}");
                    return Poll::Ready(Wake::AuthFailed(Error::Source(ConnectorError::permanent(component(label), error))));
                }
                if auth_ack.as_ref().is_some_and(|p| p.matches(&payload)) {
                    tracing::debug!(url = %label, connection = open.number, "authenticated (auth_ack)");
                    open.auth = AuthPhase::Done;
                    open.delivered = true;
                    reconnect.succeeded();
                    continue;
                }
            }
            open.delivered = true;
            reconnect.succeeded();
            *sequence += 1;
            bytes += payload.len();
            // A small message is copied out of tungstenite's buffer (see `arena`).
            let payload = if payload.len() < COPY_BELOW { arena.copy(&payload) } else { payload };
            let extra = arrival.extra(kind, decoding, &open.number_text);
            pending.push(Read::Message(Received { payload, kind, sequence: *sequence, connection: open.number, extra }));
        }
        Poll::Ready(Wake::Read)
    }

    /// The connection ended: reconnect per the policy, or end the stream.
    async fn end(&mut self, ended: Ended) {
        let Some(open) = self.open.take() else { return };
        drop(open.ws);
        if !self.reconnect_enabled && ended.clean {
            tracing::info!(url = %self.label, "websocket closed by the server (reconnect is off)");
            self.done = true;
            return;
        }
        let next = self.reconnect.ended(open.delivered, open.since.elapsed());
        let paused = self.pause(next, &ended.reason).await;
        self.go_on(paused);
    }

    /// After connecting or pausing: `Ok(true)` goes on; `Ok(false)` ends the stream quietly;
    /// an error ends it with that error as its last item.
    fn go_on(&mut self, outcome: crate::Result<bool>) {
        match outcome {
            Ok(true) => {}
            Ok(false) => self.done = true,
            Err(e) => {
                self.done = true;
                self.error = Some(e);
            }
        }
    }
}

/// How logs and errors name the source of `label` (its URL as configured).
fn component(label: &str) -> String {
    format!("websocket source {label}")
}

/// What the connection's timer fired for: the first deadline passed, in order of urgency.
fn due(open: &Open, idle_timeout: Option<Duration>) -> Wake {
    let now = Instant::now();
    let passed = |at: Option<Instant>| at.is_some_and(|at| at <= now);
    if matches!(open.auth, AuthPhase::Waiting(at) if at <= now) {
        Wake::AuthTimeout
    } else if passed(open.pong_deadline) {
        Wake::PongMissed
    } else if passed(idle_timeout.map(|d| open.last_frame + d)) {
        Wake::Idle
    } else if passed(open.next_ping) {
        Wake::Ping
    } else {
        Wake::Rearm
    }
}

/// Arm the connection's timer at its earliest deadline: the next ping, the pong awaited, the
/// end of the authentication window, the idle deadline (a year away when there is none).
fn rearm(open: &mut Open, idle_timeout: Option<Duration>) {
    let auth = match open.auth {
        AuthPhase::Waiting(at) => Some(at),
        AuthPhase::Done => None,
    };
    let idle = idle_timeout.map(|d| open.last_frame + d);
    let at = [open.next_ping, open.pong_deadline, auth, idle].into_iter().flatten().min();
    let at = at.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
    if open.timer.deadline() != at {
        open.timer.as_mut().reset(at);
    }
}

/// The rustls configuration for `wss://`: ring, the Mozilla roots and the `ca_file`'s.
fn tls(ca_file: Option<&str>, component: &str) -> crate::Result<Connector> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let permanent = |message: String| Error::Source(ConnectorError::permanent(component.to_owned(), message));
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let path = interpolate(path)?;
        let certs = CertificateDer::pem_file_iter(&path).map_err(|e| permanent(format!("ca_file {path}: {e}")))?;
        for cert in certs {
            let cert = cert.map_err(|e| permanent(format!("ca_file {path}: {e}")))?;
            roots.add(cert).map_err(|e| permanent(format!("ca_file {path}: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| permanent(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Connector::Rustls(Arc::new(config)))
}

/// Resolve the options, make the first connection (a 4xx, a wrong URL or a failed
/// authentication fails the start-up), and return the batched message stream.
pub(super) async fn open<T: Record>(source: WebSocketSource<T>, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
    let component = component(&source.url);
    let url = interpolate(&source.url)?;
    let invalid_url = |message: String| ConfigError::Invalid { option: "url", message: format!("`{}` {message}", source.url) };
    let mut request = url.as_str().into_client_request().map_err(|e| invalid_url(format!("is not a WebSocket URL: {e}")))?;
    let scheme = request.uri().scheme_str().unwrap_or_default().to_ascii_lowercase();
    let connector = match scheme.as_str() {
        "ws" => Some(Connector::Plain),
        "wss" => Some(tls(source.ca_file.as_deref(), &component)?),
        other => return Err(invalid_url(format!("has the scheme `{other}`: use ws:// or wss://")).into()),
    };
    for (name, template) in &source.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ConfigError::Invalid { option: "headers", message: format!("invalid header name `{name}`: {e}") })?;
        let value = Secret::resolve(template.expose())?;
        let mut value = HeaderValue::from_str(value.expose()).map_err(|_| ConfigError::Invalid {
            option: "headers",
            message: format!("the value of header `{name}` is not a valid HTTP header value"),
        })?;
        value.set_sensitive(true);
        request.headers_mut().append(header, value);
    }
    let lookup = |name: &str| std::env::var(name).ok();
    let subscribe = source.subscribe.iter().map(|m| resolve(m, &lookup)).collect::<Result<Vec<_>, _>>()?;
    let auth_ack = source.auth_ack.as_deref().map(interpolate).transpose()?.map(|p| Pattern::parse(&p));
    let auth_fail = source.auth_fail.as_deref().map(interpolate).transpose()?.map(|p| Pattern::parse(&p));
    if source.max_message_bytes == 0 {
        return Err(ConfigError::Invalid { option: "max_message_bytes", message: "must be at least 1".into() }.into());
    }
    let hard_limit = source.max_message_bytes.saturating_mul(HARD_LIMIT_FACTOR);
    let config = WebSocketConfig::default().max_message_size(Some(hard_limit)).max_frame_size(Some(hard_limit));
    let policy = ReconnectPolicy {
        enabled: source.reconnect,
        initial_delay: source.reconnect_delay,
        max_delay: MAX_DELAY,
        max_reconnects: source.max_reconnects,
        stable_after: STABLE_AFTER,
        jitter: true,
    };
    let decoding = Arc::new(Decoding {
        format: source.data_format,
        split_arrays: source.split_arrays,
        max_message_bytes: source.max_message_bytes,
        url: Bytes::from(crate::config::redact(&source.url)),
    });
    let mut connection = Connection {
        request,
        label: source.url.clone(),
        subscribe,
        connector,
        config,
        reconnect: Reconnect::new(policy),
        reconnect_enabled: source.reconnect,
        ping_interval: Some(source.ping_interval).filter(|d| !d.is_zero()),
        pong_timeout: source.pong_timeout,
        idle_timeout: source.idle_timeout.filter(|d| !d.is_zero()),
        auth_ack,
        auth_fail,
        auth_ack_timeout: source.auth_ack_timeout,
        decoding: Arc::clone(&decoding),
        arena: Arena::default(),
        open: None,
        pending: Vec::with_capacity(READ_AHEAD),
        ended: None,
        sequence: 0,
        connections: 0,
        shutdown: ctx.shutdown.clone(),
        done: false,
        error: None,
    };
    let connected = tokio::select! {
        connected = connection.connect() => connected?,
        () = ctx.shutdown.cancelled() => false,
    };
    connection.done = !connected;
    // The connection runs in a task of its own (framing, pings, reconnects), beside the
    // pipeline's task that decodes what it read: the two halves of a message's cost on two
    // cores. The task stops when the reader is dropped.
    let stop = ctx.shutdown.child_token();
    let (chunks, queue) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
    let task = tokio::spawn(run(connection, chunks, stop.clone()));
    let reader = Reader::<T> { queue, decoding, task: Some(task), component, _stop: stop.drop_guard(), record: PhantomData };
    let origin: Arc<str> = Arc::from(format!("websocket {}", crate::config::redact(&source.url)));
    Ok(batched_chunks(reader, source.batching, ctx.shutdown, origin, |_tokens: Vec<()>| Ack::none()))
}

/// The connection's task: read until the stream is over, the reader is gone or `stop`.
async fn run(mut connection: Connection, chunks: tokio::sync::mpsc::Sender<Chunk>, stop: CancellationToken) {
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let next = tokio::select! {
            biased;
            next = connection.next_chunk() => next,
            () = &mut stopped => return,
        };
        let Some(chunk) = next else { return };
        if chunks.send(chunk).await.is_err() {
            return; // the reader is gone
        }
    }
}

/// The batcher's input: what the connection's task read, decoded on the pipeline's task.
struct Reader<T> {
    queue: tokio::sync::mpsc::Receiver<Chunk>,
    decoding: Arc<Decoding>,
    /// The connection's task, awaited once its queue closes: a panic in it ends the stream
    /// with an error rather than as if the server had closed it.
    task: Option<tokio::task::JoinHandle<()>>,
    component: String,
    /// Stops the connection's task when the reader is dropped.
    _stop: tokio_util::sync::DropGuard,
    record: PhantomData<fn() -> T>,
}

impl<T: Record> Stream for Reader<T> {
    type Item = crate::Result<Decoded<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(chunk) = std::task::ready!(this.queue.poll_recv(cx)) else {
            let Some(task) = this.task.as_mut() else { return Poll::Ready(None) };
            let joined = std::task::ready!(Pin::new(task).poll(cx));
            this.task = None;
            return Poll::Ready(match joined {
                Err(e) if e.is_panic() => {
                    let error = ConnectorError::permanent(this.component.clone(), "the connection's task panicked");
                    tracing::error!(component = %this.component, "the connection's task panicked");
                    Some(Err(Error::Source(error)))
                }
                _ => None,
            });
        };
        Poll::Ready(Some(chunk.map(|reads| Decoded::new(reads, Arc::clone(&this.decoding)))))
    }
}
