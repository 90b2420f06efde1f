//! [`BroadcastSink`]: a pipeline sink appending records to a [`Broadcast`].

use super::Broadcast;
use crate::error::ConnectorError;
use crate::sink::{Sink, Written};

/// Appends each batch to a [`Broadcast`] log. See [`Broadcast::sink`].
///
/// A write returns (and the batch is acknowledged) once every record is appended: under
/// [`Overflow::Block`](super::Overflow::Block) it waits while the log is full. Subscribers
/// are woken, never run inside the write. A closed log is a permanent error.
///
/// ```
/// use etl::prelude::*;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let log = etl::channel::Broadcast::<i64>::new(10, Default::default());
/// let _audit = log.subscribe("audit");
/// Pipeline::from(etl::source::iter(vec![1i64, 2])).to(log.sink()).handle_signals(false).run().await?;
/// assert_eq!((log.end(), log.len()), (2, 2));
/// # Ok::<(), etl::Error>(()) }).unwrap();
/// ```
pub struct BroadcastSink<T> {
    log: Broadcast<T>,
}

impl<T: Clone> std::fmt::Debug for BroadcastSink<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastSink").field("log", &self.log).finish()
    }
}

impl<T: Clone> Broadcast<T> {
    /// A pipeline sink appending to this log.
    ///
    /// ```
    /// use etl::prelude::*;
    /// let processed = etl::channel::Broadcast::<i64>::named("processed", 100, Default::default());
    /// assert_eq!(processed.sink().describe(), "broadcast processed");
    /// ```
    pub fn sink(&self) -> BroadcastSink<T> {
        BroadcastSink { log: self.clone() }
    }
}

impl<T: Clone + Send + Sync + 'static> Sink<T> for BroadcastSink<T> {
    fn describe(&self) -> String {
        format!("broadcast {}", self.log.name())
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        self.log.publish(records).await.map_err(|closed| ConnectorError::permanent(self.describe(), closed))?;
        Ok(Written::all())
    }
}
