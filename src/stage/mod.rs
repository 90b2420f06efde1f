//! Stages: async functions run per record with retries, a per-attempt timeout and bounded
//! concurrency, dead-lettering what keeps failing.
//!
//! Write a stage as an `async fn(In) -> Result<Out, E>` under [`#[stage]`](macro@crate::stage),
//! and use it in a pipeline with `map`:
//!
//! ```
//! use etl::prelude::*;
//!
//! #[derive(Debug, Clone, Record, Serialize, Deserialize)]
//! struct Order { id: i64, amount_cents: i64 }
//!
//! /// Looks the order up in a slow service (here: a computation).
//! #[stage(retries = 3, backoff = 200ms, timeout = 2s)]
//! async fn enrich(mut o: Order) -> Result<Order, etl::stage::Error> {
//!     if o.id < 0 {
//!         return Err(etl::stage::Error::permanent("negative id")); // not retried
//!     }
//!     o.amount_cents += 1;
//!     Ok(o)
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // The function stays callable as itself: one attempt, no retry.
//! assert_eq!(enrich(Order { id: 1, amount_cents: 1 }).await?.amount_cents, 2);
//!
//! let out = etl::sink::collect();
//! let dead = etl::dead_letter::MemoryDeadLetters::new();
//! let orders = vec![Order { id: 1, amount_cents: 10 }, Order { id: -2, amount_cents: 5 }];
//! let report = pipeline! {
//!     iter(orders) as Order
//!     | map(enrich, concurrency = 8)   // up to 8 records at once, output in input order
//!     | collect(out)
//! }
//! .dead_letters(dead.clone())
//! .handle_signals(false)
//! .run()
//! .await?;
//! assert_eq!(out.records().iter().map(|o: &Order| o.amount_cents).collect::<Vec<_>>(), [11]);
//! assert_eq!((report.records_out, report.dead_lettered, dead.len()), (1, 1, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
//!
//! * **Attempts.** A record is tried once, then retried up to `retries` times while the error is
//!   retryable. Before retry `n` (from 0) it waits a random time between 0 and
//!   `backoff × factor^n` capped at `max_backoff` ("full jitter": records that failed together
//!   spread out, and no wait is longer than `max_backoff`). A `timeout` bounds each attempt; an attempt that times out is a retryable
//!   failure. Exhausted retries or a permanent error send the record to the dead-letter queue
//!   ([`FailureKind::Transform`](crate::batch::FailureKind::Transform), with the source's raw
//!   bytes and the number of attempts); the rest of the batch goes on.
//! * **Permanent errors.** Every error is retryable unless it says otherwise: return
//!   [`Error::permanent`] (the ready-made error type of stages; `?` converts any other error into a
//!   retryable one), or an [`etl::Error`](crate::Error) / [`ConnectorError`] / boxed error
//!   carrying [`Retry::Permanent`]. See [`classify`].
//! * **Input.** A stage takes its record by value; the record is cloned for each attempt that may
//!   be retried (the last attempt takes the original), so its type must be `Clone`.
//! * **Concurrency.** `map(f, concurrency = N)` runs up to N records of a batch at once (an
//!   I/O-bound call), keeping the output in input order; without it, one at a time.
//!   `map(f, concurrency = N, ordered = false)` emits records as they complete, and a record
//!   waiting for its retry lets the next records run meanwhile (N bounds the attempts running
//!   at once); see [`Stage::ordered`].
//!
//! Without the attribute, an `async fn` (or a closure returning a future of a `Result`) runs in
//! `map(f, concurrency = N)` (and `map(|r| async move { .. })`) with one attempt per record; wrap
//! it in a [`Stage`] with [`StageOptions`] to give it retries in the builder API.

mod dispatch;
mod operator;

pub use dispatch::{MapStep, StageFn, StageOutput, SyncFn};
pub(crate) use operator::retrying;
pub use operator::{Stage, DEFAULT_CONCURRENCY, DEFAULT_ORDERED};

use crate::error::{BoxError, ConnectorError, Retry};
use crate::retry::{Jitter, RetryPolicy};
use std::any::Any;
use std::future::{Future, IntoFuture};
use std::marker::{PhantomData, PhantomPinned};
use std::time::Duration;

/// How a stage runs each record: retries, backoff and timeout.
///
/// `#[stage(..)]` builds these from its arguments; [`Stage::options`] takes them in the builder
/// API. Every field has a builder method usable in constants.
///
/// ```
/// use std::time::Duration;
/// use etl::stage::StageOptions;
///
/// const ENRICH: StageOptions = StageOptions::new("enrich").retries(5).backoff(Duration::from_millis(500));
/// assert_eq!(ENRICH.retries, 5);
/// assert_eq!(ENRICH.timeout, None);
/// assert_eq!(StageOptions::DEFAULT.backoff, Duration::from_millis(100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageOptions {
    /// The stage's name, in logs and dead-letter entries. Default `"stage"` (`#[stage]`: the
    /// function's name).
    pub name: &'static str,
    /// Retries after the first attempt. Default 3.
    pub retries: u32,
    /// The longest wait before the first retry (each wait is random, from 0 up to its bound:
    /// full jitter). Default 100 ms.
    pub backoff: Duration,
    /// Growth of the bound of the wait per retry. Default 2.0.
    pub factor: f32,
    /// Longest wait between two attempts. Default 30 s.
    pub max_backoff: Duration,
    /// Longest time one attempt may take; `None` (the default) waits as long as it takes.
    pub timeout: Option<Duration>,
}

impl StageOptions {
    /// The defaults: 3 retries, backoff 100 ms doubling up to 30 s, no timeout.
    ///
    /// ```
    /// let d = etl::stage::StageOptions::DEFAULT;
    /// assert_eq!((d.retries, d.factor, d.timeout), (3, 2.0, None));
    /// ```
    pub const DEFAULT: StageOptions = StageOptions {
        name: "stage",
        retries: 3,
        backoff: Duration::from_millis(100),
        factor: 2.0,
        max_backoff: Duration::from_secs(30),
        timeout: None,
    };

    /// One attempt, no retry, no timeout: how an `async fn` without `#[stage]` runs.
    ///
    /// ```
    /// assert_eq!(etl::stage::StageOptions::ONCE.retries, 0);
    /// ```
    pub const ONCE: StageOptions = StageOptions { name: "map", retries: 0, ..StageOptions::DEFAULT };

    /// The defaults, named `name`.
    ///
    /// ```
    /// assert_eq!(etl::stage::StageOptions::new("geo").name, "geo");
    /// ```
    pub const fn new(name: &'static str) -> StageOptions {
        StageOptions { name, ..StageOptions::DEFAULT }
    }

    /// Set [`retries`](StageOptions::retries).
    ///
    /// ```
    /// assert_eq!(etl::stage::StageOptions::DEFAULT.retries(0).retries, 0);
    /// ```
    pub const fn retries(self, retries: u32) -> StageOptions {
        StageOptions { retries, ..self }
    }

    /// Set [`backoff`](StageOptions::backoff).
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(etl::stage::StageOptions::DEFAULT.backoff(Duration::from_secs(2)).backoff, Duration::from_secs(2));
    /// ```
    pub const fn backoff(self, backoff: Duration) -> StageOptions {
        StageOptions { backoff, ..self }
    }

    /// Set [`factor`](StageOptions::factor).
    ///
    /// ```
    /// assert_eq!(etl::stage::StageOptions::DEFAULT.factor(3.0).factor, 3.0);
    /// ```
    pub const fn factor(self, factor: f32) -> StageOptions {
        StageOptions { factor, ..self }
    }

    /// Set [`max_backoff`](StageOptions::max_backoff).
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(etl::stage::StageOptions::DEFAULT.max_backoff(Duration::from_secs(1)).max_backoff, Duration::from_secs(1));
    /// ```
    pub const fn max_backoff(self, max_backoff: Duration) -> StageOptions {
        StageOptions { max_backoff, ..self }
    }

    /// Set [`timeout`](StageOptions::timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(etl::stage::StageOptions::DEFAULT.timeout(Duration::from_secs(5)).timeout, Some(Duration::from_secs(5)));
    /// ```
    pub const fn timeout(self, timeout: Duration) -> StageOptions {
        StageOptions { timeout: Some(timeout), ..self }
    }

    /// The retry policy of these options: `retries` delays, the n-th (from 0) a random wait
    /// between 0 and `backoff × factor^n` capped at `max_backoff` ([`Jitter::Full`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = etl::stage::StageOptions::new("s").retries(2).backoff(Duration::from_secs(1)).max_backoff(Duration::from_millis(1500));
    /// let delays: Vec<Duration> = options.policy().delays().collect();
    /// assert!(delays[0] <= Duration::from_secs(1) && delays[1] <= Duration::from_millis(1500));
    /// ```
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.retries as usize,
            initial_delay: self.backoff,
            factor: self.factor,
            max_delay: self.max_backoff,
            jitter: Jitter::Full,
        }
    }
}

impl Default for StageOptions {
    fn default() -> Self {
        StageOptions::DEFAULT
    }
}

/// The options of a stage, as a type: `#[stage]` implements it for a hidden type named after
/// the function, which [`Call`] carries so that `map` finds the options without calling.
///
/// ```
/// use etl::stage::{StageConfig, StageOptions};
/// struct Geo;
/// impl StageConfig for Geo {
///     const OPTIONS: StageOptions = StageOptions::new("geo").retries(1);
/// }
/// assert_eq!(Geo::OPTIONS.name, "geo");
/// ```
pub trait StageConfig {
    /// The stage's options.
    const OPTIONS: StageOptions;
}

/// What a `#[stage]` function returns: the call's future, with the stage's options in its type.
///
/// `.await` it to run the function once, as written (no retry, no timeout): it is
/// [`IntoFuture`], and [`Call::into_inner`] gives the plain future (for `tokio::spawn`). In a
/// pipeline, `map` reads the options from `C` and runs the attempts.
///
/// ```
/// use etl::stage::{Call, StageConfig, StageOptions};
/// struct Twice;
/// impl StageConfig for Twice {
///     const OPTIONS: StageOptions = StageOptions::new("twice");
/// }
/// fn twice(n: i64) -> Call<impl std::future::Future<Output = Result<i64, String>> + Send, Twice> {
///     Call::new(async move { Ok(n * 2) })
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// assert_eq!(twice(21).await, Ok(42));
/// # });
/// ```
pub struct Call<Fut, C> {
    fut: Fut,
    _config: PhantomData<fn() -> C>,
    // Keeps `Call` from being `Unpin`, which is how `map` tells a stage from a function whose
    // result is a record (see [`MapStep`]). A `Call` is never polled itself: its future is.
    _not_a_record: PhantomPinned,
}

impl<Fut, C> Call<Fut, C> {
    /// A call of the stage configured by `C`, running `fut`.
    ///
    /// ```
    /// # use etl::stage::{Call, StageConfig, StageOptions};
    /// struct Geo;
    /// impl StageConfig for Geo { const OPTIONS: StageOptions = StageOptions::new("geo"); }
    /// let call: Call<_, Geo> = Call::new(async { Ok::<(f64, f64), String>((48.85, 2.35)) });
    /// ```
    pub fn new(fut: Fut) -> Call<Fut, C> {
        Call { fut, _config: PhantomData, _not_a_record: PhantomPinned }
    }

    /// The call's future, as the function body wrote it.
    ///
    /// ```
    /// # use etl::stage::{Call, StageConfig, StageOptions};
    /// # struct S;
    /// # impl StageConfig for S { const OPTIONS: StageOptions = StageOptions::DEFAULT; }
    /// let call: Call<_, S> = Call::new(async { Ok::<i32, String>(1) });
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// assert_eq!(tokio::spawn(call.into_inner()).await.unwrap(), Ok(1));
    /// # });
    /// ```
    pub fn into_inner(self) -> Fut {
        self.fut
    }
}

impl<Fut, C: StageConfig> Call<Fut, C> {
    /// The stage's options.
    ///
    /// ```
    /// # use etl::stage::{Call, StageConfig, StageOptions};
    /// # struct S;
    /// # impl StageConfig for S { const OPTIONS: StageOptions = StageOptions::new("s"); }
    /// let call: Call<_, S> = Call::new(async { Ok::<i32, String>(1) });
    /// assert_eq!(call.options().name, "s");
    /// ```
    pub fn options(&self) -> StageOptions {
        C::OPTIONS
    }
}

impl<Fut: Future, C> IntoFuture for Call<Fut, C> {
    type Output = Fut::Output;
    type IntoFuture = Fut;
    fn into_future(self) -> Fut {
        self.fut
    }
}

impl<Fut, C: StageConfig> std::fmt::Debug for Call<Fut, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").field("stage", &C::OPTIONS.name).finish_non_exhaustive()
    }
}

/// The ready-made error type of stages: any error, and whether a retry can help.
///
/// `?` converts any `std::error::Error` into a retryable `Error` (keeping the class of an
/// [`etl::Error`](crate::Error) or a [`ConnectorError`]); say that retrying cannot help with
/// [`Error::permanent`]. Like `anyhow::Error`, it does not implement `std::error::Error` itself
/// (that is what lets `?` convert every error).
///
/// ```
/// use etl::stage::Error;
/// use etl::Retry;
///
/// fn parse(s: &str) -> Result<i64, Error> {
///     if s.is_empty() {
///         return Err(Error::permanent("empty id"));
///     }
///     Ok(s.parse::<i64>()?) // a parse error: retryable, unless you say otherwise
/// }
/// assert_eq!(parse("").unwrap_err().retry(), Retry::Permanent);
/// assert_eq!(parse("x").unwrap_err().retry(), Retry::Retryable);
/// assert_eq!(parse("").unwrap_err().to_string(), "empty id");
/// ```
pub struct Error {
    retry: Retry,
    error: BoxError,
}

impl Error {
    /// A failure that a retry may fix (a timeout, a 503, a lost connection).
    ///
    /// ```
    /// assert!(!etl::stage::Error::retryable("503 Service Unavailable").is_permanent());
    /// ```
    pub fn retryable(error: impl Into<BoxError>) -> Error {
        Error { retry: Retry::Retryable, error: error.into() }
    }

    /// A failure that no retry can fix (invalid input, 404, 400): the record is dead-lettered
    /// after this attempt.
    ///
    /// ```
    /// let e = etl::stage::Error::permanent(format!("customer {} not found", 42));
    /// assert_eq!(e.to_string(), "customer 42 not found");
    /// ```
    pub fn permanent(error: impl Into<BoxError>) -> Error {
        Error { retry: Retry::Permanent, error: error.into() }
    }

    /// Whether a retry can help.
    ///
    /// ```
    /// assert_eq!(etl::stage::Error::retryable("reset").retry(), etl::Retry::Retryable);
    /// ```
    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// True for [`Error::permanent`] errors.
    ///
    /// ```
    /// assert!(etl::stage::Error::permanent("bad").is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        self.retry == Retry::Permanent
    }

    /// The underlying error.
    ///
    /// ```
    /// let e = etl::stage::Error::retryable("down");
    /// assert_eq!(e.into_inner().to_string(), "down");
    /// ```
    pub fn into_inner(self) -> BoxError {
        self.error
    }
}

impl Error {
    /// As a boxed `std::error::Error` that keeps the class (seen by [`classify`]).
    fn boxed(self) -> BoxError {
        match self.retry {
            Retry::Retryable => self.error,
            Retry::Permanent => Box::new(Permanent(self.error)),
        }
    }
}

/// A permanent [`Error`] once boxed: displays as the error it wraps.
#[derive(Debug)]
struct Permanent(BoxError);

impl std::fmt::Display for Permanent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Permanent {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Error {
        let retry = classify_dyn(&error);
        Error { retry, error: Box::new(error) }
    }
}

impl From<Error> for BoxError {
    /// The underlying error, so that `?` works in functions returning a boxed error.
    fn from(error: Error) -> BoxError {
        error.boxed()
    }
}

impl From<Error> for Box<dyn std::error::Error + 'static> {
    /// The underlying error, so that `?` works in functions returning a boxed error.
    fn from(error: Error) -> Box<dyn std::error::Error + 'static> {
        error.boxed()
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Error").field("retry", &self.retry).field("error", &self.error).finish()
    }
}

/// Whether a stage's error may be retried.
///
/// Permanent: an [`Error::permanent`], an [`etl::Error`](crate::Error) that is a configuration
/// error or wraps a permanent [`ConnectorError`], a permanent `ConnectorError`, and a boxed
/// error (`Box<dyn Error + Send + Sync>`) whose chain of sources holds one of these. Every
/// other error is retryable.
///
/// ```
/// use etl::{stage::{classify, Error}, ConnectorError, Retry};
/// assert_eq!(classify(&Error::permanent("bad id")), Retry::Permanent);
/// assert_eq!(classify(&ConnectorError::permanent("geo api", "404")), Retry::Permanent);
/// assert_eq!(classify(&std::io::Error::other("reset")), Retry::Retryable);
/// assert_eq!(classify(&"plain text".to_string()), Retry::Retryable);
/// ```
pub fn classify<E: 'static>(error: &E) -> Retry {
    let any = error as &dyn Any;
    if let Some(e) = any.downcast_ref::<Error>() {
        return e.retry;
    }
    if let Some(e) = any.downcast_ref::<crate::Error>() {
        return classify_etl(e);
    }
    if let Some(e) = any.downcast_ref::<ConnectorError>() {
        return e.retry;
    }
    if let Some(e) = any.downcast_ref::<BoxError>() {
        return classify_dyn(&**e);
    }
    if let Some(e) = any.downcast_ref::<Box<dyn std::error::Error + 'static>>() {
        return classify_dyn(&**e);
    }
    Retry::Retryable
}

fn classify_etl(e: &crate::Error) -> Retry {
    match e {
        crate::Error::Config(_) => Retry::Permanent,
        crate::Error::Source(c) | crate::Error::Sink(c) | crate::Error::DeadLetters(c) => c.retry,
        _ => Retry::Retryable,
    }
}

/// The class of an error: the first one in its chain of sources that has one.
fn classify_dyn(error: &(dyn std::error::Error + 'static)) -> Retry {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<Permanent>() {
            return Retry::Permanent;
        }
        if let Some(c) = e.downcast_ref::<ConnectorError>() {
            return c.retry;
        }
        if let Some(e) = e.downcast_ref::<crate::Error>() {
            return classify_etl(e);
        }
        next = e.source();
    }
    Retry::Retryable
}

#[cfg(test)]
mod tests;
