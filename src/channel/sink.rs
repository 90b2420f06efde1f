//! [`QueueSink`]: a pipeline sink that pushes records into a [`WorkQueue`].

use super::queue::WorkQueue;
use crate::error::ConnectorError;
use crate::sink::{Sink, Written};
use bytes::Bytes;
use serde::Serialize;

/// Pushes each record as a JSON message into a [`WorkQueue`]. See [`WorkQueue::sink`].
///
/// A write returns once every record is in the queue (it waits while the queue is full). A
/// record that cannot be serialised is rejected (dead-lettered); a closed queue is a
/// permanent error.
#[derive(Debug)]
pub struct QueueSink {
    queue: WorkQueue,
    name: String,
}

impl WorkQueue {
    /// A pipeline sink pushing JSON messages into this queue.
    ///
    /// ```
    /// use etl::prelude::*;
    /// let queue = etl::channel::WorkQueue::new();
    /// let sink = queue.sink().name("changes");
    /// assert_eq!(Sink::<Json>::describe(&sink), "queue changes");
    /// ```
    pub fn sink(&self) -> QueueSink {
        QueueSink { queue: self.clone(), name: "work-queue".into() }
    }
}

impl QueueSink {
    /// The queue's name, for logs. Default `work-queue`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl<T: Serialize + Sync> Sink<T> for QueueSink {
    fn describe(&self) -> String {
        format!("queue {}", self.name)
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        let mut written = Written::all();
        for (index, record) in records.iter().enumerate() {
            match serde_json::to_vec(record) {
                Ok(json) => self
                    .queue
                    .push(Bytes::from(json))
                    .await
                    .map_err(|closed| ConnectorError::permanent(format!("queue {}", self.name), closed))?,
                Err(e) => written.rejected.push((index, e.to_string())),
            }
        }
        Ok(written)
    }
}
