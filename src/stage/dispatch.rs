//! How `map` tells a function from a stage, by the type of what it returns.
//!
//! * [`MapStep`] (`map(f)` with `f` a path or a value): a function `FnMut(T) -> U` whose result
//!   `U` is a record is a [`Map`]; a `#[stage]` function (it returns a [`Call`]) is a [`Stage`].
//!   The two impls cannot both apply: a record must be `Unpin` (every plain data type is), and a
//!   `Call` is not. An un-attributed `async fn` returns a future that is not `Unpin` either, so
//!   it matches neither: a compile error that says to use `#[stage]` or `concurrency`.
//! * [`StageOutput`] (`map(f, concurrency = N)`): what `f` returns, a `Call` (retried as its
//!   stage says) or any other future of a `Result` (one attempt).

use super::{Call, Stage, StageConfig, StageOptions};
use crate::operator::{Map, Operator};
use serde::Serialize;
use std::fmt::Display;
use std::future::Future;

/// A function that `map(f)` can apply to records of type `T`: a plain function or closure
/// (`FnMut(T) -> U`), a `#[stage]` async function taking `T`, or a [`Job`](crate::job::Job)
/// whose first stage takes `T` (run once per record, [`JobStep`](crate::job::JobStep)). `M` is
/// [`SyncFn`], [`StageFn`] or [`JobFn`](crate::job::JobFn), inferred.
///
/// [`Pipeline::map_step`](crate::Pipeline::map_step) takes it; `pipeline!` calls that for
/// `map(f)` when `f` is not a closure written in place.
///
/// ```
/// use etl::stage::MapStep;
/// fn kind<T, M, F: MapStep<T, M>>(_: &F) -> &'static str { std::any::type_name::<M>() }
///
/// #[etl::stage]
/// async fn lookup(id: i64) -> Result<String, String> { Ok(id.to_string()) }
/// fn double(n: i64) -> i64 { n * 2 }
///
/// assert!(kind::<i64, _, _>(&double).ends_with("SyncFn"));
/// assert!(kind::<i64, _, _>(&lookup).ends_with("StageFn"));
/// ```
#[diagnostic::on_unimplemented(
    message = "`map` cannot apply `{Self}` to records of type `{T}`",
    label = "not a function or `#[stage]` of `{T}`",
    note = "`map(f)` takes a function `FnMut({T}) -> U`, a `#[stage]` async function whose argument is `{T}`, or a job (`pipeline! {{ a | b }}`) whose first stage takes `{T}`",
    note = "an `async fn` without `#[stage]` runs with `map(f, concurrency = N)`"
)]
pub trait MapStep<T, M> {
    /// The record type the step produces.
    type Out: Send + 'static;
    /// The operator it becomes.
    type Op: Operator<T, Out = Self::Out>;
    /// The operator.
    fn into_operator(self) -> Self::Op;
}

/// [`MapStep`]'s marker for a plain function: the step is a [`Map`].
///
/// ```
/// fn f(n: i64) -> i64 { n }
/// let _op: etl::operator::Map<fn(i64) -> i64> = etl::stage::MapStep::<i64, etl::stage::SyncFn>::into_operator(f as fn(i64) -> i64);
/// ```
#[derive(Debug)]
pub enum SyncFn {}

/// [`MapStep`]'s marker for a `#[stage]` function: the step is a [`Stage`].
///
/// ```
/// #[etl::stage]
/// async fn f(n: i64) -> Result<i64, String> { Ok(n) }
/// let _op = etl::stage::MapStep::<i64, etl::stage::StageFn>::into_operator(f);
/// ```
#[derive(Debug)]
pub enum StageFn {}

impl<F, T, U> MapStep<T, SyncFn> for F
where
    T: Send,
    F: FnMut(T) -> U + Send,
    U: Send + Unpin + 'static,
{
    type Out = U;
    type Op = Map<F>;
    fn into_operator(self) -> Map<F> {
        Map(self)
    }
}

impl<F, T, Fut, C, U, E> MapStep<T, StageFn> for F
where
    T: Clone + Serialize + Send + 'static,
    F: Fn(T) -> Call<Fut, C> + Send + Sync,
    Fut: Future<Output = Result<U, E>> + Send,
    C: StageConfig,
    U: Send + 'static,
    E: Display + Send + 'static,
{
    type Out = U;
    type Op = Stage<F>;
    fn into_operator(self) -> Stage<F> {
        Stage::new(self)
    }
}

/// What a function run by a [`Stage`] returns: a `#[stage]`'s [`Call`] (its options come with
/// it), or any other future of a `Result` (one attempt, unless the `Stage` has options).
///
/// ```
/// use etl::stage::StageOutput;
/// fn options<R: StageOutput>(_: &R) -> Option<etl::stage::StageOptions> { R::OPTIONS }
/// assert_eq!(options(&async { Ok::<i64, String>(1) }), None);
/// ```
#[diagnostic::on_unimplemented(
    message = "a function run with `concurrency` must return a future of a `Result`, not `{Self}`",
    label = "not a future of `Result<_, _>`",
    note = "write an `async fn(record) -> Result<Out, E>` (with `#[stage]` for retries), or `|r| async move {{ .. }}` returning a `Result`"
)]
pub trait StageOutput {
    /// The record type produced.
    type Ok: Send + 'static;
    /// The error type.
    type Err: Display + Send + 'static;
    /// One attempt.
    type Future: Future<Output = Result<Self::Ok, Self::Err>> + Send;
    /// The stage's options, for a `#[stage]`'s `Call`.
    const OPTIONS: Option<StageOptions>;
    /// The attempt's future.
    fn into_attempt(self) -> Self::Future;
}

impl<Fut, C, U, E> StageOutput for Call<Fut, C>
where
    Fut: Future<Output = Result<U, E>> + Send,
    C: StageConfig,
    U: Send + 'static,
    E: Display + Send + 'static,
{
    type Ok = U;
    type Err = E;
    type Future = Fut;
    const OPTIONS: Option<StageOptions> = Some(C::OPTIONS);
    fn into_attempt(self) -> Fut {
        self.into_inner()
    }
}

impl<Fut, U, E> StageOutput for Fut
where
    Fut: Future<Output = Result<U, E>> + Send,
    U: Send + 'static,
    E: Display + Send + 'static,
{
    type Ok = U;
    type Err = E;
    type Future = Fut;
    const OPTIONS: Option<StageOptions> = None;
    fn into_attempt(self) -> Fut {
        self
    }
}
