//! `stdout`: a sink that prints records as JSON lines.

use super::{Sink, Written};
use crate::error::ConnectorError;
use serde::Serialize;
use std::io::Write;

/// Writes each record as one JSON line on standard output. See [`stdout`].
#[derive(Debug, Default)]
pub struct Stdout {
    buffer: Vec<u8>,
}

/// A sink that prints records as JSON lines.
///
/// ```
/// use etl::prelude::*;
/// let sink = etl::sink::stdout();
/// assert_eq!(Sink::<Json>::describe(&sink), "stdout");
/// ```
pub fn stdout() -> Stdout {
    Stdout::default()
}

impl<T: Serialize + Sync> Sink<T> for Stdout {
    fn describe(&self) -> String {
        "stdout".into()
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        self.buffer.clear();
        let mut written = Written::all();
        for (i, record) in records.iter().enumerate() {
            let start = self.buffer.len();
            match serde_json::to_writer(&mut self.buffer, record) {
                Ok(()) => self.buffer.push(b'\n'),
                Err(e) => {
                    self.buffer.truncate(start);
                    written.rejected.push((i, format!("cannot encode as JSON: {e}")));
                }
            }
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&self.buffer).and_then(|()| out.flush()).map_err(|e| ConnectorError::retryable("stdout sink", e))?;
        Ok(written)
    }
}
