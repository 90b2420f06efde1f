use etl::dead_letter::FileDeadLetters;
use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    amount_cents: i64,
}

async fn run(queue: String) -> etl::Result<()> {
    pipeline! {
        dead_letters(path = queue, batch_size = 100, batch_timeout = 2s) as Order
        | filter(|o| o.amount_cents > 0)
        | file(dir = "lake/orders")
    }
    .dead_letters(FileDeadLetters::new("dead-letters/orders-replay.jsonl"))
    .run()
    .await?;
    // Without `as`: dynamic records.
    pipeline! { dead_letters(path = "dead-letters/events.jsonl") | stdout() }.run().await?;
    Ok(())
}

fn main() {
    let _ = run;
}
