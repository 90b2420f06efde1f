use etl::prelude::*;

#[derive(Record, Serialize, Deserialize)]
struct Order(i64, String);

fn main() {}
