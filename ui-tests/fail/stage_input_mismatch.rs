use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
}

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Payment {
    id: i64,
}

#[stage]
async fn enrich(o: Order) -> Result<Order, String> {
    Ok(o)
}

fn main() {
    let payments = vec![Payment { id: 1 }];
    let _run = pipeline! { iter(payments) as Payment | map(enrich) | stdout() };
}
