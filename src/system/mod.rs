//! Systems: long-running units of work stepped at their own rate, started together and
//! stopped together (sssn's `BaseSystem`: `setup`, then `step` every tick).
//!
//! A [`System`] says its [`name`](System::name), how often it steps
//! ([`tick_rate`](System::tick_rate)), what it prepares once ([`setup`](System::setup)) and
//! what it does each tick ([`step`](System::step)). [`Systems`] runs several concurrently:
//!
//! * each on a fixed schedule (`start + n × tick_rate`, not drifting with the steps'
//!   durations; a step longer than the period delays the next tick, never stacks ticks);
//! * a failing `step` is logged (`warn`), counted in its [`SystemReport`], and followed by a
//!   backoff (the crate's [`RetryPolicy`](crate::retry::RetryPolicy), growing while the
//!   failures go on, reset by a success) before the next step; the other systems go on, and so
//!   does the failing one;
//! * a failing `setup` is logged (`error`) and reported, and that system does not run;
//! * a panicking step ends its system only, reported as [`SystemOutcome::Panicked`];
//! * SIGINT / SIGTERM ([`Systems::handle_signals`]) or a cancellation token
//!   ([`Systems::cancel_on`]) stops them gracefully: no new step starts, the steps in flight
//!   finish (within [`Systems::shutdown_timeout`]; a second signal drops them at once).
//!
//! A pipeline runs as a system too: [`Run::into_system`](crate::pipeline::Run::into_system)
//! ([`PipelineSystem`]).
//!
//! ```
//! use etl::system::{System, Systems};
//! use std::time::Duration;
//!
//! struct Heartbeat { beats: u32 }
//!
//! impl System for Heartbeat {
//!     fn name(&self) -> String { "heartbeat".into() }
//!     fn tick_rate(&self) -> Duration { Duration::from_millis(5) }
//!     async fn step(&mut self) -> etl::Result<()> {
//!         self.beats += 1;
//!         Ok(())
//!     }
//!     fn finished(&self) -> bool { self.beats == 3 }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let report = Systems::new().add(Heartbeat { beats: 0 }).handle_signals(false).run().await;
//! assert_eq!(report.systems[0].steps, 3);
//! assert!(report.is_ok());
//! # });
//! ```

mod pipeline;
mod report;
mod runner;
mod runtime;

pub use pipeline::PipelineSystem;
pub use report::{SystemOutcome, SystemReport, SystemsReport};
pub use runtime::{Systems, DEFAULT_SHUTDOWN_TIMEOUT};

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A unit of work that [`Systems`] sets up once and then steps every
/// [`tick_rate`](System::tick_rate). Write its methods as `async fn`s.
///
/// ```
/// use etl::system::System;
/// use std::time::Duration;
///
/// struct Poller { client: Option<String> }
///
/// impl System for Poller {
///     fn name(&self) -> String { "poller".into() }
///     fn tick_rate(&self) -> Duration { Duration::from_secs(5) }
///     async fn setup(&mut self) -> etl::Result<()> {
///         self.client = Some("connected".into());
///         Ok(())
///     }
///     async fn step(&mut self) -> etl::Result<()> {
///         let _client = self.client.as_ref().ok_or_else(|| etl::Error::system("not set up"))?;
///         Ok(())
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an etl system",
    note = "implement `etl::system::System` (`name`, `tick_rate`, `step`), or run a pipeline with `.into_system()`"
)]
pub trait System: Send + 'static {
    /// The system's name, in logs and its [`SystemReport`].
    ///
    /// ```
    /// use etl::system::System;
    /// let run = etl::Pipeline::from(etl::source::iter(vec![1i64])).to(etl::sink::blackhole()).name("load");
    /// assert_eq!(run.into_system().name(), "load");
    /// ```
    fn name(&self) -> String;

    /// How often [`step`](System::step) runs: the period of its schedule (zero: as often as
    /// it can, yielding between steps).
    ///
    /// ```
    /// use etl::system::System;
    /// let run = etl::Pipeline::from(etl::source::iter(vec![1i64])).to(etl::sink::blackhole());
    /// assert!(run.into_system().tick_rate().is_zero()); // a pipeline runs once, at once
    /// ```
    fn tick_rate(&self) -> Duration;

    /// Prepare, once, before the first step (connect, load, subscribe). An error is reported
    /// and the system does not run. Default: nothing to prepare.
    ///
    /// ```
    /// use etl::system::System;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut system = etl::Pipeline::from(etl::source::iter(vec![1i64])).to(etl::sink::blackhole()).into_system();
    /// assert!(system.setup().await.is_ok());
    /// # });
    /// ```
    fn setup(&mut self) -> impl Future<Output = crate::Result<()>> + Send {
        async { Ok(()) }
    }

    /// One tick's work. An error is reported and counted; the next step comes after a backoff.
    ///
    /// ```
    /// use etl::system::System;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let out = etl::sink::collect();
    /// let mut system = etl::Pipeline::from(etl::source::iter(vec![1i64, 2])).to(out.sink()).into_system();
    /// system.step().await?;
    /// assert_eq!(out.records(), [1, 2]);
    /// # Ok::<(), etl::Error>(()) }).unwrap();
    /// ```
    fn step(&mut self) -> impl Future<Output = crate::Result<()>> + Send;

    /// Whether the system is done (checked after each step): it stops, and [`Systems::run`]
    /// returns once every system stopped. Default: never, it runs until stopped.
    ///
    /// ```
    /// use etl::system::System;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut system = etl::Pipeline::from(etl::source::iter(vec![1i64])).to(etl::sink::blackhole()).into_system();
    /// assert!(!system.finished());
    /// system.step().await?;
    /// assert!(system.finished());
    /// # Ok::<(), etl::Error>(()) }).unwrap();
    /// ```
    fn finished(&self) -> bool {
        false
    }

    /// Called once, before [`setup`](System::setup), with the token that [`Systems`] cancels
    /// when it stops: a system whose step can last long (a pipeline) ends it early when it is
    /// cancelled. Default: ignored (the step in flight is awaited, up to
    /// [`Systems::shutdown_timeout`]).
    ///
    /// ```
    /// use etl::system::System;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let source = etl::source::periodic(std::time::Duration::from_secs(3600), || async { Ok::<_, String>(vec![1i64]) });
    /// let mut system = etl::Pipeline::from(source).to(etl::sink::blackhole()).into_system();
    /// let stop = tokio_util::sync::CancellationToken::new();
    /// system.shutdown_on(stop.clone());
    /// stop.cancel();
    /// system.step().await?; // returns at once: the pipeline was stopped
    /// # Ok::<(), etl::Error>(()) }).unwrap();
    /// ```
    fn shutdown_on(&mut self, shutdown: CancellationToken) {
        let _ = shutdown;
    }
}
