// Built without etl's `websocket` feature: the `websocket` step is one compile error naming the
// feature. `tests/ui.rs` checks it only in a run where the feature is off.
use etl::prelude::*;

fn main() {
    let _run = pipeline! { websocket(url = "ws://127.0.0.1:1/feed", data_format = "json") | stdout() };
}
