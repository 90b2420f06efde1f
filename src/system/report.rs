//! What a [`Systems`](super::Systems) run did, per system.

use std::time::Duration;

/// How a system's run ended.
///
/// ```
/// use etl::system::SystemOutcome;
/// assert_eq!(SystemOutcome::Stopped.to_string(), "stopped");
/// assert!(!SystemOutcome::SetupFailed("no database".into()).is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SystemOutcome {
    /// It said it was done ([`System::finished`](super::System::finished)).
    Finished,
    /// Stopped by a signal or the cancellation token, between steps or after its step in
    /// flight finished.
    Stopped,
    /// Its setup failed (the error): it never stepped.
    SetupFailed(String),
    /// A step panicked (the message): the system stopped, the others went on.
    Panicked(String),
    /// Its step was still running when the shutdown timeout passed or a second signal came:
    /// dropped unfinished.
    Abandoned,
}

impl SystemOutcome {
    /// Whether the system ended as asked (finished or stopped).
    ///
    /// ```
    /// use etl::system::SystemOutcome;
    /// assert!(SystemOutcome::Finished.is_ok() && SystemOutcome::Stopped.is_ok());
    /// assert!(!SystemOutcome::Abandoned.is_ok());
    /// ```
    pub fn is_ok(&self) -> bool {
        matches!(self, SystemOutcome::Finished | SystemOutcome::Stopped)
    }
}

impl std::fmt::Display for SystemOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SystemOutcome::Finished => f.write_str("finished"),
            SystemOutcome::Stopped => f.write_str("stopped"),
            SystemOutcome::SetupFailed(e) => write!(f, "setup failed: {e}"),
            SystemOutcome::Panicked(e) => write!(f, "panicked: {e}"),
            SystemOutcome::Abandoned => f.write_str("abandoned mid-step at shutdown"),
        }
    }
}

/// What one system did.
///
/// ```
/// use etl::system::{SystemOutcome, SystemReport};
/// let r = SystemReport { name: "worker-1".into(), steps: 10, failures: 2, last_error: Some("timeout".into()), outcome: SystemOutcome::Stopped };
/// assert_eq!(r.to_string(), "worker-1: stopped after 10 steps, 2 failed (last: timeout)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemReport {
    /// The system's name.
    pub name: String,
    /// Steps run (failed ones included).
    pub steps: u64,
    /// Steps that returned an error.
    pub failures: u64,
    /// The last step error, if any.
    pub last_error: Option<String>,
    /// How it ended.
    pub outcome: SystemOutcome,
}

impl std::fmt::Display for SystemReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} after {} steps, {} failed", self.name, self.outcome, self.steps, self.failures)?;
        if let Some(e) = &self.last_error {
            write!(f, " (last: {e})")?;
        }
        Ok(())
    }
}

/// What a [`Systems`](super::Systems) run did: one [`SystemReport`] per system, in the order
/// they were added.
///
/// ```
/// let report = etl::system::SystemsReport::default();
/// assert!(report.is_ok());
/// assert!(report.get("worker").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemsReport {
    /// Each system's report.
    pub systems: Vec<SystemReport>,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
}

impl SystemsReport {
    /// The report of the (first) system called `name`.
    ///
    /// ```
    /// use etl::system::{SystemOutcome, SystemReport, SystemsReport};
    /// let worker = SystemReport { name: "worker".into(), steps: 3, failures: 0, last_error: None, outcome: SystemOutcome::Stopped };
    /// let report = SystemsReport { systems: vec![worker], elapsed: Default::default() };
    /// assert_eq!(report.get("worker").map(|w| w.steps), Some(3));
    /// ```
    pub fn get(&self, name: &str) -> Option<&SystemReport> {
        self.systems.iter().find(|s| s.name == name)
    }

    /// Whether every system ended as asked (finished or stopped; failed steps allowed).
    ///
    /// ```
    /// use etl::system::{SystemOutcome, SystemReport, SystemsReport};
    /// let broken = SystemReport { name: "db".into(), steps: 0, failures: 0, last_error: None, outcome: SystemOutcome::SetupFailed("refused".into()) };
    /// assert!(!SystemsReport { systems: vec![broken], elapsed: Default::default() }.is_ok());
    /// ```
    pub fn is_ok(&self) -> bool {
        self.systems.iter().all(|s| s.outcome.is_ok())
    }

    /// Steps that failed, over every system.
    ///
    /// ```
    /// use etl::system::{SystemOutcome, SystemReport, SystemsReport};
    /// let flaky = SystemReport { name: "api".into(), steps: 9, failures: 2, last_error: Some("503".into()), outcome: SystemOutcome::Stopped };
    /// assert_eq!(SystemsReport { systems: vec![flaky.clone(), flaky], elapsed: Default::default() }.failures(), 4);
    /// ```
    pub fn failures(&self) -> u64 {
        self.systems.iter().map(|s| s.failures).sum()
    }
}

impl std::fmt::Display for SystemsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} systems in {:.2?}", self.systems.len(), self.elapsed)?;
        for s in &self.systems {
            write!(f, "\n  {s}")?;
        }
        Ok(())
    }
}
