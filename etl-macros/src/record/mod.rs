//! `#[derive(Record)]`: parsing of the user's struct and its serde attributes, and generation of
//! the `::etl::record::Record` impl.
//!
//! * [`parse`] turns a [`syn::DeriveInput`] into a [`RecordDef`] — the struct's name, generics
//!   and serialised fields (serde name, Rust name, type text, the serde options generated record
//!   types keep) — collecting *every* error (the attributes are read in `attrs.rs`);
//! * [`expand`] generates the impl from a [`RecordDef`];
//! * [`schema_callback`] generates the schema callback `macro_rules!` (DESIGN.md §3), which
//!   `pipeline!` calls to learn a record's fields (in the format of [`crate::wire`]), and the
//!   `FieldType<N>` impls through which the record types `pipeline!` generates name the
//!   fields' types and serde helpers.
//!
//! All of it runs on `proc_macro2` tokens, so it is unit-tested without the compiler.

mod attrs;
mod case;
mod expand;
#[cfg(test)]
mod tests;
mod type_text;

#[cfg(test)]
pub(crate) use expand::schema;
pub(crate) use expand::{expand, record_impl, schema_callback};
pub(crate) use type_text::type_text;

use crate::diagnostic::Diagnostics;
use attrs::{check_generics, container_attrs, field_attrs, record_attrs};
use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Fields, Generics, Ident, Type};

/// A struct that `#[derive(Record)]` accepted.
pub(crate) struct RecordDef {
    /// The struct's identifier, as written (possibly raw).
    pub(crate) ident: Ident,
    /// The struct's visibility, given to its schema macro's alias.
    pub(crate) vis: syn::Visibility,
    /// The struct's generics, as written.
    pub(crate) generics: Generics,
    /// The fields serde serialises, in declaration order (skipped fields are left out).
    pub(crate) fields: Vec<FieldDef>,
    /// The Rust names of the fields serde skips (`skip`, `skip_serializing`): `into(Type)`
    /// fills them with `Default::default()`.
    pub(crate) skipped: Vec<String>,
}

/// One serialised field of a [`RecordDef`].
pub(crate) struct FieldDef {
    /// Its declaration position among all the struct's fields (skipped ones count): the `N`
    /// of `::etl::__private::FieldType<N>`.
    pub(crate) index: usize,
    /// The name serde writes: after `rename` / `rename_all`, without `r#`.
    pub(crate) name: String,
    /// The Rust name without `r#`.
    pub(crate) rust_name: String,
    /// The field's type.
    pub(crate) ty: Type,
    /// The field's type as text (`Vec<String>`, `Option<&'static str>`).
    pub(crate) ty_text: String,
    /// The serde options that generated record types carry over.
    pub(crate) serde: FieldSerde,
}

/// The serde options of a field that the record types `pipeline!` generates from it keep
/// (its name is decided by the pipeline). Paths are called through the
/// `::etl::__private::Field*` traits, implemented next to the struct, so they resolve in the
/// struct's scope wherever the pipeline is.
#[derive(Default, Clone)]
pub(crate) struct FieldSerde {
    /// `default`: `Default::default()` when missing.
    pub(crate) default: bool,
    /// `default = "path"`.
    pub(crate) default_with: Option<syn::ExprPath>,
    /// `skip_serializing_if = "path"`.
    pub(crate) skip_serializing_if: Option<syn::ExprPath>,
    /// `serialize_with = "path"`, or `with = "module"` (then `module::serialize`).
    pub(crate) serialize_with: Option<syn::ExprPath>,
    /// `deserialize_with = "path"`, or `with = "module"` (then `module::deserialize`).
    pub(crate) deserialize_with: Option<syn::ExprPath>,
    /// `skip_deserializing`.
    pub(crate) skip_deserializing: bool,
    /// `alias = "name"`, each.
    pub(crate) aliases: Vec<syn::LitStr>,
}

/// Entry point of the derive: the impl, or `compile_error!`s for every problem found.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<DeriveInput>(input) {
        Ok(input) => input,
        Err(e) => return Diagnostics::from(e).to_compile_errors(),
    };
    match parse(&input) {
        Ok(def) => {
            // Two records with the same name (in different modules) must export differently
            // named macros: the salt is the item's text and where it stands in the crate.
            let salt = format!("{} {:?}", input.to_token_stream(), input.ident.span());
            let mut out = expand(&def);
            out.extend(schema_callback(&def, &salt));
            out
        }
        Err(d) => d.to_compile_errors(),
    }
}

/// Check the input and extract its schema. Every error (shape, attributes, generics, name
/// collisions) is reported, each spanned on the user's token.
pub(crate) fn parse(input: &DeriveInput) -> Result<RecordDef, Diagnostics> {
    let mut d = Diagnostics::default();
    let container = container_attrs(&input.attrs, &mut d);
    record_attrs(&input.attrs, &mut d);
    check_generics(&input.generics, &mut d);

    const SHAPE_HELP: &str = "use `struct Name { field: Type }`, or `etl::Json` for schemaless records";
    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => Some(named),
            Fields::Unnamed(_) => {
                d.error(input.ident.span(), "`#[derive(Record)]` needs a struct with named fields, not a tuple struct", SHAPE_HELP);
                None
            }
            Fields::Unit => {
                d.error(input.ident.span(), "`#[derive(Record)]` needs a struct with named fields, not a unit struct", SHAPE_HELP);
                None
            }
        },
        Data::Enum(e) => {
            d.error(e.enum_token.span, "`#[derive(Record)]` needs a struct with named fields, not an enum", SHAPE_HELP);
            None
        }
        Data::Union(u) => {
            d.error(u.union_token.span, "`#[derive(Record)]` needs a struct with named fields, not a union", SHAPE_HELP);
            None
        }
    };

    let mut fields: Vec<FieldDef> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    if let Some(named) = named {
        for (index, field) in named.named.iter().enumerate() {
            let attrs = field_attrs(&field.attrs, &mut d);
            record_attrs(&field.attrs, &mut d);
            let Some(ident) = &field.ident else {
                continue;
            };
            let rust_name = ident.unraw().to_string();
            if attrs.skip {
                skipped.push(rust_name);
                continue;
            }
            let name = match (attrs.rename, container.rename_all) {
                (Some(name), _) => name,
                (None, Some(rule)) => rule.apply_to_field(&rust_name),
                (None, None) => rust_name.clone(),
            };
            if let Some(first) = fields.iter().find(|f| f.name == name) {
                d.error(
                    ident.span(),
                    format!(
                        "field `{rust_name}` is serialized as \"{name}\", like field `{}`: a record's field names must be unique",
                        first.rust_name
                    ),
                    "rename one of them with `#[serde(rename = \"...\")]`",
                );
            }
            fields.push(FieldDef { ty_text: type_text(&field.ty), ty: field.ty.clone(), index, name, rust_name, serde: attrs.serde });
        }
        if fields.is_empty() {
            d.error(
                input.ident.span(),
                "a record needs at least one serialized field (a schema without fields means a dynamic record)",
                "add a field, or use `etl::Json` for schemaless records",
            );
        }
    }

    if !d.is_empty() {
        return Err(d);
    }
    Ok(RecordDef { ident: input.ident.clone(), vis: input.vis.clone(), generics: input.generics.clone(), fields, skipped })
}
