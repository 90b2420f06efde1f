// Built without etl's `rabbitmq` feature: each `rabbitmq` step is one compile error naming the
// feature. `tests/ui.rs` checks it only in a run where the feature is off.
use etl::prelude::*;

fn main() {
    let _run = pipeline! { rabbitmq(queue = "orders") | rabbitmq(routing_key = "orders-clean") };
}
