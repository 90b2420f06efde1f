use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
}

#[stage(retries = 3)]
fn enrich(o: Order) -> Result<Order, String> {
    Ok(o)
}

fn main() {}
