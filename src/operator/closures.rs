//! Operators built from closures: `map`, `filter`, `filter_map`, `flat_map`, `inspect`,
//! `try_map`.

use super::Operator;
use crate::batch::Batch;
use serde::Serialize;

/// Apply a function to every record.
///
/// ```
/// use etl::prelude::*;
/// use etl::operator::Map;
/// # tokio_test_block(async {
/// let out = Map(|n: i64| n.to_string()).apply(Batch::from_records(vec![1, 2])).await;
/// assert_eq!(out.records(), &["1", "2"]);
/// # });
/// # fn tokio_test_block<F: std::future::Future>(f: F) { tokio::runtime::Runtime::new().unwrap().block_on(f); }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Map<F>(pub F);

impl<T, U, F> Operator<T> for Map<F>
where
    T: Send,
    U: Send + 'static,
    F: FnMut(T) -> U + Send,
{
    type Out = U;
    async fn apply(&mut self, batch: Batch<T>) -> Batch<U> {
        batch.map(&mut self.0)
    }
}

/// Keep the records for which the predicate holds.
///
/// ```
/// let _ = etl::operator::Filter(|n: &i64| *n > 0);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Filter<F>(pub F);

impl<T, F> Operator<T> for Filter<F>
where
    T: Send + 'static,
    F: FnMut(&T) -> bool + Send,
{
    type Out = T;
    async fn apply(&mut self, batch: Batch<T>) -> Batch<T> {
        batch.filter(&mut self.0)
    }
}

/// Map and filter in one step.
///
/// ```
/// let _ = etl::operator::FilterMap(|s: String| s.parse::<i64>().ok());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FilterMap<F>(pub F);

impl<T, U, F> Operator<T> for FilterMap<F>
where
    T: Send,
    U: Send + 'static,
    F: FnMut(T) -> Option<U> + Send,
{
    type Out = U;
    async fn apply(&mut self, batch: Batch<T>) -> Batch<U> {
        batch.filter_map(&mut self.0)
    }
}

/// Replace each record by zero or more records.
///
/// ```
/// let _ = etl::operator::FlatMap(|s: String| s.split(',').map(str::to_owned).collect::<Vec<_>>());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FlatMap<F>(pub F);

impl<T, U, I, F> Operator<T> for FlatMap<F>
where
    T: Send,
    U: Send + 'static,
    I: IntoIterator<Item = U>,
    F: FnMut(T) -> I + Send,
{
    type Out = U;
    async fn apply(&mut self, batch: Batch<T>) -> Batch<U> {
        batch.flat_map(&mut self.0)
    }
}

/// Look at every record without changing it.
///
/// ```
/// let _ = etl::operator::Inspect(|n: &i64| tracing::debug!(n, "seen"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Inspect<F>(pub F);

impl<T, F> Operator<T> for Inspect<F>
where
    T: Send + 'static,
    F: FnMut(&T) + Send,
{
    type Out = T;
    async fn apply(&mut self, batch: Batch<T>) -> Batch<T> {
        batch.records().iter().for_each(&mut self.0);
        batch
    }
}

/// Apply a fallible function; a record whose call fails is dead-lettered with the error.
///
/// ```
/// let _ = etl::operator::TryMap(|s: String| s.parse::<i64>());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TryMap<F>(pub F);

impl<T, U, E, F> Operator<T> for TryMap<F>
where
    T: Send + Serialize,
    U: Send + 'static,
    E: std::fmt::Display,
    F: FnMut(T) -> Result<U, E> + Send,
{
    type Out = U;
    async fn apply(&mut self, batch: Batch<T>) -> Batch<U> {
        batch.try_map(&mut self.0)
    }
}
