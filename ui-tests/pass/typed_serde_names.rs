// Serde names survive schema steps: a field kept keeps its `#[serde(rename)]` name (and its
// other serde options), a renamed field takes its new name. (The names written are asserted at
// run time in tests/pipeline_macro.rs.)
#![deny(warnings)]

use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    event_id: i64,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    created_at: String,
}

async fn run(events: Vec<Event>) -> etl::Result<RunReport> {
    pipeline! {
        iter(events) as Event
        | rename(created_at -> ts)
        | select(event_id, kind, note, ts)
        | filter(|e| e.kind != "test" && !e.ts.is_empty())
        | file(dir = "lake", format = "csv")
    }
    .run()
    .await
}

fn main() {
    let _ = run;
}
