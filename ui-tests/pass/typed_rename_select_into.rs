// A typed chain: each step's closures see the fields of the record type the step before
// generated; `into` moves the fields into the user's struct.
#![deny(warnings)]

use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
    status: String,
}

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Paid {
    id: i64,
    amount: i64,
    buyer: String,
}

async fn run(orders: Vec<Order>) -> etl::Result<Vec<Paid>> {
    let out = etl::sink::collect();
    pipeline! {
        iter(orders) as Order
        | filter(|o| o.status == "paid")
        | rename(amount_cents -> amount, customer -> buyer)
        | inspect(|o| println!("{} {}", o.buyer, o.amount))
        | select(id, amount, buyer)
        | map(|mut o| { o.amount *= 2; o })
        | filter(|o| o.amount > 0)
        | into(Paid)
        | filter(|p: &Paid| p.id > 0)
        | collect(out)
    }
    .run()
    .await?;
    Ok(out.records())
}

fn main() {
    let _ = run;
}
