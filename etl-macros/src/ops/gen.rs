//! The generic code generator of the table's steps: one [`Op`] and its checked [`Args`] →
//! the source or sink expression, or the operator's builder-method suffix.
//!
//! The plain mapping, for a connector: the positional or required arguments go to its
//! constructor (`::etl::source::sse::<T>(url)`), every other argument given to the builder
//! method of the same name (`.event_filter("message")`), or through the trait or custom setter
//! its [`ArgSpec`](super::ArgSpec) names ([`Set`]). A step that needs a cargo feature of `etl`
//! expands inside `::etl::__with_<feature>! { .. }`, which is the expression with the feature
//! and one compile error naming the feature without it.

use super::{Args, Build, Op, Set, Value};
use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};

/// The code of step `op` with `args`.
pub fn generate(op: &Op, args: &Args<'_>) -> TokenStream {
    let span = args.span;
    let expr = match op.build {
        Build::Connector { path, record_type } => connector(op, path, record_type, args),
        Build::Method(method) => {
            let method = Ident::new(method, span);
            let f = args.first();
            quote_spanned!(span=> .#method(#f))
        }
        Build::Then(path) => {
            let path = path_tokens(path, span);
            let value = args.first();
            quote_spanned!(span=> .then(#path(#value)))
        }
        Build::Custom(gen) => gen(args),
    };
    match op.feature {
        Some(feature) => {
            let gate = Ident::new(&format!("__with_{}", feature.replace('-', "_")), span);
            quote_spanned!(span=> ::etl::#gate!{ #expr })
        }
        None => expr,
    }
}

/// `::etl::source::sse::<T>(url).event_filter(..)...`.
fn connector(op: &Op, path: &[&str], record_type: bool, args: &Args<'_>) -> TokenStream {
    let span = args.span;
    let path = path_tokens(path, span);
    let ty = if record_type {
        let ty = args.record_type();
        quote_spanned!(span=> ::<#ty>)
    } else {
        TokenStream::new()
    };
    let mut ctor: Vec<TokenStream> = args.positional.iter().map(|v| quote!(#v)).collect();
    for spec in op.args.iter().filter(|a| a.required) {
        ctor.push(match args.get(spec.name) {
            Some(v) => quote!(#v),
            // Reported by the checker; never generated without its error.
            None => quote_spanned!(span=> ::core::compile_error!("etl-macros: missing required argument")),
        });
    }
    set_all(op, quote_spanned!(span=> #path #ty (#(#ctor),*)), args)
}

/// Every optional argument given, set on `builder` in the order written (for a connector
/// whose constructor is generated otherwise).
pub fn set_all(op: &Op, mut builder: TokenStream, args: &Args<'_>) -> TokenStream {
    for (name, value) in args.named {
        match op.arg(name) {
            Some(spec) if !spec.required => builder = set(builder, spec.name, spec.set, value, args.span),
            _ => {}
        }
    }
    builder
}

/// `builder.name(value)`, or as `set` says. Only the method's name carries the step's span
/// (where rustc reports a value the method does not take); the rest is the macro's own code,
/// which lints (clippy's) do not judge as the user's.
fn set(builder: TokenStream, name: &str, set: Set, value: &Value, span: Span) -> TokenStream {
    let method = Ident::new(name, span);
    match set {
        Set::Method => quote!(#builder.#method(#value)),
        Set::Trait(path) => {
            let path = path_tokens(path, Span::call_site());
            quote!(#path::#method(#builder, #value))
        }
        Set::Custom(f) => f(builder, value, span),
    }
}

/// `["etl", "sink", "file"]` → `::etl::sink::file`.
pub fn path_tokens(segments: &[&str], span: Span) -> TokenStream {
    let segments = segments.iter().map(|s| Ident::new(s, span));
    quote_spanned!(span=> #(::#segments)*)
}

#[cfg(test)]
mod tests {
    use super::super::{lookup, Category, Op, Value};
    use super::*;

    fn op(name: &str, category: Category) -> &'static Op {
        lookup(name).find(|op| op.category == category).expect("a step")
    }

    fn lit(s: &str) -> Value {
        Value::Str(syn::LitStr::new(s, Span::call_site()))
    }

    fn gen(op: &Op, positional: &[Value], named: &[(&str, Value)], as_type: Option<syn::Type>) -> String {
        let named: Vec<(String, Value)> = named.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect();
        let args = Args { positional, named: &named, as_type: as_type.as_ref(), span: Span::call_site() };
        generate(op, &args).to_string().replace(' ', "")
    }

    #[test]
    fn required_arguments_to_the_constructor_the_others_to_builder_methods_in_the_order_written() {
        let sink = op("file", Category::Sink);
        let out = gen(sink, &[], &[("prefix", lit("p")), ("dir", lit("lake")), ("sync", Value::Bool(syn::parse_quote!(false)))], None);
        assert_eq!(out, "::etl::sink::file(\"lake\").prefix(\"p\").sync(false)");
        let source = op("file", Category::Source);
        let out =
            gen(source, &[], &[("path", lit("in.csv")), ("batch_size", Value::Int(syn::parse_quote!(5)))], Some(syn::parse_quote!(Order)));
        assert_eq!(out, "::etl::batch::BatchOptions::batch_size(::etl::source::file::<Order>(\"in.csv\"),5)");
    }

    #[test]
    fn a_step_needing_a_feature_expands_inside_its_gate() {
        let out = gen(op("sse", Category::Source), &[], &[("url", lit("http://x")), ("event_filter", lit("m"))], None);
        assert_eq!(out, "::etl::__with_sse!{::etl::source::sse::<::etl::Json>(\"http://x\").event_filter(\"m\")}");
        let out = gen(op("s3", Category::Sink), &[], &[("bucket", lit("b")), ("region", lit("r"))], None);
        assert_eq!(out, "::etl::__with_s3!{::etl::sink::s3(\"b\").region(\"r\")}");
        let out = gen(op("sqs", Category::Source), &[], &[("queue_url", lit("q"))], None);
        assert_eq!(out, "::etl::__with_sqs!{::etl::source::sqs::<::etl::Json>(\"q\")}");
    }

    #[test]
    fn operators_by_method_and_by_value() {
        let f = Value::Expr(syn::parse_quote!(|o| o.ok));
        assert_eq!(gen(op("filter", Category::Operator), &[f], &[], None), ".filter(|o|o.ok)");
        let fields = Value::Fields(vec![super::super::FieldRef { path: "a.b".into(), span: Span::call_site(), simple: false }]);
        assert_eq!(gen(op("select", Category::Operator), &[fields], &[], None), ".then(::etl::operator::json::Select::new(&[\"a.b\"]))");
    }

    /// Only connectors need features: an operator's suffix cannot stand inside a macro call.
    #[test]
    fn features_are_on_connectors() {
        for op in super::super::TABLE {
            if op.feature.is_some() {
                assert!(matches!(op.build, Build::Connector { .. }), "{}", op.name);
            }
        }
    }
}
