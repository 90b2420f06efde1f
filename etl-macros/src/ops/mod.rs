//! The built-in steps of `pipeline!`, one small file each, gathered in [`TABLE`].
//!
//! The parser, the checker, the "did you mean" suggestions, the code generator and the
//! Markdown operator reference ([`reference_markdown`]) all read this one table: adding a
//! step is adding a file and a line here.

mod blackhole;
mod collect;
mod drop;
mod file_sink;
mod file_source;
mod filter;
mod filter_map;
mod flat_map;
mod inspect;
mod into;
mod iter;
mod map;
mod rename;
mod s3;
mod select;
mod sqs_sink;
mod sqs_source;
mod sse;
mod stdout;

use proc_macro2::{Span, TokenStream};
use quote::quote;

/// Where a step may stand in a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// First step: reads records.
    Source,
    /// Middle steps: transform records.
    Operator,
    /// Last step: writes records.
    Sink,
}

/// The kind of value an argument takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any Rust expression (closures, variables, paths).
    Expr,
    /// A string: a literal (`${VAR}` is resolved by the connector at start-up) or a Rust
    /// expression (a variable holding a flag's value).
    Str,
    /// An integer: a literal or a Rust expression.
    Int,
    /// A positive integer: a literal other than 0, or a Rust expression.
    Count,
    /// A boolean: `true`, `false` or a Rust expression.
    Bool,
    /// A duration: `2s`, `500ms`, `1.5s`, `1m`, `1h`; a bare number means seconds.
    Duration,
    /// A format string literal: `"jsonl"` or `"csv"`.
    Format,
    /// An SSE data format string literal: `"json"` or `"text"`.
    DataFormat,
    /// Field names (dotted paths allowed): `a, b.c`.
    Fields,
    /// Renames: `a -> b, c.d -> c_d`.
    Renames,
    /// A Rust type (`into(Type)`; `as Type` is parsed on its own).
    Type,
}

impl Kind {
    /// What the kind looks like, for messages and the reference.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Expr => "an expression",
            Kind::Str => "a string",
            Kind::Int => "an integer",
            Kind::Count => "a positive integer",
            Kind::Bool => "a boolean",
            Kind::Duration => "a duration (`2s`, `500ms`, `1.5s`, `1m`, `1h`)",
            Kind::Format => "a format (`\"jsonl\"` or `\"csv\"`)",
            Kind::DataFormat => "a data format (`\"json\"` or `\"text\"`)",
            Kind::Fields => "field names (`a, b.c`)",
            Kind::Renames => "renames (`a -> b`)",
            Kind::Type => "a type",
        }
    }

    /// An example value, for `help:` lines.
    pub fn example(self) -> &'static str {
        match self {
            Kind::Expr => "|r| ...",
            Kind::Str => "\"lake\"",
            Kind::Int => "500",
            Kind::Count => "8",
            Kind::Bool => "true",
            Kind::Duration => "2s",
            Kind::Format => "\"jsonl\"",
            Kind::DataFormat => "\"json\"",
            Kind::Fields => "id, customer.name",
            Kind::Renames => "old -> new",
            Kind::Type => "Order",
        }
    }

    /// Whether a positional argument of this kind takes every positional argument (`a, b, c`).
    pub fn variadic(self) -> bool {
        matches!(self, Kind::Fields | Kind::Renames)
    }
}

/// A `name = value` argument of a step.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))] // `default`, `doc`: read by `reference_markdown`
pub struct ArgSpec {
    /// The argument's name.
    pub name: &'static str,
    /// The kind of its value.
    pub kind: Kind,
    /// Whether it must be given.
    pub required: bool,
    /// The default when left out, as documentation.
    pub default: Option<&'static str>,
    /// One line of documentation.
    pub doc: &'static str,
}

/// The positional (first, unnamed) argument of a step.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))] // `doc`: read by `reference_markdown`
pub struct Positional {
    /// What it is called in the reference (`f`, `fields`).
    pub name: &'static str,
    /// The kind of its value.
    pub kind: Kind,
    /// One line of documentation.
    pub doc: &'static str,
}

/// A checked argument value, ready for code generation.
#[derive(Debug, Clone)]
pub enum Value {
    /// A Rust expression.
    Expr(syn::Expr),
    /// A string literal.
    Str(syn::LitStr),
    /// An integer literal.
    Int(syn::LitInt),
    /// A boolean literal.
    Bool(syn::LitBool),
    /// A duration, as a `::core::time::Duration` constant expression.
    Duration(TokenStream),
    /// A format, as a `::etl::format::Format` path.
    Format(TokenStream),
    /// Field paths, as written (`a.b`).
    Fields(Vec<FieldRef>),
    /// `(from, to)` field paths.
    Renames(Vec<(FieldRef, FieldRef)>),
    /// A type.
    Type(syn::Type),
}

/// A field named in `rename`, `select` or `drop`: a dotted path (`a.b`), an identifier, or a
/// string literal, with the span of its first token.
#[derive(Debug, Clone)]
pub struct FieldRef {
    /// The path, without `r#`.
    pub path: String,
    /// Where the user wrote it.
    pub span: Span,
    /// Whether it is one identifier (what typed records take), not a path or a literal.
    pub simple: bool,
}

impl quote::ToTokens for Value {
    fn to_tokens(&self, out: &mut TokenStream) {
        match self {
            Value::Expr(e) => e.to_tokens(out),
            Value::Str(s) => s.to_tokens(out),
            Value::Int(i) => i.to_tokens(out),
            Value::Bool(b) => b.to_tokens(out),
            Value::Duration(t) | Value::Format(t) => t.to_tokens(out),
            Value::Fields(f) => {
                let f = f.iter().map(|f| &f.path);
                out.extend(quote!(&[#(#f),*]))
            }
            Value::Renames(r) => {
                let pairs = r.iter().map(|(a, b)| {
                    let (a, b) = (&a.path, &b.path);
                    quote!((#a, #b))
                });
                out.extend(quote!(&[#(#pairs),*]))
            }
            Value::Type(t) => t.to_tokens(out),
        }
    }
}

/// The checked arguments of one step, handed to its generator.
pub struct Args<'a> {
    /// Positional values (one, or several for a variadic kind).
    pub positional: &'a [Value],
    /// Named values given by the user (defaults are not filled in: the runtime has them).
    pub named: &'a [(String, Value)],
    /// `as Type` after the step, if any.
    pub as_type: Option<&'a syn::Type>,
    /// The step name's span, for generated code.
    pub span: Span,
}

impl Args<'_> {
    /// The record type of a decoding source: the type after `as`, or `Json`.
    pub fn record_type(&self) -> TokenStream {
        match self.as_type {
            Some(ty) => quote!(#ty),
            None => quote!(::etl::Json),
        }
    }

    /// The value of the named argument `name`, if given.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.named.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The first positional value, as tokens (the checker guarantees it is there).
    pub fn first(&self) -> TokenStream {
        match self.positional.first() {
            Some(v) => quote!(#v),
            None => quote!(::core::compile_error!("etl-macros: missing positional argument")),
        }
    }
}

/// What a generator produces: a source or sink expression, or a builder-method suffix
/// (`.filter(f)`) for an operator.
pub type Gen = fn(&Args<'_>) -> TokenStream;

/// A built-in step.
#[cfg_attr(not(test), allow(dead_code))] // `doc`, `example`: read by `reference_markdown`
pub struct Op {
    /// The step's name in the DSL.
    pub name: &'static str,
    /// Where it may stand.
    pub category: Category,
    /// Its positional argument, if it takes one (always required).
    pub positional: Option<Positional>,
    /// Its own named arguments.
    pub args: &'static [ArgSpec],
    /// Named arguments shared with other steps ([`BATCH_ARGS`] for every source).
    pub shared: &'static [ArgSpec],
    /// Whether `as Type` may follow it.
    pub accepts_as: bool,
    /// What it does, in one or two sentences.
    pub doc: &'static str,
    /// A usage example.
    pub example: &'static str,
    /// Its code generator.
    pub gen: Gen,
}

impl Op {
    /// Every named argument: its own, then the shared ones.
    pub fn all_args(&self) -> impl Iterator<Item = &'static ArgSpec> {
        self.args.iter().chain(self.shared.iter())
    }

    /// The named argument `name`.
    pub fn arg(&self, name: &str) -> Option<&'static ArgSpec> {
        self.all_args().find(|a| a.name == name)
    }
}

/// The batching arguments every source takes (`etl::batch::BatchOptions`).
pub const BATCH_ARGS: &[ArgSpec] = &[
    ArgSpec { name: "batch_size", kind: Kind::Int, required: false, default: Some("1000"), doc: "Maximum records per batch." },
    ArgSpec {
        name: "batch_timeout",
        kind: Kind::Duration,
        required: false,
        default: Some("1s"),
        doc: "Longest wait from a batch's first record to its emission.",
    },
    ArgSpec { name: "max_bytes", kind: Kind::Int, required: false, default: Some("16 MiB"), doc: "Maximum payload bytes per batch." },
    ArgSpec { name: "max_records", kind: Kind::Int, required: false, default: Some("no limit"), doc: "Stop after this many records." },
    ArgSpec { name: "max_batches", kind: Kind::Int, required: false, default: Some("no limit"), doc: "Stop after this many batches." },
];

/// Every built-in step. `file` and `sqs` are there twice: as a source and as a sink.
pub const TABLE: &[&Op] = &[
    &iter::OP,
    &file_source::OP,
    &sse::OP,
    &sqs_source::OP,
    &map::OP,
    &filter::OP,
    &filter_map::OP,
    &flat_map::OP,
    &inspect::OP,
    &rename::OP,
    &select::OP,
    &drop::OP,
    &into::OP,
    &stdout::OP,
    &file_sink::OP,
    &sqs_sink::OP,
    &s3::OP,
    &collect::OP,
    &blackhole::OP,
];

/// Steps named in the DSL's design whose support comes in a later task.
pub const PLANNED: &[&str] = &["broadcast"];

/// The built-in steps called `name` (none, one, or a source and a sink).
pub fn lookup(name: &str) -> impl Iterator<Item = &'static Op> + '_ {
    TABLE.iter().copied().filter(move |op| op.name == name)
}

/// The distinct step names, in table order.
pub fn names() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for op in TABLE {
        if !out.contains(&op.name) {
            out.push(op.name);
        }
    }
    out
}

/// The operator reference, in Markdown: one section per category, one table row per argument.
/// (A later step renders it into the README; a proc-macro crate can export only macros.)
#[cfg_attr(not(test), allow(dead_code))]
pub fn reference_markdown() -> String {
    let mut md = String::from("## `pipeline!` operator reference\n\n");
    md.push_str(
        "`SOURCE(args) [as Type] | OPERATOR(args) | ... | SINK(args)`. Arguments other than the positional one are `name = value`. \
         A string or integer argument is a literal or any Rust expression of that type (a variable holding a flag's value); \
         `${VAR}` in a string is resolved when the pipeline starts.\n",
    );
    for (category, title) in [(Category::Source, "Sources"), (Category::Operator, "Operators"), (Category::Sink, "Sinks")] {
        md.push_str(&format!("\n### {title}\n"));
        for op in TABLE.iter().filter(|op| op.category == category) {
            md.push_str(&format!("\n#### `{}`\n\n{}\n\n```text\n{}\n```\n", op.name, op.doc, op.example));
            if op.accepts_as {
                md.push_str("\nMay be followed by `as Type`.\n");
            }
            if op.positional.is_none() && op.args.is_empty() && op.shared.is_empty() {
                md.push_str("\nNo arguments.\n");
                continue;
            }
            md.push_str("\n| argument | kind | required | default | description |\n|---|---|---|---|---|\n");
            if let Some(p) = &op.positional {
                md.push_str(&format!("| `{}` (positional) | {} | yes | | {} |\n", p.name, p.kind.describe(), p.doc));
            }
            for a in op.all_args() {
                let required = if a.required { "yes" } else { "no" };
                md.push_str(&format!("| `{}` | {} | {required} | {} | {} |\n", a.name, a.kind.describe(), a.default.unwrap_or(""), a.doc));
            }
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_category() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert!(a.name != b.name || a.category != b.category, "{} twice as {:?}", a.name, a.category);
            }
        }
        assert_eq!(lookup("file").count(), 2);
        assert_eq!(lookup("sqs").count(), 2);
        assert_eq!(names().iter().filter(|n| **n == "file").count(), 1);
    }

    #[test]
    fn every_source_takes_the_batch_arguments() {
        for op in TABLE.iter().filter(|op| op.category == Category::Source) {
            for a in BATCH_ARGS {
                assert!(op.arg(a.name).is_some(), "{} lacks {}", op.name, a.name);
            }
        }
        assert!(map::OP.arg("batch_size").is_none());
    }

    #[test]
    fn reference_lists_every_step_and_argument() {
        let md = reference_markdown();
        for op in TABLE {
            assert!(md.contains(&format!("#### `{}`", op.name)), "{}", op.name);
            for a in op.all_args() {
                assert!(md.contains(&format!("`{}`", a.name)));
            }
        }
        assert!(md.contains("### Sources") && md.contains("### Operators") && md.contains("### Sinks"));
        assert!(md.contains("| `batch_timeout` | a duration"));
        assert!(md.contains("| `path` | a string | yes |"));
    }

    /// `docs/operators.md` is generated from this table, never edited by hand: this test fails
    /// when it is out of date; `ETL_UPDATE_DOCS=1 cargo test -p etl-macros` rewrites it.
    #[test]
    fn docs_operator_reference_is_up_to_date() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operators.md");
        let want = format!(
            "<!-- Generated from etl-macros/src/ops by `ETL_UPDATE_DOCS=1 cargo test -p etl-macros`; do not edit. -->\n\n{}",
            reference_markdown()
        );
        if std::env::var_os("ETL_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(have == want, "docs/operators.md is out of date: run `ETL_UPDATE_DOCS=1 cargo test -p etl-macros`");
    }
}
