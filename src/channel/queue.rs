//! [`WorkQueue`]: the in-process work queue (claim, ack, nack, leases).

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// An in-process queue of messages (byte payloads) shared by producers and consumers: the
/// embedded stand-in for SQS or a JetStream work queue, with the same contract.
///
/// * A consumer **claims** messages; each claim is a lease carrying a token. [`ack`](Self::ack)
///   removes the message, [`nack`](Self::nack) puts it back at the head of the queue. Both
///   check the token: a consumer whose lease expired cannot ack a message that another consumer
///   now owns (the call returns [`LeaseError::Stale`]).
/// * A lease not resolved within `claim_timeout` expires and the message is claimed again.
/// * Every claim counts a delivery ([`Claim::deliveries`]), so consumers can dead-letter a
///   message delivered too many times instead of looping on it.
/// * [`push`](Self::push) waits while the queue holds `capacity` messages (ready or leased):
///   producers slow down to the consumers' pace instead of growing memory.
/// * After [`close`](Self::close), pushes fail and a consumer's [`claim`](Self::claim) returns
///   `None` once no message is ready (messages still leased are their holders' to resolve).
///
/// Claims, acks and nacks are O(1). Messages live in memory only: a process restart loses
/// what was not consumed (use SQS or JetStream where that matters).
///
/// ```
/// use etl::channel::WorkQueue;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let queue = WorkQueue::new();
/// queue.push("a".into()).await?;
/// queue.push("b".into()).await?;
/// let first = queue.try_claim().expect("a message is ready");
/// assert_eq!(&first.payload[..], b"a");
/// queue.nack(&first)?;                        // back at the head
/// let again = queue.try_claim().expect("redelivered");
/// assert_eq!((&again.payload[..], again.deliveries), (&b"a"[..], 2));
/// queue.ack(&again)?;
/// assert_eq!(queue.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct WorkQueue {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Woken on every change a waiting producer or consumer may care about.
    changed: Notify,
    capacity: usize,
    claim_timeout: Duration,
}

#[derive(Default)]
struct State {
    ready: VecDeque<Message>,
    leased: HashMap<u64, Lease>,
    /// Lease expiries in claim order. `claim_timeout` is the same for every lease, so the
    /// deadlines are sorted: expired leases are found at the front in O(1). Entries whose
    /// lease was resolved (or re-claimed with another token) are dropped by
    /// [`State::forget_resolved`], so the list stays about as long as `leased`.
    expiries: VecDeque<(Instant, u64, u64)>,
    next_id: u64,
    next_token: u64,
    closed: bool,
}

struct Message {
    id: u64,
    payload: Bytes,
    deliveries: u32,
}

struct Lease {
    message: Message,
    token: u64,
    /// When it expires (`None`: never); moved forward by [`WorkQueue::extend`].
    deadline: Option<Instant>,
}

/// A claimed message: its payload and the lease that [`WorkQueue::ack`] and
/// [`WorkQueue::nack`] check.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let queue = etl::channel::WorkQueue::new();
/// queue.push("x".into()).await.unwrap();
/// let claim = queue.try_claim().unwrap();
/// assert_eq!(claim.deliveries, 1);
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The message's id, unique in its queue.
    pub id: u64,
    /// The lease token of this claim.
    pub token: u64,
    /// The message's bytes.
    pub payload: Bytes,
    /// How many times the message has been claimed, this claim included.
    pub deliveries: u32,
}

impl Claim {
    pub(crate) fn lease(&self) -> LeaseId {
        LeaseId { id: self.id, token: self.token }
    }
}

/// What an acknowledgement needs of a claim: the message id and the lease token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct LeaseId {
    pub(crate) id: u64,
    pub(crate) token: u64,
}

/// Why an ack or nack was refused.
///
/// ```
/// let e = etl::channel::LeaseError::Stale { id: 3 };
/// assert!(e.to_string().contains("lease"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// The lease expired and the message was claimed again (or already acked): this consumer
    /// no longer owns it.
    #[error("message {id}: the lease expired or was resolved; another consumer owns the message now")]
    Stale {
        /// The message's id.
        id: u64,
    },
}

/// A push into a closed queue.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let queue = etl::channel::WorkQueue::new();
/// queue.close();
/// assert!(queue.push("late".into()).await.is_err());
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the work queue is closed")]
pub struct Closed;

impl Default for WorkQueue {
    fn default() -> Self {
        WorkQueue::new()
    }
}

impl std::fmt::Debug for WorkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("WorkQueue")
            .field("ready", &state.ready.len())
            .field("leased", &state.leased.len())
            .field("closed", &state.closed)
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

impl WorkQueue {
    /// A queue holding up to 10 000 messages, with leases of 5 minutes.
    pub fn new() -> WorkQueue {
        WorkQueue::with_limits(10_000, Duration::from_secs(300))
    }

    /// A queue holding up to `capacity` messages (ready or leased; at least 1), whose leases
    /// expire `claim_timeout` after the claim.
    ///
    /// ```
    /// let queue = etl::channel::WorkQueue::with_limits(100, std::time::Duration::from_secs(30));
    /// assert!(queue.is_empty());
    /// ```
    pub fn with_limits(capacity: usize, claim_timeout: Duration) -> WorkQueue {
        let shared = Shared { state: Mutex::default(), changed: Notify::new(), capacity: capacity.max(1), claim_timeout };
        WorkQueue { shared: Arc::new(shared) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated (every update is
        // a few infallible collection operations), so a poisoned lock is still consistent.
        self.shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn changed(&self) {
        self.shared.changed.notify_waiters();
    }

    /// Append a message, waiting while the queue is full.
    pub async fn push(&self, payload: Bytes) -> Result<(), Closed> {
        loop {
            let wake = self.shared.changed.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            {
                let mut state = self.lock();
                if state.closed {
                    return Err(Closed);
                }
                if state.ready.len() + state.leased.len() < self.shared.capacity {
                    let id = state.next_id;
                    state.next_id += 1;
                    state.ready.push_back(Message { id, payload, deliveries: 0 });
                    drop(state);
                    self.changed();
                    return Ok(());
                }
            }
            wake.await;
        }
    }

    /// Claim the message at the head of the queue, if one is ready (expired leases first go
    /// back to the head).
    pub fn try_claim(&self) -> Option<Claim> {
        let mut state = self.lock();
        let reclaimed = state.reclaim_expired(Instant::now());
        let claim = state.claim(self.shared.claim_timeout);
        drop(state);
        if reclaimed {
            self.changed();
        }
        claim
    }

    /// Wait for a message and claim it. Returns `None` when the queue is closed and no message
    /// is ready, or when `cancel` is cancelled.
    pub async fn claim(&self, cancel: &CancellationToken) -> Option<Claim> {
        loop {
            let wake = self.shared.changed.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let next_expiry = {
                let mut state = self.lock();
                state.reclaim_expired(Instant::now());
                if let Some(claim) = state.claim(self.shared.claim_timeout) {
                    return Some(claim);
                }
                // Closed and nothing ready: the end, even with leases outstanding. Their
                // holders resolve them (a consumer holding a partial batch is waiting for this
                // very `None` to flush it); a nacked one is back in the queue for whoever
                // claims next.
                if state.closed {
                    return None;
                }
                state.expiries.front().map(|(deadline, _, _)| *deadline)
            };
            let expiry = async {
                match next_expiry {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = wake => {}
                _ = expiry => {}
                _ = cancel.cancelled() => return None,
            }
        }
    }

    /// Wait for messages and claim up to `max` of them (at least 1) under one lock. Empty
    /// when [`claim`](Self::claim) would return `None`.
    pub(crate) async fn claim_many(&self, max: usize, cancel: &CancellationToken) -> Vec<Claim> {
        let Some(first) = self.claim(cancel).await else { return Vec::new() };
        let mut claims = Vec::with_capacity(max.max(1));
        claims.push(first);
        if max > 1 {
            let mut state = self.lock();
            while claims.len() < max {
                match state.claim(self.shared.claim_timeout) {
                    Some(claim) => claims.push(claim),
                    None => break,
                }
            }
        }
        claims
    }

    /// Remove a claimed message for good.
    pub fn ack(&self, claim: &Claim) -> Result<(), LeaseError> {
        self.resolve(claim.lease(), false)
    }

    /// Put a claimed message back at the head of the queue, to be claimed again at once.
    pub fn nack(&self, claim: &Claim) -> Result<(), LeaseError> {
        self.resolve(claim.lease(), true)
    }

    /// Ack (`requeue` false) or nack a lease.
    /// Extend the lease of `claim` by the queue's `claim_timeout` from now (a heartbeat of a
    /// consumer still working on the message), so that it is not claimed again meanwhile.
    /// Refused when the lease already expired or was resolved.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let queue = etl::channel::WorkQueue::new();
    /// queue.push("x".into()).await.unwrap();
    /// let claim = queue.try_claim().unwrap();
    /// queue.extend(&claim).unwrap();
    /// queue.ack(&claim).unwrap();
    /// assert!(queue.extend(&claim).is_err());
    /// # });
    /// ```
    pub fn extend(&self, claim: &Claim) -> Result<(), LeaseError> {
        self.extend_lease(claim.lease())
    }

    pub(crate) fn extend_lease(&self, lease: LeaseId) -> Result<(), LeaseError> {
        let mut state = self.lock();
        let now = Instant::now();
        state.reclaim_expired(now);
        let deadline = now.checked_add(self.shared.claim_timeout);
        match state.leased.get_mut(&lease.id) {
            Some(held) if held.token == lease.token => held.deadline = deadline,
            _ => return Err(LeaseError::Stale { id: lease.id }),
        }
        // Later than every deadline listed (the timeout is the same for all): the list stays
        // sorted; the entry it supersedes is dropped by `forget_resolved` or skipped when due.
        if let Some(deadline) = deadline {
            state.expiries.push_back((deadline, lease.id, lease.token));
        }
        state.forget_resolved();
        Ok(())
    }

    /// The claim timeout of this queue.
    pub(crate) fn claim_timeout(&self) -> Duration {
        self.shared.claim_timeout
    }

    pub(crate) fn resolve(&self, lease: LeaseId, requeue: bool) -> Result<(), LeaseError> {
        let mut state = self.lock();
        let message = state.take_lease(lease)?;
        if requeue {
            state.ready.push_front(message);
        }
        drop(state);
        self.changed();
        Ok(())
    }

    /// [`resolve`](Self::resolve) every lease under one lock, with one wake-up; the refused
    /// ones are logged.
    pub(crate) fn resolve_all(&self, leases: &[LeaseId], requeue: bool) {
        let mut state = self.lock();
        // Requeued in reverse so that the batch's first message is at the head again.
        for &lease in leases.iter().rev() {
            match state.take_lease(lease) {
                Ok(message) if requeue => state.ready.push_front(message),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "work-queue acknowledgement refused; the message may be processed twice"),
            }
        }
        drop(state);
        self.changed();
    }

    /// Refuse new messages. Consumers drain what is left, then their claims return `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Messages in the queue: ready and leased.
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.ready.len() + state.leased.len()
    }

    /// Whether the queue holds no message, ready or leased.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages claimed and not yet acked or nacked.
    pub fn in_flight(&self) -> usize {
        self.lock().leased.len()
    }
}

impl State {
    /// Move expired leases back to the head of the queue. Returns whether any moved.
    fn reclaim_expired(&mut self, now: Instant) -> bool {
        let mut expired = Vec::new();
        while let Some(&(deadline, id, token)) = self.expiries.front() {
            if deadline > now {
                break;
            }
            self.expiries.pop_front();
            // An entry superseded by an extension (the lease's deadline moved) expires nothing.
            if self.leased.get(&id).is_some_and(|lease| lease.token == token && lease.deadline.is_some_and(|d| d <= now)) {
                if let Some(lease) = self.leased.remove(&id) {
                    expired.push(lease.message);
                }
            }
        }
        let any = !expired.is_empty();
        // Oldest claim first at the head.
        for message in expired.into_iter().rev() {
            tracing::debug!(id = message.id, "work-queue lease expired; the message is claimable again");
            self.ready.push_front(message);
        }
        any
    }

    fn claim(&mut self, claim_timeout: Duration) -> Option<Claim> {
        let mut message = self.ready.pop_front()?;
        message.deliveries = message.deliveries.saturating_add(1);
        let token = self.next_token;
        self.next_token += 1;
        let claim = Claim { id: message.id, token, payload: message.payload.clone(), deliveries: message.deliveries };
        // A timeout too long to add to the clock (`Duration::MAX`: never) has no expiry.
        let deadline = Instant::now().checked_add(claim_timeout);
        if let Some(deadline) = deadline {
            self.expiries.push_back((deadline, message.id, token));
        }
        self.leased.insert(message.id, Lease { message, token, deadline });
        Some(claim)
    }

    fn take_lease(&mut self, lease: LeaseId) -> Result<Message, LeaseError> {
        match self.leased.get(&lease.id) {
            Some(held) if held.token == lease.token => {}
            _ => return Err(LeaseError::Stale { id: lease.id }),
        }
        let message = self.leased.remove(&lease.id).map(|held| held.message).ok_or(LeaseError::Stale { id: lease.id })?;
        self.forget_resolved();
        Ok(message)
    }

    /// Drop the expiries of leases resolved since: those at the front (leases are mostly
    /// resolved in claim order), and all of them once they outnumber the live leases twice
    /// over (one long-held lease at the front), so that memory follows the messages in flight,
    /// not the messages claimed within the last `claim_timeout`.
    fn forget_resolved(&mut self) {
        let live = |leased: &HashMap<u64, Lease>, &(deadline, id, token): &(Instant, u64, u64)| {
            leased.get(&id).is_some_and(|l| l.token == token && l.deadline == Some(deadline))
        };
        while self.expiries.front().is_some_and(|entry| !live(&self.leased, entry)) {
            self.expiries.pop_front();
        }
        if self.expiries.len() > 2 * self.leased.len() + 64 {
            let leased = &self.leased;
            self.expiries.retain(|entry| live(leased, entry));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn queue_of(capacity: usize, timeout: Duration, messages: &[&'static str]) -> WorkQueue {
        let queue = WorkQueue::with_limits(capacity, timeout);
        for m in messages {
            queue.push(Bytes::from_static(m.as_bytes())).await.expect("open queue");
        }
        queue
    }

    #[tokio::test]
    async fn resolved_leases_leave_no_expiry_behind() {
        let queue = WorkQueue::with_limits(10, Duration::from_secs(300));
        // One lease held all along sits at the front; 1 000 others are claimed and acked.
        queue.push(Bytes::from_static(b"held")).await.expect("open queue");
        let held = queue.try_claim().expect("held");
        for _ in 0..1000 {
            queue.push(Bytes::from_static(b"m")).await.expect("open queue");
            let claim = queue.try_claim().expect("m");
            queue.ack(&claim).expect("own lease");
        }
        let expiries = queue.lock().expiries.len();
        assert!(expiries <= 2 + 64, "{expiries} expiries kept for 1 lease in flight");
        queue.ack(&held).expect("own lease");
        assert_eq!(queue.lock().expiries.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_extended_lease_outlives_its_first_deadline_and_a_stale_one_cannot_be_extended() {
        let timeout = Duration::from_secs(10);
        let queue = queue_of(10, timeout, &["a", "b"]).await;
        let (a, b) = (queue.try_claim().expect("a"), queue.try_claim().expect("b"));
        tokio::time::advance(Duration::from_secs(6)).await;
        queue.extend(&a).expect("own lease");
        tokio::time::advance(Duration::from_secs(6)).await;
        // b expired at 10 s and is claimable again; a was extended to 16 s.
        let again = queue.try_claim().expect("b again");
        assert_eq!((again.id, again.deliveries), (b.id, 2));
        assert!(queue.try_claim().is_none(), "a is still leased");
        assert_eq!(queue.extend(&b), Err(LeaseError::Stale { id: b.id }), "b's old lease is gone");
        tokio::time::advance(Duration::from_secs(5)).await;
        let a_again = queue.try_claim().expect("a expired at 16 s");
        assert_eq!(a_again.id, a.id);
        assert_eq!(queue.ack(&a), Err(LeaseError::Stale { id: a.id }));
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_extensions_keep_the_expiry_list_short() {
        let queue = queue_of(10, Duration::from_secs(10), &["a"]).await;
        let a = queue.try_claim().expect("a");
        for _ in 0..1000 {
            tokio::time::advance(Duration::from_secs(1)).await;
            queue.extend(&a).expect("own lease");
        }
        assert!(queue.lock().expiries.len() <= 2, "{} expiries for one lease", queue.lock().expiries.len());
        queue.ack(&a).expect("own lease");
        assert!(queue.is_empty() && queue.lock().expiries.is_empty());
    }

    #[tokio::test]
    async fn a_claim_timeout_of_duration_max_never_expires() {
        let queue = queue_of(1, Duration::MAX, &["a"]).await;
        let claim = queue.try_claim().expect("a");
        assert!(queue.try_claim().is_none());
        queue.ack(&claim).expect("own lease");
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn fifo_ack_removes_nack_redelivers_first() {
        let q = queue_of(10, Duration::from_secs(60), &["a", "b", "c"]).await;
        let a = q.try_claim().expect("a");
        let b = q.try_claim().expect("b");
        assert_eq!((&a.payload[..], &b.payload[..]), (&b"a"[..], &b"b"[..]));
        q.ack(&b).expect("own lease");
        q.nack(&a).expect("own lease");
        let again = q.try_claim().expect("a again");
        assert_eq!((&again.payload[..], again.deliveries), (&b"a"[..], 2));
        assert_eq!(q.len(), 2);
        assert_eq!(q.in_flight(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_lease_is_reclaimed_and_the_stale_ack_refused() {
        let q = queue_of(10, Duration::from_secs(30), &["a"]).await;
        let first = q.try_claim().expect("a");
        assert!(q.try_claim().is_none());
        tokio::time::advance(Duration::from_secs(31)).await;
        let second = q.try_claim().expect("reclaimed");
        assert_eq!(second.deliveries, 2);
        assert_eq!(q.ack(&first), Err(LeaseError::Stale { id: first.id }));
        assert_eq!(q.nack(&first), Err(LeaseError::Stale { id: first.id }));
        q.ack(&second).expect("current lease");
        assert!(q.is_empty());
        assert_eq!(q.ack(&second), Err(LeaseError::Stale { id: second.id }), "acked twice");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_claim_wakes_on_expiry() {
        let q = queue_of(10, Duration::from_secs(5), &["a"]).await;
        let _lost = q.try_claim().expect("a");
        let started = Instant::now();
        let again = q.claim(&CancellationToken::new()).await.expect("reclaimed after 5 s");
        assert_eq!(again.deliveries, 2);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn push_waits_while_full() {
        let q = queue_of(2, Duration::from_secs(60), &["a", "b"]).await;
        let pusher = {
            let q = q.clone();
            tokio::spawn(async move { q.push(Bytes::from_static(b"c")).await })
        };
        tokio::task::yield_now().await;
        assert!(!pusher.is_finished());
        let a = q.try_claim().expect("a");
        assert_eq!(q.len(), 2, "a leased message still takes room");
        q.ack(&a).expect("own lease");
        pusher.await.expect("no panic").expect("room now");
        assert_eq!(q.len(), 2);
    }

    #[tokio::test]
    async fn close_drains_then_ends_consumers() {
        let q = queue_of(10, Duration::from_secs(60), &["a", "b"]).await;
        q.close();
        assert_eq!(q.push(Bytes::from_static(b"late")).await, Err(Closed));
        let never = CancellationToken::new();
        let a = q.claim(&never).await.expect("still drains");
        let b = q.claim(&never).await.expect("still drains");
        // Nothing ready, `b` leased: the end for this consumer (which may be holding `b` in a
        // partial batch until its source ends).
        assert_eq!(q.claim(&never).await, None);
        q.nack(&a).expect("own lease");
        let again = q.claim(&never).await.expect("the nacked message is ready again");
        q.ack(&again).expect("own lease");
        q.ack(&b).expect("own lease");
        assert_eq!(q.claim(&never).await, None);
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn claim_returns_on_cancel() {
        let q = WorkQueue::new();
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert_eq!(q.claim(&cancel).await, None);
    }
}
