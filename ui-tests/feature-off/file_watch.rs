// Built without etl's `file-watch` feature: the `file_watch` step is one compile error naming
// the feature. `tests/ui.rs` checks it only in a run where the feature is off.
use etl::prelude::*;

fn main() {
    let _run = pipeline! { file_watch(dir = "inbox", patterns = ["*.json"]) | stdout() };
}
