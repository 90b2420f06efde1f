//! Operators: the steps between a source and a sink. Each transforms a batch in place.

mod closures;
pub mod json;

pub use closures::{Filter, FilterMap, FlatMap, Inspect, Map, TryMap};

use crate::batch::Batch;
use std::future::Future;

/// One step of a pipeline: turns a batch of `In` into a batch of [`Operator::Out`].
///
/// Records that fail go to the batch's failures (and from there to the dead-letter queue);
/// filtered-out records are simply gone (done, for acknowledgement purposes).
///
/// ```
/// use etl::prelude::*;
/// struct Double;
/// impl Operator<i64> for Double {
///     type Out = i64;
///     async fn apply(&mut self, batch: Batch<i64>) -> Batch<i64> { batch.map(|n| n * 2) }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot process records of type `{In}`",
    note = "an operator's input type must be the output type of the step before it"
)]
pub trait Operator<In>: Send {
    /// The record type this step produces.
    type Out: Send + 'static;

    /// Transform one batch.
    fn apply(&mut self, batch: Batch<In>) -> impl Future<Output = Batch<Self::Out>> + Send;
}

/// The empty chain: passes batches through.
///
/// ```
/// let _ = etl::operator::Identity;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

impl<T: Send + 'static> Operator<T> for Identity {
    type Out = T;
    async fn apply(&mut self, batch: Batch<T>) -> Batch<T> {
        batch
    }
}

/// An operator at a known position of its pipeline: records that fail in it are stamped with
/// its index (the dead-letter entries and the run's summary name the step), and, inside a run,
/// the records going in and out of it are counted in the run's metrics. [`Pipeline`]'s
/// builder wraps every operator in one; index 0 is the source.
///
/// [`Pipeline`]: crate::Pipeline
///
/// ```
/// use etl::operator::{Map, Step};
/// let _second = Step::new(2, Map(|n: i64| n + 1));
/// ```
#[derive(Debug, Clone)]
pub struct Step<O> {
    index: usize,
    op: O,
    /// The step's in and out counters, made on the first batch inside a run.
    counters: Option<(metrics::Counter, metrics::Counter)>,
}

impl<O> Step<O> {
    /// `op` as step `index` of its pipeline.
    pub fn new(index: usize, op: O) -> Self {
        Step { index, op, counters: None }
    }

    /// The same step with its operator changed by `f` (a builder option of the operator).
    pub(crate) fn map(self, f: impl FnOnce(O) -> O) -> Self {
        Step { op: f(self.op), ..self }
    }
}

impl<In, O> Operator<In> for Step<O>
where
    In: Send,
    O: Operator<In>,
{
    type Out = O::Out;
    async fn apply(&mut self, batch: Batch<In>) -> Batch<O::Out> {
        if self.counters.is_none() {
            self.counters = crate::telemetry::step_counters(self.index);
        }
        let (records, before) = (batch.len(), batch.failures().len());
        let mut out = self.op.apply(batch).await;
        for failure in out.failures_mut().iter_mut().skip(before) {
            failure.step.get_or_insert(self.index);
        }
        if let Some((records_in, records_out)) = &self.counters {
            records_in.increment(records as u64);
            records_out.increment(out.len() as u64);
        }
        out
    }
}

/// Two operators, one after the other, fused: no channel, no copy between them.
///
/// ```
/// use etl::operator::{Chain, Map};
/// let _both = Chain(Map(|n: i64| n + 1), Map(|n: i64| n * 2));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Chain<A, B>(pub A, pub B);

impl<In, A, B> Operator<In> for Chain<A, B>
where
    In: Send,
    A: Operator<In>,
    B: Operator<A::Out>,
{
    type Out = B::Out;
    async fn apply(&mut self, batch: Batch<In>) -> Batch<B::Out> {
        let mid = self.0.apply(batch).await;
        self.1.apply(mid).await
    }
}
