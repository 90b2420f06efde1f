//! The run's metrics, through the [`metrics`] facade: counters and gauges every run updates,
//! exported (as Prometheus text) only when a recorder is installed — the runner installs one
//! for `--metrics-addr`; without one each update is a no-op.
//!
//! The run-wide counters are updated at the same places as the run report's, so that at the
//! end of a run they equal it.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `etl_records_in_total` | counter | `pipeline` |
//! | `etl_records_out_total` | counter | `pipeline` |
//! | `etl_dead_lettered_total` | counter | `pipeline`, `step` |
//! | `etl_retries_total` | counter | `pipeline` |
//! | `etl_batches_total` | counter | `pipeline` |
//! | `etl_batches_in_flight` | gauge | `pipeline` |
//! | `etl_batch_write_seconds` | histogram | `pipeline` |
//! | `etl_source_lag` | gauge (records) | `pipeline` (set by sources that know it) |
//! | `etl_step_records_in_total`, `etl_step_records_out_total` | counter | `pipeline`, `step` |

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use std::sync::Arc;

/// The handles of one run's metrics.
#[derive(Clone)]
pub(crate) struct RunMetrics {
    pub(crate) pipeline: Arc<str>,
    pub(crate) records_in: Counter,
    pub(crate) records_out: Counter,
    pub(crate) retries: Counter,
    pub(crate) batches: Counter,
    pub(crate) in_flight: Gauge,
    pub(crate) write_seconds: Histogram,
    pub(crate) lag: Gauge,
    /// The label of each step, by index (0 is the source).
    labels: Arc<[String]>,
}

impl RunMetrics {
    /// The handles of the run `pipeline` whose steps are labelled `labels`.
    pub(crate) fn new(pipeline: &str, labels: Vec<String>) -> RunMetrics {
        let p = pipeline.to_owned();
        RunMetrics {
            pipeline: Arc::from(pipeline),
            records_in: counter!("etl_records_in_total", "pipeline" => p.clone()),
            records_out: counter!("etl_records_out_total", "pipeline" => p.clone()),
            retries: counter!("etl_retries_total", "pipeline" => p.clone()),
            batches: counter!("etl_batches_total", "pipeline" => p.clone()),
            in_flight: gauge!("etl_batches_in_flight", "pipeline" => p.clone()),
            write_seconds: histogram!("etl_batch_write_seconds", "pipeline" => p.clone()),
            lag: gauge!("etl_source_lag", "pipeline" => p),
            labels: labels.into(),
        }
    }

    /// The label of step `index` (`step N` past the known ones).
    pub(crate) fn label(&self, index: usize) -> String {
        self.labels.get(index).cloned().unwrap_or_else(|| format!("step {index}"))
    }

    /// The dead-letter counter of step `index`.
    pub(crate) fn dead_lettered(&self, index: usize) -> Counter {
        counter!("etl_dead_lettered_total", "pipeline" => self.pipeline.to_string(), "step" => self.label(index))
    }

    /// The in and out counters of step `index`.
    pub(crate) fn step(&self, index: usize) -> (Counter, Counter) {
        let (p, s) = (self.pipeline.to_string(), self.label(index));
        (
            counter!("etl_step_records_in_total", "pipeline" => p.clone(), "step" => s.clone()),
            counter!("etl_step_records_out_total", "pipeline" => p, "step" => s),
        )
    }
}

tokio::task_local! {
    /// The metrics of the run applying its operators.
    static RUN: RunMetrics;
}

/// Run `work` (a run applying its operators) with `metrics` as its steps' metrics.
pub(crate) async fn with_run<F: std::future::Future>(metrics: &RunMetrics, work: F) -> F::Output {
    RUN.scope(metrics.clone(), work).await
}

/// The in and out counters of step `index` of the run applying this operator (none outside a
/// run, as when a test applies an operator by hand).
pub(crate) fn step_counters(index: usize) -> Option<(Counter, Counter)> {
    RUN.try_with(|run| run.step(index)).ok()
}
