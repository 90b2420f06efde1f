use etl::prelude::*;

async fn lookup(id: i64) -> Result<i64, String> {
    Ok(id)
}

fn main() {
    let _run = pipeline! { iter(vec![1i64, 2]) | map(lookup) | stdout() };
}
