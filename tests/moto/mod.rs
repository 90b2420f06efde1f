//! Helpers of the AWS tests (`sqs`, `s3`): moto's address, unique names, SDK clients for
//! checking the broker's and the store's own view.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HOW: &str = "run scripts/test.sh (it installs and starts moto), or start it yourself: \
`moto_server -H 127.0.0.1 -p 5000 &` then `export MOTO_URL=http://127.0.0.1:5000 AWS_ACCESS_KEY_ID=testing \
AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1`";

/// moto's URL from `MOTO_URL`; fails (never skips) when it is unset or moto does not answer.
pub fn moto_url() -> String {
    let url = std::env::var("MOTO_URL").unwrap_or_else(|_| panic!("MOTO_URL is not set: {HOW}"));
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert!(std::env::var_os(var).is_some(), "{var} is not set: {HOW}");
    }
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("MOTO_URL={url} is not host:port: {HOW}"));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("moto does not answer at {url} ({e}): {HOW}"));
    url
}

/// A name no other test (in this run or another) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    format!("{prefix}-{}-{millis}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

async fn sdk_config() -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(moto_url())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await
}

#[cfg(feature = "sqs")]
pub async fn sqs_client() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&sdk_config().await)
}

#[cfg(feature = "s3")]
pub async fn s3_client() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&sdk_config().await).force_path_style(true).build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A new queue (with the given attributes); returns its URL.
#[cfg(feature = "sqs")]
pub async fn create_queue(client: &aws_sdk_sqs::Client, prefix: &str, attributes: &[(&str, &str)]) -> String {
    let mut request = client.create_queue().queue_name(unique(prefix));
    for (k, v) in attributes {
        request = request.attributes(aws_sdk_sqs::types::QueueAttributeName::from(*k), *v);
    }
    request.send().await.expect("create queue").queue_url.expect("queue url")
}

/// The queue's own view: (visible, in flight) messages.
#[cfg(feature = "sqs")]
pub async fn queue_depth(client: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    let get = |a: &A| out.attributes().and_then(|m| m.get(a)).and_then(|v| v.parse().ok()).unwrap_or(0);
    (get(&A::ApproximateNumberOfMessages), get(&A::ApproximateNumberOfMessagesNotVisible))
}

/// Send raw bodies to a queue.
#[cfg(feature = "sqs")]
pub async fn send_raw(client: &aws_sdk_sqs::Client, url: &str, bodies: &[&str]) {
    for body in bodies {
        client.send_message().queue_url(url).message_body(*body).send().await.expect("send");
    }
}

/// A fault to inject in the traffic between the library and moto.
#[derive(Debug, Clone)]
pub enum Fault {
    /// For the next `times` calls of this SQS batch action (`SendMessageBatch`,
    /// `DeleteMessageBatch`) with 2 entries or more: drop the first entry before moto sees it and
    /// report it in `Failed` as the queue's own fault (`SenderFault` = false), as SQS does when
    /// it is throttled or has an internal error on one entry.
    FailFirstEntry { action: &'static str, times: usize },
    /// Answer the next `times` requests of this HTTP method with this status and S3-style XML
    /// error code, without passing them on.
    Status { method: &'static str, status: u16, code: &'static str, times: usize },
}

/// One request that went through a [`FaultProxy`], and moto's answer once it came.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The SQS action (`ReceiveMessage`, `ChangeMessageVisibilityBatch`), or the HTTP method
    /// for S3.
    pub action: String,
    /// The answer's body; `None` while moto has not answered.
    pub response: Option<Vec<u8>>,
}

type Log = std::sync::Arc<std::sync::Mutex<Vec<Exchange>>>;

/// A loopback HTTP proxy in front of moto that injects [`Fault`]s (no real server fails on
/// cue) and logs every exchange, so that a test can see what the library asked and when it
/// had its answer. One request per connection (`Connection: close`).
pub struct FaultProxy {
    pub url: String,
    faults: std::sync::Arc<std::sync::Mutex<Vec<Fault>>>,
    /// How many faults were injected.
    pub injected: std::sync::Arc<AtomicU32>,
    log: Log,
}

impl FaultProxy {
    pub async fn start(faults: Vec<Fault>) -> FaultProxy {
        let upstream = moto_url().trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let faults = std::sync::Arc::new(std::sync::Mutex::new(faults));
        let injected = std::sync::Arc::new(AtomicU32::new(0));
        let log = Log::default();
        let (f, n, l) = (faults.clone(), injected.clone(), log.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, upstream.clone(), f.clone(), n.clone(), l.clone()));
            }
        });
        FaultProxy { url, faults, injected, log }
    }

    /// Every exchange so far, in the order the requests came.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().clone()
    }

    /// The `ReceiveMessage` calls so far: how many messages each one returned, `None` for a
    /// call moto has not answered yet (a long poll in progress).
    pub fn receives(&self) -> Vec<Option<usize>> {
        self.exchanges()
            .iter()
            .filter(|e| e.action == "ReceiveMessage")
            .map(|e| {
                e.response.as_ref().map(|body| {
                    let json: serde_json::Value = serde_json::from_slice(body).expect("a JSON answer");
                    json.get("Messages").and_then(|m| m.as_array()).map_or(0, Vec::len)
                })
            })
            .collect()
    }

    /// How many calls of `action` moto has answered.
    pub fn answered(&self, action: &str) -> usize {
        self.exchanges().iter().filter(|e| e.action == action && e.response.is_some()).count()
    }

    /// Faults not injected yet.
    pub fn pending(&self) -> usize {
        self.faults
            .lock()
            .unwrap()
            .iter()
            .map(|f| match f {
                Fault::FailFirstEntry { times, .. } | Fault::Status { times, .. } => *times,
            })
            .sum()
    }
}

struct Message {
    head: Vec<String>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().skip(1).filter_map(|l| l.split_once(':')).find(|(n, _)| n.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.head[0].as_bytes());
        out.extend_from_slice(b"\r\n");
        for line in &self.head[1..] {
            let name = line.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
            if name == "content-length" || name == "connection" || name == "transfer-encoding" {
                continue;
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("content-length: {}\r\nconnection: close\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// Read one HTTP/1.1 message framed by Content-Length (or by the end of the stream).
async fn read_message(socket: &mut tokio::net::TcpStream, to_eof: bool) -> Option<Message> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head: Vec<String> = String::from_utf8_lossy(&buf[..end]).split("\r\n").map(str::to_owned).collect();
    let mut message = Message { head, body: buf[end + 4..].to_vec() };
    if message.header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        panic!("fault proxy: chunked bodies are not supported");
    }
    match message.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => {
            while message.body.len() < len {
                let n = socket.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                message.body.extend_from_slice(&chunk[..n]);
            }
        }
        None if to_eof => {
            socket.read_to_end(&mut message.body).await.ok()?;
        }
        None => {}
    }
    Some(message)
}

async fn serve(
    mut client: tokio::net::TcpStream,
    upstream: String,
    faults: std::sync::Arc<std::sync::Mutex<Vec<Fault>>>,
    injected: std::sync::Arc<AtomicU32>,
    log: Log,
) {
    use tokio::io::AsyncWriteExt;
    let Some(mut request) = read_message(&mut client, false).await else { return };
    let method = request.head[0].split(' ').next().unwrap_or("").to_owned();
    let action = request.header("x-amz-target").map(|t| t.rsplit('.').next().unwrap_or("").to_owned()).unwrap_or_default();
    let entry = {
        let mut log = log.lock().unwrap();
        log.push(Exchange { action: if action.is_empty() { method.clone() } else { action.clone() }, response: None });
        log.len() - 1
    };
    let answered = |body: &[u8]| log.lock().unwrap()[entry].response = Some(body.to_vec());
    // Decide on a fault.
    let mut status_fault = None;
    let mut dropped_entry = None;
    {
        let mut faults = faults.lock().unwrap();
        for fault in faults.iter_mut() {
            match fault {
                Fault::Status { method: m, status, code, times } if *times > 0 && *m == method => {
                    *times -= 1;
                    status_fault = Some((*status, *code));
                    break;
                }
                Fault::FailFirstEntry { action: a, times } if *times > 0 && *a == action => {
                    let mut json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
                    let entries = json["Entries"].as_array_mut().unwrap();
                    if entries.len() >= 2 {
                        *times -= 1;
                        dropped_entry = Some(entries.remove(0)["Id"].as_str().unwrap().to_owned());
                        request.body = serde_json::to_vec(&json).unwrap();
                    }
                    break;
                }
                _ => {}
            }
        }
    }
    if let Some((status, code)) = status_fault {
        injected.fetch_add(1, Ordering::Relaxed);
        let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected</Message></Error>");
        let response =
            Message { head: vec![format!("HTTP/1.1 {status} Injected"), "content-type: application/xml".into()], body: body.into_bytes() };
        answered(&response.body);
        let _ = client.write_all(&response.to_bytes()).await;
        return;
    }
    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else { return };
    if server.write_all(&request.to_bytes()).await.is_err() {
        return;
    }
    let Some(mut response) = read_message(&mut server, true).await else { return };
    answered(&response.body);
    if let Some(id) = dropped_entry {
        injected.fetch_add(1, Ordering::Relaxed);
        let mut json: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        let failed = json.as_object_mut().unwrap().entry("Failed").or_insert_with(|| serde_json::json!([]));
        failed.as_array_mut().unwrap().push(serde_json::json!({
            "Id": id, "SenderFault": false, "Code": "InternalError", "Message": "injected"
        }));
        response.body = serde_json::to_vec(&json).unwrap();
    }
    let _ = client.write_all(&response.to_bytes()).await;
}
