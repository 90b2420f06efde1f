use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    amount: i64,
}

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Payment {
    id: i64,
    amount: i64,
}

fn main() {
    let orders = vec![Order { id: 1, amount: 2 }];
    // No `as Order`: the macro cannot see the type, so `into` is the run-time `Json` decoder.
    let _run = pipeline! { iter(orders) | into(Payment) | stdout() };
}
