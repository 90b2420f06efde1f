//! One branch of a fan-out with its types erased: its operators and its sink behind one object,
//! so that branches of different record types sit in one list.

use crate::batch::{Batch, BatchParts, Failure, FailureKind};
use crate::error::ConnectorError;
use crate::operator::Operator;
use crate::sink::{Sink, SinkContext};
use futures::future::BoxFuture;
use serde::Serialize;
use std::marker::PhantomData;

/// A branch as the fan-out drives it.
pub(super) trait Lane<T>: Send + Sync {
    fn describe(&self) -> String;
    fn open(&mut self, ctx: SinkContext) -> BoxFuture<'_, Result<(), ConnectorError>>;
    /// Run the branch's operators on `batch` and write what is left; returns what failed on
    /// the way (operators' failures and records the sink refused), to dead-letter.
    fn write(&mut self, batch: Batch<T>) -> BoxFuture<'_, Result<Vec<Failure>, ConnectorError>>;
    fn commit(&mut self) -> BoxFuture<'_, Result<(), ConnectorError>>;
    fn close(&mut self) -> BoxFuture<'_, Result<(), ConnectorError>>;
}

/// A branch's operators `O` (from records `T`) and sink `K`.
pub(super) struct Typed<T, O, K> {
    ops: O,
    sink: K,
    _in: PhantomData<fn(T)>,
}

impl<T, O, K> Typed<T, O, K> {
    pub(super) fn new(ops: O, sink: K) -> Self {
        Typed { ops, sink, _in: PhantomData }
    }
}

impl<T, O, K> Lane<T> for Typed<T, O, K>
where
    T: Send + 'static,
    O: Operator<T> + Sync + 'static,
    O::Out: Serialize + Sync,
    K: Sink<O::Out> + Sync + 'static,
{
    fn describe(&self) -> String {
        self.sink.describe()
    }

    fn open(&mut self, ctx: SinkContext) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(self.sink.open(ctx))
    }

    fn write(&mut self, batch: Batch<T>) -> BoxFuture<'_, Result<Vec<Failure>, ConnectorError>> {
        Box::pin(async move {
            let out = self.ops.apply(batch).await;
            let BatchParts { records, meta, mut failures, positions, .. } = out.into_parts();
            let branch = self.sink.describe();
            for f in &mut failures {
                f.error = format!("branch `{branch}`: {}", f.error);
            }
            if records.is_empty() && positions.is_empty() {
                return Ok(failures);
            }
            let written = self.sink.write_positioned(&records, &meta, &positions).await?;
            if written.fenced {
                // The branch's stored positions are past the batch: it has these records
                // already (a redelivery after another branch failed). Nothing to write.
                tracing::debug!(branch = %branch, "fan-out: the branch's sink already stored this batch's positions; skipped");
                return Ok(failures);
            }
            for (index, reason) in written.rejected {
                let Some(record) = records.get(index) else {
                    return Err(ConnectorError::permanent(
                        branch,
                        format!("the sink rejected record {index} of a batch of {} (a bug of the sink)", records.len()),
                    ));
                };
                let m = meta.get(index).cloned().unwrap_or_default();
                failures.push(Failure::of_record(record, m, FailureKind::Sink, format!("branch `{branch}`: {reason}")));
            }
            failures.extend(written.failures);
            Ok(failures)
        })
    }

    fn commit(&mut self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(self.sink.commit())
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(self.sink.close())
    }
}
