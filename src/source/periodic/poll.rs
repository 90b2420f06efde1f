//! The poll of the `periodic` source: the user's async function, type-erased, and one tick's
//! attempts at it with the crate's backoff ([`RetryPolicy`]).

use super::stats::PeriodicStats;
use crate::error::ConnectorError;
use crate::retry::RetryPolicy;
use futures::future::BoxFuture;
use std::fmt::Display;
use std::future::Future;

/// What [`periodic`](super::periodic) polls: an async function or a closure returning a
/// future, taking nothing and returning `Result<Vec<T>, E>` with an error that displays
/// (`String`, `std::io::Error`, `etl::Error`, ...). Implemented for every such function.
///
/// ```
/// async fn fetch() -> Result<Vec<i64>, String> { Ok(vec![1, 2]) }
/// fn takes<F: etl::source::PollFn<i64>>(_: F) {}
/// takes(fetch);
/// takes(|| async { Ok::<_, std::io::Error>(vec![3]) });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the poll of a `periodic` source of `{T}`",
    label = "not an async function returning `Result<Vec<{T}>, E>`",
    note = "write `async fn poll() -> Result<Vec<{T}>, E>` (E: Display), or `|| async {{ .. }}` returning such a `Result`"
)]
pub trait PollFn<T>: Send + 'static {
    /// One attempt: the records, or why not (as text).
    fn call(&mut self) -> BoxFuture<'static, Result<Vec<T>, String>>;
}

impl<T, F, Fut, E> PollFn<T> for F
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<T>, E>> + Send + 'static,
    E: Display,
{
    fn call(&mut self) -> BoxFuture<'static, Result<Vec<T>, String>> {
        let attempt = self();
        Box::pin(async move { attempt.await.map_err(|e| e.to_string()) })
    }
}

/// One tick's poll: the first attempt, then a retry after each failure with the policy's
/// backoff, until one succeeds or the retries run out (then the last error). Logs each
/// failure (`warn`, and `error` for the last) and counts the retries.
pub(super) async fn poll_with_retries<T: 'static>(
    poll: &mut dyn PollFn<T>,
    retry: &RetryPolicy,
    component: &str,
    stats: &PeriodicStats,
) -> Result<Vec<T>, ConnectorError> {
    let mut retrying = retry.start();
    loop {
        match poll.call().await {
            Ok(records) => return Ok(records),
            Err(message) => {
                let error = ConnectorError::retryable(component.to_owned(), message);
                if !retrying.pause(&error, "poll").await {
                    return Err(error);
                }
                stats.retried();
            }
        }
    }
}
