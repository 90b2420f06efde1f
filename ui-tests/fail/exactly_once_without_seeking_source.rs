use etl::prelude::*;

fn main() {
    let _run = pipeline! {
        file(path = "payments.jsonl")
        | postgres(url = "postgres://127.0.0.1/test", table = "ledger", exactly_once = true)
    };
}
