use etl::prelude::*;

fn main() {
    let _run = pipeline! { iter(vec![1i64, 2]) | route { _ => stdout(), |n| *n > 1 => blackhole() } };
}
