//! Grouping a source's records into batches.
//!
//! [`Accumulator`] is the pure part (limits and counting, no clock); [`batched`] wires it to a
//! stream, a timer started by the first record of each batch, and the shutdown token.
//!
//! Hand-written rather than `tokio_stream::StreamExt::chunks_timeout`: that adapter has the
//! right timer semantics but no byte limit, no per-message acknowledgement tokens, no
//! `max_records` / `max_batches`, and no flush on cancellation.

use super::BatchStream;
use super::{spare, Batch, BatchConfig, Failure};
use crate::ack::Ack;
use crate::positions::Positions;
use crate::record::Meta;
use futures::Stream;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// One message as a source read it: the decoded record with its metadata (or the decode
/// failure with the raw bytes), its size in bytes, and the source's acknowledgement token
/// (a delivery tag, a receipt handle, an offset; `()` for sources without acks).
///
/// ```
/// use etl::batch::Incoming;
/// use etl::record::Meta;
/// let inc: Incoming<i64, ()> = Incoming::record(7, Meta::default(), 1, ());
/// assert_eq!(inc.size, 1);
/// ```
#[derive(Debug)]
pub struct Incoming<T, K> {
    /// The record and its metadata, or why it could not be decoded.
    pub item: Result<(T, Meta), Failure>,
    /// Payload size in bytes, for `max_bytes`.
    pub size: usize,
    /// What the source needs to acknowledge this message.
    pub token: K,
}

impl<T, K> Incoming<T, K> {
    /// A decoded record.
    pub fn record(record: T, meta: Meta, size: usize, token: K) -> Self {
        Incoming { item: Ok((record, meta)), size, token }
    }

    /// A message that could not be decoded; it is dead-lettered with its bytes.
    pub fn failed(failure: Failure, token: K) -> Self {
        Incoming { size: failure.payload.len(), item: Err(failure), token }
    }
}

/// What a source attaches to a batch it emits: its acknowledgement, and the source positions
/// it covers (see [`crate::positions`]; empty for sources that report none). The `make_ack`
/// of [`batched`] and [`Accumulator::take`] returns an [`Ack`] or a `Stamp`.
///
/// ```
/// use etl::batch::Stamp;
/// use etl::positions::{OffsetRange, Positions};
/// let stamp = Stamp::new(etl::ack::Ack::none(), Positions::new("g", vec![OffsetRange::new("t", 0, 0, 3)]));
/// assert_eq!(stamp.positions.ranges.len(), 1);
/// let plain: Stamp = etl::ack::Ack::none().into();
/// assert!(plain.positions.is_empty());
/// ```
#[derive(Debug)]
pub struct Stamp {
    /// The batch's acknowledgement.
    pub ack: Ack,
    /// The positions it covers.
    pub positions: Positions,
}

impl Stamp {
    /// An acknowledgement with positions.
    ///
    /// ```
    /// let stamp = etl::batch::Stamp::new(etl::ack::Ack::none(), etl::positions::Positions::default());
    /// assert!(stamp.positions.is_empty());
    /// ```
    pub fn new(ack: Ack, positions: Positions) -> Stamp {
        Stamp { ack, positions }
    }
}

impl From<Ack> for Stamp {
    fn from(ack: Ack) -> Stamp {
        Stamp { ack, positions: Positions::default() }
    }
}

/// What [`Accumulator::push`] says about the batch in hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Room for more.
    Open,
    /// `batch_size` or `max_bytes` reached: emit it.
    Full,
    /// `max_records` reached: emit it and stop reading.
    LastOne,
}

/// The pure batching logic: buffers, limits and totals, no clock and no I/O.
///
/// ```
/// use etl::batch::{Accumulator, BatchConfig, BatchOptions, Fill, Incoming};
/// use etl::record::Meta;
/// let mut acc = Accumulator::new(BatchConfig::default().batch_size(2));
/// assert_eq!(acc.push(Incoming::record(1, Meta::default(), 10, ())), Fill::Open);
/// assert_eq!(acc.push(Incoming::record(2, Meta::default(), 10, ())), Fill::Full);
/// let batch = acc.take("test".into(), |tokens| { assert_eq!(tokens.len(), 2); etl::ack::Ack::none() });
/// assert_eq!(batch.records(), &[1, 2]);
/// ```
#[derive(Debug)]
pub struct Accumulator<T, K> {
    config: BatchConfig,
    records: Vec<T>,
    meta: Vec<Meta>,
    failures: Vec<Failure>,
    tokens: Vec<K>,
    bytes: usize,
    total_records: u64,
    total_batches: u64,
}

impl<T, K> Accumulator<T, K> {
    /// An empty accumulator.
    pub fn new(config: BatchConfig) -> Self {
        let cap = config.batch_size.min(64 * 1024);
        Accumulator {
            records: Vec::with_capacity(cap),
            meta: Vec::with_capacity(cap),
            failures: Vec::new(),
            tokens: Vec::with_capacity(cap),
            bytes: 0,
            total_records: 0,
            total_batches: 0,
            config,
        }
    }

    /// Add one message to the batch in hand.
    pub fn push(&mut self, incoming: Incoming<T, K>) -> Fill {
        match incoming.item {
            Ok((record, meta)) => {
                self.records.push(record);
                self.meta.push(meta);
            }
            Err(failure) => self.failures.push(failure),
        }
        self.tokens.push(incoming.token);
        self.bytes = self.bytes.saturating_add(incoming.size);
        self.total_records += 1;
        if self.config.max_records.is_some_and(|max| self.total_records >= max) {
            Fill::LastOne
        } else if self.pending() >= self.config.batch_size || self.bytes >= self.config.max_bytes {
            Fill::Full
        } else {
            Fill::Open
        }
    }

    /// Messages in the batch in hand (records and failures).
    pub fn pending(&self) -> usize {
        self.tokens.len()
    }

    /// True when `max_records` or `max_batches` says the source must stop reading.
    pub fn exhausted(&self) -> bool {
        self.config.max_records.is_some_and(|max| self.total_records >= max)
            || self.config.max_batches.is_some_and(|max| self.total_batches >= max)
    }

    /// Emit the batch in hand; `make_ack` builds its acknowledgement (an [`Ack`], or a
    /// [`Stamp`] with the positions the batch covers) from the tokens of its messages, in
    /// arrival order.
    pub fn take<A: Into<Stamp>>(&mut self, origin: Arc<str>, make_ack: impl FnOnce(Vec<K>) -> A) -> Batch<T>
    where
        T: 'static,
    {
        let cap = self.config.batch_size.min(64 * 1024);
        // The vectors of a batch committed earlier, when the driver gave them back.
        let records = std::mem::replace(&mut self.records, spare::vec(cap));
        let meta = std::mem::replace(&mut self.meta, spare::vec(cap));
        let failures = std::mem::take(&mut self.failures);
        let tokens = std::mem::replace(&mut self.tokens, Vec::with_capacity(cap));
        self.bytes = 0;
        self.total_batches += 1;
        let Stamp { ack, positions } = make_ack(tokens).into();
        Batch::new(records, meta, failures, ack, origin).with_positions(positions)
    }

    /// The batching limits.
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }
}

/// Group a stream of [`Incoming`] messages into batches.
///
/// Emits a batch when it is full, when `batch_timeout` has passed since its first message
/// (whether or not more arrive), when the input ends, or when `shutdown` is cancelled (then
/// the partial batch is flushed and the stream ends without reading more). An input error is
/// emitted after the partial batch before it, and ends the stream. `make_ack` turns the tokens
/// of a batch's messages into its acknowledgement (an [`Ack`], or a [`Stamp`] with the
/// positions the batch covers).
///
/// ```
/// use etl::batch::{batched, BatchConfig, BatchOptions, Incoming};
/// use etl::ack::Ack;
/// use etl::record::Meta;
/// use futures::StreamExt;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let input = futures::stream::iter((0..5).map(|i| Ok(Incoming::record(i, Meta::default(), 1, ()))));
/// let token = tokio_util::sync::CancellationToken::new();
/// let batches: Vec<_> = batched(input, BatchConfig::default().batch_size(2), token, "demo".into(), |_| Ack::none())
///     .map(|b| b.unwrap().len()).collect().await;
/// assert_eq!(batches, [2, 2, 1]);
/// # });
/// ```
pub fn batched<T, K, S, F, A>(input: S, config: BatchConfig, shutdown: CancellationToken, origin: Arc<str>, make_ack: F) -> BatchStream<T>
where
    T: Send + 'static,
    K: Send + 'static,
    S: Stream<Item = crate::Result<Incoming<T, K>>> + Send + 'static,
    F: FnMut(Vec<K>) -> A + Send + 'static,
    A: Into<Stamp> + 'static,
{
    batcher(Single(Box::pin(input)), config, shutdown, origin, make_ack)
}

/// [`batched`] for a source that reads several messages at once: its stream yields each
/// read's messages together (a `Vec`, or any iterator: one that decodes each message as the
/// batcher takes it needs no buffer of its own; an error comes after the messages read before
/// it), and the batcher takes them one by one, with no stream item, future or wrapper per
/// message. When the batcher stops mid-read (shutdown, `max_records`), the rest of that read
/// is dropped with it, tokens unresolved, like messages a `batched` source never yielded: a
/// source with acknowledgements must treat a dropped token as not delivered.
///
/// ```
/// use etl::batch::{batched_chunks, BatchConfig, BatchOptions, Incoming};
/// use etl::ack::Ack;
/// use etl::record::Meta;
/// use futures::StreamExt;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let reads = vec![vec![1, 2, 3], vec![4], vec![5, 6]];
/// let input = futures::stream::iter(reads.into_iter().map(|read| {
///     Ok(read.into_iter().map(|i| Incoming::record(i, Meta::default(), 1, ())).collect::<Vec<_>>())
/// }));
/// let token = tokio_util::sync::CancellationToken::new();
/// let batches: Vec<_> = batched_chunks(input, BatchConfig::default().batch_size(4), token, "demo".into(), |_| Ack::none())
///     .map(|b| b.unwrap().records().to_vec()).collect().await;
/// assert_eq!(batches, [vec![1, 2, 3, 4], vec![5, 6]]);
/// # });
/// ```
pub fn batched_chunks<T, K, S, C, F, A>(
    input: S,
    config: BatchConfig,
    shutdown: CancellationToken,
    origin: Arc<str>,
    make_ack: F,
) -> BatchStream<T>
where
    T: Send + 'static,
    K: Send + 'static,
    S: Stream<Item = crate::Result<C>> + Send + 'static,
    C: IntoIterator<Item = Incoming<T, K>>,
    C::IntoIter: Send + 'static,
    F: FnMut(Vec<K>) -> A + Send + 'static,
    A: Into<Stamp> + 'static,
{
    batcher(Chunks { input: Box::pin(input), chunk: None }, config, shutdown, origin, make_ack)
}

fn batcher<T, K, I, F, A>(input: I, config: BatchConfig, shutdown: CancellationToken, origin: Arc<str>, make_ack: F) -> BatchStream<T>
where
    T: Send + 'static,
    K: Send + 'static,
    I: Input<T, K> + Send + 'static,
    F: FnMut(Vec<K>) -> A + Send + 'static,
    A: Into<Stamp> + 'static,
{
    let linger = config.batch_timeout;
    Box::pin(Batcher {
        input,
        acc: Accumulator::new(config),
        linger,
        timer: Box::pin(tokio::time::sleep(linger)),
        timer_armed: false,
        shutdown: Box::pin(shutdown.clone().cancelled_owned()),
        token: shutdown,
        stopping: false,
        error: None,
        finished: false,
        origin,
        make_ack,
    })
}

/// Where a [`Batcher`] takes its messages from, one at a time.
trait Input<T, K>: Unpin {
    fn poll_incoming(&mut self, cx: &mut Context<'_>) -> Poll<Option<crate::Result<Incoming<T, K>>>>;
}

/// A stream of single messages.
struct Single<S>(Pin<Box<S>>);

impl<T, K, S> Input<T, K> for Single<S>
where
    S: Stream<Item = crate::Result<Incoming<T, K>>>,
{
    #[inline]
    fn poll_incoming(&mut self, cx: &mut Context<'_>) -> Poll<Option<crate::Result<Incoming<T, K>>>> {
        self.0.as_mut().poll_next(cx)
    }
}

/// A stream of each read's messages, taken one by one.
struct Chunks<S, I> {
    input: Pin<Box<S>>,
    /// What is left of the last read.
    chunk: Option<I>,
}

impl<S, I> Unpin for Chunks<S, I> {}

impl<T, K, S, C> Input<T, K> for Chunks<S, C::IntoIter>
where
    S: Stream<Item = crate::Result<C>>,
    C: IntoIterator<Item = Incoming<T, K>>,
{
    #[inline]
    fn poll_incoming(&mut self, cx: &mut Context<'_>) -> Poll<Option<crate::Result<Incoming<T, K>>>> {
        loop {
            if let Some(incoming) = self.chunk.as_mut().and_then(Iterator::next) {
                return Poll::Ready(Some(Ok(incoming)));
            }
            match self.input.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.chunk = Some(chunk.into_iter()),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

struct Batcher<T, K, I, F> {
    input: I,
    acc: Accumulator<T, K>,
    linger: std::time::Duration,
    timer: Pin<Box<Sleep>>,
    timer_armed: bool,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    token: CancellationToken,
    /// No more reading: flush what is in hand, then the error if any, then end.
    stopping: bool,
    error: Option<crate::Error>,
    finished: bool,
    origin: Arc<str>,
    make_ack: F,
}

// No field is structurally pinned: every future is boxed.
impl<T, K, I, F> Unpin for Batcher<T, K, I, F> {}

impl<T: 'static, K, I, F, A> Batcher<T, K, I, F>
where
    F: FnMut(Vec<K>) -> A,
    A: Into<Stamp>,
{
    fn emit(&mut self) -> Batch<T> {
        self.timer_armed = false;
        self.acc.take(Arc::clone(&self.origin), &mut self.make_ack)
    }
}

impl<T: 'static, K, I, F, A> Stream for Batcher<T, K, I, F>
where
    I: Input<T, K>,
    F: FnMut(Vec<K>) -> A,
    A: Into<Stamp>,
{
    type Item = crate::Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // Checked once per call rather than per record (it takes a lock): a cancellation is
        // seen after at most one batch of records that were already ready.
        if !this.stopping && this.token.is_cancelled() {
            this.stopping = true;
        }
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            if this.stopping || this.acc.exhausted() {
                if this.acc.pending() > 0 {
                    return Poll::Ready(Some(Ok(this.emit())));
                }
                this.finished = true;
                return Poll::Ready(this.error.take().map(Err));
            }
            match this.input.poll_incoming(cx) {
                Poll::Ready(Some(Ok(incoming))) => {
                    if this.acc.pending() == 0 {
                        let deadline = Instant::now() + this.linger;
                        this.timer.as_mut().reset(deadline);
                        this.timer_armed = true;
                    }
                    match this.acc.push(incoming) {
                        Fill::Open => continue,
                        Fill::Full => return Poll::Ready(Some(Ok(this.emit()))),
                        Fill::LastOne => {
                            this.stopping = true;
                            continue;
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.error = Some(e);
                    this.stopping = true;
                }
                Poll::Ready(None) => this.stopping = true,
                Poll::Pending => {
                    if this.shutdown.as_mut().poll(cx).is_ready() {
                        this.stopping = true;
                        continue;
                    }
                    if this.timer_armed && this.timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Some(Ok(this.emit())));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchOptions;
    use futures::StreamExt;
    use proptest::prelude::*;
    use std::time::Duration;

    /// How a batch of [`run_accumulator`] was closed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Closed {
        Full,
        LastOne,
        EndOfInput,
    }

    /// Feed records of `sizes` to an accumulator, emitting as it says; (records, bytes, why)
    /// per batch.
    fn run_accumulator(sizes: &[usize], config: BatchConfig) -> Vec<(usize, usize, Closed)> {
        let mut acc = Accumulator::new(config);
        let mut out = vec![];
        let mut bytes = 0;
        for (i, &size) in sizes.iter().enumerate() {
            if acc.exhausted() {
                break;
            }
            bytes += size;
            let closed = match acc.push(Incoming::record(i, Meta::default(), size, ())) {
                Fill::Open => continue,
                Fill::Full => Closed::Full,
                Fill::LastOne => Closed::LastOne,
            };
            out.push((acc.take(Arc::from("t"), |_| Ack::none()).len(), bytes, closed));
            bytes = 0;
        }
        if acc.pending() > 0 {
            out.push((acc.take(Arc::from("t"), |_| Ack::none()).len(), bytes, Closed::EndOfInput));
        }
        out
    }

    /// The limits, recomputed here: a batch of these record sizes has reached a limit.
    fn reached(sizes: &[usize], batch_size: usize, max_bytes: usize) -> bool {
        sizes.len() >= batch_size || sizes.iter().sum::<usize>() >= max_bytes
    }

    proptest! {
        /// Every record is in exactly one batch, in order; no batch goes past a limit by more
        /// than the record that reached it; and every batch is full (it reached `batch_size`
        /// or `max_bytes`) unless it is the last one: the end of input or `max_records` closed
        /// it. A batcher that emitted every record alone, or held records past a limit, fails.
        #[test]
        fn batches_are_full_unless_the_input_ended(
            sizes in prop::collection::vec(1usize..200, 0..300),
            batch_size in 1usize..50,
            max_bytes in 1usize..2000,
            max_records in prop::option::of(0u64..400),
        ) {
            let mut config = BatchConfig::default().batch_size(batch_size).max_bytes(max_bytes);
            config.max_records = max_records;
            let batches = run_accumulator(&sizes, config);
            let expected = max_records.map_or(sizes.len(), |m| sizes.len().min(m as usize));
            let mut at = 0;
            for (i, &(n, bytes, closed)) in batches.iter().enumerate() {
                let last = i + 1 == batches.len();
                prop_assert!(n >= 1);
                let batch = &sizes[at..at + n];
                prop_assert_eq!(bytes, batch.iter().sum::<usize>());
                prop_assert!(!reached(&batch[..n - 1], batch_size, max_bytes), "batch {} went past a limit: {:?}", i, batch);
                match closed {
                    Closed::Full => prop_assert!(reached(batch, batch_size, max_bytes), "batch {} emitted before a limit: {:?}", i, batch),
                    Closed::LastOne => prop_assert!(last && Some((at + n) as u64) == max_records),
                    Closed::EndOfInput => prop_assert!(last && at + n == expected),
                }
                at += n;
            }
            prop_assert_eq!(at, expected, "every record once");
        }

        #[test]
        fn max_batches_stops_reading(n in 0usize..100, batch_size in 1usize..10, max_batches in 0u64..6) {
            let config = BatchConfig::default().batch_size(batch_size).max_batches(max_batches);
            let batches = run_accumulator(&vec![1; n], config);
            prop_assert_eq!(batches.len() as u64, max_batches.min(n.div_ceil(batch_size) as u64));
            let total: usize = batches.iter().map(|&(len, _, _)| len).sum();
            prop_assert_eq!(total, n.min(max_batches as usize * batch_size));
            prop_assert!(batches.iter().rev().skip(1).all(|&(len, _, _)| len == batch_size), "only the last batch may be short");
        }

        /// The timed batcher, on a paused clock: records arrive at random times (multiples of
        /// 10 ms; the linger ends at 5 ms past one, so no arrival ties with it). Each batch is
        /// emitted when it becomes full, or exactly `batch_timeout` after its first record
        /// while no further record arrived, or at the end of input; never later, never early.
        #[test]
        fn a_batch_is_closed_by_a_limit_the_linger_or_the_end_of_input(
            records in prop::collection::vec((0u64..8, 1usize..100), 1..120),
            batch_size in 1usize..20,
            max_bytes in 50usize..1000,
            linger_tens in 1u64..10,
        ) {
            let linger = Duration::from_millis(linger_tens * 10 + 5);
            // Arrival times in ms (each record `gap × 10 ms` after the one before).
            let arrivals: Vec<u64> = records.iter().scan(0, |t, &(gap, _)| { *t += gap * 10; Some(*t) }).collect();
            let sizes: Vec<usize> = records.iter().map(|&(_, size)| size).collect();
            let end = *arrivals.last().unwrap();
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            let emitted: Vec<(Vec<usize>, u64)> = rt.block_on(async {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, usize)>();
                let input = futures::stream::poll_fn(move |cx| {
                    rx.poll_recv(cx).map(|o| o.map(|(i, size)| Ok(Incoming::record(i, Meta::default(), size, ()))))
                });
                let config = BatchConfig::default().batch_size(batch_size).max_bytes(max_bytes).batch_timeout(linger);
                let mut batches = batched(input, config, CancellationToken::new(), Arc::from("t"), |_: Vec<()>| Ack::none());
                let start = Instant::now();
                let feed = (arrivals.clone(), sizes.clone());
                tokio::spawn(async move {
                    for (i, (at, size)) in feed.0.into_iter().zip(feed.1).enumerate() {
                        tokio::time::sleep_until(start + Duration::from_millis(at)).await;
                        tx.send((i, size)).unwrap();
                    }
                });
                let mut emitted = vec![];
                while let Some(batch) = batches.next().await {
                    emitted.push((batch.unwrap().records().to_vec(), start.elapsed().as_millis() as u64));
                }
                emitted
            });
            let linger_ms = linger.as_millis() as u64;
            let mut next = 0;
            for (b, (batch, at)) in emitted.iter().enumerate() {
                prop_assert_eq!(batch, &(next..next + batch.len()).collect::<Vec<_>>(), "every record once, in order");
                prop_assert!(!batch.is_empty());
                let (first, last) = (arrivals[batch[0]], arrivals[*batch.last().unwrap()]);
                let batch_sizes = &sizes[next..next + batch.len()];
                next += batch.len();
                prop_assert!(!reached(&batch_sizes[..batch.len() - 1], batch_size, max_bytes), "batch {} went past a limit", b);
                prop_assert!(*at <= first + linger_ms, "batch {} held past its linger", b);
                if reached(batch_sizes, batch_size, max_bytes) {
                    prop_assert_eq!(*at, last, "batch {} emitted when it became full", b);
                } else if *at == first + linger_ms {
                    // The linger closed it: the next record came after it.
                    prop_assert!(arrivals.get(next).is_none_or(|&t| t > *at), "batch {} closed by the linger before a record in time", b);
                } else {
                    prop_assert!(next == arrivals.len() && *at == end, "batch {} of {:?} emitted at {} ms: neither full, lingered nor the end", b, batch, at);
                }
            }
            prop_assert_eq!(next, arrivals.len(), "every record once");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn linger_counts_from_the_first_record_not_the_last() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let input =
            futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(|r| Ok(Incoming::record(r, Meta::default(), 1, ())))));
        let config = BatchConfig::default().batch_size(100).batch_timeout(Duration::from_millis(500));
        let mut batches = batched(input, config, CancellationToken::new(), Arc::from("t"), |_: Vec<()>| Ack::none());
        let start = Instant::now();
        tokio::spawn(async move {
            for i in 0..10 {
                tx.send(i).unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let first = batches.next().await.unwrap().unwrap();
        assert_eq!(first.records(), &[0, 1, 2, 3, 4]);
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        let second = batches.next().await.unwrap().unwrap();
        assert_eq!(second.records(), &[5, 6, 7, 8, 9]);
        assert!(batches.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_flushes_the_partial_batch_without_waiting() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let input =
            futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(|r| Ok(Incoming::record(r, Meta::default(), 1, ())))));
        let token = CancellationToken::new();
        let config = BatchConfig::default().batch_size(100).batch_timeout(Duration::from_secs(3600));
        let mut batches = batched(input, config, token.clone(), Arc::from("t"), |_: Vec<()>| Ack::none());
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        let next = tokio::spawn(async move { (batches.next().await.map(|b| b.unwrap().len()), batches.next().await.is_none()) });
        tokio::time::sleep(Duration::from_millis(10)).await;
        token.cancel();
        let start = Instant::now();
        assert_eq!(next.await.unwrap(), (Some(2), true));
        assert_eq!(start.elapsed(), Duration::ZERO);
        drop(tx);
    }

    #[tokio::test]
    async fn an_input_error_comes_after_the_batch_before_it() {
        let items =
            vec![Ok(Incoming::record(1, Meta::default(), 1, ())), Err(crate::Error::Source(crate::ConnectorError::permanent("t", "boom")))];
        let mut batches =
            batched(futures::stream::iter(items), BatchConfig::default(), CancellationToken::new(), Arc::from("t"), |_: Vec<()>| {
                Ack::none()
            });
        assert_eq!(batches.next().await.unwrap().unwrap().records(), &[1]);
        assert!(batches.next().await.unwrap().is_err());
        assert!(batches.next().await.is_none());
    }
}
