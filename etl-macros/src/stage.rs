//! `#[stage(retries = N, backoff = D, timeout = D, factor = F, max_backoff = D)]` on an
//! `async fn(In) -> Result<Out, E>`.
//!
//! The function keeps its name, argument and body; it becomes a plain `fn` returning
//! `::etl::stage::Call<impl Future<Output = Result<Out, E>> + Send, name>`, which `.await`s to
//! what the `async fn` returned (the original is nested inside, unchanged). `name` in that type
//! is a hidden empty braced struct of the function's name (the type namespace, so it does not
//! clash with the function) implementing `::etl::stage::StageConfig` with the options: `map`
//! reads them from the return type, without calling the function.

use crate::pipeline::duration;
use crate::pipeline::suggest;
use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, Lit, Meta, Token};

/// The arguments of `#[stage]`, with their kind and default, for messages and docs.
const ARGS: &[(&str, &str, &str)] = &[
    ("retries", "an integer", "3"),
    ("backoff", "a duration", "100ms"),
    ("timeout", "a duration", "none"),
    ("factor", "a number", "2.0"),
    ("max_backoff", "a duration", "30s"),
];

/// Names other retry libraries use, and the argument meant.
const ALIASES: &[(&str, &str)] = &[
    ("retry", "retries"),
    ("max_retries", "retries"),
    ("attempts", "retries"),
    ("max_attempts", "retries"),
    ("delay", "backoff"),
    ("initial_delay", "backoff"),
    ("min_delay", "backoff"),
    ("max_delay", "max_backoff"),
    ("multiplier", "factor"),
    ("deadline", "timeout"),
];

/// A stage's options as parsed: each a token expression for `StageOptions`'s builder.
#[derive(Default)]
struct Options {
    retries: Option<TokenStream>,
    backoff: Option<TokenStream>,
    timeout: Option<TokenStream>,
    factor: Option<TokenStream>,
    max_backoff: Option<TokenStream>,
}

fn err(span: Span, msg: impl std::fmt::Display, help: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(span, format!("{msg}\nhelp: {help}"))
}

fn first_span(tokens: &impl ToTokens) -> Span {
    tokens.to_token_stream().into_iter().next().map_or_else(Span::call_site, |t| t.span())
}

/// Expand `#[stage(args)] item`.
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Vec::new();
    let options = parse_args(args, &mut errors);
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            errors.push(err(
                first_span(&item),
                "`#[stage]` goes on an `async fn`",
                "write `#[stage] async fn name(record: In) -> Result<Out, E> { .. }`",
            ));
            return with_errors(&errors, item);
        }
    };
    check_fn(&func, &mut errors);
    if !errors.is_empty() {
        return with_errors(&errors, quote!(#[allow(dead_code)] #func));
    }
    generate(func, &options)
}

/// The errors, then the item as the user wrote it (so that no error follows from it missing).
fn with_errors(errors: &[syn::Error], item: TokenStream) -> TokenStream {
    let errors = errors.iter().map(syn::Error::to_compile_error);
    quote!(#(#errors)* #item)
}

fn parse_args(args: TokenStream, errors: &mut Vec<syn::Error>) -> Options {
    let mut options = Options::default();
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(m) => m,
        Err(e) => {
            errors.push(err(
                e.span(),
                "expected `name = value` arguments",
                format!("`#[stage]` takes {}, e.g. `#[stage(retries = 3, backoff = 500ms)]`", names()),
            ));
            return options;
        }
    };
    let mut seen: Vec<String> = Vec::new();
    for meta in metas {
        let (path, value) = match meta {
            Meta::NameValue(nv) => (nv.path, Some(nv.value)),
            Meta::Path(p) => (p, None),
            Meta::List(l) => (l.path, None),
        };
        let Some(ident) = path.get_ident() else {
            errors.push(err(first_span(&path), "expected an argument name", format!("`#[stage]` takes {}", names())));
            continue;
        };
        let name = ident.to_string();
        let Some((_, kind, _)) = ARGS.iter().find(|(n, _, _)| *n == name) else {
            let help = ALIASES
                .iter()
                .find(|(alias, _)| *alias == name)
                .map(|(_, meant)| format!("did you mean `{meant}`?"))
                .or_else(|| suggest::did_you_mean(&name, ARGS.iter().map(|(n, _, _)| *n)))
                .unwrap_or_else(|| format!("`#[stage]` takes {}", names()));
            errors.push(err(ident.span(), format!("unknown argument `{name}` for `#[stage]`"), help));
            continue;
        };
        let Some(value) = value else {
            errors.push(err(ident.span(), format!("`{name}` needs a value"), format!("write `{name} = {}`", example(&name))));
            continue;
        };
        if seen.contains(&name) {
            errors.push(err(ident.span(), format!("`{name}` is given twice"), "keep one"));
            continue;
        }
        seen.push(name.clone());
        let converted = match *kind {
            "an integer" => integer(&name, &value),
            "a number" => number(&name, &value),
            _ => duration_value(&name, &value),
        };
        match converted {
            Ok(tokens) => {
                let slot = match name.as_str() {
                    "retries" => &mut options.retries,
                    "backoff" => &mut options.backoff,
                    "timeout" => &mut options.timeout,
                    "factor" => &mut options.factor,
                    _ => &mut options.max_backoff,
                };
                *slot = Some(tokens);
            }
            Err(e) => errors.push(e),
        }
    }
    options
}

fn names() -> String {
    suggest::quoted(&ARGS.iter().map(|(n, _, _)| *n).collect::<Vec<_>>())
}

fn example(name: &str) -> &'static str {
    match name {
        "retries" => "3",
        "factor" => "2.0",
        "timeout" => "5s",
        "max_backoff" => "30s",
        _ => "500ms",
    }
}

fn wrong(name: &str, value: &Expr, what: &str) -> syn::Error {
    err(
        first_span(value),
        format!("`{name}` takes {what}, not `{}`", value.to_token_stream()),
        format!("write `{name} = {}`", example(name)),
    )
}

/// `retries = 3`, or a constant's path (`retries = RETRIES`).
fn integer(name: &str, value: &Expr) -> syn::Result<TokenStream> {
    match value {
        Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) if matches!(i.suffix(), "" | "u32") => {
            let n: u32 = i.base10_parse().map_err(|_| wrong(name, value, "an integer up to 4294967295"))?;
            Ok(Literal::u32_unsuffixed(n).into_token_stream())
        }
        Expr::Path(_) | Expr::Field(_) | Expr::Paren(_) | Expr::Binary(_) | Expr::Call(_) => Ok(value.to_token_stream()),
        _ => Err(wrong(name, value, "an integer")),
    }
}

/// `factor = 2.0` (or `2`), at least 1.
fn number(name: &str, value: &Expr) -> syn::Result<TokenStream> {
    let x: f64 = match value {
        Expr::Lit(syn::ExprLit { lit: Lit::Float(f), .. }) if f.suffix().is_empty() => f.base10_parse()?,
        Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) if i.suffix().is_empty() => i.base10_parse()?,
        _ => return Err(wrong(name, value, "a number")),
    };
    if !(1.0..=1000.0).contains(&x) {
        return Err(err(
            first_span(value),
            format!("`{name}` must be between 1.0 and 1000.0"),
            "the delay is multiplied by it after each retry: `factor = 2.0` doubles it",
        ));
    }
    Ok(Literal::f32_unsuffixed(x as f32).into_token_stream())
}

/// `backoff = 500ms`, `2s`, `1.5s`, `1m`; a bare number means seconds (`backoff = 2.0`).
fn duration_value(name: &str, value: &Expr) -> syn::Result<TokenStream> {
    let lit = match value {
        Expr::Lit(syn::ExprLit { lit: lit @ (Lit::Int(_) | Lit::Float(_)), .. }) => lit,
        _ => {
            return Err(err(
                first_span(value),
                format!("`{name}` takes a duration, not `{}`", value.to_token_stream()),
                duration::HELP.trim_start_matches("help: "),
            ))
        }
    };
    // `const` context: whole nanoseconds through `from_nanos` (`from_secs_f64` is not const).
    let nanos: u64 = match duration::parse(lit)? {
        duration::Parsed::Millis(ms) => ms.checked_mul(1_000_000),
        duration::Parsed::Secs(s) => Some((s * 1e9).round()).filter(|n| *n < u64::MAX as f64).map(|n| n as u64),
    }
    .ok_or_else(|| err(lit.span(), "duration too long", duration::HELP.trim_start_matches("help: ")))?;
    let nanos = Literal::u64_unsuffixed(nanos);
    Ok(quote!(::core::time::Duration::from_nanos(#nanos)))
}

/// What the function must look like: `async fn name(record: In) -> Result<Out, E>`.
fn check_fn(func: &syn::ItemFn, errors: &mut Vec<syn::Error>) {
    let sig = &func.sig;
    let name = &sig.ident;
    if sig.asyncness.is_none() {
        errors.push(err(
            sig.fn_token.span,
            format!("`#[stage]` needs an `async fn`: `{name}` is not async"),
            format!("write `async fn {name}(..)`; a synchronous function goes in `map(..)` without `#[stage]`"),
        ));
    }
    if let Some(u) = &sig.unsafety {
        errors.push(err(u.span, "a stage cannot be `unsafe`", "call the unsafe code inside a safe `async fn`"));
    }
    if let Some(abi) = &sig.abi {
        errors.push(err(abi.extern_token.span, "a stage cannot be `extern`", "remove the ABI"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(err(
            first_span(&sig.generics),
            "a stage cannot be generic",
            "name the record type: `async fn enrich(o: Order) -> Result<Order, E>`",
        ));
    }
    let mut typed = Vec::new();
    for input in &sig.inputs {
        match input {
            syn::FnArg::Receiver(r) => errors.push(err(
                first_span(r),
                "a stage is a free function, not a method",
                "move it out of the `impl` block, and pass what it needs as captured statics or its record",
            )),
            syn::FnArg::Typed(t) => typed.push(t),
        }
    }
    if typed.len() != 1 && !sig.inputs.iter().any(|i| matches!(i, syn::FnArg::Receiver(_))) {
        errors.push(err(
            if typed.is_empty() { sig.paren_token.span.join() } else { first_span(&typed[1]) },
            format!("a stage takes one argument, the record: `{name}` takes {}", typed.len()),
            format!("write `async fn {name}(record: In) -> Result<Out, E>`; put several values in one struct"),
        ));
    }
    if let Some(t) = typed.first() {
        if let syn::Type::Reference(r) = &*t.ty {
            errors.push(err(
                r.and_token.span,
                "a stage takes its record by value",
                format!("write `{}: {}`", t.pat.to_token_stream(), r.elem.to_token_stream()),
            ));
        }
        if let syn::Type::ImplTrait(i) = &*t.ty {
            errors.push(err(first_span(i), "a stage cannot be generic", "name the record type: `o: Order`"));
        }
    }
    if let syn::ReturnType::Default = sig.output {
        errors.push(err(
            sig.paren_token.span.close(),
            format!("a stage returns `Result<Out, E>`: `{name}` returns nothing"),
            format!("write `async fn {name}(..) -> Result<Out, E>`"),
        ));
    }
    if let Some(v) = &sig.variadic {
        errors.push(err(first_span(v), "a stage cannot be variadic", "take one record"));
    }
}

/// Whether an attribute stays on the outer function (documentation, `cfg`) rather than on the
/// nested `async fn` (everything else: `tracing::instrument`, lints, ...).
fn outer(attr: &syn::Attribute) -> bool {
    ["doc", "cfg", "deprecated", "must_use"].iter().any(|n| attr.path().is_ident(n))
}

fn generate(func: syn::ItemFn, options: &Options) -> TokenStream {
    let syn::ItemFn { attrs, vis, sig, block } = func;
    let name = sig.ident.clone();
    let name_str = name.to_string().trim_start_matches("r#").to_owned();
    let (outer_attrs, inner_attrs): (Vec<_>, Vec<_>) = attrs.into_iter().partition(outer);
    let cfgs: Vec<&syn::Attribute> = outer_attrs.iter().filter(|a| a.path().is_ident("cfg")).collect();
    let ret = match &sig.output {
        syn::ReturnType::Type(_, ty) => ty.to_token_stream(),
        syn::ReturnType::Default => quote!(()),
    };
    let ret_span = first_span(&ret);
    let (arg_ty, arg_span) = match sig.inputs.first() {
        Some(syn::FnArg::Typed(t)) => (t.ty.to_token_stream(), first_span(&t.pat)),
        _ => (quote!(()), Span::call_site()),
    };
    let arg = syn::Ident::new("__etl_record", arg_span);
    let mut chain = quote!(::etl::stage::StageOptions::new(#name_str));
    for (method, value) in [
        ("retries", &options.retries),
        ("backoff", &options.backoff),
        ("timeout", &options.timeout),
        ("factor", &options.factor),
        ("max_backoff", &options.max_backoff),
    ] {
        if let Some(value) = value {
            let method = syn::Ident::new(method, Span::call_site());
            chain = quote!(#chain.#method(#value));
        }
    }
    let call_ty = quote_spanned!(ret_span=>
        ::etl::stage::Call<impl ::core::future::Future<Output = #ret> + ::core::marker::Send, #name>
    );
    // The checks of `stage_call` (a `Result`, a `Display` error) report on the return type.
    let fut = syn::Ident::new("__etl_future", ret_span);
    let make_call = quote_spanned!(ret_span=> ::etl::__private::stage_call::<#name, _>(#fut));
    quote! {
        #(#outer_attrs)*
        #vis fn #name(#arg: #arg_ty) -> #call_ty {
            #(#inner_attrs)*
            #sig #block
            let #fut = #name(#arg);
            #make_call
        }

        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #(#cfgs)*
        #vis struct #name {}

        #(#cfgs)*
        impl ::etl::stage::StageConfig for #name {
            const OPTIONS: ::etl::stage::StageOptions = #chain;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(args: TokenStream, item: TokenStream) -> Vec<String> {
        let out = expand(args, item).to_string();
        out.split("compile_error !").skip(1).map(|s| s.split(" }").next().unwrap_or_default().to_owned()).collect()
    }

    fn norm(t: TokenStream) -> String {
        t.to_string().replace(' ', "")
    }

    #[test]
    fn generates_the_function_its_config_and_the_nested_original() {
        let out = norm(expand(
            quote!(retries = 5, backoff = 2.0, timeout = 500ms),
            quote! {
                /// Docs.
                #[tracing::instrument]
                pub async fn enrich(mut o: Order) -> Result<Order, etl::Error> { o.id += 1; Ok(o) }
            },
        ));
        let want = norm(quote! {
            #[doc = r" Docs."]
            pub fn enrich(__etl_record: Order) -> ::etl::stage::Call<impl ::core::future::Future<Output = Result<Order, etl::Error> > + ::core::marker::Send, enrich> {
                #[tracing::instrument]
                async fn enrich(mut o: Order) -> Result<Order, etl::Error> { o.id += 1; Ok(o) }
                let __etl_future = enrich(__etl_record);
                ::etl::__private::stage_call::<enrich, _>(__etl_future)
            }
            #[doc(hidden)]
            #[allow(non_camel_case_types, dead_code)]
            pub struct enrich {}
            impl ::etl::stage::StageConfig for enrich {
                const OPTIONS: ::etl::stage::StageOptions = ::etl::stage::StageOptions::new("enrich")
                    .retries(5)
                    .backoff(::core::time::Duration::from_nanos(2000000000))
                    .timeout(::core::time::Duration::from_nanos(500000000));
            }
        });
        assert_eq!(out, want);
    }

    #[test]
    fn defaults_factor_and_constants() {
        let out = norm(expand(
            quote!(),
            quote!(
                async fn f(x: i64) -> Result<i64, String> {
                    Ok(x)
                }
            ),
        ));
        assert!(out.contains("StageOptions::new(\"f\");"), "{out}");
        let out = norm(expand(
            quote!(retries = RETRIES, factor = 3, max_backoff = 1m),
            quote!(
                async fn f(x: i64) -> R {
                    Ok(x)
                }
            ),
        ));
        assert!(out.contains(".retries(RETRIES).factor(3.0).max_backoff(::core::time::Duration::from_nanos(60000000000))"), "{out}");
    }

    #[test]
    fn argument_errors() {
        let item = quote!(
            async fn f(x: i64) -> Result<i64, String> {
                Ok(x)
            }
        );
        let e = errors(quote!(retry = 3), item.clone());
        assert!(e[0].contains("unknown argument `retry` for `#[stage]`") && e[0].contains("did you mean `retries`?"), "{e:?}");
        let e = errors(quote!(retries = "x"), item.clone());
        assert!(e[0].contains("`retries` takes an integer, not `\\\"x\\\"`") && e[0].contains("help: write `retries = 3`"), "{e:?}");
        let e = errors(quote!(backoff = 2x), item.clone());
        assert!(e[0].contains("unknown duration unit `x`"), "{e:?}");
        let e = errors(quote!(timeout = "5s"), item.clone());
        assert!(e[0].contains("`timeout` takes a duration"), "{e:?}");
        let e = errors(quote!(factor = 0.5), item.clone());
        assert!(e[0].contains("`factor` must be between"), "{e:?}");
        let e = errors(quote!(retries = 1, retries = 2), item.clone());
        assert!(e[0].contains("`retries` is given twice"), "{e:?}");
        let e = errors(quote!(retries), item.clone());
        assert!(e[0].contains("`retries` needs a value"), "{e:?}");
        let e = errors(quote!(3), item.clone());
        assert!(e[0].contains("expected `name = value` arguments"), "{e:?}");
        let e = errors(quote!(zzz = 1), item);
        assert!(e[0].contains("takes `retries`, `backoff`"), "{e:?}");
    }

    #[test]
    fn function_errors() {
        let e = errors(
            quote!(),
            quote!(
                fn f(x: i64) -> Result<i64, String> {
                    Ok(x)
                }
            ),
        );
        assert!(e[0].contains("`#[stage]` needs an `async fn`: `f` is not async"), "{e:?}");
        let e = errors(
            quote!(),
            quote!(
                struct S;
            ),
        );
        assert!(e[0].contains("`#[stage]` goes on an `async fn`"), "{e:?}");
        let e = errors(
            quote!(),
            quote!(
                async fn f<T>(x: T) -> Result<T, String> {
                    Ok(x)
                }
            ),
        );
        assert!(e[0].contains("a stage cannot be generic"), "{e:?}");
        let e = errors(
            quote!(),
            quote!(
                async fn f(x: i64, y: i64) -> Result<i64, String> {
                    Ok(x)
                }
            ),
        );
        assert!(e[0].contains("a stage takes one argument, the record: `f` takes 2"), "{e:?}");
        let e = errors(
            quote!(),
            quote!(
                async fn f() -> Result<i64, String> {
                    Ok(1)
                }
            ),
        );
        assert!(e[0].contains("takes 0"), "{e:?}");
        let e = errors(
            quote!(),
            quote!(
                async fn f(&self) -> Result<i64, String> {
                    Ok(1)
                }
            ),
        );
        assert!(e[0].contains("a stage is a free function"), "{e:?}");
        let e = errors(
            quote!(),
            quote!(
                async fn f(x: &Order) -> Result<i64, String> {
                    Ok(1)
                }
            ),
        );
        assert!(e[0].contains("a stage takes its record by value") && e[0].contains("write `x: Order`"), "{e:?}");
        let e = errors(
            quote!(),
            quote!(
                async fn f(x: i64) {}
            ),
        );
        assert!(e[0].contains("a stage returns `Result<Out, E>`: `f` returns nothing"), "{e:?}");
        // All at once, and the function is still there (no follow-up "cannot find" errors).
        let out = expand(
            quote!(retry = 1),
            quote!(
                fn f(x: i64) -> Result<i64, String> {
                    Ok(x)
                }
            ),
        )
        .to_string();
        assert_eq!(out.matches("compile_error").count(), 2, "{out}");
        assert!(out.contains("fn f (x : i64)"), "{out}");
    }
}
