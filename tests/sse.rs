//! The SSE source against a real HTTP/1.1 server on loopback: a scripted fixture that answers
//! each connection with the next reply of its script.
//!
//! Timing: tests wait on what they need ([`wait_until`]), with deadlines only a hang reaches.
//! Where a test tells two delays apart (a `retry:` field against the configured reconnect
//! delay), the configured one is a minute, so that "sooner" has a wide margin on a loaded
//! machine.

mod common;

use common::{wait_until, PATIENCE};
use etl::batch::{BatchOptions, FailureKind};
use etl::dead_letter::{DeadLetters, MemoryDeadLetters};
use etl::record::Position;
use etl::source::{DataFormat, Source, SourceContext};
use etl::{Json, Pipeline};
use futures::StreamExt;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// One step of a scripted `200 OK` event stream.
#[derive(Debug, Clone)]
enum Step {
    Send(Vec<u8>),
    Sleep(Duration),
}

/// How the server answers one connection.
#[derive(Debug, Clone)]
enum Reply {
    /// `200 OK`, the steps, then close the connection.
    Stream(Vec<Step>),
    /// `200 OK`, the steps, then keep the connection open until the client closes it.
    StreamThenHold(Vec<Step>),
    /// This status with an empty body.
    Status(u16),
    /// `200 OK`, then the events of this log (id, event text) after the one named by the
    /// request's `Last-Event-ID` (all of them without the header), then hold the connection:
    /// a server that honours `Last-Event-ID`.
    Replay(Vec<(String, String)>),
}

fn send(text: &str) -> Step {
    Step::Send(text.as_bytes().to_vec())
}

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    headers: Vec<(String, String)>,
    /// When the client closed a held connection.
    client_closed: Option<Instant>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// Serve `script` (one reply per connection, in order), then `after` for every further
    /// connection.
    async fn start(script: Vec<Reply>, after: Reply) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            let mut script = script.into_iter();
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                let reply = script.next().unwrap_or_else(|| after.clone());
                tokio::spawn(serve(socket, reply, Arc::clone(&log)));
            }
        });
        Server { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(mut socket: TcpStream, reply: Reply, log: Arc<Mutex<Vec<Seen>>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let headers: Vec<(String, String)> =
        text.lines().skip(1).filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
    let last_event_id = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("last-event-id")).map(|(_, v)| v.clone());
    let index = {
        let mut log = log.lock().unwrap();
        log.push(Seen { at: Instant::now(), headers, client_closed: None });
        log.len() - 1
    };
    let (steps, hold) = match reply {
        Reply::Status(status) => {
            let response = format!("HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = socket.write_all(response.as_bytes()).await;
            return;
        }
        Reply::Stream(steps) => (steps, false),
        Reply::StreamThenHold(steps) => (steps, true),
        Reply::Replay(log) => {
            let start = match &last_event_id {
                Some(id) => log.iter().position(|(i, _)| i == id).map_or(0, |p| p + 1),
                None => 0,
            };
            (log[start..].iter().map(|(_, text)| send(text)).collect(), true)
        }
    };
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for step in steps {
        match step {
            Step::Send(bytes) => {
                if socket.write_all(&bytes).await.is_err() {
                    return;
                }
                let _ = socket.flush().await;
            }
            Step::Sleep(d) => tokio::time::sleep(d).await,
        }
    }
    if hold {
        // Wait for the client to hang up (a read of 0 bytes), and note when.
        while let Ok(n) = socket.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        log.lock().unwrap()[index].client_closed = Some(Instant::now());
    }
}

/// A source with short reconnect delays for tests.
fn source(server: &Server) -> etl::source::SseSource<Json> {
    etl::source::sse::<Json>(server.url()).reconnect_delay(Duration::from_millis(10)).batch_timeout(Duration::from_millis(20))
}

/// The configured reconnect delay of tests that check a reconnect came sooner.
const SLOW_RECONNECT: Duration = Duration::from_secs(60);

/// Run `source` into a `collect` sink with a memory dead-letter queue (failing on a hang).
async fn run(source: etl::source::SseSource<Json>) -> (etl::Result<etl::RunReport>, Vec<Json>, MemoryDeadLetters) {
    let out = etl::sink::collect::<Json>();
    let dlq = MemoryDeadLetters::new();
    let pipeline = Pipeline::from(source).to(out.sink()).dead_letters(dlq.clone()).handle_signals(false);
    let result = tokio::time::timeout(PATIENCE, pipeline.run()).await.expect("the run did not end");
    (result, out.records(), dlq)
}

fn values(records: &[Json]) -> Vec<serde_json::Value> {
    records.iter().map(|r| serde_json::to_value(r).unwrap()).collect()
}

#[tokio::test]
async fn framing_bom_crlf_comments_multiline_and_metadata() {
    let mut first = b"\xEF\xBB\xBF".to_vec();
    first.extend_from_slice(b": a comment\r\nretry: 100\r\n\r\n");
    let script = vec![Reply::StreamThenHold(vec![
        Step::Send(first),
        send("id: 1\r\nevent: trade\r\ndata: {\"n\": 1,\r\ndata:  \"s\": \"😀 \\\"quoted\\\" a\\nb\"}\r\n\r\n"),
        send(":keep-alive\n\n"),
        send("id: 2\rdata: {\"n\": 2}\r\r"),
        send("data: {\"n\""),
        Step::Sleep(Duration::from_millis(50)),
        send(": 3}\n\n"),
    ])];
    let server = Server::start(script, Reply::Status(503)).await;
    // Resolved at start-up (the variable is unset: its default). No test sets a variable: the
    // tests of a binary share one environment and run in parallel.
    let src = source(&server).header("Authorization", "Bearer ${ETL_SSE_SURELY_UNSET_TOKEN:-s3cret}").last_event_id("0").max_records(3);
    let mut batches = src.open(SourceContext::new(CancellationToken::new())).await.unwrap();
    let mut got = Vec::new();
    while let Some(batch) = batches.next().await {
        let batch = batch.unwrap();
        for (record, meta) in batch.iter_with_meta() {
            let event_type = meta.extra.as_ref().and_then(|e| e.event_type.clone());
            got.push((serde_json::to_value(record).unwrap(), meta.position.clone(), event_type, meta.raw.clone()));
        }
    }
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].0, json!({"n": 1, "s": "😀 \"quoted\" a\nb"}));
    assert_eq!(got[0].1, Position::Id("1".into()));
    assert_eq!(got[0].2.as_deref(), Some("trade"));
    assert_eq!(got[0].3.as_deref(), Some("{\"n\": 1,\n \"s\": \"😀 \\\"quoted\\\" a\\nb\"}".as_bytes()));
    assert_eq!((got[1].0.clone(), got[1].1.clone(), got[1].2.as_deref()), (json!({"n": 2}), Position::Id("2".into()), Some("message")));
    // The id carries over to the next event (the spec's last event id).
    assert_eq!((got[2].0.clone(), got[2].1.clone()), (json!({"n": 3}), Position::Id("2".into())));
    // The record holds only the data: metadata stays beside it.
    assert!(got[0].0.get("_event_type").is_none());
    let seen = server.seen();
    assert_eq!(seen[0].header("authorization"), Some("Bearer s3cret"));
    assert_eq!(seen[0].header("last-event-id"), Some("0"));
    assert_eq!(seen[0].header("accept"), Some("text/event-stream"));
}

#[tokio::test]
async fn event_filter_drops_heartbeats_and_bad_json_is_dead_lettered() {
    let script = vec![Reply::StreamThenHold(vec![
        send("event: heartbeat\ndata: ping\n\n"),
        send("id: 1\ndata: {\"ok\": 1}\n\n"),
        send("event: heartbeat\ndata: {broken too, but filtered\n\n"),
        send("id: 2\ndata: {\"ok\": \n\n"),
        send("id: 3\ndata: [\"not an object\"]\n\n"),
        send("id: 4\ndata: {\"ok\": 4, \"emoji\": \"🚀\"}\n\n"),
    ])];
    let server = Server::start(script, Reply::Status(503)).await;
    let (result, records, dlq) = run(source(&server).event_filter("message").max_records(4)).await;
    let report = result.unwrap();
    assert_eq!(values(&records), [json!({"ok": 1}), json!({"ok": 4, "emoji": "🚀"})]);
    assert_eq!(report.dead_lettered, 2);
    let entries = dlq.list().await.unwrap();
    let payloads: Vec<&[u8]> = entries.iter().map(|e| &e.payload[..]).collect();
    assert_eq!(payloads, [&b"{\"ok\": "[..], &b"[\"not an object\"]"[..]]);
    assert!(entries.iter().all(|e| e.kind == FailureKind::Decode));
    assert_eq!(entries[0].position, Position::Id("2".into()));
    assert_eq!(server.seen().len(), 1, "no reconnect");
}

#[tokio::test]
async fn text_format_wraps_the_data() {
    let script = vec![Reply::StreamThenHold(vec![send("data: plain text\ndata: second line\n\n"), send("data: {\"a\":1}\n\n")])];
    let server = Server::start(script, Reply::Status(503)).await;
    let (result, records, _) = run(source(&server).data_format(DataFormat::Text).max_records(2)).await;
    result.unwrap();
    assert_eq!(values(&records), [json!({"data": "plain text\nsecond line"}), json!({"data": "{\"a\":1}"})]);
}

#[tokio::test]
async fn a_dropped_connection_resumes_from_the_last_event_id_without_loss_or_duplicates() {
    let script = vec![
        Reply::Stream(vec![send("id: 1\ndata: {\"n\":1}\n\n"), send("id: 2\ndata: {\"n\":2}\n\n"), send("id: 3\ndata: {\"n\":")]),
        Reply::Stream(vec![send("id: 3\ndata: {\"n\":3}\n\nid: 4\ndata: {\"n\":4}\n\n"), send("id: 5\ndata: {\"n\":5}\n")]),
        Reply::StreamThenHold(vec![send("id: 5\ndata: {\"n\":5}\n\n")]),
    ];
    let server = Server::start(script, Reply::Status(503)).await;
    let (result, records, dlq) = run(source(&server).max_records(5)).await;
    result.unwrap();
    assert_eq!(values(&records), (1..=5).map(|n| json!({"n": n})).collect::<Vec<_>>());
    assert!(dlq.is_empty());
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].header("last-event-id"), None);
    assert_eq!(seen[1].header("last-event-id"), Some("2"));
    assert_eq!(seen[2].header("last-event-id"), Some("4"));
}

#[tokio::test]
async fn retry_field_sets_the_reconnect_delay() {
    let script = vec![
        Reply::Stream(vec![send("retry: 50\nid: 1\ndata: {\"n\":1}\n\n")]),
        Reply::StreamThenHold(vec![send("id: 2\ndata: {\"n\":2}\n\n")]),
    ];
    let server = Server::start(script, Reply::Status(503)).await;
    // The configured delay is a minute: a reconnect within half of it can only come from
    // `retry:` (jitter only adds to a delay).
    let src = etl::source::sse::<Json>(server.url()).reconnect_delay(SLOW_RECONNECT).batch_size(1).max_records(2);
    let (result, records, _) = run(src).await;
    result.unwrap();
    assert_eq!(records.len(), 2);
    let seen = server.seen();
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_millis(45) && gap < SLOW_RECONNECT / 2, "reconnected after {gap:?}");
}

#[tokio::test]
async fn a_5xx_is_retried() {
    let script = vec![Reply::Status(500), Reply::Status(502), Reply::StreamThenHold(vec![send("data: {\"n\":1}\n\n")])];
    let server = Server::start(script, Reply::Status(503)).await;
    let (result, records, _) = run(source(&server).max_records(1)).await;
    result.unwrap();
    assert_eq!(values(&records), [json!({"n": 1})]);
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn a_404_ends_the_run_with_an_error_naming_the_status() {
    let server = Server::start(vec![], Reply::Status(404)).await;
    let start = Instant::now();
    let src = etl::source::sse::<Json>(server.url()).reconnect_delay(SLOW_RECONNECT);
    let (result, _, _) = run(src).await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("404"), "{error}");
    assert!(start.elapsed() < SLOW_RECONNECT / 2, "waited for a reconnect: {:?}", start.elapsed());
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_404_after_a_reconnect_ends_the_run() {
    let script = vec![Reply::Stream(vec![send("id: 1\ndata: {\"n\":1}\n\n")])];
    let server = Server::start(script, Reply::Status(404)).await;
    let (result, records, _) = run(source(&server)).await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("404"), "{error}");
    assert_eq!(values(&records), [json!({"n": 1})], "the batch before the error is delivered");
}

#[tokio::test]
async fn max_reconnects_consecutive_failures_end_the_run() {
    let server = Server::start(vec![], Reply::Status(503)).await;
    let (result, _, _) = run(source(&server).max_reconnects(2)).await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("3 consecutive") && error.contains("503"), "{error}");
    assert_eq!(server.seen().len(), 3, "the first attempt and 2 reconnects");
}

#[tokio::test]
async fn the_failure_count_resets_after_a_connection_that_delivered() {
    // Two failures, a good connection, two failures, a good connection: never 3 in a row.
    let good = |n: u32| Reply::Stream(vec![send(&format!("id: {n}\ndata: {{\"n\":{n}}}\n\n"))]);
    let script = vec![
        Reply::Status(503),
        Reply::Status(503),
        good(1),
        Reply::Status(503),
        Reply::Status(503),
        good(2),
        Reply::StreamThenHold(vec![send("id: 3\ndata: {\"n\":3}\n\n")]),
    ];
    let server = Server::start(script, Reply::Status(503)).await;
    let (result, records, _) = run(source(&server).max_reconnects(2).max_records(3)).await;
    result.unwrap();
    assert_eq!(records.len(), 3);
}

#[tokio::test]
async fn connection_refused_is_retried_then_gives_up() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let src = etl::source::sse::<Json>(format!("http://127.0.0.1:{port}/e")).reconnect_delay(Duration::from_millis(10)).max_reconnects(1);
    let (result, _, _) = run(src).await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("2 consecutive"), "{error}");
}

#[tokio::test]
async fn a_quiet_stream_is_not_an_error() {
    let script =
        vec![Reply::StreamThenHold(vec![send(": hi\n\n"), Step::Sleep(Duration::from_secs(2)), send("data: {\"late\":true}\n\n")])];
    let server = Server::start(script, Reply::Status(503)).await;
    let (result, records, _) = run(source(&server).max_records(1)).await;
    result.unwrap();
    assert_eq!(values(&records), [json!({"late": true})]);
    assert_eq!(server.seen().len(), 1, "no reconnect during the silence");
}

#[tokio::test]
async fn idle_timeout_reconnects_a_silent_stream() {
    let script = vec![Reply::StreamThenHold(vec![]), Reply::StreamThenHold(vec![send("data: {\"n\":1}\n\n")])];
    let server = Server::start(script, Reply::Status(503)).await;
    let (result, records, _) = run(source(&server).idle_timeout(Some(Duration::from_millis(200))).max_records(1)).await;
    result.unwrap();
    assert_eq!(records.len(), 1);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(200));
}

#[tokio::test]
async fn max_records_ends_the_run() {
    let events: String = (1..=10).map(|n| format!("id: {n}\ndata: {{\"n\":{n}}}\n\n")).collect();
    let server = Server::start(vec![Reply::StreamThenHold(vec![send(&events)])], Reply::Status(503)).await;
    let (result, records, _) = run(source(&server).max_records(3)).await;
    assert_eq!(result.unwrap().records_in, 3);
    assert_eq!(values(&records), [json!({"n":1}), json!({"n":2}), json!({"n":3})]);
}

#[tokio::test]
async fn reconnect_off_ends_with_the_stream() {
    let server = Server::start(vec![Reply::Stream(vec![send("data: {\"n\":1}\n\n")])], Reply::Status(503)).await;
    let (result, records, _) = run(source(&server).reconnect(false)).await;
    result.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_204_stops_without_error() {
    let server = Server::start(vec![], Reply::Status(204)).await;
    let (result, records, _) = run(source(&server)).await;
    result.unwrap();
    assert!(records.is_empty());
}

#[tokio::test]
async fn cancellation_while_the_server_is_silent_returns_promptly_and_closes_the_connection() {
    // Three events in one write, then silence: the first two make a full batch, the third is
    // read with them and waits in the next batch (its linger is an hour).
    let events = "data: {\"n\":1}\n\ndata: {\"n\":2}\n\ndata: {\"n\":3}\n\n";
    let server = Server::start(vec![Reply::StreamThenHold(vec![send(events)])], Reply::Status(503)).await;
    let out = etl::sink::collect::<Json>();
    let token = CancellationToken::new();
    let pipeline = Pipeline::from(source(&server).batch_size(2).batch_timeout(Duration::from_secs(3600)))
        .to(out.sink())
        .cancel_on(token.clone())
        .handle_signals(false);
    let run = tokio::spawn(pipeline.run());
    wait_until(PATIENCE, "the first batch in the sink", || out.len() == 2).await;
    token.cancel();
    // Returns at all: without the cancellation it would wait for the silent server forever.
    let report = tokio::time::timeout(PATIENCE, run).await.expect("run did not stop").unwrap().unwrap();
    assert_eq!(report.records_in, 3);
    assert_eq!(values(&out.records()), [json!({"n": 1}), json!({"n": 2}), json!({"n": 3})], "the partial batch is flushed");
    // The server sees the client hang up.
    wait_until(PATIENCE, "the client to close the connection", || server.seen()[0].client_closed.is_some()).await;
}

#[tokio::test]
async fn cancellation_during_the_reconnect_delay_returns_promptly() {
    let server = Server::start(vec![], Reply::Status(503)).await;
    let token = CancellationToken::new();
    let delay = Duration::from_secs(600);
    let src = etl::source::sse::<Json>(server.url()).reconnect_delay(delay);
    let pipeline = Pipeline::from(src).to(etl::sink::collect::<Json>().sink()).cancel_on(token.clone()).handle_signals(false);
    let run = tokio::spawn(pipeline.run());
    wait_until(PATIENCE, "the first attempt answered 503", || !server.seen().is_empty()).await;
    token.cancel();
    // A tenth of the reconnect delay.
    let report = tokio::time::timeout(PATIENCE, run).await.expect("run did not stop").unwrap().unwrap();
    assert_eq!(report.records_in, 0);
    assert_eq!(server.seen().len(), 1, "no reconnect");
}

#[tokio::test]
async fn an_unset_header_variable_fails_at_start_up() {
    let server = Server::start(vec![], Reply::Status(503)).await;
    let (result, _, _) = run(source(&server).header("X-Token", "${ETL_SSE_SURELY_UNSET_VAR}")).await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("ETL_SSE_SURELY_UNSET_VAR"), "{error}");
    assert!(server.seen().is_empty());
}

#[test]
fn header_values_never_print() {
    let src = etl::source::sse::<Json>("http://localhost/e").header("Authorization", "Bearer literal-secret");
    let debug = format!("{src:?}");
    assert!(!debug.contains("literal-secret"), "{debug}");
}

#[tokio::test]
async fn a_server_that_accepts_and_closes_without_events_counts_as_failing() {
    let server = Server::start(vec![], Reply::Stream(vec![send(": nothing to say\n\n")])).await;
    let (result, _, _) = run(source(&server).max_reconnects(2)).await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("3 consecutive") && error.contains("closed the stream"), "{error}");
    assert_eq!(server.seen().len(), 3);
}

#[derive(Debug, Clone, PartialEq, etl::Record, serde::Serialize, serde::Deserialize)]
struct Tick {
    n: i64,
}

#[tokio::test]
async fn the_sse_step_of_pipeline_macro_filters_decodes_and_dead_letters() {
    let script = vec![Reply::StreamThenHold(vec![
        send("event: heartbeat\ndata: ping\n\n"),
        send("id: 1\ndata: {\"n\": 1}\n\n"),
        send("id: 2\ndata: {\"n\": \"two\"}\n\n"),
        send("id: 3\ndata: {\"n\": 3}\n\n"),
    ])];
    let server = Server::start(script, Reply::Status(503)).await;
    let url = server.url();
    let out = etl::sink::collect::<Tick>();
    let dlq = MemoryDeadLetters::new();
    let run = etl::pipeline! {
        sse(url = url, headers = [("X-Token", "t")], event_filter = "message",
            data_format = "json", reconnect_delay = 10ms, max_reconnects = 3, max_records = 3, batch_timeout = 20ms) as Tick
        | filter(|t| t.n > 0)
        | collect(out.clone())
    };
    let report = tokio::time::timeout(PATIENCE, run.dead_letters(dlq.clone()).handle_signals(false).run()).await.expect("ends").unwrap();
    assert_eq!(out.records(), [Tick { n: 1 }, Tick { n: 3 }]);
    assert_eq!((report.records_in, report.dead_lettered), (3, 1));
    assert_eq!(&dlq.list().await.unwrap()[0].payload[..], b"{\"n\": \"two\"}");
    assert_eq!(server.seen()[0].header("x-token"), Some("t"));
}

#[tokio::test]
async fn invalid_utf8_data_is_dead_lettered_with_the_exact_bytes_and_the_stream_goes_on() {
    let script = vec![Reply::StreamThenHold(vec![
        send("id: 1\ndata: {\"n\": 1}\n\n"),
        Step::Send(b"id: 2\ndata: {\"s\": \"\xC3\x28\xFF\"}\n\n".to_vec()),
        Step::Send(b"id: 3\ndata: \xF0\x9F\n".to_vec()),
        Step::Send(b"data: \x98\x80 split code point\n\n".to_vec()),
        send("id: 4\ndata: {\"n\": 4}\n\n"),
    ])];
    let server = Server::start(script, Reply::Status(503)).await;
    let (result, records, dlq) = run(source(&server).max_records(4)).await;
    let report = result.unwrap();
    assert_eq!(values(&records), [json!({"n": 1}), json!({"n": 4})]);
    assert_eq!(report.dead_lettered, 2);
    let entries = dlq.list().await.unwrap();
    assert_eq!(&entries[0].payload[..], b"{\"s\": \"\xC3\x28\xFF\"}");
    // A code point split over two data lines is not rejoined: the bytes are kept as sent.
    assert_eq!(&entries[1].payload[..], b"\xF0\x9F\n\x98\x80 split code point");
    assert!(entries.iter().all(|e| e.kind == FailureKind::Decode && e.error.contains("UTF-8")), "{entries:?}");
    assert_eq!(entries[1].position, Position::Id("3".into()));
    assert_eq!(server.seen().len(), 1, "no reconnect: the stream went on past the bad bytes");
}

#[tokio::test]
async fn an_event_over_max_event_bytes_is_dead_lettered_truncated_and_the_stream_goes_on() {
    // 3 MiB of data in 64 KiB writes, against a 1 KiB limit.
    let mut steps = vec![send("id: 1\ndata: {\"n\": 1}\n\nid: 2\ndata: {\"big\": \"")];
    let piece = "x".repeat(64 * 1024);
    steps.extend((0..48).map(|_| send(&piece)));
    steps.push(send("\"}\n\nid: 3\ndata: {\"n\": 3}\n\n"));
    let server = Server::start(vec![Reply::StreamThenHold(steps)], Reply::Status(503)).await;
    let (result, records, dlq) = run(source(&server).max_event_bytes(1024).max_records(3)).await;
    let report = result.unwrap();
    assert_eq!(values(&records), [json!({"n": 1}), json!({"n": 3})]);
    assert_eq!(report.dead_lettered, 1);
    let entry = &dlq.list().await.unwrap()[0];
    let mut expected = b"{\"big\": \"".to_vec();
    expected.resize(1024, b'x');
    assert_eq!(&entry.payload[..], &expected[..]);
    assert_eq!(entry.kind, FailureKind::Decode);
    let size = 48 * 64 * 1024 + 11;
    assert!(entry.error.contains(&format!("{size} bytes")) && entry.error.contains("max_event_bytes"), "{}", entry.error);
    assert_eq!(entry.position, Position::Id("2".into()));
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_bare_retry_without_data_sets_the_next_reconnect_delay() {
    let script = vec![
        Reply::Stream(vec![send("id: 1\ndata: {\"n\":1}\n\n"), send("retry: 300\n\n")]),
        Reply::StreamThenHold(vec![send("id: 2\ndata: {\"n\":2}\n\n")]),
    ];
    let server = Server::start(script, Reply::Status(503)).await;
    // The configured delay is a minute: a reconnect within half of it can only come from
    // `retry:`, and not before 300 ms (jitter only adds to the delay).
    let src = etl::source::sse::<Json>(server.url()).reconnect_delay(SLOW_RECONNECT).batch_size(1).max_records(2);
    let (result, records, _) = run(src).await;
    result.unwrap();
    assert_eq!(values(&records), [json!({"n": 1}), json!({"n": 2})]);
    let seen = server.seen();
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_millis(300) && gap < SLOW_RECONNECT / 2, "reconnected after {gap:?}");
    assert_eq!(seen[1].header("last-event-id"), Some("1"));
}

/// A server doing everything at once; every good event must land in the sink exactly once,
/// every bad one in the dead letters with its bytes, and nothing else anywhere.
#[tokio::test]
async fn a_messy_stream_end_to_end_every_good_event_exactly_once() {
    let mut huge = b"id: 5\ndata: {\"n\": 5, \"pad\": \"".to_vec();
    huge.resize(huge.len() + 5000, b'p');
    huge.extend_from_slice(b"\"}\n\n");
    let heartbeat = || send("event: heartbeat\ndata: {\"beat\": true}\n\n");
    let script = vec![
        Reply::Stream(vec![
            Step::Send(b"\xEF\xBB\xBF: hello\r\n\r\n".to_vec()),
            send("id: 1\r\ndata: {\"n\": 1}\r\n\r\n"),
            heartbeat(),
            send("id: 2\r\ndata: {\"n\":\r\ndata:  2}\r\n\r\n"),
            send("id: 3\ndata: {\"n\": 3, oops\n\n"),
            heartbeat(),
            Step::Send(b"id: 4\ndata: {\"n\": 4, \"s\": \"\xFF\xFE\"}\n\n".to_vec()),
            Step::Send(huge),
            send("id: 6\rdata: {\"n\": 6}\r\r"),
            send("retry: 200\n\n"),
            heartbeat(),
            // Cut in the middle of an event: no blank line, then the connection closes.
            send("id: 7\ndata: {\"n\": 7}\n"),
        ]),
        Reply::StreamThenHold(vec![heartbeat(), send("id: 7\ndata: {\"n\": 7}\n\n"), heartbeat(), send("id: 8\ndata: {\"n\": 8}\n\n")]),
    ];
    let server = Server::start(script, Reply::Status(503)).await;
    let src = etl::source::sse::<Json>(server.url())
        .event_filter("message")
        .reconnect_delay(SLOW_RECONNECT)
        .max_event_bytes(1000)
        .batch_size(3)
        .batch_timeout(Duration::from_millis(20))
        .max_records(8);
    let (result, records, dlq) = run(src).await;
    let report = result.unwrap();
    assert_eq!(values(&records), [1, 2, 6, 7, 8].map(|n| json!({"n": n})));
    let entries = dlq.list().await.unwrap();
    let got: Vec<(Position, Vec<u8>)> = entries.iter().map(|e| (e.position.clone(), e.payload.to_vec())).collect();
    let mut truncated = b"{\"n\": 5, \"pad\": \"".to_vec();
    truncated.resize(1000, b'p');
    assert_eq!(
        got,
        [
            (Position::Id("3".into()), b"{\"n\": 3, oops".to_vec()),
            (Position::Id("4".into()), b"{\"n\": 4, \"s\": \"\xFF\xFE\"}".to_vec()),
            (Position::Id("5".into()), truncated),
        ]
    );
    assert!(entries.iter().all(|e| e.kind == FailureKind::Decode));
    assert_eq!((report.records_in, report.records_out, report.dead_lettered), (8, 5, 3));
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "one reconnect, after the cut");
    assert_eq!(seen[1].header("last-event-id"), Some("6"));
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_millis(200) && gap < SLOW_RECONNECT / 2, "the bare retry: 200 sets the delay; reconnected after {gap:?}");
}

fn numbered_log(ids: std::ops::RangeInclusive<u32>) -> Vec<(String, String)> {
    ids.map(|n| {
        let data = if n == 3 { "{broken".to_owned() } else { format!("{{\"n\":{n}}}") };
        (n.to_string(), format!("id: {n}\ndata: {data}\n\n"))
    })
    .collect()
}

#[tokio::test]
async fn last_event_id_file_resumes_after_a_restart_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stream.last-id");
    let log = numbered_log(1..=10);

    // Run 1: the server has no Last-Event-ID, sends everything; the run stops after 4 events
    // (event 3 is dead-lettered: its batch is done too).
    let server = Server::start(vec![], Reply::Replay(log.clone())).await;
    let src = source(&server).last_event_id_file(&file).batch_size(2).max_records(4);
    let (result, first, dlq) = run(src).await;
    result.unwrap();
    assert_eq!(values(&first), [1, 2, 4].map(|n| json!({"n": n})));
    assert_eq!(dlq.len(), 1);
    assert_eq!(server.seen()[0].header("last-event-id"), None);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "4");

    // Run 2: a new process with the same file (it wins over `last_event_id`).
    let server = Server::start(vec![], Reply::Replay(log)).await;
    let src = source(&server).last_event_id_file(&file).last_event_id("1").batch_size(2).max_records(6);
    let (result, second, dlq) = run(src).await;
    result.unwrap();
    assert!(dlq.is_empty());
    assert_eq!(server.seen()[0].header("last-event-id"), Some("4"));
    assert_eq!(values(&second), (5..=10).map(|n| json!({"n": n})).collect::<Vec<_>>());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "10");
    // Across both runs: every good event once, none twice.
    let mut all: Vec<i64> = first.iter().chain(&second).map(|r| serde_json::to_value(r).unwrap()["n"].as_i64().unwrap()).collect();
    all.sort_unstable();
    assert_eq!(all, [1, 2, 4, 5, 6, 7, 8, 9, 10]);
}

/// A sink that is down.
struct DownSink;

impl etl::Sink<Json> for DownSink {
    fn describe(&self) -> String {
        "down".into()
    }

    async fn write(&mut self, _records: &[Json]) -> Result<etl::sink::Written, etl::ConnectorError> {
        Err(etl::ConnectorError::permanent("down", "the sink is down"))
    }
}

#[tokio::test]
async fn a_sink_failure_does_not_advance_the_stored_id() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("last-id");
    std::fs::write(&file, "2\n").unwrap();
    let server = Server::start(vec![], Reply::Replay(numbered_log(1..=6))).await;
    let src = source(&server).last_event_id_file(&file).batch_size(2);
    let pipeline = Pipeline::from(src).to(DownSink).retry(etl::pipeline::RetryPolicy::never()).handle_signals(false);
    let result = tokio::time::timeout(PATIENCE, pipeline.run()).await.expect("ends");
    assert!(result.is_err());
    assert_eq!(server.seen()[0].header("last-event-id"), Some("2"), "a trailing line end in the file is ignored");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "2\n", "nothing was delivered: the file is untouched");
}

#[tokio::test]
async fn last_event_id_file_in_a_missing_directory_fails_at_start_up() {
    let server = Server::start(vec![], Reply::Status(503)).await;
    let (result, _, _) = run(source(&server).last_event_id_file("/nonexistent-etl-dir/last-id")).await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("last_event_id_file") && error.contains("does not exist"), "{error}");
    assert!(server.seen().is_empty());
}
