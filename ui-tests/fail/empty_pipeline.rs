use etl::prelude::*;

fn main() {
    let _run = pipeline! {};
}
