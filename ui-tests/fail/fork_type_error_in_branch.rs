use etl::prelude::*;

fn main() {
    // The records at the fork are `i64`: the second branch's closure takes a `String`.
    let _run = pipeline! {
        iter(vec![1i64, 2])
        | broadcast {
            stdout(),
            map(|text: String| text.len()) | stdout(),
          }
    };
}
