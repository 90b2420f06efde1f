use etl::prelude::*;

fn main() {
    let _run = pipeline! { iter(vec![1i64, 2], batchsize = 10) | stdout() };
}
