//! Waiting for outstanding acknowledgements at the end of a stream.
//!
//! A broker source acknowledges a batch in a call of its own (SQS `DeleteMessageBatch`, a
//! RabbitMQ ack, a Kafka commit), often after the batch's stream item is long gone. When the
//! source stops reading (shutdown, `max_records`), `Pipeline::run` must not return before the
//! broker has heard about every batch, or the process exits with acknowledgements cut off and
//! the broker redelivers them. [`Outstanding`] counts what is owed: a token per emitted batch
//! until its acknowledgement is handled, and every acknowledgement call in progress;
//! [`settle_at_end`] makes the end of a stream wait for it.

use futures::{Stream, StreamExt};
use std::future::Future;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

/// What a source still owes its broker. Cheap to clone; clones share the count.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let owed = etl::ack::Outstanding::new();
/// let token = owed.token(); // a batch was emitted
/// owed.spawn(async { /* the delete call of another batch */ });
/// drop(token); // its acknowledgement was handled
/// owed.settled().await;
/// assert_eq!(owed.len(), 0);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct Outstanding {
    tracker: TaskTracker,
}

/// Held while something is owed (an emitted batch whose acknowledgement is not handled yet).
#[derive(Debug)]
pub struct OutstandingToken(#[allow(dead_code)] TaskTrackerToken);

impl Outstanding {
    /// Nothing owed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Owe something until the returned token is dropped.
    pub fn token(&self) -> OutstandingToken {
        OutstandingToken(self.tracker.token())
    }

    /// Run an acknowledgement call on the current runtime, owed until it finishes.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, call: F) {
        tokio::spawn(self.tracker.track_future(call));
    }

    /// Run an acknowledgement call on `runtime` (from a thread outside it, such as an
    /// acknowledgement callback run where the last share of a batch was dropped).
    pub fn spawn_on<F: Future<Output = ()> + Send + 'static>(&self, runtime: &tokio::runtime::Handle, call: F) {
        runtime.spawn(self.tracker.track_future(call));
    }

    /// How many tokens and calls are outstanding.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Whether nothing is owed.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Wait until everything owed is settled; no new debt is expected after this is called
    /// (tokens and calls made later are still waited for while this waits).
    pub async fn settled(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// `stream`, whose end waits until `outstanding` is settled: once `stream` ends, it is dropped
/// (a source's reader then releases what it received and never emitted, through calls on
/// `outstanding`), the end waits for every token and call, and only then is `keep` dropped
/// (a heartbeat that must run until the last acknowledgement, ...).
///
/// If the stream is dropped before its end (the run failed), nothing is waited for: calls in
/// progress may be cut off when the process exits, and the broker redelivers those messages.
///
/// ```
/// use futures::StreamExt;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let owed = etl::ack::Outstanding::new();
/// let token = owed.token();
/// let items = etl::ack::settle_at_end(futures::stream::iter([1, 2]), owed.clone(), ());
/// tokio::spawn(async move { drop(token) }); // the last acknowledgement is handled
/// assert_eq!(items.collect::<Vec<_>>().await, [1, 2]);
/// assert!(owed.is_empty());
/// # });
/// ```
pub fn settle_at_end<S, K>(stream: S, outstanding: Outstanding, keep: K) -> impl Stream<Item = S::Item> + Send
where
    S: Stream + Send + Unpin + 'static,
    S::Item: Send,
    K: Send + 'static,
{
    futures::stream::unfold(Some((stream, outstanding, keep)), |state| async move {
        let (mut stream, outstanding, keep) = state?;
        match stream.next().await {
            Some(item) => Some((item, Some((stream, outstanding, keep)))),
            None => {
                drop(stream);
                tracing::debug!(outstanding = outstanding.len(), "source stopped reading; waiting for acknowledgements");
                outstanding.settled().await;
                drop(keep);
                None
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_end_waits_for_tokens_and_calls_and_then_drops_what_it_keeps() {
        let owed = Outstanding::new();
        let token = owed.token();
        let called = Arc::new(AtomicBool::new(false));
        let c = Arc::clone(&called);
        owed.spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            c.store(true, Ordering::SeqCst);
        });
        let kept = Arc::new(());
        let items = settle_at_end(futures::stream::iter([1]), owed.clone(), Arc::clone(&kept));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(token);
        });
        let got: Vec<i32> = items.collect().await;
        assert_eq!(got, [1]);
        assert!(called.load(Ordering::SeqCst), "the call finished before the end");
        assert!(owed.is_empty());
        assert_eq!(Arc::strong_count(&kept), 1, "dropped after the wait");
    }

    #[tokio::test]
    async fn a_stream_dropped_before_its_end_waits_for_nothing() {
        let owed = Outstanding::new();
        let _forever = owed.token();
        let mut items = Box::pin(settle_at_end(futures::stream::iter([1, 2]), owed.clone(), ()));
        assert_eq!(items.next().await, Some(1));
        drop(items);
        assert_eq!(owed.len(), 1);
    }
}
