use etl::prelude::*;

fn main() {
    let _run = pipeline! {
        iter(vec![serde_json::json!({"id": 1})])
        | postgres(url = "postgres://127.0.0.1/test", table = "orders", mode = replace(id))
    };
}
