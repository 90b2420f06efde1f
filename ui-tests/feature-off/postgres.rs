// Built without etl's `postgres` feature: the `postgres` step is one compile error naming the
// feature. `tests/ui.rs` checks it only in a run where the feature is off.
use etl::prelude::*;

fn main() {
    let _run = pipeline! { iter(vec![1i64]) | postgres(url = "postgres://127.0.0.1/test", table = "t") };
}
