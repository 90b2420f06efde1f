//! AST → checked steps: every step resolved against the ops table for its position, every
//! argument converted to its kind, every error collected (each on the user's token).

use super::convert::{convert, list};
use super::parse::{Ast, Fork, Head, RawArg, Step};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::ops::{self, Category, Kind, Op, PositionRole, Value};
use crate::suggest;
use proc_macro2::{Group, Span, TokenStream};
use syn::ext::IdentExt;
use syn::spanned::Spanned;

/// A step ready for code generation.
pub struct Checked {
    /// What the step is.
    pub what: What,
    /// Its position's role.
    pub role: Category,
    /// `as Type`, if given.
    pub as_type: Option<syn::Type>,
    /// The step name's span (or the path's).
    pub span: Span,
    /// Its position in the pipeline (steps that did not parse or resolve leave gaps).
    pub index: usize,
    /// Its arguments as written, in order: `(name, value)`, the name empty for a positional
    /// one (the pipeline's graph shows them).
    pub args: Vec<(String, TokenStream)>,
}

/// A built-in step with its values, or a user expression.
pub enum What {
    /// A built-in step.
    Builtin { op: &'static Op, positional: Vec<Value>, named: Vec<(String, Value)> },
    /// A user path: an expression implementing `Source`, `Operator` or `Sink`.
    User { path: syn::Path, call: Option<Group> },
    /// `broadcast { .. }` / `route { .. }`: the pipeline's end, in branches.
    Fork(Fork),
}

/// Whether `ty` is `Json` (`etl::Json`, `::etl::record::Json`, ...).
pub fn is_json(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Json" && s.arguments.is_none()))
}

/// Check every step; return the checked steps and every error.
pub fn check(ast: &Ast) -> (Vec<Checked>, Diagnostics) {
    let mut errors = Diagnostics::default();
    let mut out = Vec::new();
    let n = ast.steps.len();
    for (i, step) in ast.steps.iter().enumerate() {
        let role = if i == 0 {
            Category::Source
        } else if i + 1 == n {
            Category::Sink
        } else {
            Category::Operator
        };
        let Some(step) = step else {
            continue;
        };
        if let Some(c) = check_step(step, role, n, i, &mut errors) {
            out.push(c);
        }
    }
    exactly_once(ast, &out, &mut errors);
    (out, errors)
}

/// `exactly_once = true` on a sink that stores positions needs a source that can start at
/// them: a built-in source that cannot seek is refused on the argument. (A user source may
/// report positions: the sink warns at run time when its batches have none.)
fn exactly_once(ast: &Ast, steps: &[Checked], errors: &mut Diagnostics) {
    let Some(sink) = steps.iter().find(|c| c.role == Category::Sink) else { return };
    let What::Builtin { op, named, .. } = &sink.what else { return };
    if op.positions != PositionRole::Stores {
        return;
    }
    match named.iter().find(|(name, _)| name == "exactly_once") {
        None => return,
        Some((_, Value::Bool(b))) if !b.value => return,
        Some(_) => {}
    }
    let source = match steps.iter().find(|c| c.role == Category::Source).map(|c| &c.what) {
        Some(What::Builtin { op, .. }) if op.positions != PositionRole::Seeks => op.name,
        _ => return,
    };
    let span = match ast.steps.get(sink.index).and_then(Option::as_ref).map(|s| &s.head) {
        Some(Head::Name { args, .. }) => {
            args.iter().filter_map(|a| a.name.as_ref()).find(|n| n.unraw() == "exactly_once").map_or(sink.span, |n| n.span())
        }
        _ => sink.span,
    };
    errors.push(Diagnostic::new(
        span,
        format!("`exactly_once` needs a source that can start reading at stored positions, and `{source}` cannot"),
        format!(
            "read from {} (`kafka(topics = [..], group = \"..\")`), or remove `exactly_once` for at-least-once delivery \
             (with `mode = upsert(key)` a redelivered record overwrites itself)",
            seeking_sources()
        ),
    ));
}

/// The built-in sources that can seek to stored positions, quoted.
fn seeking_sources() -> String {
    let names: Vec<&str> = ops::TABLE.iter().filter(|op| op.positions == PositionRole::Seeks).map(|op| op.name).collect();
    suggest::quoted(&names)
}

/// The built-in sinks that store positions, quoted.
fn storing_sinks() -> String {
    let names: Vec<&str> = ops::TABLE.iter().filter(|op| op.positions == PositionRole::Stores).map(|op| op.name).collect();
    suggest::quoted(&names)
}

fn check_step(step: &Step, role: Category, n: usize, index: usize, errors: &mut Diagnostics) -> Option<Checked> {
    let as_type = step.as_type.as_ref().map(|a| a.ty.clone());
    match &step.head {
        Head::Fork(fork) if fork.kind == "merge" => {
            let span = fork.kind.span();
            if role != Category::Source {
                errors.error(span, "`merge` is a source; a source can only be the first step", "move it to the start of the pipeline");
            }
            let args = fork.arms.iter().map(|a| (String::new(), a.body.clone())).collect();
            Some(Checked { what: What::Fork(fork.clone()), role, as_type, span, index, args })
        }
        Head::Fork(fork) => {
            let span = fork.kind.span();
            if role != Category::Sink {
                errors.error(
                    span,
                    format!("`{}` ends a pipeline: its branches end in sinks", fork.kind),
                    "move it to the end, after the steps every branch shares",
                );
            }
            let args = fork.arms.iter().map(|a| (String::new(), a.body.clone())).collect();
            Some(Checked { what: What::Fork(fork.clone()), role, as_type, span, index, args })
        }
        Head::Path { path, call } => {
            let span = path.span();
            if n == 1 {
                errors.push(no_sink(&quote::quote!(#path #call), span));
            }
            if let Some(a) = &step.as_type {
                if role != Category::Source {
                    errors.push(Diagnostic::new(
                        a.as_token.span,
                        "`as Type` after a user step is only supported on a source",
                        "declare the type with `map(..) as Type` instead",
                    ));
                }
            }
            let args =
                call.as_ref().map(|g| split_commas(g.stream())).unwrap_or_default().into_iter().map(|a| (String::new(), a)).collect();
            Some(Checked { what: What::User { path: path.clone(), call: call.clone() }, role, as_type, span, index, args })
        }
        Head::Name { ident, args } => {
            let name = ident.unraw().to_string();
            let span = ident.span();
            let candidates: Vec<&Op> = ops::lookup(&name).collect();
            let Some(op) = candidates.iter().copied().find(|op| op.category == role).or(candidates.first().copied()) else {
                if super::parse::FORKS.contains(&name.as_str()) {
                    let example = if name == "route" {
                        "route { |r| r.amount > 1000 => SINK(..), _ => SINK(..) }"
                    } else {
                        "broadcast { SINK(..), map(f) | SINK(..) }"
                    };
                    errors.push(Diagnostic::new(
                        span,
                        format!("`{name}` takes its branches in braces, not parentheses"),
                        format!("write `{example}`: each branch a sub-pipeline ending in a sink"),
                    ));
                } else {
                    let help = match suggest::did_you_mean(&name, ops::names()) {
                        Some(d) => d,
                        None => format!(
                            "the built-in steps are {}; a user step is a path: `my_mod::{name}(..)`",
                            suggest::quoted(&ops::names())
                        ),
                    };
                    errors.push(Diagnostic::new(span, format!("unknown step `{name}`"), help));
                }
                return None;
            };
            if op.category != role {
                errors.push(misplaced(op, &name, span, role, n));
            } else if n == 1 {
                let values = args.iter().map(|a| {
                    let value = &a.value;
                    match &a.name {
                        Some(name) => quote::quote!(#name = #value),
                        None => value.clone(),
                    }
                });
                errors.push(no_sink(&quote::quote!(#ident(#(#values),*)), span));
            }
            let (positional, named) = check_args(op, &name, span, args, errors);
            if let Some(a) = &step.as_type {
                if !op.accepts_as {
                    errors.push(Diagnostic::new(
                        a.as_token.span,
                        format!("`as Type` cannot follow `{name}`"),
                        "`as` follows a source (the type it decodes into) or `map` (its output type)",
                    ));
                }
            }
            let args = args.iter().map(|a| (a.name.as_ref().map(|n| n.unraw().to_string()).unwrap_or_default(), a.value.clone())).collect();
            Some(Checked { what: What::Builtin { op, positional, named }, role, as_type, span, index, args })
        }
    }
}

/// A pipeline of one step, the source `source`: it needs a sink.
fn no_sink(source: &TokenStream, span: Span) -> Diagnostic {
    let mut source = crate::text::text(source);
    if source.len() > 40 {
        source = match source.find('(') {
            Some(at) => format!("{}(..)", &source[..at]),
            None => source,
        };
    }
    Diagnostic::new(
        span,
        format!("a pipeline needs a sink: `{source}` is a source with nothing after it"),
        format!("end it with a sink, e.g. `pipeline! {{ {source} | stdout() }}`; the sinks are {}", sinks()),
    )
}

/// The built-in sinks, quoted.
fn sinks() -> String {
    let names: Vec<&str> = ops::TABLE.iter().filter(|op| op.category == Category::Sink).map(|op| op.name).collect();
    suggest::quoted(&names)
}

/// The arguments of a user step's call, split on the commas outside brackets and closures'
/// parameters (`my::sink(a, |x, y| x + y)` has two).
fn split_commas(tokens: TokenStream) -> Vec<TokenStream> {
    use syn::parse::Parser;
    let exprs = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated.parse2(tokens.clone());
    match exprs {
        Ok(exprs) => exprs.iter().map(quote::ToTokens::to_token_stream).collect(),
        // Not expressions (rustc says why): shown as one argument.
        Err(_) if tokens.is_empty() => Vec::new(),
        Err(_) => vec![tokens],
    }
}

fn misplaced(op: &Op, name: &str, span: Span, role: Category, n: usize) -> Diagnostic {
    match (op.category, role) {
        (Category::Source, _) => Diagnostic::new(
            span,
            format!("`{name}` is a source; a source can only be the first step"),
            "move it to the start of the pipeline, or remove it",
        ),
        (Category::Sink, Category::Source) if n == 1 => Diagnostic::new(
            span,
            format!("`{name}` is a sink; a pipeline starts with a source"),
            "start with a source: `iter(items) | ...`",
        ),
        (Category::Sink, Category::Source) => Diagnostic::new(
            span,
            format!("`{name}` is a sink; a pipeline starts with a source"),
            "start with a source, e.g. `iter(items)` or `file(path = \"in.jsonl\")`",
        ),
        (Category::Sink, _) => Diagnostic::new(
            span,
            format!("`{name}` is a sink; a sink can only be the last step"),
            "move it to the end of the pipeline; one pipeline has one sink",
        ),
        (Category::Operator, Category::Source) => Diagnostic::new(
            span,
            format!("`{name}` is an operator; a pipeline starts with a source"),
            "start with a source, e.g. `iter(items) | ...`",
        ),
        (Category::Operator, _) => Diagnostic::new(
            span,
            format!("`{name}` is an operator; a pipeline ends with a sink"),
            "end the pipeline with a sink, e.g. `| stdout()`",
        ),
    }
}

fn check_args(op: &'static Op, name: &str, span: Span, args: &[RawArg], errors: &mut Diagnostics) -> (Vec<Value>, Vec<(String, Value)>) {
    let mut positional_raw: Vec<&RawArg> = Vec::new();
    let mut named: Vec<(String, Value)> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for arg in args {
        match &arg.name {
            None => positional_raw.push(arg),
            Some(ident) => {
                let arg_name = ident.unraw().to_string();
                let Some(spec) = op.arg(&arg_name) else {
                    if arg_name == "exactly_once" && op.category == Category::Sink {
                        errors.push(Diagnostic::new(
                            ident.span(),
                            format!("`{name}` cannot write exactly once: `exactly_once` is an argument of {} only", storing_sinks()),
                            format!(
                                "exactly-once stores the source's positions in the sink's own transaction, with the records; \
                                 write to `postgres(url = .., table = .., exactly_once = true)`, or remove `exactly_once` \
                                 (`{name}` delivers at least once)"
                            ),
                        ));
                        continue;
                    }
                    let names: Vec<&str> = op.all_args().map(|a| a.name).collect();
                    let help = match (suggest::did_you_mean(&arg_name, names.iter().copied()), names.is_empty()) {
                        (Some(d), _) => d,
                        (None, true) => format!("`{name}` takes no named arguments"),
                        (None, false) => format!("`{name}` takes {}", suggest::quoted(&names)),
                    };
                    errors.push(Diagnostic::new(ident.span(), format!("unknown argument `{arg_name}` for `{name}`"), help));
                    continue;
                };
                if seen.contains(&arg_name) {
                    errors.push(Diagnostic::new(ident.span(), format!("`{arg_name}` is given twice"), "keep one"));
                    continue;
                }
                seen.push(arg_name.clone());
                match convert(spec.kind, spec.name, &arg.value, arg.expr.as_ref()) {
                    Ok(v) => named.push((arg_name, v)),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    for spec in op.args.iter().filter(|a| a.required) {
        if !seen.iter().any(|s| s == spec.name) {
            errors.push(Diagnostic::new(
                span,
                format!("`{name}` needs `{}`", spec.name),
                format!("add `{} = {}`", spec.name, spec.kind.example()),
            ));
        }
    }
    let mut positional = Vec::new();
    match &op.positional {
        None => {
            if let Some(first) = positional_raw.first() {
                let help = match op.all_args().next() {
                    Some(a) => format!("its arguments are named: `{} = {}`", a.name, a.kind.example()),
                    None => format!("write `{name}()`"),
                };
                errors.push(Diagnostic::spanned(&first.value, format!("`{name}` takes no positional argument"), help));
            }
        }
        Some(p) => {
            if positional_raw.is_empty() && p.kind.variadic() {
                // `select()`: reported by `typed::walk`, which can list the record's fields.
                positional.push(if p.kind == Kind::Renames { Value::Renames(Vec::new()) } else { Value::Fields(Vec::new()) });
            } else if positional_raw.is_empty() {
                errors.push(Diagnostic::new(
                    span,
                    format!("`{name}` needs {} (`{}`)", p.kind.describe(), p.name),
                    format!("write `{name}({})`", p.kind.example()),
                ));
            } else if p.kind.variadic() {
                let items: Vec<&TokenStream> = positional_raw.iter().map(|a| &a.value).collect();
                match list(p.kind, &items) {
                    Ok(v) => positional.push(v),
                    Err(e) => errors.push(e),
                }
            } else {
                if let Some(extra) = positional_raw.get(1) {
                    errors.push(Diagnostic::spanned(
                        &extra.value,
                        format!("`{name}` takes one positional argument"),
                        "other arguments are `name = value`",
                    ));
                }
                let first = positional_raw[0];
                match convert(p.kind, p.name, &first.value, first.expr.as_ref()) {
                    Ok(v) => positional.push(v),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    (positional, named)
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;
    use quote::quote;

    fn errors(tokens: TokenStream) -> Vec<String> {
        let (ast, mut errors) = parse(tokens);
        errors.extend(check(&ast).1);
        errors.texts()
    }

    #[test]
    fn a_valid_pipeline_has_no_error() {
        let e = errors(quote! {
            file(path = "in.jsonl", format = "jsonl", batch_size = 500, batch_timeout = 2s, max_records = 10)
            | rename(a -> b) | select(b, c.d) | drop(e) | file(dir = "lake", format = "csv", prefix = "x")
        });
        assert!(e.is_empty(), "{e:?}");
        let e = errors(quote! { iter(v) as Order | filter(|o| o.a > 0) | map(|o| o.a) as i64 | my::sink() });
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn every_error_at_once_with_help() {
        let e = errors(quote! {
            iter(v, batchsize = 3, batch_timeout = 2x) | fliter(|o| true) | stdout() | map(f) as T | select(a) | file(format = "xml")
        });
        let want = [
            "unknown argument `batchsize` for `iter`",
            "unknown duration unit `x`",
            "unknown step `fliter`",
            "`stdout` is a sink; a sink can only be the last step",
            "unknown format `xml`",
            "`file` needs `dir`",
        ];
        for w in want {
            assert!(e.iter().any(|e| e.starts_with(w)), "missing {w:?} in {e:?}");
        }
        assert!(e.iter().all(|e| e.contains("\nhelp: ")), "{e:?}");
        assert!(e.iter().any(|e| e.contains("did you mean `filter`?")));
        assert!(e.iter().any(|e| e.contains("did you mean `batch_size`?")));
    }

    #[test]
    fn positions() {
        assert!(errors(quote! { map(f) | stdout() })[0].starts_with("`map` is an operator; a pipeline starts with a source"));
        assert!(errors(quote! { iter(v) | map(f) })[0].starts_with("`map` is an operator; a pipeline ends with a sink"));
        assert!(errors(quote! { iter(v) | iter(w) | stdout() })[0].starts_with("`iter` is a source"));
        assert!(errors(quote! { iter(v) })[0].starts_with("a pipeline needs a sink: `iter(v)` is a source with nothing after it"));
        assert!(errors(quote! { iter(v) })[0].contains("help: end it with a sink, e.g. `pipeline! { iter(v) | stdout() }`"));
        assert!(errors(quote! { my::source(1) })[0].starts_with("a pipeline needs a sink: `my::source(1)` is a source"));
        assert!(errors(quote! { iter(v) | filter(f) as T | stdout() })[0].starts_with("`as Type` cannot follow `filter`"));
    }

    #[test]
    fn kinds() {
        assert!(errors(quote! { iter(v, batch_size = "5") | stdout() })[0].starts_with("`batch_size` takes an integer"));
        assert!(errors(quote! { iter(v, batch_size = n) | file(dir = args.lake, prefix = &p) }).is_empty());
        assert!(errors(quote! { iter(v) | file(dir = 5) })[0].starts_with("`dir` takes a string"));
        assert!(errors(quote! { iter(v, max_bytes = 3x) | stdout() })[0].starts_with("`max_bytes` takes an integer, not `3x`"));
        assert!(errors(quote! { iter(v, max_bytes = 3_000usize) | stdout() }).is_empty());
        assert!(errors(quote! { iter(v) | map() | stdout() })[0].starts_with("`map` needs"));
        assert!(errors(quote! { iter(v) | rename(a) | stdout() })[0].starts_with("expected renames"));
        assert!(errors(quote! { iter(v) | stdout(1) })[0].starts_with("`stdout` takes no positional argument"));
        assert!(errors(quote! { iter(v, batch_size = 1, batch_size = 2) | stdout() })[0].starts_with("`batch_size` is given twice"));
    }

    #[test]
    fn exactly_once_needs_a_sink_that_stores_and_a_source_that_seeks() {
        let ok = quote! { kafka(topics = ["p"], group = "g") | postgres(url = "u", table = "t", exactly_once = true) };
        assert!(errors(ok).is_empty());
        assert!(errors(quote! { kafka(topics = ["p"], group = "g") | postgres(url = "u", table = "t", exactly_once = flag) }).is_empty());
        assert!(errors(quote! { file(path = "in") | postgres(url = "u", table = "t", exactly_once = false) }).is_empty());
        assert!(errors(quote! { my::source() | postgres(url = "u", table = "t", exactly_once = true) }).is_empty(), "checked at run time");
        let e = errors(quote! { file(path = "in") | postgres(url = "u", table = "t", exactly_once = true) });
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("`exactly_once` needs a source that can start reading at stored positions, and `file` cannot"), "{e:?}");
        assert!(e[0].contains("help: read from `kafka`"), "{e:?}");
        let e = errors(quote! { kafka(topics = ["p"], group = "g") | file(dir = "lake", exactly_once = true) });
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("`file` cannot write exactly once: `exactly_once` is an argument of `postgres` only"), "{e:?}");
    }

    #[test]
    fn errors_point_at_the_users_token() {
        let tokens = quote! { iter(v) | stdout() | blackhole() };
        let (ast, _) = parse(tokens.clone());
        let (_, errs) = check(&ast);
        let stdout = tokens.clone().into_iter().nth(3).map(|t| format!("{:?}", t.span()));
        assert_eq!(errs.iter().next().map(|e| format!("{:?}", e.span)), stdout);
    }
}
