//! The reconnect policy of the streaming sources (`sse`, `websocket`): pure state, no clock and
//! no I/O.
//!
//! [`Reconnect`] counts **consecutive** failures (a refused connection, a 5xx, a stream that
//! ended or broke) and decides, after each one, whether to try again and after what delay. The
//! count resets when a connection proves healthy: it delivered an event, or it stayed up for at
//! least [`ReconnectPolicy::stable_after`]; reconnecting after such a connection ends is not
//! counted as a failure. Delays grow exponentially with jitter (backon's
//! [`ExponentialBuilder`]) from a base that is `reconnect_delay`, or the server's `retry:` value
//! once it sent one (SSE's `retry:`; the WebSocket source has none).

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::time::Duration;

/// The knobs of [`Reconnect`], taken from the source's options.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReconnectPolicy {
    /// Reconnect at all (`reconnect`).
    pub enabled: bool,
    /// First delay, until the server sends `retry:` (`reconnect_delay`).
    pub initial_delay: Duration,
    /// Longest delay before jitter.
    pub max_delay: Duration,
    /// Consecutive failures tolerated; the next one gives up (`max_reconnects`).
    pub max_reconnects: u32,
    /// A connection that stayed up this long counts as a success even without events.
    pub stable_after: Duration,
    /// Randomise delays (tests turn it off to check exact values).
    pub jitter: bool,
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Wait `delay`, then make reconnect attempt number `attempt` (1-based, consecutive).
    Retry {
        /// How long to wait.
        delay: Duration,
        /// The consecutive failure count so far.
        attempt: u32,
    },
    /// Stop: reconnecting is off, or `failures` consecutive failures exceeded `max_reconnects`.
    GiveUp {
        /// The consecutive failure count.
        failures: u32,
    },
}

/// Consecutive-failure count and backoff state of one streaming source.
#[derive(Debug)]
pub(crate) struct Reconnect {
    policy: ReconnectPolicy,
    failures: u32,
    server_retry: Option<Duration>,
    delays: ExponentialBackoff,
}

impl Reconnect {
    pub(crate) fn new(policy: ReconnectPolicy) -> Reconnect {
        let delays = backoff(&policy, None);
        Reconnect { policy, failures: 0, server_retry: None, delays }
    }

    /// Consecutive failures since the last healthy connection.
    #[cfg(test)]
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// The base delay in force: the server's `retry:` if it sent one, else `reconnect_delay`.
    #[cfg(test)]
    pub(crate) fn base_delay(&self) -> Duration {
        self.server_retry.unwrap_or(self.policy.initial_delay)
    }

    /// The server sent `retry: <ms>`: it becomes the base delay (the backoff restarts from it).
    #[cfg_attr(not(feature = "sse"), allow(dead_code))]
    pub(crate) fn server_retry(&mut self, delay: Duration) {
        if self.server_retry != Some(delay) {
            self.server_retry = Some(delay);
            self.delays = backoff(&self.policy, self.server_retry);
        }
    }

    /// The connection delivered an event: it is healthy; the failure count and backoff reset.
    /// (Reconnecting when it ends then starts from the base delay and is not a failure.)
    pub(crate) fn succeeded(&mut self) {
        if self.failures > 0 {
            self.failures = 0;
            self.delays = backoff(&self.policy, self.server_retry);
        }
    }

    /// An open connection ended or broke after `uptime`. If it was healthy (it delivered an
    /// event, or stayed up at least `stable_after`: a quiet stream closed by a proxy) the count
    /// resets and reconnecting is not a failure; otherwise it counts as one, like [`failed`].
    ///
    /// [`failed`]: Reconnect::failed
    pub(crate) fn ended(&mut self, delivered: bool, uptime: Duration) -> Next {
        if !delivered && uptime < self.policy.stable_after {
            return self.failed();
        }
        self.failures = 0;
        self.delays = backoff(&self.policy, self.server_retry);
        if !self.policy.enabled {
            return Next::GiveUp { failures: 0 };
        }
        let delay = self.delays.next().unwrap_or(self.policy.max_delay);
        Next::Retry { delay, attempt: 0 }
    }

    /// A connection attempt failed or a connection ended: count it and choose what follows.
    pub(crate) fn failed(&mut self) -> Next {
        self.failures = self.failures.saturating_add(1);
        if !self.policy.enabled || self.failures > self.policy.max_reconnects {
            return Next::GiveUp { failures: self.failures };
        }
        // The backoff is built without a limit on the number of delays; the fallback only
        // guards against an exhausted iterator.
        let delay = self.delays.next().unwrap_or(self.policy.max_delay);
        Next::Retry { delay, attempt: self.failures }
    }
}

fn backoff(policy: &ReconnectPolicy, server_retry: Option<Duration>) -> ExponentialBackoff {
    let base = server_retry.unwrap_or(policy.initial_delay);
    let builder =
        ExponentialBuilder::new().with_min_delay(base).with_max_delay(policy.max_delay.max(base)).with_factor(2.0).without_max_times();
    let builder = if policy.jitter { builder.with_jitter() } else { builder };
    builder.build()
}

/// After a failure, `next` per the policy: wait its delay (`Ok(true)`: try again), or stop at
/// shutdown (`Ok(false)`), or give up with a retryable error naming the last failure. `kind`
/// (`sse`, `websocket`) and `label` (the URL) go into the logs, `component` into the error.
pub(crate) async fn pause(
    next: Next,
    error: &str,
    reconnect_enabled: bool,
    kind: &str,
    label: &str,
    component: String,
    shutdown: &tokio_util::sync::CancellationToken,
) -> crate::Result<bool> {
    match next {
        Next::GiveUp { failures } => {
            let why = if reconnect_enabled {
                format!("giving up after {failures} consecutive failed connection(s) (max_reconnects); last error: {error}")
            } else {
                format!("{error} (reconnect is off)")
            };
            tracing::error!(url = %label, failures, error, "{kind} source gives up");
            Err(crate::Error::Source(crate::ConnectorError::retryable(component, why)))
        }
        Next::Retry { delay, attempt } => {
            tracing::warn!(error, url = %label, attempt, ?delay, "reconnecting");
            tokio::select! {
                () = tokio::time::sleep(delay) => Ok(true),
                () = shutdown.cancelled() => Ok(false),
            }
        }
    }
}
