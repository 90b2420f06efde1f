//! Test doubles shared by the integration tests: a source whose acknowledgements are observed,
//! sinks and dead-letter queues that fail on demand (failure injection: no real server refuses
//! writes on cue), and [`wait_until`], the one way a test waits for something to happen.
#![allow(dead_code)]

/// The connector contract every source and sink runs (issue 9).
pub mod contract;
/// The crash harness: SIGKILL a pipeline in a child process, restart it, count.
pub mod crash;
/// The extract → transform → load job of the job tests, its side effects counted in files.
pub mod jobs;
/// NATS helpers: the server's address, the consumer's and the stream's own view, a server of
/// a test's own (restarts).
#[cfg(feature = "nats")]
pub mod nats;
/// An SSE server that honours `Last-Event-ID` (contract and crash tests).
pub mod sse_server;
/// A WebSocket server (plain or TLS) running a handler per connection.
pub mod ws_server;

use etl::ack::{Ack, Status};
use etl::batch::{batched, Batch, BatchConfig, Incoming};
use etl::dead_letter::{DeadLetter, DeadLetters, DynRepublish, MemoryDeadLetters};
use etl::record::{Meta, Position};
use etl::sink::{Sink, Written};
use etl::source::{BatchStream, Source, SourceContext};
use etl::ConnectorError;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A deadline for [`wait_until`] that only a hang reaches: on a loaded 2-core machine a wait
/// of milliseconds can take seconds, never a minute.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Wait (in real time) until `cond` holds, checking it every 20 ms; panic naming `what` if it
/// still does not hold after `limit`. Tests wait on the condition they need, never for a
/// fixed time; the limit is generous and only catches a hang.
pub async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_until_async(limit, what, || std::future::ready(cond())).await
}

/// [`wait_until`] for a condition that must be awaited (a broker's or a store's own view).
pub async fn wait_until_async<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !cond().await {
        assert!(std::time::Instant::now() < deadline, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What happened, in order: writes attempted, writes done, acknowledgements heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    WriteFailed(Vec<i64>),
    Written(Vec<i64>),
    Acked(usize, Status),
    /// A dead-letter write refused, with the entries' payloads.
    DeadLetterFailed(Vec<String>),
    /// A dead-letter write that stored its entries (payloads).
    DeadLettered(Vec<String>),
}

#[derive(Clone, Default)]
pub struct Timeline(pub Arc<Mutex<Vec<Event>>>);

impl Timeline {
    pub fn push(&self, e: Event) {
        self.0.lock().unwrap().push(e);
    }
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
    pub fn acks(&self) -> Vec<(usize, Status)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Acked(i, s) => Some((i, s)),
                _ => None,
            })
            .collect()
    }
    pub fn written(&self) -> Vec<i64> {
        self.events()
            .into_iter()
            .flat_map(|e| match e {
                Event::Written(r) => r,
                _ => vec![],
            })
            .collect()
    }
}

/// A source of fixed batches; each batch's final status is recorded in the timeline.
pub struct AckedBatches {
    pub batches: Vec<Vec<i64>>,
    pub timeline: Timeline,
}

impl Source for AckedBatches {
    type Item = i64;
    fn describe(&self) -> String {
        "acked-batches".into()
    }
    async fn open(self, _ctx: SourceContext) -> etl::Result<BatchStream<i64>> {
        let timeline = self.timeline;
        let batches = self.batches.into_iter().enumerate().map(move |(i, records)| {
            let t = timeline.clone();
            let ack = Ack::new(move |s| t.push(Event::Acked(i, s)));
            let meta = records.iter().map(|&r| Meta::at(Position::Index(r as u64))).collect();
            Ok(Batch::new(records, meta, vec![], ack, Arc::from("acked-batches")))
        });
        Ok(Box::pin(futures::stream::iter(batches.collect::<Vec<_>>())))
    }
}

/// A source fed through a channel, batched by etl's batcher (timers, limits, shutdown).
/// Each batch's final status goes to the timeline, numbered in emission order.
pub struct Fed {
    pub rx: tokio::sync::mpsc::UnboundedReceiver<i64>,
    pub batching: BatchConfig,
    pub timeline: Timeline,
}

impl Source for Fed {
    type Item = i64;
    fn describe(&self) -> String {
        "fed".into()
    }
    async fn open(self, ctx: SourceContext) -> etl::Result<BatchStream<i64>> {
        let input = tokio_stream_from(self.rx);
        let timeline = self.timeline;
        let mut n = 0;
        Ok(batched(input, self.batching, ctx.shutdown, Arc::from("fed"), move |_tokens: Vec<()>| {
            let (i, t) = (n, timeline.clone());
            n += 1;
            Ack::new(move |s| t.push(Event::Acked(i, s)))
        }))
    }
}

fn tokio_stream_from(mut rx: tokio::sync::mpsc::UnboundedReceiver<i64>) -> impl futures::Stream<Item = etl::Result<Incoming<i64, ()>>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(|r| Ok(Incoming::record(r, Meta::default(), 8, ())))))
}

/// How a [`ScriptedSink`] answers each write attempt, in order; after the script, it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    Retryable,
    Permanent,
    Hang,
}

pub struct ScriptedSink {
    pub script: std::collections::VecDeque<Answer>,
    pub timeline: Timeline,
    /// Reject (permanently, per record) the records for which this returns true.
    pub reject: Arc<dyn Fn(i64) -> bool + Send + Sync>,
}

impl ScriptedSink {
    pub fn new(script: impl IntoIterator<Item = Answer>, timeline: &Timeline) -> Self {
        ScriptedSink { script: script.into_iter().collect(), timeline: timeline.clone(), reject: Arc::new(|_| false) }
    }

    /// Reject the records for which `f` returns true (whenever a write is answered `Ok`).
    pub fn rejecting(mut self, f: impl Fn(i64) -> bool + Send + Sync + 'static) -> Self {
        self.reject = Arc::new(f);
        self
    }
}

impl Sink<i64> for ScriptedSink {
    fn describe(&self) -> String {
        "scripted".into()
    }
    async fn write(&mut self, records: &[i64]) -> Result<Written, ConnectorError> {
        match self.script.pop_front().unwrap_or(Answer::Ok) {
            Answer::Ok => {
                let mut written = Written::all();
                let mut kept = vec![];
                for (i, &r) in records.iter().enumerate() {
                    if (self.reject)(r) {
                        written.rejected.push((i, format!("{r} refused")));
                    } else {
                        kept.push(r);
                    }
                }
                self.timeline.push(Event::Written(kept));
                Ok(written)
            }
            Answer::Retryable => {
                self.timeline.push(Event::WriteFailed(records.to_vec()));
                Err(ConnectorError::retryable("scripted", "connection reset"))
            }
            Answer::Permanent => {
                self.timeline.push(Event::WriteFailed(records.to_vec()));
                Err(ConnectorError::permanent("scripted", "table does not exist"))
            }
            Answer::Hang => std::future::pending().await,
        }
    }
}

/// A fast retry policy for tests.
pub fn quick_retries(n: usize) -> etl::pipeline::RetryPolicy {
    etl::pipeline::RetryPolicy::default()
        .max_retries(n)
        .initial_delay(std::time::Duration::from_millis(1))
        .max_delay(std::time::Duration::from_millis(5))
}

/// The payloads of dead-letter entries, as text.
pub fn payloads(entries: &[DeadLetter]) -> Vec<String> {
    entries.iter().map(|e| String::from_utf8_lossy(&e.payload).into_owned()).collect()
}

/// A dead-letter queue that refuses its first `failures` writes (retryably), then stores what
/// it is given in memory. Every attempt goes to the timeline.
pub struct FlakyQueue {
    pub failures: usize,
    pub attempts: Arc<AtomicUsize>,
    pub stored: MemoryDeadLetters,
    pub timeline: Timeline,
}

impl FlakyQueue {
    pub fn new(failures: usize, timeline: &Timeline) -> Self {
        FlakyQueue { failures, attempts: Arc::default(), stored: MemoryDeadLetters::new(), timeline: timeline.clone() }
    }
}

#[async_trait::async_trait]
impl DeadLetters for FlakyQueue {
    fn describe(&self) -> String {
        "flaky".into()
    }
    async fn write(&self, entries: Vec<DeadLetter>) -> Result<(), ConnectorError> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if attempt <= self.failures {
            self.timeline.push(Event::DeadLetterFailed(payloads(&entries)));
            return Err(ConnectorError::retryable("flaky", "connection reset"));
        }
        self.timeline.push(Event::DeadLettered(payloads(&entries)));
        self.stored.write(entries).await
    }
    async fn list(&self) -> Result<Vec<DeadLetter>, ConnectorError> {
        self.stored.list().await
    }
    async fn replay(
        &self,
        filter: &(dyn for<'a> Fn(&'a DeadLetter) -> bool + Send + Sync),
        target: &mut dyn DynRepublish,
    ) -> Result<usize, ConnectorError> {
        self.stored.replay(filter, target).await
    }
    async fn purge(&self, older_than: Duration) -> Result<usize, ConnectorError> {
        self.stored.purge(older_than).await
    }
}
