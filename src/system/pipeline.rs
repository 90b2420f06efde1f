//! A pipeline as a system: [`Run::into_system`] and [`PipelineSystem`].

use super::System;
use crate::operator::Operator;
use crate::pipeline::Run;
use crate::sink::Sink;
use crate::source::Source;
use serde::Serialize;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// A pipeline run as a [`System`]: its first step runs the pipeline once, to completion (its
/// source ended, or [`Systems`](super::Systems) stopped it: the pipeline then stops gracefully,
/// flushing and acknowledging the batch in hand); then the system is
/// [finished](System::finished). A pipeline that fails is that step's error, in the system's
/// report; it is not run again (a run is consumed: build a new one to retry). A pipeline is
/// not a ticking thing: its [`tick_rate`](System::tick_rate) is zero (the first step starts at
/// once).
///
/// The run's own signal handling is turned off and its cancellation token replaced by the
/// one of `Systems`: stop the pipeline by stopping the systems.
///
/// ```
/// use etl::prelude::*;
/// use etl::system::Systems;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let out = etl::sink::collect();
/// let pipeline = Pipeline::from(etl::source::iter(1..=3)).map(|n: i64| n * 2).to(out.sink()).name("doubler");
/// let report = Systems::new().add(pipeline.into_system()).handle_signals(false).run().await;
/// assert_eq!(out.records(), [2, 4, 6]);
/// assert_eq!(report.get("doubler").map(|s| s.steps), Some(1));
/// assert!(report.is_ok());
/// # });
/// ```
pub struct PipelineSystem<S, O, K> {
    name: String,
    run: Option<Run<S, O, K>>,
}

impl<S, O, K> std::fmt::Debug for PipelineSystem<S, O, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineSystem").field("name", &self.name).field("ran", &self.run.is_none()).finish()
    }
}

impl<S, O, K> Run<S, O, K>
where
    S: Source,
    O: Operator<S::Item>,
    O::Out: Serialize,
    K: Sink<O::Out>,
{
    /// This pipeline as a [`System`], named after the run (see [`PipelineSystem`]).
    ///
    /// ```
    /// use etl::system::System;
    /// let system = etl::Pipeline::from(etl::source::iter(vec![1i64])).to(etl::sink::blackhole()).name("p").into_system();
    /// assert_eq!(system.name(), "p");
    /// ```
    pub fn into_system(self) -> PipelineSystem<S, O, K> {
        let name = self.to_graph().name;
        PipelineSystem { name, run: Some(self.handle_signals(false)) }
    }
}

impl<S, O, K> System for PipelineSystem<S, O, K>
where
    S: Source,
    O: Operator<S::Item> + Send + 'static,
    O::Out: Serialize + Sync,
    K: Sink<O::Out> + Send + Sync + 'static,
{
    fn name(&self) -> String {
        self.name.clone()
    }

    fn tick_rate(&self) -> Duration {
        Duration::ZERO
    }

    fn shutdown_on(&mut self, shutdown: CancellationToken) {
        self.run = self.run.take().map(|run| run.cancel_on(shutdown));
    }

    async fn step(&mut self) -> crate::Result<()> {
        let Some(run) = self.run.take() else { return Ok(()) };
        let report = run.run().await?;
        info!(pipeline = %self.name, %report, "pipeline finished");
        Ok(())
    }

    fn finished(&self) -> bool {
        self.run.is_none()
    }
}
