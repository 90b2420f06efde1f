//! Fan-out: a pipeline whose end is several branches, each a sub-pipeline of its own operators
//! ending in its own sink (`pipeline! { .. | broadcast { a | sink_a, sink_b } }`, or
//! `route { |r| pred => .., _ => .. }`).
//!
//! * [`broadcast`](crate::Pipeline::broadcast): every branch gets every record of every batch;
//!   [`route`](crate::Pipeline::route): each record goes to the first branch whose predicate
//!   holds (a record no predicate takes, without a `_` branch, is filtered out).
//! * A branch is typed and checked like a pipeline: it starts at an [`Input`] of the record
//!   type at the fork (`Pipeline::from(input)`), and a step in one branch does not change
//!   another's record type.
//! * **Together, as one sink** ([`Fanout`]): the run writes each batch to every branch at once
//!   (their writes run concurrently), commits every branch, and acknowledges the batch to its
//!   source only once every branch committed it: the source's acknowledgement is the join of
//!   the branches'. A branch whose write fails is retried (the run's retry policy) without
//!   writing the batch again to the branches that took it; when the retries run out the run
//!   stops and the source redelivers the batch (at least once in every branch). Branches move
//!   in step: a slow branch holds the others back, by less than `max_in_flight` batches.
//! * What a branch's operators dead-letter, and what its sink refuses, goes to the run's
//!   dead-letter queue, under the fan-out's step, its error prefixed with the branch.
//! * A failed commit of one branch makes the run write the uncommitted batches again to every
//!   branch (the sink contract): a branch that had committed them gets them twice (at least
//!   once, as the contract promises; a sink that stores positions skips them: a batch it fences
//!   off is one it already has).
//! * Each branch's sink opens as a pipeline of its own, named `{pipeline}/branch{n}`, with
//!   resources of its own: a sink that stores positions (exactly-once) keeps them per branch
//!   and does not place the source, which reads for every branch.
//! * A branch's steps see the batch without its acknowledgement: a step that needs it (a job
//!   step, `map(job)`) belongs before the fork. A retried branch runs its steps again on the
//!   batch.
//!
//! ```
//! use etl::prelude::*;
//! use etl::fanout::branch;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (all, big) = (etl::sink::collect(), etl::sink::collect());
//! let (all_sink, big_sink) = (all.sink(), big.sink());
//! Pipeline::from(etl::source::iter(vec![5i64, 1500, 20]))
//!     .broadcast(|input| vec![
//!         branch(Pipeline::from(input.clone()).to(all_sink)),
//!         branch(Pipeline::from(input).filter(|n: &i64| *n > 1000).map(|n: i64| n.to_string()).to(big_sink)),
//!     ])
//!     .handle_signals(false)
//!     .run()
//!     .await?;
//! assert_eq!(all.records(), [5, 1500, 20]);
//! assert_eq!(big.records(), ["1500"]);
//! # Ok::<(), etl::Error>(()) }).unwrap();
//! ```

mod lane;

use crate::ack::Ack;
use crate::batch::{Batch, BatchStream, Failure};
use crate::error::ConnectorError;
use crate::operator::Operator;
use crate::pipeline::{Pipeline, Run};
use crate::positions::Positions;
use crate::record::Meta;
use crate::sink::{Sink, SinkContext, Written};
use crate::source::{Source, SourceContext};
use futures::future::join_all;
use lane::{Lane, Typed};
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::Arc;

/// Where a branch starts: a source of the records at the fork, never opened on its own (the
/// fan-out hands each branch its batches). `Pipeline::from(input)` begins a branch.
///
/// ```
/// let input = etl::fanout::Input::<i64>::new();
/// let _branch = etl::Pipeline::from(input).map(|n: i64| n + 1).to(etl::sink::blackhole());
/// ```
pub struct Input<T>(PhantomData<fn() -> T>);

impl<T> Input<T> {
    /// An input of records of type `T`.
    ///
    /// ```
    /// let _ = etl::fanout::Input::<String>::new();
    /// ```
    pub fn new() -> Input<T> {
        Input(PhantomData)
    }
}

impl<T> Input<T> {
    /// Another input of the same record type as `input` (what `pipeline!`'s branches start
    /// at: the type comes from the fork).
    ///
    /// ```
    /// let first = etl::fanout::Input::<i64>::new();
    /// let _second: etl::fanout::Input<i64> = etl::fanout::Input::like(&first);
    /// ```
    pub fn like(input: &Input<T>) -> Input<T> {
        let _ = input;
        Input::new()
    }
}

impl<T> Default for Input<T> {
    fn default() -> Self {
        Input::new()
    }
}

impl<T> Clone for Input<T> {
    fn clone(&self) -> Self {
        Input::new()
    }
}

impl<T> std::fmt::Debug for Input<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Input")
    }
}

impl<T: Send + 'static> Source for Input<T> {
    type Item = T;

    fn describe(&self) -> String {
        "branch input".into()
    }

    async fn open(self, _ctx: SourceContext) -> crate::Result<BatchStream<T>> {
        Err(crate::Error::Source(ConnectorError::permanent(
            "branch input",
            "a branch's input is fed by its fan-out; it cannot be run as a pipeline of its own",
        )))
    }
}

/// One branch of a fan-out: a sub-pipeline's operators and sink, made by [`branch`] (or
/// [`when`] for a route).
///
/// ```
/// use etl::fanout::{branch, Input};
/// let b = branch(etl::Pipeline::from(Input::<i64>::new()).to(etl::sink::blackhole()));
/// assert_eq!(b.describe(), "blackhole");
/// ```
pub struct Branch<T> {
    lane: Box<dyn Lane<T>>,
    /// For a route: which records it takes (`None`: every record not taken before).
    predicate: Option<Predicate<T>>,
}

type Predicate<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

impl<T> Branch<T> {
    /// The branch's sink, for logs.
    pub fn describe(&self) -> String {
        self.lane.describe()
    }
}

impl<T> std::fmt::Debug for Branch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Branch").field("sink", &self.lane.describe()).field("routed", &self.predicate.is_some()).finish()
    }
}

/// A branch from a sub-pipeline that starts at an [`Input`] (`Pipeline::from(input) .. .to(sink)`).
///
/// ```
/// use etl::fanout::{branch, Input};
/// let _b = branch(etl::Pipeline::from(Input::<i64>::new()).filter(|n: &i64| *n > 0).to(etl::sink::blackhole()));
/// ```
pub fn branch<T, O, K>(run: Run<Input<T>, O, K>) -> Branch<T>
where
    T: Send + 'static,
    O: Operator<T> + Sync + 'static,
    O::Out: Serialize + Sync,
    K: Sink<O::Out> + Sync + 'static,
{
    let (ops, sink) = run.into_parts();
    Branch { lane: Box::new(Typed::new(ops, sink)), predicate: None }
}

/// A route's branch: the records for which `predicate` holds (and no branch before took).
///
/// ```
/// use etl::fanout::{when, Input};
/// let _b = when(etl::Pipeline::from(Input::<i64>::new()).to(etl::sink::blackhole()), |n| *n > 1000);
/// ```
pub fn when<T, O, K>(run: Run<Input<T>, O, K>, predicate: impl Fn(&T) -> bool + Send + Sync + 'static) -> Branch<T>
where
    T: Send + 'static,
    O: Operator<T> + Sync + 'static,
    O::Out: Serialize + Sync,
    K: Sink<O::Out> + Sync + 'static,
{
    Branch { predicate: Some(Arc::new(predicate)), ..branch(run) }
}

/// How a fan-out hands records to its branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every record to every branch.
    Broadcast,
    /// Each record to the first branch whose predicate holds.
    Route,
}

/// The sink at the end of a pipeline that forks: every branch written, committed and closed
/// together (see the [module](self) documentation). Made by
/// [`Pipeline::broadcast`](crate::Pipeline::broadcast) and
/// [`Pipeline::route`](crate::Pipeline::route).
///
/// ```
/// use etl::fanout::{branch, Fanout, Input};
/// let fanout = Fanout::broadcast(vec![
///     branch(etl::Pipeline::from(Input::<i64>::new()).to(etl::sink::blackhole())),
///     branch(etl::Pipeline::from(Input::<i64>::new()).to(etl::sink::stdout())),
/// ]);
/// assert_eq!(etl::sink::Sink::<i64>::describe(&fanout), "broadcast(blackhole, stdout)");
/// ```
pub struct Fanout<T> {
    branches: Vec<Branch<T>>,
    mode: Mode,
    /// The batch being written: which branches took it, and what they dead-lettered (kept
    /// across a retry of the same batch, so a branch that took it does not get it twice).
    pending: Option<Pending>,
    origin: Arc<str>,
}

#[derive(Default)]
struct Pending {
    done: Vec<bool>,
    failures: Vec<Failure>,
}

impl<T> std::fmt::Debug for Fanout<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout").field("mode", &self.mode).field("branches", &self.branches).finish_non_exhaustive()
    }
}

impl<T> Fanout<T> {
    /// Every record to every branch.
    ///
    /// ```
    /// use etl::fanout::{branch, Fanout, Input};
    /// let _ = Fanout::broadcast(vec![branch(etl::Pipeline::from(Input::<i64>::new()).to(etl::sink::blackhole()))]);
    /// ```
    pub fn broadcast(branches: Vec<Branch<T>>) -> Fanout<T> {
        Fanout { branches, mode: Mode::Broadcast, pending: None, origin: Arc::from("fan-out") }
    }

    /// Each record to the first branch whose predicate holds ([`when`]); a branch made with
    /// [`branch`] takes every record not taken before it (`_`). A record no branch takes is
    /// filtered out.
    ///
    /// ```
    /// use etl::fanout::{branch, when, Fanout, Input};
    /// let _ = Fanout::route(vec![
    ///     when(etl::Pipeline::from(Input::<i64>::new()).to(etl::sink::blackhole()), |n| *n > 1000),
    ///     branch(etl::Pipeline::from(Input::<i64>::new()).to(etl::sink::stdout())),
    /// ]);
    /// ```
    pub fn route(branches: Vec<Branch<T>>) -> Fanout<T> {
        if let Some(at) = branches.iter().position(|b| b.predicate.is_none()).filter(|at| at + 1 < branches.len()) {
            tracing::warn!(
                branch = at + 1,
                after = branches.len() - at - 1,
                "route: a branch without a predicate takes every record left; the branches after it get none"
            );
        }
        Fanout { branches, mode: Mode::Route, pending: None, origin: Arc::from("fan-out") }
    }
}

impl<T: Clone + Send + Sync + 'static> Fanout<T> {
    /// The records (and metadata) of each branch still to write: a copy, or none for a branch
    /// of a broadcast without steps (it writes the fork's records as they are).
    fn split(&self, records: &[T], meta: &[Meta], done: &[bool]) -> Vec<Option<(Vec<T>, Vec<Meta>)>> {
        match self.mode {
            Mode::Broadcast => self
                .branches
                .iter()
                .zip(done)
                .map(|(b, done)| (!done && !b.lane.is_bare()).then(|| (records.to_vec(), meta.to_vec())))
                .collect(),
            Mode::Route => {
                let mut parts: Vec<(Vec<T>, Vec<Meta>)> = self.branches.iter().map(|_| (Vec::new(), Vec::new())).collect();
                for (record, m) in records.iter().zip(meta) {
                    let taker = self.branches.iter().position(|b| b.predicate.as_ref().is_none_or(|p| p(record)));
                    if let Some(part) = taker.and_then(|i| parts.get_mut(i)) {
                        part.0.push(record.clone());
                        part.1.push(m.clone());
                    }
                }
                parts.into_iter().map(Some).collect()
            }
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Sink<T> for Fanout<T> {
    fn describe(&self) -> String {
        let mode = match self.mode {
            Mode::Broadcast => "broadcast",
            Mode::Route => "route",
        };
        let names: Vec<String> = self.branches.iter().map(Branch::describe).collect();
        format!("{mode}({})", names.join(", "))
    }

    async fn open(&mut self, ctx: SinkContext) -> Result<(), ConnectorError> {
        self.origin = Arc::from(ctx.pipeline.as_str());
        for (i, b) in self.branches.iter_mut().enumerate() {
            // Each branch is a pipeline of its own to its sink: its own name (a transactional
            // id, a message id prefix, a positions key per branch) and its own resources, so a
            // sink that stores positions does not hand them to the source (which reads from
            // the fork's point of view, not one branch's).
            let branch = SinkContext::new(format!("{}/branch{}", ctx.pipeline, i + 1), ctx.shutdown.clone());
            b.lane.open(branch).await?;
        }
        Ok(())
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        let meta = vec![Meta::default(); records.len()];
        self.write_positioned(records, &meta, &Positions::default()).await
    }

    async fn write_batch(&mut self, records: &[T], meta: &[Meta]) -> Result<Written, ConnectorError> {
        self.write_positioned(records, meta, &Positions::default()).await
    }

    async fn write_positioned(&mut self, records: &[T], meta: &[Meta], positions: &Positions) -> Result<Written, ConnectorError> {
        let mut pending = self.pending.take().unwrap_or_else(|| Pending { done: vec![false; self.branches.len()], failures: Vec::new() });
        let parts = self.split(records, meta, &pending.done);
        let origin = Arc::clone(&self.origin);
        let writes = self.branches.iter_mut().zip(parts).enumerate().filter(|(i, _)| !pending.done[*i]).map(|(i, (b, part))| {
            let write = match part {
                Some((records, meta)) => {
                    let batch = Batch::new(records, meta, Vec::new(), Ack::none(), Arc::clone(&origin)).with_positions(positions.clone());
                    b.lane.write(batch)
                }
                None => match b.lane.write_shared(records, meta, positions) {
                    Some(write) => write,
                    None => Box::pin(async { Err(ConnectorError::permanent("fan-out", "etl bug: a branch with steps got no records")) }),
                },
            };
            async move { (i, write.await) }
        });
        let mut error: Option<ConnectorError> = None;
        for (i, result) in join_all(writes).await {
            match result {
                Ok(failures) => {
                    pending.done[i] = true;
                    pending.failures.extend(failures);
                }
                Err(e) => {
                    tracing::warn!(branch = i + 1, error = %e, "fan-out: a branch's write failed; the others keep what they took");
                    // The first permanent error wins; else the first error.
                    if error.as_ref().is_none_or(|first| first.is_retryable() && !e.is_retryable()) {
                        error = Some(e);
                    }
                }
            }
        }
        if let Some(e) = error {
            self.pending = Some(pending);
            return Err(e);
        }
        Ok(Written { failures: pending.failures, ..Written::default() })
    }

    async fn commit(&mut self) -> Result<(), ConnectorError> {
        // The run commits after a batch was written to every branch, or after giving up on
        // one (then the batches after are written anew): what the last write kept is stale.
        self.pending = None;
        let results = join_all(self.branches.iter_mut().map(|b| b.lane.commit())).await;
        results.into_iter().collect()
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        let results = join_all(self.branches.iter_mut().map(|b| b.lane.close())).await;
        results.into_iter().collect()
    }
}

/// The fork's builder methods (here, beside the fan-out, so that `pipeline` does not import
/// `fanout`).
impl<S, O> Pipeline<S, O>
where
    S: Source,
    O: Operator<S::Item>,
{
    /// End the pipeline in branches that each get every record: `branches` makes them from
    /// an [`Input`](crate::fanout::Input) of this pipeline's record type, each a sub-pipeline
    /// `Pipeline::from(input) .. .to(sink)` made a [`branch`](crate::fanout::branch). A batch is
    /// acknowledged once every branch committed it (see [`crate::fanout`]).
    ///
    /// ```
    /// use etl::prelude::*;
    /// use etl::fanout::branch;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (a, b) = (etl::sink::collect(), etl::sink::collect());
    /// let (sink_a, sink_b) = (a.sink(), b.sink());
    /// Pipeline::from(etl::source::iter(vec![1i64, 2]))
    ///     .broadcast(|input| vec![
    ///         branch(Pipeline::from(input.clone()).to(sink_a)),
    ///         branch(Pipeline::from(input).map(|n: i64| n * 10).to(sink_b)),
    ///     ])
    ///     .handle_signals(false)
    ///     .run()
    ///     .await?;
    /// assert_eq!((a.records(), b.records()), (vec![1, 2], vec![10, 20]));
    /// # Ok::<(), etl::Error>(()) }).unwrap();
    /// ```
    pub fn broadcast<F>(self, branches: F) -> Run<S, O, Fanout<O::Out>>
    where
        O::Out: Clone + Sync,
        F: FnOnce(Input<O::Out>) -> Vec<Branch<O::Out>>,
    {
        self.to(Fanout::broadcast(branches(Input::new())))
    }

    /// End the pipeline in branches that each take the records for which their predicate
    /// holds, the first that does ([`when`](crate::fanout::when)); a
    /// [`branch`](crate::fanout::branch) takes the rest (`_`). A record no branch takes is
    /// filtered out.
    ///
    /// ```
    /// use etl::prelude::*;
    /// use etl::fanout::{branch, when};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (big, rest) = (etl::sink::collect(), etl::sink::collect());
    /// let (big_sink, rest_sink) = (big.sink(), rest.sink());
    /// Pipeline::from(etl::source::iter(vec![5i64, 1500, 20]))
    ///     .route(|input| vec![
    ///         when(Pipeline::from(input.clone()).to(big_sink), |n| *n > 1000),
    ///         branch(Pipeline::from(input).to(rest_sink)),
    ///     ])
    ///     .handle_signals(false)
    ///     .run()
    ///     .await?;
    /// assert_eq!((big.records(), rest.records()), (vec![1500], vec![5, 20]));
    /// # Ok::<(), etl::Error>(()) }).unwrap();
    /// ```
    pub fn route<F>(self, branches: F) -> Run<S, O, Fanout<O::Out>>
    where
        O::Out: Clone + Sync,
        F: FnOnce(Input<O::Out>) -> Vec<Branch<O::Out>>,
    {
        self.to(Fanout::route(branches(Input::new())))
    }
}
