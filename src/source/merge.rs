//! [`merge`]: two sources of one record type read as one, each batch keeping its own source's
//! acknowledgement.

use super::{Source, SourceContext};
use crate::batch::BatchStream;
use futures::StreamExt;

/// Two sources of the same record type read as one (`pipeline! { etl::source::merge(a, b) as T
/// | .. }`): their batches interleave as they arrive, each keeps its own source's
/// acknowledgement (what a sink commits is released to the source that read it, and a failed
/// batch is redelivered by that source only), and the stream ends once both ended. An error
/// of either stops the run. Nest it for more inputs: `merge(merge(a, b), c)`.
///
/// Both sources open in the run's context: they share its shutdown, resources and dead-letter
/// queue; the lag they report is the last one either reported.
///
/// ```
/// use etl::prelude::*;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let out = etl::sink::collect();
/// let both = etl::source::merge(etl::source::iter(vec![1i64, 2]), etl::source::iter(vec![10i64, 20]));
/// Pipeline::from(both).to(out.sink()).handle_signals(false).run().await?;
/// let mut got = out.records();
/// got.sort();
/// assert_eq!(got, [1, 2, 10, 20]);
/// # Ok::<(), etl::Error>(()) }).unwrap();
/// ```
pub fn merge<A, B>(a: A, b: B) -> Merge<A, B>
where
    A: Source,
    B: Source<Item = A::Item>,
{
    Merge { a, b }
}

/// The source [`merge`] makes.
///
/// ```
/// let m = etl::source::merge(etl::source::iter(vec![1i64]), etl::source::iter(vec![2i64]));
/// assert_eq!(etl::Source::describe(&m), "merge(iter, iter)");
/// ```
#[derive(Debug)]
pub struct Merge<A, B> {
    a: A,
    b: B,
}

impl<A, B> Source for Merge<A, B>
where
    A: Source,
    B: Source<Item = A::Item>,
{
    type Item = A::Item;

    fn describe(&self) -> String {
        format!("merge({}, {})", self.a.describe(), self.b.describe())
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<A::Item>> {
        let (a, b) = futures::future::try_join(self.a.open(ctx.clone()), self.b.open(ctx)).await?;
        Ok(Box::pin(futures::stream::select(a, b).boxed()))
    }

    async fn check(self, ctx: SourceContext) -> crate::Result<()> {
        futures::future::try_join(self.a.check(ctx.clone()), self.b.check(ctx)).await.map(|_| ())
    }
}
