use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
}

impl Order {
    fn is_test(&self) -> bool {
        self.customer == "test"
    }
}

// A method of `Order` called on the record `select` made: rustc's error, which names the
// generated type after the step (`Order_after_select`).
fn main() {
    let orders: Vec<Order> = Vec::new();
    let _run = pipeline! {
        iter(orders) as Order
        | select(id, customer)
        | filter(|o| !o.is_test())
        | stdout()
    };
}
