use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    amount_cents: i64,
}

#[stage(retries = 5, backoff = 250ms)]
async fn enrich(o: Order) -> Result<Order, etl::Error> {
    Ok(o)
}

async fn lookup(id: i64) -> Result<String, String> {
    Ok(id.to_string())
}

async fn run(orders: Vec<Order>, keep_order: bool) -> etl::Result<()> {
    pipeline! {
        iter(orders) as Order
        | map(enrich, concurrency = 8, ordered = false) as Order
        | map(enrich, ordered = false)
        | map(|o| o.id)
        | map(lookup, ordered = keep_order, concurrency = 4)
        | map(|s| async move { Ok::<_, String>(s.len()) }, ordered = true) as usize
        | stdout()
    }
    .run()
    .await?;
    Ok(())
}

fn main() {
    let _ = run;
}
