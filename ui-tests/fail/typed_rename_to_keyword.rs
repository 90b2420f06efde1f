use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
}

fn main() {
    let orders: Vec<Order> = Vec::new();
    let _run = pipeline! { iter(orders) as Order | rename(id -> self) | stdout() };
}
