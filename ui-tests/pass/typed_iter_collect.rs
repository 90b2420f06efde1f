use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    amount_cents: i64,
}

async fn run(orders: Vec<Order>) -> etl::Result<Vec<i64>> {
    let out = etl::sink::collect();
    pipeline! {
        iter(orders) as Order
        | filter(|o| o.amount_cents > 0)
        | inspect(|o| println!("{}", o.id))
        | map(|o| o.amount_cents) as i64
        | collect(out)
    }
    .run()
    .await?;
    Ok(out.records())
}

fn main() {
    let _ = run;
}
