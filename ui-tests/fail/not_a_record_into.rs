use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    amount_cents: i64,
}

mod shop {
    // Without `Record`: `into` cannot learn its fields (the second schema the pipeline asks for).
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub struct Payment {
        pub id: i64,
        pub amount: i64,
    }
}

fn main() {
    let orders = vec![Order { id: 1, amount_cents: 250 }];
    let _run = pipeline! { iter(orders) as Order | rename(amount_cents -> amount) | into(shop::Payment) | stdout() };
}
