//! # etl
//!
//! Streaming ETL pipelines, typed and checked at compile time, with at-least-once delivery.
//!
//! A pipeline reads batches from a [`Source`], transforms them with [`Operator`]s fused into one
//! stream (no channel, no copy between steps), and writes them to a [`Sink`]. A source's
//! acknowledgement (commit, ack, delete) happens only after the sink durably wrote the batch or
//! its failed records were written to the [dead-letter queue](dead_letter).
//!
//! ```
//! use etl::prelude::*;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let out = etl::sink::collect();
//! let report = Pipeline::from(etl::source::iter(vec![3, -1, 4]))
//!     .filter(|n: &i64| *n > 0)
//!     .to(out.sink())
//!     .handle_signals(false)
//!     .run()
//!     .await?;
//! assert_eq!(out.records(), vec![3, 4]);
//! assert_eq!(report.filtered(), 1);
//! # Ok::<(), etl::Error>(()) }).unwrap();
//! ```

#![warn(missing_docs)]

#[doc(hidden)]
#[path = "macro_support.rs"]
pub mod __private;
pub mod ack;
#[cfg(any(feature = "sqs", feature = "s3"))]
mod aws;
pub mod batch;
mod blocking;
pub mod channel;
pub mod checkpoint;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod dead_letter;
mod durable;
mod error;
pub mod fanout;
pub mod format;
pub mod job;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "nats")]
mod nats;
pub mod operator;
pub mod pipeline;
pub mod positions;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
pub mod record;
pub mod resources;
pub mod retry;
pub mod sink;
pub mod source;
pub mod stage;
pub mod system;
mod telemetry;

pub use config::ConfigError;
pub use error::{BoxError, ConnectorError, Error, Result, Retry};
#[cfg(feature = "cli")]
pub use etl_macros::main;
pub use etl_macros::{pipeline, stage};
pub use operator::Operator;
pub use pipeline::{Pipeline, RunReport};
pub use record::{Json, Record};
pub use sink::Sink;
pub use source::Source;

/// Everything a pipeline author needs: `use etl::prelude::*;`.
pub mod prelude {
    pub use crate::batch::{Batch, BatchOptions};
    pub use crate::format::Format;
    pub use crate::operator::Operator;
    pub use crate::pipeline::{Pipeline, RetryPolicy, RunReport};
    pub use crate::record::{Json, Record};
    pub use crate::sink::Sink;
    pub use crate::source::Source;
    pub use etl_macros::{pipeline, stage};
    pub use serde::{Deserialize, Serialize};
}
