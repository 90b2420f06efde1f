//! A WebSocket server on loopback (tokio-tungstenite's `accept`), plain or TLS with a
//! self-signed certificate (rcgen), whose every connection runs a handler the test writes
//! with [`Peer`]'s helpers: send text, binary, fragmented messages, pings and close frames,
//! drop the TCP connection, stay silent, read the client's messages. The server counts the
//! connections and records what the client sent (subscribe messages, pongs, close frames).
//! Used by `tests/websocket.rs`, `tests/contract_websocket.rs` and `benches/websocket.rs`.

use futures::{SinkExt, StreamExt};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Io for S {}

pub type Ws = WebSocketStream<Box<dyn Io>>;

/// What the server saw, shared by every connection.
#[derive(Default)]
pub struct Seen {
    connections: AtomicUsize,
    /// (connection number, message) of every message read from a client, pongs and close
    /// frames included.
    received: Mutex<Vec<(usize, Message)>>,
    /// The request headers of each handshake, in order.
    headers: Mutex<Vec<Vec<(String, String)>>>,
}

type Handler = Arc<dyn Fn(Peer) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

pub struct WsServer {
    addr: SocketAddr,
    tls: Option<PathBuf>,
    pub seen: Arc<Seen>,
    _dir: Option<tempfile::TempDir>,
}

/// One connection, as the handler sees it.
pub struct Peer {
    pub ws: Ws,
    /// 1-based.
    pub number: usize,
    pub seen: Arc<Seen>,
}

/// The handshake's answer.
#[derive(Clone, Copy)]
enum Accept {
    Upgrade,
    Status(u16),
}

impl WsServer {
    /// A ws:// server running `handler` on each connection.
    pub async fn start<F, Fut>(handler: F) -> WsServer
    where
        F: Fn(Peer) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::serve(boxed(handler), None, Accept::Upgrade).await
    }

    /// A server answering every handshake with this HTTP status (401, 503, ...).
    pub async fn rejecting(status: u16) -> WsServer {
        Self::serve(boxed(|_peer| async {}), None, Accept::Status(status)).await
    }

    /// A wss:// server with a self-signed certificate for `localhost`; [`ca_file`] is its PEM.
    ///
    /// [`ca_file`]: WsServer::ca_file
    pub async fn start_tls<F, Fut>(handler: F) -> WsServer
    where
        F: Fn(Peer) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a self-signed certificate");
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, certified.cert.pem()).unwrap();
        let key = tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .expect("a TLS server configuration");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let mut server = Self::serve(boxed(handler), Some(acceptor), Accept::Upgrade).await;
        server.tls = Some(pem);
        server._dir = Some(dir);
        server
    }

    async fn serve(handler: Handler, tls: Option<tokio_rustls::TlsAcceptor>, accept: Accept) -> WsServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the WebSocket server");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let shared = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                let (handler, seen, tls) = (Arc::clone(&handler), Arc::clone(&shared), tls.clone());
                tokio::spawn(async move {
                    let io: Box<dyn Io> = match tls {
                        Some(acceptor) => match acceptor.accept(socket).await {
                            Ok(stream) => Box::new(stream),
                            Err(_) => return,
                        },
                        None => Box::new(socket),
                    };
                    let headers_seen = Arc::clone(&seen);
                    // tungstenite's `Callback` fixes this signature, its large error included.
                    #[allow(clippy::result_large_err)]
                    let callback = move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
                        let headers = request
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                            .collect();
                        headers_seen.headers.lock().unwrap().push(headers);
                        match accept {
                            Accept::Upgrade => Ok(response),
                            Accept::Status(status) => {
                                let mut refusal = ErrorResponse::new(Some("refused".to_owned()));
                                *refusal.status_mut() = status.try_into().unwrap();
                                Err(refusal)
                            }
                        }
                    };
                    // No size limit on the server side: the tests send oversized messages.
                    let config = WebSocketConfig::default().max_message_size(None).max_frame_size(None);
                    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(io, callback, Some(config)).await else { return };
                    let number = seen.connections.fetch_add(1, Ordering::SeqCst) + 1;
                    handler(Peer { ws, number, seen }).await;
                });
            }
        });
        WsServer { addr, tls: None, seen, _dir: None }
    }

    pub fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("wss://localhost:{}/feed", self.addr.port()),
            None => format!("ws://{}/feed", self.addr),
        }
    }

    /// The PEM file of a TLS server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.tls.clone().expect("a TLS server")
    }

    /// Connections upgraded so far.
    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }

    /// Handshakes seen (upgraded or refused), with their headers.
    pub fn handshakes(&self) -> Vec<Vec<(String, String)>> {
        self.seen.headers.lock().unwrap().clone()
    }

    /// The text messages clients sent on connection `number`.
    pub fn texts(&self, number: usize) -> Vec<String> {
        self.seen
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| *n == number)
            .filter_map(|(_, m)| match m {
                Message::Text(t) => Some(t.as_str().to_owned()),
                _ => None,
            })
            .collect()
    }

    /// Every message clients sent, with their connection numbers.
    pub fn received(&self) -> Vec<(usize, Message)> {
        self.seen.received.lock().unwrap().clone()
    }
}

fn boxed<F, Fut>(handler: F) -> Handler
where
    F: Fn(Peer) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |peer| Box::pin(handler(peer)))
}

impl Peer {
    /// Record a message read by the handler itself.
    pub fn record(&self, message: Message) {
        self.seen.received.lock().unwrap().push((self.number, message));
    }

    pub async fn text(&mut self, text: impl Into<String>) {
        self.ws.send(Message::text(text.into())).await.expect("send a text message");
    }

    pub async fn binary(&mut self, bytes: impl Into<Vec<u8>>) {
        self.ws.send(Message::binary(bytes.into())).await.expect("send a binary message");
    }

    /// Send a text payload as a text frame when it is UTF-8, as a binary frame otherwise.
    pub async fn payload(&mut self, payload: &[u8]) {
        match std::str::from_utf8(payload) {
            Ok(text) => self.text(text).await,
            Err(_) => self.binary(payload.to_vec()).await,
        }
    }

    /// One message in several frames: the first with the opcode, then continuations.
    pub async fn fragments(&mut self, text: bool, parts: &[&[u8]]) {
        let last = parts.len() - 1;
        for (i, part) in parts.iter().enumerate() {
            let opcode = match (i, text) {
                (0, true) => OpCode::Data(Data::Text),
                (0, false) => OpCode::Data(Data::Binary),
                _ => OpCode::Data(Data::Continue),
            };
            self.ws.feed(Message::Frame(Frame::message(part.to_vec(), opcode, i == last))).await.expect("send a fragment");
        }
        self.ws.flush().await.expect("flush the fragments");
    }

    pub async fn ping(&mut self, payload: &[u8]) {
        self.ws.send(Message::Ping(payload.to_vec().into())).await.expect("send a ping");
    }

    /// Start the closing handshake, then read what the client answers (recorded) until the
    /// connection ends.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        self.drain(Duration::from_secs(10)).await;
        // A TLS stream's close_notify, then the TCP FIN.
        let _ = tokio::io::AsyncWriteExt::shutdown(self.ws.get_mut()).await;
    }

    /// Drop the TCP connection without a close frame.
    pub fn drop_connection(self) {
        drop(self);
    }

    /// Read (and record) `n` client messages, pongs not counted; answer pings.
    pub async fn expect(&mut self, n: usize) {
        let mut got = 0;
        while got < n {
            match tokio::time::timeout(Duration::from_secs(30), self.ws.next()).await {
                Ok(Some(Ok(m))) => {
                    if matches!(m, Message::Text(_) | Message::Binary(_)) {
                        got += 1;
                    }
                    self.seen.received.lock().unwrap().push((self.number, m));
                }
                _ => panic!("connection {}: the client sent {got} of the {n} messages expected", self.number),
            }
        }
    }

    /// Read (and record) until the client goes away or `limit` passes; tungstenite answers the
    /// client's pings meanwhile.
    pub async fn drain(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while let Some(Ok(m)) = self.ws.next().await {
                self.seen.received.lock().unwrap().push((self.number, m));
            }
        })
        .await;
    }

    /// Read until the client goes away (a live stream held open).
    pub async fn hold(mut self) {
        self.drain(Duration::from_secs(3600)).await;
    }

    /// Keep the connection open without reading: the client's pings are never answered.
    pub async fn deaf(self) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(self);
    }
}
