//! Helpers of the NATS tests: the server's address (`NATS_URL`; a missing server fails the test
//! with how to start it), unique names, a JetStream context for checking the server's own view
//! (consumer info, stream info), and [`OwnServer`], a nats-server process a test starts on its
//! own port and data directory (to restart it).
#![allow(dead_code)]

use async_nats::jetstream::{self, consumer, stream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const HOW: &str = "run scripts/test.sh (it installs and starts nats-server 2.15 with JetStream), or: \
`source scripts/services.sh; ensure_nats` (exports NATS_URL and NATS_SERVER_BIN)";

/// The server's URL from `NATS_URL`; fails (never skips) when it is unset or nothing answers.
pub fn nats_url() -> String {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| panic!("NATS_URL is not set: {HOW}"));
    let host = url.trim_start_matches("nats://").split(',').next().unwrap_or_default().trim_end_matches('/').to_owned();
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&host)
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("NATS_URL={url} is not nats://host:port: {HOW}"));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("nats-server does not answer at {url} ({e}): {HOW}"));
    url
}

/// A name no other test (in this run or another) uses; valid as a stream, consumer and
/// subject token.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    format!("{prefix}_{}_{millis}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub async fn client_at(url: &str) -> async_nats::Client {
    async_nats::connect(url).await.unwrap_or_else(|e| panic!("connect to {url}: {e}: {HOW}"))
}

pub async fn js() -> jetstream::Context {
    jetstream::new(client_at(&nats_url()).await)
}

/// A new stream `name` capturing `subject`.
pub async fn create_stream(js: &jetstream::Context, name: &str, subject: &str) -> stream::Stream {
    js.create_stream(stream::Config { name: name.into(), subjects: vec![subject.into()], ..Default::default() })
        .await
        .expect("create stream")
}

/// A durable pull consumer with explicit acks.
pub async fn create_consumer(stream: &stream::Stream, durable: &str, ack_wait: Duration, max_deliver: i64) {
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(durable.into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait,
            max_deliver,
            ..Default::default()
        })
        .await
        .expect("create consumer");
}

/// The consumer's own view.
pub async fn consumer_info(js: &jetstream::Context, stream: &str, durable: &str) -> consumer::Info {
    js.get_stream(stream).await.expect("stream").consumer_info(durable).await.expect("consumer info")
}

/// Publish `payload` to `subject`, awaiting the stream's acknowledgement; its sequence.
pub async fn publish(js: &jetstream::Context, subject: &str, payload: impl Into<bytes::Bytes>) -> u64 {
    js.publish(subject.to_owned(), payload.into()).await.expect("publish").await.expect("publish ack").sequence
}

/// Every message of a stream, in order (payloads).
pub async fn read_stream(js: &jetstream::Context, name: &str) -> Vec<bytes::Bytes> {
    let stream = js.get_stream(name).await.expect("stream");
    let info = stream.get_info().await.expect("info");
    let mut out = Vec::new();
    if info.state.messages == 0 {
        return out;
    }
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            out.push(m.payload);
        }
    }
    out
}

/// The nats-server binary: `NATS_SERVER_BIN`, else `nats-server` on the PATH (which must be
/// 2.10 or later).
pub fn server_bin() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| panic!("NATS_SERVER_BIN is not set: {HOW}"))
}

/// A nats-server with JetStream that this test started, on its own port and data directory;
/// killed when dropped.
pub struct OwnServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl OwnServer {
    pub async fn start() -> OwnServer {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().unwrap().port()
        };
        let mut server = OwnServer { port, dir: tempfile::tempdir().expect("data dir"), child: None };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Start (again) on the same port and data directory, and wait until it answers.
    pub async fn restart(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("nats.log")).expect("log");
        let child = std::process::Command::new(server_bin())
            .args(["-js", "-sd"])
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-a", "127.0.0.1"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}: {HOW}", server_bin()));
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the test's nats-server did not start on port {}", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // JetStream answers a moment after the port.
        let js = jetstream::new(client_at(&self.url()).await);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while js.query_account().await.is_err() {
            assert!(std::time::Instant::now() < deadline, "JetStream of the test's nats-server did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kill the server (SIGKILL) and wait for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
    }
}
