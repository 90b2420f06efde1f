//! The connector contract (tests/common/contract.rs) for the SSE source, against a loopback
//! server that honours `Last-Event-ID` (tests/common/sse_server.rs).
//!
//! The source's store is its `last_event_id_file`: the id of the last event delivered. Events
//! are numbered 1, 2, ... in the order they are put, so the stored id is the number of events
//! acknowledged. In drain mode the server closes the stream after its log and the source does
//! not reconnect (the run ends); in live mode the server holds the stream open.

mod common;

use bytes::Bytes;
use common::contract::{Batching, Custody, Mode, SourceHarness};
use common::sse_server::SseServer;
use etl::record::{Extra, Position};
use etl::Json;
use std::path::PathBuf;
use std::time::Duration;

struct SseHarness {
    server: SseServer,
    _dir: tempfile::TempDir,
    resume: PathBuf,
}

impl SseHarness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let resume = dir.path().join("last-event-id");
        SseHarness { server: SseServer::start().await, _dir: dir, resume }
    }
}

impl SourceHarness for SseHarness {
    type Source = etl::source::SseSource<Json>;

    fn name(&self) -> String {
        "sse".into()
    }

    fn source(&mut self, mode: Mode, batching: Batching) -> Self::Source {
        self.server.hold(mode == Mode::Live);
        let source = etl::source::sse::<Json>(self.server.url())
            .last_event_id_file(&self.resume)
            .reconnect(mode == Mode::Live)
            .reconnect_delay(Duration::from_millis(10));
        batching.apply(source)
    }

    async fn put(&mut self, payloads: &[Bytes]) {
        for p in payloads {
            let id = self.server.len() + 1;
            self.server.push(&id.to_string(), p);
        }
    }

    async fn custody(&self) -> Option<Custody> {
        let acknowledged = match std::fs::read_to_string(&self.resume) {
            Ok(id) => id.trim().parse::<usize>().unwrap_or_else(|_| panic!("the resume file holds an id we never sent: {id:?}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => panic!("cannot read the resume file: {e}"),
        };
        Some(Custody { acknowledged, ready: self.server.len() - acknowledged })
    }

    fn position(&self, index: usize) -> Position {
        Position::Id((index + 1).to_string())
    }

    fn check_extra(&self, _index: usize, extra: Option<&Extra>) -> Result<(), String> {
        let want = Extra { event_type: Some("message".into()), ..Extra::default() };
        match extra {
            Some(extra) if *extra == want => Ok(()),
            _ => Err(format!("want {want:?}")),
        }
    }

    fn binary_safe(&self) -> bool {
        true
    }
}

common::contract::source_contract!(SseHarness::new().await);
