use etl::prelude::*;

#[derive(Record, Serialize, Deserialize)]
enum Status {
    Paid,
    Refunded,
}

fn main() {}
