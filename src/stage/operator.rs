//! The stage operator: each record through its attempts, up to `concurrency` records at once,
//! its output in input order or as records complete.

use super::{classify, StageOptions, StageOutput};
use crate::batch::{Batch, BatchParts, Failure, FailureKind};
use crate::error::Retry;
use crate::operator::Operator;
use crate::record::Meta;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::Serialize;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The default of [`Stage::concurrency`] (and of `map(f, concurrency = N)`): one record at a
/// time.
///
/// ```
/// assert_eq!(etl::stage::DEFAULT_CONCURRENCY, 1);
/// ```
pub const DEFAULT_CONCURRENCY: usize = 1;

/// The default of [`Stage::ordered`] (and of `map(f, ordered = ..)`): output in input order.
///
/// ```
/// assert!(etl::stage::DEFAULT_ORDERED);
/// ```
pub const DEFAULT_ORDERED: bool = true;

/// An async function as a pipeline step: each record through the function with retries and a
/// per-attempt timeout, up to `concurrency` records at once, output in input order (or, with
/// [`Stage::ordered`]`(false)`, as records complete). A record whose attempts all fail, or that
/// fails permanently, is dead-lettered
/// ([`FailureKind::Transform`], raw bytes kept, `attempts` set); the rest of the batch goes on.
///
/// The options are those of the `#[stage]` (for a function under the attribute), else
/// [`StageOptions::ONCE`], unless [`Stage::options`] sets them.
///
/// ```
/// use etl::prelude::*;
/// use etl::stage::{Stage, StageOptions};
///
/// async fn lookup(id: i64) -> Result<String, String> {
///     if id > 0 { Ok(format!("#{id}")) } else { Err(format!("no such id {id}")) }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let out = etl::sink::collect();
/// let dead = etl::dead_letter::MemoryDeadLetters::new();
/// let report = Pipeline::from(etl::source::iter(vec![1i64, -2, 3]))
///     .then(Stage::new(lookup).concurrency(4).options(StageOptions::new("lookup").retries(0)))
///     .to(out.sink())
///     .dead_letters(dead.clone())
///     .handle_signals(false)
///     .run()
///     .await?;
/// assert_eq!(out.records(), ["#1", "#3"]);
/// assert_eq!(dead.list().await?[0].error, "stage `lookup` failed: no such id -2");
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// # use etl::dead_letter::DeadLetters;
/// ```
#[derive(Debug, Clone)]
pub struct Stage<F> {
    f: F,
    concurrency: usize,
    ordered: bool,
    options: Option<StageOptions>,
}

impl<F> Stage<F> {
    /// `f` as a step, one record at a time.
    ///
    /// ```
    /// let _ = etl::stage::Stage::new(|n: i64| async move { Ok::<i64, String>(n) });
    /// ```
    pub fn new(f: F) -> Stage<F> {
        Stage { f, concurrency: DEFAULT_CONCURRENCY, ordered: DEFAULT_ORDERED, options: None }
    }

    /// Run up to `n` records of a batch at once (at least 1). Default [`DEFAULT_CONCURRENCY`] (1).
    ///
    /// ```
    /// let _ = etl::stage::Stage::new(|n: i64| async move { Ok::<i64, String>(n) }).concurrency(8);
    /// ```
    pub fn concurrency(mut self, n: usize) -> Stage<F> {
        self.concurrency = n.max(1);
        self
    }

    /// Whether the output keeps the input order. Default [`DEFAULT_ORDERED`] (true).
    ///
    /// * `true`: up to `concurrency` records run at once, and a record is emitted once every
    ///   record before it is; a record waiting for a retry holds back the ones after it (at
    ///   most `concurrency` records are started and not yet emitted).
    /// * `false`: records are emitted as they complete, and `concurrency` bounds the
    ///   *attempts* running at once: a record waiting in its retry backoff gives its place to
    ///   the next record, so one slow or failing record does not hold the others back.
    ///   Records start in input order; each record's metadata stays with it.
    ///
    /// ```
    /// let _ = etl::stage::Stage::new(|n: i64| async move { Ok::<i64, String>(n) }).concurrency(8).ordered(false);
    /// ```
    pub fn ordered(mut self, yes: bool) -> Stage<F> {
        self.ordered = yes;
        self
    }

    /// Retry, back off and time out as `options` say (replacing a `#[stage]`'s own).
    ///
    /// ```
    /// use etl::stage::{Stage, StageOptions};
    /// let _ = Stage::new(|n: i64| async move { Ok::<i64, String>(n) }).options(StageOptions::new("n").retries(5));
    /// ```
    pub fn options(mut self, options: StageOptions) -> Stage<F> {
        self.options = Some(options);
        self
    }
}

impl<T, F, R> Operator<T> for Stage<F>
where
    T: Clone + Serialize + Send + 'static,
    F: Fn(T) -> R + Send + Sync,
    R: StageOutput,
{
    type Out = R::Ok;

    async fn apply(&mut self, batch: Batch<T>) -> Batch<R::Ok> {
        let options = self.options.or(R::OPTIONS).unwrap_or(StageOptions::ONCE);
        let BatchParts { records, meta, mut failures, ack, origin, positions } = batch.into_parts();
        let mut out = Vec::with_capacity(records.len());
        let mut out_meta = Vec::with_capacity(records.len());
        let f = &self.f;
        let options = &options;
        let concurrency = self.concurrency.max(1);
        let mut emit = |result: Result<(R::Ok, Meta), Failure>| match result {
            Ok((record, meta)) => {
                out.push(record);
                out_meta.push(meta);
            }
            Err(failure) => failures.push(failure),
        };
        if self.ordered {
            let mut done = futures::stream::iter(records.into_iter().zip(meta))
                .map(|(record, meta)| attempts(f, record, meta, options, None))
                .buffered(concurrency);
            while let Some(result) = done.next().await {
                emit(result);
            }
        } else {
            // Every record of the batch is under way; the semaphore (fair: first come, first
            // served) lets `concurrency` attempts run at once, and a record gives its permit
            // back while it waits for its retry.
            let gate = Semaphore::new(concurrency);
            let gate = &gate;
            let mut done: FuturesUnordered<_> =
                records.into_iter().zip(meta).map(|(record, meta)| attempts(f, record, meta, options, Some(gate))).collect();
            while let Some(result) = done.next().await {
                emit(result);
            }
        }
        Batch::new(out, out_meta, failures, ack, origin).with_positions(positions)
    }
}

/// Why one attempt failed.
enum Failed<E> {
    Error(E),
    TimedOut(Duration),
}

/// One attempt, within the timeout.
async fn attempt<T, F, R>(f: &F, record: T, timeout: Option<Duration>) -> Result<R::Ok, Failed<R::Err>>
where
    F: Fn(T) -> R,
    R: StageOutput,
{
    let call = f(record).into_attempt();
    match timeout {
        None => call.await.map_err(Failed::Error),
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(Failed::Error),
            Err(_) => Err(Failed::TimedOut(limit)),
        },
    }
}

/// Every attempt of one record: the record transformed with its metadata, or its failure.
/// With a `gate`, each attempt holds one of its permits (none while waiting for a retry).
async fn attempts<T, F, R>(f: &F, record: T, meta: Meta, options: &StageOptions, gate: Option<&Semaphore>) -> Result<(R::Ok, Meta), Failure>
where
    T: Clone + Serialize,
    F: Fn(T) -> R,
    R: StageOutput,
{
    // A record whose dead-letter entry would need it (no raw bytes from the source) is kept
    // through its last attempt; otherwise the last attempt takes the record itself.
    let keep_last = meta.raw.is_none();
    match retrying(f, record, options, gate, keep_last).await {
        Ok((out, _tries)) => Ok((out, meta)),
        Err(gave_up) => {
            let name = options.name;
            let error = gave_up.describe(name);
            tracing::warn!(stage = name, attempts = gave_up.tries, error = %gave_up.message, permanent = gave_up.retry == Retry::Permanent, "stage gave up on a record; dead-lettering it");
            // The source's raw bytes, else the record as JSON (`kept` is `Some` then).
            let mut failure = Failure::of_record(&gave_up.kept, meta, FailureKind::Transform, error);
            failure.attempts = gave_up.tries;
            Err(failure)
        }
    }
}

/// How a stage's attempts ended without a result: its last error, whether a retry could have
/// helped, the attempts made, and the input when the caller asked to keep it.
pub(crate) struct GaveUp<T> {
    /// The input of the last attempt, when `keep_last` was set (or no attempt took it).
    pub(crate) kept: Option<T>,
    /// The last error, as text (or the timeout).
    pub(crate) message: String,
    /// Whether a retry could help (retries ran out) or not (a permanent error).
    pub(crate) retry: Retry,
    /// Attempts made.
    pub(crate) tries: u32,
}

impl<T> GaveUp<T> {
    /// The error as dead-letter entries and job errors word it.
    pub(crate) fn describe(&self, name: &str) -> String {
        match (self.retry, self.tries) {
            (Retry::Retryable, n) if n > 1 => format!("stage `{name}` failed after {n} attempts: {}", self.message),
            _ => format!("stage `{name}` failed: {}", self.message),
        }
    }
}

/// The attempts of one input through `f` as `options` say: retries with exponential backoff
/// and full jitter, a per-attempt timeout, permanent errors not retried. Returns the output
/// and the attempts it took, or how it gave up. With a `gate`, each attempt holds one of its
/// permits (none while waiting for a retry). Shared by the stage operator (per record) and
/// jobs (per stage, [`crate::job`]).
pub(crate) async fn retrying<T, F, R>(
    f: &F,
    mut input: T,
    options: &StageOptions,
    gate: Option<&Semaphore>,
    keep_last: bool,
) -> Result<(R::Ok, u32), GaveUp<T>>
where
    T: Clone,
    F: Fn(T) -> R,
    R: StageOutput,
{
    let name = options.name;
    let mut delays = options.policy().delays();
    let mut tries: u32 = 0;
    loop {
        tries += 1;
        let last = tries > options.retries;
        // An input that may be retried is cloned for the attempt, and so is one the caller
        // keeps; otherwise the last attempt takes the input itself.
        // `acquire` fails only on a closed semaphore, which this one never is.
        let permit = match gate {
            Some(gate) => gate.acquire().await.ok(),
            None => None,
        };
        let (result, kept) = if !last || keep_last {
            (attempt(f, input.clone(), options.timeout).await, Some(input))
        } else {
            (attempt(f, input, options.timeout).await, None)
        };
        drop(permit);
        let failed = match result {
            Ok(out) => return Ok((out, tries)),
            Err(failed) => failed,
        };
        let (message, retry) = match &failed {
            Failed::Error(e) => (e.to_string(), classify(e)),
            Failed::TimedOut(limit) => (format!("timed out after {limit:?}"), Retry::Retryable),
        };
        let delay = if retry == Retry::Retryable { delays.next() } else { None };
        match (kept, delay) {
            (Some(input_back), Some(delay)) if !last => {
                tracing::warn!(stage = name, attempt = tries, ?delay, error = %message, "stage failed, retrying");
                crate::retry::count_retry();
                tokio::time::sleep(delay).await;
                input = input_back;
            }
            (kept, _) => return Err(GaveUp { kept, message, retry, tries }),
        }
    }
}
