//! A second signal during a graceful stop ends the run at once: a sink that hangs cannot hold
//! the process until `shutdown_timeout`; the run returns `Error::Interrupted` and the batch in
//! hand is left unacknowledged (errored: the source redelivers it). Alone in its test binary:
//! the signals go to the whole process.

mod common;

use common::*;
use etl::ack::Status;
use etl::{Error, Pipeline};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

fn kill(signal: libc::c_int) {
    // SAFETY: kill(2) on our own pid with a valid signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signal) }, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_second_signal_stops_a_hanging_run_at_once_and_leaves_the_batch_for_redelivery() {
    // Listening first: a signal never reaches the default action (ending the process).
    let (mut int, mut term) = (signal(SignalKind::interrupt()).unwrap(), signal(SignalKind::terminate()).unwrap());
    let timeline = Timeline::default();
    let source = AckedBatches { batches: vec![vec![1, 2, 3]], timeline: timeline.clone() };
    let sink = ScriptedSink::new([Answer::Hang], &timeline);
    let running = tokio::spawn(
        Pipeline::from(source)
            .to(sink)
            // Far beyond the test's patience: only the second signal can end the run in time.
            .shutdown_timeout(Duration::from_secs(3600))
            .run(),
    );
    // The pipeline's listener is registered when `run` starts: let it start.
    tokio::task::yield_now().await;
    kill(libc::SIGTERM);
    term.recv().await;
    tokio::task::yield_now().await;
    assert!(!running.is_finished(), "the sink hangs: the graceful stop waits for it");
    kill(libc::SIGINT);
    int.recv().await;
    let result = tokio::time::timeout(PATIENCE, running).await.expect("the second signal ends the run").unwrap();
    let Err(Error::Interrupted { unfinished }) = result else { panic!("expected Interrupted, got {result:?}") };
    assert_eq!(unfinished, 1);
    // The hanging write was dropped with the run: its batch's acknowledgement resolves as
    // errored, never delivered.
    wait_until(PATIENCE, "the batch's acknowledgement", || !timeline.acks().is_empty()).await;
    assert_eq!(timeline.acks(), vec![(0, Status::Errored)]);
}
