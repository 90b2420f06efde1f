use etl::prelude::*;

fn main() {
    let _run = pipeline! { sse(url = "http://127.0.0.1:1/events", data_format = "xml") | stdout() };
}
