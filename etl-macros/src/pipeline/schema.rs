//! Record schemas as the callback macros of `#[derive(Record)]` hand them to `pipeline!`.
//!
//! `pipeline!` cannot see the fields of `Order` in `iter(v) as Order | rename(..)`; the derive
//! exports a `macro_rules!` under the struct's name (see `record::schema_callback`) that calls
//! back `::etl::__private::pipeline_with_schema! { @etl_record { .. } <input> }`. This module
//! reads those blocks back ([`split`]) and emits the call of the next callback ([`callback`]).
//!
//! Several types may be needed (the source's, then `into(Type)`'s): each round fetches one
//! more, prepending its block, so the blocks arrive newest first.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::quote;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{LitInt, LitStr, Token};

/// One record type's schema, as its derive saw it.
#[derive(Debug, Clone)]
pub struct RecordSchema {
    /// The struct's name (without `r#`).
    #[allow(dead_code)] // informative (a `use .. as ..` may call it by another name)
    pub name: String,
    /// How many type parameters it has.
    #[allow(dead_code)] // informative; generic records work through `FieldType` projections
    pub params: usize,
    /// Its serialised fields, in declaration order.
    pub fields: Vec<SchemaField>,
    /// The Rust names of the fields serde skips.
    pub skipped: Vec<String>,
}

/// One serialised field of a [`RecordSchema`].
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaField {
    /// The Rust name (without `r#`).
    pub rust_name: String,
    /// Its declaration position: the `N` of `::etl::__private::FieldType<N>`.
    pub index: usize,
    /// The name serde writes.
    pub serde_name: String,
    /// Its type as written, for `Schema::fields[..].ty`.
    pub ty: String,
    /// Its serde options that generated types keep.
    pub options: Options,
}

/// The serde options of a field that generated record types carry over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// `default`.
    pub default: bool,
    /// `default = "path"` (called through `FieldDefault<N>`).
    pub default_with: bool,
    /// `skip_serializing_if = "path"` (through `FieldSkipIf<N>`).
    pub skip_serializing_if: bool,
    /// `serialize_with` / `with` (through `FieldSerializeWith<N>`).
    pub serialize_with: bool,
    /// `deserialize_with` / `with` (through `FieldDeserializeWith<N>`).
    pub deserialize_with: bool,
    /// `skip_deserializing`.
    pub skip_deserializing: bool,
    /// `alias = ".."`, each.
    pub aliases: Vec<String>,
}

impl Parse for RecordSchema {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: LitStr = input.parse()?;
        input.parse::<Token![,]>()?;
        let params: LitInt = input.parse()?;
        input.parse::<Token![,]>()?;
        let fields;
        syn::bracketed!(fields in input);
        let fields = fields.parse_terminated(SchemaField::parse, Token![,])?.into_iter().collect();
        input.parse::<Token![,]>()?;
        let skipped;
        syn::bracketed!(skipped in input);
        let skipped = skipped.parse_terminated(<LitStr as Parse>::parse, Token![,])?.iter().map(LitStr::value).collect();
        Ok(RecordSchema { name: name.value(), params: params.base10_parse()?, fields, skipped })
    }
}

impl Parse for SchemaField {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let content;
        syn::parenthesized!(content in input);
        let rust_name: LitStr = content.parse()?;
        content.parse::<Token![,]>()?;
        let index: LitInt = content.parse()?;
        content.parse::<Token![,]>()?;
        let serde_name: LitStr = content.parse()?;
        content.parse::<Token![,]>()?;
        let ty: LitStr = content.parse()?;
        content.parse::<Token![,]>()?;
        let list;
        syn::bracketed!(list in content);
        let mut options = Options::default();
        while !list.is_empty() {
            let key: syn::Ident = list.parse()?;
            match key.to_string().as_str() {
                "default" => options.default = true,
                "default_with" => options.default_with = true,
                "skip_serializing_if" => options.skip_serializing_if = true,
                "serialize_with" => options.serialize_with = true,
                "deserialize_with" => options.deserialize_with = true,
                "skip_deserializing" => options.skip_deserializing = true,
                "alias" => {
                    list.parse::<Token![=]>()?;
                    options.aliases.push(list.parse::<LitStr>()?.value());
                }
                _ => return Err(syn::Error::new(key.span(), "unknown field option")),
            }
            if !list.is_empty() {
                list.parse::<Token![,]>()?;
            }
        }
        Ok(SchemaField {
            rust_name: rust_name.value(),
            index: index.base10_parse()?,
            serde_name: serde_name.value(),
            ty: ty.value(),
            options,
        })
    }
}

/// A schema as received: parsed, and its tokens to send on in the next round.
pub struct Received {
    /// The schema.
    pub schema: RecordSchema,
    /// Its `@etl_record { .. }` tokens, as they came.
    pub tokens: TokenStream,
}

/// Split `@etl_record { .. } @etl_record { .. } <pipeline>` into the schemas, oldest first
/// (the order they were asked for), and the pipeline's own tokens.
pub fn split(input: TokenStream) -> syn::Result<(Vec<Received>, TokenStream)> {
    let mut tokens: Vec<TokenTree> = input.into_iter().collect();
    let mut schemas = Vec::new();
    let mut at = 0;
    while let [TokenTree::Punct(p), TokenTree::Ident(tag), TokenTree::Group(g), ..] = &tokens[at..] {
        if p.as_char() != '@' || tag != "etl_record" || g.delimiter() != Delimiter::Brace {
            break;
        }
        let schema = RecordSchema::parse.parse2(g.stream()).map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("etl: a record's schema macro sent a schema this `pipeline!` cannot read ({e})\nhelp: use the same version of `etl` for the record and the pipeline"),
            )
        })?;
        schemas.push(Received { schema, tokens: tokens[at..at + 3].iter().cloned().collect() });
        at += 3;
    }
    schemas.reverse();
    Ok((schemas, tokens.drain(at..).collect()))
}

/// The call of the schema macro of the record type at `path` that brings its schema to
/// `pipeline_with_schema!`, with the schemas already received (`sent`, their tokens, oldest
/// first) and the pipeline's tokens.
pub fn callback(path: &syn::Path, sent: &[TokenStream], input: TokenStream) -> TokenStream {
    // The macro is named by the type's path without generic arguments: `Page<i64>` → `Page!`.
    let mut path = path.clone();
    for seg in &mut path.segments {
        seg.arguments = syn::PathArguments::None;
    }
    let sent = sent.iter().rev();
    let span = path.segments.last().map_or_else(Span::call_site, |s| s.ident.span());
    let bang = proc_macro2::Punct::new('!', proc_macro2::Spacing::Alone);
    let mut call = quote!(#path);
    call.extend([TokenTree::Punct({
        let mut b = bang;
        b.set_span(span);
        b
    })]);
    quote!(#call { ::etl::__private::pipeline_with_schema! { #(#sent)* #input } })
}

/// The `@etl_record { .. }` block of `schema`, as a callback macro sends it.
#[cfg(test)]
pub fn block(schema: &RecordSchema) -> TokenStream {
    let name = &schema.name;
    let params = schema.params;
    let fields = schema.fields.iter().map(|f| {
        let (rust_name, index, serde_name, ty) = (&f.rust_name, f.index, &f.serde_name, &f.ty);
        let o = &f.options;
        let mut options = Vec::new();
        for (on, key) in [
            (o.default, "default"),
            (o.default_with, "default_with"),
            (o.skip_serializing_if, "skip_serializing_if"),
            (o.serialize_with, "serialize_with"),
            (o.deserialize_with, "deserialize_with"),
            (o.skip_deserializing, "skip_deserializing"),
        ] {
            if on {
                let key = syn::Ident::new(key, Span::call_site());
                options.push(quote!(#key));
            }
        }
        for alias in &o.aliases {
            options.push(quote!(alias = #alias));
        }
        quote!((#rust_name, #index, #serde_name, #ty, [#(#options),*]))
    });
    let skipped = &schema.skipped;
    quote!(@etl_record { #name, #params, [#(#fields),*], [#(#skipped),*] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_split_from_the_pipeline() {
        let a = quote!(@etl_record { "Order", 0usize, [("id", 0usize, "id", "i64", []), ("kind", 2usize, "type", "String", [default, alias = "k"])], ["cached"] });
        let b = quote!(@etl_record { "Summary", 1usize, [("n", 0usize, "N", "T", [serialize_with, deserialize_with])], [] });
        // Newest first on the wire: `b` was fetched after `a`.
        let (received, rest) = split(quote!(#b #a iter(v) as Order | stdout())).expect("reads");
        assert_eq!(rest.to_string(), quote!(iter(v) as Order | stdout()).to_string());
        assert_eq!(received[0].tokens.to_string(), a.to_string());
        let schemas: Vec<RecordSchema> = received.into_iter().map(|r| r.schema).collect();
        assert_eq!(schemas.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["Order", "Summary"]);
        let order = &schemas[0];
        assert_eq!(order.skipped, ["cached"]);
        assert_eq!(order.fields[1].rust_name, "kind");
        assert_eq!(order.fields[1].serde_name, "type");
        assert_eq!(order.fields[1].index, 2);
        assert_eq!(order.fields[1].options, Options { default: true, aliases: vec!["k".into()], ..Options::default() });
        assert!(schemas[1].fields[0].options.serialize_with && schemas[1].fields[0].options.deserialize_with);
        assert_eq!(block(order).to_string(), a.to_string());
        assert_eq!(block(&schemas[1]).to_string(), b.to_string());
    }

    #[test]
    fn the_derive_and_the_pipeline_agree_on_the_format() {
        let input: syn::DeriveInput = syn::parse2(quote! {
            struct S { id: i64, #[serde(skip)] c: u8, #[serde(rename = "type", alias = "t", default, with = "m")] kind: String }
        })
        .expect("parses");
        let def = crate::record::parse(&input).expect("a record");
        let tokens = crate::record::schema_tokens(&def);
        let (received, rest) = split(tokens.clone()).expect("reads");
        assert!(rest.is_empty());
        assert_eq!(block(&received[0].schema).to_string(), tokens.to_string());
    }

    #[test]
    fn a_garbled_schema_is_an_error_not_a_panic() {
        let Err(e) = split(quote!(@etl_record { "Order", [] } iter(v) | stdout())) else { panic!("garbled") };
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[test]
    fn callback_calls_the_types_macro_with_what_was_sent() {
        let path: syn::Path = syn::parse_quote!(shop::Page<i64>);
        let out = callback(&path, &[quote!(@etl_record { A }), quote!(@etl_record { B })], quote!(iter(v) | stdout()));
        assert_eq!(
            out.to_string(),
            quote!(shop::Page! { ::etl::__private::pipeline_with_schema! { @etl_record { B } @etl_record { A } iter(v) | stdout() } })
                .to_string()
        );
    }
}
