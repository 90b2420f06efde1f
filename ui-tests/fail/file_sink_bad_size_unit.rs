use etl::prelude::*;

fn main() {
    let _run = pipeline! { iter(vec![Json::default()]) | file(dir = "lake/{date}", max_file_bytes = 64XB) };
}
