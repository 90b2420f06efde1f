//! The embedded default dead-letter queue: a local JSONL file. (Skeleton: body being written.)

use super::{DeadLetter, DeadLetters, Republish};
use crate::error::ConnectorError;
use std::path::PathBuf;
use std::time::Duration;

/// Dead letters in a local JSONL file, created on the first write.
#[derive(Debug)]
pub struct FileDeadLetters {
    path: PathBuf,
}

impl FileDeadLetters {
    /// A queue stored at `path`.
    pub fn new(path: impl Into<PathBuf>) -> FileDeadLetters {
        FileDeadLetters { path: path.into() }
    }
}

#[async_trait::async_trait]
impl DeadLetters for FileDeadLetters {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
    async fn write(&self, _entries: Vec<DeadLetter>) -> Result<(), ConnectorError> {
        todo!()
    }
    async fn list(&self) -> Result<Vec<DeadLetter>, ConnectorError> {
        todo!()
    }
    async fn replay(&self, _filter: &(dyn Fn(&DeadLetter) -> bool + Send + Sync), _target: &mut dyn Republish) -> Result<usize, ConnectorError> {
        todo!()
    }
    async fn purge(&self, _older_than: Duration) -> Result<usize, ConnectorError> {
        todo!()
    }
}
