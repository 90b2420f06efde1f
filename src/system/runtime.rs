//! [`Systems`]: the builder and the runtime that starts several systems, stops them together,
//! and collects their reports.

use super::report::{SystemOutcome, SystemsReport};
use super::runner::{self, Entry};
use super::System;
use crate::pipeline::SignalGuard;
use crate::retry::RetryPolicy;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// The default of [`Systems::shutdown_timeout`]: how long the steps in flight may take to
/// finish once a stop was asked.
///
/// ```
/// assert_eq!(etl::system::DEFAULT_SHUTDOWN_TIMEOUT, std::time::Duration::from_secs(30));
/// ```
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

type Start = Box<dyn FnOnce(CancellationToken, RetryPolicy, Entry) -> BoxFuture<'static, ()> + Send>;

/// Several [`System`]s run concurrently, each on its own task and schedule, stopped together.
/// See the [module](super) documentation for what happens on failures and on stop.
///
/// ```
/// use etl::system::{System, Systems};
/// use std::time::Duration;
///
/// struct Worker(u32);
/// impl System for Worker {
///     fn name(&self) -> String { format!("worker-{}", self.0) }
///     fn tick_rate(&self) -> Duration { Duration::from_millis(5) }
///     async fn step(&mut self) -> etl::Result<()> { Ok(()) }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let stop = tokio_util::sync::CancellationToken::new();
/// let run = Systems::new().add(Worker(1)).add(Worker(2)).handle_signals(false).cancel_on(stop.clone()).run();
/// let stopper = async { tokio::time::sleep(Duration::from_millis(30)).await; stop.cancel() };
/// let (report, ()) = tokio::join!(run, stopper);
/// assert!(report.is_ok());
/// assert!(report.get("worker-2").is_some_and(|w| w.steps > 0));
/// # });
/// ```
pub struct Systems {
    systems: Vec<(String, Start)>,
    handle_signals: bool,
    cancel: CancellationToken,
    shutdown_timeout: Duration,
    backoff: RetryPolicy,
}

impl std::fmt::Debug for Systems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Systems")
            .field("systems", &self.systems.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("handle_signals", &self.handle_signals)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl Default for Systems {
    fn default() -> Self {
        Systems::new()
    }
}

impl Systems {
    /// No systems yet; signals handled, [`DEFAULT_SHUTDOWN_TIMEOUT`], the default backoff.
    ///
    /// ```
    /// let systems = etl::system::Systems::new();
    /// ```
    pub fn new() -> Systems {
        Systems {
            systems: Vec::new(),
            handle_signals: true,
            cancel: CancellationToken::new(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            backoff: RetryPolicy::default(),
        }
    }

    /// Add a system (its [`name`](System::name) is read now, for the report).
    ///
    /// ```
    /// # use etl::system::{System, Systems};
    /// # struct Idle;
    /// # impl System for Idle {
    /// #     fn name(&self) -> String { "idle".into() }
    /// #     fn tick_rate(&self) -> std::time::Duration { std::time::Duration::from_secs(1) }
    /// #     async fn step(&mut self) -> etl::Result<()> { Ok(()) }
    /// # }
    /// let systems = Systems::new().add(Idle);
    /// ```
    #[allow(clippy::should_implement_trait)] // a builder's `.add(system)`, not `systems + system`
    pub fn add<S: System>(mut self, system: S) -> Systems {
        let name = system.name();
        let start: Start = Box::new(move |stop, backoff, entry| Box::pin(runner::run(system, stop, backoff, entry)));
        self.systems.push((name, start));
        self
    }

    /// Stop gracefully on SIGINT / SIGTERM (a second signal drops the steps in flight).
    /// Default true.
    ///
    /// ```
    /// let systems = etl::system::Systems::new().handle_signals(false);
    /// ```
    pub fn handle_signals(mut self, yes: bool) -> Systems {
        self.handle_signals = yes;
        self
    }

    /// Stop gracefully when `token` is cancelled.
    ///
    /// ```
    /// let token = tokio_util::sync::CancellationToken::new();
    /// let systems = etl::system::Systems::new().cancel_on(token.clone());
    /// ```
    pub fn cancel_on(mut self, token: CancellationToken) -> Systems {
        self.cancel = token;
        self
    }

    /// How long the steps in flight may take to finish once a stop was asked; then they are
    /// dropped ([`SystemOutcome::Abandoned`]). Default [`DEFAULT_SHUTDOWN_TIMEOUT`].
    ///
    /// ```
    /// let systems = etl::system::Systems::new().shutdown_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn shutdown_timeout(mut self, d: Duration) -> Systems {
        self.shutdown_timeout = d;
        self
    }

    /// The wait after a failed step before the next one: the policy's delays, one per failure
    /// in a row (growing to its `max_delay`; its `max_retries` is ignored: a system never gives
    /// up). Default [`RetryPolicy::default`] (200 ms, doubling, up to 30 s, with jitter).
    ///
    /// ```
    /// use etl::retry::RetryPolicy;
    /// let systems = etl::system::Systems::new().backoff(RetryPolicy::default().initial_delay(std::time::Duration::from_secs(1)));
    /// ```
    pub fn backoff(mut self, policy: RetryPolicy) -> Systems {
        self.backoff = policy;
        self
    }

    /// Run every system until all are finished or a stop is asked, then report.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let report = etl::system::Systems::new().handle_signals(false).run().await;
    /// assert!(report.systems.is_empty());
    /// # });
    /// ```
    pub async fn run(self) -> SystemsReport {
        let started = tokio::time::Instant::now();
        let stop = self.cancel;
        let forced = CancellationToken::new();
        let _signals = self.handle_signals.then(|| SignalGuard::install(stop.clone(), forced.clone()));
        let mut entries = Vec::with_capacity(self.systems.len());
        let mut tasks = JoinSet::new();
        for (name, start) in self.systems {
            let entry = Entry::new(name);
            let run = start(stop.child_token(), self.backoff.clone(), entry.clone());
            tasks.spawn(supervised(run, entry.clone()));
            entries.push(entry);
        }
        info!(systems = entries.len(), "systems started");
        let abandoned = tokio::select! {
            () = join_all(&mut tasks) => false,
            () = stopped(&stop, self.shutdown_timeout, &forced) => true,
        };
        if abandoned {
            // The tasks still running are past the timeout (or a second signal came).
            tasks.abort_all();
            join_all(&mut tasks).await;
            for entry in entries.iter().filter(|e| !e.ended()) {
                entry.update(|r| r.outcome = SystemOutcome::Abandoned);
            }
        }
        let report = SystemsReport { systems: entries.iter().map(Entry::snapshot).collect(), elapsed: started.elapsed() };
        info!("{report}");
        report
    }
}

/// Once `stop` is cancelled: the shutdown timeout, or a second signal, whichever first.
async fn stopped(stop: &CancellationToken, timeout: Duration, forced: &CancellationToken) {
    stop.cancelled().await;
    tokio::select! {
        () = tokio::time::sleep(timeout) => warn!(?timeout, "systems still stepping after the shutdown timeout: dropping their steps"),
        () = forced.cancelled() => warn!("second signal: dropping the steps in flight"),
    }
}

/// Wait for every task.
async fn join_all(tasks: &mut JoinSet<()>) {
    while tasks.join_next().await.is_some() {}
}

/// A system's task: its run, with a panic recorded in its entry rather than lost, and the
/// entry marked as ended.
async fn supervised(run: BoxFuture<'static, ()>, entry: Entry) {
    if let Err(panic) = AssertUnwindSafe(run).catch_unwind().await {
        let message = panic_message(panic.as_ref());
        let name = entry.update(|r| {
            r.outcome = SystemOutcome::Panicked(message.clone());
            r.name.clone()
        });
        error!(system = %name, panic = %message, "system panicked: it stopped, the others go on");
    }
    entry.end();
}

/// The text of a panic's payload (a `&str` or a `String`, as `panic!` makes them).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_owned(),
        (_, Some(s)) => s.clone(),
        _ => "a panic without a message".to_owned(),
    }
}
