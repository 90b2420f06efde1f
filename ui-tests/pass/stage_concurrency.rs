use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    amount_cents: i64,
}

#[stage(retries = 5, backoff = 250ms, max_backoff = 10s)]
async fn enrich(o: Order) -> Result<Order, etl::Error> {
    Ok(o)
}

async fn lookup(id: i64) -> Result<String, String> {
    Ok(id.to_string())
}

async fn run(orders: Vec<Order>) -> etl::Result<()> {
    let workers = 4;
    pipeline! {
        iter(orders) as Order
        | map(enrich, concurrency = 8)
        | map(|o| o.id)
        | map(lookup, concurrency = workers)
        | map(|s| async move { Ok::<_, String>(s.len()) }) as usize
        | stdout()
    }
    .run()
    .await?;
    Ok(())
}

fn main() {
    let _ = run;
}
