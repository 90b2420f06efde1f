use etl::prelude::*;

fn main() {
    let v = vec![1i64, 2];
    let _run = pipeline! { iter(v) };
}
