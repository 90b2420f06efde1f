//! One branch of a fan-out with its types erased: its operators and its sink behind one object,
//! so that branches of different record types sit in one list.

use crate::batch::{Batch, BatchParts, Failure, FailureKind};
use crate::error::ConnectorError;
use crate::operator::{Identity, Operator};
use crate::positions::Positions;
use crate::record::Meta;
use crate::sink::{Sink, SinkContext};
use futures::future::BoxFuture;
use serde::Serialize;
use std::any::TypeId;
use std::marker::PhantomData;

/// A branch as the fan-out drives it.
pub(super) trait Lane<T>: Send + Sync {
    fn describe(&self) -> String;
    fn open(&mut self, ctx: SinkContext) -> BoxFuture<'_, Result<(), ConnectorError>>;
    /// Run the branch's operators on `batch` and write what is left; returns what failed on
    /// the way (operators' failures and records the sink refused), to dead-letter.
    fn write(&mut self, batch: Batch<T>) -> BoxFuture<'_, Result<Vec<Failure>, ConnectorError>>;
    /// Whether the branch has no steps: its sink takes the fork's records as they are, so
    /// [`write_shared`](Lane::write_shared) writes them without a copy.
    fn is_bare(&self) -> bool;
    /// Write the fork's records as they are (a branch without steps; `None` otherwise).
    fn write_shared<'a>(
        &'a mut self,
        records: &'a [T],
        meta: &'a [Meta],
        positions: &'a Positions,
    ) -> Option<BoxFuture<'a, Result<Vec<Failure>, ConnectorError>>>;
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
            failures.extend(write_to(&mut self.sink, &records, &meta, &positions).await?);
            Ok(failures)
        })
    }

    fn is_bare(&self) -> bool {
        TypeId::of::<O>() == TypeId::of::<Identity>() && TypeId::of::<O::Out>() == TypeId::of::<T>()
    }

    fn write_shared<'a>(
        &'a mut self,
        records: &'a [T],
        meta: &'a [Meta],
        positions: &'a Positions,
    ) -> Option<BoxFuture<'a, Result<Vec<Failure>, ConnectorError>>> {
        if !self.is_bare() {
            return None;
        }
        // SAFETY: `O::Out` and `T` have the same `TypeId` (checked just above), so they are the
        // same type and `&[T]` is a `&[O::Out]` with the same layout, length and lifetime.
        // Written by hand because the branch's types are generic (no specialisation on stable):
        // this is what lets a branch without steps skip a copy of every record.
        let same: &'a [O::Out] = unsafe { std::slice::from_raw_parts(records.as_ptr().cast::<O::Out>(), records.len()) };
        Some(Box::pin(write_to(&mut self.sink, same, meta, positions)))
    }

    fn commit(&mut self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(self.sink.commit())
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(self.sink.close())
    }
}

/// Write a branch's records to its sink; returns the records the sink refused, to dead-letter.
/// A batch the sink fences off is one it has already (its stored positions are past it: a
/// redelivery after another branch failed): nothing to write.
async fn write_to<U: Serialize + Sync, K: Sink<U>>(
    sink: &mut K,
    records: &[U],
    meta: &[Meta],
    positions: &Positions,
) -> Result<Vec<Failure>, ConnectorError> {
    if records.is_empty() && positions.is_empty() {
        return Ok(Vec::new());
    }
    let branch = sink.describe();
    let written = sink.write_positioned(records, meta, positions).await?;
    if written.fenced {
        tracing::debug!(branch = %branch, "fan-out: the branch's sink already stored this batch's positions; skipped");
        return Ok(Vec::new());
    }
    let mut failures = Vec::with_capacity(written.rejected.len() + written.failures.len());
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
}
