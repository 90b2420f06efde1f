use etl::prelude::*;

#[stage(retries = 3, timeout = 5sec)]
async fn enrich(id: i64) -> Result<i64, String> {
    Ok(id)
}

fn main() {}
