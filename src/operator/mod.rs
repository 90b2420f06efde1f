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
