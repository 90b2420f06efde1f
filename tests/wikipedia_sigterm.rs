//! SIGTERM in the middle of a batch: the `wikipedia` example stops reading, flushes its
//! partial batch into the lake, and returns its reports (the binary then exits 0). Alone in
//! its test binary: the signal goes to the whole process.

mod common;
mod example_wikipedia;

use common::{wait_until, PATIENCE};
use example_wikipedia::example::{run, Config};
use example_wikipedia::{expected_rows, lake_rows, sample};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A live stream: sends `events` at once, then stays open and silent (as a quiet live stream
/// does) until the client goes away.
async fn live_stream(events: Vec<bytes::Bytes>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/stream", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut request = BufReader::new(read);
        let mut line = String::new();
        while request.read_line(&mut line).await.unwrap() > 0 && line != "\r\n" {
            line.clear();
        }
        let mut body = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n".to_vec();
        for (id, data) in events.iter().enumerate() {
            body.extend_from_slice(format!("event: message\nid: {id}\ndata: ").as_bytes());
            body.extend_from_slice(data);
            body.extend_from_slice(b"\n\n");
        }
        write.write_all(&body).await.unwrap();
        // Hold the connection: the client's read ends it.
        let _ = request.read_line(&mut line).await;
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_batch_flushes_the_partial_batch_and_loses_nothing() {
    let _ = tracing_subscriber::fmt().with_env_filter("etl=debug").with_test_writer().try_init();
    let events: Vec<bytes::Bytes> = sample().into_iter().take(250).collect();
    let url = live_stream(events.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let config = Config { sse_url: Some(url), lake: lake.clone(), handle_signals: true, ..Config::default() };
    let running = tokio::spawn(run(config));

    // Wait until the first two batches of 100 are in the lake: the ingest pipeline read all
    // 250 events (in one batch, after its 1 s linger), and the third batch (50 events) is now
    // held by its 30 s linger, mid-batch.
    let files_in_lake = || {
        std::fs::read_dir(&lake)
            .map(|d| d.filter(|e| e.as_ref().is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.'))).count())
            .unwrap_or(0)
    };
    wait_until(PATIENCE, "the first two batches in the lake", || files_in_lake() >= 2).await;
    assert_eq!(files_in_lake(), 2, "the third batch waits for its linger");
    assert!(!running.is_finished(), "a live stream runs until stopped");
    // SAFETY: kill(2) on our own pid with a valid signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);

    // Well before the third batch's 30 s linger would have flushed it.
    let summary = tokio::time::timeout(std::time::Duration::from_secs(25), running).await.expect("stops on the signal").unwrap().unwrap();
    let ingest = summary.ingest.expect("two pipelines ran");
    assert_eq!((ingest.records_in, ingest.records_out), (250, 250));
    let want = expected_rows(&events);
    assert_eq!(summary.process.records_out, want.len() as u64);
    let (got, files) = lake_rows(&lake);
    assert_eq!(files, 3, "two full batches and the flushed partial one");
    assert!(got == want, "{} rows in the lake, {} expected", got.len(), want.len());
}
