//! The connector contract (tests/common/contract.rs) for the WebSocket source, against a
//! loopback WebSocket server (tests/common/ws_server.rs) that sends its whole log on each
//! connection (a text frame for a UTF-8 payload, a binary frame otherwise), then closes with a
//! close frame (drain mode: the source does not reconnect, the run ends) or holds the
//! connection open (live mode).
//!
//! WebSocket has no acknowledgement, so the source keeps no store: `custody` is `None` (as for
//! the `file` source without checkpoint), and the properties check what reaches the sink and
//! the dead-letter queue. "The next run gets everything" holds here because this server
//! replays its log to every connection; the source's guarantee is at most once across
//! reconnects otherwise (see the module docs of `etl::source::websocket`).

mod common;

use bytes::Bytes;
use common::contract::{Batching, Custody, Mode, SourceHarness};
use common::ws_server::{Peer, WsServer};
use etl::record::{Extra, Position};
use etl::Json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Log {
    payloads: Vec<Bytes>,
    hold: bool,
}

struct WsHarness {
    server: WsServer,
    log: Arc<Mutex<Log>>,
}

impl WsHarness {
    async fn new() -> Self {
        let log = Arc::new(Mutex::new(Log::default()));
        let shared = Arc::clone(&log);
        let server = WsServer::start(move |mut peer: Peer| {
            let log = Arc::clone(&shared);
            async move {
                let (payloads, hold) = {
                    let log = log.lock().unwrap();
                    (log.payloads.clone(), log.hold)
                };
                for p in &payloads {
                    peer.payload(p).await;
                }
                if hold {
                    peer.hold().await;
                } else {
                    peer.close().await;
                }
            }
        })
        .await;
        WsHarness { server, log }
    }
}

impl SourceHarness for WsHarness {
    type Source = etl::source::WebSocketSource<Json>;

    fn name(&self) -> String {
        "websocket".into()
    }

    fn source(&mut self, mode: Mode, batching: Batching) -> Self::Source {
        self.log.lock().unwrap().hold = mode == Mode::Live;
        let source =
            etl::source::websocket::<Json>(self.server.url()).reconnect(mode == Mode::Live).reconnect_delay(Duration::from_millis(10));
        batching.apply(source)
    }

    async fn put(&mut self, payloads: &[Bytes]) {
        self.log.lock().unwrap().payloads.extend_from_slice(payloads);
    }

    async fn custody(&self) -> Option<Custody> {
        None
    }

    fn position(&self, index: usize) -> Position {
        Position::Sequence(index as u64 + 1)
    }

    fn check_extra(&self, _index: usize, extra: Option<&Extra>) -> Result<(), String> {
        let Some(extra) = extra else { return Err("no extras".into()) };
        let want_headers = vec![("url".to_owned(), Bytes::from(self.server.url())), ("connection".to_owned(), Bytes::from_static(b"1"))];
        match extra {
            Extra {
                event_type: Some(kind), timestamp: Some(_), headers, key: None, delivery_count: None, original_source: None, ..
            } if kind == "text" && *headers == want_headers => Ok(()),
            _ => Err(format!("want event_type \"text\", a timestamp and the headers {want_headers:?}")),
        }
    }

    fn binary_safe(&self) -> bool {
        true
    }
}

common::contract::source_contract!(WsHarness::new().await);
