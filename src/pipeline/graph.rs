//! A pipeline's shape as data: its steps, their arguments (secrets redacted) and the record type
//! after each, rendered as Mermaid or DOT. `pipeline!` emits it (it knows the steps and the
//! record types); the runner's `graph` subcommand prints it.

use std::fmt::Write as _;

/// What a step is.
///
/// ```
/// assert_ne!(etl::pipeline::StepRole::Source, etl::pipeline::StepRole::Sink);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepRole {
    /// Where records come from.
    Source,
    /// A transformation between the source and the sink.
    Operator,
    /// Where records go.
    Sink,
}

/// The record type after a step: its name and its fields (name, Rust type) when known.
///
/// ```
/// let t = etl::pipeline::RecordType::new("Order").field("id", "i64");
/// assert_eq!(t.fields, [("id".to_string(), "i64".to_string())]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordType {
    /// The type's name as the user wrote it (`Order`, `Json`), or a description of a type the
    /// macro generated (`Order after select(..)`).
    pub name: String,
    /// The fields with their Rust types, as serde names them; empty for `Json` and for types
    /// the macro cannot see (a closure's output).
    pub fields: Vec<(String, String)>,
}

impl RecordType {
    /// A type with no known fields.
    pub fn new(name: impl Into<String>) -> Self {
        RecordType { name: name.into(), fields: Vec::new() }
    }

    /// Add a field.
    pub fn field(mut self, name: impl Into<String>, ty: impl Into<String>) -> Self {
        self.fields.push((name.into(), ty.into()));
        self
    }
}

/// One step of a pipeline.
///
/// ```
/// use etl::pipeline::{GraphStep, RecordType, StepRole};
/// let s = GraphStep::new(StepRole::Operator, "rename").arg("", "amount_cents -> amount");
/// assert_eq!(s.label(), "rename(amount_cents -> amount)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphStep {
    /// Source, operator or sink.
    pub role: StepRole,
    /// The step's name as written (`kafka`, `rename`, `my_crate::my_sink`).
    pub name: String,
    /// Arguments as written: `(name, value)`, the name empty for a positional argument. Secret
    /// values are shown as `***`.
    pub args: Vec<(String, String)>,
    /// The record type after the step (a sink: the type it writes).
    pub record: Option<RecordType>,
}

impl GraphStep {
    /// A step without arguments.
    pub fn new(role: StepRole, name: impl Into<String>) -> Self {
        GraphStep { role, name: name.into(), args: Vec::new(), record: None }
    }

    /// Add an argument (`name` empty for a positional one).
    pub fn arg(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.args.push((name.into(), value.into()));
        self
    }

    /// Set the record type after the step.
    pub fn record(mut self, record: RecordType) -> Self {
        self.record = Some(record);
        self
    }

    /// `name(arg = value, ..)` as one line (the name alone for a step described without
    /// arguments).
    pub fn label(&self) -> String {
        if self.args.is_empty() && self.name.contains(' ') {
            return self.name.clone();
        }
        let args: Vec<String> = self.args.iter().map(|(k, v)| if k.is_empty() { v.clone() } else { format!("{k} = {v}") }).collect();
        format!("{}({})", self.name, args.join(", "))
    }
}

/// A pipeline's steps in order, source first, sink last.
///
/// ```
/// use etl::pipeline::{Graph, GraphStep, RecordType, StepRole};
/// let g = Graph::new("orders")
///     .step(GraphStep::new(StepRole::Source, "iter").arg("", "1..=3").record(RecordType::new("i64")))
///     .step(GraphStep::new(StepRole::Sink, "stdout"));
/// assert!(g.mermaid().starts_with("---\ntitle: orders\n---\nflowchart LR\n"));
/// assert!(g.dot().starts_with("digraph"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Graph {
    /// The pipeline's name (as given to [`Run::name`](super::Run::name)).
    pub name: String,
    /// The steps, in order.
    pub steps: Vec<GraphStep>,
}

impl Graph {
    /// An empty graph for the pipeline `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Graph { name: name.into(), steps: Vec::new() }
    }

    /// Add a step.
    pub fn step(mut self, step: GraphStep) -> Self {
        self.steps.push(step);
        self
    }

    /// The graph as a Mermaid flowchart titled with the pipeline's name: one node per step,
    /// each edge labelled with the record type that flows along it and its fields.
    pub fn mermaid(&self) -> String {
        let mut out = String::new();
        if !self.name.is_empty() {
            let _ = writeln!(out, "---\ntitle: {}\n---", self.name.replace(['\n', '\r'], " "));
        }
        out.push_str("flowchart LR\n");
        for (i, step) in self.steps.iter().enumerate() {
            let (open, close) = match step.role {
                StepRole::Source => ("([", "])"),
                StepRole::Operator => ("[", "]"),
                StepRole::Sink => ("[(", ")]"),
            };
            let _ = writeln!(out, "    s{i}{open}\"{}\"{close}", mermaid_escape(&step.label()));
        }
        for i in 1..self.steps.len() {
            match &self.steps[i - 1].record {
                Some(record) => {
                    let _ = writeln!(out, "    s{} -->|\"{}\"| s{i}", i - 1, mermaid_escape(&edge_label(record)));
                }
                None => {
                    let _ = writeln!(out, "    s{} --> s{i}", i - 1);
                }
            }
        }
        out
    }

    /// The graph in Graphviz DOT: one node per step, each edge labelled with the record type
    /// that flows along it and its fields.
    pub fn dot(&self) -> String {
        let mut out = format!("digraph \"{}\" {{\n    rankdir=LR;\n", dot_escape(&self.name));
        for (i, step) in self.steps.iter().enumerate() {
            let shape = match step.role {
                StepRole::Source => "invhouse",
                StepRole::Operator => "box",
                StepRole::Sink => "cylinder",
            };
            let _ = writeln!(out, "    s{i} [shape={shape}, label=\"{}\"];", dot_escape(&step.label()));
        }
        for i in 1..self.steps.len() {
            match &self.steps[i - 1].record {
                Some(record) => {
                    let _ = writeln!(out, "    s{} -> s{i} [label=\"{}\"];", i - 1, dot_escape(&edge_label(record)));
                }
                None => {
                    let _ = writeln!(out, "    s{} -> s{i};", i - 1);
                }
            }
        }
        out.push_str("}\n");
        out
    }
}

/// `Order { id: i64, status: String }`, or the bare name when no field is known.
fn edge_label(record: &RecordType) -> String {
    if record.fields.is_empty() {
        return record.name.clone();
    }
    let fields: Vec<String> = record.fields.iter().map(|(n, t)| format!("{n}: {t}")).collect();
    format!("{} {{ {} }}", record.name, fields.join(", "))
}

/// Mermaid labels are quoted; a quote inside one is written as its HTML entity.
fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders() -> Graph {
        Graph::new("orders")
            .step(
                GraphStep::new(StepRole::Source, "kafka")
                    .arg("topics", "[\"orders\"]")
                    .arg("sasl_password", "***")
                    .record(RecordType::new("Order").field("id", "i64").field("status", "String")),
            )
            .step(
                GraphStep::new(StepRole::Operator, "filter")
                    .arg("", "|o| o.status != \"test\"")
                    .record(RecordType::new("Order").field("id", "i64").field("status", "String")),
            )
            .step(GraphStep::new(StepRole::Sink, "postgres").arg("table", "\"orders\""))
    }

    #[test]
    fn mermaid_has_a_node_per_step_and_typed_edges() {
        let m = orders().mermaid();
        assert_eq!(
            m,
            "---\ntitle: orders\n---\nflowchart LR\n    s0([\"kafka(topics = [#quot;orders#quot;], sasl_password = ***)\"])\n    s1[\"filter(|o| o.status != #quot;test#quot;)\"]\n    s2[(\"postgres(table = #quot;orders#quot;)\")]\n    s0 -->|\"Order { id: i64, status: String }\"| s1\n    s1 -->|\"Order { id: i64, status: String }\"| s2\n"
        );
    }

    #[test]
    fn dot_escapes_quotes() {
        let d = orders().dot();
        assert!(d.contains("s0 [shape=invhouse, label=\"kafka(topics = [\\\"orders\\\"], sasl_password = ***)\"];"), "{d}");
        assert!(d.contains("s1 -> s2 [label=\"Order { id: i64, status: String }\"];"), "{d}");
        assert!(d.ends_with("}\n"));
    }
}
