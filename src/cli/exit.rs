//! Exit codes, and the program's error printed readably at the end.

use super::LogFormat;
use crate::error::Error;

/// An exit code of a pipeline binary.
pub type ExitCode = u8;
/// The program finished (or `check` passed).
pub const EXIT_OK: ExitCode = 0;
/// A pipeline failed while running (or `check` failed).
pub const EXIT_FAILED: ExitCode = 1;
/// The command line is wrong (clap's own code).
pub const EXIT_USAGE: ExitCode = 2;
/// Configuration or start-up failed (an unset `${VAR}`, a source or sink that could not
/// open): nothing was consumed.
pub const EXIT_STARTUP: ExitCode = 3;
/// Stopped at once by a second SIGINT/SIGTERM (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: ExitCode = 130;

/// The exit code for the program's outcome (`checking`: under `check`, any error is 1).
///
/// ```
/// use etl::cli::{exit_code, EXIT_STARTUP, EXIT_INTERRUPTED};
/// let unset = etl::Error::from(etl::ConfigError::UnsetVariable { name: "X".into() });
/// assert_eq!(exit_code(Err(&unset), false), EXIT_STARTUP);
/// assert_eq!(exit_code(Err(&etl::Error::Interrupted { unfinished: 1 }), false), EXIT_INTERRUPTED);
/// assert_eq!(exit_code(Ok(()), false), 0);
/// ```
pub fn exit_code(outcome: Result<(), &Error>, checking: bool) -> ExitCode {
    match outcome {
        Ok(()) => EXIT_OK,
        Err(_) if checking => EXIT_FAILED,
        Err(Error::Interrupted { .. }) => EXIT_INTERRUPTED,
        Err(e) if e.is_startup() => EXIT_STARTUP,
        Err(_) => EXIT_FAILED,
    }
}

/// Why the program did not finish.
pub(super) enum Failed {
    /// The runner itself could not start (metrics address taken, ...).
    Startup(String),
    /// The program's body returned an error.
    Error(crate::BoxError),
}

/// Print the outcome and turn it into the process's exit code.
pub(super) fn finish(format: LogFormat, checking: bool, result: Result<(), Failed>) -> ExitCode {
    let code = match &result {
        Ok(()) => {
            if checking {
                tracing::info!("check passed");
            }
            EXIT_OK
        }
        Err(Failed::Startup(message)) => {
            print(format, message);
            EXIT_STARTUP
        }
        Err(Failed::Error(e)) => {
            let what = if checking { "check failed" } else { "error" };
            match e.downcast_ref::<Error>() {
                Some(e) => {
                    print(format, &format!("{what}: {e:?}"));
                    exit_code(Err(e), checking)
                }
                None => {
                    let mut chain = String::new();
                    let _ = crate::error::write_chain(&mut chain, e.as_ref());
                    print(format, &format!("{what}: {chain}"));
                    EXIT_FAILED
                }
            }
        }
    };
    code
}

/// The final error: on stderr as is for people, as a log event in JSON.
pub(super) fn print(format: LogFormat, message: &str) {
    match format {
        LogFormat::Json => tracing::error!(error = %message, "the program failed"),
        LogFormat::Auto | LogFormat::Human => eprintln!("{message}"),
    }
}
