use etl::prelude::*;

fn main() {
    let _run = pipeline! { file_watch(dir = "inbox", format = "parquet") | stdout() };
}
