//! `blackhole`: a sink that discards records (benchmarks).

use super::{Sink, Written};
use crate::error::ConnectorError;

/// Discards every record and counts them. See [`blackhole`].
#[derive(Debug, Default)]
pub struct Blackhole {
    written: u64,
}

/// A sink that discards records.
///
/// ```
/// let sink = etl::sink::blackhole();
/// assert_eq!(sink.written(), 0);
/// ```
pub fn blackhole() -> Blackhole {
    Blackhole::default()
}

impl Blackhole {
    /// Records received so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl<T: Sync> Sink<T> for Blackhole {
    fn describe(&self) -> String {
        "blackhole".into()
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        self.written += records.len() as u64;
        Ok(Written::all())
    }
}
