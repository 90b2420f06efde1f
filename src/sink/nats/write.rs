//! The I/O of the NATS sink: JetStream publishes whose acknowledgements `commit` awaits.

use crate::error::ConnectorError;
use crate::nats::api_error;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::HeaderMap;
use bytes::Bytes;
use std::future::IntoFuture;

/// An open JetStream publisher.
pub(super) struct Open {
    pub js: async_nats::jetstream::Context,
    /// The server's largest payload: a larger message is refused at `write`.
    pub max_payload: usize,
    /// Publishes not yet acknowledged by the stream.
    pub pending: Vec<PublishAckFuture>,
    pub component: String,
}

/// Why a message was not published.
pub(super) enum SendError {
    /// Never will be (too large): reject the record.
    Rejected(String),
    /// The write fails.
    Failed(ConnectorError),
}

impl Open {
    /// Publish one message; its acknowledgement is awaited by [`settle`](Open::settle).
    pub(super) async fn send(&mut self, subject: String, headers: HeaderMap, payload: Bytes) -> Result<(), SendError> {
        if payload.len() > self.max_payload {
            return Err(SendError::Rejected(format!(
                "the message ({} bytes) is larger than the server's max_payload ({} bytes)",
                payload.len(),
                self.max_payload
            )));
        }
        // A message without headers goes as a plain PUB (an empty header block still costs
        // the server a parse per message).
        let published = if headers.is_empty() {
            self.js.publish(subject, payload).await
        } else {
            self.js.publish_with_headers(subject, headers, payload).await
        };
        match published {
            Ok(ack) => {
                self.pending.push(ack);
                Ok(())
            }
            Err(e) => Err(SendError::Failed(api_error(&self.component, "publish", e))),
        }
    }

    /// Wait for the stream's acknowledgement of every message published since the last call.
    /// The first failure is returned (retryable unless the stream refused for good); the
    /// pipeline then publishes the uncommitted batches again, with the same `Nats-Msg-Id`s.
    pub(super) async fn settle(&mut self) -> Result<(), ConnectorError> {
        let pending = std::mem::take(&mut self.pending);
        let count = pending.len();
        let answers = futures::future::join_all(pending.into_iter().map(|ack| ack.into_future())).await;
        let mut failed = 0usize;
        let mut first: Option<ConnectorError> = None;
        let mut duplicates = 0usize;
        for answer in answers {
            match answer {
                Ok(ack) => duplicates += usize::from(ack.duplicate),
                Err(e) => {
                    failed += 1;
                    if first.is_none() {
                        let retryable = matches!(
                            e.kind(),
                            PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe | PublishErrorKind::MaxAckPending
                        ) || matches!(e.kind(), PublishErrorKind::Other | PublishErrorKind::StreamNotFound if e.to_string().to_ascii_lowercase().contains("no responders"));
                        let message = format!("the stream did not acknowledge a publish: {e}");
                        first = Some(if retryable {
                            ConnectorError::retryable(self.component.clone(), message)
                        } else {
                            api_error(&self.component, "publish", e)
                        });
                    }
                }
            }
        }
        if duplicates > 0 {
            tracing::debug!(component = %self.component, duplicates, "messages already in the stream (same Nats-Msg-Id): stored once");
        }
        match first {
            None => Ok(()),
            Some(e) => {
                tracing::warn!(component = %self.component, failed, count, error = %e, "publishes were not acknowledged");
                Err(e)
            }
        }
    }
}
