//! `pipeline!`: parse → check → codegen, over `proc_macro2` so it is unit-tested without rustc.
//!
//! * [`parse`]: tokens → steps (split on top-level `|`), arguments kept as tokens;
//! * [`check`]: each step against the ops table for its position, arguments converted to their
//!   kinds ([`convert`]), every error collected with a `help:` line, on the user's token;
//! * [`typed`]: the record type followed from step to step, schema steps on typed records
//!   checked and generated (with the records' fields from their schema macros, [`schema`]);
//! * [`job`]: the job form (stages alone: `extract | transform | load`), `etl::job::Job`'s
//!   builder calls;
//! * [`codegen`]: the builder calls (`etl::Pipeline::from(..)...to(..)`), each step's from its
//!   table entry, then `.graph(..)`, the pipeline's shape ([`graph`], secrets hidden by
//!   [`redact`]).
//!
//! With errors, the expansion is the `compile_error!`s plus a well-typed stub `Run`, so rustc
//! adds no cascade of follow-up errors.

mod check;
mod codegen;
mod convert;
mod graph;
mod job;
mod parse;
mod redact;
mod schema;
mod typed;

use crate::diagnostic::Diagnostics;
use proc_macro2::TokenStream;
use quote::quote;

/// Expand `pipeline! { ... }`.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    round(Vec::new(), input)
}

/// Expand `pipeline_with_schema! { @etl_record { .. } ... <pipeline> }`: a round after a
/// record's schema macro called back with its fields.
pub(crate) fn expand_with_schema(input: TokenStream) -> TokenStream {
    match schema::split(input) {
        Ok((received, rest)) => round(received, rest),
        Err(e) => fail(&Diagnostics::from_iter([e])),
    }
}

/// One round: parse and check everything; when a typed schema step needs the fields of a
/// record not received yet, call that record's schema macro (which calls back with them
/// prepended); otherwise generate the pipeline, or every error at once.
fn round(received: Vec<schema::Received>, input: TokenStream) -> TokenStream {
    let (ast, mut errors) = parse::parse(input.clone());
    if let Some(stages) = job::stages(&ast) {
        return match job::generate(&stages) {
            Ok(job) => job,
            Err(errors) => fail_job(&errors),
        };
    }
    let (steps, check_errors) = check::check(&ast);
    errors.extend(check_errors);
    let schemas: Vec<&crate::wire::RecordSchema> = received.iter().map(|r| &r.schema).collect();
    let mut typed = match typed::walk(&steps, &schemas) {
        typed::Outcome::Need(path, _) => {
            let sent: Vec<TokenStream> = received.iter().map(|r| r.tokens.clone()).collect();
            return schema::callback(&path, &sent, input);
        }
        typed::Outcome::Done(typed) => typed,
    };
    errors.extend(std::mem::take(&mut typed.errors));
    if errors.is_empty() {
        return codegen::generate(&steps, &typed);
    }
    match branch_input(&ast) {
        // A fork's branch: a stub of the branch's type, so the fork adds no error of its own.
        Some(call) => {
            let errors = errors.to_compile_errors();
            quote!({ #errors ::etl::__private::branch_stub #call })
        }
        None => fail(&errors),
    }
}

/// The arguments of a fork's branch source (`::etl::fanout::Input::like(&__etl_input)`, which
/// `codegen` writes), when the pipeline is a branch.
fn branch_input(ast: &parse::Ast) -> Option<&proc_macro2::Group> {
    match ast.steps.first()?.as_ref()?.head {
        parse::Head::Path { ref path, call: Some(ref call) } => {
            let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            (names == ["etl", "fanout", "Input", "like"]).then_some(call)
        }
        _ => None,
    }
}

/// Expand `__pipeline_no_schema! { ::etl::__private::pipeline_with_schema! { .. } }`: a
/// schema macro's call (see [`schema::callback`]) where the record type has none, so it is
/// not a `#[derive(Record)]` struct. The round is run again to find the type that was asked
/// for; the error is on its tokens.
pub(crate) fn expand_no_schema(input: TokenStream) -> TokenStream {
    let inner = input.into_iter().find_map(|tt| match tt {
        proc_macro2::TokenTree::Group(g) if g.delimiter() == proc_macro2::Delimiter::Brace => Some(g.stream()),
        _ => None,
    });
    let need = inner.and_then(|inner| {
        let (received, input) = schema::split(inner).ok()?;
        let (ast, _) = parse::parse(input);
        let (steps, _) = check::check(&ast);
        let schemas: Vec<&crate::wire::RecordSchema> = received.iter().map(|r| &r.schema).collect();
        match typed::walk(&steps, &schemas) {
            typed::Outcome::Need(path, step) => Some((path, step)),
            typed::Outcome::Done(_) => None,
        }
    });
    let error = match need {
        Some((path, step)) => schema::not_a_record(&path, step),
        None => crate::diagnostic::Diagnostic::new(
            proc_macro2::Span::call_site(),
            "etl: a record type has no schema macro",
            "make every record type of the pipeline `#[derive(Record, Serialize, Deserialize)]`",
        ),
    };
    fail(&Diagnostics::from_iter([error]))
}

/// A job's errors, then a stub job (any types) so that rustc adds no error of its own.
fn fail_job(errors: &Diagnostics) -> TokenStream {
    let errors = errors.to_compile_errors();
    quote!({ #errors ::etl::__private::stub_job() })
}

/// The errors, then a well-typed stub so that rustc adds no error of its own.
fn fail(errors: &Diagnostics) -> TokenStream {
    let errors = errors.to_compile_errors();
    quote!({ #errors ::etl::__private::stub() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(t: TokenStream) -> String {
        t.to_string().replace(' ', "")
    }

    /// The graph's code, as `graph::generate` writes it for `steps` and `records`.
    fn graph(steps: TokenStream, records: TokenStream) -> TokenStream {
        quote!({
            #[allow(unused_imports)]
            use ::etl::__private::{DescribeRecord as _, DescribeType as _};
            ::etl::__private::graph(&[#steps], &[#records])
        })
    }

    #[test]
    fn typed_pipeline() {
        let out = norm(expand(quote! {
            iter(orders) as Order | filter(|o| o.amount > 0) | map(|o| o.amount) as i64 | collect(out)
        }));
        let order = quote!((&::etl::__private::Describe::<Order>::new("Order")).__etl_describe());
        let int = quote!((&::etl::__private::Describe::<i64>::new("i64")).__etl_describe());
        let graph = graph(
            quote!(
                ("iter", &[("", "orders")], 0usize),
                ("filter", &[("", "|o| o.amount > 0")], 0usize),
                ("map", &[("", "|o| o.amount")], 1usize),
                ("collect", &[("", "out")], 1usize)
            ),
            quote!(#order, #int),
        );
        assert_eq!(
            out,
            norm(quote! {{
                ::etl::__private::assert_record::<Order>();
                ::etl::__private::with_graph(
                    ::etl::Pipeline::from(::etl::__private::iter_as::<Order, _>(orders))
                        .filter(|o| o.amount > 0)
                        .map::<i64, _>(|o| o.amount)
                        .to(::etl::__private::collect_sink(&(out))),
                    #graph
                )
            }})
        );
    }

    #[test]
    fn json_file_pipeline_with_batch_arguments() {
        let out = norm(expand(quote! {
            file(path = "in.jsonl", batch_size = 2, batch_timeout = 1.5s) | rename(a -> b, c.d -> e) | select(b) | drop(x)
            | file(dir = "lake", format = "csv", prefix = "p")
        }));
        let json = quote!(::etl::pipeline::RecordType::new("Json"));
        let graph = graph(
            quote!(
                ("file", &[("path", "\"in.jsonl\""), ("batch_size", "2"), ("batch_timeout", "1.5s")], 0usize),
                ("rename", &[("", "a -> b"), ("", "c.d -> e")], 0usize),
                ("select", &[("", "b")], 0usize),
                ("drop", &[("", "x")], 0usize),
                ("file", &[("dir", "\"lake\""), ("format", "\"csv\""), ("prefix", "\"p\"")], 0usize)
            ),
            quote!(#json),
        );
        let want = norm(quote! {{
            ::etl::__private::with_graph(
                ::etl::Pipeline::from(::etl::batch::BatchOptions::batch_timeout(
                    ::etl::batch::BatchOptions::batch_size(::etl::source::file::<::etl::Json>("in.jsonl"), 2),
                    ::core::time::Duration::from_secs_f64(1.5)))
                    .then(::etl::operator::json::Rename::new(&[("a", "b"), ("c.d", "e")]))
                    .then(::etl::operator::json::Select::new(&["b"]))
                    .then(::etl::operator::json::DropFields::new(&["x"]))
                    .to(::etl::sink::file("lake").format(::etl::format::Format::Csv).prefix("p")),
                #graph
            )
        }});
        assert_eq!(out, want);
    }

    #[test]
    fn stages_alone_are_a_job() {
        let out = norm(expand(quote! { extract | transform | my::load }));
        assert_eq!(out, norm(quote!({ ::etl::job::Job::new(extract).stage(transform).stage(my::load) })));
        let one = norm(expand(quote! { extract }));
        assert_eq!(one, norm(quote!({ ::etl::job::Job::new(extract) })));
        // A step with arguments, `as`, or a built-in name makes it a pipeline.
        assert!(!norm(expand(quote! { source | my::sink(1) })).contains("Job"));
        assert!(!norm(expand(quote! { source as T | lake })).contains("Job"));
        assert!(!norm(expand(quote! { source | stdout() })).contains("Job"));
    }

    #[test]
    fn a_stage_twice_in_a_job_is_an_error() {
        let out = expand(quote! { a | b | a }).to_string();
        assert!(out.contains("stage `a` appears twice in this job"), "{out}");
        assert!(out.contains("stub_job"), "{out}");
    }

    #[test]
    fn user_steps_by_path() {
        let out = norm(expand(quote! { my::source(1, |a, b| a + b) as T | my::Op::new() | my::SINK }));
        let unknown = quote!(::etl::pipeline::RecordType::new("?"));
        let graph = graph(
            quote!(("my::source", &[("", "1"), ("", "|a, b| a + b")], 0usize), ("my::Op::new", &[], 1usize), ("my::SINK", &[], 1usize)),
            quote!((&::etl::__private::Describe::<T>::new("T")).__etl_describe(), #unknown),
        );
        assert_eq!(
            out,
            norm(quote! {{
                ::etl::__private::assert_record::<T>();
                ::etl::__private::with_graph(
                    ::etl::Pipeline::from(::etl::__private::source_as::<T, _>(my::source(1, |a, b| a + b))).then(my::Op::new()).to(my::SINK),
                    #graph
                )
            }})
        );
    }

    #[test]
    fn secrets_are_hidden_from_the_graph() {
        let out = expand(quote! {
            iter(v) | stdout()
        });
        assert!(!out.is_empty());
        let (ast, _) = parse::parse(quote! {
            kafka(topics = ["orders"], group = "g", sasl_password = "hunter2", sasl_username = "etl",
                  properties = [("ssl.key.password", "pw"), ("client.id", "etl")])
            | my::sink(url = "postgres://etl:pw@db/orders", "${DATABASE_URL}")
        });
        let (steps, _) = check::check(&ast);
        let labels: Vec<String> = steps.iter().map(graph::label).collect();
        assert_eq!(
            labels,
            [
                "kafka(topics = [\"orders\"], group = \"g\", sasl_password = \"***\", sasl_username = \"etl\", \
                 properties = [(\"ssl.key.password\", \"***\"), (\"client.id\", \"etl\")])",
                "my::sink(url = \"postgres://etl:***@db/orders\", \"${DATABASE_URL}\")"
            ]
        );
    }

    #[test]
    fn typed_schema_steps_call_the_records_schema_macro_then_generate() {
        let input = quote! { iter(orders) as shop::Order | rename(amount_cents -> amount) | stdout() };
        // Round 1: `Order`'s fields are needed; its macro is called with the whole input (under
        // an alias that is an error when `Order` has none, see `schema::callback`).
        assert_eq!(norm(expand(input.clone())), norm(schema::callback(&syn::parse_quote!(shop::Order), &[], input.clone())));
        assert!(norm(expand(input.clone())).contains(
            "__etl_schema_0!{::etl::__private::pipeline_with_schema!{iter(orders)asshop::Order|rename(amount_cents->amount)|stdout()}}"
        ));
        // Round 2: the macro called back with the fields prepended.
        let schema = quote!(@etl_record { [("id", 0usize, "id", "i64", []), ("amount_cents", 1usize, "amount_cents", "i64", [])], [] });
        let out = norm(expand_with_schema(quote!(#schema #input)));
        assert!(out.starts_with("{::etl::__private::assert_record::<shop::Order>();#[allow(non_camel_case_types,dead_code)]"), "{out}");
        assert!(
            out.contains("structOrder_after_rename{#[serde(rename=\"id\")]id:<shop::Orderas::etl::__private::FieldType<0usize>>::Type"),
            "{out}"
        );
        assert!(out.contains(".map(|__etl_record:shop::Order|->Order_after_rename{letshop::Order{id:__etl_0,amount_cents:__etl_1,..}=__etl_record;Order_after_rename{id:__etl_0,amount:__etl_1}}).to(::etl::sink::stdout())"), "{out}");
        assert!(
            out.contains(
                "(&::etl::__private::Describe::<Order_after_rename>::new(\"Orderafterrename(amount_cents->amount)\")).__etl_describe()"
            ),
            "{out}"
        );
    }

    #[test]
    fn two_records_are_fetched_one_round_each() {
        let input = quote! { iter(v) as Order | into(Paid) | stdout() };
        let order = quote!(@etl_record { [("id", 0usize, "id", "i64", [])], [] });
        let paid = quote!(@etl_record { [("id", 0usize, "id", "i64", [])], [] });
        // Round 2 asks for `Paid`, sending `Order`'s schema on.
        assert_eq!(
            norm(expand_with_schema(quote!(#order #input))),
            norm(schema::callback(&syn::parse_quote!(Paid), std::slice::from_ref(&order), input.clone()))
        );
        // Round 3: newest first on the wire.
        let out = norm(expand_with_schema(quote!(#paid #order #input)));
        assert!(out.contains("into_field::<Paid,id,<Paidas::etl::__private::FieldType<0usize>>::Type,_>(__etl_0)"), "{out}");
    }

    #[test]
    fn a_record_without_schema_macro_is_one_error_on_its_name() {
        // What the fallback of `schema::callback` receives: the schema macro's input.
        let order = quote!(@etl_record { [("id", 0usize, "id", "i64", [])], [] });
        let out =
            expand_no_schema(quote!(::etl::__private::pipeline_with_schema! { #order iter(v) as Order | into(shop::Paid) | stdout() }));
        let text = out.to_string();
        assert_eq!(text.matches("compile_error").count(), 1, "{text}");
        assert!(text.contains("`Paid` must derive `Record`: `into` needs its fields at compile time"), "{text}");
        assert!(text.contains(":: etl :: __private :: stub ()"), "{text}");
        let out =
            expand_no_schema(quote!(::etl::__private::pipeline_with_schema! { iter(v) as Order | rename(a -> b) | stdout() })).to_string();
        assert!(out.contains("`Order` must derive `Record`: `rename` needs its fields"), "{out}");
    }

    #[test]
    fn schema_errors_and_syntax_errors_together_then_a_stub() {
        let schema = quote!(@etl_record { [("id", 0usize, "id", "i64", [])], [] });
        let out = expand_with_schema(quote!(#schema iter(v, batchsize = 1) as Order | select(idd) | stdout()));
        let text = out.to_string();
        assert_eq!(text.matches("compile_error").count(), 2, "{text}");
        assert!(text.contains("did you mean `batch_size`?") && text.contains("did you mean `id`?"), "{text}");
        assert!(text.contains(":: etl :: __private :: stub ()"));
        let garbled = expand_with_schema(quote!(@etl_record { 1 } iter(v) | stdout())).to_string();
        assert!(garbled.contains("compile_error") && garbled.contains("cannot read"), "{garbled}");
    }

    /// Expansion time of a 20-step pipeline, printed (`cargo test -p etl-macros expansion_time
    /// -- --nocapture`), not asserted: goal < 100 ms. The typed pipeline takes three rounds
    /// (nothing, then `Order`'s schema, then `Paid`'s too), each timed as the compiler runs it.
    #[test]
    fn expansion_time_of_a_20_step_pipeline() {
        let typed = quote! {
            iter(orders, batch_size = 500, batch_timeout = 2s) as Order
            | filter(|o| o.amount_cents > 0) | inspect(|o| println!("{}", o.id))
            | rename(amount_cents -> amount) | filter(|o| o.amount > 10)
            | rename(customer -> buyer) | map(|mut o| { o.amount += 1; o })
            | drop(status) | filter(|o| !o.buyer.is_empty())
            | select(id, amount, buyer, region) | inspect(|o| assert!(o.id > 0))
            | rename(region -> zone) | filter(|o| o.zone != "x")
            | select(id, buyer, amount, zone)
            | rename(zone -> area) | filter(|o| o.area.len() < 9)
            | drop(area) | into(Paid) | filter(|p| p.amount > 0)
            | stdout()
        };
        let json = quote! {
            file(path = "in.jsonl", batch_size = 500)
            | rename(a -> b) | filter(|r| r.get("b").is_some()) | select(b, c) | drop(c) | rename(b -> d)
            | inspect(|r| println!("{r:?}")) | rename(d -> e) | select(e) | filter(|_| true) | rename(e -> f)
            | drop(g) | rename(f -> h) | select(h) | inspect(|_| ()) | rename(h -> i) | drop(j) | select(i)
            | rename(i -> k) | file(dir = "out", format = "csv")
        };
        let order = quote!(@etl_record { [
            ("id", 0usize, "id", "i64", []), ("customer", 1usize, "customer", "String", []),
            ("amount_cents", 2usize, "amount_cents", "i64", []), ("status", 3usize, "status", "String", []),
            ("region", 4usize, "region", "String", [default])
        ], [] });
        let paid = quote!(@etl_record { [
            ("id", 0usize, "id", "i64", []), ("buyer", 1usize, "buyer", "String", []), ("amount", 2usize, "amount", "i64", [])
        ], [] });
        let rounds = [typed.clone(), quote!(#order #typed), quote!(#paid #order #typed)];
        assert_eq!(parse::parse(typed.clone()).0.steps.len(), 20);
        assert_eq!(parse::parse(json.clone()).0.steps.len(), 20);
        let time = |f: &dyn Fn() -> TokenStream| {
            let mut runs: Vec<std::time::Duration> = (0..15)
                .map(|_| {
                    let t = std::time::Instant::now();
                    let out = f();
                    let d = t.elapsed();
                    assert!(!out.to_string().contains("compile_error"), "{out}");
                    d
                })
                .collect();
            runs.sort();
            runs[runs.len() / 2]
        };
        let per_round: Vec<std::time::Duration> = rounds
            .iter()
            .enumerate()
            .map(|(i, input)| if i == 0 { time(&|| expand(input.clone())) } else { time(&|| expand_with_schema(input.clone())) })
            .collect();
        let total: std::time::Duration = per_round.iter().sum();
        let json_time = time(&|| expand(json.clone()));
        println!(
            "pipeline! expansion, 20 steps (median of 15): typed {total:?} in 3 rounds {per_round:?}; Json {json_time:?} (goal < 100 ms)"
        );
    }

    #[test]
    fn errors_then_a_stub() {
        let out = expand(quote! { iter(v) | fliter(f) | stdout(x) });
        let text = out.to_string();
        assert_eq!(text.matches("compile_error").count(), 2, "{text}");
        assert!(text.contains(":: etl :: __private :: stub ()"));
    }
}
