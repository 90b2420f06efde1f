// Built without etl's `kafka` feature: each `kafka` step is one compile error naming the feature.
// `tests/ui.rs` checks it only in a run where the feature is off.
use etl::prelude::*;

fn main() {
    let _run = pipeline! { kafka(topics = ["orders"], group = "etl") | stdout() };
}
