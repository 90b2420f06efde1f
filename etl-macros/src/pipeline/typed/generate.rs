//! The code of the typed schema steps:
//!
//! * for `rename` / `select` / `drop` ([`reshape`]), a record type (in the pipeline's block,
//!   named `{Record}_after_{step}` for rustc's messages, its schema `Order after select(id,
//!   amount)`) whose fields are typed through the original record
//!   (`<Order as ::etl::__private::FieldType<N>>::Type`) and keep their serde names and
//!   options, and a conversion into it;
//! * for `into(Type)` ([`into`]), a conversion into `Type`'s struct literal by name, each value
//!   through `::etl::__private::into_field` so that a type mismatch is an error naming the field.
//!
//! Both conversions are one [`conversion`]: a `map` that destructures the old record by the
//! user's field tokens (so rustc re-checks every name on them) and moves the fields into the
//! new struct: no clone, no serialisation.

use super::{struct_path, Typed};
use crate::diagnostic::first_span;
use crate::pipeline::check::Checked;
use crate::pipeline::graph::label;
use crate::record;
use crate::shape::{field_ident, Field, Reshaped, Shape};
use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use std::rc::Rc;

/// The binding of the `k`-th moved field.
fn bind(k: usize) -> Ident {
    Ident::new(&format!("__etl_{k}"), Span::mixed_site())
}

/// `.map(|r: Old| -> New { let OldPath { pattern, .. } = r; NewPath { literal } })`.
fn conversion(
    span: Span,
    old: &Shape,
    new_ty: &TokenStream,
    new_path: &TokenStream,
    pattern: &[TokenStream],
    literal: &[TokenStream],
) -> TokenStream {
    let record = Ident::new("__etl_record", Span::mixed_site());
    let (old_ty, old_path) = (&old.ty, &old.path);
    quote_spanned! {span=>
        .map(|#record: #old_ty| -> #new_ty {
            let #old_path { #(#pattern,)* .. } = #record;
            #new_path { #(#literal),* }
        })
    }
}

/// `rename`, `select`, `drop`: the record type `ident` for `next`, and the conversion into it;
/// the shape it is.
pub fn reshape(out: &mut Typed, step: &Checked, old: &Shape, next: Reshaped, ident: Ident) -> Shape {
    let Reshaped { mut shape, from, named } = next;
    let or_step = |s: Option<Span>| s.unwrap_or(step.span);
    let name = format!("{} after {}", shape.base, label(step));
    out.items.push(record_type(&ident, &name, &shape.fields));
    let mut pattern = Vec::new();
    let mut literal = Vec::new();
    for (k, ((at, new_span), f)) in from.iter().zip(&shape.fields).enumerate() {
        let bind = bind(k);
        let old_name = field_ident(&old.fields[*at].rust, or_step(named[*at]));
        let new_name = field_ident(&f.rust, or_step(*new_span));
        pattern.push(quote!(#old_name: #bind));
        literal.push(quote!(#new_name: #bind));
    }
    // Fields the user named that do not go on (`drop(x)`): in the pattern too, so that rustc
    // checks those names on the user's tokens as well.
    for (i, span) in named.iter().enumerate() {
        if let (Some(span), false) = (span, from.iter().any(|(at, _)| *at == i)) {
            let name = field_ident(&old.fields[i].rust, *span);
            pattern.push(quote!(#name: _));
        }
    }
    let ty = ident.to_token_stream();
    out.ops.push((step.index, conversion(step.span, old, &ty, &ty, &pattern, &literal)));
    shape.path = ty.clone();
    shape.ty = ty;
    shape.skipped = Vec::new();
    shape.label = format!("`{name}`");
    shape.name = name;
    shape.generated = true;
    shape
}

/// `into(Type)` (its fields checked to be exactly the record's): the conversion; the shape
/// after it is the target's.
pub fn into(out: &mut Typed, step: &Checked, shape: &Shape, target: &Rc<syn::Type>, mut target_shape: Shape) -> Shape {
    let at = first_span(&**target);
    let target_ty = &**target;
    let mut pattern = Vec::new();
    let mut literal = Vec::new();
    for (k, f) in shape.fields.iter().enumerate() {
        let bind = bind(k);
        let old_name = field_ident(&f.rust, step.span);
        let new_name = field_ident(&f.rust, at);
        let marker = field_ident(&f.rust, step.span);
        pattern.push(quote!(#old_name: #bind));
        // The target field's type, explicit: inferred, it would be taken from the value (the
        // blanket impl is the only one) and the mismatch reported as a bare E0308.
        let n = target_shape.position(&f.rust).map_or(0, |i| target_shape.fields[i].index);
        let want = quote!(<#target_ty as ::etl::__private::FieldType<#n>>::Type);
        let infer = quote_spanned!(at=> _);
        literal.push(quote! {
            #new_name: {
                #[allow(non_camel_case_types, dead_code)]
                enum #marker {}
                ::etl::__private::into_field::<#target_ty, #marker, #want, #infer>(#bind)
            }
        });
    }
    for s in &target_shape.skipped {
        let s = field_ident(s, at);
        literal.push(quote!(#s: ::core::default::Default::default()));
    }
    out.ops.push((step.index, conversion(step.span, shape, &target.to_token_stream(), &struct_path(target), &pattern, &literal)));
    target_shape.gone = shape.gone.clone();
    target_shape
}

/// A record type with `fields`: serde derives (the fields' serde names and options), `Record`
/// (its schema named `name`, what made it), and `Clone` / `Debug` when every field has them.
fn record_type(ident: &Ident, name: &str, fields: &[Field]) -> TokenStream {
    let mut defs = Vec::new();
    let mut field_tys = Vec::new();
    let mut names = Vec::new();
    for f in fields {
        let origin = &*f.origin;
        let n = f.index;
        let ty = quote!(<#origin as ::etl::__private::FieldType<#n>>::Type);
        let name = field_ident(&f.rust, ident.span());
        let serde_name = &f.serde;
        let helper = |tr: &str, func: &str| {
            let text = format!("<{} as ::etl::__private::{tr}<{n}>>::{func}", origin.to_token_stream());
            syn::LitStr::new(&text, first_span(origin))
        };
        let mut attrs = vec![quote!(rename = #serde_name)];
        let o = &f.options;
        if o.default {
            attrs.push(quote!(default));
        }
        if o.default_with {
            let p = helper("FieldDefault", "default");
            attrs.push(quote!(default = #p));
        }
        if o.skip_serializing_if {
            let p = helper("FieldSkipIf", "skip_serializing_if");
            attrs.push(quote!(skip_serializing_if = #p));
        }
        if o.serialize_with {
            let p = helper("FieldSerializeWith", "serialize_with");
            attrs.push(quote!(serialize_with = #p));
        }
        if o.deserialize_with {
            let p = helper("FieldDeserializeWith", "deserialize_with");
            attrs.push(quote!(deserialize_with = #p));
        }
        if o.skip_deserializing {
            attrs.push(quote!(skip_deserializing));
        }
        if !f.renamed {
            for alias in &o.aliases {
                attrs.push(quote!(alias = #alias));
            }
        }
        defs.push(quote!(#[serde(#(#attrs),*)] #name: #ty));
        field_tys.push(ty);
        names.push(name);
    }
    let record_impl = record::record_impl(
        ident,
        name,
        &syn::Generics::default(),
        fields.iter().map(|f| (f.serde.as_str(), f.rust.as_str(), f.ty.as_str())),
    );
    let shown = ident.to_string();
    // `for<'__etl>` makes each bound non-trivial: where a field is not `Clone` (or `Debug`),
    // the impl does not apply, instead of being an error.
    quote! {
        #[allow(non_camel_case_types, dead_code)]
        #[derive(::etl::__private::serde::Serialize, ::etl::__private::serde::Deserialize)]
        #[serde(crate = "::etl::__private::serde")]
        struct #ident { #(#defs),* }
        #record_impl
        #[automatically_derived]
        impl ::core::clone::Clone for #ident where #(for<'__etl> #field_tys: ::core::clone::Clone),* {
            fn clone(&self) -> Self { #ident { #(#names: ::core::clone::Clone::clone(&self.#names)),* } }
        }
        #[automatically_derived]
        impl ::core::fmt::Debug for #ident where #(for<'__etl> #field_tys: ::core::fmt::Debug),* {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#shown) #(.field(::core::stringify!(#names), &self.#names))* .finish()
            }
        }
    }
}
