//! What `Run::run` does in this process: run (the default), or, when the runner's subcommand
//! says so, only check, describe, or work on the dead letters. Every `run()` of the program
//! obeys it, so a binary with several pipelines checks (or describes) each of them.

use std::sync::OnceLock;
use std::time::Duration;

/// What every [`Run::run`](super::Run::run) of this process does.
///
/// The runner ([`etl::cli`](crate::cli), feature `cli`) sets it from its subcommand, once,
/// before the program's body runs; without a runner it is [`Mode::Run`].
///
/// ```
/// assert_eq!(etl::pipeline::mode(), &etl::pipeline::Mode::Run);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Mode {
    /// Run the pipeline.
    Run,
    /// Resolve every `${VAR}`, open the sink and the source, consume nothing, and return an
    /// empty report (or the start-up error).
    Check,
    /// Print the pipeline's graph to stdout and return an empty report.
    Graph(GraphFormat),
    /// Work on the pipeline's dead-letter queue, print the outcome, and return an empty report.
    DeadLetters(DeadLetterCommand),
}

/// How [`Mode::Graph`] prints.
///
/// ```
/// assert_ne!(etl::pipeline::GraphFormat::Mermaid, etl::pipeline::GraphFormat::Dot);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    /// A Mermaid flowchart.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// What [`Mode::DeadLetters`] does with a pipeline's dead-letter queue.
///
/// ```
/// let purge = etl::pipeline::DeadLetterCommand::Purge { older_than: std::time::Duration::from_secs(86_400) };
/// assert!(matches!(purge, etl::pipeline::DeadLetterCommand::Purge { .. }));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DeadLetterCommand {
    /// Print every entry (one JSON object a line when `json`, otherwise a summary line each).
    List {
        /// One JSON object a line.
        json: bool,
    },
    /// Run the pipeline's operators and sink on the entries the source can decode (see
    /// [`Source::decode_dead_letter`](crate::Source)), removing each one that was written.
    Replay,
    /// Remove the entries whose last failure is older than `older_than`.
    Purge {
        /// The age.
        older_than: Duration,
    },
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// This process's mode ([`Mode::Run`] unless a runner set another).
///
/// ```
/// assert_eq!(etl::pipeline::mode(), &etl::pipeline::Mode::Run);
/// ```
pub fn mode() -> &'static Mode {
    MODE.get().unwrap_or(&Mode::Run)
}

/// Set this process's mode, once, before any pipeline runs; returns false (and changes
/// nothing) when it was already set. The runner calls it.
///
/// ```
/// // A program that only ever runs its pipelines never calls it.
/// let _ = etl::pipeline::mode();
/// ```
pub fn set_mode(mode: Mode) -> bool {
    MODE.set(mode).is_ok()
}
