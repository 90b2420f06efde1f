//! Helpers of the PostgreSQL tests (`postgres`, `contract_postgres`): the server's address,
//! a client for checking the table's own view, unique table names.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The suite's default database (scripts/services.sh exports it as `DATABASE_URL`).
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

const HOW: &str = "run scripts/test.sh (it starts PostgreSQL and exports DATABASE_URL), or start it yourself: \
`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` then \
`export DATABASE_URL=postgres://postgres@127.0.0.1:5432/test` (trust authentication, a database `test`)";

/// The database's URL from `DATABASE_URL` (default [`DEFAULT_URL`]); fails (never skips) when
/// nothing answers there.
pub fn database_url() -> String {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let addr = address(&url);
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("PostgreSQL does not answer at {addr} ({e}): {HOW}"));
    url
}

/// host:port of a `postgres://` URL.
pub fn address(url: &str) -> std::net::SocketAddr {
    let config: tokio_postgres::Config = url.parse().unwrap_or_else(|e| panic!("DATABASE_URL is not a PostgreSQL URL ({e}): {HOW}"));
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => panic!("DATABASE_URL must name a TCP host: {HOW}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("cannot resolve {host}:{port}: {HOW}"))
}

/// `DATABASE_URL` with its host and port replaced by `addr` (a proxy in front of the server).
pub fn url_via(addr: std::net::SocketAddr) -> String {
    let url = database_url();
    let real = address(&url);
    let replaced = url.replacen(&format!("127.0.0.1:{}", real.port()), &addr.to_string(), 1).replacen(
        &format!("localhost:{}", real.port()),
        &addr.to_string(),
        1,
    );
    assert_ne!(replaced, url, "DATABASE_URL must be postgres://...@127.0.0.1:PORT/... to put a proxy in front of it: {url}");
    replaced
}

/// A client of its own (the test's view of the table, from another session than the sink's).
pub async fn client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to PostgreSQL: {e}: {HOW}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A table name no other test (in this run or another) uses: lower case, no quoting needed.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() % 100_000_000;
    format!("{prefix}_{}_{millis}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Run SQL statements, panicking with the statement on failure.
pub async fn exec(client: &tokio_postgres::Client, sql: &str) {
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

/// `SELECT count(*) FROM table`.
pub async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client.query_one(&format!("SELECT count(*) FROM \"{table}\""), &[]).await.unwrap_or_else(|e| panic!("count {table}: {e:?}")).get(0)
}
