//! The connector contract (tests/common/contract.rs) for the RabbitMQ source and sink against
//! the broker at `RABBITMQ_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`; a missing
//! broker is a failure saying how to start it).
//!
//! The source's store is the queue: `custody` reads `rabbitmqctl list_queues` (messages ready
//! and unacknowledged); a message is acknowledged once the broker has forgotten it. Each test
//! has a queue of its own.
//!
//! Sink failures are real: the sink talks to the broker through a TCP proxy
//! (tests/common/proxy.rs) that the harness cuts before a write (the write or its commit
//! fails: the connection is gone) or right after a write (its commit fails: the confirms never
//! come); the pipeline writes the uncommitted batches again on a new connection. Unroutable
//! messages (returned by the broker) are tested in tests/rabbitmq.rs.

mod common;
#[path = "common/proxy.rs"]
mod proxy;
#[path = "common/rabbitmq.rs"]
mod rabbit;

use bytes::Bytes;
use common::contract::{Batching, Custody, Hook, Mode, Phase, Promise, SinkHarness, SourceHarness};
use etl::record::{Extra, Position};
use etl::Json;
use lapin::{Channel, Connection};
use proxy::TcpProxy;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

struct RabbitSourceHarness {
    _connection: Connection,
    channel: Channel,
    queue: String,
    put: usize,
}

impl RabbitSourceHarness {
    async fn new() -> Self {
        let (connection, channel) = rabbit::admin().await;
        let queue = rabbit::queue(&channel, "contract", false).await;
        RabbitSourceHarness { _connection: connection, channel, queue, put: 0 }
    }
}

impl SourceHarness for RabbitSourceHarness {
    type Source = etl::source::RabbitmqSource<Json>;

    fn name(&self) -> String {
        "rabbitmq".into()
    }

    fn source(&mut self, mode: Mode, batching: Batching) -> Self::Source {
        let source = etl::source::rabbitmq::<Json>(&self.queue).url(rabbit::url());
        let source = match mode {
            Mode::Live => source,
            Mode::Drain => {
                let drain = CancellationToken::new();
                drain.cancel();
                source.drain_after(drain)
            }
        };
        batching.apply(source)
    }

    async fn put(&mut self, payloads: &[Bytes]) {
        let messages: Vec<(String, Bytes)> = payloads.iter().enumerate().map(|(i, p)| (format!("m-{}", self.put + i), p.clone())).collect();
        self.put += payloads.len();
        rabbit::publish(&self.channel, &self.queue, &messages).await;
    }

    async fn custody(&self) -> Option<Custody> {
        let (ready, unacked) = rabbit::depth(&self.queue).await;
        let held = (ready + unacked) as usize;
        assert!(held <= self.put, "the queue holds more messages ({held}) than were put ({})", self.put);
        Some(Custody { acknowledged: self.put - held, ready: ready as usize })
    }

    fn position(&self, index: usize) -> Position {
        Position::Id(format!("m-{index}"))
    }

    fn check_extra(&self, index: usize, extra: Option<&Extra>) -> Result<(), String> {
        let extra = extra.ok_or("no extras")?;
        if extra.event_type.as_deref() != Some(self.queue.as_str()) {
            return Err(format!("event_type should be the queue's name {}", self.queue));
        }
        if extra.key.as_deref() != Some(self.queue.as_bytes()) {
            return Err("key should be the routing key (the queue's name, through the default exchange)".into());
        }
        if extra.exchange.as_deref() != Some("") {
            return Err("exchange should be the default exchange, \"\"".into());
        }
        if extra.message_id.as_deref() != Some(format!("m-{index}").as_str()) {
            return Err(format!("message_id should be m-{index}"));
        }
        if extra.redelivered != Some(false) || extra.delivery_count != Some(1) {
            return Err("a first delivery: redelivered false, delivery_count 1".into());
        }
        if extra.delivery_tag.is_none_or(|t| t == 0) {
            return Err("a delivery tag".into());
        }
        if !extra.headers.is_empty() {
            return Err("no headers were set".into());
        }
        Ok(())
    }

    fn binary_safe(&self) -> bool {
        true
    }
}

common::contract::source_contract!(RabbitSourceHarness::new().await);

// ---------------------------------------------------------------------------------------------
// The RabbitMQ sink

struct RabbitSinkHarness {
    _connection: Connection,
    channel: Channel,
    queue: String,
    exchange: String,
    proxy: Option<TcpProxy>,
}

impl RabbitSinkHarness {
    async fn new() -> Self {
        let (connection, channel) = rabbit::admin().await;
        let queue = rabbit::queue(&channel, "contract-sink", false).await;
        let exchange = rabbit::exchange(&channel, "contract-sink").await;
        rabbit::bind(&channel, &queue, &exchange, "records").await;
        RabbitSinkHarness { _connection: connection, channel, queue, exchange, proxy: None }
    }
}

impl SinkHarness for RabbitSinkHarness {
    type Sink = etl::sink::RabbitmqSink<etl::sink::rabbitmq::FixedKey>;

    fn name(&self) -> String {
        "rabbitmq".into()
    }

    fn promise(&self) -> Promise {
        Promise::AtLeastOnce
    }

    async fn fail(&mut self, phase: Phase, times: usize) -> Option<Hook> {
        let proxy = TcpProxy::start(rabbit::addr()).await;
        self.proxy = Some(proxy.clone());
        let left = Arc::new(AtomicUsize::new(times));
        Some(Box::new(move |call, ok| {
            let cut_now = match (phase, call, ok) {
                // Cut before the write: it (or its commit) fails on a dead connection.
                (Phase::Write, Phase::Write, None) => true,
                // Cut right after the write: its commit never hears the confirms.
                (Phase::Commit, Phase::Write, Some(true)) => true,
                _ => false,
            };
            if cut_now && left.load(Ordering::SeqCst) > 0 {
                proxy.cut();
            }
            if ok == Some(false) && left.load(Ordering::SeqCst) > 0 {
                left.fetch_sub(1, Ordering::SeqCst);
                proxy.restore();
            }
        }))
    }

    async fn sink(&mut self) -> Self::Sink {
        let url = self.proxy.as_ref().map_or_else(rabbit::url, |p| rabbit::url_via(p.addr));
        etl::sink::rabbitmq("records").exchange(&self.exchange).url(url).retry(etl::pipeline::RetryPolicy::never())
    }

    async fn read_back(&mut self) -> Vec<Vec<Json>> {
        let bodies = rabbit::drain(&self.channel, &self.queue).await;
        assert_eq!(rabbit::depth(&self.queue).await, (0, 0), "read back every message");
        bodies.iter().map(|b| vec![serde_json::from_slice(b).expect("a JSON body")]).collect()
    }
}

mod rabbitmq_sink {
    use super::*;
    common::contract::sink_contract!(RabbitSinkHarness::new().await);
}
