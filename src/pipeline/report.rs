//! The run report and the live counters behind it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a pipeline run did.
///
/// ```
/// let r = etl::RunReport { records_in: 10, records_out: 8, dead_lettered: 1, batches: 2, retries: 0, missed: 0, elapsed: std::time::Duration::from_secs(1) };
/// assert_eq!(r.filtered(), 1);
/// assert!(r.to_string().contains("10 in, 8 out"));
/// let lagging = etl::RunReport { missed: 5, ..r };
/// assert!(lagging.to_string().contains(", 5 missed (dropped before they were read)"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunReport {
    /// Messages read from the source (records and undecodable messages).
    pub records_in: u64,
    /// Records durably written by the sink.
    pub records_out: u64,
    /// Records written to the dead-letter queue.
    pub dead_lettered: u64,
    /// Batches delivered and acknowledged.
    pub batches: u64,
    /// Attempts that failed and were retried: sink and dead-letter writes, and the records'
    /// attempts in stages (`map(stage)`).
    pub retries: u64,
    /// Records the source will never deliver, by its explicit policy: a
    /// [`Broadcast`](crate::channel::Broadcast) subscriber under `Overflow::DropOldest` whose
    /// oldest entries were dropped before it read them (each record after a gap also says how
    /// many, in its metadata). Not in `records_in`.
    pub missed: u64,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
}

impl RunReport {
    /// Records that were neither written nor dead-lettered: filtered out (or fanned in).
    pub fn filtered(&self) -> u64 {
        self.records_in.saturating_sub(self.records_out + self.dead_lettered)
    }

    /// Source records per second over the run.
    pub fn records_per_second(&self) -> f64 {
        per_second(self.records_in, self.elapsed)
    }
}

fn per_second(n: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

impl std::fmt::Display for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} in, {} out, {} filtered, {} dead-lettered, {} batches, {} retries in {:.2?} ({:.0} records/s)",
            self.records_in,
            self.records_out,
            self.filtered(),
            self.dead_lettered,
            self.batches,
            self.retries,
            self.elapsed,
            self.records_per_second()
        )?;
        if self.missed > 0 {
            write!(f, ", {} missed (dropped before they were read)", self.missed)?;
        }
        Ok(())
    }
}

/// Live counters of a run, shared by its reading and writing halves.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) records_in: AtomicU64,
    pub(crate) records_out: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) batches_in: AtomicU64,
    pub(crate) batches: AtomicU64,
    /// Shared with the operators, which count their retries through
    /// [`count_retry`](crate::retry::count_retry).
    pub(crate) retries: Arc<AtomicU64>,
}

/// Apply operators (`apply`) so that the retries they count reach `counters`.
pub(crate) async fn counting_retries<F: std::future::Future>(counters: &Counters, apply: F) -> F::Output {
    crate::retry::counting_retries(&counters.retries, apply).await
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn report(&self, elapsed: Duration) -> RunReport {
        RunReport {
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            missed: 0,
            elapsed,
        }
    }

    /// Batches read but not yet acknowledged.
    pub(crate) fn unfinished(&self) -> usize {
        let read = self.batches_in.load(Ordering::Relaxed);
        let done = self.batches.load(Ordering::Relaxed);
        usize::try_from(read.saturating_sub(done)).unwrap_or(usize::MAX)
    }
}

/// At most this many distinct errors are kept per step; the rest are counted together.
const ERRORS_PER_STEP: usize = 20;

/// Dead-lettered records by step and error: what the guardrail and the summary at the end of
/// a run read.
#[derive(Debug, Default)]
pub(crate) struct DeadLetterSummary {
    /// By step index: its label, its total, its errors (message → count), in first-seen order.
    steps: std::collections::BTreeMap<usize, StepDeadLetters>,
}

#[derive(Debug, Default)]
struct StepDeadLetters {
    label: String,
    total: u64,
    errors: Vec<(String, u64)>,
    /// Dead-lettered with an error beyond the first [`ERRORS_PER_STEP`] distinct ones.
    other: u64,
}

impl DeadLetterSummary {
    /// Count one record dead-lettered at step `index` (labelled `label`) with `error`.
    pub(crate) fn add(&mut self, index: usize, label: &str, error: &str) {
        let step = self.steps.entry(index).or_default();
        if step.label.is_empty() {
            step.label = label.to_owned();
        }
        step.total += 1;
        if let Some((_, n)) = step.errors.iter_mut().find(|(e, _)| e == error) {
            *n += 1;
        } else if step.errors.len() < ERRORS_PER_STEP {
            step.errors.push((error.to_owned(), 1));
        } else {
            step.other += 1;
        }
    }

    /// The step where most records were dead-lettered, with its first error.
    fn worst(&self) -> Option<&StepDeadLetters> {
        self.steps.values().max_by_key(|s| s.total)
    }

    /// The guardrail: an error when more than the run's `max_dead_letter_ratio` of the records
    /// read so far were dead-lettered, once enough were read.
    pub(crate) fn guard(&self, report: &RunReport, options: &super::RunOptions) -> crate::Result<()> {
        if report.records_in == 0 || report.records_in < options.dead_letter_ratio_after {
            return Ok(());
        }
        let ratio = report.dead_lettered as f64 / report.records_in as f64;
        if ratio <= options.max_dead_letter_ratio {
            return Ok(());
        }
        let (step, first_error) = match self.worst() {
            Some(s) => (s.label.clone(), s.errors.first().map(|(e, _)| e.clone()).unwrap_or_default()),
            None => (String::from("?"), String::new()),
        };
        Err(crate::Error::DeadLetterRatio {
            records_in: report.records_in,
            dead_lettered: report.dead_lettered,
            max_ratio: options.max_dead_letter_ratio,
            step,
            first_error,
        })
    }

    /// Log what was dead-lettered, by step and error (nothing when nothing was).
    pub(crate) fn log(&self, report: &RunReport) {
        for step in self.steps.values() {
            tracing::warn!(
                step = %step.label,
                dead_lettered = step.total,
                of = report.records_in,
                "dead-letter summary: {} record(s) dead-lettered at this step",
                step.total
            );
            for (error, n) in &step.errors {
                tracing::warn!(step = %step.label, count = n, error = %error, "dead-letter summary");
            }
            if step.other > 0 {
                tracing::warn!(step = %step.label, count = step.other, "dead-letter summary: other errors");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(records_in: u64, dead_lettered: u64) -> RunReport {
        RunReport { records_in, dead_lettered, ..RunReport::default() }
    }

    #[test]
    fn the_guard_names_the_step_with_most_dead_letters_and_its_first_error() {
        let mut s = DeadLetterSummary::default();
        s.add(0, "file in.jsonl", "expected value");
        for i in 0..150 {
            s.add(2, "rename(amount_cnts -> amount)", &format!("no field `amount_cnts` ({})", i % 2));
        }
        let options = crate::pipeline::RunOptions::default();
        assert!(s.guard(&report(99, 99), &options).is_ok(), "too few records to judge");
        assert!(s.guard(&report(400, 151), &options).is_ok(), "under half");
        let err = s.guard(&report(200, 151), &options).unwrap_err().to_string();
        assert!(err.contains("151 of 200 records dead-lettered"), "{err}");
        assert!(err.contains("at step rename(amount_cnts -> amount)"), "{err}");
        assert!(err.contains("first error: no field `amount_cnts` (0)"), "{err}");
    }

    #[test]
    fn distinct_errors_are_capped_per_step() {
        let mut s = DeadLetterSummary::default();
        for i in 0..(ERRORS_PER_STEP + 5) {
            s.add(1, "step 1", &i.to_string());
        }
        let step = &s.steps[&1];
        assert_eq!((step.total, step.errors.len(), step.other), ((ERRORS_PER_STEP + 5) as u64, ERRORS_PER_STEP, 5));
    }
}
