use etl::prelude::*;

// No `as Type` after the source: the records are `etl::Json`, which has no fields.
fn main() {
    let _run = pipeline! {
        file(path = "orders.jsonl")
        | filter(|o| o.status != "test")
        | stdout()
    };
}
