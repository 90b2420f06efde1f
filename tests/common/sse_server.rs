//! A Server-Sent Events server on loopback that honours `Last-Event-ID`: each connection gets
//! the events of its log after the one the request names (all of them without the header), in
//! one write, then the server closes the stream ([`SseServer::hold`] false: a client with
//! `reconnect(false)` ends there) or holds it open until the client hangs up (a live stream).
//! Used by the contract and crash tests; `tests/sse.rs` has its own scripted server for the
//! protocol's corner cases.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct State {
    /// (id, the event as sent on the wire).
    events: Vec<(String, Vec<u8>)>,
    hold: bool,
    /// The `Last-Event-ID` of each request, in order.
    requests: Vec<Option<String>>,
}

pub struct SseServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl SseServer {
    /// Listen on an ephemeral port of 127.0.0.1, serving on the current runtime.
    pub async fn start() -> SseServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SSE server");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, Arc::clone(&shared)));
            }
        });
        SseServer { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    /// Append an event with this id and data (the data must hold no CR or LF).
    pub fn push(&self, id: &str, data: &[u8]) {
        assert!(!data.contains(&b'\n') && !data.contains(&b'\r'), "SSE data on one line");
        let mut frame = format!("id: {id}\ndata: ").into_bytes();
        frame.extend_from_slice(data);
        frame.extend_from_slice(b"\n\n");
        self.state.lock().unwrap().events.push((id.to_owned(), frame));
    }

    /// Whether later connections are held open after the log (true) or closed (false).
    pub fn hold(&self, yes: bool) {
        self.state.lock().unwrap().hold = yes;
    }

    /// The `Last-Event-ID` of each request so far.
    pub fn requests(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How many events the log holds.
    pub fn len(&self) -> usize {
        self.state.lock().unwrap().events.len()
    }
}

async fn serve(mut socket: TcpStream, state: Arc<Mutex<State>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let last_id = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("last-event-id"))
        .map(|(_, v)| v.trim().to_owned());
    let (body, hold) = {
        let mut state = state.lock().unwrap();
        state.requests.push(last_id.clone());
        let start = match &last_id {
            Some(id) => state.events.iter().position(|(i, _)| i == id).map_or(0, |p| p + 1),
            None => 0,
        };
        (state.events[start..].iter().flat_map(|(_, frame)| frame.iter().copied()).collect::<Vec<u8>>(), state.hold)
    };
    let mut response =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n".to_vec();
    response.extend_from_slice(&body);
    if socket.write_all(&response).await.is_err() {
        return;
    }
    let _ = socket.flush().await;
    if hold {
        // Until the client hangs up.
        while let Ok(n) = socket.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    } else {
        let _ = socket.shutdown().await;
    }
}
