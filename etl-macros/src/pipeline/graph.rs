//! The pipeline's graph (`etl::pipeline::Graph`), which the generated code hands to
//! `Run::graph`: each step's name and arguments as written (secrets hidden, see [`redact`]),
//! and the record type after it ([`Described`], followed by `typed`).
//!
//! The emitted code is one call, `::etl::__private::graph(&[(name, &[(arg, value), ..]), ..],
//! [record, ..])`, the texts static; a record type the macro names is described at run time
//! from its `Record` schema (fields and their types), as the type's own derive wrote it.

use super::check::{Checked, What};
use super::redact::{redact, sensitive};
use crate::text::text;
use proc_macro2::TokenStream;
use quote::{quote, ToTokens};

/// What the graph says of the record type after a step.
#[derive(Clone)]
pub enum Described {
    /// A name only: `Json`, `?` (a type the macro cannot see), a tuple or a reference.
    Name(String),
    /// A type the code names, described at run time: with its fields when it is a `Record`.
    Type {
        /// The type, as the generated code names it.
        ty: TokenStream,
        /// How the graph names it: as written (`shop::Order`), or what made it (`Order after
        /// select(id, amount)`).
        name: String,
    },
}

impl Described {
    /// The record type of a step whose output the macro cannot see (a closure's, a user step's).
    pub fn unknown() -> Described {
        Described::Name("?".to_owned())
    }

    /// The record type `ty`, written by the user.
    pub fn written(ty: &syn::Type) -> Described {
        let name = text(&ty.to_token_stream());
        match ty {
            // A path the code can name (`Vec<_>` cannot be described at run time).
            syn::Type::Path(p) if p.qself.is_none() && !has_infer(ty) => Described::Type { ty: ty.to_token_stream(), name },
            _ => Described::Name(name),
        }
    }
}

/// Whether `ty` leaves part of itself to inference (`_`, `impl Trait`).
fn has_infer(ty: &syn::Type) -> bool {
    struct Find(bool);
    impl<'ast> syn::visit::Visit<'ast> for Find {
        fn visit_type_infer(&mut self, _: &'ast syn::TypeInfer) {
            self.0 = true;
        }
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut find = Find(false);
    syn::visit::Visit::visit_type(&mut find, ty);
    find.0
}

/// A step as the graph shows it: its name as written, and its arguments `(name, value)`
/// (the name empty for a positional one), secrets hidden.
pub fn step_text(step: &Checked) -> (String, Vec<(String, String)>) {
    let (name, op) = match &step.what {
        What::Builtin { op, .. } => (op.name.to_owned(), Some(*op)),
        What::User { path, .. } => (text(&path.to_token_stream()), None),
        What::Fork(fork) => (fork.kind.to_string(), None),
    };
    let args = step
        .args
        .iter()
        .map(|(arg, value)| {
            let secret = !arg.is_empty() && (sensitive(arg) || op.and_then(|op| op.arg(arg)).is_some_and(|spec| spec.secret));
            (arg.clone(), text(&redact(value.clone(), secret)))
        })
        .collect();
    (name, args)
}

/// `name(arg = value, ..)`, as the graph labels a step.
pub fn label(step: &Checked) -> String {
    let (name, args) = step_text(step);
    let args: Vec<String> = args.into_iter().map(|(k, v)| if k.is_empty() { v } else { format!("{k} = {v}") }).collect();
    format!("{name}({})", args.join(", "))
}

/// The argument of `Run::graph`: the graph of `steps`, `records[i]` the record type after
/// `steps[i]`. Each distinct record type is described once; a step names it by position.
pub fn generate(steps: &[Checked], records: &[Described]) -> TokenStream {
    let mut distinct: Vec<&Described> = Vec::new();
    let steps = steps.iter().zip(records).map(|(step, record)| {
        let (name, args) = step_text(step);
        let args = args.iter().map(|(k, v)| quote!((#k, #v)));
        let at = match distinct.iter().position(|d| d.same(record)) {
            Some(at) => at,
            None => {
                distinct.push(record);
                distinct.len() - 1
            }
        };
        quote!((#name, &[#(#args),*], #at))
    });
    let steps: Vec<TokenStream> = steps.collect();
    let records = distinct.iter().map(|r| match r {
        Described::Name(name) => quote!(::etl::pipeline::RecordType::new(#name)),
        Described::Type { ty, name } => quote!((&::etl::__private::Describe::<#ty>::new(#name)).__etl_describe()),
    });
    quote!({
        #[allow(unused_imports)]
        use ::etl::__private::{DescribeRecord as _, DescribeType as _};
        ::etl::__private::graph(&[#(#steps),*], &[#(#records),*])
    })
}

impl Described {
    /// Whether the graph shows `other` the same (the same name, the same type's tokens).
    fn same(&self, other: &Described) -> bool {
        match (self, other) {
            (Described::Name(a), Described::Name(b)) => a == b,
            (Described::Type { ty: a, name: x }, Described::Type { ty: b, name: y }) => x == y && a.to_string() == b.to_string(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{check, parse};

    fn steps(tokens: TokenStream) -> Vec<Checked> {
        let (ast, errors) = parse::parse(tokens);
        assert!(errors.is_empty());
        check::check(&ast).0
    }

    #[test]
    fn written_types_the_code_can_name_are_described_at_run_time() {
        let shown = |ty: syn::Type| match Described::written(&ty) {
            Described::Name(n) => format!("name {n}"),
            Described::Type { name, .. } => format!("type {name}"),
        };
        assert_eq!(shown(syn::parse_quote!(shop::Order)), "type shop::Order");
        assert_eq!(shown(syn::parse_quote!(Page<i64>)), "type Page<i64>");
        assert_eq!(shown(syn::parse_quote!(Vec<_>)), "name Vec<_>");
        assert_eq!(shown(syn::parse_quote!((i64, String))), "name (i64, String)");
        assert_eq!(shown(syn::parse_quote!(&'static str)), "name &'static str");
    }

    #[test]
    fn each_record_type_once_each_step_by_position() {
        let steps = steps(quote!(iter(v) as Order | filter(|o| o.ok) | map(|o| o.id) as i64 | stdout()));
        let order = Described::written(&syn::parse_quote!(Order));
        let int = Described::written(&syn::parse_quote!(i64));
        let out = generate(&steps, &[order.clone(), order, int.clone(), int]).to_string().replace(' ', "");
        assert!(out.contains("&[(\"iter\",&[(\"\",\"v\")],0usize),(\"filter\",&[(\"\",\"|o|o.ok\")],0usize),(\"map\",&[(\"\",\"|o|o.id\")],1usize),(\"stdout\",&[],1usize)]"), "{out}");
        assert_eq!(out.matches("Describe::").count(), 2, "{out}");
    }

    #[test]
    fn labels_are_as_written_with_secrets_hidden() {
        let steps = steps(quote!(
            sse(url = "https://u:pw@host/stream", headers = [("Authorization", "Bearer abc")], batch_timeout = 2s)
            | rename(amount_cents -> amount, ts -> timestamp)
            | my::sink(token)
        ));
        let labels: Vec<String> = steps.iter().map(label).collect();
        assert_eq!(
            labels,
            [
                "sse(url = \"https://u:***@host/stream\", headers = [(\"Authorization\", \"***\")], batch_timeout = 2s)",
                "rename(amount_cents -> amount, ts -> timestamp)",
                "my::sink(token)"
            ]
        );
    }
}
