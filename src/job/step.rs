//! A job as a pipeline step (`map(job)`): one run per record, the record's source position as
//! its run id, so that a message the broker delivers again resumes from its checkpoint.

use super::{state, Job, JobError};
use crate::ack::Status;
use crate::batch::{Batch, BatchParts, Failure, FailureKind};
use crate::error::Retry;
use crate::operator::Operator;
use crate::record::{Meta, Position};
use crate::stage::MapStep;
use futures::StreamExt;
use serde::Serialize;
use std::sync::Arc;

/// How a [`JobStep`] names the run of a record: from the batch's origin and the record's
/// metadata; `None` runs the job without checkpoints.
type RunIds = Arc<dyn Fn(&str, &Meta) -> Option<String> + Send + Sync>;

/// [`MapStep`]'s marker for a [`Job`]: `map(job)` runs the job once per record ([`JobStep`]).
///
/// ```
/// fn kind<T, M, F: etl::stage::MapStep<T, M>>(_: &F) -> &'static str { std::any::type_name::<M>() }
/// #[etl::stage]
/// async fn double(n: i64) -> Result<i64, etl::stage::Error> { Ok(n * 2) }
/// assert!(kind::<i64, _, _>(&etl::job::Job::new(double)).ends_with("JobFn"));
/// ```
#[derive(Debug)]
pub enum JobFn {}

impl<In, Out> MapStep<In, JobFn> for Job<In, Out>
where
    In: Clone + Serialize + Send + Sync + 'static,
    Out: Send + 'static,
{
    type Out = Out;
    type Op = JobStep<In, Out>;
    fn into_operator(self) -> JobStep<In, Out> {
        JobStep::new(self)
    }
}

/// A [`Job`] run once per record, as a step of a pipeline (`pipeline! { nats(..) as Request |
/// map(job) | .. }`, or [`Pipeline::then`](crate::Pipeline::then)`(job.step())`).
///
/// * **Run id**: the batch's origin and the record's source position (`nats JOBS/etl#42` for
///   stream sequence 42 of the NATS source's stream `JOBS`, durable `etl`; a Kafka record's
///   `p{partition}@{offset}`, a broker's message id, a file's path and line), or what
///   [`JobStep::run_ids`] says. A record whose position does not name it again after a
///   restart (an item index, a RabbitMQ delivery tag), or whose source never delivers
///   anything again (no acknowledgement: `iter`, `websocket`, `periodic`), runs without
///   checkpoints.
/// * **Success**: the last stage's output goes on as the record; its checkpoint is kept until
///   the batch's acknowledgement is final (delivered or dead-lettered), then cleared. A message
///   the broker delivers again before that (its batch failed elsewhere, or the process died)
///   resumes at the end: no stage runs again. The clear is not synchronised with the broker's
///   receipt of the acknowledgement: if the process dies or the acknowledgement is lost in
///   between, the redelivered message runs every stage again (stages are at least once, as
///   for a crash between a stage's side effect and its checkpoint).
/// * **A retryable failure** (a stage's retries ran out, the store is unavailable, another
///   run holds the id): the record leaves the batch and the batch's acknowledgement is
///   [`Status::Errored`], so the source redelivers its messages (the NATS source: a nak with a
///   delay growing with the delivery count, and on the last attempt the message dead-lettered
///   with its bytes, subject and headers, then terminated). The redelivered message resumes
///   after its last checkpointed stage. Records of the same batch whose job succeeded resume
///   at the end: a batch of one message (`batch_size = 1`) keeps them apart. A source that
///   never delivers again (no acknowledgement) gets the record dead-lettered instead, never
///   dropped.
/// * **A permanent failure** (a stage's permanent error, a checkpoint naming a stage the job
///   no longer has, state that no longer fits): the record is dead-lettered
///   ([`FailureKind::Transform`], its raw bytes kept) and its checkpoint left for inspection.
///
/// While a job runs, the NATS source's progress acknowledgements keep its message (past half
/// of `ack_wait`); other brokers' leases work the same way.
///
/// ```
/// use etl::prelude::*;
/// use etl::checkpoint::MemoryStore;
///
/// #[stage]
/// async fn fetch(id: i64) -> Result<String, etl::stage::Error> { Ok(format!("doc-{id}")) }
/// #[stage]
/// async fn store(doc: String) -> Result<usize, etl::stage::Error> { Ok(doc.len()) }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let checkpoints = MemoryStore::new();
/// let job = pipeline! { fetch | store }.checkpoints(checkpoints.clone());
/// let out = etl::sink::collect();
/// let sink = out.sink();
/// pipeline! { iter(vec![1i64, 22]) | map(job) | sink }.handle_signals(false).run().await?;
/// assert_eq!(out.records(), [5, 6]);
/// # tokio::time::sleep(std::time::Duration::from_millis(50)).await;
/// assert!(checkpoints.keys().is_empty(), "cleared once the batch was acknowledged");
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub struct JobStep<In, Out> {
    job: Job<In, Out>,
    /// The same job without a store, for records without a position.
    unstored: Job<In, Out>,
    run_ids: RunIds,
    concurrency: usize,
}

impl<In, Out> std::fmt::Debug for JobStep<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStep").field("job", &self.job).field("concurrency", &self.concurrency).finish_non_exhaustive()
    }
}

/// The default run id of a record: its batch's origin and its position, when that position
/// names the same message again after a restart (`None` otherwise: the job runs without
/// checkpoints). Not durable: an item index (restarts at 0 per process), a RabbitMQ delivery tag
/// (a message without `message_id`: the tag changes on redelivery). A line is named with its
/// file (the file watcher's origin is the directory).
fn default_run_id(origin: &str, meta: &Meta) -> Option<String> {
    let extra = meta.extra.as_deref();
    let at = match &meta.position {
        Position::None | Position::Index(_) => return None,
        Position::Sequence(s) => s.to_string(),
        Position::Offset { partition, offset } => format!("p{partition}@{offset}"),
        Position::Id(_) if extra.is_some_and(|e| e.delivery_tag.is_some() && e.message_id.is_none()) => return None,
        Position::Id(id) => id.clone(),
        Position::Line(l) => match extra.and_then(|e| e.file.as_ref()) {
            Some(file) => return Some(format!("{}#line{l}", file.path.display())),
            None => format!("line{l}"),
        },
    };
    Some(format!("{origin}#{at}"))
}

impl<In, Out> Job<In, Out> {
    /// This job as a pipeline step, one run per record (see [`JobStep`]).
    ///
    /// ```
    /// #[etl::stage] async fn a(n: i64) -> Result<i64, etl::stage::Error> { Ok(n) }
    /// let _step = etl::job::Job::new(a).step().concurrency(4);
    /// ```
    pub fn step(self) -> JobStep<In, Out> {
        JobStep::new(self)
    }
}

impl<In, Out> JobStep<In, Out> {
    /// `job` as a step, one record at a time, run ids from the records' positions.
    ///
    /// ```
    /// #[etl::stage] async fn a(n: i64) -> Result<i64, etl::stage::Error> { Ok(n) }
    /// let _step = etl::job::JobStep::new(etl::job::Job::new(a));
    /// ```
    pub fn new(job: Job<In, Out>) -> JobStep<In, Out> {
        let unstored = Job { stages: job.stages.clone(), store: None, _types: std::marker::PhantomData };
        JobStep { job, unstored, run_ids: Arc::new(default_run_id), concurrency: 1 }
    }

    /// Run the jobs of up to `n` records of a batch at once (at least 1; default 1).
    ///
    /// ```
    /// #[etl::stage] async fn a(n: i64) -> Result<i64, etl::stage::Error> { Ok(n) }
    /// let _step = etl::job::Job::new(a).step().concurrency(8);
    /// ```
    pub fn concurrency(mut self, n: usize) -> JobStep<In, Out> {
        self.concurrency = n.max(1);
        self
    }

    /// Name each record's run with `f(origin, meta)` instead of its origin and position (a
    /// business key from a header, say); `None` runs that record without checkpoints. The id
    /// must be the same when the broker delivers the message again.
    ///
    /// ```
    /// #[etl::stage] async fn a(n: i64) -> Result<i64, etl::stage::Error> { Ok(n) }
    /// let _step = etl::job::Job::new(a).step().run_ids(|_origin, meta| Some(format!("order-{}", meta.position)));
    /// ```
    pub fn run_ids(mut self, f: impl Fn(&str, &Meta) -> Option<String> + Send + Sync + 'static) -> JobStep<In, Out> {
        self.run_ids = Arc::new(f);
        self
    }
}

/// How one record's run ended.
enum Outcome<Out> {
    /// The output, and the checkpoint kept until the batch is released.
    Done(Out, Meta, Option<(String, state::Position)>),
    /// Dead-letter it.
    Failed(Failure),
    /// Redeliver the batch.
    Retry,
}

impl<In, Out> JobStep<In, Out>
where
    In: Clone + Serialize + Send + 'static,
    Out: Send + 'static,
{
    async fn one(&self, origin: &str, record: In, meta: Meta, tracked: bool) -> Outcome<Out> {
        // A source that never delivers again gains nothing from a checkpoint.
        let run_id = if tracked { (self.run_ids)(origin, &meta) } else { None };
        // A record whose dead-letter entry would need it (no raw bytes from the source).
        let kept = meta.raw.is_none().then(|| record.clone());
        let result = match &run_id {
            Some(id) => self.job.run_keeping(record, id, true).await,
            None => self.unstored.run_keeping(record, "-", true).await,
        };
        match result {
            Ok((done, at)) => Outcome::Done(done.output, meta, run_id.map(|id| (id, at))),
            Err(e) if e.retry() == Retry::Retryable && tracked => {
                tracing::warn!(run_id = run_id.as_deref().unwrap_or("-"), position = %meta.position, error = %e, "job failed on a record; its batch is delivered again and the job resumes from its checkpoint");
                Outcome::Retry
            }
            Err(e) => {
                tracing::warn!(run_id = run_id.as_deref().unwrap_or("-"), position = %meta.position, error = %e, permanent = e.retry() == Retry::Permanent, "job failed on a record that its source will not deliver again (a permanent failure, or a source without acknowledgement); dead-lettering it (its checkpoint, if any, is kept)");
                let attempts = match &e {
                    JobError::Stage { attempts, .. } => *attempts,
                    _ => 0,
                };
                let mut failure = Failure::of_record(&kept, meta, FailureKind::Transform, e.to_string());
                failure.attempts = attempts;
                Outcome::Failed(failure)
            }
        }
    }
}

impl<In, Out> Operator<In> for JobStep<In, Out>
where
    In: Clone + Serialize + Send + Sync + 'static,
    Out: Send + 'static,
{
    type Out = Out;

    async fn apply(&mut self, batch: Batch<In>) -> Batch<Out> {
        let BatchParts { records, meta, mut failures, ack, origin, positions } = batch.into_parts();
        let mut out = Vec::with_capacity(records.len());
        let mut out_meta = Vec::with_capacity(records.len());
        let mut kept: Vec<(String, state::Position)> = Vec::new();
        let mut retry = 0usize;
        let this = &*self;
        let from: &str = &origin;
        let tracked = ack.is_tracked();
        let mut done = futures::stream::iter(records.into_iter().zip(meta))
            .map(|(record, meta)| this.one(from, record, meta, tracked))
            .buffered(self.concurrency);
        while let Some(outcome) = done.next().await {
            match outcome {
                Outcome::Done(record, meta, checkpoint) => {
                    out.push(record);
                    out_meta.push(meta);
                    kept.extend(checkpoint.filter(|(_, at)| at.is_stored()));
                }
                Outcome::Failed(failure) => failures.push(failure),
                Outcome::Retry => retry += 1,
            }
        }
        drop(done);
        if retry > 0 {
            tracing::warn!(origin = %origin, records = retry, "job step: records failed and will be delivered again; the batch is not acknowledged");
            ack.share().resolve(Status::Errored);
        }
        if let (false, Some(store)) = (kept.is_empty(), self.job.store.clone()) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => ack.observe(move |status| {
                    if !status.is_done() {
                        // Delivered again: the runs resume at their end.
                        return;
                    }
                    runtime.spawn(async move {
                        for (run_id, at) in kept {
                            if let Err(e) = state::clear(&*store, &run_id, at).await {
                                tracing::warn!(run_id, error = %e, "could not clear a finished job's checkpoint; it can be removed by hand");
                            }
                        }
                    });
                }),
                Err(_) => tracing::warn!("job step outside a tokio runtime: finished jobs' checkpoints are not cleared"),
            }
        }
        Batch::new(out, out_meta, failures, ack, origin).with_positions(positions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_name_the_origin_and_the_position() {
        let at = |p| Meta::at(p);
        assert_eq!(default_run_id("nats JOBS/etl", &at(Position::Sequence(42))).as_deref(), Some("nats JOBS/etl#42"));
        assert_eq!(default_run_id("kafka orders", &at(Position::Offset { partition: 3, offset: 9 })).as_deref(), Some("kafka orders#p3@9"));
        assert_eq!(default_run_id("sqs q", &at(Position::Id("m-1".into()))).as_deref(), Some("sqs q#m-1"));
        assert_eq!(default_run_id("iter", &at(Position::None)), None);
        assert_eq!(default_run_id("iter", &at(Position::Index(3))), None, "an index restarts per process");
        let tag = Meta::at(Position::Id("delivery tag 7".into()))
            .with_extra(crate::record::Extra { delivery_tag: Some(7), ..Default::default() });
        assert_eq!(default_run_id("rabbitmq q", &tag), None, "a delivery tag changes on redelivery");
        let file = crate::record::FileInfo { path: "/in/a.jsonl".into(), size: 1, modified: std::time::SystemTime::UNIX_EPOCH };
        let line =
            Meta::at(Position::Line(3)).with_extra(crate::record::Extra { file: Some(std::sync::Arc::new(file)), ..Default::default() });
        assert_eq!(default_run_id("file_watch /in", &line).as_deref(), Some("/in/a.jsonl#line3"));
    }
}
