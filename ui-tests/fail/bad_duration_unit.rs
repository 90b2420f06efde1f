use etl::prelude::*;

fn main() {
    let _run = pipeline! { iter(vec![1i64, 2], batch_timeout = 2x) | stdout() };
}
