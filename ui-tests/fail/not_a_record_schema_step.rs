use etl::prelude::*;

// Without `Record`, `Order` has no schema macro for `rename` to learn its fields from.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: i64,
    amount_cents: i64,
}

fn main() {
    let orders = vec![Order { id: 1, amount_cents: 250 }];
    let _run = pipeline! { iter(orders) as Order | rename(amount_cents -> amount) | stdout() };
}
