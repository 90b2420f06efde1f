//! Logging for pipeline binaries: a `tracing` subscriber on stderr, filtered by `--log-level`
//! or `RUST_LOG`, human or JSON, colours only on a terminal.

use super::RunnerOptions;
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
///
/// ```
/// assert_eq!(etl::cli::LogFormat::default(), etl::cli::LogFormat::Auto);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human (the default; may choose by environment later).
    #[default]
    Auto,
    /// One human-readable line an event; colours when stderr is a terminal and `NO_COLOR` is unset.
    Human,
    /// One JSON object a line.
    Json,
}

/// Install the subscriber; returns the format chosen. A subscriber already installed (a test
/// harness, the program's own) is kept.
pub(super) fn init(options: &RunnerOptions) -> LogFormat {
    let filter = match &options.log_level {
        Some(level) => EnvFilter::try_new(level),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    };
    let filter = filter.unwrap_or_else(|e| {
        // Not fatal: the program runs with the default level, and says so.
        eprintln!("warning: bad log filter ({e}); logging at info");
        EnvFilter::new("info")
    });
    let format = match options.log_format {
        LogFormat::Auto | LogFormat::Human => LogFormat::Human,
        LogFormat::Json => LogFormat::Json,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        _ => builder.with_ansi(colours()).try_init(),
    };
    // An error means another subscriber is installed: it stays.
    drop(installed);
    format
}

/// Colours only on a terminal, and never when `NO_COLOR` is set (https://no-color.org).
fn colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
