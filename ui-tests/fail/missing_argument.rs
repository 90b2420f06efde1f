use etl::prelude::*;

fn main() {
    let _run = pipeline! { file(path = "in.jsonl") | file(format = "csv") };
}
