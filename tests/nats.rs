//! The NATS JetStream connectors against a real nats-server (`NATS_URL`; `scripts/test.sh`
//! starts one; a missing server is a failure saying how to start it). Each test has streams,
//! subjects and consumers of its own; the server-restart test starts a server of its own
//! (`NATS_SERVER_BIN`) on its own port and data directory. Every check reads the server's own
//! view: consumer info (`num_pending`, `num_ack_pending`, `num_redelivered`), stream info, the
//! messages stored.

mod common;

use common::contract::LONG;
use common::nats::{client_at, consumer_info, create_consumer, create_stream, js, nats_url, publish, read_stream, unique, OwnServer};
use common::wait_until_async;
use etl::batch::{BatchOptions, FailureKind};
use etl::dead_letter::{DeadLetter, DeadLetters, MemoryDeadLetters, NatsDeadLetters, NatsRepublish};
use etl::record::{Meta, Position};
use etl::sink::{Sink, Written};
use etl::{ConnectorError, Json, Pipeline};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn drained() -> CancellationToken {
    let token = CancellationToken::new();
    token.cancel();
    token
}

fn n_of(record: &Json) -> u64 {
    record.get("n").and_then(serde_json::Value::as_u64).expect("a record with `n`")
}

/// A sink that keeps what it writes (with metadata), after an optional pause per write, and
/// fails (retryably) every batch holding a record with `"poison": true`.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<(Json, Meta)>>>,
    pause: Duration,
}

impl Recorder {
    fn numbers(&self) -> Vec<u64> {
        let mut n: Vec<u64> = self.seen.lock().unwrap().iter().map(|(r, _)| n_of(r)).collect();
        n.sort_unstable();
        n
    }
}

impl Sink<Json> for Recorder {
    fn describe(&self) -> String {
        "recorder".into()
    }

    async fn write(&mut self, records: &[Json]) -> Result<Written, ConnectorError> {
        self.write_batch(records, &vec![Meta::default(); records.len()]).await
    }

    async fn write_batch(&mut self, records: &[Json], meta: &[Meta]) -> Result<Written, ConnectorError> {
        tokio::time::sleep(self.pause).await;
        if records.iter().any(|r| r.get("poison") == Some(&json!(true))) {
            return Err(ConnectorError::retryable("recorder", "the downstream service refuses this batch (injected)"));
        }
        self.seen.lock().unwrap().extend(records.iter().cloned().zip(meta.iter().cloned()));
        Ok(Written::all())
    }
}

/// A stream capturing `<prefix>.<stream>` and a consumer on it; returns (stream, subject, durable).
async fn setup(js: &async_nats::jetstream::Context, prefix: &str, ack_wait: Duration, max_deliver: i64) -> (String, String, String) {
    let stream = unique(&prefix.to_uppercase());
    let subject = format!("{prefix}.{stream}");
    let s = create_stream(js, &stream, &subject).await;
    let durable = unique("etl");
    create_consumer(&s, &durable, ack_wait, max_deliver).await;
    (stream, subject, durable)
}

#[tokio::test]
async fn a_missing_stream_or_consumer_is_a_start_up_error_naming_it() {
    let js = js().await;
    let missing = unique("MISSING");
    let run =
        Pipeline::from(etl::source::nats::<Json>(&missing, "etl").url(nats_url())).to(Recorder::default()).handle_signals(false).run();
    let error = run.await.expect_err("a missing stream fails the start");
    assert!(matches!(error, etl::Error::Start { .. }), "{error:?}");
    assert!(error.to_string().contains(&format!("stream `{missing}` does not exist")), "{error}");

    let (stream, _, _) = setup(&js, "startup", Duration::from_secs(30), 5).await;
    let run =
        Pipeline::from(etl::source::nats::<Json>(&stream, "nobody").url(nats_url())).to(Recorder::default()).handle_signals(false).run();
    let error = run.await.expect_err("a missing consumer fails the start");
    assert!(matches!(error, etl::Error::Start { .. }), "{error:?}");
    assert!(error.to_string().contains("consumer `nobody` does not exist on stream"), "{error}");
    assert!(js.get_stream(&stream).await.unwrap().consumer_info("nobody").await.is_err(), "nothing created");
}

/// `check` (the runner's `check` command) looks up without creating or consuming anything.
#[tokio::test]
async fn check_looks_up_and_creates_nothing() {
    use etl::Source;
    let js = js().await;
    let ctx = || etl::source::SourceContext::new(CancellationToken::new());
    let (stream, subject, durable) = setup(&js, "check", Duration::from_secs(30), 5).await;
    publish(&js, &subject, json!({"n": 0}).to_string()).await;
    etl::source::nats::<Json>(&stream, &durable).url(nats_url()).check(ctx()).await.expect("stream and consumer exist");
    let error = etl::source::nats::<Json>(&stream, "absent").url(nats_url()).check(ctx()).await.expect_err("a missing consumer");
    assert!(error.to_string().contains("consumer `absent` does not exist"), "{error}");
    etl::source::nats::<Json>(&stream, "absent").url(nats_url()).create(true).check(ctx()).await.expect("create = true would make it");
    assert!(js.get_stream(&stream).await.unwrap().consumer_info("absent").await.is_err(), "check created nothing");
    let info = consumer_info(&js, &stream, &durable).await;
    assert_eq!((info.num_pending, info.delivered.stream_sequence), (1, 0), "check consumed nothing");
    let error = etl::source::nats::<Json>("NO_SUCH_STREAM_FOR_CHECK", "etl").url(nats_url()).check(ctx()).await.expect_err("no stream");
    assert!(error.to_string().contains("stream `NO_SUCH_STREAM_FOR_CHECK` does not exist"), "{error}");
    let error = etl::source::nats::<Json>(&stream, &durable).url("nats://127.0.0.1:1").check(ctx()).await.expect_err("no server");
    assert!(error.to_string().contains("cannot connect"), "{error}");
}

#[tokio::test]
async fn create_true_makes_the_stream_and_a_pull_consumer_with_explicit_acks() {
    let js = js().await;
    let stream = unique("CREATED");
    let subject = format!("created.{stream}.>");
    let source = etl::source::nats::<Json>(&stream, "etl-created")
        .url(nats_url())
        .subject(&subject)
        .create(true)
        .max_deliver(7)
        .ack_wait(Duration::from_secs(12))
        .drain_after(drained());
    let recorder = Recorder::default();
    Pipeline::from(source).to(recorder.clone()).handle_signals(false).run().await.expect("the run");
    let info = js.get_stream(&stream).await.expect("the stream was created").get_info().await.unwrap();
    assert_eq!(info.config.subjects, vec![subject.clone()]);
    let consumer = consumer_info(&js, &stream, "etl-created").await;
    assert_eq!(consumer.config.ack_policy, async_nats::jetstream::consumer::AckPolicy::Explicit);
    assert_eq!((consumer.config.max_deliver, consumer.config.ack_wait), (7, Duration::from_secs(12)));
    assert_eq!(consumer.config.filter_subject, subject);
    assert!(consumer.config.deliver_subject.is_none(), "a pull consumer");
}

/// A poison batch fails on every delivery (the downstream refuses it). Each failed run naks it
/// with a delay; on its last delivery (max_deliver = 3) it is dead-lettered into the NATS
/// dead-letter stream and terminated: the consumer holds nothing, the stream still holds the
/// message, the entry has its exact bytes, the attempts and the position.
#[tokio::test]
async fn poison_messages_are_dead_lettered_after_max_deliver_then_terminated() {
    let js = js().await;
    // ack_wait 3 s: a delivery whose nak a failed run had no time to send comes back soon.
    let (stream, subject, durable) = setup(&js, "poison", Duration::from_secs(3), 3).await;
    publish(&js, &subject, json!({"n": 0}).to_string()).await;
    publish(&js, &subject, json!({"n": 2}).to_string()).await;
    let poison = json!({"n": 1, "poison": true}).to_string();
    let poison_seq = publish(&js, &subject, poison.clone()).await;
    let dlq_stream = unique("DLQ");
    let recorder = Recorder::default();
    let mut runs = 0;
    let mut failed_runs = 0;
    loop {
        runs += 1;
        assert!(runs <= 10, "the poison message is still not dead-lettered after {runs} runs");
        // A draining run ends once the consumer holds nothing but what it processes: it waits
        // for the previous run's nak'ed delivery to come back.
        let source = etl::source::nats::<Json>(&stream, &durable)
            .url(nats_url())
            .nak_delay(Duration::from_millis(50))
            .drain_after(drained())
            .batch_size(1)
            .batch_timeout(LONG);
        let result = Pipeline::from(source)
            .to(recorder.clone())
            .retry(etl::pipeline::RetryPolicy::never())
            .dead_letters(NatsDeadLetters::new(nats_url(), &dlq_stream))
            .handle_signals(false)
            .run()
            .await;
        failed_runs += usize::from(result.is_err());
        let info = consumer_info(&js, &stream, &durable).await;
        if result.is_ok() && info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
    }
    assert_eq!(failed_runs, 3, "one failed run per delivery of the poison message (max_deliver = 3)");
    assert_eq!(recorder.numbers(), [0, 2], "the good messages arrive");
    let info = consumer_info(&js, &stream, &durable).await;
    assert_eq!((info.num_pending, info.num_ack_pending, info.num_redelivered), (0, 0, 0), "the consumer holds nothing: {info:?}");
    assert_eq!(js.get_stream(&stream).await.unwrap().get_info().await.unwrap().state.messages, 3, "+TERM keeps the message in the stream");
    let entries = NatsDeadLetters::new(nats_url(), &dlq_stream).list().await.expect("list");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(&e.payload[..], poison.as_bytes());
    assert_eq!((e.kind, e.attempts, e.position.clone()), (FailureKind::MaxDeliveries, 3, Position::Sequence(poison_seq)));
    assert_eq!(e.source, format!("nats {stream}/{durable}"));
    assert!(e.error.contains("max_deliver = 3"), "{}", e.error);
    // The dead-letter stream's own view.
    assert_eq!(js.get_stream(&dlq_stream).await.unwrap().get_info().await.unwrap().state.messages, 1);
}

/// Batches take 2.5 s in the sink while the consumer's `ack_wait` is 1 s. With progress acks no
/// message is redelivered meanwhile: another member of the durable, pulling all along, gets
/// nothing, and every record arrives once with delivery count 1. Without them (the control) the
/// server hands the messages out again.
#[tokio::test]
async fn ack_wait_shorter_than_a_slow_batch_makes_no_duplicate_thanks_to_progress_acks() {
    async fn slow_run(progress: bool) -> (Recorder, usize) {
        let js = js().await;
        let (stream, subject, durable) = setup(&js, "slow", Duration::from_secs(1), 10).await;
        for n in 0..4u64 {
            publish(&js, &subject, json!({"n": n}).to_string()).await;
        }
        let recorder = Recorder { pause: Duration::from_millis(2500), ..Recorder::default() };
        let source = etl::source::nats::<Json>(&stream, &durable)
            .url(nats_url())
            .progress(progress)
            .drain_after(drained())
            .batch_size(2)
            .batch_timeout(LONG);
        let run = tokio::spawn(Pipeline::from(source).to(recorder.clone()).max_in_flight(1).handle_signals(false).run());
        // Every message in the pipeline's hands (the first batch in the sink, the second pulled).
        wait_until_async(common::PATIENCE, "the pipeline to hold every message", || async {
            let info = consumer_info(&js, &stream, &durable).await;
            info.num_pending == 0 && info.num_ack_pending == 4
        })
        .await;
        // Another member of the same durable, pulling while the pipeline works.
        let consumer: async_nats::jetstream::consumer::PullConsumer =
            js.get_stream(&stream).await.unwrap().get_consumer(&durable).await.unwrap();
        let mut stolen = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
        while tokio::time::Instant::now() < deadline {
            let mut batch = consumer.fetch().max_messages(10).expires(Duration::from_millis(500)).messages().await.unwrap();
            while let Some(Ok(m)) = batch.next().await {
                stolen += 1;
                m.ack().await.unwrap();
            }
        }
        run.await.unwrap().expect("the run");
        let info = consumer_info(&js, &stream, &durable).await;
        assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "progress {progress}: the consumer holds nothing: {info:?}");
        (recorder, stolen)
    }
    let (recorder, stolen) = slow_run(true).await;
    assert_eq!(stolen, 0, "no message was handed to the other member while its batch was in flight");
    assert_eq!(recorder.numbers(), [0, 1, 2, 3], "each record once");
    let counts: Vec<Option<u32>> =
        recorder.seen.lock().unwrap().iter().map(|(_, m)| m.extra.as_ref().and_then(|e| e.delivery_count)).collect();
    assert!(counts.iter().all(|c| *c == Some(1)), "each delivered once: {counts:?}");
    // The control: the same run without progress acks.
    let (recorder, stolen) = slow_run(false).await;
    assert!(stolen > 0 || recorder.numbers().len() > 4, "without progress acks the server redelivers (the test can see the failure)");
}

#[derive(Debug, Clone, etl::Record, Serialize, Deserialize, PartialEq)]
struct Payment {
    n: u64,
    amount: i64,
}

struct Republished(NatsRepublish, usize);

impl etl::dead_letter::Republish for Republished {
    async fn republish(&mut self, entry: &DeadLetter) -> Result<(), ConnectorError> {
        self.1 += 1;
        etl::dead_letter::Republish::republish(&mut self.0, entry).await
    }
}

/// Bad payloads (one not even UTF-8) are dead-lettered into a NATS stream; replay republishes
/// them to their origin subject and removes exactly those; the fixed pipeline reads them; a
/// second replay of the empty queue returns 0 at once; purge removes by age.
#[tokio::test]
async fn dead_letter_replay_round_trip_through_the_origin_subject() {
    let js = js().await;
    let (stream, subject, durable) = setup(&js, "replay", Duration::from_secs(30), 5).await;
    let bad_text = json!({"n": 1, "amount": "12.50"}).to_string();
    let bad_binary: &[u8] = b"{\"n\": 2, \"amount\": \"\xff\"}";
    publish(&js, &subject, json!({"n": 0, "amount": 5}).to_string()).await;
    let text_seq = publish(&js, &subject, bad_text.clone()).await;
    let binary_seq = publish(&js, &subject, bad_binary.to_vec()).await;
    let dlq = unique("DLQ_REPLAY");
    let out = etl::sink::collect::<Payment>();
    let source = etl::source::nats::<Payment>(&stream, &durable).url(nats_url()).drain_after(drained());
    let report = Pipeline::from(source)
        .to(out.sink())
        .dead_letters(NatsDeadLetters::new(nats_url(), &dlq))
        .handle_signals(false)
        .run()
        .await
        .unwrap();
    assert_eq!((report.records_out, report.dead_lettered), (1, 2), "{report}");
    let queue = NatsDeadLetters::new(nats_url(), &dlq);
    let entries = queue.list().await.unwrap();
    let got: Vec<(Vec<u8>, Position, FailureKind)> = entries.iter().map(|e| (e.payload.to_vec(), e.position.clone(), e.kind)).collect();
    assert_eq!(
        got,
        vec![
            (bad_text.as_bytes().to_vec(), Position::Sequence(text_seq), FailureKind::Decode),
            (bad_binary.to_vec(), Position::Sequence(binary_seq), FailureKind::Decode)
        ],
        "binary-safe payloads, positions and kinds"
    );
    // Replay only the first to the origin subject.
    let first = entries[0].id.clone();
    let mut target = Republished(NatsRepublish::new(nats_url()), 0);
    assert_eq!(queue.replay(&|e| e.id == first, &mut target).await.unwrap(), 1);
    assert_eq!(target.1, 1);
    let left = queue.list().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(&left[0].payload[..], bad_binary, "exactly the replayed entry was removed");
    assert_eq!(js.get_stream(&dlq).await.unwrap().get_info().await.unwrap().state.messages, 1, "the dead-letter stream's own view");
    let origin = read_stream(&js, &stream).await;
    assert_eq!(origin.len(), 4, "republished to the origin stream");
    assert_eq!(&origin[3][..], bad_text.as_bytes());
    // The fixed pipeline (amounts as JSON values) reads the replayed message.
    let fixed = etl::sink::collect::<Json>();
    let source = etl::source::nats::<Json>(&stream, &durable).url(nats_url()).drain_after(drained());
    let report = Pipeline::from(source).to(fixed.sink()).dead_letters(MemoryDeadLetters::new()).handle_signals(false).run().await.unwrap();
    assert_eq!(report.records_out, 1, "{report}");
    assert_eq!(fixed.records()[0].get("amount"), Some(&json!("12.50")));
    // Replay everything left, then an empty queue: 0 at once.
    assert_eq!(queue.replay(&|_| true, &mut Republished(NatsRepublish::new(nats_url()), 0)).await.unwrap(), 1);
    let started = std::time::Instant::now();
    assert_eq!(queue.replay(&|_| true, &mut Republished(NatsRepublish::new(nats_url()), 0)).await.unwrap(), 0);
    assert!(started.elapsed() < Duration::from_secs(5), "an empty queue returns at once");
    // Purge by age.
    let failure = etl::batch::Failure::new(bytes::Bytes::from_static(b"\x00"), FailureKind::Transform, "bad", Meta::default());
    queue.write(vec![DeadLetter::from_failure(failure, "file in.jsonl")]).await.unwrap();
    assert_eq!(queue.purge(Duration::from_secs(3600)).await.unwrap(), 0, "nothing older than an hour");
    assert_eq!(queue.purge(Duration::ZERO).await.unwrap(), 1);
    assert!(queue.list().await.unwrap().is_empty());
    // An entry whose origin cannot be found stops the replay with an error naming it, and stays.
    let failure = etl::batch::Failure::new(bytes::Bytes::from_static(b"{}"), FailureKind::Transform, "bad", Meta::default());
    queue.write(vec![DeadLetter::from_failure(failure, "file in.jsonl")]).await.unwrap();
    let error = queue.replay(&|_| true, &mut NatsRepublish::new(nats_url())).await.expect_err("no origin subject");
    assert!(error.to_string().contains("origin subject"), "{error}");
    assert_eq!(queue.list().await.unwrap().len(), 1);
}

/// Two processes on one durable share the messages; one is SIGKILLed mid-work; the other
/// finishes, including what the dead one held (redelivered after `ack_wait`).
#[tokio::test]
async fn two_consumers_on_one_durable_share_the_work_and_one_killed_the_other_finishes() {
    if let Some(args) = common::crash::child_args() {
        let source = etl::source::nats::<Json>(args["stream"].as_str().unwrap(), args["durable"].as_str().unwrap())
            .url(nats_url())
            .drain_after(drained())
            .batch_size(10)
            .batch_timeout(LONG);
        let report = Pipeline::from(source)
            .to(etl::sink::file(args["lake"].as_str().unwrap()))
            .dead_letters(MemoryDeadLetters::new())
            .handle_signals(false)
            .run()
            .await
            .expect("the child's run");
        eprintln!("child finished: {report}");
        return;
    }
    const MESSAGES: u64 = 2000;
    let js = js().await;
    let (stream, subject, durable) = setup(&js, "shared", Duration::from_secs(2), 20).await;
    for n in 0..MESSAGES {
        publish(&js, &subject, json!({"n": n}).to_string()).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let child = |name: &str| common::crash::Child {
        test: "two_consumers_on_one_durable_share_the_work_and_one_killed_the_other_finishes".into(),
        args: json!({"stream": stream, "durable": durable, "lake": dir.path().join(name)}),
        log_dir: dir.path().join(format!("log-{name}")),
    };
    let (a, b) = (child("a"), child("b"));
    std::fs::create_dir_all(&a.log_dir).unwrap();
    std::fs::create_dir_all(&b.log_dir).unwrap();
    let (mut pa, _) = a.spawn(0);
    let (mut pb, log_b) = b.spawn(0);
    let lake_a = dir.path().join("a");
    let lake_b = dir.path().join("b");
    common::wait_until(common::PATIENCE, "both members to write", || {
        common::crash::count_files(&lake_a) >= 2 && common::crash::count_files(&lake_b) >= 2
    })
    .await;
    pa.kill().expect("SIGKILL member a");
    let _ = pa.wait();
    let deadline = std::time::Instant::now() + common::PATIENCE;
    let status = loop {
        if let Some(status) = pb.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "member b did not finish: {}", common::crash::tail(&log_b));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "member b failed: {}", common::crash::tail(&log_b));
    let (in_a, in_b) = (common::crash::read_lake(&lake_a), common::crash::read_lake(&lake_b));
    let from_a: Vec<u64> = in_a.records().map(n_of).collect();
    let from_b: Vec<u64> = in_b.records().map(n_of).collect();
    assert!(!from_a.is_empty() && !from_b.is_empty(), "both members got work");
    let tally = common::crash::Tally::of(from_a.iter().chain(&from_b).copied());
    assert_eq!(tally.missing(0..MESSAGES), Vec::<u64>::new(), "every message arrived");
    let info = consumer_info(&js, &stream, &durable).await;
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "the consumer holds nothing: {info:?}");
    eprintln!("member a wrote {}, member b {}, {} duplicates", from_a.len(), from_b.len(), tally.duplicates());
}

/// The server (one this test started, on its own port and data directory) is killed and
/// restarted while a run reads its stream: the run goes on after the restart and nothing is
/// lost; the consumer ends with nothing pending.
#[tokio::test]
async fn a_server_restart_during_a_run_loses_nothing() {
    const MESSAGES: u64 = 3000;
    let mut server = OwnServer::start().await;
    let url = server.url();
    let js = async_nats::jetstream::new(client_at(&url).await);
    let (stream, subject, durable) = setup(&js, "restart", Duration::from_secs(3), 50).await;
    for n in 0..MESSAGES {
        publish(&js, &subject, json!({"n": n}).to_string()).await;
    }
    let recorder = Recorder { pause: Duration::from_millis(20), ..Recorder::default() };
    let source = etl::source::nats::<Json>(&stream, &durable)
        .url(&url)
        .drain_after(drained())
        .batch_size(50)
        .batch_timeout(Duration::from_millis(200));
    let run = tokio::spawn(Pipeline::from(source).to(recorder.clone()).dead_letters(MemoryDeadLetters::new()).handle_signals(false).run());
    common::wait_until(common::PATIENCE, "the run to make progress", || recorder.seen.lock().unwrap().len() >= 500).await;
    server.kill();
    let at_kill = recorder.seen.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart().await;
    let report = tokio::time::timeout(Duration::from_secs(120), run).await.expect("the run ends").unwrap().expect("the run");
    let numbers: Vec<u64> = recorder.numbers();
    let tally = common::crash::Tally::of(numbers.iter().copied());
    assert_eq!(tally.missing(0..MESSAGES), Vec::<u64>::new(), "every message arrived (killed at {at_kill} records)");
    let js = async_nats::jetstream::new(client_at(&url).await);
    let info = consumer_info(&js, &stream, &durable).await;
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "the consumer holds nothing after the restart: {info:?}");
    assert_eq!(report.dead_lettered, 0, "{report}");
    eprintln!("server killed at {at_kill} records; {} duplicates; {report}", tally.duplicates());
}

/// The sink stores a redelivered batch once: a NATS → NATS pipeline runs twice over the same
/// messages (the consumer reset in between, as after a crash that lost its acks); the
/// `Nats-Msg-Id`s derived from the source positions make the output stream hold each once.
#[tokio::test]
async fn the_sink_stores_a_redelivered_batch_once() {
    let js = js().await;
    let (stream, subject, durable) = setup(&js, "dedup", Duration::from_secs(30), 5).await;
    for n in 0..20u64 {
        publish(&js, &subject, json!({"n": n}).to_string()).await;
    }
    let out_stream = unique("DEDUP_OUT");
    let out_subject = format!("dedup_out.{out_stream}");
    create_stream(&js, &out_stream, &out_subject).await;
    for round in 0..2 {
        if round == 1 {
            let s = js.get_stream(&stream).await.unwrap();
            s.delete_consumer(&durable).await.unwrap();
            create_consumer(&s, &durable, Duration::from_secs(30), 5).await;
        }
        let source = etl::source::nats::<Json>(&stream, &durable).url(nats_url()).drain_after(drained()).batch_size(7);
        let sink = etl::sink::nats(out_subject.as_str()).url(nats_url());
        let report = Pipeline::from(source).to(sink).name("dedup").handle_signals(false).run().await.unwrap();
        assert_eq!(report.records_out, 20, "round {round}: {report}");
    }
    let stored = read_stream(&js, &out_stream).await;
    let mut numbers: Vec<u64> = stored.iter().map(|p| n_of(&serde_json::from_slice(p).unwrap())).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..20).collect::<Vec<_>>(), "each message stored once despite two deliveries");
    // Without ids, the same two rounds store everything twice (the test sees the difference).
    let plain_stream = unique("PLAIN_OUT");
    let plain_subject = format!("plain_out.{plain_stream}");
    create_stream(&js, &plain_stream, &plain_subject).await;
    for _ in 0..2 {
        let s = js.get_stream(&stream).await.unwrap();
        s.delete_consumer(&durable).await.unwrap();
        create_consumer(&s, &durable, Duration::from_secs(30), 5).await;
        let source = etl::source::nats::<Json>(&stream, &durable).url(nats_url()).drain_after(drained());
        let sink = etl::sink::nats(plain_subject.as_str()).url(nats_url()).dedup(false);
        Pipeline::from(source).to(sink).handle_signals(false).run().await.unwrap();
    }
    assert_eq!(read_stream(&js, &plain_stream).await.len(), 40);
}

/// A subject template routes by field; a record without the field is dead-lettered; a fixed
/// subject no stream captures is a start-up error.
#[tokio::test]
async fn subjects_from_fields_and_a_subject_no_stream_captures() {
    let js = js().await;
    let stream = unique("ROUTED");
    create_stream(&js, &stream, &format!("routed.{stream}.*")).await;
    let records: Vec<Json> = vec![
        serde_json::from_value(json!({"n": 0, "region": "eu"})).unwrap(),
        serde_json::from_value(json!({"n": 1, "region": "us"})).unwrap(),
        serde_json::from_value(json!({"n": 2})).unwrap(),
    ];
    let dlq = MemoryDeadLetters::new();
    let sink = etl::sink::nats(format!("routed.{stream}.{{region}}")).url(nats_url()).msg_id("n");
    let report = Pipeline::from(etl::source::iter(records)).to(sink).dead_letters(dlq.clone()).handle_signals(false).run().await.unwrap();
    assert_eq!((report.records_out, report.dead_lettered), (2, 1), "{report}");
    assert!(dlq.list().await.unwrap()[0].error.contains("no field `region`"));
    let s = js.get_stream(&stream).await.unwrap();
    let eu = s.get_last_raw_message_by_subject(&format!("routed.{stream}.eu")).await.expect("a message on the eu subject");
    assert_eq!(n_of(&serde_json::from_slice(&eu.payload).unwrap()), 0);
    let us = s.get_last_raw_message_by_subject(&format!("routed.{stream}.us")).await.expect("a message on the us subject");
    assert_eq!(n_of(&serde_json::from_slice(&us.payload).unwrap()), 1);
    let nowhere = unique("nowhere");
    let run =
        Pipeline::from(etl::source::iter(vec![1i64])).to(etl::sink::nats(nowhere.as_str()).url(nats_url())).handle_signals(false).run();
    let error = run.await.expect_err("no stream captures the subject");
    assert!(error.to_string().contains(&format!("no JetStream stream captures subject `{nowhere}`")), "{error}");
}

/// The `pipeline!` steps: a `nats` source and a `nats` sink, with the DSL's arguments.
#[tokio::test]
async fn the_pipeline_macro_steps() {
    let js = js().await;
    let (stream, subject, durable) = setup(&js, "macro", Duration::from_secs(30), 5).await;
    for n in 0..5u64 {
        publish(&js, &subject, json!({"n": n}).to_string()).await;
    }
    let out_stream = unique("MACRO_OUT");
    let out_subject = format!("macro_out.{out_stream}");
    create_stream(&js, &out_stream, &out_subject).await;
    let url = nats_url();
    let report = etl::pipeline! {
        nats(stream = stream.as_str(), durable = durable.as_str(), url = url.as_str(), max_deliver = 3, ack_wait = 10s, nak_delay = 200ms, batch_size = 5, max_records = 5)
        | filter(|r| r.get("n").is_some())
        | nats(subject = out_subject.as_str(), url = url.as_str(), msg_id = "n", ack_timeout = 5s)
    }
    .handle_signals(false)
    .run()
    .await
    .unwrap();
    assert_eq!(report.records_out, 5, "{report}");
    assert_eq!(read_stream(&js, &out_stream).await.len(), 5);
    let info = consumer_info(&js, &stream, &durable).await;
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0));
}
