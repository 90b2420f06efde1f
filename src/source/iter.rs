//! `iter`: a source over any iterator (tests, examples, in-memory data).

use super::{BatchStream, Source, SourceContext};
use crate::ack::Ack;
use crate::batch::{batched, BatchConfig, BatchOptions, Incoming};
use crate::record::{Meta, Position};
use std::sync::Arc;

/// A source that yields the items of an iterator, in batches. See [`iter`].
#[derive(Debug)]
pub struct IterSource<I> {
    items: I,
    batching: BatchConfig,
}

/// Read the items of `items` (any `IntoIterator`). Positions are the 0-based item indexes.
///
/// ```
/// use etl::prelude::*;
/// let src = etl::source::iter(vec!["a", "b"]).batch_size(1);
/// assert_eq!(src.describe(), "iter");
/// ```
pub fn iter<I: IntoIterator>(items: I) -> IterSource<I::IntoIter> {
    IterSource { items: items.into_iter(), batching: BatchConfig::default() }
}

impl<I> BatchOptions for IterSource<I> {
    fn batching(&mut self) -> &mut BatchConfig {
        &mut self.batching
    }
}

impl<I> Source for IterSource<I>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
{
    type Item = I::Item;

    fn describe(&self) -> String {
        "iter".into()
    }

    async fn open(self, ctx: SourceContext) -> crate::Result<BatchStream<I::Item>> {
        let size = std::mem::size_of::<I::Item>();
        let items = self.items.zip(0u64..).map(move |(item, i)| Ok(Incoming::record(item, Meta::at(Position::Index(i)), size, ())));
        Ok(batched(futures::stream::iter(items), self.batching, ctx.shutdown, Arc::from("iter"), |_| Ack::none()))
    }
}
