// Built without etl's `s3` feature: the `s3` step is one compile error naming the feature.
// `tests/ui.rs` checks it only in a run where the feature is off.
use etl::prelude::*;

fn main() {
    let _run = pipeline! { iter(vec![1i64]) | s3(bucket = "b", format = "csv") };
}
