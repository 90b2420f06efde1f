//! The arguments of a step: their declaration ([`ArgSpec`], [`Positional`], [`Kind`]), how a
//! connector's builder takes them ([`Set`]), and their checked values ([`Value`], [`Args`]).

use proc_macro2::{Span, TokenStream};
use quote::quote;

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
    /// A watched file's format string literal: `"auto"`, `"json"`, `"jsonl"` or `"csv"`.
    WatchFormat,
    /// Field names (dotted paths allowed): `a, b.c`.
    Fields,
    /// Renames: `a -> b, c.d -> c_d`.
    Renames,
    /// A Rust type (`into(Type)`; `as Type` is parsed on its own).
    Type,
    /// How a table sink writes: `insert` or `upsert(key, ..)`.
    WriteMode,
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
            Kind::WatchFormat => "a file format (`\"auto\"`, `\"json\"`, `\"jsonl\"` or `\"csv\"`)",
            Kind::WriteMode => "a write mode (`insert` or `upsert(key, ..)`)",
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
            Kind::WatchFormat => "\"auto\"",
            Kind::WriteMode => "upsert(id)",
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

/// How a connector's builder takes an optional argument.
#[derive(Debug, Clone, Copy)]
pub enum Set {
    /// `builder.name(value)`: the builder method of the same name (the plain mapping).
    Method,
    /// `Trait::name(builder, value)`, the trait named by its path segments (`["etl", "batch",
    /// "BatchOptions"]`), called by path so that the user need not import it.
    Trait(&'static [&'static str]),
    /// A mapping of its own, `(builder, value, span) -> builder`; the op file says why.
    Custom(fn(TokenStream, &Value, Span) -> TokenStream),
}

/// A `name = value` argument of a step.
#[derive(Debug)]
pub struct ArgSpec {
    /// The argument's name, and the name of the builder method that takes it.
    pub name: &'static str,
    /// The kind of its value.
    pub kind: Kind,
    /// Whether it must be given; a required argument goes to the connector's constructor.
    pub required: bool,
    /// The default when left out, as documentation (the runtime has the value).
    pub default: Option<&'static str>,
    /// One line of documentation.
    pub doc: &'static str,
    /// How the builder takes it (an optional argument).
    pub set: Set,
    /// Whether its value is a secret (a password): the pipeline's graph shows `"***"` for
    /// its literals, but for the `${VAR}` templates in them.
    pub secret: bool,
}

impl ArgSpec {
    /// A required argument: the connector's constructor takes it, in table order.
    pub const fn required(name: &'static str, kind: Kind, doc: &'static str) -> ArgSpec {
        ArgSpec { name, kind, required: true, default: None, doc, set: Set::Method, secret: false }
    }

    /// An optional argument, set by the builder method of the same name; `default` says what
    /// it is when left out.
    pub const fn optional(name: &'static str, kind: Kind, default: &'static str, doc: &'static str) -> ArgSpec {
        ArgSpec { name, kind, required: false, default: Some(default), doc, set: Set::Method, secret: false }
    }

    /// The same argument, taken by the builder otherwise than `.name(value)`.
    pub const fn set(self, set: Set) -> ArgSpec {
        ArgSpec { set, ..self }
    }

    /// The same argument, its value a secret (never shown in the pipeline's graph).
    pub const fn secret(self) -> ArgSpec {
        ArgSpec { secret: true, ..self }
    }
}

/// The positional (first, unnamed) argument of a step. Always required: a connector's
/// constructor, or an operator's method, takes it first.
#[derive(Debug)]
pub struct Positional {
    /// What it is called in the reference (`f`, `fields`).
    pub name: &'static str,
    /// The kind of its value.
    pub kind: Kind,
    /// One line of documentation.
    pub doc: &'static str,
}

/// The path of `etl::batch::BatchOptions`, the trait of the batching arguments.
const BATCH_OPTIONS: &[&str] = &["etl", "batch", "BatchOptions"];

/// The batching arguments every source takes (`etl::batch::BatchOptions`).
pub const BATCH_ARGS: &[ArgSpec] = &[
    ArgSpec::optional("batch_size", Kind::Int, "1000", "Maximum records per batch.").set(Set::Trait(BATCH_OPTIONS)),
    ArgSpec::optional("batch_timeout", Kind::Duration, "1s", "Longest wait from a batch's first record to its emission.")
        .set(Set::Trait(BATCH_OPTIONS)),
    ArgSpec::optional("max_bytes", Kind::Int, "16 MiB", "Maximum payload bytes per batch.").set(Set::Trait(BATCH_OPTIONS)),
    ArgSpec::optional("max_records", Kind::Int, "no limit", "Stop after this many records.").set(Set::Trait(BATCH_OPTIONS)),
    ArgSpec::optional("max_batches", Kind::Int, "no limit", "Stop after this many batches.").set(Set::Trait(BATCH_OPTIONS)),
];

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

impl Value {
    /// Whether it is an empty field list (`select()`).
    pub fn is_empty_list(&self) -> bool {
        match self {
            Value::Fields(f) => f.is_empty(),
            Value::Renames(r) => r.is_empty(),
            _ => false,
        }
    }
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
    /// Named values given by the user, in the order written (defaults are not filled in: the
    /// runtime has them).
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

    /// The first positional value, as tokens (the checker guarantees it is there; if not, a
    /// compile error rather than a panic).
    pub fn first(&self) -> TokenStream {
        match self.positional.first() {
            Some(v) => quote!(#v),
            None => quote!(::core::compile_error!("etl-macros: missing positional argument")),
        }
    }
}
