use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
}

// After `select`, the records are a type the pipeline generated: the error names the step
// that made it.
fn main() {
    let orders: Vec<Order> = Vec::new();
    let _run = pipeline! {
        iter(orders) as Order
        | select(id, amount_cents)
        | filter(|o| o.amount_cent > 0)
        | stdout()
    };
}
