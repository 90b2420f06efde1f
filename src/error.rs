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
#[derive(thiserror::Error)]
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
    /// A pipeline could not start: its sink or source failed to open (nothing was consumed).
    #[error("pipeline `{pipeline}` could not start: {error}")]
    Start {
        /// The pipeline's name.
        pipeline: String,
        /// Why: the sink's or the source's error, or a configuration error.
        #[source]
        error: Box<Error>,
    },
    /// The share of dead-lettered records passed the run's `max_dead_letter_ratio`: records fail
    /// systematically (a misspelled field, a schema that changed). The run stopped; what was
    /// dead-lettered is kept.
    #[error(
        "{dead_lettered} of {records_in} records dead-lettered (more than {max_ratio} of them), most at step {step}; first error: {first_error}; the run stopped (dead letters are kept; fix the cause, or raise `max_dead_letter_ratio`)"
    )]
    DeadLetterRatio {
        /// Records read so far.
        records_in: u64,
        /// Records dead-lettered so far.
        dead_lettered: u64,
        /// The ratio that was passed.
        max_ratio: f64,
        /// The step where most records failed (`rename(amount_cents -> amount)`, `decode`, ...).
        step: String,
        /// The first error seen at that step.
        first_error: String,
    },
    /// A second signal arrived during the graceful stop: the run stopped at once; unfinished
    /// batches were left unacknowledged (their sources redeliver them).
    #[error("stopped at once by a second signal; {unfinished} batch(es) left unacknowledged for redelivery")]
    Interrupted {
        /// Batches still in flight when it arrived.
        unfinished: usize,
    },
    /// A [job](crate::job) failed: a stage gave up, or its checkpoints could not be used.
    /// `error` is the job's [`JobError`](crate::job::JobError) (downcast it to inspect it);
    /// boxed as any error so that this module does not import the job's (which imports it).
    #[error("{error}")]
    Job {
        /// The job's error.
        #[source]
        error: BoxError,
        /// Whether running the job again can help.
        retry: Retry,
    },
    /// A [`System`](crate::system::System)'s own failure (its `setup` or `step`): see
    /// [`Error::system`].
    #[error("{0}")]
    System(#[source] BoxError),
}

impl Error {
    /// A system's failure, from any error or message, for a
    /// [`System`](crate::system::System)'s `setup` or `step`.
    ///
    /// ```
    /// let e = etl::Error::system("the API answered 503");
    /// assert_eq!(e.to_string(), "the API answered 503");
    /// let io = etl::Error::system(std::io::Error::other("disk full"));
    /// assert!(matches!(io, etl::Error::System(_)));
    /// ```
    pub fn system(error: impl Into<BoxError>) -> Error {
        Error::System(error.into())
    }

    /// True when the error happened before anything was consumed: a configuration value that
    /// cannot be resolved, or a source or sink that could not open.
    ///
    /// ```
    /// let e = etl::Error::from(etl::ConfigError::UnsetVariable { name: "X".into() });
    /// assert!(e.is_startup());
    /// ```
    pub fn is_startup(&self) -> bool {
        matches!(self, Error::Config(_) | Error::Start { .. })
    }

    /// Whether a retry of the whole run can help, when it is known: the innermost connector
    /// error's [`Retry`].
    ///
    /// ```
    /// use etl::{ConnectorError, Error, Retry};
    /// let e = Error::Sink(ConnectorError::retryable("file sink ./lake", "disk full"));
    /// assert_eq!(e.retry(), Some(Retry::Retryable));
    /// ```
    pub fn retry(&self) -> Option<Retry> {
        match self {
            Error::Source(c) | Error::Sink(c) | Error::DeadLetters(c) => Some(c.retry),
            Error::Start { error, .. } => error.retry(),
            Error::Config(_) => Some(Retry::Permanent),
            Error::Job { retry, .. } => Some(*retry),
            _ => None,
        }
    }
}

/// The error and its causes, one a line, without repeating what a cause's message already
/// said, then whether a retry could help: what a `main() -> etl::Result<()>` prints.
///
/// ```
/// use etl::{ConnectorError, Error};
/// let e = Error::Sink(ConnectorError::permanent("postgres sink orders", std::io::Error::other("password authentication failed")));
/// let printed = format!("{e:?}");
/// assert!(printed.starts_with("sink failed: postgres sink orders: password authentication failed"), "{printed}");
/// assert!(printed.contains("retrying will not help"), "{printed}");
/// ```
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if f.alternate() {
            return f.write_str(&self.to_string());
        }
        write_chain(f, self)?;
        match self.retry() {
            Some(Retry::Retryable) => f.write_str("\n  (a transient failure: retrying later can help)"),
            Some(Retry::Permanent) => f.write_str("\n  (retrying will not help: fix the cause first)"),
            None => Ok(()),
        }
    }
}

/// `error`'s message, then each cause whose message the one before did not already include.
pub(crate) fn write_chain(f: &mut impl std::fmt::Write, error: &dyn std::error::Error) -> std::fmt::Result {
    let mut said = error.to_string();
    f.write_str(&said)?;
    let mut cause = error.source();
    while let Some(c) = cause {
        let message = c.to_string();
        if !said.contains(&message) {
            write!(f, "\n  caused by: {message}")?;
            said = message;
        }
        cause = c.source();
    }
    Ok(())
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
#[derive(thiserror::Error)]
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

/// The message and its causes, then whether a retry can help (`{:#?}`: the fields).
///
/// ```
/// let e = etl::ConnectorError::retryable("sqs source q", "timed out");
/// assert_eq!(format!("{e:?}"), "sqs source q: timed out (retryable)");
/// ```
impl std::fmt::Debug for ConnectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if f.alternate() {
            return f
                .debug_struct("ConnectorError")
                .field("component", &self.component)
                .field("retry", &self.retry)
                .field("error", &self.error)
                .finish();
        }
        write_chain(f, self)?;
        f.write_str(if self.is_retryable() { " (retryable)" } else { " (permanent)" })
    }
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
