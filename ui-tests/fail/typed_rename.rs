use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    status: String,
}

fn main() {
    let _run = pipeline! { file(path = "orders.jsonl") as Order | rename(status -> state) | stdout() };
}
