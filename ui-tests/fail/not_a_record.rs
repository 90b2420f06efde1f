use etl::prelude::*;

#[derive(Serialize, Deserialize)]
struct Order {
    id: i64,
}

fn main() {
    let orders = vec![Order { id: 1 }];
    let _run = pipeline! { iter(orders) as Order | blackhole() };
}
