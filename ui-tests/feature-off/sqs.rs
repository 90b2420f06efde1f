// Built without etl's `sqs` feature: each `sqs` step is one compile error naming the feature.
// `tests/ui.rs` checks it only in a run where the feature is off.
use etl::prelude::*;

fn main() {
    let _run = pipeline! { iter(vec![1i64]) | sqs(queue_url = "http://127.0.0.1:1/q", region = "x") };
}
