use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
}

// The macro reads `param.field` in closures written in the pipeline; through another binding
// it cannot tell, and rustc reports the field on the user's token, listing the fields there.
fn main() {
    let orders: Vec<Order> = Vec::new();
    let _run = pipeline! {
        iter(orders) as Order
        | rename(amount_cents -> amount)
        | filter(|o| { let r = o; r.amount_cents > 0 })
        | stdout()
    };
}
