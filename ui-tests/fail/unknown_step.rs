use etl::prelude::*;

fn main() {
    let _run = pipeline! { iter(vec![1i64, -2]) | fliter(|n| *n > 0) | stdout() };
}
