//! What `#[derive(Record)]` generates: the `::etl::record::Record` impl ([`record_impl`], also
//! used for the record types `pipeline!` generates), and the schema callback macro with the
//! field traits it relies on ([`schema_callback`]).

use super::RecordDef;
use crate::wire::{FieldOptions, RecordSchema, SchemaField};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::{Generics, Ident};

/// `impl ::etl::record::Record for S`, the schema (named `name`) a `static` inside
/// `schema()`; `fields` are `(serde name, Rust name, type as text)` in order.
///
/// Generic structs get one bound on the whole type instead of bounds per parameter, so
/// `struct Page<T> { items: Vec<T> }` works with whatever bounds serde's derive inferred:
/// `where Page<T>: Serialize + for<'de> Deserialize<'de> + Send + 'static` — the supertraits of
/// `Record`, spelled through `::etl` (`for<'de> Deserialize<'de>` is `DeserializeOwned`).
pub(crate) fn record_impl<'a>(
    ident: &Ident,
    record_name: &str,
    generics: &Generics,
    fields: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
) -> TokenStream {
    let mut bounded = generics.clone();
    let (_, ty_generics, _) = generics.split_for_impl();
    if !generics.params.is_empty() {
        bounded.make_where_clause().predicates.push(syn::parse_quote! {
            #ident #ty_generics: ::etl::prelude::Serialize
                + for<'__etl_de> ::etl::prelude::Deserialize<'__etl_de>
                + ::core::marker::Send
                + 'static
        });
    }
    let (impl_generics, _, where_clause) = bounded.split_for_impl();
    let fields = fields.map(|(name, rust_name, ty)| quote! { ::etl::record::Field { name: #name, rust_name: #rust_name, ty: #ty } });
    let schema = Ident::new("SCHEMA", Span::mixed_site());
    quote! {
        #[automatically_derived]
        impl #impl_generics ::etl::record::Record for #ident #ty_generics #where_clause {
            fn schema() -> &'static ::etl::record::Schema {
                static #schema: ::etl::record::Schema = ::etl::record::Schema {
                    name: #record_name,
                    fields: &[#(#fields),*],
                };
                &#schema
            }
        }
    }
}

/// The `Record` impl of a struct that `#[derive(Record)]` accepted.
pub(crate) fn expand(def: &RecordDef) -> TokenStream {
    record_impl(
        &def.ident,
        &def.ident.unraw().to_string(),
        &def.generics,
        def.fields.iter().map(|f| (f.name.as_str(), f.rust_name.as_str(), f.ty_text.as_str())),
    )
}

/// The schema *callback macro* (DESIGN.md §3) and the field traits it relies on.
///
/// * `impl ::etl::__private::FieldType<N> for S { type Type = <field N's type>; }` for each
///   serialised field (`N` is its declaration position), and the `Field*With` / `FieldSkipIf`
///   / `FieldDefault` impls that call the field's serde helper paths: the record types that
///   `pipeline!` generates name their field types and serde helpers through them, so both
///   resolve in the struct's scope wherever the pipeline is written.
/// * `#[macro_export] macro_rules! __etl_record_S_<hash>` (a plain local `macro_rules!` unless
///   the struct is `pub`), re-exported next to the struct as `S` (macros have their own
///   namespace), with the struct's visibility: importing the struct imports its schema. Called
///   as `S! { path::to::callback! { tokens } }`, it expands to
///   `path::to::callback! { @etl_record { ... } tokens }`, the schema ([`schema`]) prepended.
///
/// The traps of this pattern (LESSONS.md): a macro-expanded `#[macro_export]` macro cannot be
/// named by an absolute path (rust#52234), hence the alias placed after it; a `$cb:path` cannot
/// be invoked, hence `$($seg:ident)::+`; same-named records in different modules would collide
/// at the crate root, hence the hash of the item (`salt`) in the exported name.
pub(crate) fn schema_callback(def: &RecordDef, salt: &str) -> TokenStream {
    let ident = &def.ident;
    let (impl_generics, ty_generics, where_clause) = def.generics.split_for_impl();
    let mut impls = Vec::new();
    for f in &def.fields {
        let n = f.index;
        let ty = &f.ty;
        let head = |tr: TokenStream| quote!(#[automatically_derived] impl #impl_generics #tr for #ident #ty_generics #where_clause);
        let h = head(quote!(::etl::__private::FieldType<#n>));
        impls.push(quote!(#h { type Type = #ty; }));
        if let Some(path) = &f.serde.serialize_with {
            let h = head(quote!(::etl::__private::FieldSerializeWith<#n>));
            impls.push(quote! {
                #h {
                    fn serialize_with<__S: ::etl::__private::serde::Serializer>(value: &Self::Type, serializer: __S)
                        -> ::core::result::Result<__S::Ok, __S::Error> { #path(value, serializer) }
                }
            });
        }
        if let Some(path) = &f.serde.deserialize_with {
            let h = head(quote!(::etl::__private::FieldDeserializeWith<#n>));
            impls.push(quote! {
                #h {
                    fn deserialize_with<'de, __D: ::etl::__private::serde::Deserializer<'de>>(deserializer: __D)
                        -> ::core::result::Result<Self::Type, __D::Error> { #path(deserializer) }
                }
            });
        }
        if let Some(path) = &f.serde.skip_serializing_if {
            let h = head(quote!(::etl::__private::FieldSkipIf<#n>));
            impls.push(quote!(#h { fn skip_serializing_if(value: &Self::Type) -> bool { #path(value) } }));
        }
        if let Some(path) = &f.serde.default_with {
            let h = head(quote!(::etl::__private::FieldDefault<#n>));
            impls.push(quote!(#h { fn default() -> Self::Type { #path() } }));
        }
    }
    let schema = schema(def);
    let name = ident.unraw().to_string();
    let exported = Ident::new(&format!("__etl_record_{name}_{:016x}", fnv1a(salt)), Span::call_site());
    let vis = &def.vis;
    // Only a `pub` record needs its macro outside the crate: others get a plain local
    // `macro_rules!`, imported within the crate by the `use` below. (A `#[macro_export]` in a
    // function body also draws rustc's `non_local_definitions` warning on the user's code.)
    let export = match vis {
        syn::Visibility::Public(_) => quote!(#[macro_export] #[allow(non_local_definitions)]),
        _ => quote!(),
    };
    quote! {
        const _: () = { #(#impls)* };
        #[doc(hidden)]
        #export
        macro_rules! #exported {
            (:: $($seg:ident)::+ ! { $($rest:tt)* }) => { :: $($seg)::+ ! { #schema $($rest)* } };
            ($($seg:ident)::+ ! { $($rest:tt)* }) => { $($seg)::+ ! { #schema $($rest)* } };
        }
        #[doc(hidden)]
        #[allow(unused_imports)]
        #vis use #exported as #ident;
    }
}

/// The schema the callback macro sends (see [`crate::wire`]).
pub(crate) fn schema(def: &RecordDef) -> RecordSchema {
    RecordSchema {
        fields: def
            .fields
            .iter()
            .map(|f| {
                let s = &f.serde;
                SchemaField {
                    rust_name: f.rust_name.clone(),
                    index: f.index,
                    serde_name: f.name.clone(),
                    ty: f.ty_text.clone(),
                    options: FieldOptions {
                        default: s.default,
                        default_with: s.default_with.is_some(),
                        skip_serializing_if: s.skip_serializing_if.is_some(),
                        serialize_with: s.serialize_with.is_some(),
                        deserialize_with: s.deserialize_with.is_some(),
                        skip_deserializing: s.skip_deserializing,
                        aliases: s.aliases.iter().map(syn::LitStr::value).collect(),
                    },
                }
            })
            .collect(),
        skipped: def.skipped.clone(),
    }
}

/// FNV-1a, 64 bits: a hash that is the same on every build (unlike `DefaultHasher`'s).
pub(super) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}
