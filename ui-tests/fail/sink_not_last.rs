use etl::prelude::*;

fn main() {
    let _run = pipeline! { iter(vec![1i64, 2]) | stdout() | map(|n| n + 1) | blackhole() };
}
