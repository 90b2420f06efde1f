use etl::prelude::*;

#[stage(retries = "x")]
async fn enrich(id: i64) -> Result<i64, String> {
    Ok(id)
}

fn main() {}
