use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
}

mod stages {
    use super::Order;

    /// Looks the customer up (a service call in real life).
    #[etl::stage(retries = 3, backoff = 2.0, timeout = 10s)]
    pub async fn enrich(mut o: Order) -> Result<Order, etl::stage::Error> {
        if o.customer.is_empty() {
            return Err(etl::stage::Error::permanent("no customer"));
        }
        o.customer = o.customer.to_uppercase();
        Ok(o)
    }
}

#[stage(retries = 0)]
async fn cents(o: Order) -> Result<i64, std::io::Error> {
    Ok(o.amount_cents)
}

async fn run(orders: Vec<Order>) -> etl::Result<Vec<i64>> {
    let out = etl::sink::collect();
    pipeline! {
        iter(orders) as Order
        | filter(|o| o.amount_cents > 0)
        | map(stages::enrich) as Order
        | rename(amount_cents -> amount)
        | filter(|o| o.amount < 1_000)
        | rename(amount -> amount_cents)
        | into(Order)
        | map(cents)
        | collect(out)
    }
    .run()
    .await?;
    Ok(out.records())
}

async fn direct() -> Result<Order, etl::stage::Error> {
    stages::enrich(Order { id: 1, customer: "ada".into(), amount_cents: 1 }).await
}

fn main() {
    let _ = (run, direct);
}
