//! The runner's last word on signals: the pipelines stop gracefully on the first SIGINT or
//! SIGTERM and at once on the second; if the program has still not returned a moment after
//! the second, the runner ends the process.

use super::exit::EXIT_INTERRUPTED;
use std::time::Duration;

/// How long the program has after a second signal before the runner ends the process.
const GRACE_AFTER_SECOND_SIGNAL: Duration = Duration::from_secs(2);

/// Listens while alive; dropped when the program's body returns.
pub(super) struct SecondSignal(tokio::task::JoinHandle<()>);

impl Drop for SecondSignal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Start listening. On the second signal (the pipelines' own listeners see the same signals
/// and stop at once), wait [`GRACE_AFTER_SECOND_SIGNAL`] for the program to return, then
/// exit with [`EXIT_INTERRUPTED`], saying so.
pub(super) fn exit_on_second_signal() -> SecondSignal {
    let mut signals = crate::pipeline::Signals::register();
    SecondSignal(tokio::spawn(async move {
        signals.next().await;
        signals.next().await;
        tokio::time::sleep(GRACE_AFTER_SECOND_SIGNAL).await;
        tracing::error!(
            grace = ?GRACE_AFTER_SECOND_SIGNAL,
            "second signal: the program did not stop in time; exiting now (unacknowledged batches are redelivered)"
        );
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    }))
}
