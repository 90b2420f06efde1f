//! Test doubles shared by the integration tests: a source whose acknowledgements are observed,
//! and sinks that fail on demand. (Failure injection: no real server refuses writes on cue.)
#![allow(dead_code)]

use etl::ack::{Ack, Status};
use etl::batch::{batched, Batch, BatchConfig, Incoming};
use etl::record::{Meta, Position};
use etl::sink::{Sink, Written};
use etl::source::{BatchStream, Source, SourceContext};
use etl::ConnectorError;
use std::sync::{Arc, Mutex};

/// What happened, in order: writes attempted, writes done, acknowledgements heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    WriteFailed(Vec<i64>),
    Written(Vec<i64>),
    Acked(usize, Status),
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
    pub reject: fn(i64) -> bool,
}

impl ScriptedSink {
    pub fn new(script: impl IntoIterator<Item = Answer>, timeline: &Timeline) -> Self {
        ScriptedSink { script: script.into_iter().collect(), timeline: timeline.clone(), reject: |_| false }
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
