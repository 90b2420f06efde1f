//! A loopback TCP fault proxy: forwards connections to an upstream server and, on cue, drops
//! every connection (before the next byte is forwarded) and refuses new ones until restored.
//! Generic (any TCP protocol); the PostgreSQL tests put it in front of the server.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

struct State {
    /// Connections are dropped when their generation is older than this.
    generation: AtomicU64,
    /// False while cut: new connections are refused (the listener is closed).
    up: AtomicBool,
    /// Connections accepted so far.
    accepted: AtomicUsize,
    /// Connections dropped by a cut.
    dropped: AtomicUsize,
    changed: watch::Sender<()>,
}

/// A TCP proxy on 127.0.0.1 in front of `upstream`. See the [module docs](self).
#[derive(Clone)]
pub struct TcpProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl TcpProxy {
    /// Start forwarding from a new loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = listen("127.0.0.1:0".parse().unwrap()).expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let (changed, _) = watch::channel(());
        let state = Arc::new(State {
            generation: AtomicU64::new(0),
            up: AtomicBool::new(true),
            accepted: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            changed,
        });
        tokio::spawn(accept_loop(Some(listener), addr, upstream, Arc::clone(&state)));
        TcpProxy { addr, state }
    }

    /// Drop every established connection (each one before it forwards another byte) and
    /// refuse new connections until [`restore`](TcpProxy::restore). Synchronous: whatever a
    /// client sends after this call never reaches the server.
    pub fn cut(&self) {
        self.state.up.store(false, Ordering::SeqCst);
        self.state.generation.fetch_add(1, Ordering::SeqCst);
        self.state.changed.send_replace(());
    }

    /// Accept and forward connections again.
    pub fn restore(&self) {
        self.state.up.store(true, Ordering::SeqCst);
        self.state.changed.send_replace(());
    }

    /// Drop every established connection, but keep accepting new ones (a server restart
    /// seen from the client, or a connection reset by the network).
    pub fn reset_connections(&self) {
        self.state.generation.fetch_add(1, Ordering::SeqCst);
        self.state.changed.send_replace(());
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Connections dropped by [`cut`](TcpProxy::cut) or [`reset_connections`](TcpProxy::reset_connections).
    pub fn dropped(&self) -> usize {
        self.state.dropped.load(Ordering::SeqCst)
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

async fn accept_loop(mut listener: Option<TcpListener>, addr: SocketAddr, upstream: SocketAddr, state: Arc<State>) {
    let mut changed = state.changed.subscribe();
    loop {
        if !state.up.load(Ordering::SeqCst) {
            // Refuse: no listener, so connecting gets ECONNREFUSED.
            listener = None;
            if changed.changed().await.is_err() {
                return;
            }
            continue;
        }
        let Some(current) = &listener else {
            match listen(addr) {
                Ok(l) => listener = Some(l),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
            continue;
        };
        tokio::select! {
            accepted = current.accept() => {
                let Ok((client, _)) = accepted else { continue };
                if !state.up.load(Ordering::SeqCst) {
                    continue; // cut while this one was waiting: drop it
                }
                state.accepted.fetch_add(1, Ordering::SeqCst);
                let generation = state.generation.load(Ordering::SeqCst);
                tokio::spawn(forward(client, upstream, generation, Arc::clone(&state)));
            }
            result = changed.changed() => {
                if result.is_err() {
                    return;
                }
            }
        }
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, generation: u64, state: Arc<State>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let alive = || state.generation.load(Ordering::SeqCst) == generation;
    let mut changed = state.changed.subscribe();
    let up = pump(client_read, server_write, &alive);
    let down = pump(server_read, client_write, &alive);
    let cut = async {
        while alive() {
            if changed.changed().await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        () = cut => { state.dropped.fetch_add(1, Ordering::SeqCst); }
    }
    // Dropping both halves of both sockets closes the connections.
}

/// Copy bytes from `from` to `to` while the connection's generation is current; each chunk is
/// checked just before it is forwarded.
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, alive: &impl Fn() -> bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !alive() || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
