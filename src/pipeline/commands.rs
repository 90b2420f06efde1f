//! The runner's `dead-letters` subcommands, on one pipeline's dead-letter queue: what
//! [`Run::run`](super::Run::run) does under [`Mode::DeadLetters`](super::Mode::DeadLetters).

use super::mode::DeadLetterCommand;
use super::{RunOptions, RunReport};
use crate::dead_letter::{DeadLetter, DeadLetters, FileDeadLetters};
use crate::error::Error;
use std::io::Write as _;
use std::sync::Arc;

/// The run's dead-letter queue: the one it was given, or its default file.
pub(super) fn queue(options: &RunOptions) -> Arc<dyn DeadLetters> {
    match &options.dead_letters {
        Some(queue) => Arc::clone(queue),
        None => Arc::new(FileDeadLetters::new(default_path(&options.name))),
    }
}

/// `dead-letters/<name>.jsonl`: where a run keeps its dead letters when it was given no queue.
pub(super) fn default_path(name: &str) -> String {
    format!("dead-letters/{name}.jsonl")
}

/// `list` and `purge` (the subcommand's output on stdout); `replay` is run by the caller.
pub(super) async fn dead_letters(command: &DeadLetterCommand, options: &RunOptions) -> crate::Result<RunReport> {
    let queue = queue(options);
    match command {
        DeadLetterCommand::List { json } => {
            let entries = queue.list().await.map_err(Error::DeadLetters)?;
            let mut out = std::io::stdout().lock();
            for entry in &entries {
                let line = if *json { entry.to_json_line() } else { summary_line(entry) };
                // A closed stdout (`| head`) ends the listing, not the program with a panic.
                if writeln!(out, "{line}").is_err() {
                    break;
                }
            }
            tracing::info!(pipeline = %options.name, queue = %queue.describe(), entries = entries.len(), "dead letters listed");
        }
        DeadLetterCommand::Purge { older_than } => {
            let purged = queue.purge(*older_than).await.map_err(Error::DeadLetters)?;
            let _ = writeln!(std::io::stdout().lock(), "{}: purged {purged} dead letter(s) older than {older_than:?}", options.name);
            tracing::info!(pipeline = %options.name, queue = %queue.describe(), purged, "dead letters purged");
        }
        // Run by `Run::run` (it needs the pipeline's operators and sink).
        DeadLetterCommand::Replay => {}
    }
    Ok(RunReport::default())
}

/// `id  last failure  step  kind  source position  error  payload`, one line.
fn summary_line(entry: &DeadLetter) -> String {
    let when = httpdate_like(entry.last_failed);
    let payload = String::from_utf8_lossy(&entry.payload);
    let payload: String = payload.chars().take(80).collect::<String>().escape_debug().to_string();
    format!(
        "{}\t{when}\t{}\t{}\t{} {:?}\t{}\t{payload}",
        entry.id,
        entry.step.as_deref().unwrap_or("-"),
        entry.kind,
        entry.source,
        entry.position,
        entry.error.escape_debug(),
    )
}

/// RFC 3339 in UTC, to the second.
fn httpdate_like(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
