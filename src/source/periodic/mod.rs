//! `periodic`: a source that calls an async function on a fixed schedule (an HTTP API polled
//! every 10 s, a table's new rows every minute) and streams the records it returns, batched
//! like any source's. sssn's `PeriodicChannel`, Vector's and Benthos' `http_client` input.
//!
//! # Schedule
//! Ticks at `start + n × every`, the first at once, whatever a poll takes: a poll taking 4 s
//! of a 10 s period does not push the next one to 14 s (a [`tokio::time::Interval`] with
//! [`MissedTickBehavior::Skip`](tokio::time::MissedTickBehavior::Skip)).
//!
//! # Missed ticks: skipped and counted
//! Polls never overlap. A tick that comes due while a poll (with its retries) is still
//! running fires as soon as it ends; the ticks after it that passed meanwhile are **skipped**,
//! not made up for with a burst of polls, and the schedule is back on its grid. Each skipped
//! tick is logged (`warn`, with the count), counted in [`PeriodicStats::missed_ticks`] and in
//! the `etl_periodic_missed_ticks_total` metric.
//!
//! # Failures: retried, then the next tick
//! A poll that fails is retried with exponential backoff and jitter (the crate's
//! [`RetryPolicy`]: by default [`DEFAULT_RETRIES`] retries from [`DEFAULT_BACKOFF`]). When
//! every attempt failed, the error is logged, counted in [`PeriodicStats::failed_polls`], and
//! the source **keeps ticking**: the next tick polls again, as Vector's and Benthos'
//! `http_client` inputs do; an API down for an hour is not a reason to stop a service. With
//! [`max_consecutive_failures(n)`](PeriodicSource::max_consecutive_failures), `n` ticks in a row
//! that failed end the stream with an [`Error::Source`](crate::Error::Source) naming the last
//! error (the pipeline's run returns it).
//!
//! # Records and metadata
//! No acknowledgement: polled records have nowhere to go back to (an
//! [`Ack::none`], like `iter`'s). Each record's position is
//! [`Position::Index`]: its 0-based index among all the records the source emitted. The
//! statistics say which tick polled what ([`PeriodicStats`]).
//!
//! # Stopping
//! [`max_polls`](PeriodicSource::max_polls) (ticks polled, failed ones included) and the
//! batching options' `max_records` end the stream (tests). The pipeline's shutdown ends it at
//! once, without waiting for the next tick: a poll in flight (or its backoff) is dropped, the
//! records already polled are flushed in a last batch.
//!
//! ```
//! use etl::prelude::*;
//! use std::time::Duration;
//!
//! async fn fetch() -> Result<Vec<String>, std::io::Error> {
//!     Ok(vec!["a".into(), "b".into()])
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let out = etl::sink::collect();
//! Pipeline::from(etl::source::periodic(Duration::from_millis(10), fetch).max_polls(3))
//!     .to(out.sink())
//!     .handle_signals(false)
//!     .run()
//!     .await?;
//! assert_eq!(out.records().len(), 6);
//! # Ok::<(), etl::Error>(()) }).unwrap();
//! ```

mod poll;
mod schedule;
mod stats;

pub use poll::PollFn;
pub use stats::PeriodicStats;

use super::{BatchStream, Source, SourceContext};
use crate::ack::Ack;
use crate::batch::{batched, BatchConfig, BatchOptions, Incoming};
use crate::config::ConfigError;
use crate::error::ConnectorError;
use crate::record::{Meta, Position};
use crate::retry::RetryPolicy;
use futures::StreamExt;
use schedule::Schedule;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

/// The default of [`PeriodicSource::retries`]: retries of a failed poll within its tick.
///
/// ```
/// assert_eq!(etl::source::periodic::DEFAULT_RETRIES, 3);
/// ```
pub const DEFAULT_RETRIES: usize = 3;

/// The default of [`PeriodicSource::backoff`]: the delay before the first retry of a failed
/// poll (then doubling, with jitter, up to [`DEFAULT_MAX_BACKOFF`]).
///
/// ```
/// assert_eq!(etl::source::periodic::DEFAULT_BACKOFF, std::time::Duration::from_secs(1));
/// ```
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// The longest delay between two attempts of a poll, by default.
///
/// ```
/// assert_eq!(etl::source::periodic::DEFAULT_MAX_BACKOFF, std::time::Duration::from_secs(30));
/// ```
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A source that polls an async function on a fixed schedule. See [`periodic`] and the
/// [module](self) documentation.
pub struct PeriodicSource<T> {
    every: Duration,
    poll: Box<dyn PollFn<T>>,
    retry: RetryPolicy,
    max_polls: Option<u64>,
    max_consecutive_failures: Option<u64>,
    batching: BatchConfig,
    stats: PeriodicStats,
}

impl<T> std::fmt::Debug for PeriodicSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeriodicSource")
            .field("every", &self.every)
            .field("retry", &self.retry)
            .field("max_polls", &self.max_polls)
            .field("max_consecutive_failures", &self.max_consecutive_failures)
            .field("batching", &self.batching)
            .finish_non_exhaustive()
    }
}

/// Call `poll` every `every` (the first time at once) and stream the records it returns.
/// `poll` is an `async fn() -> Result<Vec<T>, E>` or a closure returning such a future, `E`
/// any error that displays ([`PollFn`]). `every` must not be zero (the source fails to open).
///
/// ```
/// use std::time::Duration;
/// use etl::prelude::*;
///
/// async fn readings() -> Result<Vec<f64>, String> { Ok(vec![21.5, 22.0]) }
///
/// let source = etl::source::periodic(Duration::from_secs(10), readings)
///     .retries(5)
///     .backoff(Duration::from_millis(500))
///     .batch_size(100);
/// assert_eq!(source.describe(), "periodic every 10s");
/// ```
pub fn periodic<T: Send + 'static>(every: Duration, poll: impl PollFn<T>) -> PeriodicSource<T> {
    PeriodicSource {
        every,
        poll: Box::new(poll),
        retry: RetryPolicy::default().max_retries(DEFAULT_RETRIES).initial_delay(DEFAULT_BACKOFF).max_delay(DEFAULT_MAX_BACKOFF),
        max_polls: None,
        max_consecutive_failures: None,
        batching: BatchConfig::default(),
        stats: PeriodicStats::default(),
    }
}

impl<T> PeriodicSource<T> {
    /// Retries of a failed poll within its tick. Default [`DEFAULT_RETRIES`]; 0 waits for the
    /// next tick at once.
    ///
    /// ```
    /// let s = etl::source::periodic(std::time::Duration::from_secs(1), || async { Ok::<_, String>(vec![1]) }).retries(0);
    /// ```
    pub fn retries(mut self, n: usize) -> Self {
        self.retry = self.retry.max_retries(n);
        self
    }

    /// The delay before the first retry of a failed poll (doubling after each, with jitter).
    /// Default [`DEFAULT_BACKOFF`].
    ///
    /// ```
    /// let s = etl::source::periodic(std::time::Duration::from_secs(1), || async { Ok::<_, String>(vec![1]) })
    ///     .backoff(std::time::Duration::from_millis(200));
    /// ```
    pub fn backoff(mut self, d: Duration) -> Self {
        self.retry = self.retry.initial_delay(d);
        self
    }

    /// The whole retry policy of a failed poll (replaces [`retries`](Self::retries) and
    /// [`backoff`](Self::backoff)).
    ///
    /// ```
    /// use etl::retry::{Jitter, RetryPolicy};
    /// let s = etl::source::periodic(std::time::Duration::from_secs(1), || async { Ok::<_, String>(vec![1]) })
    ///     .retry(RetryPolicy::default().max_retries(2).jitter(Jitter::None));
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// End the stream after `n` ticks were polled (failed ones included). Default: no limit.
    ///
    /// ```
    /// let s = etl::source::periodic(std::time::Duration::from_secs(1), || async { Ok::<_, String>(vec![1]) }).max_polls(3);
    /// ```
    pub fn max_polls(mut self, n: u64) -> Self {
        self.max_polls = Some(n);
        self
    }

    /// End the stream with an error once `n` ticks in a row failed (every attempt of each).
    /// Default: no limit, the source keeps ticking.
    ///
    /// ```
    /// let s = etl::source::periodic(std::time::Duration::from_secs(1), || async { Ok::<_, String>(vec![1]) })
    ///     .max_consecutive_failures(10);
    /// ```
    pub fn max_consecutive_failures(mut self, n: u64) -> Self {
        self.max_consecutive_failures = Some(n.max(1));
        self
    }

    /// A handle on the source's counters (polls, retries, failed polls, missed ticks), to
    /// read while the pipeline runs or after: take it before handing the source over.
    ///
    /// ```
    /// let source = etl::source::periodic(std::time::Duration::from_secs(1), || async { Ok::<_, String>(vec![1]) });
    /// let stats = source.stats();
    /// assert_eq!(stats.missed_ticks(), 0);
    /// ```
    pub fn stats(&self) -> PeriodicStats {
        self.stats.clone()
    }
}

impl<T> BatchOptions for PeriodicSource<T> {
    fn batching(&mut self) -> &mut BatchConfig {
        &mut self.batching
    }
}

impl<T: Send + 'static> Source for PeriodicSource<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("periodic every {}", humantime::format_duration(self.every))
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        if self.every.is_zero() {
            let message = "the period must be longer than zero".to_owned();
            return Err(ConfigError::Invalid { option: "every", message }.into());
        }
        let origin: Arc<str> = Arc::from(self.describe());
        let state = Ticking {
            schedule: Schedule::start(self.every),
            component: origin.to_string(),
            poll: self.poll,
            retry: self.retry,
            polls_left: self.max_polls,
            max_failures: self.max_consecutive_failures,
            failures: 0,
            next_index: 0,
            stats: self.stats,
            shutdown: ctx.shutdown.clone(),
            done: false,
        };
        let input = futures::stream::unfold(state, Ticking::next).flat_map(futures::stream::iter);
        Ok(batched(input, self.batching, ctx.shutdown, origin, |_| Ack::none()))
    }
}

/// The source's state between two ticks.
struct Ticking<T> {
    schedule: Schedule,
    component: String,
    poll: Box<dyn PollFn<T>>,
    retry: RetryPolicy,
    polls_left: Option<u64>,
    max_failures: Option<u64>,
    /// Ticks in a row whose poll failed.
    failures: u64,
    next_index: u64,
    stats: PeriodicStats,
    shutdown: CancellationToken,
    done: bool,
}

type Polled<T> = Vec<crate::Result<Incoming<T, ()>>>;

impl<T: Send + 'static> Ticking<T> {
    /// The records of the next tick whose poll returned some, an error that ends the stream,
    /// or `None` when the stream ends (`max_polls`, shutdown).
    async fn next(mut self) -> Option<(Polled<T>, Self)> {
        loop {
            if self.done || self.polls_left == Some(0) {
                return None;
            }
            let shutdown = self.shutdown.clone();
            let tick = tokio::select! {
                biased;
                () = shutdown.cancelled() => return None,
                tick = self.schedule.tick() => tick,
            };
            if tick.missed > 0 {
                warn!(source = %self.component, tick = tick.number, missed = tick.missed, "the last poll outlasted its period: ticks skipped");
                self.stats.missed(tick.missed);
                metrics::counter!("etl_periodic_missed_ticks_total", "source" => self.component.clone()).increment(tick.missed);
            }
            self.polls_left = self.polls_left.map(|n| n - 1);
            let polled = tokio::select! {
                biased;
                () = shutdown.cancelled() => return None,
                polled = poll::poll_with_retries(self.poll.as_mut(), &self.retry, &self.component, &self.stats) => polled,
            };
            match polled {
                Ok(records) => {
                    self.failures = 0;
                    self.stats.polled(records.len());
                    if !records.is_empty() {
                        let out = self.incoming(records);
                        return Some((out, self));
                    }
                }
                Err(e) => {
                    self.failures += 1;
                    self.stats.failed();
                    if self.max_failures.is_some_and(|max| self.failures >= max) {
                        error!(source = %self.component, tick = tick.number, failures = self.failures, error = %e, "polls failed too many ticks in a row: stopping");
                        self.done = true;
                        let e = ConnectorError::permanent(
                            self.component.clone(),
                            format!("{} ticks in a row failed; the last: {}", self.failures, e.error),
                        );
                        return Some((vec![Err(crate::Error::Source(e))], self));
                    }
                    error!(source = %self.component, tick = tick.number, error = %e, "poll failed on every attempt: waiting for the next tick");
                }
            }
        }
    }

    fn incoming(&mut self, records: Vec<T>) -> Polled<T> {
        let size = std::mem::size_of::<T>();
        records
            .into_iter()
            .map(|record| {
                let meta = Meta::at(Position::Index(self.next_index));
                self.next_index += 1;
                Ok(Incoming::record(record, meta, size, ()))
            })
            .collect()
    }
}
