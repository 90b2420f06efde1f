//! Error types shared by the whole runtime.
//!
//! Every error says what failed, on what (a file, a connector, a variable), and whether a retry
//! can help ([`ConnectorError::is_retryable`]).

use std::borrow::Cow;
use std::time::Duration;

/// A boxed error from a connector's underlying crate.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of etl's fallible operations.
///
/// ```
/// fn check() -> etl::Result<()> { Ok(()) }
/// assert!(check().is_ok());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error that stops a pipeline run or one of its parts.
///
/// ```
/// let e = etl::Error::from(etl::ConfigError::UnsetVariable { name: "DB_PASS".into() });
/// assert!(e.to_string().contains("DB_PASS"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value could not be resolved at start-up.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The source failed (could not open, or failed while reading).
    #[error("source failed: {0}")]
    Source(#[source] ConnectorError),
    /// The sink failed to write a batch after its retries, or failed permanently.
    #[error("sink failed: {0}")]
    Sink(#[source] ConnectorError),
    /// Records could not be written to the dead-letter queue.
    #[error("dead-letter queue failed: {0}")]
    DeadLetters(#[source] ConnectorError),
    /// Shutdown did not finish within its deadline; unfinished batches were left unacknowledged
    /// (their sources redeliver them).
    #[error("shutdown did not finish within {deadline:?}; {unfinished} batch(es) left unacknowledged for redelivery")]
    ShutdownTimeout {
        /// The deadline that was exceeded.
        deadline: Duration,
        /// Batches still in flight when it expired.
        unfinished: usize,
    },
    /// A second signal arrived during the graceful stop: the run stopped at once; unfinished
    /// batches were left unacknowledged (their sources redeliver them).
    #[error("stopped at once by a second signal; {unfinished} batch(es) left unacknowledged for redelivery")]
    Interrupted {
        /// Batches still in flight when it arrived.
        unfinished: usize,
    },
}

/// Whether repeating the failed call can succeed.
///
/// ```
/// use etl::Retry;
/// assert_ne!(Retry::Retryable, Retry::Permanent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A transient failure (connection lost, timeout, 5xx): retry with backoff.
    Retryable,
    /// Retrying cannot help (bad credentials, missing table, invalid request).
    Permanent,
}

/// A failure of a source, sink or dead-letter queue, naming the component and what it touched.
///
/// ```
/// use etl::{ConnectorError, Retry};
/// let e = ConnectorError::retryable("file sink ./lake", std::io::Error::other("disk full"));
/// assert!(e.is_retryable());
/// assert_eq!(e.to_string(), "file sink ./lake: disk full");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{component}: {error}")]
pub struct ConnectorError {
    /// The component and its target, e.g. `file sink ./lake` or `kafka source orders/3`.
    pub component: Cow<'static, str>,
    /// Whether a retry can help.
    pub retry: Retry,
    /// The underlying error.
    #[source]
    pub error: BoxError,
}

impl ConnectorError {
    /// A transient failure of `component`.
    pub fn retryable(component: impl Into<Cow<'static, str>>, error: impl Into<BoxError>) -> Self {
        Self { component: component.into(), retry: Retry::Retryable, error: error.into() }
    }

    /// A failure of `component` that a retry cannot fix.
    pub fn permanent(component: impl Into<Cow<'static, str>>, error: impl Into<BoxError>) -> Self {
        Self { component: component.into(), retry: Retry::Permanent, error: error.into() }
    }

    /// True when repeating the call can succeed.
    pub fn is_retryable(&self) -> bool {
        self.retry == Retry::Retryable
    }
}
