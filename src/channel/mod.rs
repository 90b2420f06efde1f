//! In-process channels: the embedded defaults that stand in for a broker, so a pipeline runs
//! with nothing installed.
//!
//! [`WorkQueue`] is a work queue with claims, leases, acks and nacks (the contract of SQS and
//! of a JetStream work queue). [`WorkQueue::sink`] feeds it from one pipeline and
//! [`WorkQueue::source`] consumes it in another, with end-to-end acknowledgement:
//!
//! ```
//! use etl::prelude::*;
//! use etl::channel::WorkQueue;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let queue = WorkQueue::new();
//! Pipeline::from(etl::source::iter(vec![1i64, 2, 3])).to(queue.sink()).handle_signals(false).run().await?;
//! queue.close(); // the consumer ends once the queue is drained
//! let out = etl::sink::collect();
//! Pipeline::from(queue.source::<i64>()).to(out.sink()).handle_signals(false).run().await?;
//! assert_eq!(out.records(), vec![1, 2, 3]);
//! assert!(queue.is_empty());
//! # Ok::<(), etl::Error>(()) }).unwrap();
//! ```
//!
//! [`Broadcast`] is a bounded, sequence-numbered log that every named subscriber reads at its
//! own pace (a fan-out): [`Broadcast::sink`] appends, [`Broadcast::subscribe`] is one
//! subscriber's source, and a full log either makes the producer wait or drops the oldest
//! entries and tells the lagging subscribers how many they missed ([`Overflow`]).

mod broadcast;
mod queue;
mod sink;
mod source;
mod workers;

pub use broadcast::{missed, Broadcast, BroadcastClosed, BroadcastSink, Overflow, SubscribeError, Subscriber, Subscription, MISSED_HEADER};
pub use queue::{Claim, Closed, LeaseError, WorkQueue};
pub use sink::QueueSink;
pub use source::QueueSource;
