// Built without etl's `sse` feature (`default-features = false`): the `sse` step is one compile
// error naming the feature. `tests/ui.rs` checks it only in a run where the feature is off.
use etl::prelude::*;

fn main() {
    let _run = pipeline! { sse(url = "http://127.0.0.1:1/events", data_format = "json") | stdout() };
}
