//! Acknowledgement handles: how a source learns the fate of a batch it emitted.
//!
//! A status is a lattice, `Delivered < Rejected < Errored`, joined with `max`. One [`Ack`] can be
//! split into shares (when a batch is split or fanned out); the source's callback runs exactly
//! once, when the last share is gone, with the join of every share's status. Errored wins: when
//! one share failed (to be redelivered) and another had records dead-lettered, the source hears
//! `Errored` and redelivers the whole batch, so the failed share's records are never committed
//! past (the dead-lettered ones may be dead-lettered again; none is lost). A share dropped
//! without a status counts as [`Status::Errored`]: forgetting to acknowledge redelivers, it never
//! commits.
//!
//! Beside the handle, the trackers every broker source needs, pure structs that the connectors
//! wire to the network: the ordered [`Watermark`] (Kafka partitions, SSE ids, file-watcher
//! files), the unordered in-flight table [`Leases`] (SQS, RabbitMQ, NATS: per-message tokens
//! with lease deadlines) and [`Outstanding`] with [`settle_at_end`] (a stream's end waits for
//! the acknowledgements it owes).

mod leases;
mod outstanding;
mod watermark;

pub use leases::Leases;
pub use outstanding::{settle_at_end, Outstanding, OutstandingToken};
pub use watermark::Watermark;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// The fate of a batch (or of one share of it).
///
/// ```
/// use etl::ack::Status;
/// assert_eq!(Status::Delivered.join(Status::Rejected), Status::Rejected);
/// assert_eq!(Status::Rejected.join(Status::Errored), Status::Errored); // errored wins
/// assert_eq!(Status::Delivered.join(Status::Errored), Status::Errored);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Status {
    /// Every record was durably written by its sink (or filtered out).
    Delivered = 0,
    /// Some records were dead-lettered (poison) and the rest written: the batch is done and the
    /// source must not redeliver it.
    Rejected = 1,
    /// Something failed and a retry can help: the source redelivers (nack, seek back, ...).
    /// Wins over every other status.
    Errored = 2,
}

impl Status {
    /// The least upper bound of two statuses (the worse of the two).
    pub fn join(self, other: Status) -> Status {
        self.max(other)
    }

    /// True when the source may release the records from its custody (commit, ack, delete).
    ///
    /// ```
    /// use etl::ack::Status;
    /// assert!(Status::Delivered.is_done() && Status::Rejected.is_done());
    /// assert!(!Status::Errored.is_done());
    /// ```
    pub fn is_done(self) -> bool {
        self != Status::Errored
    }

    fn from_u8(v: u8) -> Status {
        match v {
            0 => Status::Delivered,
            1 => Status::Rejected,
            _ => Status::Errored,
        }
    }
}

type Callback = Box<dyn FnOnce(Status) + Send>;

struct Shared {
    status: AtomicU8,
    on_final: Mutex<Option<Callback>>,
    /// Steps that want the final status too ([`Ack::observe`]); empty (no allocation) for
    /// almost every batch.
    observers: Mutex<Vec<Callback>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Runs once, when the last share is gone: the source's callback first, then the
        // observers, in the order they were added.
        let status = Status::from_u8(*self.status.get_mut());
        let callback = match self.on_final.get_mut() {
            Ok(slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(callback) = callback {
            callback(status);
        }
        let observers = match self.observers.get_mut() {
            Ok(list) => std::mem::take(list),
            Err(poisoned) => std::mem::take(poisoned.into_inner()),
        };
        for observe in observers {
            observe(status);
        }
    }
}

/// One share of a batch's acknowledgement.
///
/// ```
/// use etl::ack::{Ack, Status};
/// let (ack, mut final_status) = Ack::channel();
/// let other = ack.share();
/// ack.resolve(Status::Delivered);
/// assert!(final_status.try_recv().is_err()); // one share still open
/// other.resolve(Status::Delivered);
/// assert_eq!(final_status.try_recv().unwrap(), Status::Delivered);
/// ```
pub struct Ack {
    shared: Arc<Shared>,
    resolved: bool,
}

impl Ack {
    /// A handle whose final status is passed to `on_final` exactly once.
    ///
    /// `on_final` runs in the thread that drops the last share: keep it short and non-blocking
    /// (send the status to the source's task).
    pub fn new(on_final: impl FnOnce(Status) + Send + 'static) -> Ack {
        Ack::with_callback(Some(Box::new(on_final)))
    }

    /// A handle paired with a receiver of its final status.
    pub fn channel() -> (Ack, tokio::sync::oneshot::Receiver<Status>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ack = Ack::new(move |status| {
            // The receiver may be gone when the source stopped listening; nothing to tell then.
            let _ = tx.send(status);
        });
        (ack, rx)
    }

    /// A handle for sources without acknowledgements (in-memory iterators, files read once).
    ///
    /// ```
    /// etl::ack::Ack::none().resolve(etl::ack::Status::Delivered);
    /// ```
    pub fn none() -> Ack {
        Ack::with_callback(None)
    }

    fn with_callback(callback: Option<Callback>) -> Ack {
        let shared =
            Shared { status: AtomicU8::new(Status::Delivered as u8), on_final: Mutex::new(callback), observers: Mutex::new(Vec::new()) };
        Ack { shared: Arc::new(shared), resolved: false }
    }

    /// Another share of the same acknowledgement; the final status waits for it too.
    pub fn share(&self) -> Ack {
        Ack { shared: Arc::clone(&self.shared), resolved: false }
    }

    /// Call `f` with the final status too, after the source's own callback, once the last
    /// share is gone. For a step that keeps something until the source has released the batch
    /// (a job step keeps each record's last checkpoint until its message is acknowledged, so
    /// that a redelivery does not run finished stages again). `f` runs in the thread that drops
    /// the last share: keep it short (send or spawn the work).
    ///
    /// ```
    /// use etl::ack::{Ack, Status};
    /// use std::sync::{Arc, Mutex};
    /// let seen = Arc::new(Mutex::new(None));
    /// let (ack, _final_status) = Ack::channel();
    /// let s = Arc::clone(&seen);
    /// ack.observe(move |status| *s.lock().unwrap() = Some(status));
    /// ack.resolve(Status::Rejected);
    /// assert_eq!(*seen.lock().unwrap(), Some(Status::Rejected));
    /// ```
    pub fn observe(&self, f: impl FnOnce(Status) + Send + 'static) {
        let mut observers = match self.shared.observers.lock() {
            Ok(list) => list,
            Err(poisoned) => poisoned.into_inner(),
        };
        observers.push(Box::new(f));
    }

    /// Whether a source listens to this acknowledgement (it was made with [`Ack::new`] or
    /// [`Ack::channel`]): an errored batch is then delivered again (nack, seek back, not
    /// committed). `false` for [`Ack::none`] (in-memory iterators, streams without
    /// acknowledgement), whose batches are never delivered again.
    ///
    /// ```
    /// use etl::ack::Ack;
    /// assert!(!Ack::none().is_tracked());
    /// assert!(Ack::new(|_| {}).is_tracked());
    /// ```
    pub fn is_tracked(&self) -> bool {
        match self.shared.on_final.lock() {
            Ok(slot) => slot.is_some(),
            Err(poisoned) => poisoned.into_inner().is_some(),
        }
    }

    /// Resolve this share with `status`.
    pub fn resolve(mut self, status: Status) {
        self.shared.status.fetch_max(status as u8, Ordering::AcqRel);
        self.resolved = true;
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if !self.resolved {
            self.shared.status.fetch_max(Status::Errored as u8, Ordering::AcqRel);
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack")
            .field("shares", &Arc::strong_count(&self.shared))
            .field("status_so_far", &Status::from_u8(self.shared.status.load(Ordering::Acquire)))
            .finish()
    }
}

#[cfg(test)]
mod tests;
