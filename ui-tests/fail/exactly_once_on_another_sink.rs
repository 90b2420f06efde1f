use etl::prelude::*;

fn main() {
    let _run = pipeline! {
        kafka(topics = ["payments"], group = "ledger")
        | file(dir = "lake", exactly_once = true)
    };
}
