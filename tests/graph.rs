//! The graph `pipeline!` gives its `Run` (`Run::to_graph`): every step as written, secrets
//! hidden, and the record type after each step with its fields, rendered as Mermaid. The
//! expected texts are snapshots, read and checked by hand when written.

use etl::pipeline::{RecordType, StepRole};
use etl::prelude::*;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
    #[serde(rename = "state")]
    status: String,
}

#[test]
fn a_typed_pipeline_shows_each_record_type_with_its_fields() {
    let orders = vec![Order { id: 1, customer: "ada".into(), amount_cents: 250, status: "paid".into() }];
    let out = etl::sink::collect();
    let run = pipeline! {
        iter(orders, batch_size = 100) as Order
        | filter(|o| o.status != "test")
        | rename(amount_cents -> amount)
        | select(id, amount, status)
        | collect(out)
    };
    let graph = run.to_graph();
    assert_eq!(
        graph.mermaid(),
        r##"---
title: pipeline
---
flowchart LR
    s0(["iter(orders, batch_size = 100)"])
    s1["filter(|o| o.status != #quot;test#quot;)"]
    s2["rename(amount_cents -> amount)"]
    s3["select(id, amount, status)"]
    s4[("collect(out)")]
    s0 -->|"Order { id: i64, customer: String, amount_cents: i64, state: String }"| s1
    s1 -->|"Order { id: i64, customer: String, amount_cents: i64, state: String }"| s2
    s2 -->|"Order after rename(amount_cents -> amount) { id: i64, customer: String, amount: i64, state: String }"| s3
    s3 -->|"Order after select(id, amount, status) { id: i64, amount: i64, state: String }"| s4
"##
    );
    let roles: Vec<StepRole> = graph.steps.iter().map(|s| s.role).collect();
    assert_eq!(roles, [StepRole::Source, StepRole::Operator, StepRole::Operator, StepRole::Operator, StepRole::Sink]);
    // The sink's record type is the one it receives.
    assert_eq!(graph.steps[4].record, graph.steps[3].record);
    assert_eq!(graph.steps[0].args, [(String::new(), "orders".to_owned()), ("batch_size".to_owned(), "100".to_owned())]);
}

mod my_sinks {
    /// A user's sink (any `Sink`), here of counts.
    pub fn lake(_dir: std::path::PathBuf, _url: &str) -> etl::sink::Blackhole {
        etl::sink::blackhole()
    }
}

#[test]
fn a_json_pipeline_shows_json_and_hides_secrets() {
    let dir = std::env::temp_dir();
    let run = pipeline! {
        file(path = "in.jsonl")
        | rename(ts -> timestamp)
        | filter(|r| r.get("timestamp").is_some())
        | map(|r| r) as Json
        | map(|r| r.0.len())
        | my_sinks::lake(dir.clone(), "postgres://etl:hunter2@db/orders")
    };
    assert_eq!(
        run.to_graph().mermaid(),
        r##"---
title: pipeline
---
flowchart LR
    s0(["file(path = #quot;in.jsonl#quot;)"])
    s1["rename(ts -> timestamp)"]
    s2["filter(|r| r.get(#quot;timestamp#quot;).is_some())"]
    s3["map(|r| r)"]
    s4["map(|r| r.0.len())"]
    s5[("my_sinks::lake(dir.clone(), #quot;postgres://etl:***@db/orders#quot;)")]
    s0 -->|"Json"| s1
    s1 -->|"Json"| s2
    s2 -->|"Json"| s3
    s3 -->|"Json"| s4
    s4 -->|"?"| s5
"##
    );
}

/// `map(f) as T` names the type after it; a type that is not a record has no fields.
#[test]
fn map_as_names_the_type_after_it() {
    let run = pipeline! { iter(vec![1i64, 2]) | map(|n| n * 2) as i64 | blackhole() };
    let graph = run.name("doubles").to_graph();
    assert_eq!(graph.name, "doubles");
    assert_eq!(graph.steps[0].record, Some(RecordType::new("?")));
    assert_eq!(graph.steps[1].record, Some(RecordType::new("i64")));
    assert_eq!(graph.steps[1].label(), "map(|n| n * 2)");
}
