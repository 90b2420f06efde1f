//! `collect`: a sink that keeps records in memory behind a shared handle (tests).

use super::{Sink, Written};
use crate::error::ConnectorError;
use std::sync::{Arc, Mutex, MutexGuard};

/// The shared handle of a [`collect`] sink: read what was written.
#[derive(Debug)]
pub struct Collected<T> {
    records: Arc<Mutex<Vec<T>>>,
}

/// The sink side of [`collect`].
#[derive(Debug)]
pub struct Collect<T> {
    records: Arc<Mutex<Vec<T>>>,
}

/// A handle whose [`Collected::sink`] writes into memory; read the records back with
/// [`Collected::records`].
///
/// ```
/// let out = etl::sink::collect::<i64>();
/// let _sink = out.sink();
/// assert!(out.records().is_empty());
/// ```
pub fn collect<T>() -> Collected<T> {
    Collected { records: Arc::new(Mutex::new(Vec::new())) }
}

fn lock<T>(m: &Mutex<Vec<T>>) -> MutexGuard<'_, Vec<T>> {
    // A panic while holding the lock cannot leave a Vec half-updated; keep going.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<T> Collected<T> {
    /// A sink writing into this handle.
    pub fn sink(&self) -> Collect<T> {
        Collect { records: Arc::clone(&self.records) }
    }

    /// A copy of the records written so far.
    pub fn records(&self) -> Vec<T>
    where
        T: Clone,
    {
        lock(&self.records).clone()
    }

    /// How many records were written so far.
    pub fn len(&self) -> usize {
        lock(&self.records).len()
    }

    /// True when nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for Collected<T> {
    fn clone(&self) -> Self {
        Collected { records: Arc::clone(&self.records) }
    }
}

impl<T: Clone + Send + Sync> Sink<T> for Collect<T> {
    fn describe(&self) -> String {
        "collect".into()
    }

    async fn write(&mut self, records: &[T]) -> Result<Written, ConnectorError> {
        lock(&self.records).extend_from_slice(records);
        Ok(Written::all())
    }
}
