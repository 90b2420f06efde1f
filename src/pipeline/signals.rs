//! Stopping a run on SIGINT / SIGTERM: the first signal asks for a graceful stop (flush the
//! batch in hand, commit, acknowledge), a second one stops at once.

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Listens for SIGINT and SIGTERM while alive: the first cancels `graceful`, the second
/// `forced`. The listeners are registered when it is installed, before anything is read, so a
/// signal that arrives early is not missed (nor does it kill the process).
pub(crate) struct SignalGuard(tokio::task::JoinHandle<()>);

impl SignalGuard {
    pub(crate) fn install(graceful: CancellationToken, forced: CancellationToken) -> SignalGuard {
        let mut signals = Signals::register();
        SignalGuard(tokio::spawn(async move {
            signals.next().await;
            info!("signal received: stopping gracefully (a second signal stops at once)");
            graceful.cancel();
            signals.next().await;
            forced.cancel();
        }))
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The process's SIGINT and SIGTERM (Ctrl-C elsewhere), as one source of events.
pub(crate) struct Signals {
    #[cfg(unix)]
    listening: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    #[cfg(unix)]
    pub(crate) fn register() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(int), Ok(term)) => Signals { listening: Some((int, term)) },
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "cannot listen for signals; stop the pipeline with its cancellation token");
                Signals { listening: None }
            }
        }
    }

    #[cfg(not(unix))]
    pub(crate) fn register() -> Signals {
        Signals {}
    }

    /// The next signal (never, when none can be listened for).
    #[cfg(unix)]
    pub(crate) async fn next(&mut self) {
        match &mut self.listening {
            Some((int, term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            None => std::future::pending().await,
        }
    }

    #[cfg(not(unix))]
    pub(crate) async fn next(&mut self) {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for Ctrl-C; stop the pipeline with its cancellation token");
            std::future::pending::<()>().await;
        }
    }
}
