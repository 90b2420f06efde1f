use etl::prelude::*;

#[stage(retry = 3, backoff = 500ms)]
async fn enrich(id: i64) -> Result<i64, String> {
    Ok(id)
}

fn main() {}
