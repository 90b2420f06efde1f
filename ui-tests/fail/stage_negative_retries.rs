use etl::prelude::*;

#[stage(retries = -1)]
async fn enrich(id: i64) -> Result<i64, String> {
    Ok(id)
}

fn main() {}
