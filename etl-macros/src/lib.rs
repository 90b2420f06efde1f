//! Procedural macros of [`etl`](https://docs.rs/etl): `pipeline!`, `#[stage]` and
//! `#[derive(Record)]`.
//!
//! This crate only wires the compiler's entry points; the work is done over `proc_macro2` in
//! plain modules so it can be unit-tested without the compiler: `pipeline/` (parse, check,
//! typed records, codegen) over the table of steps in `ops/` (one file per step), `record/`
//! (`#[derive(Record)]`), `stage/` (`#[stage]`); what they share: `diagnostic.rs` (every
//! compile error), `wire.rs` (the schema format between the derive and `pipeline!`),
//! `shape.rs` (a typed record's fields at a point of a pipeline), `suggest.rs`, `duration.rs`,
//! `text.rs` (the user's tokens as text). Use the macros through `etl` (`use etl::prelude::*;`),
//! whose paths the generated code refers to.

mod diagnostic;
mod duration;
mod main_attr;
mod ops;
mod pipeline;
mod record;
mod shape;
mod stage;
mod suggest;
mod text;
mod wire;

use proc_macro::TokenStream;

/// Runs the program's `async fn main` under etl's runner (`etl::cli::main`, cargo feature
/// `cli` of `etl`): a command line (`run`, `check`, `graph`, `dead-letters`, `--log-level`,
/// `--log-format`, `--metrics-addr`), logging set up, the error printed readably and a
/// documented exit code. The function takes no argument, or one: the program's own flags, any
/// `clap::Args`.
///
/// ```no_run
/// use etl::prelude::*;
///
/// #[etl::main]
/// async fn main() -> etl::Result<()> {
///     pipeline! { iter(1..=3) | stdout() }.run().await?;
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    main_attr::expand(attr.into(), item.into()).into()
}

/// Implements `etl::record::Record` for a struct with named fields.
///
/// The schema lists each serialized field in declaration order with its serde name, its Rust
/// name and its type as text. Honoured serde attributes: `rename = "x"` and
/// `rename(serialize = "x")` on fields, `rename_all = "..."` (every serde case) on the struct,
/// `skip` / `skip_serializing` (left out of the schema). `flatten`, `transparent`, `into` and
/// `tag` are compile errors, as are enums, unions, tuple and unit structs, and lifetime
/// parameters. Type parameters are supported; the impl requires the struct to be
/// `Serialize + DeserializeOwned + Send + 'static`.
///
/// It also exports the struct's *schema macro* under the struct's name (macros have their own
/// namespace), with the struct's visibility, so `use shop::Order;` brings both: `pipeline!`
/// calls it to learn the fields for `rename`, `select`, `drop` and `into`. (Hidden items: a
/// `#[macro_export]` macro with a hashed name, and `etl::__private::FieldType<N>` impls.)
///
/// ```
/// use etl::prelude::*;
///
/// #[derive(Record, Serialize, Deserialize)]
/// #[serde(rename_all = "camelCase")]
/// struct Order {
///     order_id: i64,
///     #[serde(rename = "type")]
///     kind: String,
///     #[serde(skip)]
///     cached: Option<u64>,
/// }
///
/// let schema = Order::schema();
/// assert_eq!(schema.name, "Order");
/// assert_eq!(schema.field_names().collect::<Vec<_>>(), ["orderId", "type"]);
/// assert_eq!((schema.fields[1].rust_name, schema.fields[1].ty), ("kind", "String"));
/// ```
#[proc_macro_derive(Record, attributes(record))]
pub fn derive_record(input: TokenStream) -> TokenStream {
    record::derive(input.into()).into()
}

/// A streaming pipeline as one block: `SOURCE(args) [as Type] | OPERATOR(args) | ... | SINK(args)`.
///
/// Evaluates to an `etl::pipeline::Run`: add options (`.name("orders")`,
/// `.dead_letters(..)`), then `.run().await`. The steps become exactly the builder calls
/// `etl::Pipeline::from(source).filter(f).map(g).to(sink)`, so closures get their argument
/// types from the upstream step (`filter` and `inspect` closures get `&T`). The `Run` carries
/// the pipeline's graph (`run.to_graph()`, `.mermaid()`, `.dot()`): each step as written, its
/// secrets shown as `"***"` (a password argument, a URL's password, a `("sasl.password", ..)`
/// property; `${VAR}` templates are shown), and the record type after it with its fields
/// (`Order after select(id, amount)` for the types schema steps generate, `Json`, `?` where the
/// macro cannot see it).
///
/// * Sources: `iter(expr)`, `file(path = "in.jsonl", format = "jsonl")`, `sse(url = "..")`,
///   `sqs(queue_url = "..")` (cargo feature `sqs`); every source takes `batch_size`,
///   `batch_timeout`, `max_bytes`, `max_records`, `max_batches`. `as Type` after a source names
///   the record type (for `file`, `sse` and `sqs`, the type decoded; default `Json`). A step
///   whose cargo feature of `etl` is off is one compile error saying which feature to enable.
/// * Operators: `map(f) [as U]`, `filter(f)`, `filter_map(f)`, `flat_map(f)`, `inspect(f)`,
///   and the schema steps `rename(a -> b)`, `select(a, b)`, `drop(a)`, `into(Type)`.
/// * Stages: `map(enrich)` with a [`#[stage]`](macro@stage) async function runs it on each
///   record with its retries and timeout, dead-lettering the records that still fail;
///   `map(f, concurrency = 8)` runs a stage or any async function (one attempt per record
///   without `#[stage]`) on up to 8 records at once, output in input order; so does
///   `map(|r| async move { .. })`, one record at a time. `map` tells a function from a stage by
///   its type: a closure written in place is always a plain function.
/// * Schema steps on typed records (`as Order`, a `#[derive(Record)]` struct, also from another
///   module or crate once imported) are checked at compile time, each producing a record type
///   generated in the pipeline (fields moved, never cloned or re-serialised), so the closures
///   after `rename(amount_cents -> amount)` read `o.amount`; kept fields keep their serde names
///   and options, a renamed field is written under its new name. `into(Type)` moves the fields
///   into your struct by name. On `Json` records (`file(..)`, `sse(..)`, `as Json`), and on
///   records whose type the macro cannot see (`iter(rows)` without `as`), the same steps work at
///   run time on dotted field paths (`length.new -> length_new`), and `into(Type)` decodes
///   (a record that does not fit is dead-lettered with serde's error).
/// * Sinks: `stdout()`, `file(dir = "lake", format = "csv", prefix = "orders")`,
///   `collect(handle)`, `blackhole()`.
/// * Durations: `500ms`, `2s`, `1.5s`, `1m`, `1h`; a bare number means seconds.
/// * Any path with `::` (`my_mod::my_sink(..)`) is your own expression implementing
///   `Source`, `Operator` or `Sink`, by position.
///
/// Mistakes (unknown step or argument, wrong value kind, a negative count, a pipeline without
/// a source or a sink, a source or sink out of place, an unknown field with a "did you mean", a
/// rename onto an existing field, a closure reading a field renamed away or a field of `Json`
/// records, a schema step on a type that does not derive `Record`, a field missing, left over
/// or of another type in `into`, ...) are compile errors on the offending token, with a
/// `help:` line, all reported at once.
///
/// ```
/// use etl::prelude::*;
///
/// #[derive(Debug, Clone, Record, Serialize, Deserialize)]
/// struct Order { id: i64, amount_cents: i64 }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let orders = vec![Order { id: 1, amount_cents: 250 }, Order { id: 2, amount_cents: 0 }];
/// let out = etl::sink::collect::<i64>();
/// let report = pipeline! {
///     iter(orders, batch_size = 100, batch_timeout = 500ms) as Order
///     | filter(|o| o.amount_cents > 0)
///     | map(|o| o.amount_cents)
///     | collect(out)
/// }
/// .handle_signals(false)
/// .run()
/// .await?;
/// assert_eq!(out.records(), vec![250]);
/// assert_eq!(report.filtered(), 1);
/// # Ok::<(), etl::Error>(()) }).unwrap();
/// ```
///
/// Typed schema steps:
///
/// ```
/// use etl::prelude::*;
///
/// #[derive(Debug, Clone, Record, Serialize, Deserialize)]
/// struct Order { id: i64, customer: String, amount_cents: i64 }
///
/// #[derive(Debug, Clone, PartialEq, Record, Serialize, Deserialize)]
/// struct Payment { id: i64, amount: i64 }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let orders = vec![Order { id: 1, customer: "ada".into(), amount_cents: 250 }];
/// let out = etl::sink::collect();
/// pipeline! {
///     iter(orders) as Order
///     | filter(|o| o.amount_cents > 0)
///     | rename(amount_cents -> amount)
///     | select(id, amount)
///     | filter(|o| o.amount < 1_000) // `o.amount_cents` would be an error naming `amount`
///     | into(Payment)
///     | collect(out)
/// }
/// .handle_signals(false)
/// .run()
/// .await?;
/// assert_eq!(out.records(), [Payment { id: 1, amount: 250 }]);
/// # Ok::<(), etl::Error>(()) }).unwrap();
/// ```
///
/// The graph of a pipeline:
///
/// ```
/// use etl::prelude::*;
///
/// #[derive(Debug, Clone, Record, Serialize, Deserialize)]
/// struct Order { id: i64, amount_cents: i64 }
///
/// let run = pipeline! {
///     iter(Vec::<Order>::new()) as Order
///     | select(id)
///     | file(dir = "lake", prefix = "postgres://etl:hunter2@db/orders")
/// };
/// let graph = run.to_graph();
/// assert_eq!(graph.steps[2].label(), r#"file(dir = "lake", prefix = "postgres://etl:***@db/orders")"#);
/// let edges: Vec<String> = graph.mermaid().lines().filter(|l| l.contains("-->")).map(|l| l.trim().to_owned()).collect();
/// assert_eq!(edges, [r#"s0 -->|"Order { id: i64, amount_cents: i64 }"| s1"#, r#"s1 -->|"Order after select(id) { id: i64 }"| s2"#]);
/// ```
#[proc_macro]
pub fn pipeline(input: TokenStream) -> TokenStream {
    pipeline::expand(input.into()).into()
}

/// Turns an `async fn(In) -> Result<Out, E>` into a stage: in `pipeline!`, `map(name)` runs it
/// on each record with retries (exponential backoff with full jitter) and a per-attempt timeout,
/// and dead-letters a record whose attempts all fail or whose error is permanent.
///
/// Arguments, all optional:
///
/// | argument | value | default | meaning |
/// |---|---|---|---|
/// | `retries` | an integer (or a constant) | `3` | retries after the first attempt |
/// | `backoff` | a duration: `500ms`, `2s`, `1.5s`, `1m`; a bare number means seconds (`2.0`) | `100ms` | longest wait before the first retry |
/// | `factor` | a number ≥ 1 | `2.0` | growth of the longest wait per retry |
/// | `max_backoff` | a duration | `30s` | longest wait between two attempts |
/// | `timeout` | a duration | none | longest time one attempt may take (a timeout is retryable) |
///
/// Before retry `n` (from 0) the record waits a random time between 0 and `backoff × factor^n`,
/// capped at `max_backoff` ("full jitter": records that failed together spread out, and no wait
/// exceeds `max_backoff`). Every error is retryable unless it says otherwise: return
/// `etl::stage::Error::permanent(e)` (with `etl::stage::Error` as the error type, `?` converts
/// any other error to a retryable one), or an `etl::Error` / `etl::ConnectorError` that is
/// permanent (see `etl::stage::classify`). The record type must be `Clone` (each attempt that
/// may be retried gets a copy).
///
/// The function stays callable as itself: `enrich(order).await` runs the body once, as written,
/// and gives its `Result`. (It returns an `etl::stage::Call`, which is `IntoFuture`;
/// `.into_inner()` gives the plain future, e.g. for `tokio::spawn`.) The attribute also
/// declares a hidden empty struct of the function's name in the type namespace, which carries
/// the options: so a stage is a free function (not in an `impl` block), not generic, and no
/// other type or module of the same name may sit beside it.
///
/// In `pipeline!`: `map(enrich)` runs one record at a time; `map(enrich, concurrency = 8)` runs
/// up to 8 records of a batch at once, output in input order; `map(enrich, concurrency = 8,
/// ordered = false)` emits records as they complete, and a record waiting for its retry lets
/// the others run meanwhile (8 attempts at most at once). A plain `async fn` without the
/// attribute also runs with `concurrency` (one attempt per record); in `map` without it, it is
/// a compile error saying so.
///
/// ```
/// use etl::prelude::*;
///
/// #[derive(Debug, Clone, Record, Serialize, Deserialize)]
/// struct Order { id: i64, amount_cents: i64 }
///
/// #[stage(retries = 2, backoff = 10ms, timeout = 1s)]
/// async fn enrich(mut o: Order) -> Result<Order, etl::stage::Error> {
///     if o.amount_cents < 0 {
///         return Err(etl::stage::Error::permanent(format!("order {}: negative amount", o.id)));
///     }
///     o.amount_cents *= 100;
///     Ok(o)
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// assert_eq!(enrich(Order { id: 1, amount_cents: 2 }).await?.amount_cents, 200);
///
/// let out = etl::sink::collect();
/// let dead = etl::dead_letter::MemoryDeadLetters::new();
/// let report = pipeline! {
///     iter(vec![Order { id: 1, amount_cents: 2 }, Order { id: 2, amount_cents: -1 }]) as Order
///     | map(enrich) as Order
///     | collect(out)
/// }
/// .dead_letters(dead.clone())
/// .handle_signals(false)
/// .run()
/// .await?;
/// assert_eq!((report.records_out, report.dead_lettered), (1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
///
/// Mistakes are compile errors on the offending token: the attribute on a function that is not
/// `async`, an unknown argument (with a "did you mean"), a value of the wrong kind or a bad
/// duration unit, a function with no or several arguments, a reference argument, no return
/// type; and in `pipeline!`, a stage whose argument is not the record type of the step before.
#[proc_macro_attribute]
pub fn stage(args: TokenStream, item: TokenStream) -> TokenStream {
    stage::expand(args.into(), item.into()).into()
}

/// What `pipeline!` calls in place of a record's schema macro when the type has none: the
/// error that it must derive `Record`. Not a public API: use `pipeline!`.
#[doc(hidden)]
#[proc_macro]
pub fn __pipeline_no_schema(input: TokenStream) -> TokenStream {
    pipeline::expand_no_schema(input.into()).into()
}

/// The second stage of `pipeline!`, called back by the schema macros of `#[derive(Record)]`
/// with their fields prepended (`@etl_record { ... }`). Not a public API: use `pipeline!`.
#[doc(hidden)]
#[proc_macro]
pub fn __pipeline_with_schema(input: TokenStream) -> TokenStream {
    pipeline::expand_with_schema(input.into()).into()
}
