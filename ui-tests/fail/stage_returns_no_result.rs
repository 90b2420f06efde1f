use etl::prelude::*;

#[stage]
async fn enrich(id: i64) -> i64 {
    id + 1
}

fn main() {}
