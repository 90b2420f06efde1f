//! Helpers of the RabbitMQ tests: the broker's URL, unique names, queues and exchanges,
//! publishing raw messages, and the broker's own view of a queue (`rabbitmqctl list_queues`:
//! messages ready and unacknowledged).
//!
//! Included with `#[path = "common/rabbitmq.rs"] mod rabbit;` by the RabbitMQ test files.
#![allow(dead_code)]

use bytes::Bytes;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const HOW: &str = "start it with `source scripts/services.sh && ensure_rabbitmq` (or `rabbitmq-server -detached`), \
or point RABBITMQ_URL at a broker on this machine (the tests read queue depths with `rabbitmqctl`)";

/// `RABBITMQ_URL`, else the local broker's default.
pub fn url() -> String {
    std::env::var("RABBITMQ_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The broker's `host:port`.
pub fn addr() -> std::net::SocketAddr {
    let url = url();
    let rest = url.split("://").nth(1).unwrap_or(&url);
    let authority = rest.split('/').next().unwrap_or(rest);
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    let hostport = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:5672") };
    std::net::ToSocketAddrs::to_socket_addrs(&hostport)
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("RABBITMQ_URL={url}: cannot resolve {hostport}"))
}

/// `url` with its `host:port` replaced by `addr` (a proxy in front of the broker).
pub fn url_via(addr: std::net::SocketAddr) -> String {
    let url = url();
    let real = addr_text();
    url.replacen(&real, &addr.to_string(), 1)
}

fn addr_text() -> String {
    let url = url();
    let rest = url.split("://").nth(1).unwrap_or(&url).to_owned();
    let authority = rest.split('/').next().unwrap_or(&rest).to_owned();
    authority.rsplit('@').next().unwrap_or(&authority).to_owned()
}

/// A name no other test (in this run or another) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    format!("etl-{prefix}-{}-{millis}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A connection and a channel (in confirm mode) of the test's own; fails, saying how to start
/// the broker, when it does not answer.
pub async fn admin() -> (Connection, Channel) {
    let url = url();
    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("no RabbitMQ answers at {url} ({e}): {HOW}"));
    let channel = connection.create_channel().await.expect("a channel");
    channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirm mode");
    (connection, channel)
}

/// A new durable queue named after `prefix`: classic, or quorum.
pub async fn queue(channel: &Channel, prefix: &str, quorum: bool) -> String {
    let name = unique(prefix);
    let mut arguments = FieldTable::default();
    if quorum {
        arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    }
    channel.queue_declare(name.as_str().into(), QueueDeclareOptions::durable(), arguments).await.expect("declare the queue");
    name
}

/// A new durable direct exchange named after `prefix`.
pub async fn exchange(channel: &Channel, prefix: &str) -> String {
    let name = unique(prefix);
    let options = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel
        .exchange_declare(name.as_str().into(), ExchangeKind::Direct, options, FieldTable::default())
        .await
        .expect("declare the exchange");
    name
}

pub async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) {
    channel.queue_bind(queue.into(), exchange.into(), key.into(), QueueBindOptions::default(), FieldTable::default()).await.expect("bind");
}

pub async fn unbind(channel: &Channel, queue: &str, exchange: &str, key: &str) {
    channel.queue_unbind(queue.into(), exchange.into(), key.into(), FieldTable::default()).await.expect("unbind");
}

pub async fn delete(channel: &Channel, queue: &str) {
    let _ = channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await;
}

/// Publish each payload to `queue` (default exchange) with message id `id(i)`, persistent,
/// and wait for every confirm.
pub async fn publish(channel: &Channel, queue: &str, payloads: &[(String, Bytes)]) {
    let mut confirms = Vec::with_capacity(payloads.len());
    for (id, payload) in payloads {
        let properties = BasicProperties::default().with_message_id(id.as_str().into()).with_delivery_mode(2);
        let confirm =
            channel.basic_publish("".into(), queue.into(), BasicPublishOptions::default(), payload, properties).await.expect("publish");
        confirms.push(confirm);
    }
    for confirm in confirms {
        assert!(confirm.await.expect("a confirm").is_ack(), "the broker confirmed");
    }
}

/// The broker's view of `queue`: (messages ready, messages unacknowledged), from
/// `rabbitmqctl list_queues`.
pub async fn depth(queue: &str) -> (u64, u64) {
    let queue = queue.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("rabbitmqctl")
            .args(["list_queues", "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run rabbitmqctl ({e}): {HOW}"));
        assert!(out.status.success(), "rabbitmqctl list_queues failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines() {
            let cells: Vec<&str> = line.split_whitespace().collect();
            if cells.len() == 3 && cells[0] == queue {
                return (cells[1].parse().expect("messages_ready"), cells[2].parse().expect("messages_unacknowledged"));
            }
        }
        panic!("rabbitmqctl does not list queue {queue}: {text}");
    })
    .await
    .expect("rabbitmqctl")
}

/// Messages ready in `queue`, from a passive declaration (quick; no unacknowledged count).
pub async fn ready(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::default().passive(), FieldTable::default())
        .await
        .expect("passive declare")
        .message_count()
}

/// Take every message of `queue` (`basic.get` with auto-ack): their bodies, in order.
pub async fn drain(channel: &Channel, queue: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(message) = channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.expect("basic.get") {
        out.push(message.delivery.data.clone());
    }
    out
}

/// The broker's view of `queue` on `node` (a node a test started: [`Node`]).
pub async fn depth_on(node: &str, queue: &str) -> Option<(u64, u64)> {
    let (node, queue) = (node.to_owned(), queue.to_owned());
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("rabbitmqctl")
            .args(["-n", &node, "list_queues", "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().find_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            (cells.len() == 3 && cells[0] == queue)
                .then(|| (cells[1].parse().ok(), cells[2].parse().ok()))
                .and_then(|(a, b)| Some((a?, b?)))
        })
    })
    .await
    .expect("rabbitmqctl")
}

/// A RabbitMQ node of the test's own, on its own ports and data directory, that the test may
/// stop and start again (a broker restart) without touching the shared broker.
pub struct Node {
    pub name: String,
    pub port: u16,
    dist_port: u16,
    dir: tempfile::TempDir,
    process: Option<std::process::Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port()
}

impl Node {
    /// Start a new node (about 10 s); fails saying how when `rabbitmq-server` cannot run.
    pub async fn start() -> Node {
        let dir = tempfile::tempdir().expect("a directory for the node");
        // The server runs as the `rabbitmq` user when started as root: let it write there.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let port = free_port();
        let name = format!("etl-test-{}-{port}@localhost", std::process::id());
        std::fs::write(dir.path().join("rabbitmq.conf"), format!("listeners.tcp.local = 127.0.0.1:{port}\n")).unwrap();
        std::fs::write(dir.path().join("env.conf"), "").unwrap();
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").unwrap();
        let mut node = Node { name, port, dist_port: free_port(), dir, process: None };
        node.boot().await;
        node
    }

    /// The URL of this node.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    async fn boot(&mut self) {
        let d = self.dir.path();
        let log = std::fs::File::create(d.join("server.log")).unwrap();
        let process = std::process::Command::new("rabbitmq-server")
            .current_dir(d)
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run rabbitmq-server ({e}): install RabbitMQ (`ensure_rabbitmq` in scripts/services.sh)"));
        self.process = Some(process);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.process.as_mut().and_then(|p| p.try_wait().ok().flatten()) {
                panic!("the test's RabbitMQ node exited ({status}): {}", std::fs::read_to_string(d.join("server.log")).unwrap_or_default());
            }
            assert!(std::time::Instant::now() < deadline, "the test's RabbitMQ node did not start within 90 s");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Stop the node (`rabbitmqctl stop`: connections are closed, durable queues and
    /// persistent messages kept).
    pub async fn stop(&mut self) {
        let name = self.name.clone();
        let stopped = tokio::task::spawn_blocking(move || std::process::Command::new("rabbitmqctl").args(["-n", &name, "stop"]).output())
            .await
            .unwrap()
            .expect("rabbitmqctl stop");
        assert!(stopped.status.success(), "rabbitmqctl stop: {}", String::from_utf8_lossy(&stopped.stderr));
        if let Some(mut process) = self.process.take() {
            let _ = tokio::task::spawn_blocking(move || process.wait()).await;
        }
    }

    /// Start it again on the same port and data.
    pub async fn restart(&mut self) {
        self.boot().await;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = std::process::Command::new("rabbitmqctl").args(["-n", &self.name, "stop"]).output();
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}
