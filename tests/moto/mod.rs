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
