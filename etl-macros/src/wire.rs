//! The schema wire format: what `#[derive(Record)]`'s schema callback macro hands to
//! `pipeline!`. One type, [`RecordSchema`], writes it ([`ToTokens`]) on the derive's side and
//! reads it back ([`Parse`]) on the pipeline's side:
//!
//! ```text
//! @etl_record { [("rust_name", 0usize, "serde_name", "Type", [default, alias = "a"]), ...], ["skipped", ...] }
//! ```
//!
//! Each field: its Rust name, its declaration position (the `N` of
//! `::etl::__private::FieldType<N>`), the name serde writes, its type as text, and the serde
//! options that the record types `pipeline!` generates from it keep. Then the Rust names of the
//! fields serde skips. Both sides are this crate, so the format only has to agree with itself
//! (a record compiled by another version of `etl` is reported by `pipeline!`, not misread).

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitInt, LitStr, Token};

/// The tag after `@` that opens a schema block.
pub const TAG: &str = "etl_record";

/// One record type's schema, as its derive saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordSchema {
    /// Its serialised fields, in declaration order.
    pub fields: Vec<SchemaField>,
    /// The Rust names of the fields serde skips (`into(Type)` fills them with `Default`).
    pub skipped: Vec<String>,
}

/// One serialised field of a [`RecordSchema`].
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaField {
    /// The Rust name (without `r#`).
    pub rust_name: String,
    /// Its declaration position among all the struct's fields (skipped ones count).
    pub index: usize,
    /// The name serde writes.
    pub serde_name: String,
    /// Its type as written, for `Schema::fields[..].ty`.
    pub ty: String,
    /// Its serde options that generated types keep.
    pub options: FieldOptions,
}

/// The serde options of a field that generated record types carry over. Helper paths are not
/// sent: generated types call them through the record (`FieldDefault<N>`, ...), so only their
/// presence is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldOptions {
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

impl FieldOptions {
    /// The flags and their names on the wire, in wire order.
    fn flags(&self) -> [(bool, &'static str); 6] {
        [
            (self.default, "default"),
            (self.default_with, "default_with"),
            (self.skip_serializing_if, "skip_serializing_if"),
            (self.serialize_with, "serialize_with"),
            (self.deserialize_with, "deserialize_with"),
            (self.skip_deserializing, "skip_deserializing"),
        ]
    }

    fn flag_mut(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "default" => &mut self.default,
            "default_with" => &mut self.default_with,
            "skip_serializing_if" => &mut self.skip_serializing_if,
            "serialize_with" => &mut self.serialize_with,
            "deserialize_with" => &mut self.deserialize_with,
            "skip_deserializing" => &mut self.skip_deserializing,
            _ => return None,
        })
    }
}

impl ToTokens for RecordSchema {
    fn to_tokens(&self, out: &mut TokenStream) {
        let tag = Ident::new(TAG, Span::call_site());
        let fields = self.fields.iter().map(|f| {
            let (rust_name, index, serde_name, ty) = (&f.rust_name, f.index, &f.serde_name, &f.ty);
            let mut options: Vec<TokenStream> = Vec::new();
            for (on, key) in f.options.flags() {
                if on {
                    let key = Ident::new(key, Span::call_site());
                    options.push(quote!(#key));
                }
            }
            for alias in &f.options.aliases {
                options.push(quote!(alias = #alias));
            }
            quote!((#rust_name, #index, #serde_name, #ty, [#(#options),*]))
        });
        let skipped = &self.skipped;
        out.extend(quote!(@#tag { [#(#fields),*], [#(#skipped),*] }));
    }
}

impl Parse for RecordSchema {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        input.parse::<Token![@]>()?;
        let tag: Ident = input.parse()?;
        if tag != TAG {
            return Err(syn::Error::new(tag.span(), format!("expected `{TAG}`")));
        }
        let body;
        syn::braced!(body in input);
        let fields;
        syn::bracketed!(fields in body);
        let fields = fields.parse_terminated(SchemaField::parse, Token![,])?.into_iter().collect();
        body.parse::<Token![,]>()?;
        let skipped;
        syn::bracketed!(skipped in body);
        let skipped = skipped.parse_terminated(<LitStr as Parse>::parse, Token![,])?.iter().map(LitStr::value).collect();
        Ok(RecordSchema { fields, skipped })
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
        let mut options = FieldOptions::default();
        while !list.is_empty() {
            let key: Ident = list.parse()?;
            if key == "alias" {
                list.parse::<Token![=]>()?;
                options.aliases.push(list.parse::<LitStr>()?.value());
            } else {
                *options.flag_mut(&key.to_string()).ok_or_else(|| syn::Error::new(key.span(), "unknown field option"))? = true;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use syn::parse::Parser;

    fn round_trip(schema: &RecordSchema) -> RecordSchema {
        RecordSchema::parse.parse2(schema.to_token_stream()).expect("reads back what it wrote")
    }

    #[test]
    fn writes_the_documented_format_and_reads_it_back() {
        let schema = RecordSchema {
            fields: vec![
                SchemaField {
                    rust_name: "id".into(),
                    index: 0,
                    serde_name: "id".into(),
                    ty: "i64".into(),
                    options: FieldOptions::default(),
                },
                SchemaField {
                    rust_name: "kind".into(),
                    index: 2,
                    serde_name: "type".into(),
                    ty: "Option<String>".into(),
                    options: FieldOptions { default: true, serialize_with: true, aliases: vec!["k".into()], ..FieldOptions::default() },
                },
            ],
            skipped: vec!["cached".into()],
        };
        assert_eq!(
            schema.to_token_stream().to_string(),
            quote!(@etl_record { [("id", 0usize, "id", "i64", []), ("kind", 2usize, "type", "Option<String>", [default, serialize_with, alias = "k"])], ["cached"] })
                .to_string()
        );
        assert_eq!(round_trip(&schema), schema);
        assert_eq!(round_trip(&RecordSchema::default()), RecordSchema::default());
    }

    #[test]
    fn garbled_input_is_an_error() {
        for bad in
            [quote!(@etl_record { "Order", [] }), quote!(@other { [], [] }), quote!(@etl_record { [("a", 0usize, "a", "i64", [zzz])], [] })]
        {
            assert!(RecordSchema::parse.parse2(bad.clone()).is_err(), "{bad}");
        }
    }

    fn options() -> impl Strategy<Value = FieldOptions> {
        (any::<[bool; 6]>(), prop::collection::vec(".*", 0..3)).prop_map(|(f, aliases)| FieldOptions {
            default: f[0],
            default_with: f[1],
            skip_serializing_if: f[2],
            serialize_with: f[3],
            deserialize_with: f[4],
            skip_deserializing: f[5],
            aliases,
        })
    }

    fn field() -> impl Strategy<Value = SchemaField> {
        (".*", any::<usize>(), ".*", ".*", options()).prop_map(|(rust_name, index, serde_name, ty, options)| SchemaField {
            rust_name,
            index,
            serde_name,
            ty,
            options,
        })
    }

    proptest! {
        /// Any schema, names and types of any text included, reads back as it was written.
        #[test]
        fn any_schema_round_trips(fields in prop::collection::vec(field(), 0..6), skipped in prop::collection::vec(".*", 0..4)) {
            let schema = RecordSchema { fields, skipped };
            prop_assert_eq!(round_trip(&schema), schema);
        }
    }
}
