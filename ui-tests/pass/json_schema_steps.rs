use etl::prelude::*;

async fn run() -> etl::Result<RunReport> {
    pipeline! {
        file(path = "${EVENTS:-events.jsonl}", format = "jsonl") as etl::Json
        | rename(length.new -> length_new, ts -> timestamp)
        | select(id, timestamp, length_new)
        | drop(length_new)
        | stdout()
    }
    .name("events")
    .run()
    .await
}

fn main() {
    let _ = run;
}
