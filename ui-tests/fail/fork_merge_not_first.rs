use etl::prelude::*;

fn main() {
    let _run = pipeline! { iter(vec![1i64]) | merge(iter(vec![2i64]), iter(vec![3i64])) | stdout() };
}
