//! `map(f) [as U]`, `map(f, concurrency = N, ordered = false)`: transform each record, with a
//! function, a closure, a `#[stage]` or an async function.
//!
//! The generated call depends on how `f` is written:
//! * a closure written in place, `|o| ..`: `.map(f)`, the synchronous hot path (its argument type
//!   is inferred from the record type, which only a direct `FnMut(T) -> U` bound does);
//! * a closure whose body is `async { .. }` (or an `async` closure): `.map_async(f, 1)`;
//! * anything else (a function's path, a variable): `.map_step(f)`, where the type of `f` picks
//!   the step (`etl::stage::MapStep`): a plain function maps, a `#[stage]` runs with its
//!   retries; with `as U`, a pass-through check that the output is `U` follows;
//! * with `concurrency = N`: `.map_async(f, N)`, for a `#[stage]` or any function returning a
//!   future of a `Result`;
//! * with `ordered = b` (and `concurrency = N`, or 1 without it): `.map_async(f, N).ordered(b)`;
//!   like `concurrency`, it is for async functions.

use super::{ArgSpec, Args, Build, Category, Kind, Op, Positional, Typing, Value};
use quote::quote_spanned;

/// The `map` operator.
pub const OP: Op = Op {
    name: "map",
    category: Category::Operator,
    positional: Some(Positional {
        name: "f",
        kind: Kind::Expr,
        doc: "A closure or function `FnMut(T) -> U`, or a `#[stage]` async function of `T`; `as U` declares the output type.",
    }),
    args: &[
        ArgSpec::optional(
            "concurrency",
            Kind::Count,
            "1",
            "Run an async `f` (a `#[stage]`, an `async fn` or closure returning a future of a `Result`) on up to this many records of a batch at once; output in input order unless `ordered = false`.",
        ),
        ArgSpec::optional(
            "ordered",
            Kind::Bool,
            "true",
            "For an async `f`: `false` emits records as they complete, and a record waiting for its retry lets the others run (`concurrency` bounds the attempts at once); metadata stays with its record.",
        ),
    ],
    shared: &[],
    accepts_as: true,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::Map,
    build: Build::Custom(gen),
    doc: "Transforms each record into a new one. A `#[stage]` function retries each record as its attribute says (backoff with full jitter, per-attempt timeout) and dead-letters the records that still fail; an `async fn` without `#[stage]` needs `concurrency` or `ordered` (one attempt per record).",
    example: "... | map(|o| Paid { id: o.id, amount_cents: o.amount_cents }) as Paid | map(enrich, concurrency = 8, ordered = false) | ...",
};

/// How `f` is written.
enum Form {
    /// `|o| ..`, synchronous.
    Closure,
    /// `|o| async move { .. }` or `async |o| ..`.
    AsyncClosure,
    /// Anything else: its type decides.
    Value,
}

fn form(f: Option<&Value>) -> Form {
    let mut expr = match f {
        Some(Value::Expr(e)) => e,
        _ => return Form::Value,
    };
    loop {
        match expr {
            syn::Expr::Paren(p) => expr = &p.expr,
            syn::Expr::Group(g) => expr = &g.expr,
            syn::Expr::Closure(c) if c.asyncness.is_some() || matches!(&*c.body, syn::Expr::Async(_)) => return Form::AsyncClosure,
            syn::Expr::Closure(_) => return Form::Closure,
            _ => return Form::Value,
        }
    }
}

/// Not the plain mapping: the builder method depends on how `f` is written (see the module's
/// documentation).
fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let f = a.first();
    let concurrency = a.get("concurrency");
    let ordered = a.get("ordered");
    let out = a.as_type.map(|ty| quote_spanned!(a.span=> #ty)).unwrap_or_else(|| quote_spanned!(a.span=> _));
    let n = concurrency.map(|n| quote_spanned!(a.span=> #n)).unwrap_or_else(|| quote_spanned!(a.span=> 1));
    let order = ordered.map(|o| quote_spanned!(a.span=> .ordered(#o)));
    match (form(a.positional.first()), concurrency.or(ordered)) {
        (_, Some(_)) | (Form::AsyncClosure, None) => quote_spanned!(a.span=> .map_async::<#out, _, _>(#f, #n) #order),
        (Form::Closure, None) => match a.as_type {
            Some(ty) => quote_spanned!(a.span=> .map::<#ty, _>(#f)),
            None => quote_spanned!(a.span=> .map(#f)),
        },
        (Form::Value, None) => match a.as_type {
            Some(ty) => quote_spanned!(a.span=> .map_step(#f).then(::etl::__private::Expect::<#ty>::new())),
            None => quote_spanned!(a.span=> .map_step(#f)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn gen_for(f: proc_macro2::TokenStream, concurrency: Option<u32>, as_type: Option<syn::Type>) -> String {
        gen_with(f, concurrency, None, as_type)
    }

    fn gen_with(f: proc_macro2::TokenStream, concurrency: Option<u32>, ordered: Option<bool>, as_type: Option<syn::Type>) -> String {
        let positional = [Value::Expr(syn::parse2(f).expect("an expression"))];
        let span = proc_macro2::Span::call_site();
        let mut named: Vec<(String, Value)> = Vec::new();
        if let Some(n) = concurrency {
            named.push(("concurrency".to_owned(), Value::Int(syn::LitInt::new(&n.to_string(), span))));
        }
        if let Some(o) = ordered {
            named.push(("ordered".to_owned(), Value::Bool(syn::LitBool::new(o, span))));
        }
        let args = Args { positional: &positional, named: &named, as_type: as_type.as_ref(), span: proc_macro2::Span::call_site() };
        gen(&args).to_string().replace(' ', "")
    }

    #[test]
    fn the_call_depends_on_how_f_is_written() {
        assert_eq!(gen_for(quote!(|o| o.id), None, None), ".map(|o|o.id)");
        assert_eq!(gen_for(quote!(|o| o.id), None, Some(syn::parse_quote!(i64))), ".map::<i64,_>(|o|o.id)");
        assert_eq!(gen_for(quote!(enrich), None, None), ".map_step(enrich)");
        assert_eq!(
            gen_for(quote!(stages::enrich), None, Some(syn::parse_quote!(Order))),
            ".map_step(stages::enrich).then(::etl::__private::Expect::<Order>::new())"
        );
        assert_eq!(gen_for(quote!(enrich), Some(8), None), ".map_async::<_,_,_>(enrich,8)");
        assert_eq!(gen_for(quote!(|o| async move { Ok::<_, E>(o) }), None, None), ".map_async::<_,_,_>(|o|asyncmove{Ok::<_,E>(o)},1)");
        assert_eq!(gen_for(quote!(async |o| Ok::<_, E>(o)), None, None), ".map_async::<_,_,_>(async|o|Ok::<_,E>(o),1)");
        assert_eq!(gen_for(quote!((|o| o)), None, None), ".map((|o|o))");
    }

    #[test]
    fn ordered_follows_the_async_step() {
        assert_eq!(gen_with(quote!(enrich), Some(8), Some(false), None), ".map_async::<_,_,_>(enrich,8).ordered(false)");
        // Without `concurrency`: one attempt at a time, yet a record in its backoff lets
        // the next run.
        assert_eq!(
            gen_with(quote!(enrich), None, Some(false), Some(syn::parse_quote!(Order))),
            ".map_async::<Order,_,_>(enrich,1).ordered(false)"
        );
        assert_eq!(
            gen_with(quote!(|o| async move { Ok::<_, E>(o) }), None, Some(true), None),
            ".map_async::<_,_,_>(|o|asyncmove{Ok::<_,E>(o)},1).ordered(true)"
        );
    }
}
