//! The WebSocket source against a real WebSocket server on loopback (tokio-tungstenite's
//! `accept`, tests/common/ws_server.rs): reconnects with the subscribe messages re-sent,
//! fragments, pings both ways, close frames, bad JSON, binary frames, oversized messages,
//! a slow trickle, authentication, refused handshakes and wss:// with a self-signed
//! certificate. What the server saw (connections, messages from the client, handshake
//! headers) is checked on the server's side.
//!
//! Timing: tests wait on what they need ([`wait_until`]), with deadlines only a hang reaches.

mod common;

use common::contract::{Lake, LONG};
use common::ws_server::{Peer, WsServer};
use common::{wait_until, wait_until_async, PATIENCE};
use etl::batch::{BatchOptions, FailureKind};
use etl::dead_letter::{DeadLetters, MemoryDeadLetters};
use etl::record::{Meta, Position};
use etl::sink::{Sink, Written};
use etl::source::DataFormat;
use etl::{ConnectorError, Json, Pipeline};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

fn ws(url: &str) -> etl::source::WebSocketSource<Json> {
    etl::source::websocket::<Json>(url).reconnect_delay(Duration::from_millis(10)).batch_timeout(Duration::from_millis(20))
}

fn n(record: &Json) -> i64 {
    record.get("n").and_then(Value::as_i64).unwrap_or_else(|| panic!("no `n` in {record:?}"))
}

fn header<'a>(meta: &'a Meta, name: &str) -> &'a [u8] {
    let extra = meta.extra.as_deref().expect("extras");
    extra.headers.iter().find(|(k, _)| k == name).map(|(_, v)| &v[..]).unwrap_or_else(|| panic!("no `{name}` header in {extra:?}"))
}

/// Run `source` into `lake` until `done` holds (checked on the lake and the dead letters),
/// then cancel; returns the report.
async fn run_until(
    source: etl::source::WebSocketSource<Json>,
    lake: &Lake,
    dlq: &MemoryDeadLetters,
    what: &str,
    done: impl Fn(&Lake, usize) -> bool,
) -> etl::RunReport {
    let token = CancellationToken::new();
    let run =
        tokio::spawn(Pipeline::from(source).to(lake.sink()).dead_letters(dlq.clone()).cancel_on(token.clone()).handle_signals(false).run());
    wait_until_async(PATIENCE, what, || async { done(lake, dlq.list().await.map(|l| l.len()).unwrap_or(0)) }).await;
    token.cancel();
    tokio::time::timeout(PATIENCE, run).await.expect("the run ends after cancel").expect("no panic").expect("the run succeeds")
}

#[tokio::test]
async fn records_carry_metadata_and_the_subscribe_messages_are_resent_after_each_reconnect() {
    std::env::set_var("ETL_WS_TEST_KEY_1", "s3cret");
    let server = WsServer::start(|mut peer: Peer| async move {
        peer.expect(2).await;
        if peer.number == 1 {
            for i in 1..=3 {
                peer.text(json!({"n": i}).to_string()).await;
            }
            // A connection lost without a close frame.
            peer.drop_connection();
        } else {
            peer.text(json!({"n": peer.number * 10}).to_string()).await;
            peer.hold().await;
        }
    })
    .await;
    let source = ws(&server.url())
        .header("X-Api-Key", "${ETL_WS_TEST_KEY_1}")
        .subscribe(json!({"action": "auth", "key": "${ETL_WS_TEST_KEY_1}"}))
        .subscribe("SUBSCRIBE trades");
    let lake = Lake::default();
    let dlq = MemoryDeadLetters::new();
    let report = run_until(source, &lake, &dlq, "4 records", |lake, _| lake.len() >= 4).await;
    assert_eq!(report.records_out, 4, "{report}");
    let want_subscribe = vec![r#"{"action":"auth","key":"s3cret"}"#.to_owned(), "SUBSCRIBE trades".to_owned()];
    assert_eq!(server.texts(1), want_subscribe, "the subscribe messages, ${{VAR}} resolved, on the first connection");
    assert_eq!(server.texts(2), want_subscribe, "and again after the reconnect");
    let handshakes = server.handshakes();
    assert!(
        handshakes.iter().all(|h| h.contains(&("x-api-key".to_owned(), "s3cret".to_owned()))),
        "the header on every handshake: {handshakes:?}"
    );
    let committed = lake.committed();
    let got: Vec<(i64, Position, Vec<u8>, String)> = committed
        .iter()
        .map(|(r, m)| {
            let extra = m.extra.as_deref().unwrap();
            assert!(extra.timestamp.is_some(), "received_at");
            assert_eq!(header(m, "url"), server.url().as_bytes());
            (n(r), m.position.clone(), header(m, "connection").to_vec(), extra.event_type.clone().unwrap())
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, Position::Sequence(1), b"1".to_vec(), "text".to_owned()),
            (2, Position::Sequence(2), b"1".to_vec(), "text".to_owned()),
            (3, Position::Sequence(3), b"1".to_vec(), "text".to_owned()),
            (20, Position::Sequence(4), b"2".to_vec(), "text".to_owned()),
        ]
    );
    assert_eq!(committed[0].1.raw.as_deref(), Some(&br#"{"n":1}"#[..]), "raw bytes beside the record");
}

#[tokio::test]
async fn fragments_are_reassembled_and_oversized_messages_dead_lettered_while_the_stream_goes_on() {
    const LIMIT: usize = 1024;
    let server = WsServer::start(|mut peer: Peer| async move {
        if peer.number == 1 {
            peer.fragments(true, &[br#"{"n": 1, "pad"#, br#"": "frag"#, br#"mented"}"#]).await;
            // 3 000 bytes in three frames: over the limit, under 8 x the limit.
            let big = format!(r#"{{"n": 2, "pad": "{}"}}"#, "x".repeat(3000 - 19));
            assert_eq!(big.len(), 3000);
            let (a, rest) = big.as_bytes().split_at(1000);
            let (b, c) = rest.split_at(1000);
            peer.fragments(true, &[a, b, c]).await;
            peer.fragments(false, &[br#"{"n":"#, br#" 3}"#]).await;
            // Over 8 x the limit: the client refuses it and closes with 1009.
            peer.binary(vec![b' '; 9 * LIMIT]).await;
            peer.drain(Duration::from_secs(10)).await;
        } else {
            peer.text(r#"{"n": 4}"#).await;
            peer.hold().await;
        }
    })
    .await;
    let source = ws(&server.url()).max_message_bytes(LIMIT);
    let lake = Lake::default();
    let dlq = MemoryDeadLetters::new();
    let report = run_until(source, &lake, &dlq, "3 records and 2 dead letters", |lake, d| lake.len() >= 3 && d >= 2).await;
    let mut got: Vec<i64> = lake.numbers().into_iter().map(|n| n as i64).collect();
    got.sort_unstable();
    assert_eq!(got, [1, 3, 4], "{report}");
    let fragmented = lake.committed().into_iter().find(|(r, _)| n(r) == 1).unwrap();
    assert_eq!(fragmented.0.get("pad"), Some(&json!("fragmented")));
    let entries = dlq.list().await.unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0].payload.len(), LIMIT, "the oversized message's first max_message_bytes bytes");
    assert!(entries[0].payload.starts_with(br#"{"n": 2, "pad": "xxx"#));
    assert!(entries[0].error.contains("3000 bytes") && entries[0].error.contains("max_message_bytes"), "{}", entries[0].error);
    assert_eq!(entries[0].position, Position::Sequence(2));
    assert_eq!(entries[0].kind, FailureKind::Decode);
    assert!(entries[1].payload.is_empty() && entries[1].error.contains("1009"), "the refused message is recorded: {:?}", entries[1]);
    assert_eq!(server.connections(), 2, "the oversized message kept the connection; the refused one closed it");
    let closes: Vec<_> = server.received().into_iter().filter(|(c, m)| *c == 1 && matches!(m, Message::Close(_))).collect();
    assert!(
        closes.iter().any(|(_, m)| matches!(m, Message::Close(Some(f)) if u16::from(f.code) == 1009)),
        "the client closed with 1009 (message too big): {closes:?}"
    );
}

#[tokio::test]
async fn binary_frames_bad_json_and_text_format() {
    let server = WsServer::start(|mut peer: Peer| async move {
        peer.binary(br#"{"n": 1}"#.to_vec()).await;
        peer.text(r#"{"n": 2,"#).await;
        peer.binary(b"{\"n\": \"\xff\xfe\"}".to_vec()).await;
        peer.text("not json").await;
        peer.text(r#"{"n": 5}"#).await;
        peer.close().await;
    })
    .await;
    let source = ws(&server.url()).reconnect(false);
    let lake = Lake::default();
    let dlq = MemoryDeadLetters::new();
    let report =
        tokio::time::timeout(PATIENCE, Pipeline::from(source).to(lake.sink()).dead_letters(dlq.clone()).handle_signals(false).run())
            .await
            .expect("ends")
            .expect("a close frame ends the run normally without reconnect");
    let committed = lake.committed();
    let got: Vec<(i64, String)> = committed.iter().map(|(r, m)| (n(r), m.extra.as_deref().unwrap().event_type.clone().unwrap())).collect();
    assert_eq!(got, [(1, "binary".to_owned()), (5, "text".to_owned())]);
    let entries = dlq.list().await.unwrap();
    let dead: Vec<(&[u8], Position)> = entries.iter().map(|e| (&e.payload[..], e.position.clone())).collect();
    assert_eq!(
        dead,
        [
            (&br#"{"n": 2,"#[..], Position::Sequence(2)),
            (&b"{\"n\": \"\xff\xfe\"}"[..], Position::Sequence(3)),
            (&b"not json"[..], Position::Sequence(4)),
        ],
        "bad JSON and invalid UTF-8 dead-lettered with their exact bytes"
    );
    assert_eq!((report.records_in, report.dead_lettered), (5, 3), "{report}");

    // data_format = "text": every message is {"data": text}; a binary one that is not UTF-8
    // is dead-lettered.
    let server = WsServer::start(|mut peer: Peer| async move {
        peer.text("hello, world").await;
        peer.binary(b"\xff not text".to_vec()).await;
        peer.binary(b"bytes".to_vec()).await;
        peer.close().await;
    })
    .await;
    let out = etl::sink::collect::<Json>();
    let dlq = MemoryDeadLetters::new();
    let source = ws(&server.url()).reconnect(false).data_format(DataFormat::Text);
    Pipeline::from(source).to(out.sink()).dead_letters(dlq.clone()).handle_signals(false).run().await.unwrap();
    let records: Vec<Value> = out.records().into_iter().map(|r| serde_json::to_value(r).unwrap()).collect();
    assert_eq!(records, [json!({"data": "hello, world"}), json!({"data": "bytes"})]);
    let entries = dlq.list().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(&entries[0].payload[..], b"\xff not text");
}

#[tokio::test]
async fn split_arrays_makes_one_record_per_element() {
    let server = WsServer::start(|mut peer: Peer| async move {
        peer.text(r#"[{"n": 1}, {"n": 2}, "not an object", {"n": 4}]"#).await;
        peer.text(r#" []"#).await;
        peer.text(r#"{"n": 5}"#).await;
        peer.text(r#"[{"n": 6}, "#).await;
        peer.close().await;
    })
    .await;
    let lake = Lake::default();
    let dlq = MemoryDeadLetters::new();
    let source = ws(&server.url()).reconnect(false).split_arrays(true);
    let report = Pipeline::from(source).to(lake.sink()).dead_letters(dlq.clone()).handle_signals(false).run().await.unwrap();
    let committed = lake.committed();
    let got: Vec<(i64, Position, Vec<u8>)> =
        committed.iter().map(|(r, m)| (n(r), m.position.clone(), m.raw.clone().unwrap().to_vec())).collect();
    assert_eq!(
        got,
        [
            (1, Position::Sequence(1), br#"{"n": 1}"#.to_vec()),
            (2, Position::Sequence(1), br#"{"n": 2}"#.to_vec()),
            (4, Position::Sequence(1), br#"{"n": 4}"#.to_vec()),
            (5, Position::Sequence(3), br#"{"n": 5}"#.to_vec()),
        ],
        "each element its own record, its raw bytes its own slice"
    );
    let entries = dlq.list().await.unwrap();
    let dead: Vec<&[u8]> = entries.iter().map(|e| &e.payload[..]).collect();
    assert_eq!(dead, [&br#""not an object""#[..], &br#"[{"n": 6}, "#[..]], "the bad element alone; the broken array whole");
    assert_eq!(report.dead_lettered, 2);
}

#[tokio::test]
async fn pings_from_the_server_are_answered_and_its_close_frame_too() {
    let server = WsServer::start(|mut peer: Peer| async move {
        peer.ping(b"are you there").await;
        peer.text(r#"{"n": 1}"#).await;
        // Read the pong (recorded), then close and read the client's close answer.
        let pong = tokio::time::timeout(Duration::from_secs(30), futures::StreamExt::next(&mut peer.ws)).await;
        if let Ok(Some(Ok(m))) = pong {
            peer.record(m);
        }
        peer.close().await;
    })
    .await;
    let lake = Lake::default();
    let source = ws(&server.url()).reconnect(false).ping_interval(Duration::ZERO);
    let report = tokio::time::timeout(PATIENCE, Pipeline::from(source).to(lake.sink()).handle_signals(false).run())
        .await
        .expect("the closing handshake ends the run")
        .expect("a clean close without reconnect is the end of the stream");
    assert_eq!(report.records_out, 1);
    let received: Vec<Message> = server.received().into_iter().map(|(_, m)| m).collect();
    assert!(received.contains(&Message::Pong(b"are you there".to_vec().into())), "the ping was answered with its payload: {received:?}");
    assert!(received.iter().any(|m| matches!(m, Message::Close(_))), "the close frame was answered: {received:?}");
}

#[tokio::test]
async fn a_missing_pong_means_a_dead_connection() {
    let server = WsServer::start(|mut peer: Peer| async move {
        peer.text(json!({"n": peer.number}).to_string()).await;
        if peer.number == 1 {
            // Never read again: the client's pings go unanswered.
            peer.deaf().await;
        } else {
            peer.hold().await;
        }
    })
    .await;
    let lake = Lake::default();
    let dlq = MemoryDeadLetters::new();
    let source = ws(&server.url()).ping_interval(Duration::from_millis(100)).pong_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let pings_on_2 = || server.received().iter().filter(|(c, m)| *c == 2 && matches!(m, Message::Ping(_))).count();
    run_until(source, &lake, &dlq, "a record from the second connection and pings on it", |lake, _| lake.len() >= 2 && pings_on_2() >= 3)
        .await;
    assert_eq!(lake.numbers(), [1, 2]);
    assert!(started.elapsed() < Duration::from_secs(30), "reconnected well before any OS timeout");
    // The second connection answers: it stays up (no third connection) while pings flow.
    assert_eq!(server.connections(), 2, "an answered connection is kept");
}

#[tokio::test]
async fn idle_timeout_reconnects_after_silence() {
    let server = WsServer::start(|mut peer: Peer| async move {
        peer.text(json!({"n": peer.number}).to_string()).await;
        peer.hold().await;
    })
    .await;
    let lake = Lake::default();
    let dlq = MemoryDeadLetters::new();
    let source = ws(&server.url()).ping_interval(Duration::ZERO).idle_timeout(Some(Duration::from_millis(200)));
    run_until(source, &lake, &dlq, "records from three connections", |lake, _| lake.len() >= 3).await;
    assert_eq!(lake.numbers()[..3], [1, 2, 3], "each silent connection replaced");
    assert!(server.connections() >= 3);
}

/// A sink that records when each batch arrives.
#[derive(Clone, Default)]
struct Clock(Arc<Mutex<Vec<(Instant, usize)>>>);

impl Sink<Json> for Clock {
    fn describe(&self) -> String {
        "clock".into()
    }

    async fn write(&mut self, records: &[Json]) -> Result<Written, ConnectorError> {
        self.0.lock().unwrap().push((Instant::now(), records.len()));
        Ok(Written::all())
    }
}

#[tokio::test]
async fn a_slow_trickle_is_batched_by_a_linger_from_the_first_record() {
    let server = WsServer::start(|mut peer: Peer| async move {
        for i in 0..8 {
            peer.text(json!({"n": i}).to_string()).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        peer.close().await;
    })
    .await;
    let clock = Clock::default();
    let source = ws(&server.url()).reconnect(false).batch_size(1000).batch_timeout(Duration::from_millis(400));
    let started = Instant::now();
    Pipeline::from(source).to(clock.clone()).handle_signals(false).run().await.unwrap();
    let batches = clock.0.lock().unwrap().clone();
    let sizes: Vec<usize> = batches.iter().map(|(_, n)| *n).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 8);
    assert!(batches.len() >= 2, "a message every 150 ms does not hold the batch open: {sizes:?}");
    // An idle timeout would never fire (a message every 150 ms < 400 ms); the linger from the
    // first record closes the first batch while the trickle goes on (it lasts 1.2 s).
    assert!(batches[0].0 - started < Duration::from_millis(1100), "the first batch left {:?} after the start", batches[0].0 - started);
    assert!(sizes[0] < 8, "{sizes:?}");
}

#[tokio::test]
async fn shutdown_flushes_without_waiting_for_the_next_message() {
    let server = WsServer::start(|mut peer: Peer| async move {
        peer.text(r#"{"n": 1}"#).await;
        peer.text(r#"{"n": 2}"#).await;
        peer.hold().await;
    })
    .await;
    let lake = Lake::default();
    let token = CancellationToken::new();
    let source = ws(&server.url()).batch_size(100).batch_timeout(LONG);
    let run = tokio::spawn(Pipeline::from(source).to(lake.sink()).cancel_on(token.clone()).handle_signals(false).run());
    // Both messages are in the batcher once the server has seen the client's... nothing to
    // see: wait on the source's read by polling the server's connection count, then give the
    // two frames time to arrive (they are in one TCP segment).
    wait_until(PATIENCE, "connected", || server.connections() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(lake.len(), 0, "the batch waits for its hour-long linger");
    let cancelled = Instant::now();
    token.cancel();
    let report = tokio::time::timeout(PATIENCE, run).await.unwrap().unwrap().unwrap();
    assert!(cancelled.elapsed() < Duration::from_secs(5), "shutdown took {:?}", cancelled.elapsed());
    assert_eq!(lake.numbers(), [1, 2], "the partial batch flushed: {report}");
}

#[tokio::test]
async fn consecutive_failures_give_up_and_a_good_connection_resets_the_count() {
    // Nothing listens: max_reconnects consecutive failures, then a clear error.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let source = ws(&format!("ws://127.0.0.1:{port}/feed")).max_reconnects(2);
    let started = Instant::now();
    let err = Pipeline::from(source).to(Lake::default().sink()).handle_signals(false).run().await.expect_err("refused connections");
    let text = err.to_string();
    assert!(text.contains("3 consecutive failed connection(s)") && text.contains("max_reconnects"), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(20), "backoff delays were waited");

    // Every connection delivers one message and is dropped: with max_reconnects = 1 the run
    // goes on past many connections, since each good one resets the count.
    let server = WsServer::start(|mut peer: Peer| async move {
        peer.text(json!({"n": peer.number}).to_string()).await;
        peer.close().await;
    })
    .await;
    let lake = Lake::default();
    let dlq = MemoryDeadLetters::new();
    let source = ws(&server.url()).max_reconnects(1);
    run_until(source, &lake, &dlq, "5 connections' records", |lake, _| lake.len() >= 5).await;
    assert!(server.connections() >= 5);
}

#[tokio::test]
async fn a_refused_handshake_is_a_clear_error_without_a_retry_loop() {
    let server = WsServer::rejecting(401).await;
    let source = ws(&server.url());
    let err = Pipeline::from(source).to(Lake::default().sink()).handle_signals(false).run().await.expect_err("401");
    assert!(err.to_string().contains("401"), "{err}");
    assert_eq!(server.handshakes().len(), 1, "no retry of a 401");

    // A 503 is retried, up to max_reconnects.
    let server = WsServer::rejecting(503).await;
    let err =
        Pipeline::from(ws(&server.url()).max_reconnects(2)).to(Lake::default().sink()).handle_signals(false).run().await.expect_err("503");
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(server.handshakes().len(), 3, "the first attempt and 2 reconnects");
}

#[tokio::test]
async fn auth_fail_or_no_auth_ack_stops_with_a_clear_error_instead_of_reconnecting() {
    let server = WsServer::start(|mut peer: Peer| async move {
        peer.expect(1).await;
        peer.text(r#"{"type": "error", "msg": "invalid key"}"#).await;
        peer.hold().await;
    })
    .await;
    let source = ws(&server.url()).subscribe(json!({"auth": "wrong"})).auth_ack(r#"{"type": "success"}"#).auth_fail(r#"{"type": "error"}"#);
    let err = tokio::time::timeout(PATIENCE, Pipeline::from(source).to(Lake::default().sink()).handle_signals(false).run())
        .await
        .expect("ends")
        .expect_err("auth failed");
    assert!(err.to_string().contains("authentication failed") && err.to_string().contains("auth_fail"), "{err}");
    assert_eq!(server.connections(), 1, "no reconnect loop");

    // No acknowledgement in time.
    let server = WsServer::start(|mut peer: Peer| async move {
        peer.text(r#"{"hello": "who are you?"}"#).await;
        peer.hold().await;
    })
    .await;
    let source = ws(&server.url()).auth_ack("authenticated").auth_ack_timeout(Duration::from_millis(300));
    let out = etl::sink::collect::<Json>();
    let err = tokio::time::timeout(PATIENCE, Pipeline::from(source).to(out.sink()).handle_signals(false).run())
        .await
        .expect("ends")
        .expect_err("no ack");
    assert!(err.to_string().contains("auth_ack_timeout"), "{err}");
    assert_eq!(server.connections(), 1, "no reconnect loop");
    assert_eq!(
        out.records(),
        [serde_json::from_str::<Json>(r#"{"hello": "who are you?"}"#).unwrap()],
        "a message before the ack is a record"
    );
}

#[tokio::test]
async fn the_auth_ack_is_awaited_on_every_connection_and_is_not_a_record() {
    let server = WsServer::start(|mut peer: Peer| async move {
        peer.expect(1).await;
        // Alpaca's shape: an array holding the acknowledgement.
        peer.text(r#"[{"T": "success", "msg": "authenticated"}]"#).await;
        peer.text(json!({"n": peer.number}).to_string()).await;
        if peer.number == 1 {
            peer.drop_connection();
        } else {
            peer.hold().await;
        }
    })
    .await;
    let source = ws(&server.url()).subscribe(json!({"action": "auth"})).auth_ack(r#"{"msg": "authenticated"}"#).auth_fail("failed");
    let lake = Lake::default();
    let dlq = MemoryDeadLetters::new();
    run_until(source, &lake, &dlq, "2 records", |lake, _| lake.len() >= 2).await;
    assert_eq!(lake.numbers(), [1, 2], "the acknowledgements are not records");
    assert!(dlq.is_empty());
}

#[tokio::test]
async fn wss_through_rustls_with_a_self_signed_certificate() {
    let server = WsServer::start_tls(|mut peer: Peer| async move {
        peer.expect(1).await;
        peer.text(r#"{"n": 7}"#).await;
        peer.close().await;
    })
    .await;
    let source = ws(&server.url()).reconnect(false).subscribe("hi").ca_file(server.ca_file().to_str().unwrap());
    let lake = Lake::default();
    Pipeline::from(source).to(lake.sink()).handle_signals(false).run().await.expect("wss with the certificate trusted");
    assert_eq!(lake.numbers(), [7]);
    assert_eq!(server.texts(1), ["hi"]);

    // Without trusting it: the handshake fails (the certificate is unknown), no record.
    let source = ws(&server.url()).max_reconnects(0);
    let err = Pipeline::from(source).to(Lake::default().sink()).handle_signals(false).run().await.expect_err("untrusted certificate");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn an_unset_variable_in_a_subscribe_message_fails_the_start_up() {
    let source = ws("ws://127.0.0.1:1/feed").subscribe(json!({"key": "${ETL_WS_TEST_SURELY_UNSET}"}));
    let err = Pipeline::from(source).to(Lake::default().sink()).handle_signals(false).run().await.expect_err("unset");
    assert!(err.to_string().contains("ETL_WS_TEST_SURELY_UNSET"), "{err}");
}

#[derive(Debug, Clone, PartialEq, etl::Record, serde::Serialize, serde::Deserialize)]
struct Trade {
    n: i64,
}

#[tokio::test]
async fn the_websocket_step_of_pipeline_macro() {
    let server = WsServer::start(|mut peer: Peer| async move {
        peer.expect(2).await;
        peer.text(r#"[{"n": 1}, {"n": 2}]"#).await;
        peer.text(r#"{"n": "three"}"#).await;
        peer.text(r#"[{"n": 4}]"#).await;
        peer.close().await;
    })
    .await;
    let url = server.url();
    let out = etl::sink::collect::<Trade>();
    let dlq = MemoryDeadLetters::new();
    let run = etl::pipeline! {
        websocket(url = url, headers = [("X-Token", "t")],
                  subscribe_messages = [json!({"action": "subscribe", "channel": "trades"}), json!("plain")],
                  data_format = "json", split_arrays = true, ping_interval = 20s, pong_timeout = 10s,
                  reconnect = false, reconnect_delay = 10ms, max_reconnects = 3, idle_timeout = 60s,
                  auth_ack_timeout = 10s, max_message_bytes = 65536, batch_size = 10, batch_timeout = 20ms) as Trade
        | filter(|t| t.n > 1)
        | collect(out.clone())
    };
    let report = tokio::time::timeout(PATIENCE, run.dead_letters(dlq.clone()).handle_signals(false).run()).await.expect("ends").unwrap();
    assert_eq!(out.records(), [Trade { n: 2 }, Trade { n: 4 }]);
    assert_eq!((report.records_in, report.dead_lettered), (4, 1), "{report}");
    assert_eq!(server.texts(1), [r#"{"action":"subscribe","channel":"trades"}"#, r#""plain""#]);
    assert!(server.handshakes()[0].contains(&("x-token".to_owned(), "t".to_owned())));
}
