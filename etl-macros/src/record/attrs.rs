//! The serde attributes `#[derive(Record)]` reads: the names serde writes (`rename`,
//! `rename_all`), the fields it skips, the options generated record types keep, and the
//! attributes that make the serialised shape differ from the struct's fields (errors).

use super::case::RenameRule;
use super::FieldSerde;
use crate::diagnostic::Diagnostics;
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Attribute, Generics, Ident, LitStr};

/// What the struct-level serde attributes say.
#[derive(Default)]
pub(super) struct ContainerAttrs {
    /// `rename_all = ".."`.
    pub(super) rename_all: Option<RenameRule>,
}

/// What a field's serde attributes say.
#[derive(Default)]
pub(super) struct FieldAttrs {
    /// `rename = ".."` (its serialisation name).
    pub(super) rename: Option<String>,
    /// `skip` or `skip_serializing`.
    pub(super) skip: bool,
    /// The options generated record types keep.
    pub(super) serde: FieldSerde,
}

/// Records are owned and `'static`, so lifetime parameters cannot be satisfied; type and const
/// parameters are supported (see [`expand`]).
pub(super) fn check_generics(generics: &Generics, d: &mut Diagnostics) {
    for lt in generics.lifetimes() {
        d.error(
            lt.lifetime.span(),
            "`#[derive(Record)]` does not support lifetime parameters: records are owned and `'static`",
            "use owned types (`String` instead of `&str`, `Vec<u8>` instead of `&[u8]`)",
        );
    }
}

/// `#[record(...)]` takes no options yet; report any use so a typo is not silently ignored.
pub(super) fn record_attrs(attrs: &[Attribute], d: &mut Diagnostics) {
    for attr in attrs.iter().filter(|a| a.path().is_ident("record")) {
        d.error(attr.span(), "`#[record(...)]` takes no options yet", "remove this attribute (field names come from `#[serde(...)]`)");
    }
}

/// Read the serde container attributes that change field names; reject those that make the
/// serialised shape differ from the struct's fields.
pub(super) fn container_attrs(attrs: &[Attribute], d: &mut Diagnostics) -> ContainerAttrs {
    let mut out = ContainerAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename_all") {
                // `rename_all = "..."` or `rename_all(serialize = "...", deserialize = "...")`.
                if let Some(lit) = serialize_name(&meta)? {
                    match RenameRule::from_name(&lit.value()) {
                        Some(rule) => out.rename_all = Some(rule),
                        None => d.error(
                            lit.span(),
                            format!("unknown `rename_all` rule \"{}\"", lit.value()),
                            format!("use one of {}", RenameRule::names()),
                        ),
                    }
                }
                Ok(())
            } else if let Some(why) = ["transparent", "into", "tag"].into_iter().find(|k| meta.path.is_ident(k)) {
                d.error(
                    meta.path.span(),
                    format!("`#[serde({why})]` is not supported by Record: the serialized fields would differ from the struct's fields"),
                    "remove it, or use `etl::Json` for records of another shape",
                );
                skip_value(&meta)
            } else {
                skip_value(&meta)
            }
        });
        if let Err(e) = result {
            d.extend(Diagnostics::from(e));
        }
    }
    out
}

/// Read the serde field attributes that decide a field's name and presence.
pub(super) fn field_attrs(attrs: &[Attribute], d: &mut Diagnostics) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                if let Some(lit) = serialize_name(&meta)? {
                    out.rename = Some(lit.value());
                }
                Ok(())
            } else if meta.path.is_ident("skip") || meta.path.is_ident("skip_serializing") {
                out.skip = true;
                Ok(())
            } else if meta.path.is_ident("skip_deserializing") {
                out.serde.skip_deserializing = true;
                Ok(())
            } else if meta.path.is_ident("default") {
                if meta.input.peek(syn::Token![=]) {
                    out.serde.default_with = Some(expr_path(&meta)?);
                } else {
                    out.serde.default = true;
                }
                Ok(())
            } else if meta.path.is_ident("skip_serializing_if") {
                out.serde.skip_serializing_if = Some(expr_path(&meta)?);
                Ok(())
            } else if meta.path.is_ident("serialize_with") {
                out.serde.serialize_with = Some(expr_path(&meta)?);
                Ok(())
            } else if meta.path.is_ident("deserialize_with") {
                out.serde.deserialize_with = Some(expr_path(&meta)?);
                Ok(())
            } else if meta.path.is_ident("with") {
                let module = expr_path(&meta)?;
                let mut ser = module.clone();
                ser.path.segments.push(Ident::new("serialize", Span::call_site()).into());
                let mut de = module;
                de.path.segments.push(Ident::new("deserialize", Span::call_site()).into());
                out.serde.serialize_with = Some(ser);
                out.serde.deserialize_with = Some(de);
                Ok(())
            } else if meta.path.is_ident("alias") {
                out.serde.aliases.push(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("flatten") {
                d.error(
                    meta.path.span(),
                    "`#[serde(flatten)]` is not supported by Record: the fields are not known at compile time",
                    "write the inner struct's fields in this struct, or use `etl::Json` for schemaless records",
                );
                Ok(())
            } else {
                skip_value(&meta)
            }
        });
        if let Err(e) = result {
            d.extend(Diagnostics::from(e));
        }
    }
    out
}

/// The serialisation name of `key = "x"` or `key(serialize = "x", deserialize = "y")`;
/// `None` when only `deserialize` is given (the serialised name is then the default).
fn serialize_name(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Option<LitStr>> {
    if meta.input.peek(syn::Token![=]) {
        return Ok(Some(meta.value()?.parse()?));
    }
    let mut ser = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("serialize") {
            ser = Some(inner.value()?.parse()?);
            Ok(())
        } else if inner.path.is_ident("deserialize") {
            let _: LitStr = inner.value()?.parse()?;
            Ok(())
        } else {
            Err(inner.error("expected `serialize` or `deserialize`"))
        }
    })?;
    Ok(ser)
}

/// `key = "path"`: the path the literal holds (spanned on the literal, as serde does).
fn expr_path(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<syn::ExprPath> {
    let lit: LitStr = meta.value()?.parse()?;
    lit.parse::<syn::ExprPath>()
}

/// Consume the value of a serde option that does not concern the schema (`default`,
/// `with = "..."`, `bound(...)`, ...), whatever its form.
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _: TokenStream = meta.input.step(|cursor| match cursor.token_tree() {
            Some((tt, rest)) => Ok((tt.into_token_stream(), rest)),
            None => Err(cursor.error("expected `(...)`")),
        })?;
    }
    Ok(())
}
