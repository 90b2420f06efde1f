use etl::prelude::*;

#[stage]
async fn enrich(id: i64) -> Result<i64, String> {
    Ok(id)
}

fn main() {
    let _run = pipeline! { iter(vec![1i64, 2], batch_size = -10) | map(enrich, concurrency = -1) | stdout() };
}
