//! AST → checked steps: every step resolved against the ops table for its position, every
//! argument converted to its kind, every error collected (each on the user's token).

use super::duration;
use super::parse::{Ast, Head, RawArg, Step};
use super::suggest;
use crate::ops::{self, Category, FieldRef, Kind, Op, Value};
use proc_macro2::{Group, Span, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Ident, Token};

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
}

/// A built-in step with its values, or a user expression.
pub enum What {
    /// A built-in step.
    Builtin { op: &'static Op, positional: Vec<Value>, named: Vec<(String, Value)> },
    /// A user path: an expression implementing `Source`, `Operator` or `Sink`.
    User { path: syn::Path, call: Option<Group> },
}

fn err(span: Span, msg: impl std::fmt::Display, help: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(span, format!("{msg}\nhelp: {help}"))
}

fn err_tokens(tokens: &TokenStream, msg: impl std::fmt::Display, help: impl std::fmt::Display) -> syn::Error {
    syn::Error::new_spanned(tokens, format!("{msg}\nhelp: {help}"))
}

/// Whether `ty` is `Json` (`etl::Json`, `::etl::record::Json`, ...).
pub fn is_json(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Json" && s.arguments.is_none()))
}

/// Check every step; return the checked steps and every error.
pub fn check(ast: &Ast) -> (Vec<Checked>, Vec<syn::Error>) {
    let mut errors = Vec::new();
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
    (out, errors)
}

fn check_step(step: &Step, role: Category, n: usize, index: usize, errors: &mut Vec<syn::Error>) -> Option<Checked> {
    let as_type = step.as_type.as_ref().map(|a| a.ty.clone());
    match &step.head {
        Head::Path { path, call } => {
            let span = path.span();
            if n == 1 {
                errors.push(err(span, "a pipeline needs a source and a sink", "end it with a sink: `... | stdout()`"));
            }
            if let Some(a) = &step.as_type {
                if role != Category::Source {
                    errors.push(err(
                        a.as_token.span,
                        "`as Type` after a user step is only supported on a source",
                        "declare the type with `map(..) as Type` instead",
                    ));
                }
            }
            Some(Checked { what: What::User { path: path.clone(), call: call.clone() }, role, as_type, span, index })
        }
        Head::Name { ident, args } => {
            let name = ident.unraw().to_string();
            let span = ident.span();
            let candidates: Vec<&Op> = ops::lookup(&name).collect();
            let Some(op) = candidates.iter().copied().find(|op| op.category == role).or(candidates.first().copied()) else {
                if ops::PLANNED.contains(&name.as_str()) {
                    errors.push(err(
                        span,
                        format!("`{name}` is not implemented yet"),
                        "use a `map` to your own type, or a user step `my_mod::my_step(..)`",
                    ));
                } else {
                    let help = match suggest::did_you_mean(&name, ops::names()) {
                        Some(d) => d,
                        None => format!(
                            "the built-in steps are {}; a user step is a path: `my_mod::{name}(..)`",
                            suggest::quoted(&ops::names())
                        ),
                    };
                    errors.push(err(span, format!("unknown step `{name}`"), help));
                }
                return None;
            };
            if op.category != role {
                errors.push(misplaced(op, &name, span, role, n));
            } else if n == 1 {
                errors.push(err(
                    span,
                    format!("`{name}` is a source, but the pipeline has no sink"),
                    "end it with a sink: `... | stdout()`",
                ));
            }
            let (positional, named) = check_args(op, &name, span, args, errors);
            if let Some(a) = &step.as_type {
                if !op.accepts_as {
                    errors.push(err(
                        a.as_token.span,
                        format!("`as Type` cannot follow `{name}`"),
                        "`as` follows a source (the type it decodes into) or `map` (its output type)",
                    ));
                }
            }
            Some(Checked { what: What::Builtin { op, positional, named }, role, as_type, span, index })
        }
    }
}

fn misplaced(op: &Op, name: &str, span: Span, role: Category, n: usize) -> syn::Error {
    match (op.category, role) {
        (Category::Source, _) => err(
            span,
            format!("`{name}` is a source; a source can only be the first step"),
            "move it to the start of the pipeline, or remove it",
        ),
        (Category::Sink, Category::Source) if n == 1 => {
            err(span, format!("`{name}` is a sink; a pipeline starts with a source"), "start with a source: `iter(items) | ...`")
        }
        (Category::Sink, Category::Source) => err(
            span,
            format!("`{name}` is a sink; a pipeline starts with a source"),
            "start with a source, e.g. `iter(items)` or `file(path = \"in.jsonl\")`",
        ),
        (Category::Sink, _) => err(
            span,
            format!("`{name}` is a sink; a sink can only be the last step"),
            "move it to the end of the pipeline; one pipeline has one sink",
        ),
        (Category::Operator, Category::Source) => {
            err(span, format!("`{name}` is an operator; a pipeline starts with a source"), "start with a source, e.g. `iter(items) | ...`")
        }
        (Category::Operator, _) => {
            err(span, format!("`{name}` is an operator; a pipeline ends with a sink"), "end the pipeline with a sink, e.g. `| stdout()`")
        }
    }
}

fn check_args(
    op: &'static Op,
    name: &str,
    span: Span,
    args: &[RawArg],
    errors: &mut Vec<syn::Error>,
) -> (Vec<Value>, Vec<(String, Value)>) {
    let mut positional_raw: Vec<&TokenStream> = Vec::new();
    let mut named: Vec<(String, Value)> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for arg in args {
        match &arg.name {
            None => positional_raw.push(&arg.value),
            Some(ident) => {
                let arg_name = ident.unraw().to_string();
                let Some(spec) = op.arg(&arg_name) else {
                    let names: Vec<&str> = op.all_args().map(|a| a.name).collect();
                    let help = match (suggest::did_you_mean(&arg_name, names.iter().copied()), names.is_empty()) {
                        (Some(d), _) => d,
                        (None, true) => format!("`{name}` takes no named arguments"),
                        (None, false) => format!("`{name}` takes {}", suggest::quoted(&names)),
                    };
                    errors.push(err(ident.span(), format!("unknown argument `{arg_name}` for `{name}`"), help));
                    continue;
                };
                if seen.contains(&arg_name) {
                    errors.push(err(ident.span(), format!("`{arg_name}` is given twice"), "keep one"));
                    continue;
                }
                seen.push(arg_name.clone());
                match convert(spec.kind, spec.name, &arg.value) {
                    Ok(v) => named.push((arg_name, v)),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    for spec in op.args.iter().filter(|a| a.required) {
        if !seen.iter().any(|s| s == spec.name) {
            errors.push(err(span, format!("`{name}` needs `{}`", spec.name), format!("add `{} = {}`", spec.name, spec.kind.example())));
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
                errors.push(err_tokens(first, format!("`{name}` takes no positional argument"), help));
            }
        }
        Some(p) => {
            if positional_raw.is_empty() && p.kind.variadic() {
                // `select()`: reported by `typed::walk`, which can list the record's fields.
                positional.push(if p.kind == Kind::Renames { Value::Renames(Vec::new()) } else { Value::Fields(Vec::new()) });
            } else if positional_raw.is_empty() {
                errors.push(err(
                    span,
                    format!("`{name}` needs {} (`{}`)", p.kind.describe(), p.name),
                    format!("write `{name}({})`", p.kind.example()),
                ));
            } else if p.kind.variadic() {
                match list(p.kind, &positional_raw) {
                    Ok(v) => positional.push(v),
                    Err(e) => errors.push(e),
                }
            } else {
                if let Some(extra) = positional_raw.get(1) {
                    errors.push(err_tokens(extra, format!("`{name}` takes one positional argument"), "other arguments are `name = value`"));
                }
                match convert(p.kind, p.name, positional_raw[0]) {
                    Ok(v) => positional.push(v),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    (positional, named)
}

fn wrong_kind(tokens: &TokenStream, what: &str, kind: Kind) -> syn::Error {
    err_tokens(tokens, format!("`{what}` takes {}", kind.describe()), format!("write `{what} = {}`", kind.example()))
}

/// Convert one value to `kind`.
fn convert(kind: Kind, what: &str, tokens: &TokenStream) -> syn::Result<Value> {
    match kind {
        Kind::Expr => syn::parse2(tokens.clone()).map(Value::Expr),
        Kind::Type => syn::parse2(tokens.clone()).map(Value::Type),
        Kind::Str => match syn::parse2::<syn::Expr>(tokens.clone()) {
            Ok(syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. })) => Ok(Value::Str(s)),
            // A literal of another kind is a mistake; any other expression is the user's value
            // (a variable, `&args.url`, `format!(..)`), type-checked by rustc.
            Ok(syn::Expr::Lit(_)) | Err(_) => Err(wrong_kind(tokens, what, kind)),
            Ok(expr) => Ok(Value::Expr(expr)),
        },
        Kind::Bool => match syn::parse2::<syn::Expr>(tokens.clone()) {
            Ok(syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Bool(b), .. })) => Ok(Value::Bool(b)),
            Ok(syn::Expr::Lit(_)) | Err(_) => Err(wrong_kind(tokens, what, kind)),
            Ok(expr) => Ok(Value::Expr(expr)),
        },
        Kind::Count => match convert(Kind::Int, what, tokens) {
            Ok(Value::Int(int)) if int.base10_digits().trim_start_matches('0').is_empty() => Err(err(
                int.span(),
                format!("`{what}` must be at least 1"),
                format!("`{what} = 1` is the smallest; e.g. `{what} = {}`", kind.example()),
            )),
            Err(_) => Err(wrong_kind(tokens, what, kind)),
            other => other,
        },
        Kind::Int => {
            let int: syn::LitInt = match syn::parse2::<syn::Expr>(tokens.clone()) {
                Ok(syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(int), .. })) => int,
                Ok(syn::Expr::Lit(_)) | Err(_) => return Err(wrong_kind(tokens, what, kind)),
                Ok(expr) => return Ok(Value::Expr(expr)),
            };
            const SUFFIXES: &[&str] = &["", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize"];
            if !SUFFIXES.contains(&int.suffix()) {
                return Err(err(
                    int.span(),
                    format!("`{what}` takes an integer, not `{int}`"),
                    format!("write `{what} = {}`", kind.example()),
                ));
            }
            Ok(Value::Int(int))
        }
        Kind::Duration => match syn::parse2::<syn::Lit>(tokens.clone()) {
            Ok(lit @ (syn::Lit::Int(_) | syn::Lit::Float(_))) => duration::parse(&lit).map(|d| Value::Duration(duration::tokens(&d))),
            _ => Err(err_tokens(tokens, format!("`{what}` takes a duration"), duration::HELP.trim_start_matches("help: "))),
        },
        Kind::Format => {
            let lit: syn::LitStr = syn::parse2(tokens.clone()).map_err(|_| wrong_kind(tokens, what, kind))?;
            match lit.value().to_ascii_lowercase().as_str() {
                "jsonl" | "ndjson" | "json" => Ok(Value::Format(quote!(::etl::format::Format::Jsonl))),
                "csv" => Ok(Value::Format(quote!(::etl::format::Format::Csv))),
                other => Err(err(lit.span(), format!("unknown format `{other}`"), "the formats are \"jsonl\" and \"csv\"")),
            }
        }
        Kind::DataFormat => {
            let lit: syn::LitStr = syn::parse2(tokens.clone()).map_err(|_| wrong_kind(tokens, what, kind))?;
            match lit.value().to_ascii_lowercase().as_str() {
                "json" => Ok(Value::Format(quote!(::etl::source::DataFormat::Json))),
                "text" => Ok(Value::Format(quote!(::etl::source::DataFormat::Text))),
                other => Err(err(lit.span(), format!("unknown data format `{other}`"), "the data formats are \"json\" and \"text\"")),
            }
        }
        Kind::Fields | Kind::Renames => list(kind, &[tokens]),
    }
}

/// A dotted field path: `a`, `a.b`, `type`, or a string literal for any other name.
fn field_path(input: ParseStream<'_>) -> syn::Result<FieldRef> {
    if input.peek(syn::LitStr) {
        let lit = input.parse::<syn::LitStr>()?;
        return Ok(FieldRef { path: lit.value(), span: lit.span(), simple: false });
    }
    let first = Ident::parse_any(input)?;
    let span = first.span();
    let mut path = first.unraw().to_string();
    let mut simple = true;
    while input.peek(Token![.]) {
        input.parse::<Token![.]>()?;
        path.push('.');
        path.push_str(&Ident::parse_any(input)?.unraw().to_string());
        simple = false;
    }
    Ok(FieldRef { path, span, simple })
}

fn list(kind: Kind, items: &[&TokenStream]) -> syn::Result<Value> {
    let mut fields = Vec::new();
    let mut renames = Vec::new();
    for tokens in items {
        let bad = || {
            let help = if kind == Kind::Renames {
                "write `old -> new`, e.g. `rename(ts -> timestamp, length.new -> length_new)`"
            } else {
                "write field names, e.g. `select(id, customer.name)`"
            };
            err_tokens(tokens, format!("expected {}", kind.describe()), help)
        };
        let one = |input: ParseStream<'_>| -> syn::Result<(FieldRef, Option<FieldRef>)> {
            let from = field_path(input)?;
            let to = if kind == Kind::Renames {
                input.parse::<Token![->]>()?;
                Some(field_path(input)?)
            } else {
                None
            };
            Ok((from, to))
        };
        let (from, to) = one.parse2((*tokens).clone()).map_err(|_| bad())?;
        match to {
            Some(to) => renames.push((from, to)),
            None => fields.push(from),
        }
    }
    Ok(if kind == Kind::Renames { Value::Renames(renames) } else { Value::Fields(fields) })
}

/// The first token's span of `tokens`, for tests.
#[cfg(test)]
fn first_span(tokens: &TokenStream) -> Option<Span> {
    tokens.clone().into_iter().next().map(|t: proc_macro2::TokenTree| t.span())
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;

    fn errors(tokens: TokenStream) -> Vec<String> {
        let (ast, mut errors) = parse(tokens);
        errors.extend(check(&ast).1);
        errors.into_iter().map(|e| e.to_string()).collect()
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
        assert!(errors(quote! { iter(v) })[0].contains("no sink"));
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
    fn errors_point_at_the_users_token() {
        let tokens = quote! { iter(v) | stdout() | blackhole() };
        let (ast, _) = parse(tokens.clone());
        let (_, errs) = check(&ast);
        let stdout = tokens.clone().into_iter().nth(3).map(|t| format!("{:?}", t.span()));
        assert_eq!(errs.first().map(|e| format!("{:?}", e.span())), stdout);
        assert!(first_span(&tokens).is_some());
    }
}
