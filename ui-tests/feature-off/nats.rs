// Built without etl's `nats` feature: each `nats` step is one compile error naming the feature.
// `tests/ui.rs` checks it only in a run where the feature is off.
use etl::prelude::*;

fn main() {
    let _run = pipeline! { nats(stream = "ORDERS", durable = "etl") | stdout() };
    let _out = pipeline! { iter(vec![1i64]) | nats(subject = "numbers") };
}
