use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
}

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Payment {
    id: i64,
    customer: String,
    amount: i64,
}

fn main() {
    let orders: Vec<Order> = Vec::new();
    let _run = pipeline! { iter(orders) as Order | drop(amount_cents) | into(Payment) | stdout() };
}
