use etl::prelude::*;

#[stage]
async fn double(n: i64) -> Result<i64, etl::stage::Error> {
    Ok(n * 2)
}

fn main() {
    let _job = pipeline! { double | double };
}
