use etl::prelude::*;

fn main() {
    let _run = pipeline! { merge(iter(vec![1i64, 2])) | stdout() };
}
