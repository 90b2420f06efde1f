//! Building and running a pipeline without the macro: `Pipeline::from(source).then(op).to(sink)`.
//!
//! `pipeline!` generates exactly these calls.

mod commands;
mod driver;
mod graph;
mod mode;
mod replay;
mod report;
mod signals;

pub use crate::retry::{Jitter, RetryPolicy};
pub use graph::{Graph, GraphStep, RecordType, StepRole};
pub use mode::{mode, set_mode, DeadLetterCommand, GraphFormat, Mode};
pub use report::RunReport;
pub(crate) use signals::SignalGuard;
#[cfg(feature = "cli")]
pub(crate) use signals::Signals;

use crate::dead_letter::DeadLetters;
use crate::operator::{Chain, Filter, FilterMap, FlatMap, Identity, Inspect, Map, Operator, Step, TryMap};
use crate::sink::Sink;
use crate::source::Source;
use crate::stage::{MapStep, Stage, StageOutput};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A source followed by operators; finish it with [`Pipeline::to`].
///
/// ```
/// use etl::prelude::*;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let out = etl::sink::collect();
/// let report = Pipeline::from(etl::source::iter(1..=10))
///     .filter(|n: &i64| n % 2 == 0)
///     .map(|n: i64| n * 10)
///     .to(out.sink())
///     .handle_signals(false)
///     .run()
///     .await?;
/// assert_eq!(out.records(), vec![20, 40, 60, 80, 100]);
/// assert_eq!(report.records_in, 10);
/// # Ok::<(), etl::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct Pipeline<S, O = Identity> {
    source: S,
    ops: O,
    /// Operators so far (the next one is step `steps + 1`; the source is step 0).
    steps: usize,
}

impl<S: Source> Pipeline<S> {
    /// Start a pipeline at `source`.
    #[allow(clippy::should_implement_trait)] // reads as the DSL does: `Pipeline::from(source)`
    pub fn from(source: S) -> Pipeline<S> {
        Pipeline { source, ops: Identity, steps: 0 }
    }
}

impl<S, O> Pipeline<S, O>
where
    S: Source,
    O: Operator<S::Item>,
{
    /// Append an operator (as the next [`Step`]: its failures name it).
    pub fn then<P: Operator<O::Out>>(self, op: P) -> Pipeline<S, Chain<O, Step<P>>> {
        let index = self.steps + 1;
        Pipeline { source: self.source, ops: Chain(self.ops, Step::new(index, op)), steps: index }
    }

    /// Append a `map` step.
    pub fn map<U, F>(self, f: F) -> Pipeline<S, Chain<O, Step<Map<F>>>>
    where
        U: Send + 'static,
        F: FnMut(O::Out) -> U + Send,
    {
        self.then(Map(f))
    }

    /// Append a `filter` step.
    pub fn filter<F>(self, f: F) -> Pipeline<S, Chain<O, Step<Filter<F>>>>
    where
        F: FnMut(&O::Out) -> bool + Send,
    {
        self.then(Filter(f))
    }

    /// Append a `filter_map` step.
    pub fn filter_map<U, F>(self, f: F) -> Pipeline<S, Chain<O, Step<FilterMap<F>>>>
    where
        U: Send + 'static,
        F: FnMut(O::Out) -> Option<U> + Send,
    {
        self.then(FilterMap(f))
    }

    /// Append a `flat_map` step.
    pub fn flat_map<U, I, F>(self, f: F) -> Pipeline<S, Chain<O, Step<FlatMap<F>>>>
    where
        U: Send + 'static,
        I: IntoIterator<Item = U>,
        F: FnMut(O::Out) -> I + Send,
    {
        self.then(FlatMap(f))
    }

    /// Append an `inspect` step.
    pub fn inspect<F>(self, f: F) -> Pipeline<S, Chain<O, Step<Inspect<F>>>>
    where
        F: FnMut(&O::Out) + Send,
    {
        self.then(Inspect(f))
    }

    /// Append a fallible `map`: a record whose call fails is dead-lettered with the error.
    pub fn try_map<U, E, F>(self, f: F) -> Pipeline<S, Chain<O, Step<TryMap<F>>>>
    where
        O::Out: Serialize,
        U: Send + 'static,
        E: std::fmt::Display,
        F: FnMut(O::Out) -> Result<U, E> + Send,
    {
        self.then(TryMap(f))
    }

    /// Append a `map` step whose function is a plain function or a `#[stage]`, told apart by
    /// its type ([`MapStep`]): a function `FnMut(T) -> U` maps each record (as [`map`](Self::map)
    /// does); a `#[stage]` async function runs on one record at a time with the stage's retries
    /// and timeout (a [`Stage`]). `pipeline!`'s `map(f)` calls this when `f` is not a closure
    /// written in place (a closure's argument type is inferred only by [`map`](Self::map)).
    ///
    /// ```
    /// use etl::prelude::*;
    ///
    /// #[stage(retries = 2, backoff = 10ms)]
    /// async fn label(n: i64) -> Result<String, String> { Ok(format!("#{n}")) }
    /// fn double(n: i64) -> i64 { n * 2 }
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let out = etl::sink::collect();
    /// Pipeline::from(etl::source::iter(vec![1i64, 2]))
    ///     .map_step(double)
    ///     .map_step(label)
    ///     .to(out.sink())
    ///     .handle_signals(false)
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.records(), ["#2", "#4"]);
    /// # Ok::<(), etl::Error>(()) }).unwrap();
    /// ```
    pub fn map_step<M, F>(self, f: F) -> Pipeline<S, Chain<O, Step<F::Op>>>
    where
        F: MapStep<O::Out, M>,
    {
        self.then(f.into_operator())
    }

    /// Append an async step: `f` returns a future of a `Result` (an `async fn`, a `#[stage]`, a
    /// closure `|r| async move { .. }`), run on up to `concurrency` records of a batch at once
    /// (at least 1), output in input order (unless followed by
    /// [`.ordered(false)`](Pipeline::ordered)). A `#[stage]` retries as its attribute says; any other
    /// async function gets one attempt. A record that fails for good is dead-lettered.
    ///
    /// ```
    /// use etl::prelude::*;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let out = etl::sink::collect();
    /// Pipeline::from(etl::source::iter(vec![1i64, 2, 3]))
    ///     .map_async(|n: i64| async move { Ok::<_, String>(n * 10) }, 8)
    ///     .to(out.sink())
    ///     .handle_signals(false)
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.records(), [10, 20, 30]);
    /// # Ok::<(), etl::Error>(()) }).unwrap();
    /// ```
    pub fn map_async<U, F, R>(self, f: F, concurrency: usize) -> Pipeline<S, Chain<O, Step<Stage<F>>>>
    where
        O::Out: Clone + Serialize + 'static,
        F: Fn(O::Out) -> R + Send + Sync,
        R: StageOutput<Ok = U>,
    {
        self.then(Stage::new(f).concurrency(concurrency))
    }

    /// End the pipeline at `sink`; then [`Run::run`] it.
    pub fn to<K: Sink<O::Out>>(self, sink: K) -> Run<S, O, K> {
        Run { source: self.source, ops: self.ops, sink, steps: self.steps, options: RunOptions::default() }
    }
}

impl<S, O, F> Pipeline<S, Chain<O, Step<Stage<F>>>> {
    /// Whether the async step just appended ([`map_async`](Pipeline::map_async)) keeps its
    /// output in input order. Default [`DEFAULT_ORDERED`](crate::stage::DEFAULT_ORDERED)
    /// (true); `false` emits records as they complete, and a record waiting for its retry
    /// does not hold the others back (see [`Stage::ordered`]).
    ///
    /// ```
    /// use etl::prelude::*;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let out = etl::sink::collect();
    /// Pipeline::from(etl::source::iter(vec![30u64, 10, 20]))
    ///     .map_async(|ms: u64| async move {
    ///         tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    ///         Ok::<_, String>(ms)
    ///     }, 3)
    ///     .ordered(false)
    ///     .to(out.sink())
    ///     .handle_signals(false)
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.records(), [10, 20, 30]); // as they completed
    /// # Ok::<(), etl::Error>(()) }).unwrap();
    /// ```
    pub fn ordered(self, yes: bool) -> Self {
        let Chain(before, step) = self.ops;
        Pipeline { source: self.source, ops: Chain(before, step.map(|stage| stage.ordered(yes))), steps: self.steps }
    }
}

/// The default of [`Run::max_in_flight`].
///
/// ```
/// assert_eq!(etl::pipeline::DEFAULT_MAX_IN_FLIGHT, 2);
/// ```
pub const DEFAULT_MAX_IN_FLIGHT: usize = 2;

/// The default of [`Run::commit_interval`].
///
/// ```
/// assert_eq!(etl::pipeline::DEFAULT_COMMIT_INTERVAL, std::time::Duration::from_secs(1));
/// ```
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// The default of [`Run::max_dead_letter_ratio`]: a run stops when more than half of its
/// records were dead-lettered.
///
/// ```
/// assert_eq!(etl::pipeline::DEFAULT_MAX_DEAD_LETTER_RATIO, 0.5);
/// ```
pub const DEFAULT_MAX_DEAD_LETTER_RATIO: f64 = 0.5;

/// The default of [`Run::max_dead_letter_ratio`]'s second argument: the ratio is checked once
/// this many records were read.
///
/// ```
/// assert_eq!(etl::pipeline::DEFAULT_DEAD_LETTER_RATIO_AFTER, 100);
/// ```
pub const DEFAULT_DEAD_LETTER_RATIO_AFTER: u64 = 100;

/// How a run behaves; set through [`Run`]'s builder methods.
#[derive(Clone)]
pub(crate) struct RunOptions {
    pub(crate) name: String,
    pub(crate) dead_letters: Option<Arc<dyn DeadLetters>>,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_in_flight: usize,
    pub(crate) commit_interval: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) cancel: CancellationToken,
    pub(crate) handle_signals: bool,
    pub(crate) progress_interval: Duration,
    /// The pipeline's shape, as `pipeline!` described it.
    pub(crate) graph: Option<Arc<Graph>>,
    pub(crate) max_dead_letter_ratio: f64,
    pub(crate) dead_letter_ratio_after: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            name: "pipeline".into(),
            dead_letters: None,
            retry: RetryPolicy::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            shutdown_timeout: Duration::from_secs(30),
            cancel: CancellationToken::new(),
            handle_signals: true,
            progress_interval: Duration::from_secs(10),
            graph: None,
            max_dead_letter_ratio: DEFAULT_MAX_DEAD_LETTER_RATIO,
            dead_letter_ratio_after: DEFAULT_DEAD_LETTER_RATIO_AFTER,
        }
    }
}

/// A complete pipeline, ready to [`run`](Run::run).
pub struct Run<S, O, K> {
    source: S,
    ops: O,
    sink: K,
    /// How many operators: the sink is step `steps + 1`.
    steps: usize,
    options: RunOptions,
}

impl<S, O, K> std::fmt::Debug for Run<S, O, K>
where
    S: Source,
    O: Operator<S::Item>,
    K: Sink<O::Out>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("name", &self.options.name)
            .field("source", &self.source.describe())
            .field("sink", &self.sink.describe())
            .finish_non_exhaustive()
    }
}

impl<S, O, K> Run<S, O, K> {
    /// The source (`pipeline!`'s `merge(..)` makes each of its sources this way).
    pub(crate) fn into_source(self) -> S {
        self.source
    }

    /// The operators and the sink (a fan-out's branch keeps them; its source is a stand-in).
    pub(crate) fn into_parts(self) -> (O, K) {
        (self.ops, self.sink)
    }

    /// [`graph`](Self::graph) without its bounds: what `pipeline!` calls, so that a sink that
    /// cannot take the records is one error (rustc's, on the sink), not a second one here.
    pub(crate) fn with_graph(mut self, graph: Graph) -> Self {
        self.options.graph = Some(Arc::new(graph));
        self
    }
}

impl<S, O, K> Run<S, O, K>
where
    S: Source,
    O: Operator<S::Item>,
    O::Out: Serialize,
    K: Sink<O::Out>,
{
    /// Name the pipeline (logs, default dead-letter file). Default `pipeline`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = name.into();
        self
    }

    /// Where failed records go. Default: the file `dead-letters/<name>.jsonl`, created only when
    /// the first record fails.
    pub fn dead_letters(mut self, queue: impl DeadLetters + 'static) -> Self {
        self.options.dead_letters = Some(Arc::new(queue));
        self
    }

    /// Share a dead-letter queue between pipelines or with the caller.
    pub fn dead_letters_shared(mut self, queue: Arc<dyn DeadLetters>) -> Self {
        self.options.dead_letters = Some(queue);
        self
    }

    /// How sink and dead-letter writes are retried. Default [`RetryPolicy::default`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.options.retry = policy;
        self
    }

    /// Batches read and not yet acknowledged, at most (at least 1). Memory is bounded by
    /// `batch_size × max_in_flight`. It is also the most batches written to the sink and not
    /// yet committed (see [`Sink`]): a sink whose commit costs a round trip (a Kafka producer's
    /// confirmations, a PostgreSQL transaction) pays it once per `max_in_flight` batches when
    /// the source keeps up. Default [`DEFAULT_MAX_IN_FLIGHT`] (2): the source reads the next
    /// batch while the sink writes the current one; 1 reads only once the previous batch is
    /// acknowledged.
    ///
    /// ```
    /// # let run = etl::Pipeline::from(etl::source::iter(vec![1i64])).to(etl::sink::blackhole());
    /// let run = run.max_in_flight(8);
    /// ```
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.options.max_in_flight = n.max(1);
        self
    }

    /// The longest time a written batch waits for its commit while the source keeps batches
    /// coming (an idle source, a full `max_in_flight` and the end of the run commit at once).
    /// Default [`DEFAULT_COMMIT_INTERVAL`] (1 s).
    ///
    /// ```
    /// # let run = etl::Pipeline::from(etl::source::iter(vec![1i64])).to(etl::sink::blackhole());
    /// let run = run.commit_interval(std::time::Duration::from_millis(200));
    /// ```
    pub fn commit_interval(mut self, d: Duration) -> Self {
        self.options.commit_interval = d;
        self
    }

    /// How long shutdown may take (flush, write, acknowledge) before the run gives up and
    /// leaves what is unfinished for redelivery. Default 30 s.
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.options.shutdown_timeout = d;
        self
    }

    /// Stop gracefully when `token` is cancelled.
    pub fn cancel_on(mut self, token: CancellationToken) -> Self {
        self.options.cancel = token;
        self
    }

    /// Stop gracefully on SIGINT / SIGTERM. Default true.
    pub fn handle_signals(mut self, yes: bool) -> Self {
        self.options.handle_signals = yes;
        self
    }

    /// How often a progress line is logged on long runs. Default 10 s.
    pub fn progress_interval(mut self, d: Duration) -> Self {
        self.options.progress_interval = d;
        self
    }

    /// Stop the run with [`Error::DeadLetterRatio`](crate::Error::DeadLetterRatio) when more
    /// than `ratio` of the records read were dead-lettered, checked after each commit once
    /// `after` records were read: records that fail systematically (a misspelled field, a
    /// changed schema) stop the run instead of all going to the dead-letter queue. What was
    /// dead-lettered is kept. `1.0` turns the check off. Default
    /// [`DEFAULT_MAX_DEAD_LETTER_RATIO`] after [`DEFAULT_DEAD_LETTER_RATIO_AFTER`] records.
    ///
    /// ```
    /// # let run = etl::Pipeline::from(etl::source::iter(vec![1i64])).to(etl::sink::blackhole());
    /// let run = run.max_dead_letter_ratio(0.9, 1_000);
    /// ```
    pub fn max_dead_letter_ratio(mut self, ratio: f64, after: u64) -> Self {
        self.options.max_dead_letter_ratio = ratio;
        self.options.dead_letter_ratio_after = after;
        self
    }

    /// Describe the pipeline's shape (`pipeline!` does it with every step, its arguments and
    /// the record type after it); the runner's `graph` subcommand prints it.
    ///
    /// ```
    /// use etl::pipeline::{Graph, GraphStep, StepRole};
    /// # let run = etl::Pipeline::from(etl::source::iter(vec![1i64])).to(etl::sink::blackhole());
    /// let run = run.graph(Graph::new("numbers").step(GraphStep::new(StepRole::Source, "iter")));
    /// assert_eq!(run.to_graph().steps.len(), 1);
    /// ```
    pub fn graph(self, graph: Graph) -> Self {
        self.with_graph(graph)
    }

    /// The pipeline's shape: what [`graph`](Self::graph) set, otherwise its source and sink
    /// as they describe themselves, named after the run.
    ///
    /// ```
    /// let run = etl::Pipeline::from(etl::source::iter(vec![1i64])).to(etl::sink::blackhole()).name("n");
    /// let g = run.to_graph();
    /// assert_eq!((g.name.as_str(), g.steps.len()), ("n", 2));
    /// ```
    pub fn to_graph(&self) -> Graph {
        match &self.options.graph {
            Some(graph) => Graph { name: self.options.name.clone(), ..Graph::clone(graph) },
            None => Graph::new(self.options.name.clone())
                .step(GraphStep::new(StepRole::Source, self.source.describe()))
                .step(GraphStep::new(StepRole::Sink, self.sink.describe())),
        }
    }

    /// Run until the source ends, a shutdown is requested, or an error stops it.
    ///
    /// On shutdown: stop reading, flush the partial batch through the operators and the sink,
    /// resolve every acknowledgement, return the report; all within `shutdown_timeout`.
    ///
    /// Under a runner whose subcommand is not `run` (see [`Mode`]), it only checks, describes
    /// or works on the dead letters, and returns an empty report.
    pub async fn run(self) -> crate::Result<RunReport> {
        match mode() {
            Mode::Run => {
                let labels = self.step_labels();
                // Boxed: a run's state (the source's and sink's futures, the operators) is
                // large, and a caller's stack (a test thread's 2 MiB in a debug build) need
                // not hold it. One allocation per run.
                Box::pin(driver::run(self.source, self.ops, self.sink, labels, self.options)).await
            }
            Mode::Check => driver::check(self.source, self.sink, self.options).await,
            Mode::Graph(format) => {
                let graph = self.to_graph();
                // The subcommand's output, on stdout.
                print!("{}", if *format == GraphFormat::Dot { graph.dot() } else { graph.mermaid() });
                Ok(RunReport::default())
            }
            Mode::DeadLetters(DeadLetterCommand::Replay) => self.replay().await,
            Mode::DeadLetters(command) => commands::dead_letters(command, &self.options).await,
        }
    }

    /// `dead-letters replay`: this pipeline's operators and sink on its dead letters.
    async fn replay(self) -> crate::Result<RunReport> {
        let labels = self.step_labels();
        let Some(decode) = self.source.dead_letter_decoder() else {
            let message = format!(
                "the source `{}` cannot turn its dead letters back into records; replay them with a pipeline that starts at `dead_letters(path = \"{}\") as Type`",
                self.source.describe(),
                commands::default_path(&self.options.name)
            );
            let error = crate::ConfigError::Invalid { option: "dead-letters replay", message };
            return Err(crate::Error::Start { pipeline: self.options.name.clone(), error: Box::new(error.into()) });
        };
        let queue = commands::queue(&self.options);
        let mut options = self.options;
        options.dead_letters = Some(Arc::clone(&queue));
        Box::pin(driver::run(replay::Replay { queue, decode }, self.ops, self.sink, labels, options)).await
    }

    /// The label of each step, source first: the graph's, or the connectors' descriptions and
    /// `step N` without one.
    fn step_labels(&self) -> Vec<String> {
        let graph = self.options.graph.as_deref().filter(|g| g.steps.len() == self.steps + 2);
        match graph {
            Some(graph) => graph.steps.iter().map(GraphStep::label).collect(),
            None => std::iter::once(self.source.describe())
                .chain((1..=self.steps).map(|i| format!("step {i}")))
                .chain(std::iter::once(self.sink.describe()))
                .collect(),
        }
    }
}
