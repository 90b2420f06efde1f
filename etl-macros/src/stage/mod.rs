//! `#[stage(retries = N, backoff = D, timeout = D, factor = F, max_backoff = D)]` on an
//! `async fn(In) -> Result<Out, E>`.
//!
//! The function keeps its name, argument and body; it becomes a plain `fn` returning
//! `::etl::stage::Call<impl Future<Output = Result<Out, E>> + Send, name>`, which `.await`s to
//! what the `async fn` returned (the original is nested inside, unchanged). `name` in that type
//! is a hidden empty braced struct of the function's name (the type namespace, so it does not
//! clash with the function) implementing `::etl::stage::StageConfig` with the options: `map`
//! reads them from the return type, without calling the function.

use crate::diagnostic::{first_span, Diagnostic, Diagnostics};
use crate::duration;
use crate::suggest;
use crate::text::text;
use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, Lit, Meta, Token};

/// The kind of value a `#[stage]` argument takes.
#[derive(Clone, Copy)]
enum Kind {
    /// An integer literal, or a constant's path.
    Integer,
    /// A number literal between 1 and 1000.
    Number,
    /// A duration literal.
    Duration,
}

/// One argument of `#[stage]`: also the `::etl::stage::StageOptions` builder method that
/// takes its value.
struct Arg {
    /// Its name.
    name: &'static str,
    /// Its kind.
    kind: Kind,
    /// Its default, as documentation (the runtime's `StageOptions::DEFAULT`; the table in
    /// `lib.rs` shows it).
    #[cfg_attr(not(test), allow(dead_code))]
    default: &'static str,
    /// An example value, for `help:` lines.
    example: &'static str,
}

/// The arguments of `#[stage]`, in the order the generated builder calls follow.
const ARGS: &[Arg] = &[
    Arg { name: "retries", kind: Kind::Integer, default: "3", example: "3" },
    Arg { name: "backoff", kind: Kind::Duration, default: "100ms", example: "500ms" },
    Arg { name: "timeout", kind: Kind::Duration, default: "none", example: "5s" },
    Arg { name: "factor", kind: Kind::Number, default: "2.0", example: "2.0" },
    Arg { name: "max_backoff", kind: Kind::Duration, default: "30s", example: "30s" },
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

/// A stage's options as parsed: per [`ARGS`] entry, its value as a token expression.
type Options = Vec<Option<TokenStream>>;

/// Expand `#[stage(args)] item`.
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut d = Diagnostics::default();
    let options = parse_args(args, &mut d);
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            d.error(
                first_span(&item),
                "`#[stage]` goes on an `async fn`",
                "write `#[stage] async fn name(record: In) -> Result<Out, E> { .. }`",
            );
            return with_errors(&d, item);
        }
    };
    check_fn(&func, &mut d);
    if !d.is_empty() {
        return with_errors(&d, quote!(#[allow(dead_code)] #func));
    }
    generate(func, &options)
}

/// The errors, then the item as the user wrote it (so that no error follows from it missing).
fn with_errors(d: &Diagnostics, item: TokenStream) -> TokenStream {
    let errors = d.to_compile_errors();
    quote!(#errors #item)
}

fn parse_args(args: TokenStream, d: &mut Diagnostics) -> Options {
    let mut options: Options = vec![None; ARGS.len()];
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args.clone()) {
        Ok(m) => m,
        Err(e) => {
            d.error(
                e.span(),
                "expected `name = value` arguments",
                format!("`#[stage]` takes {}, e.g. `#[stage(retries = 3, backoff = 500ms)]`", names()),
            );
            return options;
        }
    };
    // Each value's tokens as written, for errors covering all of it: syn reads `-1` as one
    // literal spanned on the `-`.
    let raw = values(args);
    for (meta, raw) in metas.into_iter().zip(raw.into_iter().map(Some).chain(std::iter::repeat(None))) {
        let (path, value) = match meta {
            Meta::NameValue(nv) => (nv.path, Some(nv.value)),
            Meta::Path(p) => (p, None),
            Meta::List(l) => (l.path, None),
        };
        let Some(ident) = path.get_ident() else {
            d.error(first_span(&path), "expected an argument name", format!("`#[stage]` takes {}", names()));
            continue;
        };
        let name = ident.to_string();
        let Some(at) = ARGS.iter().position(|a| a.name == name) else {
            let help = ALIASES
                .iter()
                .find(|(alias, _)| *alias == name)
                .map(|(_, meant)| format!("did you mean `{meant}`?"))
                .or_else(|| suggest::did_you_mean(&name, ARGS.iter().map(|a| a.name)))
                .unwrap_or_else(|| format!("`#[stage]` takes {}", names()));
            d.error(ident.span(), format!("unknown argument `{name}` for `#[stage]`"), help);
            continue;
        };
        let arg = &ARGS[at];
        let Some(value) = value else {
            d.error(ident.span(), format!("`{name}` needs a value"), format!("write `{name} = {}`", arg.example));
            continue;
        };
        if options[at].is_some() {
            d.error(ident.span(), format!("`{name}` is given twice"), "keep one");
            continue;
        }
        let raw = raw.unwrap_or_else(|| value.to_token_stream());
        let converted = match arg.kind {
            Kind::Integer => integer(arg, &value, &raw),
            Kind::Number => number(arg, &value, &raw),
            Kind::Duration => duration_value(arg, &value, &raw),
        };
        match converted {
            Ok(tokens) => options[at] = Some(tokens),
            Err(e) => d.push(e),
        }
    }
    options
}

/// The value tokens of each `name = value` argument (empty for another form), in order.
fn values(args: TokenStream) -> Vec<TokenStream> {
    let mut out = vec![TokenStream::new()];
    let mut after_eq = false;
    for tt in args {
        match &tt {
            proc_macro2::TokenTree::Punct(p) if p.as_char() == ',' => {
                out.push(TokenStream::new());
                after_eq = false;
            }
            proc_macro2::TokenTree::Punct(p) if p.as_char() == '=' && !after_eq => after_eq = true,
            _ if after_eq => out.last_mut().into_iter().for_each(|v| v.extend([tt.clone()])),
            _ => {}
        }
    }
    out
}

fn names() -> String {
    suggest::quoted(&ARGS.iter().map(|a| a.name).collect::<Vec<_>>())
}

/// The value's error, covering all of its tokens (`raw`: `-1` from `-` to `1`).
fn wrong(arg: &Arg, value: &Expr, raw: &TokenStream, what: &str) -> Diagnostic {
    let shown = text(raw);
    if negative(value) {
        return Diagnostic::spanned(
            raw,
            format!("`{}` cannot be negative: `{shown}`", arg.name),
            format!("write `{} = {}`", arg.name, arg.example),
        );
    }
    Diagnostic::spanned(raw, format!("`{}` takes {what}, not `{shown}`", arg.name), format!("write `{} = {}`", arg.name, arg.example))
}

/// Whether the value is a negative number literal (`-1`, `-2.0`; syn reads them as one
/// literal).
fn negative(value: &Expr) -> bool {
    match value {
        Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. }) => negative(expr) || matches!(&**expr, Expr::Lit(_)),
        Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) => i.base10_digits().starts_with('-'),
        Expr::Lit(syn::ExprLit { lit: Lit::Float(f), .. }) => f.base10_digits().starts_with('-'),
        _ => false,
    }
}

/// `retries = 3`, or a constant's path (`retries = RETRIES`).
fn integer(arg: &Arg, value: &Expr, raw: &TokenStream) -> Result<TokenStream, Diagnostic> {
    match value {
        Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) if matches!(i.suffix(), "" | "u32") => {
            let n: u32 = i.base10_parse().map_err(|_| wrong(arg, value, raw, "an integer up to 4294967295"))?;
            Ok(Literal::u32_unsuffixed(n).into_token_stream())
        }
        Expr::Path(_) | Expr::Field(_) | Expr::Paren(_) | Expr::Binary(_) | Expr::Call(_) => Ok(value.to_token_stream()),
        _ => Err(wrong(arg, value, raw, "an integer")),
    }
}

/// `factor = 2.0` (or `2`), at least 1.
fn number(arg: &Arg, value: &Expr, raw: &TokenStream) -> Result<TokenStream, Diagnostic> {
    let x: Option<f64> = match value {
        Expr::Lit(syn::ExprLit { lit: Lit::Float(f), .. }) if f.suffix().is_empty() => f.base10_parse().ok(),
        Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) if i.suffix().is_empty() => i.base10_parse().ok(),
        _ => None,
    };
    let x = x.ok_or_else(|| wrong(arg, value, raw, "a number"))?;
    if !(1.0..=1000.0).contains(&x) {
        return Err(Diagnostic::spanned(
            raw,
            format!("`{}` must be between 1.0 and 1000.0", arg.name),
            "the delay is multiplied by it after each retry: `factor = 2.0` doubles it",
        ));
    }
    Ok(Literal::f32_unsuffixed(x as f32).into_token_stream())
}

/// `backoff = 500ms`, `2s`, `1.5s`, `1m`; a bare number means seconds (`backoff = 2.0`).
fn duration_value(arg: &Arg, value: &Expr, raw: &TokenStream) -> Result<TokenStream, Diagnostic> {
    let lit = match value {
        _ if negative(value) => {
            return Err(Diagnostic::spanned(raw, format!("`{}` cannot be negative: `{}`", arg.name, text(raw)), duration::HELP))
        }
        Expr::Lit(syn::ExprLit { lit: lit @ (Lit::Int(_) | Lit::Float(_)), .. }) => lit,
        _ => return Err(Diagnostic::spanned(raw, format!("`{}` takes a duration, not `{}`", arg.name, text(raw)), duration::HELP)),
    };
    // `const` context: whole nanoseconds through `from_nanos` (`from_secs_f64` is not const).
    let nanos: u64 = match duration::parse(lit)? {
        duration::Parsed::Millis(ms) => ms.checked_mul(1_000_000),
        duration::Parsed::Secs(s) => Some((s * 1e9).round()).filter(|n| *n < u64::MAX as f64).map(|n| n as u64),
    }
    .ok_or_else(|| Diagnostic::new(lit.span(), "duration too long", duration::HELP))?;
    let nanos = Literal::u64_unsuffixed(nanos);
    Ok(quote!(::core::time::Duration::from_nanos(#nanos)))
}

/// What the function must look like: `async fn name(record: In) -> Result<Out, E>`.
fn check_fn(func: &syn::ItemFn, d: &mut Diagnostics) {
    let sig = &func.sig;
    let name = &sig.ident;
    if sig.asyncness.is_none() {
        d.push(Diagnostic::new(
            sig.fn_token.span,
            format!("`#[stage]` needs an `async fn`: `{name}` is not async"),
            format!("write `async fn {name}(..)`; a synchronous function goes in `map(..)` without `#[stage]`"),
        ));
    }
    if let Some(u) = &sig.unsafety {
        d.push(Diagnostic::new(u.span, "a stage cannot be `unsafe`", "call the unsafe code inside a safe `async fn`"));
    }
    if let Some(abi) = &sig.abi {
        d.push(Diagnostic::new(abi.extern_token.span, "a stage cannot be `extern`", "remove the ABI"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        d.push(Diagnostic::new(
            first_span(&sig.generics),
            "a stage cannot be generic",
            "name the record type: `async fn enrich(o: Order) -> Result<Order, E>`",
        ));
    }
    let mut typed = Vec::new();
    for input in &sig.inputs {
        match input {
            syn::FnArg::Receiver(r) => d.push(Diagnostic::new(
                first_span(r),
                "a stage is a free function, not a method",
                "move it out of the `impl` block, and pass what it needs as captured statics or its record",
            )),
            syn::FnArg::Typed(t) => typed.push(t),
        }
    }
    if typed.len() != 1 && !sig.inputs.iter().any(|i| matches!(i, syn::FnArg::Receiver(_))) {
        d.push(Diagnostic::new(
            if typed.is_empty() { sig.paren_token.span.join() } else { first_span(&typed[1]) },
            format!("a stage takes one argument, the record: `{name}` takes {}", typed.len()),
            format!("write `async fn {name}(record: In) -> Result<Out, E>`; put several values in one struct"),
        ));
    }
    if let Some(t) = typed.first() {
        if let syn::Type::Reference(r) = &*t.ty {
            d.push(Diagnostic::new(
                r.and_token.span,
                "a stage takes its record by value",
                format!("write `{}: {}`", t.pat.to_token_stream(), r.elem.to_token_stream()),
            ));
        }
        if let syn::Type::ImplTrait(i) = &*t.ty {
            d.push(Diagnostic::new(first_span(i), "a stage cannot be generic", "name the record type: `o: Order`"));
        }
    }
    if let syn::ReturnType::Default = sig.output {
        d.push(Diagnostic::new(
            sig.paren_token.span.close(),
            format!("a stage returns `Result<Out, E>`: `{name}` returns nothing"),
            format!("write `async fn {name}(..) -> Result<Out, E>`"),
        ));
    }
    if let Some(v) = &sig.variadic {
        d.push(Diagnostic::new(first_span(v), "a stage cannot be variadic", "take one record"));
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
    for (arg, value) in ARGS.iter().zip(options) {
        if let Some(value) = value {
            let method = syn::Ident::new(arg.name, Span::call_site());
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
mod tests;
