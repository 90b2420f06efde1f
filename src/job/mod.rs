//! Jobs: stages run once, in order, on one input value, each stage's output checkpointed so
//! that a re-run with the same run id resumes after the last finished stage.
//!
//! `pipeline! { extract | transform | load }` (stages alone, no source or sink) builds a
//! [`Job`]; so does the builder, `Job::new(extract).stage(transform).stage(load)`. Each stage is
//! a [`#[stage]`](macro@crate::stage) `async fn` (or any function returning a future of a
//! `Result`) taking the previous stage's output by value; a stage that does not take it is a
//! compile error on that stage.
//!
//! * [`Job::run`]`(input, run_id)` runs every stage; each retries as its `#[stage(retries,
//!   backoff, factor, max_backoff, timeout)]` options say (exponential backoff with full jitter,
//!   a cap, a per-attempt timeout; [`stage::Error::permanent`](crate::stage::Error::permanent)
//!   errors are not retried), through the same code as `map` runs a stage per record.
//! * [`Job::checkpoints`]`(store)` adds a [`CheckpointStore`]: the run first claims its run id
//!   (a second run with the same id fails with [`CheckpointError::Busy`] before any stage), reads
//!   the checkpoint (a store that cannot be read is an error, never "no checkpoint"), and resumes
//!   after the stage it names (an unknown stage, or state that no longer deserialises into that
//!   stage's output, is an error naming it). After each stage its output is serialised with
//!   serde_json and written by compare-and-set on the checkpoint's revision (split into chunks
//!   when the store has a value limit); on success the checkpoint is deleted.
//! * [`Job::run_with_report`] also returns a [`JobReport`]: which stages ran (with their
//!   attempts), which were resumed from the checkpoint (skipped).
//!
//! A stage's side effects before its checkpoint are repeated if the process dies between them
//! and the checkpoint (at least once per stage); the stages before it are not run again.
//!
//! ```
//! use etl::prelude::*;
//! use etl::checkpoint::MemoryStore;
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct Request { source: String }
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct Raw { records: Vec<String> }
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct Clean { transformed: Vec<String> }
//!
//! #[stage(retries = 3, backoff = 10ms)]
//! async fn extract(req: Request) -> Result<Raw, etl::stage::Error> {
//!     Ok(Raw { records: vec![req.source, "b".into()] })
//! }
//! #[stage(retries = 3)]
//! async fn transform(raw: Raw) -> Result<Clean, etl::stage::Error> {
//!     Ok(Clean { transformed: raw.records.iter().map(|r| r.to_uppercase()).collect() })
//! }
//! #[stage]
//! async fn load(clean: Clean) -> Result<usize, etl::stage::Error> {
//!     Ok(clean.transformed.len())
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let job = pipeline! { extract | transform | load };
//! let store = MemoryStore::new();
//! let loaded = job.checkpoints(store.clone()).run(Request { source: "a".into() }, "batch-2025-03-18").await?;
//! assert_eq!(loaded, 2);
//! assert!(store.keys().is_empty(), "the checkpoint is cleared on success");
//! # Ok::<(), etl::job::JobError>(()) }).unwrap();
//! ```

mod state;
mod step;

use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::error::Retry;
use crate::stage::{retrying, Call, StageConfig, StageFn, StageOptions, StageOutput};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;
use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use state::{CHUNK_MARKER, FORMAT};
pub use step::{JobFn, JobStep};

/// The options of a stage that is a plain function (no `#[stage]`): one attempt.
const PLAIN: StageOptions = StageOptions::new("stage").retries(0);

/// A value between two stages, its type known to the stages on either side.
type AnyBox = Box<dyn Any + Send>;

/// A function that can be a stage of a job after a stage whose output is `In`: a `#[stage]`
/// `async fn(In) -> Result<Out, E>` (retried as its options say; `M` is
/// [`StageFn`](crate::stage::StageFn)), or any `Fn(In)` returning a future of a `Result` (one
/// attempt, unless [`Job::stage_with`] gives options; `M` is [`AsyncFn`]). `M` is inferred.
/// `Out` is checkpointed, so it is `Serialize + DeserializeOwned`.
///
/// ```
/// use etl::job::JobStage;
/// fn out_type<In, M, S: JobStage<In, M>>(_: &S) -> &'static str { std::any::type_name::<S::Out>() }
///
/// #[etl::stage]
/// async fn parse(s: String) -> Result<i64, etl::stage::Error> { Ok(s.parse()?) }
/// assert_eq!(out_type::<String, _, _>(&parse), "i64");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a stage of this job: the stage before it outputs `{In}`",
    label = "this stage does not take `{In}`",
    note = "a job's stage takes the previous stage's output by value: `#[stage] async fn name(input: {In}) -> Result<Out, E>`",
    note = "its output is checkpointed: it must be `Serialize + Deserialize` (and its input `Clone`, for retries)"
)]
pub trait JobStage<In, M>: Send + Sync + 'static {
    /// What the stage outputs (the next stage's input).
    type Out: Serialize + DeserializeOwned + Send + 'static;
    /// What one call returns.
    type Call: StageOutput<Ok = Self::Out>;
    /// Call the stage once.
    fn call(&self, input: In) -> Self::Call;
}

/// [`JobStage`]'s marker for a function returning a future of a `Result` (not a `#[stage]`).
///
/// ```
/// let _ = etl::job::Job::<i64, i64>::new::<etl::job::AsyncFn, _>(|n: i64| async move { Ok::<i64, String>(n) });
/// ```
#[derive(Debug)]
pub enum AsyncFn {}

impl<F, In, Fut, C, U, E> JobStage<In, StageFn> for F
where
    F: Fn(In) -> Call<Fut, C> + Send + Sync + 'static,
    Fut: Future<Output = Result<U, E>> + Send,
    C: StageConfig,
    U: Serialize + DeserializeOwned + Send + 'static,
    E: Display + Send + 'static,
    In: Clone + Send + 'static,
{
    type Out = U;
    type Call = Call<Fut, C>;
    fn call(&self, input: In) -> Call<Fut, C> {
        self(input)
    }
}

impl<F, In, Fut, U, E> JobStage<In, AsyncFn> for F
where
    F: Fn(In) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<U, E>> + Send,
    U: Serialize + DeserializeOwned + Send + 'static,
    E: Display + Send + 'static,
    In: Clone + Send + 'static,
{
    type Out = U;
    type Call = Fut;
    fn call(&self, input: In) -> Fut {
        self(input)
    }
}

/// A stage's attempts: its output and the attempts made, or its last error (as the stage
/// operator words it), whether a retry could help, and the attempts made.
type Attempted = Result<(AnyBox, u32), (String, Retry, u32)>;

/// One stage with its types erased, so a job can start at any of them.
trait ErasedStage: Send + Sync {
    fn options(&self) -> &StageOptions;
    fn run(&self, input: AnyBox) -> BoxFuture<'_, Attempted>;
    fn encode(&self, output: &(dyn Any + Send)) -> Result<Vec<u8>, String>;
    fn decode(&self, bytes: &[u8]) -> Result<AnyBox, serde_json::Error>;
}

struct Typed<S, In, M> {
    stage: S,
    options: StageOptions,
    _in: PhantomData<fn(In, M)>,
}

impl<S, In, M: 'static> ErasedStage for Typed<S, In, M>
where
    S: JobStage<In, M>,
    In: Clone + Send + 'static,
{
    fn options(&self) -> &StageOptions {
        &self.options
    }

    fn run(&self, input: AnyBox) -> BoxFuture<'_, Attempted> {
        Box::pin(async move {
            let input = match input.downcast::<In>() {
                Ok(input) => *input,
                Err(_) => return Err((internal(self.options.name), Retry::Permanent, 0)),
            };
            let f = |x: In| self.stage.call(x);
            match retrying(&f, input, &self.options, None, false).await {
                Ok((out, tries)) => Ok((Box::new(out) as AnyBox, tries)),
                Err(gave_up) => Err((gave_up.describe(self.options.name), gave_up.retry, gave_up.tries)),
            }
        })
    }

    fn encode(&self, output: &(dyn Any + Send)) -> Result<Vec<u8>, String> {
        match output.downcast_ref::<S::Out>() {
            Some(out) => serde_json::to_vec(out).map_err(|e| e.to_string()),
            None => Err(internal(self.options.name)),
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<AnyBox, serde_json::Error> {
        Ok(Box::new(serde_json::from_slice::<S::Out>(bytes)?))
    }
}

fn internal(stage: &str) -> String {
    format!("etl bug: stage `{stage}` received a value of another type than its input (please report it)")
}

/// A job: stages run once, in order, on one input, optionally checkpointed (see the
/// [module](self) documentation). Cheap to clone; [`Job::run`] takes `&self`, so one job runs
/// many inputs (one run id each).
///
/// Named `Job`, as DESIGN.md and issue 15 call a pipeline of stages alone, and as schedulers
/// (Airflow, Dagster, rahcp-etl's "pipeline") call one multi-stage run on one input: `Pipeline`
/// is taken by streams of records.
///
/// ```
/// use etl::job::Job;
///
/// #[etl::stage(retries = 2, backoff = 1ms)]
/// async fn double(n: i64) -> Result<i64, etl::stage::Error> { Ok(n * 2) }
/// #[etl::stage]
/// async fn show(n: i64) -> Result<String, etl::stage::Error> { Ok(format!("={n}")) }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let job = Job::new(double).stage(show);
/// let done = job.run_with_report(21, "answer").await?;
/// assert_eq!(done.output, "=42");
/// assert_eq!(done.report.ran(), ["double", "show"]);
/// # Ok::<(), etl::job::JobError>(()) }).unwrap();
/// ```
pub struct Job<In, Out> {
    stages: Vec<Arc<dyn ErasedStage>>,
    store: Option<Arc<dyn CheckpointStore>>,
    _types: PhantomData<fn(In) -> Out>,
}

impl<In, Out> Clone for Job<In, Out> {
    fn clone(&self) -> Self {
        Job { stages: self.stages.clone(), store: self.store.clone(), _types: PhantomData }
    }
}

impl<In, Out> std::fmt::Debug for Job<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("stages", &self.stage_names()).field("checkpoints", &self.store.as_ref().map(|s| s.describe())).finish()
    }
}

impl<In: Clone + Send + 'static> Job<In, In> {
    /// A job whose first stage is `first`, with the stage's own options (a `#[stage]`'s; one
    /// attempt named `stage` for a plain function).
    ///
    /// ```
    /// #[etl::stage]
    /// async fn fetch(url: String) -> Result<usize, etl::stage::Error> { Ok(url.len()) }
    /// let job = etl::job::Job::new(fetch);
    /// assert_eq!(job.stage_names(), ["fetch"]);
    /// ```
    pub fn new<M: 'static, S: JobStage<In, M>>(first: S) -> Job<In, S::Out> {
        let options = <S::Call as StageOutput>::OPTIONS.unwrap_or(PLAIN);
        Job::<In, In>::empty().push(first, options)
    }

    /// A job whose first stage is `first`, run as `options` say.
    ///
    /// ```
    /// use etl::{job::Job, stage::StageOptions};
    /// let job = Job::new_with(|s: String| async move { Ok::<_, String>(s.len()) }, StageOptions::new("len").retries(1));
    /// assert_eq!(job.stage_names(), ["len"]);
    /// ```
    pub fn new_with<M: 'static, S: JobStage<In, M>>(first: S, options: StageOptions) -> Job<In, S::Out> {
        Job::<In, In>::empty().push(first, options)
    }

    fn empty() -> Job<In, In> {
        Job { stages: Vec::new(), store: None, _types: PhantomData }
    }
}

impl<In, Out> Job<In, Out> {
    /// A job without stages, for `pipeline!`'s error path.
    pub(crate) fn stub() -> Job<In, Out> {
        Job { stages: Vec::new(), store: None, _types: PhantomData }
    }

    fn push<M: 'static, S: JobStage<Out, M>, T>(mut self, stage: S, options: StageOptions) -> Job<In, T>
    where
        Out: Clone + Send + 'static,
    {
        self.stages.push(Arc::new(Typed::<S, Out, M> { stage, options, _in: PhantomData }));
        Job { stages: self.stages, store: self.store, _types: PhantomData }
    }

    /// Add `next`, which takes this job's output, with its own options.
    ///
    /// ```
    /// #[etl::stage]
    /// async fn a(n: i64) -> Result<i64, etl::stage::Error> { Ok(n + 1) }
    /// #[etl::stage]
    /// async fn b(n: i64) -> Result<String, etl::stage::Error> { Ok(n.to_string()) }
    /// assert_eq!(etl::job::Job::new(a).stage(b).stage_names(), ["a", "b"]);
    /// ```
    pub fn stage<M: 'static, S: JobStage<Out, M>>(self, next: S) -> Job<In, S::Out>
    where
        Out: Clone + Send + 'static,
    {
        let options = <S::Call as StageOutput>::OPTIONS.unwrap_or(PLAIN);
        self.push(next, options)
    }

    /// Add `next`, run as `options` say (its name is the checkpoint's stage name).
    ///
    /// ```
    /// use etl::{job::Job, stage::StageOptions};
    /// #[etl::stage]
    /// async fn a(n: i64) -> Result<i64, etl::stage::Error> { Ok(n + 1) }
    /// let job = Job::new(a).stage_with(|n: i64| async move { Ok::<_, String>(n * 2) }, StageOptions::new("double"));
    /// assert_eq!(job.stage_names(), ["a", "double"]);
    /// ```
    pub fn stage_with<M: 'static, S: JobStage<Out, M>>(self, next: S, options: StageOptions) -> Job<In, S::Out>
    where
        Out: Clone + Send + 'static,
    {
        self.push(next, options)
    }

    /// Checkpoint each stage's output in `store` (see the [module](self) documentation).
    ///
    /// ```
    /// # #[etl::stage] async fn a(n: i64) -> Result<i64, etl::stage::Error> { Ok(n) }
    /// let job = etl::job::Job::new(a).checkpoints(etl::checkpoint::FileStore::new("checkpoints"));
    /// assert!(format!("{job:?}").contains("file store checkpoints"));
    /// ```
    pub fn checkpoints(mut self, store: impl CheckpointStore + 'static) -> Job<In, Out> {
        self.store = Some(Arc::new(store));
        self
    }

    /// Checkpoint in a store shared with other jobs.
    ///
    /// ```
    /// # #[etl::stage] async fn a(n: i64) -> Result<i64, etl::stage::Error> { Ok(n) }
    /// use std::sync::Arc;
    /// let store: Arc<dyn etl::checkpoint::CheckpointStore> = Arc::new(etl::checkpoint::MemoryStore::new());
    /// let _job = etl::job::Job::new(a).checkpoints_shared(store.clone());
    /// ```
    pub fn checkpoints_shared(mut self, store: Arc<dyn CheckpointStore>) -> Job<In, Out> {
        self.store = Some(store);
        self
    }

    /// The stages' names, in order (the names checkpoints record).
    ///
    /// ```
    /// # #[etl::stage] async fn a(n: i64) -> Result<i64, etl::stage::Error> { Ok(n) }
    /// assert_eq!(etl::job::Job::new(a).stage_names(), ["a"]);
    /// ```
    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.options().name).collect()
    }
}

impl<In, Out> Job<In, Out>
where
    In: Send + 'static,
    Out: Send + 'static,
{
    /// Run the job on `input` as run `run_id`, and return the last stage's output.
    ///
    /// ```
    /// # #[etl::stage] async fn a(n: i64) -> Result<i64, etl::stage::Error> { Ok(n + 1) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// assert_eq!(etl::job::Job::new(a).run(1, "run-1").await?, 2);
    /// # Ok::<(), etl::job::JobError>(()) }).unwrap();
    /// ```
    pub async fn run(&self, input: In, run_id: &str) -> Result<Out, JobError> {
        Ok(self.run_with_report(input, run_id).await?.output)
    }

    /// Run the job, and return its output with the [`JobReport`].
    ///
    /// ```
    /// # #[etl::stage] async fn a(n: i64) -> Result<i64, etl::stage::Error> { Ok(n + 1) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let done = etl::job::Job::new(a).run_with_report(1, "run-1").await?;
    /// assert_eq!((done.output, done.report.to_string()), (2, "job run-1: a ran".to_string()));
    /// # Ok::<(), etl::job::JobError>(()) }).unwrap();
    /// ```
    pub async fn run_with_report(&self, input: In, run_id: &str) -> Result<JobOutput<Out>, JobError> {
        Ok(self.run_keeping(input, run_id, false).await?.0)
    }

    /// Run the job; with `keep_last`, the last stage's checkpoint is kept (and returned) instead
    /// of cleared: the [job step](JobStep) clears it once the record's message is
    /// acknowledged, so that a redelivery returns the output without running a stage again.
    async fn run_keeping(&self, input: In, run_id: &str, keep_last: bool) -> Result<(JobOutput<Out>, state::Position), JobError> {
        let names = self.stage_names();
        if let Some((i, name)) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)) {
            return Err(JobError::DuplicateStage { stage: name.to_string(), position: i + 1 });
        }
        let Some(store) = self.store.as_deref() else { return self.run_claimed(input, run_id, keep_last, names).await };
        // Held until the run ends: a second run with this id fails at its claim. Released
        // before returning (a store whose claims are leases frees the id now, not when the
        // lease would expire after the process exits).
        let claim = store.claim(run_id).await?;
        let result = self.run_claimed(input, run_id, keep_last, names).await;
        store.release(claim).await;
        result
    }

    /// [`run_keeping`](Self::run_keeping) once the run id is claimed (or without a store).
    async fn run_claimed(
        &self,
        input: In,
        run_id: &str,
        keep_last: bool,
        names: Vec<&'static str>,
    ) -> Result<(JobOutput<Out>, state::Position), JobError> {
        let started = Instant::now();
        let mut report = JobReport {
            run_id: run_id.to_owned(),
            stages: names.iter().map(|name| StageRun { name, status: StageStatus::NotRun, attempts: 0, elapsed: Duration::ZERO }).collect(),
            elapsed: Duration::ZERO,
        };
        let store = self.store.as_deref();
        let mut at = state::Position::default();
        let (start, mut value): (usize, AnyBox) = match store {
            None => (0, Box::new(input)),
            Some(store) => match state::load(store, run_id).await? {
                None => (0, Box::new(input)),
                Some(found) => {
                    let index = names.iter().position(|n| *n == found.head.stage).ok_or_else(|| JobError::UnknownStage {
                        run_id: run_id.to_owned(),
                        stage: found.head.stage.clone(),
                        stages: names.iter().map(|s| s.to_string()).collect(),
                    })?;
                    let value = self.stages[index].decode(&found.state).map_err(|error| JobError::State {
                        run_id: run_id.to_owned(),
                        stage: found.head.stage.clone(),
                        error,
                    })?;
                    for s in &mut report.stages[..=index] {
                        s.status = StageStatus::Resumed;
                    }
                    tracing::info!(run_id, stage = %found.head.stage, "resuming the job after its checkpointed stage");
                    at = found.position;
                    (index + 1, value)
                }
            },
        };
        for (i, stage) in self.stages.iter().enumerate().skip(start) {
            let name = stage.options().name;
            let t = Instant::now();
            tracing::debug!(run_id, stage = name, "stage starting");
            match stage.run(value).await {
                Ok((out, attempts)) => {
                    report.stages[i] = StageRun { name, status: StageStatus::Ran, attempts, elapsed: t.elapsed() };
                    value = out;
                }
                Err((error, retry, attempts)) => {
                    report.stages[i] = StageRun { name, status: StageStatus::Failed, attempts, elapsed: t.elapsed() };
                    report.elapsed = started.elapsed();
                    tracing::warn!(run_id, stage = name, attempts, %error, "job stage failed; its checkpoint (if any) is kept for a re-run");
                    return Err(JobError::Stage { stage: name, attempts, retry, error, report: Box::new(report) });
                }
            }
            if let Some(store) = store {
                let bytes = stage.encode(&*value).map_err(|error| JobError::Encode { stage: name, error })?;
                at = state::save(store, run_id, &names, i, &bytes, at).await?;
                tracing::debug!(run_id, stage = name, bytes = bytes.len(), "stage checkpointed");
            }
        }
        if let (Some(store), false) = (store, keep_last) {
            state::clear(store, run_id, std::mem::take(&mut at)).await?;
        }
        report.elapsed = started.elapsed();
        tracing::info!(run_id, report = %report, "job done");
        match value.downcast::<Out>() {
            Ok(output) => Ok((JobOutput { output: *output, report }, at)),
            Err(_) => Err(JobError::Encode { stage: names.last().copied().unwrap_or("job"), error: internal("output") }),
        }
    }
}

/// A finished job's output and report.
///
/// ```
/// let out = etl::job::JobOutput { output: 1, report: etl::job::JobReport::default() };
/// assert_eq!(out.output, 1);
/// ```
#[derive(Debug, Clone)]
pub struct JobOutput<T> {
    /// The last stage's output.
    pub output: T,
    /// What ran.
    pub report: JobReport,
}

/// What a job run did, per stage.
///
/// ```
/// use etl::job::{JobReport, StageRun, StageStatus};
/// use std::time::Duration;
/// let report = JobReport {
///     run_id: "r".into(),
///     stages: vec![
///         StageRun { name: "extract", status: StageStatus::Resumed, attempts: 0, elapsed: Duration::ZERO },
///         StageRun { name: "transform", status: StageStatus::Ran, attempts: 3, elapsed: Duration::ZERO },
///     ],
///     elapsed: Duration::ZERO,
/// };
/// assert_eq!(report.to_string(), "job r: extract resumed, transform ran (3 attempts)");
/// assert_eq!(report.resumed(), ["extract"]);
/// assert_eq!(report.retried(), [("transform", 3)]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobReport {
    /// The run id.
    pub run_id: String,
    /// Every stage of the job, in order.
    pub stages: Vec<StageRun>,
    /// How long the run took.
    pub elapsed: Duration,
}

impl JobReport {
    /// The stages that ran in this run.
    ///
    /// ```
    /// assert!(etl::job::JobReport::default().ran().is_empty());
    /// ```
    pub fn ran(&self) -> Vec<&'static str> {
        self.with(StageStatus::Ran)
    }

    /// The stages skipped because the checkpoint had their output.
    ///
    /// ```
    /// assert!(etl::job::JobReport::default().resumed().is_empty());
    /// ```
    pub fn resumed(&self) -> Vec<&'static str> {
        self.with(StageStatus::Resumed)
    }

    /// The stages that took more than one attempt, with their attempts.
    ///
    /// ```
    /// assert!(etl::job::JobReport::default().retried().is_empty());
    /// ```
    pub fn retried(&self) -> Vec<(&'static str, u32)> {
        self.stages.iter().filter(|s| s.attempts > 1).map(|s| (s.name, s.attempts)).collect()
    }

    fn with(&self, status: StageStatus) -> Vec<&'static str> {
        self.stages.iter().filter(|s| s.status == status).map(|s| s.name).collect()
    }
}

impl std::fmt::Display for JobReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job {}:", self.run_id)?;
        for (i, s) in self.stages.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let status = match s.status {
                StageStatus::Ran => "ran",
                StageStatus::Resumed => "resumed",
                StageStatus::Failed => "failed",
                StageStatus::NotRun => "not run",
            };
            write!(f, "{sep}{} {status}", s.name)?;
            if s.attempts > 1 {
                write!(f, " ({} attempts)", s.attempts)?;
            }
        }
        Ok(())
    }
}

/// One stage in a [`JobReport`].
///
/// ```
/// let s = etl::job::StageRun { name: "load", status: etl::job::StageStatus::Ran, attempts: 1, elapsed: std::time::Duration::ZERO };
/// assert_eq!(s.attempts, 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StageRun {
    /// The stage's name.
    pub name: &'static str,
    /// What happened to it.
    pub status: StageStatus,
    /// Attempts made in this run (0 when it did not run).
    pub attempts: u32,
    /// Time spent in its attempts.
    pub elapsed: Duration,
}

/// What happened to a stage in one run.
///
/// ```
/// assert_ne!(etl::job::StageStatus::Ran, etl::job::StageStatus::Resumed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageStatus {
    /// It ran and succeeded.
    Ran,
    /// Skipped: the checkpoint held its output (from an earlier run with the same id).
    Resumed,
    /// It ran and gave up (the run's error).
    Failed,
    /// Not reached.
    NotRun,
}

/// Why a job run failed. Each says what to do.
///
/// ```
/// let e = etl::job::JobError::UnknownStage { run_id: "r".into(), stage: "clean".into(), stages: vec!["extract".into(), "load".into()] };
/// assert!(e.to_string().contains("`clean`"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A stage gave up: its retries ran out, or its error was permanent. Its checkpoint (the
    /// stage before it) is kept: a re-run with the same id resumes there.
    #[error("{error} (run `{}`; finished stages are checkpointed when the job has a store: run again with the same id to resume)", report.run_id)]
    Stage {
        /// The stage.
        stage: &'static str,
        /// Attempts made.
        attempts: u32,
        /// Whether a retry could help.
        retry: Retry,
        /// Its last error.
        error: String,
        /// What ran before it.
        report: Box<JobReport>,
    },
    /// The checkpoint store failed: it could not be read or written, another run holds the id,
    /// or a compare-and-set lost.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint names a stage this job does not have (renamed or removed since).
    #[error("the checkpoint of run `{run_id}` is after stage `{stage}`, which this job does not have (its stages: {}); restore the stage, or delete the checkpoint to start the run from its first stage", stages.join(", "))]
    UnknownStage {
        /// The run id.
        run_id: String,
        /// The stage the checkpoint names.
        stage: String,
        /// The job's stages.
        stages: Vec<String>,
    },
    /// The checkpointed state does not deserialise into the stage's output type (it changed
    /// since).
    #[error("the checkpoint of run `{run_id}` after stage `{stage}` no longer fits that stage's output type: {error}; make the type read the old state (serde defaults), or delete the checkpoint to start the run from its first stage")]
    State {
        /// The run id.
        run_id: String,
        /// The stage.
        stage: String,
        /// serde_json's error.
        #[source]
        error: serde_json::Error,
    },
    /// A stage's output could not be serialised for its checkpoint.
    #[error("the output of stage `{stage}` cannot be serialised for its checkpoint: {error}")]
    Encode {
        /// The stage.
        stage: &'static str,
        /// Why.
        error: String,
    },
    /// Two stages of the job have one name: checkpoints could not tell them apart.
    #[error("stage `{stage}` (number {position}) appears twice in the job; checkpoints name stages, so give each its own name (`Job::stage_with(f, StageOptions::new(\"..\"))`)")]
    DuplicateStage {
        /// The name.
        stage: String,
        /// Its second position (from 1).
        position: usize,
    },
}

impl From<JobError> for crate::Error {
    /// ```
    /// let e = etl::Error::from(etl::job::JobError::DuplicateStage { stage: "a".into(), position: 2 });
    /// assert!(e.to_string().contains("appears twice"));
    /// ```
    fn from(e: JobError) -> crate::Error {
        let retry = e.retry();
        crate::Error::Job { error: Box::new(e), retry }
    }
}

impl JobError {
    /// Whether running the job again can help: a stage's retryable failure, an unavailable
    /// store or a busy run id; not a permanent stage error or a checkpoint that does not fit.
    ///
    /// ```
    /// use etl::job::JobError;
    /// let e = JobError::DuplicateStage { stage: "a".into(), position: 2 };
    /// assert_eq!(e.retry(), etl::Retry::Permanent);
    /// ```
    pub fn retry(&self) -> Retry {
        match self {
            JobError::Stage { retry, .. } => *retry,
            JobError::Checkpoint(CheckpointError::Unavailable { .. } | CheckpointError::Busy { .. } | CheckpointError::Conflict { .. }) => {
                Retry::Retryable
            }
            _ => Retry::Permanent,
        }
    }

    /// The report of the run, for a stage's failure.
    ///
    /// ```
    /// assert!(etl::job::JobError::DuplicateStage { stage: "a".into(), position: 2 }.report().is_none());
    /// ```
    pub fn report(&self) -> Option<&JobReport> {
        match self {
            JobError::Stage { report, .. } => Some(report),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
