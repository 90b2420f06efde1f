//! SIGINT (Ctrl-C) in the middle of a batch ends a run as gracefully as SIGTERM does
//! (`wikipedia_sigterm.rs`): the source stops reading, the partial batch is flushed through the
//! operators and the sink, its acknowledgement resolves as delivered, and `run` returns `Ok`
//! with the report. Alone in its test binary: the signal goes to the whole process.

mod common;

use common::*;
use etl::ack::{Ack, Status};
use etl::batch::{batched, BatchConfig, BatchOptions, Incoming};
use etl::record::Meta;
use etl::source::{BatchStream, Source, SourceContext};
use etl::Pipeline;
use futures::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// `n` records, then silence (a live source with nothing new to say), batched by etl's batcher
/// in batches of 100 with an hour's linger; counts the records the batcher has taken.
struct Quiet {
    n: i64,
    taken: Arc<AtomicUsize>,
    timeline: Timeline,
}

impl Source for Quiet {
    type Item = i64;
    fn describe(&self) -> String {
        "quiet".into()
    }
    async fn open(self, ctx: SourceContext) -> etl::Result<BatchStream<i64>> {
        let taken = self.taken;
        let input = futures::stream::iter(0..self.n)
            .map(move |r| {
                taken.fetch_add(1, Ordering::SeqCst);
                Ok(Incoming::record(r, Meta::default(), 8, ()))
            })
            .chain(futures::stream::pending());
        let batching = BatchConfig::default().batch_size(100).batch_timeout(Duration::from_secs(3600));
        let (timeline, mut seq) = (self.timeline, 0);
        Ok(batched(input, batching, ctx.shutdown, Arc::from("quiet"), move |_: Vec<()>| {
            let (i, t) = (seq, timeline.clone());
            seq += 1;
            Ack::new(move |s| t.push(Event::Acked(i, s)))
        }))
    }
}

// One thread: the pipeline's signal listener (a task spawned when `run` starts) is polled
// before this test's task wakes from its first wait, so it listens before the signal is sent.
#[tokio::test(flavor = "current_thread")]
async fn sigint_mid_batch_flushes_the_partial_batch_acks_it_and_returns_ok() {
    // Listening first: from here on a SIGINT reaches tokio's handler, never the default action
    // (ending the process), even if the pipeline failed to listen.
    let mut ours = signal(SignalKind::interrupt()).unwrap();
    let timeline = Timeline::default();
    let taken = Arc::new(AtomicUsize::new(0));
    let source = Quiet { n: 10, taken: taken.clone(), timeline: timeline.clone() };
    let run = tokio::spawn(
        Pipeline::from(source)
            .map(|n: i64| n * 10)
            .to(ScriptedSink::new([], &timeline))
            .dead_letters(etl::dead_letter::MemoryDeadLetters::new())
            .run(), // handle_signals defaults to true
    );

    wait_until(PATIENCE, "the batcher to take the 10 records", || taken.load(Ordering::SeqCst) == 10).await;
    assert!(timeline.events().is_empty(), "mid-batch: nothing written nor acknowledged yet: {:?}", timeline.events());
    assert!(!run.is_finished(), "a quiet source runs until stopped");

    // SAFETY: kill(2) on our own pid with a valid signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGINT) }, 0);
    tokio::time::timeout(PATIENCE, ours.recv()).await.expect("the signal arrived");

    let report = tokio::time::timeout(PATIENCE, run).await.expect("the run ended on SIGINT").unwrap().expect("run returns Ok");
    assert_eq!(
        timeline.events(),
        vec![Event::Written((0..10).map(|n| n * 10).collect()), Event::Acked(0, Status::Delivered)],
        "the partial batch flushed through the operator and the sink, then acknowledged"
    );
    assert_eq!((report.records_in, report.records_out, report.batches), (10, 10, 1));
}
