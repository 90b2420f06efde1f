//! The runner for pipeline binaries (feature `cli`, on by default): `#[etl::main]` on the
//! program's `async fn main`, and every binary gets a command line, logging, readable errors
//! with documented exit codes, and a Prometheus endpoint.
//!
//! ```no_run
//! use etl::prelude::*;
//!
//! /// The program's own flags, beside the runner's (any `clap::Args`).
//! #[derive(clap::Args)]
//! struct Args {
//!     /// Where to read from.
//!     #[arg(long, default_value = "orders.jsonl")]
//!     input: String,
//! }
//!
//! #[etl::main]
//! async fn main(args: Args) -> etl::Result<()> {
//!     pipeline! { file(path = args.input) | stdout() }.run().await?;
//!     Ok(())
//! }
//! ```
//!
//! # The command line
//!
//! ```text
//! orders [OPTIONS] [PROGRAM FLAGS]            run the pipelines (the default)
//! orders run [PROGRAM FLAGS]                  the same
//! orders check [PROGRAM FLAGS]                resolve every ${VAR}, open every source and sink,
//!                                             consume nothing; exit 0, or 1 with the reasons
//! orders graph [--format mermaid|dot]         print each pipeline's graph
//! orders dead-letters list [--json]           print each pipeline's dead letters
//! orders dead-letters replay                  run the dead letters through the pipeline again
//! orders dead-letters purge --older-than 7d   remove old dead letters
//!
//! OPTIONS (anywhere on the line):
//!   --log-level LEVEL        error, warn, info (default), debug, trace, or a RUST_LOG filter;
//!                            without it RUST_LOG is read
//!   --log-format FORMAT      auto (default: human), human, json
//!   --metrics-addr ADDR      serve Prometheus metrics at http://ADDR/metrics
//! ```
//!
//! Under `check`, `graph` and `dead-letters`, the program's body runs as usual, but every
//! pipeline's [`run`](crate::pipeline::Run::run) only does what the subcommand says (see
//! [`Mode`](crate::pipeline::Mode)) and returns an empty report.
//!
//! # Exit codes
//!
//! | code | meaning |
//! |---|---|
//! | 0 | the program finished (or `check` passed) |
//! | 1 | a pipeline failed while running (or `check` failed) |
//! | 2 | the command line is wrong |
//! | 3 | configuration or start-up failed: an unset `${VAR}`, a source or sink that could not open; nothing was consumed |
//! | 130 | stopped at once by a second SIGINT/SIGTERM; unfinished batches are redelivered |

mod exit;
mod logging;
mod signals;

/// The command-line parser the runner uses, for the program's own flags: `use etl::cli::clap;` then
/// `#[derive(clap::Args)]`, without a dependency of your own.
pub use clap;
pub use exit::{exit_code, ExitCode, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_STARTUP, EXIT_USAGE};
pub use logging::LogFormat;

use crate::pipeline::{set_mode, DeadLetterCommand, GraphFormat, Mode};
use clap::{Args, FromArgMatches, Parser, Subcommand};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// The runner's own options, accepted anywhere on the command line.
///
/// ```
/// use clap::Parser;
/// #[derive(Parser)]
/// struct Line { #[command(flatten)] runner: etl::cli::RunnerOptions }
/// let line = Line::parse_from(["prog", "--log-format", "json"]);
/// assert_eq!(line.runner.log_format, etl::cli::LogFormat::Json);
/// ```
#[derive(Debug, Clone, Args)]
#[non_exhaustive]
pub struct RunnerOptions {
    /// Log level (error, warn, info, debug, trace) or a RUST_LOG-style filter; default: RUST_LOG, else info.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format: auto (human), human, json.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto, value_name = "FORMAT")]
    pub log_format: LogFormat,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9898).
    #[arg(long, global = true, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

/// No program flags: what `#[etl::main]` uses for an `async fn main()` without arguments.
///
/// ```
/// let _ = etl::cli::NoArgs {};
/// ```
#[derive(Debug, Clone, Args)]
pub struct NoArgs {}

/// The whole command line: the runner's options, a subcommand, and the program's flags `A`.
/// The program's flags come after the subcommand (`orders check --brokers ..`) or, without
/// one, straight after the program's name (`orders --brokers ..`, which runs).
///
/// ```
/// use clap::Parser;
/// let cli = etl::cli::Cli::<etl::cli::NoArgs>::parse_from(["orders", "graph", "--format", "dot"]);
/// assert_eq!(cli.mode(), etl::pipeline::Mode::Graph(etl::pipeline::GraphFormat::Dot));
/// ```
#[derive(Debug, Parser)]
#[command(
    about = "A pipeline program built with etl: `run` (the default), `check`, `graph`, `dead-letters`.",
    long_about = None,
    subcommand_negates_reqs = true
)]
pub struct Cli<A: Args> {
    /// The runner's options.
    #[command(flatten)]
    pub runner: RunnerOptions,
    #[command(subcommand)]
    command: Option<Command<A>>,
    /// The program's flags, when no subcommand is given.
    #[command(flatten)]
    args: A,
}

#[derive(Debug, Subcommand)]
enum Command<A: Args> {
    /// Run the pipelines (the default).
    Run {
        #[command(flatten)]
        args: A,
    },
    /// Resolve every ${VAR}, open every source and sink, consume nothing; exit 0, or 1 with the reasons.
    Check {
        #[command(flatten)]
        args: A,
    },
    /// Print each pipeline's graph: its steps, their arguments (secrets redacted) and the record type after each.
    Graph {
        /// mermaid or dot.
        #[arg(long, value_enum, default_value_t = GraphFormatArg::Mermaid)]
        format: GraphFormatArg,
        #[command(flatten)]
        args: A,
    },
    /// Work on each pipeline's dead-letter queue.
    #[command(subcommand)]
    DeadLetters(DeadLetterAction<A>),
}

#[derive(Debug, Subcommand)]
enum DeadLetterAction<A: Args> {
    /// Print every dead letter (tab-separated: id, last failure, step, kind, source and position, error, payload).
    List {
        /// One JSON object a line (payload in base64), as stored.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        args: A,
    },
    /// Run the dead letters through the pipeline again (its operators and sink); each one written is removed.
    Replay {
        #[command(flatten)]
        args: A,
    },
    /// Remove the dead letters whose last failure is older than a duration.
    Purge {
        /// e.g. 7d, 12h, 30min.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        older_than: Duration,
        #[command(flatten)]
        args: A,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum GraphFormatArg {
    Mermaid,
    Dot,
}

impl<A: Args + FromArgMatches> Cli<A> {
    /// Parse a command line (the first item is the program's name). The program's flags given
    /// before a subcommand are refused (they would be the subcommand's defaults otherwise):
    /// they follow it, `orders check --topic t`. The runner's options go anywhere.
    ///
    /// ```
    /// let cli = etl::cli::Cli::<etl::cli::NoArgs>::try_parse_line(["orders", "--log-level", "debug", "check"]).unwrap();
    /// assert_eq!(cli.mode(), etl::pipeline::Mode::Check);
    /// ```
    pub fn try_parse_line<I, T>(line: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::CommandFactory;
        let mut command = Self::command();
        let matches = command.try_get_matches_from_mut(line)?;
        if let Some((subcommand, _)) = matches.subcommand() {
            let flags = A::augment_args(clap::Command::new("flags"));
            let given = flags.get_arguments().find(|arg| {
                matches.try_contains_id(arg.get_id().as_str()).unwrap_or(false)
                    && matches.value_source(arg.get_id().as_str()) == Some(clap::parser::ValueSource::CommandLine)
            });
            if let Some(arg) = given {
                let name = arg.get_long().map_or_else(|| arg.get_id().to_string(), |l| format!("--{l}"));
                return Err(command.error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("`{name}` is the program's flag: give it after the subcommand (`{subcommand} {name} ..`)"),
                ));
            }
        }
        let mut matches = matches;
        Self::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut command))
    }
}

impl<A: Args> Cli<A> {
    /// What the pipelines of the program do under this command line.
    pub fn mode(&self) -> Mode {
        match &self.command {
            None | Some(Command::Run { .. }) => Mode::Run,
            Some(Command::Check { .. }) => Mode::Check,
            Some(Command::Graph { format, .. }) => Mode::Graph(match format {
                GraphFormatArg::Mermaid => GraphFormat::Mermaid,
                GraphFormatArg::Dot => GraphFormat::Dot,
            }),
            Some(Command::DeadLetters(action)) => Mode::DeadLetters(match action {
                DeadLetterAction::List { json, .. } => DeadLetterCommand::List { json: *json },
                DeadLetterAction::Replay { .. } => DeadLetterCommand::Replay,
                DeadLetterAction::Purge { older_than, .. } => DeadLetterCommand::Purge { older_than: *older_than },
            }),
        }
    }

    /// The program's flags, wherever they were given.
    pub fn into_args(self) -> A {
        match self.command {
            Some(
                Command::Run { args }
                | Command::Check { args }
                | Command::Graph { args, .. }
                | Command::DeadLetters(
                    DeadLetterAction::List { args, .. } | DeadLetterAction::Replay { args } | DeadLetterAction::Purge { args, .. },
                ),
            ) => args,
            None => self.args,
        }
    }
}

/// Run a pipeline program under the runner: parse the command line (`A` is the program's
/// own flags), set up logging (and metrics with `--metrics-addr`), run `body` on a
/// multi-threaded tokio runtime, print its error readably, and return the exit code. The body
/// returns an [`etl::Result`](crate::Result), or any error that converts into a
/// [`BoxError`](crate::BoxError) (an `etl::Error` inside is still classified for the exit code).
/// `#[etl::main]` writes this call for you.
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     etl::cli::main(|_: etl::cli::NoArgs| async {
///         etl::Pipeline::from(etl::source::iter(1..=3)).to(etl::sink::stdout()).run().await?;
///         Ok::<(), etl::Error>(())
///     })
/// }
/// ```
pub fn main<A, F, Fut, E>(body: F) -> std::process::ExitCode
where
    A: Args + FromArgMatches,
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<crate::BoxError>,
{
    let cli = Cli::<A>::try_parse_line(std::env::args_os()).unwrap_or_else(|e| e.exit());
    main_with(cli, body)
}

/// [`main`] with a command line already parsed (for tests, and programs that parse their own).
///
/// ```no_run
/// use clap::Parser;
/// let cli = etl::cli::Cli::<etl::cli::NoArgs>::parse_from(["prog", "check"]);
/// let code = etl::cli::main_with(cli, |_| async { Ok::<(), etl::Error>(()) });
/// ```
pub fn main_with<A, F, Fut, E>(cli: Cli<A>, body: F) -> std::process::ExitCode
where
    A: Args + FromArgMatches,
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<crate::BoxError>,
{
    std::process::ExitCode::from(run_with(cli, body))
}

/// [`main_with`], returning the exit code as a number (see the table above).
///
/// ```no_run
/// use clap::Parser;
/// let cli = etl::cli::Cli::<etl::cli::NoArgs>::parse_from(["prog"]);
/// assert_eq!(etl::cli::run_with(cli, |_| async { Ok::<(), etl::Error>(()) }), etl::cli::EXIT_OK);
/// ```
pub fn run_with<A, F, Fut, E>(cli: Cli<A>, body: F) -> ExitCode
where
    A: Args + FromArgMatches,
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<crate::BoxError>,
{
    let format = logging::init(&cli.runner);
    let mode = cli.mode();
    let checking = mode == Mode::Check;
    set_mode(mode);
    let metrics_addr = cli.runner.metrics_addr;
    let args = cli.into_args();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            exit::print(format, &format!("cannot start the async runtime: {e}"));
            return EXIT_STARTUP;
        }
    };
    let result = runtime.block_on(async move {
        if let Some(addr) = metrics_addr {
            let installed = metrics_exporter_prometheus::PrometheusBuilder::new().with_http_listener(addr).install();
            match installed {
                Ok(()) => tracing::info!(%addr, "metrics at http://{addr}/metrics"),
                Err(e) => {
                    return Err(exit::Failed::Startup(format!("cannot serve metrics at {addr}: {e}")));
                }
            }
        }
        let _forced = signals::exit_on_second_signal();
        body(args).await.map_err(|e| exit::Failed::Error(e.into()))
    });
    // Whatever the body left running (a metrics listener, a stuck task) does not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    exit::finish(format, checking, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Args, PartialEq)]
    struct Flags {
        #[arg(long, default_value = "orders")]
        topic: String,
    }

    fn parse(line: &[&str]) -> Result<Cli<Flags>, clap::Error> {
        Cli::<Flags>::try_parse_line(line)
    }

    #[test]
    fn no_subcommand_runs_with_the_programs_flags() {
        let cli = parse(&["orders", "--topic", "t1", "--log-level", "debug"]).unwrap();
        assert_eq!(cli.mode(), Mode::Run);
        assert_eq!(cli.runner.log_level.as_deref(), Some("debug"));
        assert_eq!(cli.into_args(), Flags { topic: "t1".into() });
    }

    #[test]
    fn the_programs_flags_follow_a_subcommand_and_the_runners_go_anywhere() {
        let cli = parse(&["orders", "check", "--topic", "t2", "--log-format", "json"]).unwrap();
        assert_eq!(cli.mode(), Mode::Check);
        assert_eq!(cli.runner.log_format, LogFormat::Json);
        assert_eq!(cli.into_args(), Flags { topic: "t2".into() });
        let cli = parse(&["orders", "--metrics-addr", "127.0.0.1:9898", "dead-letters", "purge", "--older-than", "7d"]).unwrap();
        assert_eq!(cli.mode(), Mode::DeadLetters(DeadLetterCommand::Purge { older_than: Duration::from_secs(7 * 86_400) }));
        assert_eq!(cli.runner.metrics_addr, Some("127.0.0.1:9898".parse().unwrap()));
        assert_eq!(cli.into_args(), Flags { topic: "orders".into() });
    }

    #[test]
    fn every_subcommand_has_its_mode() {
        assert_eq!(parse(&["p", "run"]).unwrap().mode(), Mode::Run);
        assert_eq!(parse(&["p", "graph"]).unwrap().mode(), Mode::Graph(GraphFormat::Mermaid));
        assert_eq!(parse(&["p", "graph", "--format", "dot"]).unwrap().mode(), Mode::Graph(GraphFormat::Dot));
        assert_eq!(parse(&["p", "dead-letters", "list"]).unwrap().mode(), Mode::DeadLetters(DeadLetterCommand::List { json: false }));
        assert_eq!(
            parse(&["p", "dead-letters", "list", "--json"]).unwrap().mode(),
            Mode::DeadLetters(DeadLetterCommand::List { json: true })
        );
        assert_eq!(parse(&["p", "dead-letters", "replay"]).unwrap().mode(), Mode::DeadLetters(DeadLetterCommand::Replay));
    }

    #[test]
    fn mistakes_are_usage_errors() {
        for line in [&["p", "--topic", "a", "check"][..], &["p", "chekc"], &["p", "dead-letters", "purge"], &["p", "--log-format", "xml"]] {
            let e = parse(line).unwrap_err();
            assert_eq!(e.exit_code(), i32::from(EXIT_USAGE), "{line:?}: {e}");
        }
    }
}
